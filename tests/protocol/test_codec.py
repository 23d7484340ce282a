"""Codecs: both write the same JSON, validate the same shape, and fail only with MalformedFrame."""

from __future__ import annotations

import contextlib
import random
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from satchel.protocol import codec as codec_module
from satchel.protocol.codec import Codec, DictCodec, StructCodec
from satchel.protocol.errors import LocalProtocolError, MalformedFrame
from satchel.protocol.messages import MESSAGE_TYPES, Error, Hello, Progress, Request
from tests.protocol.strategies import as_dict, json_values, messages

STRUCT = StructCodec()
DICT = DictCodec()
CODECS = [pytest.param(STRUCT, id="struct"), pytest.param(DICT, id="dict")]


# --- round trips and byte compatibility ----------------------------------------------------------


@given(messages())
def test_struct_codec_round_trips_every_message(msg: msgspec.Struct) -> None:
    assert STRUCT.decode(STRUCT.encode(msg)) == msg


@given(messages())
def test_dict_codec_round_trips_every_message(msg: msgspec.Struct) -> None:
    assert DICT.decode(DICT.encode(as_dict(msg))) == as_dict(msg)


@given(messages(floats=False))
def test_both_codecs_write_identical_bytes(msg: msgspec.Struct) -> None:
    assert DICT.encode(as_dict(msg)) == STRUCT.encode(msg)


@given(messages())
def test_each_codec_reads_what_the_other_writes(msg: msgspec.Struct) -> None:
    assert DICT.decode(STRUCT.encode(msg)) == as_dict(msg)
    assert STRUCT.decode(DICT.encode(as_dict(msg))) == msg


def test_float_exponents_are_the_only_spelling_difference() -> None:
    msg = Request(id=1, method="m", params={"x": 1e16})
    assert STRUCT.encode(msg) == b'{"type":"request","id":1,"method":"m","params":{"x":1e16}}'
    assert (
        DICT.encode(as_dict(msg)) == b'{"type":"request","id":1,"method":"m","params":{"x":1e+16}}'
    )
    assert STRUCT.decode(DICT.encode(as_dict(msg))) == msg


def test_non_ascii_is_written_as_utf8() -> None:
    msg = Error(id=None, code="x", message="café ☕")
    assert "café ☕".encode() in DICT.encode(as_dict(msg))
    assert DICT.encode(as_dict(msg)) == STRUCT.encode(msg)


def test_dict_codec_mirrors_every_struct_field() -> None:
    table = codec_module._FIELDS
    for cls in MESSAGE_TYPES:
        tag = str(cls.__struct_config__.tag)
        assert tuple(name for name, _, _ in table[tag]) == cls.__struct_fields__
        required = {name for name, _, default in table[tag] if default is codec_module._REQUIRED}
        assert required == set(
            cls.__struct_fields__[: len(cls.__struct_fields__) - len(cls.__struct_defaults__)]
        )
    assert set(table) == {cls.__struct_config__.tag for cls in MESSAGE_TYPES}


# --- schema evolution ----------------------------------------------------------------------------


@pytest.mark.parametrize("codec", CODECS)
def test_unknown_fields_are_ignored(codec: Codec) -> None:
    body = b'{"type":"cancel","id":3,"reason":"added in 1.7","nested":{"a":[1]}}'
    assert codec.encode(codec.decode(body)) == b'{"type":"cancel","id":3}'


@pytest.mark.parametrize("codec", CODECS)
def test_missing_optional_fields_get_their_defaults(codec: Codec) -> None:
    msg = codec.decode(b'{"type":"progress","id":9}')
    assert codec.encode(msg) == STRUCT.encode(Progress(id=9))


def test_dict_codec_fills_defaults_with_fresh_containers() -> None:
    first = DICT.decode(b'{"type":"request","id":1,"method":"m"}')
    first["params"]["mutated"] = True
    second = DICT.decode(b'{"type":"request","id":2,"method":"m"}')
    assert second["params"] == {}


def test_dict_codec_accepts_messages_without_optional_fields() -> None:
    assert DICT.encode({"type": "request", "id": 1, "method": "ping"}) == STRUCT.encode(
        Request(id=1, method="ping")
    )


# --- kind and request id -------------------------------------------------------------------------


@given(messages())
def test_kind_and_request_id_agree_between_codecs(msg: msgspec.Struct) -> None:
    assert DICT.kind(as_dict(msg)) == STRUCT.kind(msg) == msg.__struct_config__.tag
    assert DICT.request_id(as_dict(msg)) == STRUCT.request_id(msg) == getattr(msg, "id", None)


# --- malformed input -----------------------------------------------------------------------------

