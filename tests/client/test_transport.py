"""Connecting to the daemon's socket: every way of "nobody is there" is `NotRunning`."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import pytest

from satchel.client.transport import NotRunning, Untrusted, connect, peer_uid


def test_a_missing_socket_file_means_not_running(tmp_path: Path) -> None:
    with pytest.raises(NotRunning, match="no socket file"):
        connect(str(tmp_path / "absent.sock"))


def test_a_stale_socket_left_by_a_dead_daemon_means_not_running(tmp_path: Path) -> None:
    path = tmp_path / "stale.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.close()  # the file stays, nobody listens: what kill -9 leaves behind
    with pytest.raises(NotRunning, match="refused"):
        connect(str(path))


def test_a_regular_file_at_the_socket_path_means_not_running(tmp_path: Path) -> None:
    path = tmp_path / "file.sock"
    path.write_text("not a socket")
    with pytest.raises(NotRunning):
        connect(str(path))


def serve_once(path: str) -> tuple[socket.socket, threading.Thread, list[bytes]]:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)
    received: list[bytes] = []

    def echo() -> None:
        conn, _ = listener.accept()
        with conn:
            data = conn.recv(100)
            received.append(data)
            conn.sendall(data.upper())

    thread = threading.Thread(target=echo, daemon=True)
    thread.start()
    return listener, thread, received


def test_bytes_round_trip_over_a_connected_stream(tmp_path: Path) -> None:
    path = str(tmp_path / "ok.sock")
    listener, thread, received = serve_once(path)
    with listener, connect(path, timeout=30) as stream:
        stream.send_all(b"hello")
        assert stream.recv() == b"HELLO"
    thread.join(30)
    assert received == [b"hello"]


def test_a_socket_path_longer_than_sun_path_still_connects(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    path = str(deep / "satchel.sock")
    assert len(path) > 108
    from satchel.protocol.locations import UnixAddress

    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with UnixAddress(path) as address:
        listener.bind(address)
    listener.listen(1)
    with listener, connect(path, timeout=30) as stream:
        conn, _ = listener.accept()
        with conn:
            stream.send_all(b"x")
            assert conn.recv(1) == b"x"


def test_a_socket_directory_others_may_write_is_refused_before_connecting(tmp_path: Path) -> None:
    directory = tmp_path / "run"
    directory.mkdir()
    directory.chmod(0o777)
    with pytest.raises(Untrusted, match=rf"{directory} has mode 0777"):
        connect(str(directory / "satchel.sock"))


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a directory to another uid")
def test_a_socket_directory_of_another_uid_is_refused(tmp_path: Path) -> None:
    directory = tmp_path / "run"
    directory.mkdir(mode=0o700)
    os.chown(directory, 65534, 65534)
    with pytest.raises(Untrusted, match="belongs to uid 65534"):
        connect(str(directory / "satchel.sock"))


def test_peer_uid_is_the_kernel_answer_for_the_other_end() -> None:
    import _socket

    left, right = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        assert peer_uid(left) == os.geteuid()
    finally:
        left.close()
        right.close()
