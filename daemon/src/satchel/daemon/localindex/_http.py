"""A small HTTP/1.1 server on trio, built directly on h11: what the local index needs, nothing more.

Why h11 and not hypercorn (see docs/local-index.md): h11 is already a dependency (httpx uses it),
it is sans-I/O, so this module owns every socket decision (listen backlog, TCP_NODELAY, timeouts,
how files are streamed), and the whole server is a few hundred readable lines with no
ASGI layer, no extra process model and no configuration surface of its own.

What a hostile or sloppy local peer meets, and why:

* **Bounded request heads.** h11 refuses a head larger than `MAX_HEAD_BYTES` (431); request
  bodies are never read: only GET and HEAD exist here, anything else is 405 and the connection is
  closed (so an unread body cannot be mistaken for the next request).
* **Slowloris.** A request head must arrive within `HEAD_TIMEOUT` of its first byte; an idle
  keep-alive connection is closed after `IDLE_TIMEOUT`; a client that stops reading a response
  for `SEND_TIMEOUT` is cut off.
* **Authentication before anything else, and no slots for strangers** (issue 11.7: another local
  user holding ~600 idle connections made the owner wait 5-30 s). Every connection is accepted at
  once and starts *unauthenticated*: its first request head must be complete within
  `FIRST_REQUEST_TIMEOUT` of the accept, and is checked by the server's *authorize* callback
  before any other work (a first request without credentials is first attributed to a uid by
  *identify*, see `peer`); a refusal is answered and the connection closed. At most
  `MAX_UNAUTHENTICATED` connections wait for their first request; one more drops the oldest of
  them (the oldest that has sent nothing, if any), so idle strangers pin a bounded number of
  descriptors and never a serving slot.
* **Bounded concurrency.** At most `MAX_CONNECTIONS` authenticated connections are served at
  once; more wait for a slot after authenticating. The kernel's accept queue is deep
  (`LISTEN_BACKLOG`): uv opens dozens of connections at once, and a shallow backlog turns a burst
  into one-second SYN retransmits.
* **Pipelining-safe.** One request is answered at a time per connection, in order; h11 keeps any
  pipelined bytes buffered for the next cycle.
* **Latency.** TCP_NODELAY on every connection (a response head and body are separate writes,
  and Nagle plus delayed ACKs would add ~40 ms to each small page).

Application code sees `Request` and returns `Response` (`_messages`); file bodies (`FileBody`) are
opened and their first bytes read in a worker thread, the rest sent with ``sendfile`` from the
page cache (read ahead on request), so a multi-GB wheel never sits in memory.
"""

from __future__ import annotations

import contextlib
import http
import logging
import os
import socket
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import replace
from email.utils import formatdate
from typing import BinaryIO, cast

import h11
import trio

from satchel.daemon.localindex._messages import (
    Authorize,
    FileBody,
    Handler,
    Identify,
    Request,
    Response,
)
from satchel.daemon.services.fdlimit import AcceptFailures
from satchel.daemon.storage.memory import wake_settler

__all__ = [
    "FIRST_REQUEST_TIMEOUT",
    "HEAD_TIMEOUT",
    "IDLE_TIMEOUT",
    "LISTEN_BACKLOG",
    "MAX_CONNECTIONS",
    "MAX_HEAD_BYTES",
    "MAX_UNAUTHENTICATED",
    "SEND_TIMEOUT",
    "HttpServer",
]

log = logging.getLogger(__name__)

#: Each status's reason phrase: pip and others print it beside the status ("403 Client Error:
#: Forbidden for url"); h11 sends none unless given one.
_REASONS = {status.value: status.phrase.encode() for status in http.HTTPStatus}

