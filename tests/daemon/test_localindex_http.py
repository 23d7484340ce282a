"""The local index's HTTP layer (`localindex.http`) and its pure parts, over real loopback sockets.

A trivial handler stands in for the routes, so these tests are about HTTP alone: timeouts,
limits, keep-alive, HEAD, file streaming and ranges, and the listening socket's options.
"""

from __future__ import annotations

import math
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.lowlevel
import trio.testing

from satchel.daemon.localindex import _http as http
from satchel.daemon.localindex._http import HttpServer
from satchel.daemon.localindex._messages import FileBody, Request, Response, byte_range
from satchel.daemon.localindex._pages import (
    HTML_V1,
    JSON_V1,
    TEXT_HTML,
    FileLink,
    ProjectView,
    negotiate,
    render_project,
)
from tests.support.daemon import HANG_GUARD


@asynccontextmanager
async def serving(handler: http.Handler, **options: Any) -> AsyncIterator[tuple[int, HttpServer]]:
    server = HttpServer(handler, **options)
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1", backlog=http.LISTEN_BACKLOG)
    port = listeners[0].socket.getsockname()[1]
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve, listeners)
        yield port, server
        nursery.cancel_scope.cancel()


async def hello(request: Request) -> Response:
    return Response(200, [("Content-Type", "text/plain")], f"hello {request.target}".encode())


async def read_all(stream: trio.SocketStream) -> bytes:
    """Everything the server sends until it closes the connection. Waiting for the close is
    the check that it closes (the idle keep-alive timeout is a minute unless a test shrinks
    it); the guard only turns a connection kept open into a failure that says so."""
    received = b""
    with trio.move_on_after(HANG_GUARD) as guard:
        while chunk := await stream.receive_some(65536):
            received += chunk
    assert not guard.cancelled_caught, f"the connection was kept open after {received[:200]!r}"
    return received


async def get_file(blob: Path, offset: int, length: int) -> bytes:
    """The whole answer (head and body) of a GET the server answers with ``FileBody(blob,
    offset, length)``, over a connection the request asks to close."""

    async def handler(request: Request) -> Response:
        return Response(200, [], FileBody(blob, offset, length))

    async with serving(handler) as (port, _):
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        await stream.send_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        return await read_all(stream)


async def test_slow_request_head_gets_408_and_is_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http, "HEAD_TIMEOUT", 0.3)
    monkeypatch.setattr(http, "IDLE_TIMEOUT", math.inf)  # only the head's deadline can cut it
    async with serving(hello, first_request_timeout=math.inf) as (port, _):
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        await stream.send_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        answer = await read_all(stream)  # closed by the head's deadline: no other is set
        assert answer.startswith(b"HTTP/1.1 408 ")


async def test_idle_keep_alive_connection_is_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http, "IDLE_TIMEOUT", 0.3)
    async with serving(hello) as (port, server):
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        await stream.send_all(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = await read_all(stream)
        assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"hello /a")
        assert server.connections == 0


