"""Socket activation: systemd's protocol end to end, and the strict checks of the stdlib parser."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from satchel.daemon.process._activation import bind_unix, launchd_sockets, systemd_sockets
from satchel.daemon.services.paths import StartupError
from tests.support.daemon import CallError, call, isolated_env

SOCKET_ACTIVATE = shutil.which("systemd-socket-activate")


def _ping_until_answered(path: str, deadline: float) -> dict[str, int]:
    while True:
        try:
            return call(path, "ping")  # type: ignore[no-any-return]
        except (OSError, CallError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@pytest.mark.skipif(SOCKET_ACTIVATE is None, reason="systemd-socket-activate is not installed")
def test_systemd_activation_serves_the_passed_socket_and_notifies_ready(tmp_path: Path) -> None:
    env = isolated_env(tmp_path)
    runtime = Path(env["XDG_RUNTIME_DIR"])
    sock_path = str(runtime / "activated.sock")
    notify_path = str(runtime / "notify")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(notify_path)
    notify.settimeout(60)  # a hang guard, not a measurement
    env["NOTIFY_SOCKET"] = notify_path
    passed = [f"--setenv={name}" for name in env if name != "NOTIFY_SOCKET"]
    assert SOCKET_ACTIVATE is not None
    manager = subprocess.Popen(
        [
            SOCKET_ACTIVATE,
            "-l",
            sock_path,
            *passed,
            f"--setenv=NOTIFY_SOCKET={notify_path}",
            "--fdname=satchel",
            sys.executable,
            "-m",
            "satchel.daemon.process.main",
        ],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60  # a hang guard, not a measurement
        while not os.path.exists(sock_path):
            assert time.monotonic() < deadline, "systemd-socket-activate did not listen"
            time.sleep(0.02)
        # The first connection makes systemd-socket-activate start the daemon.
        pong = _ping_until_answered(sock_path, deadline)
        messages = notify.recv(4096).decode().split("\n")
        assert "READY=1" in messages
        assert f"MAINPID={pong['pid']}" in messages
        status = call(sock_path, "status")
        assert status["activation"] == "systemd"
        assert status["socket"] == sock_path
        # The daemon was not asked to create a socket in its own runtime dir.
        assert not (runtime / "satchel" / "satchel.sock").exists()
        os.kill(pong["pid"], signal.SIGTERM)
        stopping = notify.recv(4096).decode().split("\n")
        assert "STOPPING=1" in stopping
        assert manager.wait(60) == 0
        # A socket handed over by the service manager is not the daemon's to remove.
        assert os.path.exists(sock_path)
    finally:
        if manager.poll() is None:
            manager.kill()
            manager.wait()
        notify.close()


def _fd_env(pid: int, count: int = 1, names: str = "") -> dict[str, str]:
    env = {"LISTEN_PID": str(pid), "LISTEN_FDS": str(count)}
    if names:
        env["LISTEN_FDNAMES"] = names
    return env


def test_listen_fds_for_another_pid_are_ignored_and_removed() -> None:
    env = _fd_env(os.getpid() + 1)
    assert systemd_sockets(env) is None
    assert env == {}


def test_without_listen_variables_nothing_is_activated() -> None:
    assert systemd_sockets({}) is None


def test_listen_fds_must_be_a_listening_unix_stream_socket() -> None:
    # fd 3 must be the socket: duplicate a TCP socket there, as a wrong unit file would.
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    saved = os.dup(3) if _fd_open(3) else None
    try:
        os.dup2(tcp.fileno(), 3)
        with pytest.raises(StartupError, match="Unix stream socket"):
            systemd_sockets(_fd_env(os.getpid()))
    finally:
        _restore_fd3(saved)
        tcp.close()


def test_listen_fds_hand_over_the_listening_socket(tmp_path: Path) -> None:
    listener = bind_unix(str(tmp_path / "s.sock"))
    saved = os.dup(3) if _fd_open(3) else None
    try:
        os.dup2(listener.fileno(), 3)
        env = _fd_env(os.getpid(), names="satchel")
        sockets = systemd_sockets(env)
        assert sockets is not None
        assert [s.fileno() for s in sockets] == [3]
        assert sockets[0].getsockname() == str(tmp_path / "s.sock")
        assert env == {}
        for sock in sockets:
            sock.detach()
    finally:
        _restore_fd3(saved)
        listener.close()


def _restore_fd3(saved: int | None) -> None:
    if saved is None:
        os.close(3)
    else:
        os.dup2(saved, 3)
        os.close(saved)


def _fd_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


@pytest.mark.skipif(sys.platform == "darwin", reason="launchd exists there")
def test_without_launchd_the_daemon_binds_itself() -> None:
    assert launchd_sockets() is None
