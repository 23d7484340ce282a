"""Satchel's wire protocol, sans-I/O: frames, messages, the connection state machine, errors.

Cheap to import on purpose: the thin client imports this on every `satchel` command, so this
namespace pulls in neither msgspec nor json, re, enum, socket or typing. msgspec is imported by
`satchel.protocol.messages`, `satchel.protocol.methods.*` and the first `StructCodec`
(the default codec of a `Connection` created without one). See docs/protocol.md.
"""

from satchel.protocol.connection import CLIENT, CLOSED, NEED_DATA, SERVER, Connection
from satchel.protocol.errors import (
    FrameTooLarge,
    LocalProtocolError,
    MalformedFrame,
    ProtocolError,
    RemoteProtocolError,
    exit_status,
)
from satchel.protocol.framing import MAX_REQUEST_FRAME, MAX_RESPONSE_FRAME, frame
from satchel.protocol.version import PROTOCOL_MAJOR, PROTOCOL_MINOR, __version__, negotiate

__all__ = [
    "CLIENT",
    "CLOSED",
    "MAX_REQUEST_FRAME",
    "MAX_RESPONSE_FRAME",
    "NEED_DATA",
    "PROTOCOL_MAJOR",
    "PROTOCOL_MINOR",
    "SERVER",
    "Connection",
    "FrameTooLarge",
    "LocalProtocolError",
    "MalformedFrame",
    "ProtocolError",
    "RemoteProtocolError",
    "__version__",
    "exit_status",
    "frame",
    "negotiate",
]
