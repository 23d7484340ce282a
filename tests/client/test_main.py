"""The `satchel` command line without a daemon: help, usage errors, and the not-running path.

Every test runs the real console script (`<venv>/bin/satchel`) in a subprocess with private XDG
directories, so nothing here can reach the user's daemon.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from satchel.client import main as client_main
from satchel.protocol import errors

SATCHEL = str(Path(sys.executable).parent / "satchel")


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    environ = {
        k: v for k, v in os.environ.items() if k not in ("SATCHEL_SOCKET", "SATCHEL_NO_AUTOSTART")
    }
    environ.update(
        XDG_RUNTIME_DIR=str(runtime),
        XDG_STATE_HOME=str(tmp_path / "state"),
        XDG_CACHE_HOME=str(tmp_path / "cache"),
        XDG_CONFIG_HOME=str(tmp_path / "config"),
    )
    return environ


def satchel(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SATCHEL, *args], env=env, capture_output=True, text=True, timeout=30, check=False
    )


def test_help_lists_every_command_and_every_exit_status(env: dict[str, str]) -> None:
    result = satchel(env, "--help")
    assert result.returncode == 0
    for command in ("ping", "status", "stop", "service"):
        assert f"\n  {command} " in result.stdout
    for status, _meaning in client_main.exit_status_table():
        assert f"\n  {status:<4}" in result.stdout
    for code in errors.EXIT_STATUS:
        assert code in result.stdout


def test_exit_status_table_matches_the_protocol_mapping() -> None:
    table = dict(client_main.exit_status_table())
    for code, status in errors.EXIT_STATUS.items():
        assert code in table[status]
    assert set(table) == {
        errors.EXIT_OK,
        errors.EXIT_FAILURE,
        errors.EXIT_USAGE,
        errors.EXIT_UNAVAILABLE,
        errors.EXIT_PROTOCOL,
        errors.EXIT_OFFLINE,
        errors.EXIT_RESOLUTION,
        errors.EXIT_CANCELLED,
    }


def test_no_command_prints_help_and_exits_with_usage_status(env: dict[str, str]) -> None:
    result = satchel(env)
    assert result.returncode == errors.EXIT_USAGE
    assert "commands:" in result.stderr


@pytest.mark.parametrize(
    "args",
    [["frobnicate"], ["--frob", "ping"], ["ping", "extra"], ["stop", "--json"], ["--socket"]],
)
def test_a_bad_command_line_exits_2_with_the_usage_line(
    env: dict[str, str], args: list[str]
) -> None:
    result = satchel(env, *args)
    assert result.returncode == errors.EXIT_USAGE
    assert result.stderr.startswith("usage: satchel")


def test_without_autostart_a_missing_daemon_exits_3_and_says_how_to_start_it(
    env: dict[str, str],
) -> None:
    result = satchel(env, "--no-autostart", "ping")
    assert result.returncode == errors.EXIT_UNAVAILABLE
    assert "satcheld is not running" in result.stderr
    assert "satchel service install" in result.stderr
    assert "systemctl --user start satchel.socket" in result.stderr


def test_the_environment_variable_disables_autostart_too(env: dict[str, str]) -> None:
    result = satchel({**env, "SATCHEL_NO_AUTOSTART": "1"}, "status")
    assert result.returncode == errors.EXIT_UNAVAILABLE
    assert not (Path(env["XDG_STATE_HOME"]) / "satchel" / "satcheld.log").exists()


def test_version_reports_the_client_build_even_without_a_daemon(env: dict[str, str]) -> None:
    from satchel.protocol.buildid import compute_build_id

    result = satchel({**env, "SATCHEL_NO_AUTOSTART": "1"}, "--version")
    assert result.returncode == 0
    first, second = result.stdout.splitlines()
    assert first == f"satchel {client_version()} (build {compute_build_id()})"
    assert second.startswith("satcheld: not running")


def test_stop_without_a_daemon_is_not_an_error_and_starts_nothing(env: dict[str, str]) -> None:
    result = satchel(env, "stop")
    assert result.returncode == 0
    assert result.stdout.strip() == "satcheld is not running"
    assert not (Path(env["XDG_STATE_HOME"]) / "satchel" / "satcheld.log").exists()


def test_socket_option_names_the_socket_in_the_error(env: dict[str, str], tmp_path: Path) -> None:
    path = tmp_path / "elsewhere.sock"
    result = satchel(env, "--no-autostart", f"--socket={path}", "ping")
    assert result.returncode == errors.EXIT_UNAVAILABLE
    assert str(path) in result.stderr


def client_version() -> str:
    from satchel.protocol.version import __version__

    return __version__
