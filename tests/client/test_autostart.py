"""Autostart: the first command starts the daemon, once, and a failed start says why.

All through the real `satchel` script and the real `satcheld` it spawns.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from satchel.protocol import errors
from tests.client.clientenv import SATCHEL, ClientEnv, satcheld_processes, wait_gone


@pytest.fixture
def client(tmp_path: Path) -> Iterator[ClientEnv]:
    env = ClientEnv(tmp_path)
    yield env
    env.cleanup()


def test_the_first_command_starts_the_daemon_and_says_so(client: ClientEnv) -> None:
    first = client.satchel("ping")
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("pong from satcheld ")
    assert "(started it)" in first.stdout
    second = client.satchel("ping")
    assert "(started it)" not in second.stdout


def test_the_autostarted_daemon_logs_to_the_state_dir(client: ClientEnv) -> None:
    assert client.satchel("ping").returncode == 0
    assert client.log_file.exists()
    assert "serving on" in client.log_file.read_text()
    assert client.log_file.stat().st_mode & 0o777 == 0o600


def test_the_autostarted_daemon_is_detached_with_an_idle_timeout(client: ClientEnv) -> None:
    assert client.satchel("ping").returncode == 0
    status = json.loads(client.satchel("status", "--json").stdout)
    assert status["activation"] == "autostart"
    assert status["idle_timeout"] == 900
    pid = status["pid"]
    assert os.getsid(pid) == pid  # its own session: a terminal's hangup does not reach it


def test_32_clients_starting_at_once_leave_one_daemon_and_all_succeed(client: ClientEnv) -> None:
    procs = [
        subprocess.Popen(
            [SATCHEL, "ping"],
            env=client.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(32)
    ]
    outputs = [p.communicate(timeout=60) for p in procs]
    for proc, (out, err) in zip(procs, outputs, strict=True):
        client._remember_pid(out)
        assert proc.returncode == 0, err
    pids = {out.split("(pid ")[1].split(")")[0] for out, _ in outputs}
    assert len(pids) == 1
    assert sum("(started it)" in out for out, _ in outputs) == 1
    assert satcheld_processes(client.state_dir) == [int(pids.pop())]


def test_a_daemon_that_cannot_start_reports_its_own_reason(client: ClientEnv) -> None:
    client.socket.parent.mkdir(mode=0o700)
    client.socket.parent.chmod(0o755)  # the daemon refuses a socket dir others can enter
    result = client.satchel("ping")
    assert result.returncode == errors.EXIT_UNAVAILABLE
    assert "could not start satcheld" in result.stderr
    assert "0755" in result.stderr
    assert str(client.log_file) in result.stderr


def test_kill_9_then_status_recovers_and_reports_the_crash(client: ClientEnv) -> None:
    """The next command starts a new daemon by itself (its 30 s timeout is the hang check)."""
    assert client.satchel("ping").returncode == 0
    old = client.daemon_pid()
    os.kill(old, signal.SIGKILL)
    assert wait_gone(old)

    result = client.satchel("status", "--json")

    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert status["pid"] != old
    previous = status["previous_exit"]
    assert previous["pid"] == old
    assert previous["clean"] is False


def test_the_previous_exit_is_reported_once(client: ClientEnv) -> None:
    assert client.satchel("ping").returncode == 0
    assert client.satchel("stop").returncode == 0
    first = client.satchel("status")
    assert "previous exit: pid " in first.stdout
    assert "(clean, status 0)" in first.stdout
    second = client.satchel("status")
    assert "previous exit: -" in second.stdout


def test_no_autostart_leaves_a_stopped_daemon_stopped(client: ClientEnv) -> None:
    result = client.satchel("ping", extra_env={"SATCHEL_NO_AUTOSTART": "1"})
    assert result.returncode == errors.EXIT_UNAVAILABLE
    assert satcheld_processes(client.state_dir) == []


def test_a_daemon_that_dies_silently_reports_its_exit_status_and_log_tail(
    client: ClientEnv, tmp_path: Path
) -> None:
    # A broken installation, for real: the daemon's interpreter dies before satcheld runs.
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "sitecustomize.py").write_text(
        "import os, sys\n"
        "if sys.argv[0].endswith('satcheld'):\n"
        "    sys.stderr.write('fatal: the daemon cannot import its code\\n')\n"
        "    sys.stderr.flush()\n"
        "    os._exit(3)\n"
    )
    result = client.satchel("ping", extra_env={"PYTHONPATH": str(broken)})
    assert result.returncode == errors.EXIT_UNAVAILABLE
    assert "satcheld exited (exit status 3) before it was ready" in result.stderr
    assert "fatal: the daemon cannot import its code" in result.stderr


def test_a_missing_xdg_runtime_dir_is_made_private_so_that_the_next_command_finds_the_daemon(
    client: ClientEnv,
) -> None:
    """Scenario (review 2026-12-05): ``XDG_RUNTIME_DIR`` names a directory that does not exist
    (an ssh or su session, a container, a .bashrc that sets it). The autostarting client made
    it for the socket directory with the umask's mode (0755), and every later command, which
    takes ``XDG_RUNTIME_DIR`` only when it is private (0700, as the XDG spec requires of it),
    looked for the socket under ``/run/user/UID`` or ``/tmp/runtime-UID``: `satchel stop`
    answered "satcheld is not running" (exit 0) while the daemon ran, and other commands
    autostarted a second daemon, which the lock refused. Missing parents are made 0700."""
    runtime = Path(client.env["XDG_RUNTIME_DIR"]) / "user" / "run"
    client.env["XDG_RUNTIME_DIR"] = str(runtime)
    old = os.umask(0o022)  # a login shell's usual umask, inherited by the client
    try:
        first = client.satchel("ping")
    finally:
        os.umask(old)
    assert first.returncode == 0, first.stderr

    assert runtime.stat().st_mode & 0o777 == 0o700
    again = client.satchel("--no-autostart", "ping")
    assert again.returncode == 0, again.stderr
    stop = client.satchel("stop")
    assert "stopped satcheld" in stop.stdout, (stop.stdout, stop.stderr)
