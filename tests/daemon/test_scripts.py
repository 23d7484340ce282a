"""Launchers match pypa/installer byte for byte; shebangs survive long paths and spaces."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Literal

import pytest
from installer.scripts import Script

from satchel.daemon.installing._scripts import (
    EntryPoint,
    build_shebang,
    launcher,
    parse_entry_points,
    rewrite_shebang,
)


def test_short_interpreter_gets_a_plain_shebang() -> None:
    assert build_shebang("/venv/bin/python") == b"#!/venv/bin/python"


@pytest.mark.parametrize("interpreter", ["/with space/bin/python", "/" + "x" * 130 + "/python"])
def test_unusable_shebang_uses_the_sh_exec_trick(interpreter: str) -> None:
    shebang = build_shebang(interpreter)
    assert shebang.startswith(b"#!/bin/sh\n'''exec' ")
    assert b'"$0" "$@"' in shebang


@pytest.mark.parametrize("section", ["console", "gui"])
@pytest.mark.parametrize("interpreter", ["/v/bin/python", "/long path/" + "y" * 130 + "/python"])
def test_launcher_is_identical_to_pypa_installer(
    section: Literal["console", "gui"], interpreter: str
) -> None:
    entry = EntryPoint("tool", "pkg.cli", "main.run", section == "gui")
    _name, expected = Script("tool", "pkg.cli", "main.run", section).generate(interpreter, "posix")
    assert launcher(entry, interpreter) == expected


def test_sh_trick_launcher_really_runs(tmp_path: Path) -> None:
    odd = tmp_path / ("dir with spaces " + "z" * 120)
    odd.mkdir()
    python = odd / "python"
    python.symlink_to(sys.executable)
    (tmp_path / "hello_mod.py").write_text("def main():\n    print('hello from launcher')\n")
    script = tmp_path / "hello"
    script.write_bytes(launcher(EntryPoint("hello", "hello_mod", "main", False), str(python)))
    script.chmod(0o755)
    result = subprocess.run(
        [str(script)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=True,
        env={"PYTHONPATH": str(tmp_path)},
    )
    assert result.stdout == "hello from launcher\n"


def test_python_shebang_is_rewritten() -> None:
    assert rewrite_shebang(b"#!python\nprint(1)\n", "/v/bin/python") == (
        b"#!/v/bin/python\nprint(1)\n"
    )
    assert rewrite_shebang(b"#!pythonw -u\nx\n", "/v/bin/python") == b"#!/v/bin/python\nx\n"


def test_other_shebangs_are_left_alone() -> None:
    assert rewrite_shebang(b"#!/bin/sh\necho hi\n", "/v/bin/python") is None


def test_entry_points_are_parsed_per_section() -> None:
    text = "[console_scripts]\ncli = pkg.cli:main [extra]\n[gui_scripts]\ngui = pkg:app.run\n"
    assert parse_entry_points(text) == [
        EntryPoint("cli", "pkg.cli", "main", False),
        EntryPoint("gui", "pkg", "app.run", True),
    ]


@pytest.mark.parametrize(
    "line", ["../up = pkg:main", "a/b = pkg:main", ".hidden = pkg:main", "x = pkg:main; rm -rf"]
)
def test_dangerous_entry_points_are_refused(line: str) -> None:
    with pytest.raises(ValueError, match="script"):
        parse_entry_points(f"[console_scripts]\n{line}\n")
