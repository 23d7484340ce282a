"""Frames: a 4-byte big-endian length, then the body; caps enforced from the header."""

from __future__ import annotations

import tracemalloc

import pytest
from hypothesis import given
from hypothesis import strategies as st

from satchel.protocol.errors import FrameTooLarge, LocalProtocolError, MalformedFrame
from satchel.protocol.framing import (
    HEADER_SIZE,
    MAX_REQUEST_FRAME,
    MAX_RESPONSE_FRAME,
    FrameDecoder,
    frame,
)


def test_frame_prefixes_big_endian_length() -> None:
    assert frame(b"abc") == b"\x00\x00\x00\x03abc"
    assert frame(b"x" * 258)[:HEADER_SIZE] == b"\x00\x00\x01\x02"


def test_caps_are_one_and_sixteen_mebibytes() -> None:
    assert MAX_REQUEST_FRAME == 1024 * 1024
    assert MAX_RESPONSE_FRAME == 16 * 1024 * 1024


def test_empty_body_is_refused_when_sending() -> None:
    with pytest.raises(LocalProtocolError):
        frame(b"")


def test_empty_frame_is_malformed_when_receiving() -> None:
    decoder = FrameDecoder(100)
    with pytest.raises(MalformedFrame):
        decoder.feed(b"\x00\x00\x00\x00")


@given(st.lists(st.binary(min_size=1, max_size=300), max_size=8), st.data())
def test_frames_survive_any_split_of_the_stream(bodies: list[bytes], data: st.DataObject) -> None:
    stream = b"".join(frame(b) for b in bodies)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    decoder = FrameDecoder(300)
    received = []
    start = 0
    for cut in [*cuts, len(stream)]:
        decoder.feed(stream[start:cut])
        start = cut
        while (body := decoder.next_frame()) is not None:
            received.append(body)
    assert received == bodies


def test_frame_one_byte_at_a_time() -> None:
    decoder = FrameDecoder(10)
    stream = frame(b"hello") + frame(b"world")
    got = []
    for i in range(len(stream)):
        decoder.feed(stream[i : i + 1])
        if (body := decoder.next_frame()) is not None:
            got.append(body)
    assert got == [b"hello", b"world"]


def test_frame_of_exactly_the_cap_is_accepted() -> None:
    decoder = FrameDecoder(16)
    decoder.feed(frame(b"y" * 16))
    assert decoder.next_frame() == b"y" * 16


def test_frame_one_byte_over_the_cap_is_refused_from_its_header() -> None:
    decoder = FrameDecoder(16)
    with pytest.raises(FrameTooLarge, match="17 bytes"):
        decoder.feed((17).to_bytes(4, "big"))


def test_header_claiming_4_gib_is_refused_without_allocating() -> None:
    decoder = FrameDecoder(MAX_RESPONSE_FRAME)
    tracemalloc.start()
    try:
        with pytest.raises(FrameTooLarge):
            decoder.feed(b"\xff\xff\xff\xff" + b"x" * 1000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024
    assert decoder.buffered == 0


def test_oversize_header_after_valid_frames_is_refused_on_feed() -> None:
    decoder = FrameDecoder(100)
    with pytest.raises(FrameTooLarge):
        decoder.feed(frame(b"ok") + (101).to_bytes(4, "big") + b"z" * 50)
    assert decoder.buffered == len(frame(b"ok"))


def test_partial_frame_never_buffers_more_than_header_plus_cap() -> None:
    cap = 1000
    decoder = FrameDecoder(cap)
    stream = frame(b"q" * cap)
    for i in range(0, len(stream) - 1, 7):
        decoder.feed(stream[i : min(i + 7, len(stream) - 1)])
        assert decoder.buffered <= HEADER_SIZE + cap
        assert decoder.next_frame() is None
    decoder.feed(stream[-1:])
    assert decoder.next_frame() == b"q" * cap
    assert decoder.buffered == 0


def test_eof_between_frames_closes_cleanly() -> None:
    decoder = FrameDecoder(10)
    decoder.feed(frame(b"a"))
    decoder.eof()
    assert not decoder.closed  # a complete frame is still waiting
    assert decoder.next_frame() == b"a"
    assert decoder.next_frame() is None
    assert decoder.closed


@pytest.mark.parametrize("partial", [b"\x00", b"\x00\x00\x00\x05", b"\x00\x00\x00\x05abc"])
def test_eof_inside_a_frame_is_malformed(partial: bytes) -> None:
    decoder = FrameDecoder(10)
    decoder.feed(partial)
    decoder.eof()
    with pytest.raises(MalformedFrame, match="inside a frame"):
        decoder.next_frame()


def test_data_after_eof_is_malformed() -> None:
    decoder = FrameDecoder(10)
    decoder.eof()
    with pytest.raises(MalformedFrame):
        decoder.feed(b"x")


def test_errors_are_sticky() -> None:
    decoder = FrameDecoder(10)
    with pytest.raises(FrameTooLarge):
        decoder.feed(b"\x00\x00\x01\x00")
    with pytest.raises(FrameTooLarge):
        decoder.feed(frame(b"fine"))
    with pytest.raises(FrameTooLarge):
        decoder.next_frame()


def test_max_frame_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        FrameDecoder(0)
