"""The protocol state machine shared by client and daemon, in the h11 style.

A `Connection` owns no socket. Feed it what the socket produced (`receive_data`), ask it for
messages (`next_event`), and ask it for the bytes of what you want to send (`send`). It checks
every message in both directions against the state table below and keeps the request-id
bookkeeping, so the daemon and the client cannot disagree about who may say what.

Handshake state (one variable per connection; "->" is the transition)::

    state    client may send                  server may send
    START    Hello -> HELLO                   -
    HELLO    Request, Cancel (pipelined)      Welcome -> READY, Incompatible -> DONE
    READY    Request, Cancel                  Progress, Log, Result, Error(id)
    any      Error(id=None) -> DONE           Error(id=None) -> DONE
    DONE     nothing; next_event() returns CLOSED

The client may pipeline Requests right after its Hello, without waiting for the Welcome: a
`satchel ping` is then one write and one read. The server must answer the Hello before it
answers any request.

Per request id (ids are positive ints chosen by the client, unique among in-flight requests)::

    Request(id)             -> in flight      (an id already in flight is a protocol error)
    Progress(id), Log(id)   only while in flight
    Result(id), Error(id)   exactly one, ends it; anything later for that id is an error
    Cancel(id)              the client may cancel an in-flight id; the server ignores a Cancel
                            for an id it has already answered (the two cross on the wire), and
                            still ends a cancelled request with its one Result or Error

Errors: sending something illegal raises `LocalProtocolError` (our bug) and changes nothing;
receiving something illegal raises a `RemoteProtocolError` from `next_event`, and every later
`next_event` raises it again. After a remote error the only thing left to send is a
connection-level `Error(id=None, code="protocol")` before closing. `receive_data` never raises.

Closing: end of stream between frames gives `CLOSED` (inside a frame: `MalformedFrame`);
`Incompatible` or a connection-level `Error` in either direction also closes. Once closed,
`send` raises `LocalProtocolError` (a daemon must drop answers to a client that went away),
and `in_flight` keeps the ids that will never be answered.
"""

from __future__ import annotations

from satchel.protocol.errors import LocalProtocolError, ProtocolError, RemoteProtocolError
from satchel.protocol.framing import MAX_REQUEST_FRAME, MAX_RESPONSE_FRAME, FrameDecoder, frame

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from satchel.protocol.codec import Codec

__all__ = ["CLIENT", "CLOSED", "MAX_REQUEST_ID", "NEED_DATA", "SERVER", "Connection"]

CLIENT = "client"
SERVER = "server"

#: Request ids must fit a signed 64-bit integer, so peers in any language can hold them.
MAX_REQUEST_ID = (1 << 63) - 1


class _Sentinel:
    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name


#: `next_event` result: no complete message is buffered; read more and call `receive_data`.
NEED_DATA = _Sentinel("NEED_DATA")
#: `next_event` result: the conversation is over (end of stream, Incompatible, connection Error).
CLOSED = _Sentinel("CLOSED")

_START = "START"
_HELLO = "HELLO"
_READY = "READY"
_DONE = "DONE"

#: (sender role, state) -> message kinds that sender may send in that state.
_ALLOWED: dict[tuple[str, str], frozenset[str]] = {
    (CLIENT, _START): frozenset({"hello", "error"}),
    (CLIENT, _HELLO): frozenset({"request", "cancel", "error"}),
    (CLIENT, _READY): frozenset({"request", "cancel", "error"}),
    (CLIENT, _DONE): frozenset(),
    (SERVER, _START): frozenset({"error"}),
    (SERVER, _HELLO): frozenset({"welcome", "incompatible", "error"}),
    (SERVER, _READY): frozenset({"progress", "log", "result", "error"}),
    (SERVER, _DONE): frozenset(),
}

_WHEN = {
    _START: "before the Hello",
    _HELLO: "before the Hello is answered",
    _READY: "after the handshake",
    _DONE: "after the connection closed",
}

#: Messages about one request that only the server sends, only for an in-flight id.
_ANSWERS = frozenset({"progress", "log", "result", "error"})
_TERMINAL = frozenset({"result", "error"})

_default_codec: Codec | None = None


def _struct_codec() -> Codec:
    """One shared StructCodec (stateless), created on first use so importing stays cheap."""
    global _default_codec
    if _default_codec is None:
        from satchel.protocol.codec import StructCodec

        _default_codec = StructCodec()
    return _default_codec


