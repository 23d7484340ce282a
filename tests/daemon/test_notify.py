"""sd_notify datagrams and the autostart notify pipe."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from satchel.daemon.process._notify import StartupChannel, SystemdNotifier
from tests.support.daemon import call, isolated_env, socket_path


def test_notifier_sends_ready_status_and_mainpid_to_a_path_socket(tmp_path: Path) -> None:
    path = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(path)
        env = {"NOTIFY_SOCKET": path}
        notifier = SystemdNotifier(env)
        assert env == {}  # not inherited by anything the daemon spawns
        assert notifier.ready("serving")
        lines = server.recv(4096).decode().split("\n")
    assert lines == ["READY=1", "STATUS=serving", f"MAINPID={os.getpid()}"]


def test_notifier_understands_the_abstract_namespace() -> None:
    name = f"satchel-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind("\0" + name)
        notifier = SystemdNotifier({"NOTIFY_SOCKET": "@" + name})
        assert notifier.stopping("bye")
        assert server.recv(4096) == b"STOPPING=1\nSTATUS=bye"


def test_notifier_without_notify_socket_does_nothing() -> None:
    notifier = SystemdNotifier({})
    assert not notifier.enabled
    assert not notifier.ready("serving")


def test_notifier_survives_a_vanished_manager(tmp_path: Path) -> None:
    notifier = SystemdNotifier({"NOTIFY_SOCKET": str(tmp_path / "gone")})
    assert notifier.send("STATUS=x") is False


def test_startup_channel_writes_one_line_and_closes() -> None:
    read_end, write_end = os.pipe()
    channel = StartupChannel(write_end)
    channel.error("runtime dir is 0755,\nmust be 0700")
    channel.ready()  # too late: only the first outcome counts
    with os.fdopen(read_end, "rb") as reader:
        assert reader.read() == b"ERROR runtime dir is 0755, must be 0700\n"


def _spawn_with_notify_fd(env: dict[str, str], *args: str) -> tuple[subprocess.Popen[bytes], bytes]:
    read_end, write_end = os.pipe()
    proc = subprocess.Popen(
        [sys.executable, "-m", "satchel.daemon.process.main", "--notify-fd", str(write_end), *args],
        env=env,
        pass_fds=[write_end],
        stderr=subprocess.DEVNULL,
    )
    os.close(write_end)
    with os.fdopen(read_end, "rb") as reader:
        line = reader.read()  # EOF arrives once the daemon closed its end: one line only
    return proc, line


def test_notify_fd_says_ready_once_the_socket_answers(tmp_path: Path) -> None:
    env = isolated_env(tmp_path)
    proc, line = _spawn_with_notify_fd(env)
    try:
        assert line == b"READY\n"
        assert call(socket_path(env), "ping") == {"pid": proc.pid}
        assert call(socket_path(env), "status")["activation"] == "autostart"
    finally:
        proc.terminate()
        assert proc.wait(60) == 0


def test_notify_fd_carries_the_start_up_error(tmp_path: Path) -> None:
    env = isolated_env(tmp_path)
    sock_dir = Path(env["XDG_RUNTIME_DIR"]) / "satchel"
    sock_dir.mkdir()
    sock_dir.chmod(0o755)
    proc, line = _spawn_with_notify_fd(env)  # returns at the daemon's EOF: no wait of ours
    assert proc.wait(60) == 1  # a hang guard, not a measurement
    assert line.startswith(b"ERROR ")
    assert f"{sock_dir} has mode 0755".encode() in line
    assert line.endswith(b"\n") and line.count(b"\n") == 1
