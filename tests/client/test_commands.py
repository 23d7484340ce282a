"""The hot commands (`ping`, `status`, `stop`, `--version`) against a real daemon."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from satchel.protocol import errors
from satchel.protocol.buildid import compute_build_id
from tests.client.clientenv import ClientEnv, wait_gone


@pytest.fixture
def client(tmp_path: Path) -> Iterator[ClientEnv]:
    env = ClientEnv(tmp_path)
    yield env
    env.cleanup()


@pytest.fixture
def running(client: ClientEnv) -> ClientEnv:
    assert client.satchel("ping").returncode == 0
    return client


def test_ping_prints_the_daemons_pid_and_the_round_trip_time(running: ClientEnv) -> None:
    result = running.satchel("ping")
    assert result.returncode == 0
    words = result.stdout.split()
    assert words[:3] == ["pong", "from", "satcheld"]
    assert words[-1] == "ms"
    assert float(words[-2]) > 0


def test_status_json_has_every_documented_field(running: ClientEnv) -> None:
    result = running.satchel("status", "--json")
    assert result.returncode == 0
    status = json.loads(result.stdout)
    for field in (
        "pid",
        "version",
        "build_id",
        "uptime",
        "socket",
        "cache_dir",
        "config_dir",
        "state_dir",
        "activation",
        "jobs",
        "previous_exit",
        "config_error",
    ):
        assert field in status
    assert status["socket"] == str(running.socket)
    assert status["build_id"] == compute_build_id()


def test_status_for_people_shows_paths_and_activation(running: ClientEnv) -> None:
    result = running.satchel("status")
    assert result.returncode == 0
    assert f"socket:        {running.socket}" in result.stdout
    assert "activation:    autostart" in result.stdout
    assert "jobs:          none" in result.stdout


def test_stop_waits_until_the_daemon_is_gone(running: ClientEnv) -> None:
    pid = running.daemon_pid()
    result = running.satchel("stop")
    assert result.returncode == 0
    assert result.stdout.strip() == f"stopped satcheld (pid {pid})"
    assert wait_gone(pid, 0.5)
    assert not running.socket.exists()
    after = running.satchel("--no-autostart", "ping")
    assert after.returncode == errors.EXIT_UNAVAILABLE


def test_version_shows_both_builds_when_the_daemon_runs(running: ClientEnv) -> None:
    result = running.satchel("--version")
    assert result.returncode == 0
    client_line, daemon_line = result.stdout.splitlines()
    assert client_line.endswith(f"(build {compute_build_id()})")
    assert daemon_line.startswith(f"satcheld 0.1.0 (build {compute_build_id()}, pid ")


def test_version_never_starts_a_daemon(client: ClientEnv) -> None:
    result = client.satchel("--version")
    assert result.returncode == 0
    assert "satcheld: not running" in result.stdout
    assert not client.log_file.exists()


def test_an_explicit_socket_option_reaches_a_daemon_elsewhere(
    client: ClientEnv, tmp_path: Path
) -> None:
    from tests.support.daemon import DaemonProcess

    other = f"{client.env['XDG_RUNTIME_DIR']}/other.sock"
    with DaemonProcess(client.env, socket=other) as daemon:
        result = client.satchel("--no-autostart", "--socket", other, "ping")
        assert result.returncode == 0, result.stderr
        assert f"(pid {daemon.pid})" in result.stdout
