"""Issue 11.15 and 11.16, end to end: what is stored stays trustworthy when it is damaged.

A real `satchel` client autostarting its real daemon, a loopback index serving real wheels, and
real damage: a file edited in place through a venv's hard link (which edits the cache's unpacked
tree: the inode is shared), bit rot in a tree, and a metadata database truncated, overwritten
with garbage or damaged mid-file. After each, later installs get the original bytes, `cache
verify` reports and repairs, `status` names the cause, and offline installs of stored projects
keep working without the network (the index is stopped before the damaged daemon starts).

Randomized damage uses a seed, printed by every test that uses one.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.world import World, site_packages
from tests.support.wheels import build_wheel, file_sha256

ORIGINAL = b"VALUE = 'original'\n" + b"# padding so that a damaged page is easy to see\n" * 20


def _world(root: Path) -> World:
    w = World(root)
    w.index.add(
        build_wheel(
            w.dist,
            "storedpkg",
            "1.0",
            requires=["storeddep>=1"],
            files={"storedpkg/__init__.py": ORIGINAL, "storedpkg/other.py": "X = 1\n"},
        )
    )
    w.index.add(build_wheel(w.dist, "storeddep", "1.0", files={"storeddep/__init__.py": ""}))
    return w


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = _world(tmp_path)
    try:
        yield w
    finally:
        w.close()


def _module(venv: Path) -> Path:
    return site_packages(venv) / "storedpkg" / "__init__.py"


def _tree_file(world: World) -> Path:
    """The cache's unpacked copy of storedpkg/__init__.py (what venvs hard-link)."""
    sha = file_sha256(world.dist / "storedpkg-1.0-py3-none-any.whl")
    return world.cache / "unpacked" / sha / "tree" / "storedpkg" / "__init__.py"


def _install(world: World, venv: Path, *args: str) -> dict[str, Any]:
    value: dict[str, Any] = world.json(
        "install", "--venv", str(venv), "--link-mode", "hardlink", *args, "storedpkg"
    )
    return value


def _edit_in_place(path: Path, data: bytes) -> None:
    """What an editor that writes in place does: same inode, new bytes."""
    if os.geteuid() != 0:
        path.chmod(0o644)  # root writes read-only files; anyone else chmods first
    with path.open("r+b") as handle:
        handle.write(data)
        handle.truncate()


# -- 11.15: unpacked trees -----------------------------------------------------------------------


@pytest.mark.parametrize("same_size", [False, True], ids=["longer", "same-size"])
def test_a_tree_edited_through_a_venv_hard_link_is_not_linked_into_later_venvs(
    world: World, tmp_path: Path, same_size: bool
) -> None:
    """issue 11.15: an in-place edit through venv A's hard link edits the cache's tree; the
    next install (venv B) must get the original bytes, not the edit."""
    first, second = tmp_path / "a", tmp_path / "b"
    _install(world, first)
    linked = _module(first)
    tree_file = _tree_file(world)
    assert linked.stat().st_ino == tree_file.stat().st_ino, "the install did not hard-link"
    tampered = b"VALUE = 'tampered'\n"
    if same_size:
        tampered = tampered.ljust(len(ORIGINAL), b"#")
    before = tree_file.stat().st_mtime_ns

    _edit_in_place(linked, tampered)

    assert tree_file.read_bytes() == tampered  # the attack is real: the tree changed with it
    # An in-place write sets the shared inode's mtime to "now", which is after the unpack (a
    # whole client run ago); this is what the same-size case relies on.
    assert tree_file.stat().st_mtime_ns != before
    _install(world, second)
    assert _module(second).read_bytes() == ORIGINAL
    assert _tree_file(world).read_bytes() == ORIGINAL  # the tree was unpacked again
    assert linked.read_bytes() == tampered  # venv A keeps its own edit (its inode)
    log = world.env.log_file.read_text("utf-8", "replace")
    assert "changed since it was unpacked" in log
    assert "storedpkg/__init__.py" in log