#: Largest request line + headers. Installers send well under 2 KiB; browsers a few KiB.
MAX_HEAD_BYTES = 32 * 1024
#: Seconds from the first byte of a request to the end of its head.
HEAD_TIMEOUT = 10.0
#: Seconds from accepting a connection to the end of its first request head (which must
#: authenticate). pip and uv write the request the moment they connect (well under 10 ms on
#: loopback, even on a loaded machine); 5 s leaves a wide margin for a stalled client while
#: keeping what an idle stranger can hold short.
FIRST_REQUEST_TIMEOUT = 5.0
#: Connections accepted and not yet authenticated; one more drops the oldest. uv opens about 50
#: at once, so the owner's bursts fit many times over; each costs one descriptor (the daemon's
#: limit is raised to the hard limit at start, typically 524288).
MAX_UNAUTHENTICATED = 1024
#: Seconds an idle keep-alive connection is kept (pip's and uv's pools reuse within seconds).
IDLE_TIMEOUT = 60.0
#: Seconds a response write may make no progress before the peer is considered gone.
SEND_TIMEOUT = 60.0
#: Authenticated connections served at once; more wait for a slot.
MAX_CONNECTIONS = 512
#: Accept queue depth (the kernel caps it at net.core.somaxconn).
LISTEN_BACKLOG = 4096
#: After an error response, how long and how much of the peer's input is drained before closing.
LINGER_TIMEOUT = 2.0
LINGER_MAX_BYTES = 1024 * 1024
#: Bytes read with the open (one worker-thread hop): a file this small (core metadata, most
#: small wheels) is sent whole from it, a larger one goes on with ``sendfile``. Kept small on
#: purpose: uv opens ~50 connections at once, and a 1 MiB first read per connection held ~50 MiB
#: of transient buffers that glibc's malloc keeps mapped afterwards (daemon memory, in
#: benchmarks/findings.md).
HEAD_CHUNK = 64 * 1024
#: Bytes per read from a file body where there is no ``sendfile`` (one worker-thread hop each).
FILE_CHUNK = 256 * 1024
#: Most bytes per ``sendfile`` call (a call sends what the socket buffer takes, often less).
SENDFILE_CHUNK = 8 * 1024 * 1024
#: ``os.sendfile`` where the platform has it; elsewhere files are sent with reads.
_SENDFILE = getattr(os, "sendfile", None)
#: Bytes of a file asked to be read ahead when it is opened: all of nearly every wheel, without
#: pulling a multi-GB file into the page cache at once (past it, the kernel's own sequential
#: read-ahead follows ``sendfile``).
READ_AHEAD = 64 * 1024 * 1024
#: ``os.posix_fadvise`` where the platform has it: the read-ahead hint for a file about to be sent.
_FADVISE = getattr(os, "posix_fadvise", None)
_WILLNEED: int = getattr(os, "POSIX_FADV_WILLNEED", 0)
_RECEIVE = 64 * 1024
_ALLOWED_METHODS = (b"GET", b"HEAD")


class _Date:
    """The ``Date`` header, formatted once per second rather than once per response."""

    def __init__(self) -> None:
        self._second = -1
        self._value = ""

    def __call__(self) -> str:
        now = int(time.time())
        if now != self._second:
            self._second, self._value = now, formatdate(now, usegmt=True)
        return self._value


class _PeerGone(Exception):
    """The peer closed, reset, timed out or broke the protocol: drop the connection quietly."""


class HttpServer:
    """Serve *handler* on trio listeners; one `_Connection` per accepted stream.

    *authorize* checks every request before *handler* sees it (module docstring); *identify*,
    when given, is asked once per connection whose first request carries no ``Authorization``
    header whether the peer is our own user (the answer is `Request.peer_is_owner`);
    *first_request_timeout* and *max_unauthenticated* default to the module's constants (read
    when the server is made, so a test may change them).
    """

    def __init__(
        self,
        handler: Handler,
        *,
        authorize: Authorize | None = None,
        identify: Identify | None = None,
        server_name: str = "satchel",
        hold: Callable[[], AbstractContextManager[None]] | None = None,
        first_request_timeout: float | None = None,
        max_unauthenticated: int | None = None,
    ) -> None:
        self.handler = handler
        self.authorize = authorize
        self.identify = identify
        self.server_name = server_name
        #: Entered for the life of each connection (the daemon's activity counter: an installer
        #: using the index keeps an autostarted daemon from idling out under it).
        self.hold = hold or contextlib.nullcontext
        self.date = _Date()
        self.first_request_timeout = (
            FIRST_REQUEST_TIMEOUT if first_request_timeout is None else first_request_timeout
        )
        self.max_unauthenticated = (
            MAX_UNAUTHENTICATED if max_unauthenticated is None else max_unauthenticated
        )
        self._slots = trio.CapacityLimiter(MAX_CONNECTIONS)
        #: Connections waiting for their first request, oldest first.
        self._unauthenticated: dict[_Connection, None] = {}
        #: Open connections (for tests and status).
        self.connections = 0
        #: Unauthenticated connections dropped to make room for newer ones.
        self.dropped = 0

    async def serve(
        self,
        listeners: list[trio.SocketListener],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        async with trio.open_nursery() as nursery:
            for listener in listeners:
                nursery.start_soon(self._accept_loop, listener, nursery)
            task_status.started()

    async def _accept_loop(self, listener: trio.SocketListener, nursery: trio.Nursery) -> None:
        failures = AcceptFailures("local index")
        async with listener:
            while True:
                try:
                    stream = await listener.accept()
                except OSError as exc:
                    await failures.failed(exc)  # EMFILE and friends: the queue holds peers
                    continue
                failures.succeeded()
                connection = _Connection(self, stream)
                self._make_room()
                self._unauthenticated[connection] = None
                nursery.start_soon(self._serve_stream, connection)

    def _make_room(self) -> None:
        """Drop the oldest unauthenticated connection (preferring one that has sent nothing)
        while there are too many."""
        while len(self._unauthenticated) >= self.max_unauthenticated:
            victim = next(
                (c for c in self._unauthenticated if not c.started),
                next(iter(self._unauthenticated)),
            )
            del self._unauthenticated[victim]
            victim.scope.cancel()
            self.dropped += 1

    async def authenticated(self, connection: _Connection) -> None:
        """*connection*'s first request passed: it leaves the waiting room and takes a slot."""
        self._unauthenticated.pop(connection, None)
        await self._slots.acquire_on_behalf_of(connection)
        connection.has_slot = True

    async def _serve_stream(self, connection: _Connection) -> None:
        stream = connection.stream
        self.connections += 1
        try:
            with contextlib.suppress(OSError):
                stream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)
            with connection.scope, self.hold():
                await connection.run()
        finally:
            self.connections -= 1
            self._unauthenticated.pop(connection, None)
            if connection.has_slot:
                self._slots.release_on_behalf_of(connection)
            with contextlib.suppress(OSError):
                await trio.aclose_forcefully(stream)


