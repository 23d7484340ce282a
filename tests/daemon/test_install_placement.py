"""Large installs place directories and files with two threads (`_placement.place`).

The parallel path must leave exactly what the serial one leaves, and a failure on it must roll
back like any other. Both paths are exercised on small wheels by moving the threshold.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import pytest

from satchel.daemon.errors import InstallError
from satchel.daemon.installing import _placement
from satchel.daemon.installing._manifest import UnpackedWheel
from satchel.daemon.installing.installer import InstallItem, Scheme
from satchel.daemon.installing.venv import create_venv
from satchel.daemon.installing.wheel import unpack
from tests.support.installing import install
from tests.support.wheels import build_wheel

#: Nested packages, so directories of several depths are made level by level.
FILES = {f"deep_pkg/{a}/{b}/m{i}.py": f"X = {i}\n" for a in "abc" for b in "xy" for i in range(5)}


def _unpack(tmp_path: Path, name: str, version: str, files: dict[str, str]) -> UnpackedWheel:
    wheel = build_wheel(tmp_path / "wheels", name, version, files=files)
    sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
    return unpack(wheel, sha, tmp_path / "unpacked")


def _tree(root: Path) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs:
            found[Path(dirpath, name).relative_to(root).as_posix() + "/"] = b""
        for name in files:
            path = Path(dirpath, name)
            found[path.relative_to(root).as_posix()] = path.read_bytes()
    return {k: v for k, v in found.items() if not k.startswith(".satchel.lock")}


def _items(tmp_path: Path) -> list[InstallItem]:
    other = {f"other_pkg/sub{i}/__init__.py": "" for i in range(8)}
    return [
        InstallItem(_unpack(tmp_path, "deep-pkg", "1.0", FILES), requested=True),
        InstallItem(_unpack(tmp_path, "other-pkg", "2.0", other)),
    ]


def test_parallel_placement_installs_the_same_tree_as_serial(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    items = _items(tmp_path)
    serial = create_venv(tmp_path / "serial", sys.executable)
    parallel = create_venv(tmp_path / "parallel", sys.executable)
    serial_report = install(serial, items)
    monkeypatch.setattr(_placement, "PARALLEL_PLACE_MIN", 0)
    parallel_report = install(parallel, items)

    assert _tree(parallel.purelib) == _tree(serial.purelib)
    assert parallel_report.files == serial_report.files
    assert (parallel.purelib / "deep_pkg" / "c" / "y" / "m4.py").read_text() == "X = 4\n"


def test_a_failure_on_the_parallel_path_rolls_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scheme: Scheme = create_venv(tmp_path / "venv", sys.executable)
    install(scheme, [InstallItem(_unpack(tmp_path, "deep-pkg", "0.9", {"deep_pkg/a.py": ""}))])
    before = _tree(scheme.data)
    items = _items(tmp_path)
    (items[0].unpacked.tree / "deep_pkg" / "b" / "x" / "m3.py").unlink()  # lost from the cache
    monkeypatch.setattr(_placement, "PARALLEL_PLACE_MIN", 0)

    with pytest.raises(InstallError, match="rolled back"):
        install(scheme, items)

    assert _tree(scheme.data) == before
    assert not list(scheme.data.glob(".satchel-trash-*"))
