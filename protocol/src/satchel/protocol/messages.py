"""The messages of the wire protocol: frozen msgspec Structs in one tagged union.

Every frame body is one JSON object whose ``"type"`` field names the message (snake_case tag),
followed by the fields in the order declared here, e.g.::

    {"type":"request","id":1,"method":"ping","params":{}}

Schema evolution: fields are only ever *added*, always with a default, and unknown fields are
ignored when decoding. So an older peer reads a newer peer's messages (dropping what it does not
know) and a newer peer reads an older one's (filling defaults). Removing or retyping a field is a
protocol major bump (see `satchel.protocol.version`).

Importing this module imports msgspec (~17 ms); the thin client uses plain dicts instead (see
`satchel.protocol.codec.DictCodec`) and never imports it.
"""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = [
    "MESSAGE_TYPES",
    "Cancel",
    "Error",
    "Hello",
    "Incompatible",
    "Log",
    "Message",
    "Progress",
    "Request",
    "Result",
    "Welcome",
]


class Hello(msgspec.Struct, frozen=True, tag_field="type", tag="hello"):
    """Client -> server, always the first message: who is calling and what it speaks.

    `build_id` is informational (the daemon uses none; the `satchel` client sends ``""`` and
    checks the Welcome's against its own, computed while the daemon answers).
    """

    major: int
    minor: int
    client_version: str
    build_id: str
    features: tuple[str, ...] = ()


class Welcome(msgspec.Struct, frozen=True, tag_field="type", tag="welcome"):
    """Server -> client, answers `Hello`: the negotiated protocol version and the daemon's identity.

    `build_id` lets an autostarting client detect a daemon from another build and restart it.
    """

    major: int
    minor: int
    daemon_version: str
    build_id: str
    pid: int
    features: tuple[str, ...] = ()


class Incompatible(msgspec.Struct, frozen=True, tag_field="type", tag="incompatible"):
    """Server -> client, answers `Hello` when no common version exists; both sides then close.

    `wanted` is what the client asked for, `actual` what the daemon speaks (e.g. "2.0", "1.3").
    """

    reason: str
    wanted: str
    actual: str


class Request(msgspec.Struct, frozen=True, tag_field="type", tag="request"):
    """Client -> server: call `method`. `id` is a positive int, unique among in-flight requests."""

    id: int
    method: str
    params: dict[str, Any] = {}


class Cancel(msgspec.Struct, frozen=True, tag_field="type", tag="cancel"):
    """Client -> server: stop request `id`; it still ends with one `Result` or `Error`."""

    id: int


class Progress(msgspec.Struct, frozen=True, tag_field="type", tag="progress"):
    """Server -> client, for an in-flight request: `done` of `total` `unit`s (None: unknown)."""

    id: int
    done: int = 0
    total: int | None = None
    unit: str = ""
    message: str = ""


class Log(msgspec.Struct, frozen=True, tag_field="type", tag="log"):
    """Server -> client, for an in-flight request: a line for the user (`level` as in logging)."""

    id: int
    level: str
    message: str


class Result(msgspec.Struct, frozen=True, tag_field="type", tag="result"):
    """Server -> client: request `id` succeeded; `value` follows the method's result schema."""

    id: int
    value: Any = None


class Error(msgspec.Struct, frozen=True, tag_field="type", tag="error"):
    """Request `id` failed (terminal), or, with `id` None, the whole connection failed.

    `code` is a wire error code from `satchel.protocol.errors`. After a connection-level error
    (id None, either direction) the sender closes the connection.
    """

    id: int | None
    code: str
    message: str
    details: dict[str, Any] = {}


Message = Hello | Welcome | Incompatible | Request | Cancel | Progress | Log | Result | Error

#: Every message type, in the order of the union.
MESSAGE_TYPES: tuple[type[msgspec.Struct], ...] = (
    Hello,
    Welcome,
    Incompatible,
    Request,
    Cancel,
    Progress,
    Log,
    Result,
    Error,
)
