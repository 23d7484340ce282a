"""The installer checks each unpacked file's stamp as it links it (issue 11.15).

An unpacked tree is hard-linked into every environment, so a file edited in place through one
environment's link is the tree's file. The check is folded into the linking pass
(`satchel.daemon.installing._placement`): a changed file is never placed, the install is rolled
back, and `TreeChanged` names the tree and the member so that the caller unpacks it again.
Real wheels, real trees, real hard links; the damage is a write through another link of the
same inode, as an editor writing in place makes it. Both placement paths (serial, threads) run.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest

from satchel.daemon.installing import _placement
from satchel.daemon.installing._manifest import UnpackedWheel
from satchel.daemon.installing.installer import InstallItem, Scheme, TreeChanged
from satchel.daemon.installing.venv import create_venv
from satchel.daemon.installing.wheel import load_unpacked, unpack_all
from satchel.daemon.requests import environments
from tests.support.installing import install, journals_of, write_through_link
from tests.support.wheels import build_wheel

FILES = {f"pkg/sub{i}/m{j}.py": f"X = {i * 10 + j}\n" for i in range(4) for j in range(5)}
EDITED = "pkg/sub2/m3.py"


def _unpack(tmp_path: Path, name: str = "pkg", files: dict[str, str] = FILES) -> UnpackedWheel:
    wheel = build_wheel(tmp_path / "wheels", name, "1.0", files=files)
    sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
    (tree,) = unpack_all([(wheel, sha)], tmp_path / "unpacked")
    return tree


def _listing(root: Path) -> list[str]:
    found = (str(p.relative_to(root)) for p in root.rglob("*") if ".satchel.lock" not in p.name)
    return sorted(found)


@pytest.fixture(params=["serial", "threads"])
def placement(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "threads":
        monkeypatch.setattr(_placement, "PARALLEL_PLACE_MIN", 0)
    return str(request.param)


def test_an_intact_tree_is_linked(tmp_path: Path, placement: str) -> None:
    """issue 11.15: no false alarm: an untouched tree installs (and linking it changes ctime)."""
    tree = _unpack(tmp_path)
    scheme = create_venv(tmp_path / "a", sys.executable)
    install(scheme, [InstallItem(tree)], link_mode="hardlink")
    again = create_venv(tmp_path / "b", sys.executable)

    report = install(again, [InstallItem(tree)], link_mode="hardlink")

    assert report.link_modes == ("hardlink",)
    linked = again.purelib / EDITED
    assert linked.stat().st_ino == (tree.tree / EDITED).stat().st_ino


def test_a_file_edited_through_a_link_is_not_linked_and_the_install_rolls_back(
    tmp_path: Path, placement: str
) -> None:
    """issue 11.15: the edited member is named, nothing of the install stays, no journal left."""
    other = _unpack(tmp_path, "other", {"other/__init__.py": "Y = 1\n"})
    tree = _unpack(tmp_path)
    write_through_link(tmp_path, tree.tree / EDITED, b"X = 'tampered, and longer'\n")
    scheme = create_venv(tmp_path / "venv", sys.executable)
    before = _listing(scheme.data)

    with pytest.raises(TreeChanged, match="changed since they were unpacked") as caught:
        install(scheme, [InstallItem(other), InstallItem(tree)], link_mode="hardlink")

    assert caught.value.changed == {tree.sha256: [EDITED]}
    assert EDITED in str(caught.value)
    assert _listing(scheme.data) == before
    assert list(journals_of(scheme).iterdir()) == []


def test_a_same_size_edit_is_seen_by_its_mtime(tmp_path: Path, placement: str) -> None:
    """issue 11.15: same size, so only the mtime tells (set a second later, as any write after
    the unpack's clock tick does)."""
    tree = _unpack(tmp_path)
    path = tree.tree / EDITED
    st = path.stat()
    write_through_link(tmp_path, path, FILES[EDITED].replace("3", "9").encode())
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    scheme = create_venv(tmp_path / "venv", sys.executable)

    with pytest.raises(TreeChanged) as caught:
        install(scheme, [InstallItem(tree)], link_mode="hardlink")

    assert caught.value.changed == {tree.sha256: [EDITED]}


def test_a_changed_tree_unpacked_again_installs_the_original_bytes(
    tmp_path: Path, placement: str
) -> None:
    """issue 11.15: what the daemon does on `TreeChanged`: `unpack_all(again=...)`, install."""
    tree = _unpack(tmp_path)
    edited = write_through_link(tmp_path, tree.tree / EDITED, b"X = 'tampered'\n")
    scheme = create_venv(tmp_path / "venv", sys.executable)
    with pytest.raises(TreeChanged) as caught:
        install(scheme, [InstallItem(tree)], link_mode="hardlink")
    wheel = next((tmp_path / "wheels").glob("pkg-*.whl"))

    (fresh,) = unpack_all([(wheel, tree.sha256)], tmp_path / "unpacked", again=caught.value.changed)
    install(scheme, [InstallItem(fresh)], link_mode="hardlink")

    assert (scheme.purelib / EDITED).read_text() == FILES[EDITED]
    assert edited.read_bytes() == b"X = 'tampered'\n"  # its own inode


def test_a_missing_file_counts_as_changed(tmp_path: Path, placement: str) -> None:
    """issue 11.15: a file gone from the tree (or its whole directory) is a changed tree."""
    tree = _unpack(tmp_path)
    for name in ("m0.py", "m1.py", "m2.py", "m3.py", "m4.py"):
        (tree.tree / "pkg" / "sub1" / name).unlink()
    (tree.tree / "pkg" / "sub1").rmdir()
    scheme = create_venv(tmp_path / "venv", sys.executable)

    with pytest.raises(TreeChanged) as caught:
        install(scheme, [InstallItem(tree)], link_mode="hardlink")

    assert caught.value.changed[tree.sha256][0].startswith("pkg/sub1/")
    assert not (scheme.purelib / "pkg").exists()


def test_a_tree_without_stamps_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    """issue 11.15: a tree unpacked by an older Satchel cannot be checked cheaply: the install
    asks for it to be unpacked again, before it writes a journal or a file."""
    tree = _unpack(tmp_path)
    old = msgspec.structs.replace(tree.manifest, stamps=())
    (tree.directory / "manifest.json").write_bytes(msgspec.json.encode(old))
    loaded = load_unpacked(tmp_path / "unpacked", tree.sha256)
    assert loaded is not None
    scheme = create_venv(tmp_path / "venv", sys.executable)
    before = _listing(scheme.data)

    with pytest.raises(TreeChanged) as caught:
        install(scheme, [InstallItem(loaded)], link_mode="hardlink")

    assert caught.value.changed == {tree.sha256: [_placement.NO_STAMPS]}
    assert _listing(scheme.data) == before
    assert not journals_of(scheme).exists() or list(journals_of(scheme).iterdir()) == []


def test_a_changed_script_is_not_rewritten_into_the_environment(tmp_path: Path) -> None:
    """issue 11.15: a ``.data/scripts`` file is read (its shebang rewritten), not linked: its
    stamp is checked all the same."""
    script = "#!python\nprint('original')\n"
    wheel = build_wheel(
        tmp_path / "wheels",
        "tool",
        "1.0",
        files={"tool/__init__.py": ""},
        data={"scripts": {"tool-run": script}},
    )
    sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
    (tree,) = unpack_all([(wheel, sha)], tmp_path / "unpacked")
    member = next(f.member for f in tree.manifest.files if f.scheme == "scripts")
    write_through_link(tmp_path, tree.tree / member, b"#!python\nprint('tampered!')\n")
    scheme: Scheme = create_venv(tmp_path / "venv", sys.executable)

    with pytest.raises(TreeChanged) as caught:
        install(scheme, [InstallItem(tree)], link_mode="hardlink")

    assert caught.value.changed == {sha: [member]}
    assert not (scheme.scripts / "tool-run").exists()


@pytest.mark.parametrize("damage", ["deleted", "fifo"])
def test_a_script_gone_or_replaced_is_a_changed_tree(tmp_path: Path, damage: str) -> None:
    """issue 11.15: a ``.data/scripts`` file deleted from the tree, replaced by a FIFO (which
    an open would wait on for ever) is a changed tree (unpacked again by the daemon), never an
    internal error or a hang."""
    wheel = build_wheel(
        tmp_path / "wheels",
        "tool",
        "1.0",
        files={"tool/__init__.py": ""},
        data={"scripts": {"tool-run": "#!python\nprint('original')\n"}},
    )
    sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
    (tree,) = unpack_all([(wheel, sha)], tmp_path / "unpacked")
    member = next(f.member for f in tree.manifest.files if f.scheme == "scripts")
    path = tree.tree / member
    path.unlink()
    if damage == "fifo":
        os.mkfifo(path)
    scheme: Scheme = create_venv(tmp_path / "venv", sys.executable)

    with pytest.raises(TreeChanged) as caught:
        install(scheme, [InstallItem(tree)], link_mode="hardlink")

    assert member in caught.value.changed[sha]
    assert not (scheme.scripts / "tool-run").exists()


def test_a_tree_damaged_again_at_every_retry_is_refused_and_nothing_is_installed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """issue 11.15: the daemon unpacks a changed tree again and retries, at most
    `_TREE_RETRIES` times: a tree edited again after every unpack (an editor saving in place
    in a loop) ends in `TreeChanged` naming it, the environment as it was, no journal left."""
    wheel = build_wheel(tmp_path / "wheels", "pkg", "1.0", files=FILES)
    sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
    unpacks: list[int] = []

    def unpack_then_damage(*args: Any, **kwargs: Any) -> list[UnpackedWheel]:
        trees = unpack_all(*args, **kwargs)
        unpacks.append(len(trees))
        edits = tmp_path / f"edit{len(unpacks)}"
        edits.mkdir()
        write_through_link(edits, trees[0].tree / EDITED, b"X = 'tampered again'\n")
        return trees

    monkeypatch.setattr(environments, "unpack_all", unpack_then_damage)
    scheme = create_venv(tmp_path / "venv", sys.executable)
    before = _listing(scheme.data)

    with pytest.raises(TreeChanged) as caught:
        environments._unpack_and_install(
            scheme,
            [(wheel, sha)],
            [wheel.name],
            [True],
            tmp_path / "unpacked",
            journals_of(scheme),
            link_mode="hardlink",
            compile_bytecode=False,
        )

    assert unpacks == [1] * (environments._TREE_RETRIES + 1)
    assert caught.value.changed == {sha: [EDITED]}
    assert _listing(scheme.data) == before
    assert list(journals_of(scheme).iterdir()) == []
