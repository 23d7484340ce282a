"""Parse a large PEP 691 JSON page in a child process, so the daemon never holds it (issue 11.6).

Why a process, not a worker thread: a 60 MB page is seconds of CPU and ~300 MB of transient
objects (the body, msgspec's view of it, the validated entries). In a thread, the long C calls
among them (scanning the body, decoding it) held the GIL for tens of milliseconds at a time, so
the event loop answered pings 120-250 ms late, and the freed objects left the daemon's allocator
~150 MB larger for good. In a child the body streams straight from the HTTP response into its
stdin, the parse contends with nothing in the daemon, and every byte of its memory goes back to
the system when it exits. The daemon receives the validated entries in small batches
(`BATCH_FILES`), each decoded in a moment, and holds only the parsed page.

The child runs the very same validation (`satchel.daemon.upstream.simple.parse_json_page`); a page
it refuses comes back as the same `UpstreamError` message, a `NotAPage` as a `NotAPage` (a
stored page answers instead of that one). It gets no credentials: its environment is only what
finds this package and formats its log lines (its warnings go to the daemon's stderr, where
the daemon's own go).

Wire format, both ways length-prefixed msgpack frames (`_frame`): stdin takes a `Request` then
the body until EOF; stdout gives `Files` batches, then one `Done` or `Failed`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import struct
import subprocess
import sys
from collections.abc import AsyncIterator, Iterable
from typing import Any

import msgspec
import trio

from satchel.daemon.errors import NotAPage, UpstreamError
from satchel.daemon.storage.memory import (
    HUGE_ITEMS,
    dismantle_sequence,
    hold_huge,
    tuple_held_if_huge,
)
from satchel.daemon.storage.model import FileEntry, ProjectPage, share_repeated

__all__ = ["BATCH_FILES", "parse_in_child"]

log = logging.getLogger(__name__)

#: Entries per frame the child sends: ~120 KB, decoded in under a millisecond, so the daemon's
#: event loop never waits long on the thread decoding them, and the frames in flight stay small.
BATCH_FILES = 250
#: The child parses at this lower priority: it is seconds of throughput work, and on a busy
#: machine it took the CPU the daemon's event loop needed to answer within milliseconds (pings
#: answered 25 ms late while it ran on 2 loaded cores).
PARSER_NICENESS = 10
_LENGTH = struct.Struct(">I")
#: The largest frame either side accepts: a batch of `BATCH_FILES` entries of at most a few KB.
_MAX_FRAME = 64 * 2**20


class Request(msgspec.Struct, frozen=True):
    index: str
    project: str
    url: str
    log_level: int


class Files(msgspec.Struct, frozen=True, tag=True):
    files: list[FileEntry]


class Done(msgspec.Struct, frozen=True, tag=True):
    #: The page without its files (they came in the `Files` frames, in order).
    page: ProjectPage


class Failed(msgspec.Struct, frozen=True, tag=True):
    message: str
    details: dict[str, Any] = {}
    #: The refusal was `NotAPage` (JSON that is not the simple API), which a stored page
    #: answers instead of (`satchel.daemon.indexes.catalog`), not any other `UpstreamError`.
    not_a_page: bool = False


_reply_decoder = msgspec.msgpack.Decoder(Files | Done | Failed)


def _decode_reply(frame: bytes, seen: dict[object, object]) -> Files | Done | Failed:
    """One frame of the child's answer; its files share repeated values (`share_repeated`)."""
    reply: Files | Done | Failed = _reply_decoder.decode(frame)
    if isinstance(reply, Files):
        return Files(share_repeated(reply.files, seen))
    return reply


def _frame(data: bytes) -> bytes:
    return _LENGTH.pack(len(data)) + data


def _child_environ() -> dict[str, str]:
    """What the child needs to import this package and log like the daemon; nothing else."""
    environ = {"PYTHONPATH": os.pathsep.join(path for path in sys.path if path)}
    for name in ("PATH", "JOURNAL_STREAM", "LANG"):
        if name in os.environ:
            environ[name] = os.environ[name]
    return environ


