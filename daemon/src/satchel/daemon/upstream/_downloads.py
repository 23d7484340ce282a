"""Response bodies from an index: decoding under a cap, and file downloads that survive breaks.

Split out of `satchel.daemon.upstream.client` because reading a body safely is its own job, separate
from deciding what to request:

* `Decoder` undoes ``Content-Encoding`` while counting *decompressed* bytes, and drives zlib with
  ``max_length`` so a gzip bomb never inflates past the cap (pages, metadata and files all use it).
* `Download` reads one file over HTTP: opening it retries transport failures and 5xx/429 with
  backoff (honouring a bounded ``Retry-After``), and restarts from byte 0 when a resume is
  answered 416; a body slower than `Limits.min_rate` over `Limits.min_rate_window` is cut (a
  slow-drip server resets the read timeout with every byte, and a file has no size-independent
  deadline); a body that breaks off (reset, truncated) is resumed with a ``Range`` request where
  it stopped, and bytes already delivered are skipped if the index ignores the range (or after a
  restart). The consumer sees one stream.

Whether the index is reachable at all is `satchel.daemon.upstream._breaker`'s business: a transport
failure while (re)opening surfaces here as `ConnectFailure`, for the caller to hand to the
breaker.
"""

from __future__ import annotations

import logging
import random
import time
import zlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import httpx
import trio

from satchel.daemon.errors import HostileInput, UpstreamError
from satchel.daemon.settings.credentials import redact
from satchel.daemon.upstream._breaker import (
    ConnectFailure,
    Retries,
    ServerError,
    check_status,
    describe,
)

if TYPE_CHECKING:
    from satchel.daemon.upstream.limits import Limits

__all__ = ["CHUNK", "Decoder", "Download", "FileDownload", "Opener"]

#: The upstream client's logger: "resuming at byte N" keeps the name operators know.
_log = logging.getLogger("satchel.daemon.upstream.client")

#: Read and decompression step.
CHUNK = 256 * 1024

#: Sends the file's GET with these headers (redirects and credentials handled by the caller).
Opener = Callable[[dict[str, str]], AbstractAsyncContextManager[tuple[httpx.Response, str]]]


@dataclass
class FileDownload:
    """An open download: iterate it for chunks; `size` is the announced length, if any."""

    url: str
    filename: str
    size: int | None
    _chunks: AsyncIterator[bytes] = field(repr=False)

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks


class Decoder:
    """Content-Encoding decoder that never produces more than *cap* bytes in total."""

    def __init__(self, encoding: str, cap: int, what: str) -> None:
        encoding = encoding.strip().lower()
        if encoding in ("", "identity"):
            self._zlib = None
        elif encoding in ("gzip", "x-gzip"):
            self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            self._zlib = zlib.decompressobj()
        else:
            raise UpstreamError(f"{what}: unsupported Content-Encoding {encoding[:40]!r}")
        self.cap, self.what, self.total = cap, what, 0

    def _count(self, data: bytes) -> bytes:
        self.total += len(data)
        if self.total > self.cap:
            raise HostileInput(f"{self.what}: larger than the {self.cap} byte limit")
        return data

    def decode(self, data: bytes) -> list[bytes]:
        if self._zlib is None:
            return [self._count(data)]
        out: list[bytes] = []
        try:
            piece = self._zlib.decompress(data, CHUNK)
            out.append(self._count(piece))
            while self._zlib.unconsumed_tail:
                piece = self._zlib.decompress(self._zlib.unconsumed_tail, CHUNK)
                out.append(self._count(piece))
        except zlib.error as exc:
            raise UpstreamError(f"{self.what}: corrupt compressed body ({exc})") from None
        return out


class _BodyBroken(UpstreamError):
    """A file body broke off (reset, truncated): resumed from where it stopped, or retried."""