def test_cache_verify_reports_bit_rot_in_a_tree_and_repairs_it(
    world: World, tmp_path: Path
) -> None:
    """issue 11.15: bit rot (bytes change, size and mtime do not) is found by `cache verify`,
    which quarantines the tree, unpacks it again from the intact wheel, and exits 1."""
    _install(world, tmp_path / "a")
    tree_file = _tree_file(world)
    st = tree_file.stat()
    rotten = bytearray(tree_file.read_bytes())
    rotten[10] ^= 0x20
    _edit_in_place(tree_file, bytes(rotten))
    os.utime(tree_file, ns=(st.st_atime_ns, st.st_mtime_ns))  # bit rot leaves no trace

    result = world.satchel("cache", "verify")

    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 damaged unpacked trees" in result.stdout
    assert "storedpkg-1.0-py3-none-any.whl" in result.stdout
    assert "changed: storedpkg/__init__.py" in result.stdout
    assert "unpacked again from the stored wheel" in result.stdout
    assert _tree_file(world).read_bytes() == ORIGINAL
    quarantined = list((world.cache / "quarantine").glob("tree-*"))
    assert len(quarantined) == 1
    assert (quarantined[0] / "tree" / "storedpkg" / "__init__.py").read_bytes() == rotten
    again = world.json("cache", "verify")
    assert again["corrupt_trees"] == []
    assert again["trees_checked"] == 2
    _install(world, tmp_path / "b")
    assert _module(tmp_path / "b").read_bytes() == ORIGINAL


def test_cache_verify_quarantines_a_tree_whose_file_is_missing(
    world: World, tmp_path: Path
) -> None:
    """issue 11.15: a file deleted from a tree is damage too (the next install would lack it)."""
    _install(world, tmp_path / "a")
    tree_file = _tree_file(world)
    tree_file.unlink()

    value = json.loads(world.satchel("cache", "verify", "--json").stdout)

    (damaged,) = value["corrupt_trees"]
    assert damaged["files"] == ["storedpkg/__init__.py"]
    assert damaged["repaired"] is True
    assert tree_file.read_bytes() == ORIGINAL


# -- 11.16: the metadata database ----------------------------------------------------------------


def _damage(path: Path, how: str, seed: int) -> None:
    rng = random.Random(seed)
    size = path.stat().st_size
    if how == "deleted":
        path.unlink()
    elif how == "zero":
        path.write_bytes(b"")
    elif how == "garbage":
        path.write_bytes(rng.randbytes(size))
    else:  # mid-file: every page after the first overwritten, the header left intact
        with path.open("r+b") as handle:
            handle.seek(4096)
            handle.write(rng.randbytes(max(size - 4096, 4096)))


def _stop_and_checkpoint(world: World) -> Path:
    """Stop the daemon (a clean stop checkpoints the WAL into the database file)."""
    world.ok("stop")
    db = world.cache / "metadata.sqlite"
    assert db.stat().st_size > 4096
    assert not Path(f"{db}-wal").exists() or Path(f"{db}-wal").stat().st_size == 0
    return db


