"""Issue 13.1: `satchel service install` for real, up to the service manager itself.

This machine has no user bus, so `systemctl` is a script on PATH that records its arguments;
everything before it runs as a user would run it: the units are written where systemd reads them
(and pass `systemd-analyze verify` as written), and a daemon the client had autostarted is
stopped so the service manager can take the socket over.

After a reinstall of the tool, the service manager's daemon is another build than the client.
`SocketActivator` stands in for systemd's socket activation (bind the socket once, start the
daemon with it on the next connection, again after every exit), so the client's handling of
that skew runs against the real daemon and the real `satchel`.
"""

from __future__ import annotations

import os
import select
import shlex
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from satchel.client import service_units
from satchel.protocol import errors
from tests.client.clientenv import SATCHELD, ClientEnv, wait_gone
from tests.client.test_service_units import systemd_verify

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="systemd units are Linux-only"
)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[ClientEnv]:
    env = ClientEnv(tmp_path)
    yield env
    env.cleanup()


def _recording_systemctl(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """A `systemctl` first on PATH that appends its arguments to a log and succeeds."""
    bin_dir = tmp_path / "fake-bin"
    bin_dir.mkdir()
    log = tmp_path / "systemctl.log"
    script = bin_dir / "systemctl"
    script.write_text(f'#!/bin/sh\necho "$*" >> {shlex.quote(str(log))}\n')
    script.chmod(0o755)
    return {"PATH": f"{bin_dir}:{os.environ['PATH']}"}, log


def test_install_writes_verified_units_stops_the_autostarted_daemon_and_enables_the_socket(
    client: ClientEnv, tmp_path: Path
) -> None:
    assert client.satchel("ping").returncode == 0
    autostarted = client.daemon_pid()
    path_env, log = _recording_systemctl(tmp_path)

    result = client.satchel("service", "install", extra_env=path_env)

    assert result.returncode == 0, result.stderr
    assert f"stopped the running satcheld (pid {autostarted})" in result.stdout
    assert wait_gone(autostarted)
    unit_dir = Path(client.env["XDG_CONFIG_HOME"]) / "systemd" / "user"
    units = [unit_dir / name for name in service_units.SYSTEMD_UNITS]
    assert all(unit.is_file() for unit in units)
    assert f"ExecStart={SATCHELD} --log-level info" in units[1].read_text()
    verified = systemd_verify(tmp_path, units)
    assert verified.returncode == 0, verified.stderr
    assert log.read_text().splitlines() == [
        "--user daemon-reload",
        "--user enable --now satchel.socket",
    ]

    again = client.satchel("service", "install", extra_env=path_env)  # a reinstall
    assert again.returncode == 0, again.stderr
    assert log.read_text().count("--user enable --now satchel.socket") == 2


def test_a_failing_systemctl_fails_the_install_with_its_status(
    client: ClientEnv, tmp_path: Path
) -> None:
    bin_dir = tmp_path / "failing-bin"
    bin_dir.mkdir()
    (bin_dir / "systemctl").write_text("#!/bin/sh\necho 'Failed to connect to bus' >&2\nexit 1\n")
    (bin_dir / "systemctl").chmod(0o755)
    result = client.satchel("service", "install", extra_env={"PATH": f"{bin_dir}:/usr/bin:/bin"})
    assert result.returncode == errors.EXIT_FAILURE
    assert "systemctl --user daemon-reload failed with status 1" in result.stderr


_SHIM = (
    "import os, sys; os.dup2(int(sys.argv[1]), 3); os.environ['LISTEN_PID'] = str(os.getpid()); "
    "os.execv(sys.argv[2], sys.argv[2:])"
)


class SocketActivator:
    """systemd's socket activation, reduced to what the client can observe: the socket stays
    bound, and a connection to it starts the daemon (with the socket as fd 3) whenever none
    runs. Each start reads *env_file* (``KEY=VALUE`` lines), so a test can "reinstall" a
    newer build between two starts."""

    def __init__(self, client: ClientEnv, env_file: Path) -> None:
        self.client = client
        self.env_file = env_file
        self.starts: list[int] = []
        client.socket.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(client.socket))
        self.listener.listen(64)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self.listener], [], [], 0.05)
            if not ready:
                continue
            extra = dict(
                line.split("=", 1) for line in self.env_file.read_text().splitlines() if line
            )
            fd = self.listener.fileno()
            # The shim puts the socket at fd 3 and sets LISTEN_PID to its own pid, which
            # exec hands to the daemon: what sd_listen_fds expects from systemd.
            daemon = subprocess.Popen(
                [sys.executable, "-c", _SHIM, str(fd), SATCHELD, "--log-level", "info"],
                env={**self.client.env, **extra, "LISTEN_FDS": "1", "LISTEN_FDNAMES": "satchel"},
                pass_fds=(fd,),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            self.starts.append(daemon.pid)
            self.client.pids.add(daemon.pid)
            daemon.wait()  # systemd starts it again only after it exits

    def close(self) -> None:
        if self.starts and self.starts[-1] in _running(self.starts):
            self.client.satchel("--no-autostart", "stop")
        self._stop.set()
        self._thread.join(30)
        self.listener.close()


def _running(pids: list[int]) -> set[int]:
    return {pid for pid in pids if Path(f"/proc/{pid}").exists()}


@pytest.fixture
def newer(tmp_path: Path) -> str:
    """PYTHONPATH making a process another build (as in test_skew)."""
    portion = tmp_path / "newer" / "satchel" / "client"
    portion.mkdir(parents=True)
    (portion / "added_in_newer_build.py").write_text('"""A module only the newer build has."""\n')
    return str(tmp_path / "newer")


def test_after_a_reinstall_the_service_daemon_is_restarted_on_the_new_build(
    client: ClientEnv, tmp_path: Path, newer: str
) -> None:
    env_file = tmp_path / "service.env"
    env_file.write_text("")
    activator = SocketActivator(client, env_file)
    try:
        assert client.satchel("--no-autostart", "ping").returncode == 0
        old = activator.starts[-1]
        env_file.write_text(f"PYTHONPATH={newer}\n")  # the tool is reinstalled

        result = client.satchel("--no-autostart", "ping", extra_env={"PYTHONPATH": newer})

        assert result.returncode == 0, result.stderr
        assert f"restarting the systemd service (pid {old}" in result.stderr
        assert wait_gone(old)
        assert activator.starts[-1] != old
    finally:
        activator.close()


def test_units_naming_another_installation_get_one_restart_then_a_clear_error(
    client: ClientEnv, tmp_path: Path, newer: str
) -> None:
    env_file = tmp_path / "service.env"
    env_file.write_text("")  # the units keep starting the old build
    activator = SocketActivator(client, env_file)
    try:
        assert client.satchel("--no-autostart", "ping").returncode == 0

        result = client.satchel("--no-autostart", "ping", extra_env={"PYTHONPATH": newer})

        assert result.returncode == errors.EXIT_PROTOCOL, result.stderr
        assert "satchel service install" in result.stderr
        assert len(activator.starts) == 2  # one restart, never a loop
    finally:
        activator.close()
