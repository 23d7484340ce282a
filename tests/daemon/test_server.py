"""The server's per-connection behaviour against a real daemon over a real socket."""

from __future__ import annotations

import math
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from satchel.daemon import api
from satchel.daemon.process import _server as server_module
from satchel.daemon.process._activation import Listeners, bind_unix
from satchel.protocol import CLOSED
from satchel.protocol.codec import DictCodec
from satchel.protocol.framing import frame
from tests.support.daemon import (
    HANG_GUARD,
    Client,
    DaemonProcess,
    call,
    in_process_app,
    isolated_env,
)


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    """One daemon shared by this module's tests (each test uses its own connections)."""
    env = isolated_env(tmp_path_factory.mktemp("server"))
    with DaemonProcess(env) as process:
        yield process


#: A request that outlasts any test: it ends when the test cancels it.
FOREVER = {"seconds": 600, "step": 0.05}


def test_welcome_names_the_daemon(daemon: DaemonProcess) -> None:
    with Client(daemon.socket) as client:
        welcome = client.hello()
    assert welcome["type"] == "welcome"
    assert welcome["pid"] == daemon.pid
    assert (welcome["major"], welcome["minor"]) == (1, 0)
    assert welcome["build_id"]


def test_another_major_version_gets_incompatible_and_a_close(daemon: DaemonProcess) -> None:
    with Client(daemon.socket) as client:
        answer = client.hello(major=99)
        assert answer["type"] == "incompatible"
        assert answer["wanted"] == "99.0"
        assert answer["actual"] == "1.0"
        assert client.next_event(timeout=HANG_GUARD) is CLOSED


def test_pipelined_request_after_hello_is_answered(daemon: DaemonProcess) -> None:
    codec = DictCodec()
    hello = {"type": "hello", "major": 1, "minor": 0, "client_version": "t", "build_id": "t"}
    ping = {"type": "request", "id": 7, "method": "ping", "params": {}}
    with Client(daemon.socket) as client:
        client.send_raw(frame(codec.encode(hello)) + frame(codec.encode(ping)))
        client.conn.send(hello)
        client.conn.send(ping)
        assert client.next_event()["type"] == "welcome"
        assert client.wait_terminal(7) == {"type": "result", "id": 7, "value": {"pid": daemon.pid}}


def test_several_requests_in_flight_on_one_connection_finish_independently(
    daemon: DaemonProcess,
) -> None:
    with Client(daemon.socket) as client:
        client.hello()
        slow = client.request("debug.sleep", {"seconds": 0.4})
        fast = client.request("ping")
        assert client.wait_terminal(fast)["type"] == "result"
        assert client.wait_terminal(slow)["type"] == "result"


def test_progress_events_arrive_before_the_result(daemon: DaemonProcess) -> None:
    with Client(daemon.socket) as client:
        client.hello()
        rid = client.request("debug.sleep", {"seconds": 0.15, "step": 0.05})
        assert client.wait_terminal(rid)["type"] == "result"
    progress = [e for e in client.others if e["type"] == "progress"]
    assert [(p["done"], p["total"], p["unit"]) for p in progress] == [
        (0, 3, "steps"),
        (1, 3, "steps"),
        (2, 3, "steps"),
    ]


def test_a_late_progress_for_an_answered_request_is_dropped_not_fatal(
    daemon: DaemonProcess,
) -> None:
    """Work that outlives its request (a download or look-ahead it shared) may report progress
    after the answer went out: the event is dropped, and the connection, with its other
    requests, carries on (it was a protocol error that closed it, seen once in CI as
    "satcheld closed the connection before answering")."""
    with Client(daemon.socket) as client:
        client.hello()
        done = client.request("debug.late", {})
        assert client.wait_terminal(done)["type"] == "result"
        released = client.request("debug.release_late", {})
        assert client.wait_terminal(released) == {"type": "result", "id": released, "value": 1}
        after = client.request("ping")
        assert client.wait_terminal(after)["type"] == "result"
    assert [e for e in client.others if e.get("id") == done] == []


def test_concurrent_answers_on_one_connection_never_interleave(daemon: DaemonProcess) -> None:
    with Client(daemon.socket) as client:
        client.hello()
        ids = [client.request("debug.sleep", {"seconds": 0.1, "step": 0.01}) for _ in range(20)]
        answered = {rid: client.wait_terminal(rid)["type"] for rid in ids}
    assert set(answered.values()) == {"result"}
    progress = [e for e in client.others if e["type"] == "progress"]
    assert len(progress) == 20 * 10  # every frame decoded whole: none lost, none torn


def test_cancel_cancels_only_that_request(daemon: DaemonProcess) -> None:
    with Client(daemon.socket) as client:
        client.hello()
        doomed = client.request("debug.sleep", {"seconds": 30})
        kept = client.request("debug.sleep", {"seconds": 0.3})
        client.cancel(doomed)
        cancelled = client.wait_terminal(doomed)
        assert cancelled["type"] == "error"
        assert cancelled["code"] == "cancelled"
        assert client.wait_terminal(kept)["type"] == "result"


