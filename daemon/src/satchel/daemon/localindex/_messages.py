"""What the local index's HTTP server and its routes exchange: `Request` in, `Response` out.

A response body is bytes or a `FileBody` (a byte range of a file, streamed by
`_http`); `byte_range` reads a ``Range`` header the way RFC 9110 says. No I/O here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

__all__ = ["Authorize", "FileBody", "Handler", "Identify", "Request", "Response", "byte_range"]


@dataclass(frozen=True)
class Request:
    method: str
    #: The raw target, path and query (percent-encoded, as sent).
    target: str
    #: Lower-case header name -> value (repeated headers joined with ", ").
    headers: dict[str, str]
    #: Whether the kernel says the connection's peer runs as the server's own user (see
    #: `HttpServer`'s *identify*; only asked for a first request without credentials).
    peer_is_owner: bool = False

    @property
    def head(self) -> bool:
        return self.method == "HEAD"

    def header(self, name: str) -> str | None:
        return self.headers.get(name)


@dataclass(frozen=True)
class FileBody:
    """Bytes [offset, offset + length) of the file at *path* (opened in a worker thread)."""

    path: Path
    offset: int
    length: int


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes | FileBody = b""
    #: Close the connection after this response (errors that leave the stream in doubt).
    close: bool = False

    @property
    def length(self) -> int:
        return self.body.length if isinstance(self.body, FileBody) else len(self.body)


Handler = Callable[[Request], Awaitable[Response]]
#: Checks a request before any work: None lets it through, a `Response` refuses it (sent, then
#: the connection is closed).
Authorize = Callable[[Request], Response | None]
#: Whether the peer of a connection (our address, the peer's address) runs as our own user.
#: Blocking: called in a worker thread.
Identify = Callable[[tuple[str, int], tuple[str, int]], bool]


def byte_range(header: str | None, size: int) -> tuple[int, int] | Literal[False] | None:
    """The ``Range`` a file request asks for, per RFC 9110 section 14.

    Returns ``(start, end_exclusive)`` for one satisfiable byte range, None when the whole file
    should be sent (no header, a syntax the server may ignore, or several ranges, which no
    installer asks for), and False when the range cannot be satisfied (416).
    """
    if header is None:
        return None
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    if not dash:
        return None
    first, last = first.strip(), last.strip()
    if not (first.isdigit() or first == "") or not (last.isdigit() or last == ""):
        return None
    if first == "":
        if last == "":
            return None
        suffix = int(last)
        if suffix == 0 or size == 0:
            return False
        return (max(0, size - suffix), size)
    start = int(first)
    end = size - 1 if last == "" else min(int(last), size - 1)
    if last != "" and int(last) < start:
        return None  # invalid range-spec: ignore the header (RFC 9110 14.1.1)
    if start >= size:
        return False
    return (start, end + 1)
