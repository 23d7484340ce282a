"""Length-prefixed frames: a 4-byte big-endian body length, then the body.

Why length prefixes rather than newline-delimited JSON: the receiver knows the size of a message
from its first four bytes, so it can refuse an oversize message *before* reading or allocating
its body, and a body may contain any byte.

Memory bound (hostile peers): the declared length is checked against the receiver's cap the
moment the four header bytes arrive, in `feed`, before any body byte is kept. The frame being
assembled therefore never exceeds ``HEADER_SIZE + max_frame`` bytes. Complete frames wait in the
buffer until `next_frame` takes them, so a caller that drains frames before reading more from
its socket holds at most one read plus one frame.
"""

from __future__ import annotations

from satchel.protocol.errors import FrameTooLarge, LocalProtocolError, MalformedFrame

__all__ = [
    "HEADER_SIZE",
    "MAX_REQUEST_FRAME",
    "MAX_RESPONSE_FRAME",
    "FrameDecoder",
    "frame",
]

#: Bytes of the length prefix (unsigned, big-endian): 4 GiB would be addressable, the caps below
#: are what is actually accepted.
HEADER_SIZE = 4

#: Largest frame a server accepts. Requests carry requirement lists and paths, never payloads;
#: 1 MiB is far above any honest request and bounds what an anonymous local peer can make the
#: daemon buffer per connection.
MAX_REQUEST_FRAME = 1 << 20

#: Largest frame a client accepts. Results can be big (a resolution of hundreds of packages with
#: hashes, `cache info` per index), but a client should never be made to swallow unbounded data;
#: anything larger must be paged or streamed as several events.
MAX_RESPONSE_FRAME = 16 << 20

#: Largest body the header can express.
_MAX_EXPRESSIBLE = (1 << (8 * HEADER_SIZE)) - 1


def frame(body: bytes) -> bytes:
    """Return `body` with its length prefix; an empty body is not a message and is refused."""
    size = len(body)
    if size == 0:
        raise LocalProtocolError("refusing to send an empty frame")
    if size > _MAX_EXPRESSIBLE:
        raise LocalProtocolError(f"frame body of {size} bytes exceeds the 4-byte length prefix")
    return size.to_bytes(HEADER_SIZE, "big") + body


class FrameDecoder:
    """Split a byte stream into frame bodies, refusing frames larger than `max_frame`.

    Sans-I/O: `feed` whatever the socket produced, then call `next_frame` until it returns None.
    After `eof`, a stream that stops inside a frame is a `MalformedFrame`. Once an error has been
    raised the decoder stays broken and raises it again: the stream cannot be resynchronised.
    """

    __slots__ = ("_buf", "_checked", "_eof", "_error", "max_frame")

    def __init__(self, max_frame: int) -> None:
        if max_frame < 1:
            raise ValueError("max_frame must be positive")
        self.max_frame = max_frame
        self._buf = bytearray()
        # Offset of the first header not yet validated: everything before it is whole frames
        # (or the declared, already accepted frame currently being assembled).
        self._checked = 0
        self._eof = False
        self._error: MalformedFrame | FrameTooLarge | None = None

    @property
    def closed(self) -> bool:
        """True once EOF was seen and every complete frame has been taken."""
        return self._eof and not self._buf

    @property
    def buffered(self) -> int:
        """Bytes held (complete frames not yet taken plus the partial one)."""
        return len(self._buf)

    def feed(self, data: bytes) -> None:
        """Append received bytes; validate every frame header they complete."""
        if self._error is not None:
            raise self._error
        if self._eof:
            if data:
                raise self._fail(MalformedFrame("data received after end of stream"))
            return
        buf = self._buf
        pos = self._checked
        # Validate headers as they complete; the bytes after a bad header are dropped at once,
        # so a peer announcing 4 GiB costs us no more than the chunk it actually sent.
        buf += data
        while len(buf) - pos >= HEADER_SIZE:
            size = int.from_bytes(buf[pos : pos + HEADER_SIZE], "big")
            if size == 0:
                del buf[pos:]
                raise self._fail(MalformedFrame("empty frame"))
            if size > self.max_frame:
                del buf[pos:]
                raise self._fail(
                    FrameTooLarge(f"frame of {size} bytes exceeds the limit of {self.max_frame}")
                )
            pos += HEADER_SIZE + size
        self._checked = pos

    def eof(self) -> None:
        """Record that the peer closed its side; no more data will be fed."""
        self._eof = True

    def next_frame(self) -> bytes | None:
        """Return the next complete frame body, or None if none is buffered yet.

        Raises `MalformedFrame` when the stream ended in the middle of a frame.
        """
        if self._error is not None:
            raise self._error
        buf = self._buf
        if len(buf) >= HEADER_SIZE:
            size = int.from_bytes(buf[:HEADER_SIZE], "big")
            end = HEADER_SIZE + size
            if len(buf) >= end:
                body = bytes(buf[HEADER_SIZE:end])
                del buf[:end]  # O(1) amortised: bytearray drops its head without copying.
                self._checked -= end
                return body
        if self._eof and buf:
            message = f"stream ended inside a frame ({len(buf)} bytes pending)"
            raise self._fail(MalformedFrame(message))
        return None

    def _fail(self, error: MalformedFrame | FrameTooLarge) -> MalformedFrame | FrameTooLarge:
        """Remember `error` so every later call raises it too; the caller raises it now."""
        self._error = error
        return error
