"""satcheld's command line and its start-up reporting."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.daemon import DaemonProcess, call, isolated_env


def _satcheld(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "satchel.daemon.process.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_unknown_log_level_is_a_usage_error(tmp_path: Path) -> None:
    result = _satcheld(isolated_env(tmp_path), "--log-level", "chatty")
    assert result.returncode == 2
    assert "unknown log level 'chatty'" in result.stderr


def test_unknown_log_level_in_the_environment_is_a_usage_error(tmp_path: Path) -> None:
    env = isolated_env(tmp_path)
    env["SATCHEL_LOG_LEVEL"] = "loud"
    result = _satcheld(env)
    assert result.returncode == 2
    assert "SATCHEL_LOG_LEVEL: unknown log level 'loud'" in result.stderr


def test_negative_idle_timeout_is_a_usage_error(tmp_path: Path) -> None:
    result = _satcheld(isolated_env(tmp_path), "--idle-timeout", "-1")
    assert result.returncode == 2
    assert "--idle-timeout must be >= 0" in result.stderr


def test_closed_notify_fd_is_a_usage_error(tmp_path: Path) -> None:
    result = _satcheld(isolated_env(tmp_path), "--notify-fd", "97")
    assert result.returncode == 2
    assert "--notify-fd 97" in result.stderr


def test_socket_option_chooses_the_socket(tmp_path: Path) -> None:
    env = isolated_env(tmp_path)
    custom = os.path.join(env["XDG_RUNTIME_DIR"], "custom", "d.sock")
    with DaemonProcess(env, socket=custom) as daemon:
        assert call(custom, "status")["socket"] == custom
        assert not os.path.exists(os.path.join(env["XDG_RUNTIME_DIR"], "satchel", "satchel.sock"))
        assert os.stat(os.path.dirname(custom)).st_mode & 0o777 == 0o700
    assert daemon.returncode == 0


def test_satchel_log_level_env_enables_debug_output(tmp_path: Path) -> None:
    env = isolated_env(tmp_path)
    env["SATCHEL_LOG_LEVEL"] = "debug"
    with DaemonProcess(env) as daemon:
        call(daemon.socket, "ping")
    assert " DEBUG " in daemon.stderr()


@pytest.mark.skipif(shutil.which("satcheld") is None, reason="satcheld script not installed")
def test_the_console_script_runs_the_daemon(tmp_path: Path) -> None:
    env = isolated_env(tmp_path)
    script = shutil.which("satcheld", path=env["PATH"])
    assert script is not None
    result = subprocess.run([script, "--version"], env=env, capture_output=True, text=True)
    assert result.returncode == 0
    assert result.stdout.startswith("satcheld ")
