"""The documented daily-use install (docs/client.md) puts both commands on PATH and they run.

This performs the exact `uv tool install` invocation the docs give, into a temporary tool
directory and bin directory, from this checkout, and runs the installed commands from there.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "client.md"


def documented_install_command() -> list[str]:
    """The `uv tool install ...` line from docs/client.md, with <checkout> filled in."""
    for line in DOC.read_text().splitlines():
        line = line.strip()
        if line.startswith("uv tool install "):
            return line.replace("<checkout>", str(REPO)).split()
    raise AssertionError("docs/client.md shows no `uv tool install` command")


class Installed:
    def __init__(self, tools: Path, bin_dir: Path, env: dict[str, str]) -> None:
        self.tools = tools
        self.bin_dir = bin_dir
        self.env = env


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    uv = shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not on PATH")
    root = tmp_path_factory.mktemp("tool-install")
    (root / "run").mkdir(mode=0o700)
    env = {
        **os.environ,
        "UV_TOOL_DIR": str(root / "tools"),
        "UV_TOOL_BIN_DIR": str(root / "bin"),
        "XDG_RUNTIME_DIR": str(root / "run"),
        "XDG_STATE_HOME": str(root / "state"),
        "SATCHEL_NO_AUTOSTART": "1",
    }
    command = documented_install_command()
    command[0] = uv
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=280)
    assert done.returncode == 0, done.stderr
    return Installed(root / "tools", root / "bin", env)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_uv_tool_install_puts_both_commands_in_the_bin_dir(installed: Installed) -> None:
    assert (installed.bin_dir / "satchel").exists()
    assert (installed.bin_dir / "satcheld").exists()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_installed_satchel_reports_its_version(installed: Installed) -> None:
    version = subprocess.run(
        [str(installed.bin_dir / "satchel"), "--version"],
        env=installed.env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert version.returncode == 0, version.stderr
    assert version.stdout.startswith("satchel 0.")
    assert "satcheld: not running" in version.stdout


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_installed_satcheld_runs(installed: Installed) -> None:
    daemon_help = subprocess.run(
        [str(installed.bin_dir / "satcheld"), "--help"],
        env=installed.env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert daemon_help.returncode == 0, daemon_help.stderr
    assert "--notify-fd" in daemon_help.stdout


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_installed_client_is_byte_compiled(installed: Installed) -> None:
    compiled = list(installed.tools.rglob("satchel/client/__pycache__/main.*.pyc"))
    assert compiled, "the client was installed without bytecode"
