"""The Connection state machine: handshake, request ids, terminals, cancellation, closing."""

from __future__ import annotations

import tracemalloc
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from satchel.protocol import (
    CLIENT,
    CLOSED,
    NEED_DATA,
    SERVER,
    Connection,
    FrameTooLarge,
    LocalProtocolError,
    MalformedFrame,
    RemoteProtocolError,
    frame,
)
from satchel.protocol.codec import Codec, DictCodec, StructCodec
from satchel.protocol.framing import MAX_REQUEST_FRAME
from satchel.protocol.messages import (
    Cancel,
    Error,
    Hello,
    Incompatible,
    Log,
    Progress,
    Request,
    Result,
)
from tests.protocol.strategies import HELLO, WELCOME, as_dict, json_objects, json_values, text

STRUCT = StructCodec()


def raw(*msgs: msgspec.Struct) -> bytes:
    """Frames for `msgs` written without any state check (what a misbehaving peer could send)."""
    return b"".join(frame(STRUCT.encode(m)) for m in msgs)


def events(conn: Connection, data: bytes | None = None) -> list[Any]:
    """Feed `data` (b"": end of stream), then collect events up to NEED_DATA or CLOSED."""
    if data is not None:
        conn.receive_data(data)
    out = []
    while True:
        event = conn.next_event()
        out.append(event)
        if event is NEED_DATA or event is CLOSED:
            return out


def ready_pair() -> tuple[Connection, Connection]:
    """A client and a server that have completed the handshake."""
    client, server = Connection(CLIENT), Connection(SERVER)
    assert events(server, client.send(HELLO)) == [HELLO, NEED_DATA]
    assert events(client, server.send(WELCOME)) == [WELCOME, NEED_DATA]
    return client, server


# --- construction --------------------------------------------------------------------------------


def test_role_must_be_client_or_server() -> None:
    with pytest.raises(ValueError, match="role"):
        Connection("daemon")


def test_default_codec_is_the_struct_codec() -> None:
    assert isinstance(Connection(CLIENT).codec, StructCodec)


# --- handshake -----------------------------------------------------------------------------------


def test_handshake_records_hello_and_welcome() -> None:
    client, server = ready_pair()
    assert server.peer_hello == HELLO
    assert server.welcome == WELCOME
    assert client.welcome == WELCOME
    assert client.peer_hello is None


def test_client_must_say_hello_before_requesting() -> None:
    with pytest.raises(LocalProtocolError, match="request"):
        Connection(CLIENT).send(Request(id=1, method="ping"))


def test_server_refuses_a_first_message_other_than_hello() -> None:
    with pytest.raises(RemoteProtocolError, match="request"):
        events(Connection(SERVER), raw(Request(id=1, method="ping")))


def test_client_may_pipeline_requests_after_hello() -> None:
    client, server = Connection(CLIENT), Connection(SERVER)
    ping = Request(id=1, method="ping")
    assert events(server, client.send(HELLO) + client.send(ping)) == [HELLO, ping, NEED_DATA]
    assert server.in_flight == {1}
    assert client.in_flight == {1}


def test_server_answers_the_hello_before_any_request() -> None:
    client, server = Connection(CLIENT), Connection(SERVER)
    events(server, client.send(HELLO) + client.send(Request(id=1, method="ping")))
    with pytest.raises(LocalProtocolError, match="before the Hello is answered"):
        server.send(Result(id=1))
    reply = server.send(WELCOME) + server.send(Result(id=1, value={"pid": 1}))
    assert events(client, reply) == [WELCOME, Result(id=1, value={"pid": 1}), NEED_DATA]
    assert client.in_flight == server.in_flight == frozenset()


def test_client_refuses_a_result_before_the_welcome() -> None:
    client = Connection(CLIENT)
    client.send(HELLO)
    client.send(Request(id=1, method="ping"))
    with pytest.raises(RemoteProtocolError):
        events(client, raw(Result(id=1)))


def test_server_cannot_welcome_before_hello() -> None:
    with pytest.raises(LocalProtocolError, match="welcome"):
        Connection(SERVER).send(WELCOME)


def test_client_refuses_a_welcome_it_did_not_ask_for() -> None:
    with pytest.raises(RemoteProtocolError):
        events(Connection(CLIENT), raw(WELCOME))


def test_second_hello_is_refused_both_ways() -> None:
    client, server = ready_pair()
    with pytest.raises(LocalProtocolError):
        client.send(HELLO)
    with pytest.raises(RemoteProtocolError):
        events(server, raw(HELLO))


def test_second_welcome_is_refused_both_ways() -> None:
    client, server = ready_pair()
    with pytest.raises(LocalProtocolError):
        server.send(WELCOME)
    with pytest.raises(RemoteProtocolError):
        events(client, raw(WELCOME))