def test_disconnect_cancels_only_that_clients_requests(daemon: DaemonProcess) -> None:
    with Client(daemon.socket) as survivor:
        survivor.hello()
        kept = survivor.request("debug.sleep", FOREVER)
        survivor.next_progress(kept)  # running
        leaver = Client(daemon.socket)
        leaver.hello()
        leaver.next_progress(leaver.request("debug.sleep", FOREVER))  # running
        assert len(call(daemon.socket, "status")["jobs"]) == 2
        leaver.close()
        deadline = time.monotonic() + HANG_GUARD  # a hang guard, not a measurement
        while len(call(daemon.socket, "status")["jobs"]) != 1:
            assert time.monotonic() < deadline, "the leaver's request was not cancelled"
            time.sleep(0.02)  # polling the daemon's job list: there is no event to wait on
        survivor.next_progress(kept)  # still running after the leaver's was cancelled
        survivor.cancel(kept)
        assert survivor.wait_terminal(kept)["code"] == "cancelled"


async def test_a_stalled_half_frame_does_not_delay_other_clients(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pings are answered while a connection holds half a Hello that will never be finished nor
    dropped (no Hello deadline here): a server that waited for it would never answer them."""
    monkeypatch.setattr(server_module, "HANDSHAKE_TIMEOUT", math.inf)
    path = os.path.join(isolated_env(tmp_path)["XDG_RUNTIME_DIR"], "s.sock")
    app = in_process_app(tmp_path)
    api.load_methods()
    async with trio.open_nursery() as nursery:
        await nursery.start(server_module.Server(app).serve, Listeners([bind_unix(path)], "manual"))
        stalled = await trio.open_unix_socket(path)
        await stalled.send_all((1000).to_bytes(4, "big") + b'{"type": "hel')  # then silence
        for _ in range(5):
            assert await trio.to_thread.run_sync(call, path, "ping") == {"pid": app.pid}
        await stalled.aclose()
        nursery.cancel_scope.cancel()


def test_a_stalled_request_frame_after_hello_does_not_delay_other_clients(
    daemon: DaemonProcess,
) -> None:
    with Client(daemon.socket) as stalled:
        stalled.hello()
        stalled.send_raw((500).to_bytes(4, "big") + b'{"type":"request"')  # never finished
        for _ in range(5):  # a server that waited for the rest would never answer these
            assert call(daemon.socket, "ping") == {"pid": daemon.pid}


def test_oversize_frame_gets_a_protocol_error_and_a_close(daemon: DaemonProcess) -> None:
    with Client(daemon.socket) as client:
        client.hello()
        client.send_raw((64 << 20).to_bytes(4, "big"))
        event = client.next_event(timeout=HANG_GUARD)
        assert event["type"] == "error"
        assert event["id"] is None
        assert event["code"] == "protocol"
    assert call(daemon.socket, "ping") == {"pid": daemon.pid}


def test_garbage_before_hello_is_refused_without_harm(daemon: DaemonProcess) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as raw:
        raw.settimeout(5)
        raw.connect(daemon.socket)
        raw.sendall(frame(b"this is not json"))
        data = raw.recv(65536)
    body = DictCodec().decode(data[4:])
    assert (body["type"], body["code"]) == ("error", "protocol")
    assert call(daemon.socket, "ping") == {"pid": daemon.pid}


def test_many_concurrent_clients_are_all_answered(daemon: DaemonProcess) -> None:
    clients = [Client(daemon.socket) for _ in range(50)]
    try:
        for client in clients:
            client.hello()
            client.request("ping")
        for client in clients:
            assert client.wait_terminal(1)["value"] == {"pid": daemon.pid}
    finally:
        for client in clients:
            client.close()


def _connect_as_nobody(path: str) -> str:
    """Fork a child that drops to uid 65534 and tries a ping; return what it saw."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        try:
            os.close(read_end)
            os.setgid(65534)
            os.setuid(65534)
            try:
                with Client(path) as client:
                    try:
                        outcome = repr(client.hello())
                    except BrokenPipeError:
                        # Refused before our Hello went out: the answer is still readable.
                        outcome = repr(client.next_event())
            except BaseException as exc:
                outcome = f"exception: {exc!r}"
            os.write(write_end, outcome.encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as reader:
        outcome = reader.read().decode()
    os.waitpid(pid, 0)
    return outcome


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch to another uid")
def test_a_peer_of_another_uid_is_refused_even_with_open_file_modes(
    daemon: DaemonProcess,
) -> None:
    sock_dir = os.path.dirname(daemon.socket)
    runtime = os.path.dirname(sock_dir)
    modes = {p: os.stat(p).st_mode & 0o777 for p in (runtime, sock_dir, daemon.socket)}
    try:
        for path in modes:
            os.chmod(path, 0o666 if path == daemon.socket else 0o777)
        outcome = _connect_as_nobody(daemon.socket)
    finally:
        for path, mode in modes.items():
            os.chmod(path, mode)
    assert "'code': 'forbidden'" in outcome, outcome
    assert "'id': None" in outcome
    assert "refusing connection from uid 65534" in daemon.stderr()
    assert call(daemon.socket, "ping") == {"pid": daemon.pid}


async def test_a_client_that_never_says_hello_is_dropped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server_module, "HANDSHAKE_TIMEOUT", 0.2)
    path = os.path.join(isolated_env(tmp_path)["XDG_RUNTIME_DIR"], "s.sock")
    listeners = Listeners([bind_unix(path)], "manual")
    app = in_process_app(tmp_path)
    async with trio.open_nursery() as nursery:
        await nursery.start(server_module.Server(app).serve, listeners)
        stream = await trio.open_unix_socket(path)
        with trio.fail_after(HANG_GUARD):  # a hang guard: only the 0.2 s deadline closes it
            assert await stream.receive_some(100) == b""  # closed on us, without a word
        await stream.aclose()
        nursery.cancel_scope.cancel()
