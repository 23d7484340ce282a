"""`treecheck` and `wheel.unpack_all`: a changed unpacked tree is found, and replaced when asked.

The installer checks each file's stamp as it links it and names the changed trees; `unpack_all`
with ``again`` then replaces them (tests/daemon/test_install_treecheck.py: through installs).

Real wheels unpacked into a real cache directory; the damage is done the way it happens: a write
through another hard link of the same inode, a file replaced, bit rot with its mtime restored.
The end-to-end version through a venv and a daemon is tests/security/test_storage.py.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import msgspec

from satchel.daemon.installing._manifest import UnpackedWheel
from satchel.daemon.installing.treecheck import changed_files, corrupt_files, verify_trees
from satchel.daemon.installing.wheel import load_unpacked, unpack_all
from tests.support.installing import write_through_link
from tests.support.wheels import build_wheel, file_sha256

CONTENT = b"VALUE = 'original'\n"


def _unpacked(tmp_path: Path) -> tuple[Path, str, UnpackedWheel]:
    wheel = build_wheel(tmp_path / "dist", "alpha", "1.0", files={"alpha/__init__.py": CONTENT})
    sha = file_sha256(wheel)
    (tree,) = unpack_all([(wheel, sha)], tmp_path / "unpacked")
    return wheel, sha, tree


def test_a_fresh_tree_is_intact_and_linking_it_elsewhere_keeps_it_so(tmp_path: Path) -> None:
    """issue 11.15: no false alarm: hard-linking (which changes ctime) is not a change."""
    _wheel, _sha, tree = _unpacked(tmp_path)
    os.link(tree.tree / "alpha" / "__init__.py", tmp_path / "linked.py")
    (tmp_path / "linked.py").unlink()

    assert changed_files(tree) == []
    assert corrupt_files(str(tree.tree), tree.manifest) == []


def test_a_same_size_edit_through_a_hard_link_is_seen_by_its_mtime(tmp_path: Path) -> None:
    """issue 11.15: same size, so only the mtime can tell; it is set to a later second
    explicitly, which is what the kernel does on any write after the unpack's clock tick."""
    wheel, sha, tree = _unpacked(tmp_path)
    path = tree.tree / "alpha" / "__init__.py"
    st = path.stat()
    write_through_link(tmp_path, path, CONTENT.replace(b"original", b"tampered"))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))

    assert changed_files(tree) == ["alpha/__init__.py"]
    (fresh,) = unpack_all([(wheel, sha)], tmp_path / "unpacked", again={sha})

    assert (fresh.tree / "alpha" / "__init__.py").read_bytes() == CONTENT
    assert (fresh.tree / "alpha" / "__init__.py").stat().st_ino != st.st_ino
    assert changed_files(fresh) == []
    assert (tmp_path / "venv-file.py").read_bytes() != CONTENT  # the edited env keeps its edit
    assert [p.name for p in (tmp_path / "unpacked").iterdir()] == [sha]  # nothing left aside


def test_a_tree_without_stamps_is_unpacked_again_once(tmp_path: Path) -> None:
    """issue 11.15: trees unpacked by an older Satchel carry no stamps: replaced, then trusted."""
    wheel, sha, tree = _unpacked(tmp_path)
    manifest_path = tree.directory / "manifest.json"
    old = msgspec.structs.replace(tree.manifest, stamps=())
    manifest_path.write_bytes(msgspec.json.encode(old))
    loaded = load_unpacked(tmp_path / "unpacked", sha)
    assert loaded is not None
    assert changed_files(loaded) == ["(no unpack-time stamps)"]

    (fresh,) = unpack_all([(wheel, sha)], tmp_path / "unpacked", again={sha})

    assert len(fresh.manifest.stamps) == len(fresh.manifest.files)
    assert changed_files(fresh) == []


def test_two_installs_finding_the_same_damage_replace_the_tree_once(tmp_path: Path) -> None:
    """issue 11.15: concurrent re-unpacks of one damaged tree both end with an intact tree."""
    wheel, sha, tree = _unpacked(tmp_path)
    write_through_link(tmp_path, tree.tree / "alpha" / "__init__.py", b"x = 'tampered, longer'\n")
    results: list[UnpackedWheel] = []
    errors: list[BaseException] = []

    def install() -> None:
        try:
            results.extend(unpack_all([(wheel, sha)], tmp_path / "unpacked", again={sha}))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=install) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert len(results) == 4
    assert all(changed_files(r) == [] for r in results)
    current = load_unpacked(tmp_path / "unpacked", sha)
    assert current is not None
    assert (current.tree / "alpha" / "__init__.py").read_bytes() == CONTENT
    assert [p.name for p in (tmp_path / "unpacked").iterdir()] == [sha]


def test_verify_trees_finds_bit_rot_the_stamps_cannot_see(tmp_path: Path) -> None:
    """issue 11.15: bit rot keeps size and mtime; only re-hashing finds it."""
    wheel, sha, tree = _unpacked(tmp_path)
    path = tree.tree / "alpha" / "__init__.py"
    st = path.stat()
    path.chmod(0o644)
    with path.open("r+b") as handle:
        handle.write(b"W")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert changed_files(tree) == []  # the limit of the cheap check
    quarantine = tmp_path / "quarantine"
    quarantine.mkdir()
    repaired: list[tuple[str, str]] = []

    def repair(digest: str, filename: str) -> bool:
        repaired.append((digest, filename))
        unpack_all([(wheel, digest)], tmp_path / "unpacked", filenames=[filename])
        return True

    report = verify_trees(tmp_path / "unpacked", quarantine, tmp_path, repair)

    (damage,) = report.damaged
    assert (damage.sha256, damage.filename, damage.files) == (
        sha,
        wheel.name,
        ("alpha/__init__.py",),
    )
    assert damage.repaired
    assert repaired == [(sha, wheel.name)]
    assert (tmp_path / damage.quarantined_as / "tree" / "alpha" / "__init__.py").read_bytes()[
        :1
    ] == b"W"
    assert path.read_bytes() == CONTENT
    assert verify_trees(tmp_path / "unpacked", quarantine, tmp_path, repair).damaged == []
