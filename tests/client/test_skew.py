"""Version skew: a daemon of another build is replaced if autostarted, refused otherwise.

A client of "another build" is made for real: an extra `satchel` namespace portion on
PYTHONPATH holding one more module changes what `build_id()` covers, exactly as an upgrade or an
edit of the checkout would.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from satchel.protocol import errors
from tests.client.clientenv import ClientEnv, wait_gone
from tests.support.daemon import DaemonProcess


@pytest.fixture
def client(tmp_path: Path) -> Iterator[ClientEnv]:
    env = ClientEnv(tmp_path)
    yield env
    env.cleanup()


@pytest.fixture
def newer(tmp_path: Path) -> dict[str, str]:
    """Environment additions that make a client (and daemons it starts) another build."""
    portion = tmp_path / "newer" / "satchel" / "client"
    portion.mkdir(parents=True)
    (portion / "added_in_newer_build.py").write_text('"""A module only the newer build has."""\n')
    return {"PYTHONPATH": str(tmp_path / "newer")}


def test_the_two_builds_really_differ(client: ClientEnv, newer: dict[str, str]) -> None:
    old = client.satchel("--version").stdout.splitlines()[0]
    new = client.satchel("--version", extra_env=newer).stdout.splitlines()[0]
    assert old != new


def test_an_autostarted_daemon_of_another_build_is_replaced_with_a_notice(
    client: ClientEnv, newer: dict[str, str]
) -> None:
    assert client.satchel("ping").returncode == 0
    old_pid = client.daemon_pid()

    result = client.satchel("ping", extra_env=newer)

    assert result.returncode == 0, result.stderr
    notice = result.stderr.strip().splitlines()
    assert len(notice) == 1
    assert notice[0].startswith(f"satchel: restarting the autostarted daemon (pid {old_pid}")
    assert wait_gone(old_pid)
    versions = client.satchel("--version", extra_env=newer).stdout.splitlines()
    client_build = versions[0].split("(build ")[1].rstrip(")")
    assert f"(build {client_build}, pid " in versions[1]
    assert f"pid {old_pid})" not in versions[1]


NON_PIPELINED_CALL = """
from satchel.client.session import Session
with Session() as session:
    print(session.call("debug.sleep", {"seconds": 0})["slept"] >= 0, session.welcome["pid"])
"""


def test_a_method_that_waits_for_the_welcome_reaches_only_the_new_daemon(
    client: ClientEnv, newer: dict[str, str]
) -> None:
    assert client.satchel("ping").returncode == 0
    old_pid = client.daemon_pid()
    result = subprocess.run(
        [sys.executable, "-c", NON_PIPELINED_CALL],
        env={**client.env, **newer},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    ok, pid = result.stdout.split()
    client.pids.add(int(pid))
    assert ok == "True"
    assert int(pid) != old_pid
    assert "restarting the autostarted daemon" in result.stderr


def test_a_daemon_not_started_by_a_client_is_left_alone(
    client: ClientEnv, newer: dict[str, str]
) -> None:
    with DaemonProcess(client.env) as daemon:
        result = client.satchel("ping", extra_env=newer)
        assert result.returncode == errors.EXIT_PROTOCOL
        assert "another build" in result.stderr
        assert "activation manual" in result.stderr
        assert "satchel stop" in result.stderr
        assert daemon.returncode is None


def test_stop_and_version_never_restart_a_skewed_daemon(
    client: ClientEnv, newer: dict[str, str]
) -> None:
    assert client.satchel("ping").returncode == 0
    old_pid = client.daemon_pid()
    version = client.satchel("--version", extra_env=newer)
    assert f"pid {old_pid})" in version.stdout
    stop = client.satchel("stop", extra_env=newer)
    assert stop.stdout.strip() == f"stopped satcheld (pid {old_pid})"
    assert "restarting" not in stop.stderr