class Connection:
    """One side of one connection: the handshake, request ids and framing, without I/O."""

    __slots__ = (
        "_codec",
        "_decoder",
        "_error",
        "_in_flight",
        "_peer",
        "_peer_hello",
        "_role",
        "_send_cap",
        "_state",
        "_welcome",
    )

    def __init__(self, role: str, codec: Codec | None = None, max_frame: int | None = None) -> None:
        if role == CLIENT:
            peer, receive_cap, send_cap = SERVER, MAX_RESPONSE_FRAME, MAX_REQUEST_FRAME
        elif role == SERVER:
            peer, receive_cap, send_cap = CLIENT, MAX_REQUEST_FRAME, MAX_RESPONSE_FRAME
        else:
            raise ValueError(f"role must be {CLIENT!r} or {SERVER!r}, not {role!r}")
        self._role = role
        self._peer = peer
        self._codec = codec if codec is not None else _struct_codec()
        self._decoder = FrameDecoder(receive_cap if max_frame is None else max_frame)
        self._send_cap = send_cap
        self._state = _START
        self._in_flight: set[int] = set()
        self._error: ProtocolError | None = None
        self._peer_hello: Any = None
        self._welcome: Any = None

    def __repr__(self) -> str:
        return (
            f"<Connection {self._role} {self._state} in_flight={sorted(self._in_flight)}"
            f"{' broken' if self._error else ''}>"
        )

    # --- state ---------------------------------------------------------------------------

    @property
    def role(self) -> str:
        return self._role

    @property
    def codec(self) -> Codec:
        return self._codec

    @property
    def peer_hello(self) -> Any:
        """The client's Hello, once a server has received it (always None for a client)."""
        return self._peer_hello

    @property
    def welcome(self) -> Any:
        """The Welcome, once a client has received it or a server has sent it."""
        return self._welcome

    @property
    def in_flight(self) -> frozenset[int]:
        """Ids of requests sent (client) or received (server) and not yet answered."""
        return frozenset(self._in_flight)

    @property
    def closed(self) -> bool:
        """True once the conversation is over: nothing more may be sent or will be received."""
        return self._state is _DONE

    # --- sending -------------------------------------------------------------------------

    def send(self, msg: Any) -> bytes:
        """Return the framed bytes of `msg` and record it; `LocalProtocolError` if illegal now."""
        body = self._codec.encode(msg)
        kind = self._codec.kind(msg)
        rid = self._codec.request_id(msg)
        if self._error is not None and not (kind == "error" and rid is None):
            raise LocalProtocolError(
                "the peer broke the protocol: only a connection-level error may still be sent"
            )
        if len(body) > self._send_cap:
            raise LocalProtocolError(
                f"{kind} message of {len(body)} bytes exceeds the peer's limit of {self._send_cap}"
            )
        self._apply(kind, rid, msg, self._role, LocalProtocolError)
        return frame(body)

    # --- receiving -----------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Buffer bytes from the peer; `b""` means end of stream. Errors surface in next_event."""
        if self._state is _DONE:
            return
        try:
            if data:
                self._decoder.feed(data)
            else:
                self._decoder.eof()
        except RemoteProtocolError:
            pass  # the decoder keeps the error and raises it from next_frame()

    def next_event(self) -> Any:
        """Return the next message, `NEED_DATA` or `CLOSED`; `RemoteProtocolError` if illegal."""
        while True:
            if self._error is not None:
                raise self._error
            if self._state is _DONE:
                return CLOSED
            try:
                body = self._decoder.next_frame()
                if body is None:
                    if self._decoder.closed:
                        self._state = _DONE
                        return CLOSED
                    return NEED_DATA
                msg = self._codec.decode(body)
                kind = self._codec.kind(msg)
                rid = self._codec.request_id(msg)
                if self._apply(kind, rid, msg, self._peer, RemoteProtocolError):
                    return msg
            except RemoteProtocolError as exc:
                self._error = exc
                raise

    # --- the state table -----------------------------------------------------------------

    def _apply(
        self, kind: str, rid: int | None, msg: Any, sender: str, error: type[ProtocolError]
    ) -> bool:
        """Check `msg` (sent by `sender`) against the state and record it.

        Returns False for a message to ignore: a received Cancel for an id no longer in flight.
        """
        state = self._state
        if kind not in _ALLOWED[sender, state]:
            raise error(f"the {sender} may not send {kind!r} {_WHEN[state]} (state {state})")
        in_flight = self._in_flight
        if kind == "request":
            if type(rid) is not int or not 0 < rid <= MAX_REQUEST_ID:
                raise error(f"request id must be an int in [1, 2**63 - 1], not {rid!r}")
            if rid in in_flight:
                raise error(f"request id {rid} is already in flight")
            in_flight.add(rid)
        elif kind == "cancel":
            if rid not in in_flight:
                if sender == self._role:
                    raise error(f"cannot cancel request {rid!r}: it is not in flight")
                return False
        elif kind in _ANSWERS and (rid is not None or kind != "error"):
            if sender == CLIENT:
                raise error("only the server answers requests (a client's Error needs id None)")
            if state is not _READY:
                raise error(f"{kind!r} for request {rid} before the handshake completed")
            if rid not in in_flight:
                raise error(f"{kind!r} for request {rid!r}, which is not in flight")
            if kind in _TERMINAL:
                in_flight.discard(rid)
        elif kind == "hello":
            self._state = _HELLO
            if sender == CLIENT and self._role == SERVER:
                self._peer_hello = msg
        elif kind == "welcome":
            self._state = _READY
            self._welcome = msg
        elif kind in ("incompatible", "error"):  # connection-level: the conversation ends
            self._state = _DONE
        else:  # pragma: no cover - the tables above cover every kind
            raise error(f"unexpected message kind {kind!r}")
        return True