async def _frames(stream: trio.abc.ReceiveStream, what: str) -> AsyncIterator[bytes]:
    buffer = bytearray()
    while True:
        while len(buffer) >= _LENGTH.size:
            (length,) = _LENGTH.unpack_from(buffer)
            if length > _MAX_FRAME:
                raise UpstreamError(f"{what}: the page parser sent a malformed answer")
            if len(buffer) < _LENGTH.size + length:
                break
            frame = bytes(buffer[_LENGTH.size : _LENGTH.size + length])
            del buffer[: _LENGTH.size + length]
            yield frame
        chunk = await stream.receive_some(2**20)
        if not chunk:
            if buffer:
                raise UpstreamError(f"{what}: the page parser's answer broke off")
            return
        buffer += chunk


async def parse_in_child(
    head: bytes, rest: AsyncIterator[Iterable[bytes]], *, index: str, project: str, url: str
) -> ProjectPage:
    """The page whose body is *head* then the pieces from *rest*, parsed in a child process.

    Raises `UpstreamError` as `parse_json_page` does, or naming the parser's failure.
    """
    what = f"index {index}: project {project}"
    request = msgspec.msgpack.encode(
        Request(index, project, url, logging.getLogger().getEffectiveLevel())
    )
    command = [sys.executable, "-m", "satchel.daemon.upstream._pageprocess"]
    files: list[FileEntry] = []
    outcome: Done | Failed | None = None
    process = await trio.lowlevel.open_process(
        command,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=_child_environ(),
        cwd="/",
    )
    assert process.stdin is not None and process.stdout is not None
    try:
        # In sequence: the child reads its whole stdin before it writes a byte.
        try:
            await process.stdin.send_all(_frame(request) + head)
            async for pieces in rest:
                for piece in pieces:
                    await process.stdin.send_all(piece)
        except trio.BrokenResourceError:
            pass  # the child stopped reading: its answer and exit status say why
        finally:
            await process.stdin.aclose()
        seen: dict[object, object] = {}
        async for frame in _frames(process.stdout, what):
            reply = await trio.to_thread.run_sync(_decode_reply, frame, seen)
            if isinstance(reply, Files):
                files.extend(reply.files)
            else:
                outcome = reply
        status = await process.wait()
    finally:
        if process.returncode is None:  # the body broke off, or the request was cancelled
            process.kill()
            with trio.CancelScope(shield=True):
                await process.wait()
        await process.stdout.aclose()
    if len(files) >= HUGE_ITEMS:  # freed off the event loop, whatever happens next
        hold_huge(files, dismantle_sequence)
    if isinstance(outcome, Failed):
        kind = NotAPage if outcome.not_a_page else UpstreamError
        raise kind(outcome.message, details=dict(outcome.details))
    if outcome is None or status != 0:
        raise UpstreamError(f"{what}: the page parser exited with status {status}")
    return msgspec.structs.replace(outcome.page, files=tuple_held_if_huge(files))


def _main() -> None:
    """The child: read a `Request` and the body from stdin, answer on stdout."""
    from satchel.daemon.settings.log import setup_logging
    from satchel.daemon.upstream.simple import parse_json_page

    with contextlib.suppress(OSError):
        os.nice(PARSER_NICENESS)
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    (length,) = _LENGTH.unpack(stdin.read(_LENGTH.size))
    request = msgspec.msgpack.decode(stdin.read(length), type=Request)
    setup_logging(str(request.log_level))
    body = bytearray(stdin.read())
    encoder = msgspec.msgpack.Encoder()
    try:
        page = parse_json_page(body, index=request.index, project=request.project, url=request.url)
    except UpstreamError as exc:
        failed = Failed(str(exc), exc.details, not_a_page=isinstance(exc, NotAPage))
        stdout.write(_frame(encoder.encode(failed)))
        return
    del body
    for start in range(0, len(page.files), BATCH_FILES):
        batch = Files(list(page.files[start : start + BATCH_FILES]))
        stdout.write(_frame(encoder.encode(batch)))
    stdout.write(_frame(encoder.encode(Done(msgspec.structs.replace(page, files=())))))
    stdout.flush()


if __name__ == "__main__":
    _main()
