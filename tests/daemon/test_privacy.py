"""`privacy.tighten`: trees left readable by others are made private once, symlinks untouched."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest

from satchel.daemon.process._privacy import MARKER, tighten


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def legacy_tree(root: Path) -> dict[str, Path]:
    """The layout an earlier version wrote: 0755 directories, 0644/0444/0555 files."""
    paths = {
        "dir": root / "unpacked" / "abc" / "tree",
        "file": root / "unpacked" / "abc" / "tree" / "mod.py",
        "exe": root / "unpacked" / "abc" / "tree" / "tool",
        "db": root / "metadata.sqlite",
        "outside": root.parent / "outside.txt",
        "link": root / "link-to-outside",
    }
    paths["dir"].mkdir(parents=True)
    for key, file_mode in (("file", 0o444), ("exe", 0o555), ("db", 0o644), ("outside", 0o644)):
        paths[key].write_text(key)
        paths[key].chmod(file_mode)
    paths["link"].symlink_to(paths["outside"])
    for directory in (root, root / "unpacked", root / "unpacked" / "abc", paths["dir"]):
        directory.chmod(0o755)
    return paths


def test_a_legacy_tree_loses_group_and_other_bits_and_keeps_owner_bits(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root, state = tmp_path / "cache", tmp_path / "state"
    state.mkdir()
    paths = legacy_tree(root)
    with caplog.at_level(logging.WARNING):
        results = tighten([root], state)
    assert (mode(root), mode(paths["dir"])) == (0o700, 0o700)
    assert (mode(paths["file"]), mode(paths["exe"]), mode(paths["db"])) == (0o400, 0o500, 0o600)
    assert mode(paths["outside"]) == 0o644  # reached only through a symlink: never followed
    assert results[0].directories == 4 and results[0].files == 3
    assert f"made {root} private" in caplog.text
    assert (state / MARKER).exists()


def test_with_the_marker_and_private_roots_nothing_is_walked(tmp_path: Path) -> None:
    root, state = tmp_path / "cache", tmp_path / "state"
    state.mkdir()
    paths = legacy_tree(root)
    tighten([root], state)
    paths["file"].chmod(0o444)  # deep inside a private root: not looked at again
    assert tighten([root], state) == []
    assert mode(paths["file"]) == 0o444
    root.chmod(0o755)  # a loose root means someone loosened things: walk again
    assert tighten([root], state)[0].files == 1
    assert mode(paths["file"]) == 0o400


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create another user's file")
def test_entries_of_another_user_are_counted_not_changed(tmp_path: Path) -> None:
    root, state = tmp_path / "cache", tmp_path / "state"
    state.mkdir()
    paths = legacy_tree(root)
    os.chown(paths["db"], 65534, 65534)
    result = tighten([root], state)[0]
    assert result.foreign == 1
    assert mode(paths["db"]) == 0o644
