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
    assert re.fullmatch(re.escape(__version__) + r"\+[0-9a-f]{16}", build_id())


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


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A `satchel` namespace as a wheel install lays it out: one directory, the three parts
    under it, and each part's ``.dist-info/RECORD`` beside it in site-packages."""
    site = tmp_path / "site-packages"
    for part in ("protocol", "client", "daemon"):
        package = site / "satchel" / part
        package.mkdir(parents=True)
        (package / "__init__.py").write_text(f"# {part}\n")
        info = site / f"satchel_{part}-{__version__}.dist-info"
        info.mkdir()
        (info / "RECORD").write_text(
            f"satchel/{part}/__init__.py,sha256={part[0] * 43},10\n"
            f"satchel_{part}-{__version__}.dist-info/RECORD,,\n"
        )
    namespace = types.ModuleType("satchel")
    namespace.__path__ = [str(site / "satchel")]
    monkeypatch.setitem(sys.modules, "satchel", namespace)
    return site


def test_an_installed_wheel_changes_id_when_its_record_changes(installed: Path) -> None:
    before = compute_build_id()
    assert compute_build_id() == before
    record = installed / f"satchel_daemon-{__version__}.dist-info" / "RECORD"
    record.write_text(record.read_text().replace("d" * 43, "e" * 43))  # a reinstall, new code
    assert compute_build_id() != before


def test_an_installed_wheel_is_known_by_its_record_not_by_a_stat_of_each_file(
    installed: Path,
) -> None:
    # An installed wheel changes only by an install, which rewrites RECORD: three reads, no
    # walk of every file at every client start.
    before = compute_build_id()
    module = installed / "satchel" / "client" / "__init__.py"
    st = module.stat()
    os.utime(module, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert compute_build_id() == before


def test_record_lines_other_than_the_parts_sources_do_not_count(installed: Path) -> None:
    before = compute_build_id()
    record = installed / f"satchel_client-{__version__}.dist-info" / "RECORD"
    with record.open("a") as out:
        out.write("satchel/client/__pycache__/__init__.cpython-311.pyc,,\n")
        out.write("../../../bin/satchel,sha256=x,1\n")
    assert compute_build_id() == before


def test_without_a_record_an_installed_layout_is_walked_file_by_file(installed: Path) -> None:
    (installed / f"satchel_protocol-{__version__}.dist-info" / "RECORD").unlink()
    before = compute_build_id()
    module = installed / "satchel" / "client" / "__init__.py"
    st = module.stat()
    os.utime(module, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert compute_build_id() != before


def test_a_one_byte_edit_of_an_editable_checkout_always_changes_the_id(tree: Path) -> None:
    # The hash is the walk's text modulo a prime that divides no power of 256: a change of one
    # byte (here the last digit of an mtime) cannot leave it equal.
    module = tree / "b" / "daemon" / "sub" / "mod.py"
    st = module.stat()
    seen = {compute_build_id()}
    for step in range(1, 10):
        os.utime(module, ns=(st.st_atime_ns, st.st_mtime_ns + step))
        seen.add(compute_build_id())
    assert len(seen) == 10