async def test_keep_alive_serves_several_requests_on_one_connection() -> None:
    async with serving(hello) as (port, _):
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        for path in (b"/one", b"/two"):
            await stream.send_all(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n")
            data = b""
            while not data.endswith(b"hello " + path):
                data += await stream.receive_some(65536)
        await stream.aclose()


async def test_request_with_a_body_is_answered_then_closed() -> None:
    async with serving(hello) as (port, _):
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        await stream.send_all(b"GET /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
        answer = await read_all(stream)
        assert answer.startswith(b"HTTP/1.1 200 ")
        assert b"connection: close" in answer.lower()


async def test_garbage_is_400() -> None:
    async with serving(hello) as (port, _):
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        await stream.send_all(b"\x16\x03\x01 not http at all\r\n\r\n")
        assert (await read_all(stream)).startswith(b"HTTP/1.1 400 ")


async def test_connections_use_tcp_nodelay() -> None:
    streams: list[trio.SocketStream] = []

    async def report(request: Request) -> Response:
        # Runs while the connection is served: the option is what the server left set.
        value = streams[-1].getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        return Response(200, [], str(value).encode())

    async with serving(report) as (port, server):
        original = server._serve_stream

        async def spy(connection: Any) -> None:
            streams.append(connection.stream)
            await original(connection)

        server._serve_stream = spy  # type: ignore[method-assign]
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        await stream.send_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = await read_all(stream)
    assert answer.endswith(b"\r\n\r\n1")


async def test_file_body_is_streamed_with_its_exact_length(tmp_path: Path) -> None:
    blob = tmp_path / "blob"
    payload = bytes(range(256)) * 9000  # > 2 chunks of FILE_CHUNK at 1 MiB? ~2.3 MB
    blob.write_bytes(payload)

    answer = await get_file(blob, 100, len(payload) - 200)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert f"content-length: {len(payload) - 200}".encode() in head.lower()
    assert body == payload[100:-100]


@pytest.mark.parametrize(
    "size", [http.HEAD_CHUNK - 1, http.HEAD_CHUNK, http.HEAD_CHUNK + 1, 5 * http.HEAD_CHUNK]
)
async def test_file_around_the_first_read_is_sent_whole(tmp_path: Path, size: int) -> None:
    blob = tmp_path / "blob"
    payload = bytes(range(256)) * (size // 256 + 1)
    blob.write_bytes(payload[:size])

    answer = await get_file(blob, 0, size)
    assert answer.partition(b"\r\n\r\n")[2] == payload[:size]


async def test_a_large_file_passes_at_most_one_small_read_through_python(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Memory: ~50 concurrent downloads (uv) each holding a 1 MiB first read cost the daemon
    # ~20 MB of peak RSS; the rest of a file goes by sendfile.
    blob = tmp_path / "blob"
    blob.write_bytes(b"w" * (4 * 1024 * 1024))
    read_sizes: list[int] = []
    original = http._open_and_read

    def spy(body: FileBody) -> tuple[Any, bytes]:
        handle, chunk = original(body)
        read_sizes.append(len(chunk))
        return handle, chunk

    monkeypatch.setattr(http, "_open_and_read", spy)

    answer = await get_file(blob, 0, 4 * 1024 * 1024)
    assert len(answer.partition(b"\r\n\r\n")[2]) == 4 * 1024 * 1024
    assert read_sizes == [http.HEAD_CHUNK]


async def test_a_small_file_is_answered_in_one_write_head_and_body_together(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each write is a syscall and a trip through the scheduler; an installer asks for hundreds
    # of small files (metadata, small wheels) in one install.
    blob = tmp_path / "blob"
    blob.write_bytes(b"m" * 3000)
    writes: list[bytes] = []
    original = http._Connection._write

    async def spy(self: Any, data: bytes) -> None:
        writes.append(data)
        await original(self, data)

    monkeypatch.setattr(http._Connection, "_write", spy)

    answer = await get_file(blob, 0, 3000)
    assert answer.partition(b"\r\n\r\n")[2] == b"m" * 3000
    assert writes == [answer]


async def test_sendfile_runs_on_the_event_loop_and_survives_a_slow_reader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No worker-thread hop per sendfile call. The file is larger than loopback's socket buffers
    # and the reader takes small pieces, so the sender finds the buffer full (BlockingIOError),
    # waits for room and goes on where it stopped.
    import threading

    size = 6 * 1024 * 1024 + 12345
    payload = bytes(range(256)) * (size // 256 + 1)
    blob = tmp_path / "blob"
    blob.write_bytes(payload[:size])
    threads: set[int] = set()
    assert http._SENDFILE is not None
    original = http._SENDFILE

    def spy(out: int, src: int, offset: int, count: int) -> int:
        threads.add(threading.get_ident())
        return original(out, src, offset, count)

    monkeypatch.setattr(http, "_SENDFILE", spy)

    async def handler(request: Request) -> Response:
        return Response(200, [], FileBody(blob, 0, size))

    async with serving(handler) as (port, _):
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        await stream.send_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        received = b""
        while chunk := await stream.receive_some(16384):
            received += chunk
            await trio.lowlevel.checkpoint()
    assert received.partition(b"\r\n\r\n")[2] == payload[:size]
    assert threads == {threading.get_ident()}


async def test_without_sendfile_a_file_is_sent_in_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Platforms without os.sendfile: the rest of the file goes in FILE_CHUNK reads.
    size = 3 * http.FILE_CHUNK + 4321
    payload = bytes(range(256)) * (size // 256 + 1)
    blob = tmp_path / "blob"
    blob.write_bytes(payload[:size])
    monkeypatch.setattr(http, "_SENDFILE", None)

    answer = await get_file(blob, 7, size - 7)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert f"content-length: {size - 7}".encode() in head.lower()
    assert body == payload[7:size]


async def test_head_sends_no_body() -> None:
    async with serving(hello) as (port, _):
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        await stream.send_all(b"HEAD /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = await read_all(stream)
        head, _, body = answer.partition(b"\r\n\r\n")
        assert b"content-length: 8" in head.lower()
        assert body == b""


async def test_handler_crash_is_500_without_details() -> None:
    async def broken(request: Request) -> Response:
        raise RuntimeError("secret internals")

    async with serving(broken) as (port, _):
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        await stream.send_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = await read_all(stream)
        assert answer.startswith(b"HTTP/1.1 500 ")
        assert b"secret" not in answer


async def test_many_simultaneous_connections_are_all_served() -> None:
    async with serving(hello) as (port, _):
        results: list[bytes] = []

        async def one(i: int) -> None:
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            await stream.send_all(b"GET /%d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % i)
            results.append(await read_all(stream))

        async with trio.open_nursery() as nursery:
            for i in range(200):
                nursery.start_soon(one, i)
        assert len(results) == 200
        assert all(r.startswith(b"HTTP/1.1 200 ") for r in results)


# -- pure parts ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("bytes=0-9", (0, 10)),
        ("bytes=5-", (5, 100)),
        ("bytes=-10", (90, 100)),
        ("bytes=90-200", (90, 100)),
        ("bytes=100-", False),
        ("bytes=-0", False),
        ("bytes=9-3", None),
        ("bytes=0-1,5-6", None),
        ("items=0-1", None),
        ("bytes=x-y", None),
    ],
)
def test_byte_range(header: str | None, expected: object) -> None:
    assert byte_range(header, 100) == expected


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, TEXT_HTML),
        ("", TEXT_HTML),
        (f"{JSON_V1}, {HTML_V1};q=0.1, text/html;q=0.01", JSON_V1),
        (f"text/html, {JSON_V1};q=0.9", TEXT_HTML),
        ("*/*", TEXT_HTML),
        ("application/*", HTML_V1),
        (f"{JSON_V1};q=0", None),
        ("image/png", None),
        ("text/html;q=bogus", None),
    ],
)
def test_negotiate(accept: str | None, expected: str | None) -> None:
    assert negotiate(accept) == expected


def test_format_override_wins_and_unknown_format_is_unacceptable() -> None:
    assert negotiate("text/html", JSON_V1) == JSON_V1
    assert negotiate("text/html", "application/vnd.pypi.simple.latest+html") == HTML_V1
    assert negotiate(JSON_V1, "yaml") is None


def test_unknown_size_downgrades_the_page_to_api_1_0() -> None:
    import json

    view = ProjectView(
        project="p", files=(FileLink(filename="p-1.0.tar.gz", sha256="a" * 64),), versions=("1.0",)
    )
    page = json.loads(render_project(view, JSON_V1))
    assert page["meta"]["api-version"] == "1.0"
    assert "versions" not in page


async def test_each_connection_holds_the_activity_hold_while_open() -> None:
    open_now: list[int] = [0]

    @contextmanager
    def hold() -> Iterator[None]:
        open_now[0] += 1
        try:
            yield
        finally:
            open_now[0] -= 1

    server = HttpServer(hello, hold=hold)
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve, listeners)
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        await stream.send_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        await stream.receive_some(65536)
        assert open_now == [1]  # a keep-alive connection keeps the daemon from idling out
        await stream.aclose()
        with trio.fail_after(HANG_GUARD):  # a hang guard, not a measurement
            while open_now != [0]:  # noqa: ASYNC110 (the server notices the close by itself)
                await trio.sleep(0.01)
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("size", [1000, 3 * http.FILE_CHUNK])
async def test_file_shorter_than_announced_drops_the_connection(
    tmp_path: Path, size: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(http, "IDLE_TIMEOUT", math.inf)  # a close can only be the drop
    blob = tmp_path / "blob"
    blob.write_bytes(b"x" * size)

    async def handler(request: Request) -> Response:
        return Response(200, [], FileBody(blob, 0, size + 10))  # truncated under the server

    async with serving(handler) as (port, _):
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        await stream.send_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = await read_all(stream)  # closed, not kept alive
        head, _, body = answer.partition(b"\r\n\r\n")
        assert f"content-length: {size + 10}".encode() in head.lower()
        assert len(body) <= size  # never padded: the peer sees a short body, then EOF


def only_with_key(request: Request) -> Response | None:
    if request.header("x-key") == "right":
        return None
    return Response(401, [], b"authentication required\n")


async def test_a_refused_request_is_answered_and_its_connection_closed() -> None:
    async with serving(hello, authorize=only_with_key) as (port, _server):
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        await stream.send_all(
            b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\nX-Key: right\r\n\r\n"
        )
        answer = await read_all(stream)
    assert answer.startswith(b"HTTP/1.1 401 ")
    assert b"hello" not in answer  # the pipelined second request was never handled


async def test_idle_unauthenticated_connections_hold_no_serving_slot(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(http, "MAX_CONNECTIONS", 2)
    async with serving(hello, authorize=only_with_key) as (port, server):
        idle = [await trio.open_tcp_stream("127.0.0.1", port) for _ in range(5)]
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        await stream.send_all(b"GET /a HTTP/1.1\r\nHost: x\r\nX-Key: right\r\n\r\n")
        received = b""
        while not received.endswith(b"hello /a"):
            received += await stream.receive_some(65536)
        assert server.connections == 6 and server.dropped == 0
        for conn in idle:
            await conn.aclose()


async def test_past_the_cap_the_oldest_silent_connection_is_dropped() -> None:
    async with serving(hello, authorize=only_with_key, max_unauthenticated=3) as (port, server):
        talking = await trio.open_tcp_stream("127.0.0.1", port)
        await talking.send_all(b"GET /a HTTP/1.1\r\n")  # started, not finished
        await trio.testing.wait_all_tasks_blocked()  # the server has read those bytes
        silent = [await trio.open_tcp_stream("127.0.0.1", port) for _ in range(4)]
        for conn in silent[:2]:
            assert await read_all(conn) == b""  # closed without an answer
        assert server.dropped == 2
        await talking.send_all(b"Host: x\r\nX-Key: right\r\nConnection: close\r\n\r\n")
        assert (await read_all(talking)).endswith(b"hello /a")


async def test_a_connection_that_never_sends_a_request_is_closed_at_the_deadline() -> None:
    async with serving(hello, first_request_timeout=0.05) as (port, server):
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        assert await read_all(stream) == b""
        assert server.dropped == 0


async def test_every_answer_carries_its_reason_phrase() -> None:
    """pip prints the reason beside the status ("403 Client Error: Forbidden for url"); with none
    it printed "403 Client Error:  for url"."""

    async def forbidden(request: Request) -> Response:
        return Response(403, [("Content-Type", "text/plain")], b"not for you")

    async with serving(forbidden) as (port, _):
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        await stream.send_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = await read_all(stream)
    assert answer.startswith(b"HTTP/1.1 403 Forbidden\r\n"), answer[:40]
