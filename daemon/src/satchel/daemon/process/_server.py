"""The accept loop and one task tree per connection: peer check, handshake, concurrent requests.

Per connection::

    peer uid == ours? -- no --> Error(id=None, "forbidden"), close
    Hello within HANDSHAKE_TIMEOUT? -- no --> close;  major mismatch --> Incompatible, close
    loop: read bytes -> Connection -> events
        Request -> its own task (and JobInfo), up to MAX_REQUESTS_PER_CONNECTION at once
        Cancel  -> cancel that request's scope only; it still ends with Error("cancelled")
        EOF     -> cancel this connection's requests only

Why each of these:

- The peer uid is checked with the kernel's credentials for the connecting process
  (SO_PEERCRED on Linux, getpeereid on macOS), because file modes are advisory from our point
  of view: a user (or a careless `chmod 0666`) may loosen them, but another uid must still never
  reach the cache or trigger installs.
- A connection is a task of its own, reads happen only when the `Connection` wants more data,
  and a frame is capped at `MAX_REQUEST_FRAME`, so one stalled or hostile client (half a frame,
  then silence) costs one parked task and at most one frame of memory, never anyone else's
  latency. Unauthenticated connections that do not say Hello in time are dropped.
- Writes to one connection are serialised by a `trio.Lock` (several request tasks may answer at
  once; frames must not interleave), and a peer that stops reading is cut after `SEND_TIMEOUT`
  instead of pinning its requests forever.
- Answers waiting for a peer that does not read them are bounded: past `PAUSE_READING_BYTES` its
  requests are no longer read (backpressure), past `MAX_UNSENT_BYTES` it is closed.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import socket
import struct
import sys
import time
from typing import TYPE_CHECKING, Any

import trio

from satchel.daemon.api import RequestContext, dispatch
from satchel.daemon.services.fdlimit import AcceptFailures
from satchel.daemon.storage.memory import give_back_now, wake_settler
from satchel.protocol import errors as codes
from satchel.protocol.codec import StructCodec
from satchel.protocol.connection import CLOSED, NEED_DATA, Connection
from satchel.protocol.errors import ProtocolError
from satchel.protocol.framing import frame
from satchel.protocol.messages import (
    Cancel,
    Error,
    Hello,
    Incompatible,
    Log,
    Message,
    Progress,
    Request,
    Welcome,
)
from satchel.protocol.methods.cache import CACHE_PRUNE, CACHE_VERIFY
from satchel.protocol.methods.install import INSTALL, RUN
from satchel.protocol.methods.resolve import PREFETCH, RESOLVE
from satchel.protocol.version import negotiate, protocol_string

if TYPE_CHECKING:
    from satchel.daemon.process._activation import Listeners
    from satchel.daemon.services.daemon import App, JobInfo

__all__ = [
    "GIVE_BACK_AFTER",
    "HANDSHAKE_TIMEOUT",
    "MAX_REQUESTS_PER_CONNECTION",
    "MAX_UNSENT_BYTES",
    "SEND_TIMEOUT",
    "Server",
    "peer_credentials",
]

log = logging.getLogger(__name__)

#: A client says Hello immediately after connecting; one that has not within this time is
#: stalled or hostile, and its socket is better spent on someone else.
HANDSHAKE_TIMEOUT = 5.0

#: A client that has not read a frame we are writing for this long is gone or hostile.
SEND_TIMEOUT = 30.0

#: Requests one connection may have in flight; more are refused with "busy". Bounds the tasks
#: and memory one peer can make us hold.
MAX_REQUESTS_PER_CONNECTION = 256

#: Bytes asked of the socket per read.
RECV_SIZE = 65536

#: Encoded answers one connection may have waiting for the socket (the peer not reading them)
#: before it is closed; an answer alone is always let through, however large (up to the
#: 16 MiB frame cap). 20 clients pipelining requests without reading once took the daemon to
#: 1.27 GB (issue 11.13); now each costs at most this much, plus one frame.
MAX_UNSENT_BYTES = 4 * 2**20
#: Above this many waiting bytes the connection's requests are no longer read: a peer that
#: does not read its answers gets no new work done for it (backpressure), its socket fills.
PAUSE_READING_BYTES = 1 * 2**20

#: Methods whose work churns the heap (resolves, installs, prefetches, walks of the cache): once
#: one has answered, the memory it freed goes back to the system (`give_back_now`), so the
#: daemon's resident memory between requests is its live objects, not its last request's peak.
GIVE_BACK_AFTER = frozenset({RESOLVE, PREFETCH, INSTALL, RUN, CACHE_VERIFY, CACHE_PRUNE})

#: accept() failures that mean "out of resources for now", not "the listener is broken".
_TRANSIENT_ACCEPT_ERRNOS = frozenset(
    {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM, errno.ECONNABORTED}
)


def peer_credentials(sock: Any) -> tuple[int | None, int]:
    """(pid or None, uid) of the process at the other end of a connected Unix socket."""
    if sys.platform == "linux":
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        pid, uid, _gid = struct.unpack("3i", raw)
        return pid, uid
    return None, _getpeereid(sock.fileno())


def _getpeereid(fd: int) -> int:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    uid = ctypes.c_uint32()
    gid = ctypes.c_uint32()
    if libc.getpeereid(fd, ctypes.byref(uid), ctypes.byref(gid)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return uid.value


class Server:
    """Accepts connections on the daemon's listeners and serves them until told to stop."""

    def __init__(self, app: App) -> None:
        self.app = app
        self._accept_scope = trio.CancelScope()
        self._accept_stopped = trio.Event()
        self._peers: set[_Peer] = set()
        self._uid = os.geteuid()

    async def serve(
        self, listeners: Listeners, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Accept until `stop_accepting`, then keep serving open connections until cancelled."""
        trio_listeners = [
            trio.SocketListener(trio.socket.from_stdlib_socket(sock)) for sock in listeners.sockets
        ]
        async with trio.open_nursery() as connections:
            try:
                with self._accept_scope:
                    async with trio.open_nursery() as acceptors:
                        for listener in trio_listeners:
                            acceptors.start_soon(self._accept_loop, listener, connections)
                        task_status.started()
            finally:
                for listener in trio_listeners:
                    with contextlib.suppress(OSError):
                        listener.socket.close()
                self._accept_stopped.set()

    async def stop_accepting(self) -> None:
        """Close the listeners; connected clients stay, but new requests are refused."""
        self._accept_scope.cancel()
        await self._accept_stopped.wait()

    def cancel_requests(self) -> None:
        """Cancel every in-flight request; each still tells its client it was cut short."""
        for peer in list(self._peers):
            peer.cancel_requests(codes.SHUTTING_DOWN, "the daemon is shutting down")

    async def _accept_loop(self, listener: trio.SocketListener, nursery: trio.Nursery) -> None:
        failures = AcceptFailures("socket")
        while True:
            try:
                stream = await listener.accept()
            except OSError as exc:
                if exc.errno in _TRANSIENT_ACCEPT_ERRNOS:
                    await failures.failed(exc)
                    continue
                raise
            failures.succeeded()
            nursery.start_soon(self._handle, stream)

    async def _handle(self, stream: trio.SocketStream) -> None:
        try:
            pid, uid = peer_credentials(stream.socket)
        except OSError as exc:
            log.warning("cannot read peer credentials (%s); closing", exc)
            await trio.aclose_forcefully(stream)
            return
        if uid != self._uid:
            log.warning(
                "refusing connection from uid %d (pid %s): not our uid %d", uid, pid, self._uid
            )
            await _refuse(stream, uid)
            return
        log.debug("connection from pid %s", pid)
        peer = _Peer(self.app, stream, pid)
        self._peers.add(peer)
        try:
            with self.app.activity.hold():
                await peer.run()
        finally:
            self._peers.discard(peer)


async def _refuse(stream: trio.SocketStream, uid: int) -> None:
    """Tell a foreign peer why it is refused, then close; never wait long on it."""
    message = Error(
        None,
        codes.FORBIDDEN,
        f"this daemon serves uid {os.geteuid()} only; connections from uid {uid} are refused",
    )
    with trio.move_on_after(1.0):
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await stream.send_all(frame(StructCodec().encode(message)))
    await trio.aclose_forcefully(stream)


class _InFlight:
    """A running request: its job entry, its own cancel scope, and what to answer if cut."""

    __slots__ = ("cancel_code", "cancel_message", "job", "scope")

    def __init__(self, job: JobInfo, request_id: int) -> None:
        self.job = job
        self.scope = trio.CancelScope()
        self.cancel_code = codes.CANCELLED
        self.cancel_message = f"request {request_id} was cancelled"

    def cancel(self, code: str, message: str) -> None:
        self.cancel_code, self.cancel_message = code, message
        self.scope.cancel()


class _Peer:
    """One client connection: its protocol state, its in-flight requests, its write lock."""

    def __init__(self, app: App, stream: trio.SocketStream, pid: int | None) -> None:
        self.app = app
        self.stream = stream
        self.pid = pid
        self.conn = Connection("server")  # the shared, stateless StructCodec
        self.send_lock = trio.Lock()
        self.requests: dict[int, _InFlight] = {}
        self._scope = trio.CancelScope()
        self.protocol = ""
        #: Set once the peer broke the protocol: answers still being computed for its earlier
        #: requests are dropped (the state machine would refuse them; nobody will read them).
        self.peer_broke = False
        #: Bytes encoded for this peer and not yet written (`MAX_UNSENT_BYTES`).
        self.unsent = 0
        self._drained = trio.lowlevel.ParkingLot()

    async def run(self) -> None:
        try:
            with self._scope:
                async with trio.open_nursery() as nursery:
                    if await self._handshake():
                        await self._read_requests(nursery)
                    # EOF, protocol error or refusal: this client's requests go with it.
                    nursery.cancel_scope.cancel()
        finally:
            await trio.aclose_forcefully(self.stream)

    def cancel_requests(self, code: str, message: str) -> None:
        for running in list(self.requests.values()):
            running.cancel(code, message)

    async def _next_event(self) -> Any:
        """The next message, reading from the socket only when the Connection needs bytes."""
        while True:
            event = self.conn.next_event()
            if event is not NEED_DATA:
                return event
            try:
                data = await self.stream.receive_some(RECV_SIZE)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                data = b""
            self.conn.receive_data(data)

    async def _handshake(self) -> bool:
        try:
            with trio.move_on_after(HANDSHAKE_TIMEOUT) as timeout:
                event = await self._next_event()
        except ProtocolError as exc:
            await self._protocol_error(exc)
            return False
        if timeout.cancelled_caught:
            log.info(
                "client pid %s sent no Hello within %g s; closing", self.pid, HANDSHAKE_TIMEOUT
            )
            return False
        if not isinstance(event, Hello):
            return False  # CLOSED: the client left before saying anything
        agreed = negotiate(event.major, event.minor, event.features)
        if agreed is None:
            await self.send(
                Incompatible(
                    reason=(
                        f"client speaks protocol {event.major}.x, daemon speaks {protocol_string()}"
                    ),
                    wanted=protocol_string(event.major, event.minor),
                    actual=protocol_string(),
                )
            )
            return False
        major, minor, features = agreed
        self.protocol = protocol_string(major, minor)
        await self.send(
            Welcome(major, minor, self.app.version, self.app.build_id, self.app.pid, features)
        )
        return True

    async def _read_requests(self, nursery: trio.Nursery) -> None:
        while True:
            while self.unsent > PAUSE_READING_BYTES:
                await self._drained.park()
            try:
                event = await self._next_event()
            except ProtocolError as exc:
                await self._protocol_error(exc)
                return
            if event is CLOSED:
                return
            if isinstance(event, Request):
                await self._start_request(event, nursery)
            elif isinstance(event, Cancel):
                running = self.requests.get(event.id)
                if running is not None:
                    running.cancel(
                        codes.CANCELLED, f"request {event.id} was cancelled by the client"
                    )
            elif isinstance(event, Error) and event.id is None:
                log.info("client pid %s closed with %s: %s", self.pid, event.code, event.message)
                return

    async def _start_request(self, request: Request, nursery: trio.Nursery) -> None:
        if self.app.shutting_down:
            await self.send(
                Error(request.id, codes.SHUTTING_DOWN, "the daemon is shutting down; retry shortly")
            )
            return
        if len(self.requests) >= MAX_REQUESTS_PER_CONNECTION:
            await self.send(
                Error(
                    request.id,
                    codes.BUSY,
                    f"too many requests in flight on one connection "
                    f"(limit {MAX_REQUESTS_PER_CONNECTION})",
                )
            )
            return
        job = self.app.add_job(request.method, request.id, self.pid)
        running = _InFlight(job, request.id)
        self.requests[request.id] = running
        nursery.start_soon(self._run_request, request, running)

    async def _run_request(self, request: Request, running: _InFlight) -> None:
        ctx = RequestContext(self.app, request.id, request.method, self.send_event, self.protocol)
        try:
            # The reply is passed straight on: `send` holds the only reference, and frees it
            # once encoded (answers waiting for a slow reader are held as bytes only).
            await self.send(await self._reply(ctx, request, running))
            if request.method in GIVE_BACK_AFTER and ctx.churned:
                await give_back_now()
        finally:
            self.requests.pop(request.id, None)
            self.app.remove_job(running.job)
            wake_settler()  # what the request held may be freed now, off the event loop

    async def _reply(self, ctx: RequestContext, request: Request, running: _InFlight) -> Message:
        reply: Message | None = None
        with running.scope:
            reply = await dispatch(ctx, request)
        if reply is None:  # our own scope was cancelled: Cancel or shutdown
            reply = Error(request.id, running.cancel_code, running.cancel_message)
        log.debug(
            "%s (request %d, pid %s): %s in %.1f ms",
            request.method,
            request.id,
            self.pid,
            reply.code if isinstance(reply, Error) else "ok",
            (time.time() - running.job.started_at) * 1000,
        )
        return reply

    async def send_event(self, message: Progress | Log) -> None:
        """Send a Progress/Log event; a client that has gone simply misses it, and so does an
        event for a request already answered (work that outlived the request reporting late: a
        download or look-ahead it shared). Sent anyway, it would be a protocol error, and the
        connection, with the answers of its other requests, would be closed."""
        if message.id not in self.conn.in_flight:
            log.debug("dropped a late %s for request %d", type(message).__name__, message.id)
            return
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await self.send(message)

    async def send(self, message: Message) -> None:
        """Encode and write one message; frames of concurrent senders never interleave.

        The message is encoded at once (the answer's objects are freed while it waits for the
        socket) and counted in `unsent`; a peer past `MAX_UNSENT_BYTES` is not reading its
        answers, and is closed.
        """
        if self.conn.closed or self.peer_broke:
            return  # the client went away (EOF or a connection-level Error): drop answers
        try:
            data = self.conn.send(message)
        except ProtocolError:
            log.exception("refusing to send an invalid message %r", type(message).__name__)
            self._scope.cancel()
            return
        del message
        self.unsent += len(data)
        try:
            if self.unsent > MAX_UNSENT_BYTES and self.unsent > len(data):
                log.warning(
                    "client pid %s is not reading its answers (%d bytes waiting); closing",
                    self.pid,
                    self.unsent,
                )
                self._scope.cancel()
                return
            async with self.send_lock:
                if self.peer_broke:
                    return
                await self._write(data)
        finally:
            self.unsent -= len(data)
            if self.unsent <= PAUSE_READING_BYTES:
                self._drained.unpark_all()

    async def _write(self, data: bytes) -> None:
        with trio.move_on_after(SEND_TIMEOUT) as timeout:
            try:
                await self.stream.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self._scope.cancel()  # the reader will see EOF too; stop everything now
                return
        if timeout.cancelled_caught:
            log.warning("client pid %s stopped reading for %g s; closing", self.pid, SEND_TIMEOUT)
            self._scope.cancel()

    async def _protocol_error(self, exc: ProtocolError) -> None:
        log.info("protocol error from client pid %s: %s", self.pid, exc)
        self.peer_broke = True
        with trio.move_on_after(1.0):
            # The state machine may refuse to send after a failure: write the frame directly.
            data = frame(self.conn.codec.encode(Error(None, codes.PROTOCOL, str(exc))))
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                async with self.send_lock:
                    await self.stream.send_all(data)