class _Connection:
    def __init__(self, server: HttpServer, stream: trio.SocketStream) -> None:
        self.server = server
        self.stream = stream
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)
        #: Cancelled to drop the connection (an unauthenticated one making room for a newer).
        self.scope = trio.CancelScope()
        #: Whether any byte arrived; whether the first request authenticated and took a slot.
        self.started = False
        self.has_slot = False
        #: Whether the peer is our own user (asked at most once, see `HttpServer`).
        self.peer_is_owner: bool | None = None
        #: When the first request head must be complete (set by `run`).
        self._first_deadline = 0.0

    async def run(self) -> None:
        self._first_deadline = trio.current_time() + self.server.first_request_timeout
        try:
            while True:
                request = await self._read_request()
                if request is None:
                    return
                request = await self._identified(request)
                authorize = self.server.authorize
                refusal = authorize(request) if authorize is not None else None
                if refusal is not None:
                    refusal.close = True
                    await self._send_response(refusal, head=request.head)
                    await self._linger()
                    return
                if not self.has_slot:
                    await self.server.authenticated(self)
                if request.method.encode() not in _ALLOWED_METHODS:
                    response = Response(
                        405, [("Allow", "GET, HEAD")], b"method not allowed\n", close=True
                    )
                else:
                    response = await self._handle(request)
                    if not self._request_ended():
                        # A GET or HEAD with a body: it is never read, so close rather than
                        # guess where the next request starts.
                        response.close = True
                await self._send_response(response, head=request.head)
                if log.isEnabledFor(logging.DEBUG):
                    log.debug(
                        "local index: %s %s -> %d", request.method, request.target, response.status
                    )
                if response.close or self.conn.our_state is not h11.DONE:
                    await self._linger()
                    return
                self.conn.start_next_cycle()
        except _PeerGone:
            return

    async def _identified(self, request: Request) -> Request:
        """*request*, with `Request.peer_is_owner` from the kernel when it sent no credentials."""
        identify = self.server.identify
        if identify is None or request.header("authorization") is not None:
            return request
        if self.peer_is_owner is None:
            try:
                ours, peer = self.stream.socket.getsockname(), self.stream.socket.getpeername()
            except OSError:
                raise _PeerGone from None
            self.peer_is_owner = await trio.to_thread.run_sync(
                identify, (ours[0], ours[1]), (peer[0], peer[1])
            )
        return replace(request, peer_is_owner=self.peer_is_owner)

    async def _handle(self, request: Request) -> Response:
        try:
            return await self.server.handler(request)
        except Exception:
            log.exception("local index: internal error answering %s", request.method)
            return Response(500, [], b"internal error (see the daemon log)\n", close=True)
        finally:
            wake_settler()  # what the request held may be freed now, off the event loop

    # -- reading --------------------------------------------------------------------------------

    async def _read_request(self) -> Request | None:
        """The next request head, or None when the peer closed or idled out cleanly."""
        # Before authentication, the whole first head is due by the first-request deadline.
        deadline = self._first_deadline if not self.has_slot else trio.current_time() + IDLE_TIMEOUT
        started = False
        while True:
            try:
                event = self.conn.next_event()
            except h11.RemoteProtocolError as exc:
                await self._protocol_error(exc)
                return None
            if isinstance(event, h11.Request):
                headers: dict[str, str] = {}
                for name, value in event.headers:
                    key = name.decode("latin-1")
                    text = value.decode("latin-1")
                    headers[key] = f"{headers[key]}, {text}" if key in headers else text
                return Request(
                    method=event.method.decode("ascii", "replace"),
                    target=event.target.decode("latin-1"),
                    headers=headers,
                )
            if isinstance(event, h11.ConnectionClosed):
                return None
            if event is not h11.NEED_DATA:
                continue  # h11.PAUSED cannot happen before a request: nothing else to see
            with trio.move_on_at(deadline) as scope:
                try:
                    data = await self.stream.receive_some(_RECEIVE)
                except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                    raise _PeerGone from None
            if scope.cancelled_caught:
                if started:
                    await self._send_simple(408, b"request head timed out\n")
                return None
            if data and not started:
                started = self.started = True
                deadline = min(deadline, trio.current_time() + HEAD_TIMEOUT)
            try:
                self.conn.receive_data(data)
            except h11.RemoteProtocolError as exc:
                await self._protocol_error(exc)
                return None

    def _request_ended(self) -> bool:
        """Whether the request had no body (h11 yields its EndOfMessage without more data)."""
        try:
            return isinstance(self.conn.next_event(), h11.EndOfMessage)
        except h11.RemoteProtocolError:
            return False

    async def _linger(self) -> None:
        """Close gracefully: stop sending, then drain what the peer still sends for a moment.

        Closing a socket with unread input makes the kernel send RST, which can destroy our
        error response before the peer reads it (a 431 for a huge head would arrive as
        "connection reset").
        """
        with (
            trio.move_on_after(LINGER_TIMEOUT),
            contextlib.suppress(OSError, trio.TrioInternalError),
        ):
            try:
                await self.stream.send_eof()
                drained = 0
                while drained < LINGER_MAX_BYTES:
                    data = await self.stream.receive_some(_RECEIVE)
                    if not data:
                        break
                    drained += len(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass

    async def _protocol_error(self, exc: h11.RemoteProtocolError) -> None:
        status = exc.error_status_hint or 400
        reason = b"request head too large\n" if status == 431 else b"bad request\n"
        log.debug("local index: bad request: %s", exc)
        await self._send_simple(status, reason)

    async def _send_simple(self, status: int, body: bytes) -> None:
        if self.conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        with contextlib.suppress(_PeerGone, OSError):
            await self._send_response(Response(status, [], body, close=True))
            await self._linger()

    # -- writing --------------------------------------------------------------------------------

    async def _send(self, event: h11.Event) -> None:
        data = self.conn.send(event)
        if data:
            await self._write(data)

    async def _send_response(self, response: Response, *, head: bool = False) -> None:
        headers = [
            ("Date", self.server.date()),
            ("Server", self.server.server_name),
            *response.headers,
        ]
        if response.status != 304:
            headers.append(("Content-Length", str(response.length)))
        if response.close:
            headers.append(("Connection", "close"))
        try:
            data = self.conn.send(
                h11.Response(
                    status_code=response.status,
                    headers=headers,
                    reason=_REASONS.get(response.status, b""),
                )
            )
        except h11.LocalProtocolError as exc:  # a bug here, not the peer's fault
            log.error("local index: cannot send response: %s", exc)  # noqa: TRY400
            raise _PeerGone from None
        body = response.body
        with_body = not head and response.status != 304
        if with_body and isinstance(body, FileBody):
            await self._send_file(data or b"", body)
            return
        # A page, a message or a head alone: one write (one syscall and one trip through the
        # scheduler, not two or three).
        parts = [data or b""]
        if with_body and isinstance(body, bytes) and body:
            parts.append(self.conn.send(h11.Data(data=body)) or b"")
        parts.append(self.conn.send(h11.EndOfMessage()) or b"")
        await self._write(b"".join(parts))

    async def _send_file(self, head: bytes, body: FileBody) -> None:
        """Send the response *head* and a file range: the open and the first read (up to
        `HEAD_CHUNK`) in one worker-thread hop, the head and that chunk in one write (a small
        file's whole response), the rest with ``sendfile`` from the event loop (no copy through
        Python; h11's data passthrough keeps its length count).

        ``sendfile`` runs on the event loop, not in a worker thread: the socket is non-blocking,
        so a call sends what the socket buffer takes and returns, and the file's pages were
        asked for ahead (``POSIX_FADV_WILLNEED``, in the opening hop), so it reads from the page
        cache. A hop per chunk cost more than the send itself (benchmarks/findings.md).

        The file stays open for the whole response, so a concurrent garbage collection cannot
        cut it short; a file that still ends early (truncated under us) drops the connection,
        because the announced length can no longer be honoured.
        """
        try:
            handle, chunk = await trio.to_thread.run_sync(_open_and_read, body)
        except OSError as exc:  # removed by garbage collection since the handler looked
            log.warning("local index: cannot open %s: %s", body.path.name, exc.strerror)
            raise _PeerGone from None
        try:
            offset, remaining = body.offset + len(chunk), body.length - len(chunk)
            if chunk:
                head += self.conn.send(h11.Data(data=chunk)) or b""
            if len(chunk) < min(HEAD_CHUNK, body.length):
                log.error("local index: %s ended early", body.path.name)
                await self._write(head)  # what there is: the peer sees a short body, then EOF
                raise _PeerGone
            if remaining == 0:
                await self._write(head + (self.conn.send(h11.EndOfMessage()) or b""))
                return
            if _SENDFILE is not None:
                span = _Span(remaining)
                data = cast(bytes, span)  # h11 takes len(); see `_Span`
                parts: list[object] = list(
                    self.conn.send_with_data_passthrough(h11.Data(data=data)) or []
                )
                for part in parts:
                    if part is span:
                        if head:
                            await self._write(head)
                            head = b""
                        await self._sendfile(handle, body, offset, remaining)
                    else:
                        head += cast(bytes, part)
            else:
                while remaining > 0:
                    if head:
                        await self._write(head)
                        head = b""
                    chunk = await trio.to_thread.run_sync(handle.read, min(FILE_CHUNK, remaining))
                    if not chunk:
                        log.error("local index: %s ended early", body.path.name)
                        raise _PeerGone
                    remaining -= len(chunk)
                    head = self.conn.send(h11.Data(data=chunk)) or b""
            head += self.conn.send(h11.EndOfMessage()) or b""
            if head:
                await self._write(head)
        finally:
            handle.close()  # no I/O to wait for: closing a read-only file does not block

    async def _write(self, data: bytes) -> None:
        with trio.move_on_after(SEND_TIMEOUT) as scope:
            try:
                await self.stream.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                raise _PeerGone from None
        if scope.cancelled_caught:
            raise _PeerGone

    async def _sendfile(
        self, handle: BinaryIO, body: FileBody, offset: int, remaining: int
    ) -> None:
        """``sendfile`` from *handle* to the (non-blocking) socket, on the event loop: each call
        sends what the socket buffer takes; a full buffer waits (at most `SEND_TIMEOUT`) until
        the peer reads."""
        assert _SENDFILE is not None
        sock = self.stream.socket
        out, src = sock.fileno(), handle.fileno()
        while remaining > 0:
            try:
                sent = _SENDFILE(out, src, offset, min(remaining, SENDFILE_CHUNK))
            except BlockingIOError:
                with trio.move_on_after(SEND_TIMEOUT) as scope:
                    await trio.lowlevel.wait_writable(sock)
                if scope.cancelled_caught:
                    raise _PeerGone from None
                continue
            except OSError:
                raise _PeerGone from None
            if sent == 0:
                log.error("local index: %s ended early", body.path.name)
                raise _PeerGone
            offset += sent
            remaining -= sent
            # A peer that reads as fast as we send never makes the call block: let the other
            # connections run between calls.
            await trio.lowlevel.checkpoint()


class _Span:
    """A file range standing in for bytes in an h11 `Data` event: h11 only takes its length
    (``send_with_data_passthrough`` hands it back untouched, for exactly this use)."""

    def __init__(self, length: int) -> None:
        self.length = length

    def __len__(self) -> int:
        return self.length


def _open_and_read(body: FileBody) -> tuple[BinaryIO, bytes]:
    """Open *body*'s file, read its first `HEAD_CHUNK`, and ask the kernel to read the rest
    ahead (``sendfile`` then finds it in the page cache, off the worker thread)."""
    handle = body.path.open("rb")
    try:
        if body.offset:
            handle.seek(body.offset)
        if body.length > HEAD_CHUNK and _FADVISE is not None:
            span = min(body.length, READ_AHEAD)
            with contextlib.suppress(OSError):
                _FADVISE(handle.fileno(), body.offset, span, _WILLNEED)
        return handle, handle.read(min(HEAD_CHUNK, body.length))
    except BaseException:
        handle.close()
        raise