MALFORMED = [
    pytest.param(b"\xff\xfe{}", id="not-utf8"),
    pytest.param(b'{"type":"cancel","id":1', id="truncated"),
    pytest.param(b"[1,2]", id="array"),
    pytest.param(b'"hello"', id="string"),
    pytest.param(b"{}", id="no-type"),
    pytest.param(b'{"type":"teleport","id":1}', id="unknown-type"),
    pytest.param(b'{"type":7}', id="type-not-string"),
    pytest.param(b'{"type":"cancel"}', id="missing-id"),
    pytest.param(b'{"type":"cancel","id":"1"}', id="id-string"),
    pytest.param(b'{"type":"cancel","id":1.0}', id="id-float"),
    pytest.param(b'{"type":"cancel","id":true}', id="id-bool"),
    pytest.param(b'{"type":"cancel","id":null}', id="id-null"),
    pytest.param(b'{"type":"request","id":1,"method":"m","params":[]}', id="params-array"),
    pytest.param(
        b'{"type":"hello","major":1,"minor":0,"client_version":"x","build_id":"y","features":[1]}',
        id="features-int",
    ),
    pytest.param(b'{"type":"progress","id":1,"total":"many"}', id="total-string"),
    pytest.param(b'{"type":"cancel","id":NaN}', id="nan"),
    pytest.param(b'{"type":"cancel","id":1e400}', id="number-out-of-range"),
    pytest.param(b'{"type":"cancel","id":1} {}', id="trailing-data"),
    pytest.param(b'{"type":"cancel","id":1,}', id="trailing-comma"),
    pytest.param(b'{"type":"log","id":1,"level":"info","message":"a\nb"}', id="raw-control-char"),
    pytest.param(
        b'{"type":"result","id":1,"value":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        id="deep-nesting",
    ),
    pytest.param(
        b'{"type":"result","id":1,"value":' + b'{"a":' * 50_000 + b"1" + b"}" * 50_001,
        id="deep-objects",
    ),
    pytest.param(b"{" * 10_000, id="open-braces"),
    pytest.param(b"", id="empty"),
    pytest.param(b"   ", id="whitespace"),
]


@pytest.mark.parametrize("body", MALFORMED)
@pytest.mark.parametrize("codec", CODECS)
def test_malformed_bodies_raise_malformed_frame(codec: Codec, body: bytes) -> None:
    with pytest.raises(MalformedFrame):
        codec.decode(body)


@given(st.binary(max_size=200))
def test_arbitrary_bytes_raise_only_malformed_frame(body: bytes) -> None:
    for codec in (STRUCT, DICT):
        with contextlib.suppress(MalformedFrame):
            codec.decode(body)


@given(
    st.dictionaries(
        st.sampled_from(
            [
                "type",
                "id",
                "method",
                "params",
                "code",
                "message",
                "details",
                "value",
                "level",
                "major",
                "minor",
                "pid",
                "build_id",
            ]
        ),
        json_values(),
        max_size=6,
    ),
    st.sampled_from([t.__struct_config__.tag for t in MESSAGE_TYPES]),
)
def test_codecs_accept_and_refuse_the_same_objects(obj: dict[str, Any], tag: str) -> None:
    """The stdlib validator is a faithful miniature of msgspec's: same verdict on any object."""
    obj = {"type": tag, **obj} if "type" not in obj else obj
    body = msgspec.json.encode(obj)
    verdicts = []
    for codec in (STRUCT, DICT):
        try:
            codec.decode(body)
            verdicts.append(True)
        except MalformedFrame:
            verdicts.append(False)
    assert verdicts[0] == verdicts[1]


def test_ten_thousand_mutated_messages_raise_only_malformed_frame() -> None:
    """Byte-level mutations of valid bodies: each decodes or raises MalformedFrame, nothing else."""
    rng = random.Random(20261124)
    seeds = [
        STRUCT.encode(m)
        for m in (
            Hello(major=1, minor=0, client_version="0.1.0", build_id="b", features=("x",)),
            Request(id=1, method="status", params={"a": [1, 2.5, None, {"b": "é"}]}),
            Progress(id=2, done=3, total=10, unit="files", message="m"),
            Error(id=None, code="protocol", message="bad", details={"k": True}),
        )
    ]
    alphabet = b'{}[]":,0123456789-.eE+ntrufalsenul\\ \x00\xff\xc3'
    outcomes = {"ok": 0, "error": 0}
    for _ in range(10_000):
        body = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 4)):
            op = rng.random()
            pos = rng.randrange(len(body) + 1)
            if op < 0.4 and body:
                body[min(pos, len(body) - 1)] = rng.choice(alphabet)
            elif op < 0.7:
                body[pos:pos] = bytes([rng.choice(alphabet)])
            else:
                del body[pos : pos + rng.randint(1, 5)]
        for codec in (STRUCT, DICT):
            try:
                codec.decode(bytes(body))
                outcomes["ok"] += 1
            except MalformedFrame:
                outcomes["error"] += 1
    assert outcomes["ok"] > 0 and outcomes["error"] > 0  # both paths were exercised


# --- encoding refusals ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "msg",
    [
        pytest.param({"type": "request", "id": 1}, id="missing-method"),
        pytest.param(
            {"type": "request", "id": 1, "method": "m", "colour": "red"}, id="unknown-field"
        ),
        pytest.param({"type": "request", "id": "1", "method": "m"}, id="id-string"),
        pytest.param({"type": "result", "id": 1, "value": object()}, id="unencodable-value"),
        pytest.param({"type": "result", "id": 1, "value": float("nan")}, id="nan"),
        pytest.param({"type": "result", "id": 1, "value": "\ud800"}, id="lone-surrogate"),
        pytest.param({"type": "beam-me-up"}, id="unknown-type"),
        pytest.param(["request"], id="not-a-dict"),
    ],
)
def test_dict_codec_refuses_to_encode_invalid_messages(msg: Any) -> None:
    with pytest.raises(LocalProtocolError):
        DICT.encode(msg)


def test_dict_codec_refuses_to_encode_cycles() -> None:
    value: list[Any] = []
    value.append(value)
    with pytest.raises(LocalProtocolError):
        DICT.encode({"type": "result", "id": 1, "value": value})


@pytest.mark.parametrize(
    "msg",
    [
        pytest.param({"type": "request", "id": 1, "method": "m"}, id="dict"),
        pytest.param(msgspec.Struct(), id="foreign-struct"),
        pytest.param(Request(id=1, method="m", params={"x": object()}), id="unencodable-param"),
    ],
)
def test_struct_codec_refuses_to_encode_invalid_messages(msg: Any) -> None:
    with pytest.raises(LocalProtocolError):
        STRUCT.encode(msg)
