"""Hostile wheel shapes that once ended in "internal error" (issue 11.10), end to end.

Each wheel is served by a real loopback index and installed by the real daemon into an
environment that already holds ``good``: the install must fail with ``invalid-wheel`` and a
message naming the file and the cause, the environment must be unchanged, nothing may land
outside, and the store must stay consistent (`Scene.assert_refused`).
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.reliability.harness import rig_for
from tests.reliability.test_hostile_packages import Scene, _hostile_wheel


@pytest.fixture
def scene(tmp_path: Path) -> Iterator[Scene]:
    for rig in rig_for(tmp_path):
        yield Scene(rig)


def _serve(scene: Scene, members: list[tuple[zipfile.ZipInfo | str, bytes]]) -> None:
    scene.rig.index.add(_hostile_wheel(scene.rig.root / "dist-evil", members))


def test_a_file_that_is_also_a_directory_is_refused(scene: Scene) -> None:
    """issue 11.10: ``evil/a`` is a file and ``evil/a/b`` needs it to be a directory."""
    _serve(scene, [("evil/a", b"file\n"), ("evil/a/b", b"below a file\n")])
    scene.assert_refused(mentions=("'evil/a' is both a file and a directory",))


def test_a_300_character_member_name_is_refused(scene: Scene) -> None:
    """issue 11.10: a path component longer than any filesystem allows (255 bytes)."""
    _serve(scene, [("evil/" + "x" * 300 + ".py", b"")])
    scene.assert_refused(mentions=("longer than 255 bytes",))


def test_a_member_path_longer_than_the_limit_is_refused(scene: Scene) -> None:
    """issue 11.10: every component short, the whole path far too long to install."""
    _serve(scene, [("evil/" + ("d" * 200 + "/") * 6 + "f.py", b"")])
    scene.assert_refused(mentions=("path longer than",))


def test_two_dist_info_directories_are_refused(scene: Scene) -> None:
    """issue 11.10: a second ``.dist-info`` (here of another project) beside the wheel's own."""
    _serve(scene, [("other-2.0.dist-info/METADATA", b"Metadata-Version: 2.1\nName: other\n")])
    scene.assert_refused(mentions=("exactly one .dist-info directory",))


def test_a_file_and_a_directory_meeting_once_installed_are_refused(scene: Scene) -> None:
    """issue 11.10: the clash only appears once ``.data/purelib`` is placed beside the root."""
    _serve(scene, [("evil/a", b"file\n"), ("evil-1.0.data/purelib/evil/a/b", b"below a file\n")])
    scene.assert_refused(mentions=("is both a file and a directory",))
