"""Fast venv creation: the result is a real venv for the interpreter, pip and uv."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from satchel.daemon.errors import InstallError
from satchel.daemon.installing.venv import create_venv, query_interpreter


def _python(venv: Path, code: str) -> str:
    result = subprocess.run(
        [str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True, check=True
    )
    return result.stdout.strip()


def test_interpreter_runs_inside_the_venv(tmp_path: Path) -> None:
    scheme = create_venv(tmp_path / "env", sys.executable)
    venv = tmp_path / "env"
    found = json.loads(
        _python(
            venv,
            "import json, sys, sysconfig; print(json.dumps([sys.prefix, sys.base_prefix,"
            " sysconfig.get_path('purelib'), sys.flags.no_site]))",
        )
    )
    assert found[0] == str(venv)
    assert found[1] != str(venv)
    assert found[2] == str(scheme.purelib)
    assert scheme.interpreter == venv / "bin" / "python"


def test_layout_matches_the_stdlib_venv(tmp_path: Path) -> None:
    create_venv(tmp_path / "env", sys.executable)
    venv = tmp_path / "env"
    cfg = (venv / "pyvenv.cfg").read_text()
    info = query_interpreter(sys.executable)
    assert f"version = {info.version}\n" in cfg
    assert "include-system-site-packages = false\n" in cfg
    assert cfg.startswith(f"home = {Path(info.base_executable).parent}\n")
    for alias in ("python", "python3", f"python{info.minor}"):
        assert (venv / "bin" / alias).is_symlink()
    assert (venv / "lib" / f"python{info.minor}" / "site-packages").is_dir()
    assert not (venv / "bin" / "pip").exists()


def test_activate_script_points_at_the_venv(tmp_path: Path) -> None:
    create_venv(tmp_path / "env", sys.executable)
    venv = tmp_path / "env"
    result = subprocess.run(
        ["bash", "-c", f". {venv}/bin/activate && echo $VIRTUAL_ENV && command -v python"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.split() == [str(venv), str(venv / "bin" / "python")]
    assert "__VENV" not in (venv / "bin" / "activate.fish").read_text()


def test_refuses_to_overwrite_a_non_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "project").mkdir()
    (tmp_path / "project" / "keep.txt").write_text("mine")
    with pytest.raises(InstallError, match="not an empty directory"):
        create_venv(tmp_path / "project", sys.executable)
    assert (tmp_path / "project" / "keep.txt").read_text() == "mine"


def test_unknown_interpreter_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InstallError, match="no interpreter"):
        create_venv(tmp_path / "env", tmp_path / "no-such-python")


def test_interpreter_query_is_cached(tmp_path: Path) -> None:
    assert query_interpreter(sys.executable) is query_interpreter(sys.executable)


def test_real_pip_accepts_the_venv(tmp_path: Path) -> None:
    create_venv(tmp_path / "env", sys.executable)
    result = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(tmp_path / "env"), "list", "--format=json"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []


@pytest.mark.skipif(shutil.which("uv") is None, reason="uv is not installed")
def test_uv_recognises_the_venv(tmp_path: Path) -> None:
    create_venv(tmp_path / "env", sys.executable)
    result = subprocess.run(
        ["uv", "pip", "list", "--offline", "--format=json", "--python", str(tmp_path / "env")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []
