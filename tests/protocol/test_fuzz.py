"""Hostile peers: random and garbage input never raises anything but ProtocolError.

Both roles, both codecs. Each connection is first brought into an interesting state (handshake
done, requests 1 and 2 in flight), then fed random frames until it fails or closes, then replaced.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from satchel.protocol import (
    CLIENT,
    CLOSED,
    NEED_DATA,
    SERVER,
    Connection,
    ProtocolError,
    frame,
)
from satchel.protocol.codec import Codec, DictCodec, StructCodec
from satchel.protocol.messages import Request
from tests.protocol.strategies import HELLO, WELCOME

COMBINATIONS = [
    pytest.param(role, codec, id=f"{role}-{name}")
    for role in (CLIENT, SERVER)
    for name, codec in (("struct", StructCodec()), ("dict", DictCodec()))
]

STRUCT = StructCodec()
TAGS = ["hello", "welcome", "incompatible", "request", "cancel", "progress", "log", "result"]
TAGS += ["error", "nonsense"]
FIELDS = ["id", "major", "minor", "method", "params", "code", "message", "details", "value"]
FIELDS += ["level", "done", "total", "unit", "pid", "build_id", "client_version"]
FIELDS += ["daemon_version", "features", "reason", "wanted", "actual"]


def primed(role: str, codec: Codec) -> Connection:
    """A connection after the handshake with requests 1 and 2 in flight."""
    conn = Connection(role, codec)
    if role == CLIENT:
        for msg in (HELLO, Request(id=1, method="a"), Request(id=2, method="b")):
            conn.send(msg if isinstance(codec, StructCodec) else _as_dict(msg))
        conn.receive_data(frame(STRUCT.encode(WELCOME)))
    else:
        for msg in (HELLO, Request(id=1, method="a"), Request(id=2, method="b")):
            conn.receive_data(frame(STRUCT.encode(msg)))
        while conn.next_event() is not NEED_DATA:
            pass
        conn.send(WELCOME if isinstance(codec, StructCodec) else _as_dict(WELCOME))
    return conn


def _as_dict(msg: msgspec.Struct) -> dict[str, Any]:
    return {"type": msg.__struct_config__.tag, **msgspec.structs.asdict(msg)}


def random_value(rng: random.Random, depth: int = 0) -> Any:
    choice = rng.randrange(12 if depth < 3 else 8)
    options: list[Callable[[], Any]] = [
        lambda: rng.choice([0, 1, 2, 3, -1, 2**63, 2**64 + 1]),
        lambda: rng.choice(["", "ping", "é", "\x00", "a" * 50]),
        lambda: None,
        lambda: rng.choice([True, False]),
        lambda: rng.choice([0.5, -0.0, 1e300, 1.0]),
        lambda: rng.randrange(1, 4),
        lambda: rng.randrange(1, 4),
        lambda: rng.choice(["x", "progress"]),
        lambda: [random_value(rng, depth + 1) for _ in range(rng.randrange(3))],
        lambda: {rng.choice(FIELDS): random_value(rng, depth + 1) for _ in range(rng.randrange(3))},
        lambda: ["x"] * rng.randrange(3),
        lambda: {},
    ]
    return options[choice]()


#: Valid messages of every type (ids 1-3: in flight, or not), the seeds of most random frames.
TEMPLATES: list[dict[str, Any]] = [
    {"type": "hello", "major": 1, "minor": 0, "client_version": "v", "build_id": "b"},
    {"type": "welcome", "major": 1, "minor": 0, "daemon_version": "v", "build_id": "b", "pid": 1},
    {"type": "incompatible", "reason": "r", "wanted": "2.0", "actual": "1.0"},
    *({"type": "request", "id": i, "method": "m", "params": {}} for i in (1, 2, 3)),
    *({"type": "cancel", "id": i} for i in (1, 2, 3)),
    *({"type": "progress", "id": i, "done": 1, "total": 2} for i in (1, 2, 3)),
    *({"type": "log", "id": i, "level": "info", "message": "m"} for i in (1, 2, 3)),
    *({"type": "result", "id": i, "value": [1]} for i in (1, 2, 3)),
    *({"type": "error", "id": i, "code": "c", "message": "m"} for i in (1, 2, 3, None)),
]


def random_body(rng: random.Random) -> bytes:
    """A frame body: valid or mutated messages, message-shaped junk, sometimes noise."""
    roll = rng.random()
    if roll < 0.1:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40)))
    if roll < 0.6:
        obj = dict(rng.choice(TEMPLATES))
        for _ in range(rng.choice([0, 0, 1, 2])):
            key = rng.choice([*obj, *FIELDS])
            if rng.random() < 0.3:
                obj.pop(key, None)
            else:
                obj[key] = random_value(rng)
    else:
        obj = {"type": rng.choice(TAGS)}
        for _ in range(rng.randrange(6)):
            obj[rng.choice(FIELDS)] = random_value(rng)
    body = bytearray(msgspec.json.encode(obj))
    if roll > 0.85 and body:  # flip a byte of otherwise valid JSON
        body[rng.randrange(len(body))] = rng.randrange(256)
    return bytes(body)


def drain(conn: Connection) -> tuple[int, bool]:
    """Consume events; return (messages delivered, whether the connection is finished)."""
    delivered = 0
    while True:
        event = conn.next_event()
        if event is NEED_DATA:
            return delivered, False
        if event is CLOSED:
            return delivered, True
        delivered += 1


@pytest.mark.parametrize(("role", "codec"), COMBINATIONS)
def test_ten_thousand_random_frames_raise_only_protocol_errors(role: str, codec: Codec) -> None:
    rng = random.Random(f"frames-{role}-{type(codec).__name__}")
    conn = primed(role, codec)
    delivered = errors = 0
    for _ in range(10_000):
        conn.receive_data(frame(random_body(rng)))
        try:
            count, finished = drain(conn)
        except ProtocolError:
            errors += 1
            finished, count = True, 0
        delivered += count
        if finished:
            conn = primed(role, codec)
    # Both outcomes occur, so the state machine was exercised and not merely the JSON parser.
    assert delivered > 100
    assert errors > 1000


@pytest.mark.parametrize(("role", "codec"), COMBINATIONS)
def test_random_byte_streams_raise_only_protocol_errors(role: str, codec: Codec) -> None:
    rng = random.Random(f"streams-{role}-{type(codec).__name__}")
    for _ in range(3_000):
        conn = primed(role, codec) if rng.random() < 0.5 else Connection(role, codec)
        for _ in range(rng.randrange(1, 5)):
            if rng.random() < 0.5:  # plausible small header followed by noise
                size = rng.randrange(0, 30)
                chunk = size.to_bytes(4, "big") + rng.randbytes(rng.randrange(0, 40))
            else:
                chunk = rng.randbytes(rng.randrange(0, 40))
            conn.receive_data(chunk)
        if rng.random() < 0.5:
            conn.receive_data(b"")
        with contextlib.suppress(ProtocolError):
            drain(conn)


@given(
    st.sampled_from([(r, c) for r in (CLIENT, SERVER) for c in (StructCodec(), DictCodec())]),
    st.lists(st.binary(max_size=64), max_size=5),
    st.booleans(),
)
def test_any_byte_stream_raises_only_protocol_errors(
    combo: tuple[str, Codec], chunks: list[bytes], eof: bool
) -> None:
    role, codec = combo
    conn = primed(role, codec)
    for chunk in chunks:
        conn.receive_data(chunk)
    if eof:
        conn.receive_data(b"")
    with contextlib.suppress(ProtocolError):
        drain(conn)
