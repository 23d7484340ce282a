"""The build id changes whenever the code of protocol, client or daemon changes."""

from __future__ import annotations

import os
import re
import sys
import types
from pathlib import Path

import pytest

from satchel.protocol import __version__
from satchel.protocol.buildid import build_id, compute_build_id


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake `satchel` namespace spanning two directories, as in an editable workspace."""
    for part in ("protocol", "client", "daemon"):
        root = tmp_path / ("a" if part == "protocol" else "b") / part
        root.mkdir(parents=True)
        (root / "__init__.py").write_text("")
    (tmp_path / "b" / "daemon" / "sub").mkdir()
    (tmp_path / "b" / "daemon" / "sub" / "mod.py").write_text("x = 1\n")
    namespace = types.ModuleType("satchel")
    namespace.__path__ = [str(tmp_path / "a"), str(tmp_path / "b")]
    monkeypatch.setitem(sys.modules, "satchel", namespace)
    return tmp_path


def test_format_is_version_plus_crc() -> None:
    assert re.fullmatch(re.escape(__version__) + r"\+[0-9a-f]{8}", build_id())


def test_cached_per_process() -> None:
    assert build_id() is build_id()


def test_stable_while_nothing_changes(tree: Path) -> None:
    assert compute_build_id() == compute_build_id()


def test_changes_when_a_module_is_edited(tree: Path) -> None:
    before = compute_build_id()
    module = tree / "b" / "daemon" / "sub" / "mod.py"
    st = module.stat()
    os.utime(module, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert compute_build_id() != before


def test_changes_when_a_module_is_added(tree: Path) -> None:
    before = compute_build_id()
    (tree / "a" / "protocol" / "new.py").write_text("")
    assert compute_build_id() != before


def test_changes_when_a_module_grows(tree: Path) -> None:
    module = tree / "a" / "protocol" / "__init__.py"
    before = compute_build_id()
    st = module.stat()
    module.write_text("# edited\n")
    os.utime(module, ns=(st.st_atime_ns, st.st_mtime_ns))  # same mtime, other size
    assert compute_build_id() != before


def test_ignores_bytecode_data_and_other_packages(tree: Path) -> None:
    before = compute_build_id()
    (tree / "a" / "protocol" / "__pycache__").mkdir()
    (tree / "a" / "protocol" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"")
    (tree / "a" / "protocol" / "notes.txt").write_text("hi")
    (tree / "a" / "other").mkdir()
    (tree / "a" / "other" / "y.py").write_text("")
    assert compute_build_id() == before