def test_incompatible_closes_both_sides() -> None:
    client, server = Connection(CLIENT), Connection(SERVER)
    events(server, client.send(HELLO) + client.send(Request(id=1, method="ping")))
    no = Incompatible(reason="protocol major differs", wanted="1.0", actual="2.0")
    data = server.send(no)
    assert server.closed
    assert events(client, data) == [no, CLOSED]
    assert client.closed
    with pytest.raises(LocalProtocolError, match="DONE"):
        client.send(Request(id=2, method="ping"))


def test_server_may_refuse_a_peer_before_its_hello() -> None:
    client, server = Connection(CLIENT), Connection(SERVER)
    client.send(HELLO)
    refusal = Error(id=None, code="forbidden", message="peer uid 1000 is not the daemon's uid 0")
    assert events(client, server.send(refusal)) == [refusal, CLOSED]
    assert server.closed and client.closed


def test_server_sends_nothing_but_an_error_before_hello() -> None:
    with pytest.raises(LocalProtocolError):
        Connection(SERVER).send(Log(id=1, level="info", message="hi"))


# --- request ids ---------------------------------------------------------------------------------


@pytest.mark.parametrize("bad_id", [0, -1, 2**63])
def test_request_ids_are_positive_int64(bad_id: int) -> None:
    client, server = ready_pair()
    with pytest.raises(LocalProtocolError, match="request id"):
        client.send(Request(id=bad_id, method="ping"))
    with pytest.raises(RemoteProtocolError, match="request id"):
        events(server, raw(Request(id=bad_id, method="ping")))


def test_request_id_must_be_an_int_even_in_an_unchecked_struct() -> None:
    client, _ = ready_pair()
    with pytest.raises(LocalProtocolError, match="request id"):
        client.send(Request(id="1", method="ping"))  # type: ignore[arg-type]


def test_duplicate_in_flight_id_is_refused_both_ways() -> None:
    client, server = ready_pair()
    events(server, client.send(Request(id=7, method="a")))
    with pytest.raises(LocalProtocolError, match="already in flight"):
        client.send(Request(id=7, method="b"))
    with pytest.raises(RemoteProtocolError, match="already in flight"):
        events(server, raw(Request(id=7, method="b")))


def test_an_answered_id_may_be_reused() -> None:
    client, server = ready_pair()
    events(server, client.send(Request(id=7, method="a")))
    events(client, server.send(Result(id=7)))
    again = Request(id=7, method="b")
    assert events(server, client.send(again)) == [again, NEED_DATA]


def test_several_requests_are_answered_in_any_order() -> None:
    client, server = ready_pair()
    events(server, b"".join(client.send(Request(id=i, method="m")) for i in (1, 2, 3)))
    answers = [Result(id=3), Progress(id=1, done=1), Error(id=2, code="busy", message="b")]
    answers.append(Result(id=1))
    assert events(client, b"".join(server.send(a) for a in answers)) == [*answers, NEED_DATA]
    assert client.in_flight == server.in_flight == frozenset()


def test_progress_and_log_stream_before_the_result() -> None:
    client, server = ready_pair()
    events(server, client.send(Request(id=1, method="prefetch")))
    stream = [
        Progress(id=1, done=0, total=3, unit="files"),
        Log(id=1, level="info", message="fetching"),
        Progress(id=1, done=3, total=3, unit="files"),
        Result(id=1, value={"files": 3}),
    ]
    assert events(client, b"".join(server.send(m) for m in stream)) == [*stream, NEED_DATA]


def test_exactly_one_terminal_per_request() -> None:
    client, server = ready_pair()
    events(server, client.send(Request(id=1, method="m")))
    answer = server.send(Result(id=1))
    with pytest.raises(LocalProtocolError, match="not in flight"):
        server.send(Error(id=1, code="internal", message="again"))
    events(client, answer)
    with pytest.raises(RemoteProtocolError, match="not in flight"):
        events(client, raw(Error(id=1, code="internal", message="again")))


@pytest.mark.parametrize(
    "late",
    [Progress(id=1), Log(id=1, level="info", message="x"), Result(id=1)],
    ids=["progress", "log", "result"],
)
def test_nothing_follows_a_terminal(late: msgspec.Struct) -> None:
    client, server = ready_pair()
    events(server, client.send(Request(id=1, method="m")))
    events(client, server.send(Result(id=1)))
    with pytest.raises(LocalProtocolError):
        server.send(late)
    with pytest.raises(RemoteProtocolError):
        events(client, raw(late))


def test_client_refuses_events_for_ids_it_never_sent() -> None:
    client, _ = ready_pair()
    with pytest.raises(RemoteProtocolError, match="not in flight"):
        events(client, raw(Progress(id=99)))