@pytest.mark.parametrize("how", ["deleted", "zero", "garbage", "mid-file"])
def test_a_damaged_database_is_moved_aside_and_rebuilt_so_offline_installs_work(
    world: World, tmp_path: Path, how: str
) -> None:
    """issue 11.16: deleted, truncated to 0, garbage, or damaged mid-file: the next start says
    so, keeps the damaged file, rebuilds from the store, and an offline install of a prefetched
    project works with the index gone."""
    seed = random.randrange(2**32)
    print(f"seed={seed}")
    world.ok("prefetch", "storedpkg")
    db = _stop_and_checkpoint(world)
    original = db.read_bytes()
    world.index.stop()
    _damage(db, how, seed)
    damaged = db.read_bytes() if db.exists() else None

    venv = tmp_path / "venv"
    value = world.json("install", "--offline", "--venv", str(venv), "storedpkg")

    assert sorted(value["installed"]) == ["storeddep 1.0", "storedpkg 1.0"]
    assert _module(venv).read_bytes() == ORIGINAL
    status = world.json("status")
    assert status["services"] == "ready"
    recovery = status["repaired"]
    assert "the cache database" in recovery
    assert "was damaged" in recovery
    assert "rebuilt from the stored files without the network" in recovery
    assert "2 files (2 with the index they came from)" in recovery
    if damaged is None:
        assert "(it is missing while the cache holds files); it was rebuilt" in recovery
    else:
        moved = Path(recovery.split("it was moved to ")[1].split(" and rebuilt")[0])
        assert moved.parent == world.cache / "quarantine"
        assert (moved / "metadata.sqlite").read_bytes() == damaged
        assert original != damaged
    shown = world.ok("status").stdout
    assert "repaired:" in shown
    assert "starting up" not in shown
    info = world.json("cache", "info")
    assert info["files"] == 2
    assert info["unattributed_files"] == 0
    assert [(i["index"], i["files"]) for i in info["indexes"]] == [("internal", 2)]
    log = world.env.log_file.read_text("utf-8", "replace")
    assert f"the cache database {db} is damaged" in log


def test_a_healthy_database_is_left_alone(world: World, tmp_path: Path) -> None:
    """issue 11.16: the start-up check finds nothing to do in an intact database."""
    world.ok("prefetch", "storedpkg")
    world.ok("stop")
    world.ok("install", "--offline", "--venv", str(tmp_path / "venv"), "storedpkg")
    status = world.json("status")
    assert status["repaired"] is None
    assert status["services"] == "ready"
    assert not (world.cache / "quarantine").exists() or not list(
        (world.cache / "quarantine").iterdir()
    )


def test_blobs_stored_before_provenance_records_get_them_and_survive_a_lost_database(
    world: World, tmp_path: Path
) -> None:
    """issue 11.16: a cache from before provenance records (no records, origins only in the
    database) gets its records at the next start, so losing the database after that still
    keeps every file attributed to its index."""
    world.ok("prefetch", "storedpkg")
    db = _stop_and_checkpoint(world)
    records = world.cache / "provenance"
    assert len(list(records.glob("*/*.json"))) == 2
    for record in records.glob("*/*.json"):
        record.unlink()
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM state WHERE key = 'provenance-backfilled'")
    conn.close()
    world.ok("cache", "info")  # starts the daemon: the records are written again
    db = _stop_and_checkpoint(world)
    assert len(list(records.glob("*/*.json"))) == 2
    world.index.stop()
    db.write_bytes(b"")

    value = world.json("install", "--offline", "--venv", str(tmp_path / "venv"), "storedpkg")

    assert sorted(value["installed"]) == ["storeddep 1.0", "storedpkg 1.0"]
    assert world.json("cache", "info")["unattributed_files"] == 0


def test_a_database_that_cannot_be_used_is_named_by_status_not_starting_up(
    world: World, tmp_path: Path
) -> None:
    """issue 11.16: a database this Satchel must not touch (a newer schema) stops the cache
    services; `status` says why instead of "starting up", and an install names the cause."""
    world.ok("prefetch", "storedpkg")
    db = _stop_and_checkpoint(world)
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA user_version = 999")
    conn.close()

    result = world.satchel("install", "--offline", "--venv", str(tmp_path / "v"), "storedpkg")

    assert result.returncode == 1
    assert "schema version 999" in result.stderr
    status = world.json("status")
    assert status["services"].startswith("failed: ")
    assert "schema version 999" in status["services"]
    assert status["local_index"].startswith("stopped")
    shown = world.ok("status").stdout
    assert "starting up" not in shown
    assert "schema version 999" in shown