class Download:
    """One file over HTTP (see the module docstring); `aclose` releases the open response."""

    def __init__(self, opener: Opener, what: str, cap: int, limits: Limits) -> None:
        self._opener = opener
        self._what = what
        self._cap = cap
        self._limits = limits
        self._stack = AsyncExitStack()
        self.response: httpx.Response

    async def aclose(self) -> None:
        await self._stack.aclose()

    async def open(self, offset: int = 0) -> None:
        """Open the file from byte *offset* into `response`, retrying what is transient.

        A transport failure (refused, reset, no answer within `Limits.silence`) and a 5xx/429
        are retried up to `Limits.attempts` times with backoff, honouring ``Retry-After`` (at
        most `Limits.max_retry_after`). A resume the index answers 416 (the range starts past
        its end: a Content-Length that promised more than the file has) restarts from byte 0;
        `chunks` skips what was already delivered. The last transport failure is re-raised as
        `ConnectFailure`, for the caller's breaker.
        """
        retries = Retries(self._limits)
        while True:
            headers = {"Accept-Encoding": "identity"}
            if offset:
                headers["Range"] = f"bytes={offset}-"
            await self._stack.aclose()
            self._stack = AsyncExitStack()
            try:
                # The answer's head must come within `Limits.silence` (the body may pause for
                # longer: the opener's read timeout is `Limits.read_timeout`).
                with trio.fail_after(self._limits.silence):
                    response, _ = await self._stack.enter_async_context(self._opener(headers))
            except (ConnectFailure, trio.TooSlowError) as exc:
                if isinstance(exc, trio.TooSlowError):
                    exc = ConnectFailure(f"no answer within {self._limits.silence:g}s")
                pause = retries.pause(exc)
                if pause is None:
                    raise
                _log.info("%s: opening failed (%s): retrying", self._what, exc)
                await trio.sleep(pause)
                continue
            if offset and response.status_code == 416:
                _log.info("%s: resume at byte %d refused (416): restarting", self._what, offset)
                offset = 0
                pause = retries.pause(None)
                if pause is None:
                    raise UpstreamError(f"{self._what}: the index refused every resume (416)")
                continue
            try:
                if not (offset and response.status_code == 206):
                    check_status(response, self._what)
            except ServerError as exc:
                pause = retries.pause(exc)
                if pause is None:
                    raise UpstreamError(
                        f"{self._what}: the index answered {exc} {retries.tries} times in a row"
                    ) from None
                await trio.sleep(pause)
                continue
            self.response = response
            return

    def _backoff(self, attempt: int) -> float:
        """The pause after failed attempt number *attempt* (exponential, with jitter)."""
        return self._limits.backoff * 2.0 ** (attempt - 1) * (0.5 + random.random())  # noqa: S311

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body's bytes; a body that breaks off is resumed where it stopped (a Range
        request; bytes already seen are skipped if the index ignores the range), at most
        `Limits.attempts` times. The consumer sees one uninterrupted stream."""
        what, cap = self._what, self._cap
        received = 0
        for attempt in range(1, self._limits.attempts + 1):
            response = self.response
            encoding = response.headers.get("Content-Encoding", "")
            skip = received if response.status_code == 200 else 0
            decoder = Decoder(encoding, cap - received + skip, what)
            try:
                async for piece in _paced_chunks(response, decoder, what, self._limits):
                    if skip:
                        dropped = min(skip, len(piece))
                        piece, skip = piece[dropped:], skip - dropped
                    received += len(piece)
                    if piece:
                        yield piece
            except _BodyBroken:
                resumable = encoding.strip().lower() in ("", "identity")
                if not resumable or attempt == self._limits.attempts:
                    raise
            else:
                return
            await trio.sleep(self._backoff(attempt))
            _log.info("%s: resuming at byte %d", what, received)
            await self.open(received)


async def _paced_chunks(
    response: httpx.Response, decoder: Decoder, what: str, limits: Limits
) -> AsyncIterator[bytes]:
    """The decoded body; cut when slower than `Limits.min_rate`, `_BodyBroken` when it breaks."""
    window_start, window_bytes = time.monotonic(), 0
    try:
        # No chunk size: httpx would buffer up to it, and a drip would arrive as one late chunk.
        async for raw in response.aiter_raw():
            window_bytes += len(raw)
            now = time.monotonic()
            if now - window_start >= limits.min_rate_window:
                if window_bytes < limits.min_rate * (now - window_start):
                    raise UpstreamError(
                        f"{what}: download too slow ({window_bytes} bytes in "
                        f"{now - window_start:.0f}s, under {limits.min_rate} bytes/s)"
                    )
                window_start, window_bytes = now, 0
            for piece in decoder.decode(raw):
                if piece:
                    yield piece
    except (httpx.TransportError, httpx.StreamError) as exc:
        raise _BodyBroken(redact(f"{what}: download broken: {describe(exc)}")) from None