def test_only_the_server_answers_requests() -> None:
    client, server = ready_pair()
    client.send(Request(id=1, method="m"))
    with pytest.raises(LocalProtocolError, match="may not send"):
        client.send(Result(id=1))
    with pytest.raises(LocalProtocolError, match="only the server"):
        client.send(Error(id=1, code="cancelled", message="no"))
    with pytest.raises(RemoteProtocolError, match="only the server"):
        events(server, raw(Request(id=1, method="m"), Error(id=1, code="x", message="y")))


def test_server_never_sends_requests() -> None:
    _, server = ready_pair()
    with pytest.raises(LocalProtocolError):
        server.send(Request(id=1, method="m"))


# --- cancellation --------------------------------------------------------------------------------


def test_cancel_reaches_the_server_and_the_request_still_ends_once() -> None:
    client, server = ready_pair()
    events(server, client.send(Request(id=1, method="prefetch")))
    assert events(server, client.send(Cancel(id=1))) == [Cancel(id=1), NEED_DATA]
    assert server.in_flight == {1}
    ended = Error(id=1, code="cancelled", message="cancelled by the client")
    assert events(client, server.send(ended)) == [ended, NEED_DATA]
    assert client.in_flight == server.in_flight == frozenset()


def test_cancel_crossing_the_result_is_ignored_by_the_server() -> None:
    client, server = ready_pair()
    events(server, client.send(Request(id=1, method="m")))
    cancel = client.send(Cancel(id=1))  # the client cancels ...
    result = server.send(Result(id=1))  # ... while the server already answered
    assert events(server, cancel) == [NEED_DATA]
    assert events(client, result) == [Result(id=1), NEED_DATA]


def test_server_ignores_cancel_for_an_id_it_never_saw() -> None:
    _, server = ready_pair()
    assert events(server, raw(Cancel(id=12345))) == [NEED_DATA]


def test_client_cannot_cancel_what_is_not_in_flight() -> None:
    client, _ = ready_pair()
    with pytest.raises(LocalProtocolError, match="not in flight"):
        client.send(Cancel(id=1))


# --- closing -------------------------------------------------------------------------------------


def test_eof_between_frames_is_closed() -> None:
    client, server = ready_pair()
    events(server, client.send(Request(id=1, method="m")))
    assert events(server, b"") == [CLOSED]
    assert server.closed
    assert server.in_flight == {1}  # never to be answered: the daemon cancels the handler
    with pytest.raises(LocalProtocolError):
        server.send(Result(id=1))


def test_eof_delivers_buffered_messages_first() -> None:
    client, server = Connection(CLIENT), Connection(SERVER)
    server.receive_data(client.send(HELLO))
    server.receive_data(b"")
    assert events(server) == [HELLO, CLOSED]


def test_eof_mid_frame_is_malformed() -> None:
    client, server = Connection(CLIENT), Connection(SERVER)
    data = client.send(HELLO)
    server.receive_data(data[:-1])
    server.receive_data(b"")
    with pytest.raises(MalformedFrame, match="inside a frame"):
        server.next_event()


def test_connection_level_error_from_client_closes() -> None:
    client, server = ready_pair()
    bye = Error(id=None, code="protocol", message="the daemon sent garbage")
    assert events(server, client.send(bye)) == [bye, CLOSED]
    assert client.closed and server.closed


def test_data_after_close_is_ignored() -> None:
    client, server = ready_pair()
    events(client, server.send(Error(id=None, code="shutting-down", message="bye")))
    client.receive_data(b"\xff\xff\xff\xff garbage")
    assert client.next_event() is CLOSED


# --- remote errors -------------------------------------------------------------------------------


def test_receive_data_never_raises_and_next_event_does() -> None:
    server = Connection(SERVER)
    server.receive_data(b"\x00\x00\x00\x00")
    with pytest.raises(MalformedFrame):
        server.next_event()


def test_remote_errors_are_sticky() -> None:
    server = Connection(SERVER)
    server.receive_data(raw(WELCOME))
    with pytest.raises(RemoteProtocolError) as first:
        server.next_event()
    server.receive_data(raw(HELLO))
    with pytest.raises(RemoteProtocolError) as second:
        server.next_event()
    assert second.value is first.value


def test_after_a_remote_error_only_a_connection_error_may_be_sent() -> None:
    client, server = ready_pair()
    events(server, client.send(Request(id=1, method="m")))
    server.receive_data(b"\x00\x00\x00\x02{}")
    with pytest.raises(MalformedFrame):
        server.next_event()
    with pytest.raises(LocalProtocolError, match="broke the protocol"):
        server.send(Result(id=1))
    server.send(Error(id=None, code="protocol", message="malformed frame"))
    assert server.closed


