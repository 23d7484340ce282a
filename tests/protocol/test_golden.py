"""Golden wire captures: the format is pinned, and every truncation or corruption fails cleanly.

The captures are written by `tests/protocol/golden/make_golden.py` (see its docstring).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest

from satchel.protocol import (
    CLIENT,
    CLOSED,
    NEED_DATA,
    SERVER,
    Connection,
    MalformedFrame,
    ProtocolError,
)
from satchel.protocol.codec import Codec, DictCodec, StructCodec
from tests.protocol.golden.make_golden import CLIENT_MESSAGES, SERVER_MESSAGES, stream
from tests.protocol.strategies import as_dict

GOLDEN = Path(__file__).parent / "golden"
HANDSHAKE = (GOLDEN / "handshake.bin").read_bytes()
REPLY = (GOLDEN / "reply.bin").read_bytes()

CODECS = [pytest.param(StructCodec(), id="struct"), pytest.param(DictCodec(), id="dict")]
CASES = [
    pytest.param(SERVER, HANDSHAKE, CLIENT_MESSAGES, id="server-reads-handshake"),
    pytest.param(CLIENT, REPLY, SERVER_MESSAGES, id="client-reads-reply"),
]


def receiver(role: str, codec: Codec) -> Connection:
    """The side that reads a capture; a client must first have sent its half."""
    conn = Connection(role, codec)
    if role == CLIENT:
        for msg in CLIENT_MESSAGES:
            conn.send(msg if isinstance(codec, StructCodec) else as_dict(msg))
    return conn


def read_all(conn: Connection, data: bytes, eof: bool) -> list[Any]:
    if data:  # (b"" would mean end of stream)
        conn.receive_data(data)
    if eof:
        conn.receive_data(b"")
    out = []
    while (event := conn.next_event()) is not NEED_DATA and event is not CLOSED:
        out.append(event)
    out.append(event)
    return out


def expected(messages: list[msgspec.Struct], codec: Codec) -> list[Any]:
    return [m if isinstance(codec, StructCodec) else as_dict(m) for m in messages]


def frame_ends(data: bytes) -> set[int]:
    ends, pos = {0}, 0
    while pos < len(data):
        pos += 4 + int.from_bytes(data[pos : pos + 4], "big")
        ends.add(pos)
    return ends


def test_captures_match_the_current_encoding() -> None:
    assert stream(CLIENT_MESSAGES) == HANDSHAKE
    assert stream(SERVER_MESSAGES) == REPLY


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize(("role", "data", "messages"), CASES)
def test_capture_decodes_completely(
    role: str, data: bytes, messages: list[msgspec.Struct], codec: Codec
) -> None:
    events = read_all(receiver(role, codec), data, eof=True)
    # The server sees the Cancel (request 2 is in flight); the client ends with nothing pending.
    assert events == [*expected(messages, codec), CLOSED]


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize(("role", "data", "messages"), CASES)
def test_every_truncation_needs_data_or_fails_cleanly(
    role: str, data: bytes, messages: list[msgspec.Struct], codec: Codec
) -> None:
    ends = frame_ends(data)
    want = expected(messages, codec)
    for length in range(len(data)):
        prefix = data[:length]
        # Without end of stream: a prefix of the conversation, then NEED_DATA.
        events = read_all(receiver(role, codec), prefix, eof=False)
        assert events[-1] is NEED_DATA
        assert events[:-1] == want[: len(events) - 1]
        # With end of stream: CLOSED exactly at frame boundaries, MalformedFrame inside a frame.
        conn = receiver(role, codec)
        if length in ends:
            assert read_all(conn, prefix, eof=True)[-1] is CLOSED
        else:
            with pytest.raises(MalformedFrame):
                read_all(conn, prefix, eof=True)


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize(("role", "data", "messages"), CASES)
def test_every_corrupted_byte_gives_valid_events_or_a_protocol_error(
    role: str, data: bytes, messages: list[msgspec.Struct], codec: Codec
) -> None:
    outcomes = {"events": 0, "error": 0}
    for pos in range(len(data)):
        original = data[pos]
        for value in {0x00, 0xFF, original ^ 0x01, original ^ 0x20, ord('"'), ord("}")} - {
            original
        }:
            corrupted = data[:pos] + bytes([value]) + data[pos + 1 :]
            try:
                events = read_all(receiver(role, codec), corrupted, eof=True)
            except ProtocolError:
                outcomes["error"] += 1
            else:
                assert events[-1] in (CLOSED, NEED_DATA)
                outcomes["events"] += 1
    # Some corruptions are still valid messages (a changed letter in a string), most are not.
    assert outcomes["events"] > 0
    assert outcomes["error"] > outcomes["events"]