# --- frame caps ----------------------------------------------------------------------------------


def test_server_refuses_frames_over_one_mebibyte() -> None:
    server = Connection(SERVER)
    server.receive_data((MAX_REQUEST_FRAME + 1).to_bytes(4, "big"))
    with pytest.raises(FrameTooLarge):
        server.next_event()


def test_client_accepts_large_results() -> None:
    client, server = ready_pair()
    events(server, client.send(Request(id=1, method="resolve")))
    big = Result(id=1, value="x" * (2 * MAX_REQUEST_FRAME))
    assert events(client, server.send(big)) == [big, NEED_DATA]


def test_client_refuses_to_send_what_the_server_would_refuse() -> None:
    client, _ = ready_pair()
    huge = Request(id=1, method="m", params={"blob": "x" * MAX_REQUEST_FRAME})
    with pytest.raises(LocalProtocolError, match="limit"):
        client.send(huge)
    assert client.in_flight == frozenset()  # a refused send changes nothing


def test_custom_receive_cap() -> None:
    server = Connection(SERVER, max_frame=64)
    server.receive_data(raw(Hello(major=1, minor=0, client_version="v" * 100, build_id="b")))
    with pytest.raises(FrameTooLarge):
        server.next_event()


def test_4_gib_header_is_refused_without_allocating() -> None:
    client = Connection(CLIENT)
    client.send(HELLO)
    tracemalloc.start()
    try:
        client.receive_data(b"\xff\xff\xff\xff" + b"\x00" * 4096)
        with pytest.raises(FrameTooLarge):
            client.next_event()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 256 * 1024


# --- round trips through connection pairs --------------------------------------------------------

CODEC_PAIRS = [
    (StructCodec(), StructCodec()),
    (DictCodec(), StructCodec()),
    (StructCodec(), DictCodec()),
    (DictCodec(), DictCodec()),
]


def convert(msg: msgspec.Struct, codec: Codec) -> Any:
    return as_dict(msg) if isinstance(codec, DictCodec) else msg


def feed_in_chunks(conn: Connection, data: bytes, cuts: list[int]) -> list[Any]:
    received: list[Any] = []
    start = 0
    for cut in [*sorted(c % (len(data) + 1) for c in cuts), len(data)]:
        chunk = data[start:cut]
        received.extend(e for e in events(conn, chunk or None) if e is not NEED_DATA)
        start = max(start, cut)
    return received


@settings(max_examples=60, deadline=None)
@given(
    pair=st.sampled_from(CODEC_PAIRS),
    requests=st.lists(st.tuples(text, json_objects()), min_size=1, max_size=5),
    answers=st.lists(
        st.one_of(
            st.builds(lambda v: ("result", v), json_values()),
            st.builds(lambda c, m: ("error", c, m), text, text),
        ),
        min_size=5,
        max_size=5,
    ),
    progress=st.lists(st.integers(0, 3), min_size=5, max_size=5),
    cuts=st.lists(st.integers(0, 10_000), max_size=6),
    order=st.randoms(use_true_random=False),
)
def test_conversations_survive_both_codecs_and_any_chunking(
    pair: tuple[Codec, Codec],
    requests: list[tuple[str, dict[str, Any]]],
    answers: list[tuple[Any, ...]],
    progress: list[int],
    cuts: list[int],
    order: Any,
) -> None:
    client_codec, server_codec = pair
    client, server = Connection(CLIENT, client_codec), Connection(SERVER, server_codec)

    sent = [HELLO] + [
        Request(id=i, method=m, params=p) for i, (m, p) in enumerate(requests, start=1)
    ]
    wire = b"".join(client.send(convert(m, client_codec)) for m in sent)
    assert feed_in_chunks(server, wire, cuts) == [convert(m, server_codec) for m in sent]

    # The server answers: each request gets some progress and one terminal, interleaved.
    queues: list[list[msgspec.Struct]] = []
    for i in range(1, len(requests) + 1):
        answer = answers[i - 1]
        terminal: msgspec.Struct = (
            Result(id=i, value=answer[1])
            if answer[0] == "result"
            else Error(id=i, code=answer[1], message=answer[2])
        )
        queues.append([*(Progress(id=i, done=n) for n in range(progress[i - 1])), terminal])
    replies: list[msgspec.Struct] = [WELCOME]
    while any(queues):
        replies.append(order.choice([q for q in queues if q]).pop(0))
    wire = b"".join(server.send(convert(m, server_codec)) for m in replies)
    assert feed_in_chunks(client, wire, cuts) == [convert(m, client_codec) for m in replies]
    assert client.in_flight == server.in_flight == frozenset()
