"""A wheel's METADATA read with HTTP range requests, for indexes without PEP 658 files.

Many private registries serve no ``.metadata`` file next to a wheel, and reading METADATA out of
the whole file made one resolve download gigabytes (issue 13.7). A wheel is a zip whose index
(the central directory) sits at its end, so, as uv does (``remote_metadata.rs`` over the
``async_http_range_reader`` crate), three small reads suffice:

1. the tail, ``Range: bytes=-TAIL``: the end-of-central-directory record (ZIP64 too) and, for
   most wheels, the whole central directory (a wheel smaller than the tail costs nothing more);
2. the rest of the central directory, when it starts before the tail (a wheel of many files);
3. the ``*.dist-info/METADATA`` member: its local header and compressed bytes, inflated here
   (stored or deflated; its CRC-32 and sizes checked against the directory).

The member chosen is the one `coremetadata.metadata_from_file` would read from the whole file
(the first ``<x>.dist-info/METADATA`` in directory order), so when the wheel is downloaded later
its own METADATA is compared with this one by the same rule (`Catalog._record_download`): what a
range read says is a claim, like a PEP 658 file, until the wheel's bytes are hash-checked.

Every size is bounded (`MAX_CENTRAL_DIRECTORY`, `MAX_METADATA_BYTES`, `MAX_RANGE_REQUESTS`), and
an archive whose directory contradicts itself or the file's size is refused with
`HostileInput` naming what is wrong. A server that does not serve ranges is no error: the read
raises `RangesUnsupported` and the caller downloads the whole file instead.

The reads themselves are the caller's (`ReadRange`, over `Upstream.read_range`): this module
owns no I/O, only the zip format and the bounds.
"""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from satchel.daemon.errors import HostileInput, UpstreamError
from satchel.daemon.resolver.coremetadata import MAX_METADATA_BYTES

__all__ = [
    "MAX_CENTRAL_DIRECTORY",
    "MAX_RANGE_REQUESTS",
    "TAIL",
    "RangeRead",
    "Ranged",
    "RangesUnsupported",
    "ReadRange",
    "parse_content_range",
    "read_wheel_metadata",
]

#: The first read: the last 64 KiB. The end record is 22 bytes plus a comment of at most
#: 65535 bytes (real wheels have none), and a wheel of a few hundred files has its whole
#: central directory in it too, so most wheels cost two requests (and one under 64 KiB, one).
TAIL = 64 * 1024
#: The largest central directory read. A directory entry is ~100 bytes, so this is a wheel of
#: about 160,000 files, beyond any seen in the wild; more is a directory that lies.
MAX_CENTRAL_DIRECTORY = 16 * 2**20
#: Tail, rest of the directory, member, and the rest of the member when its local header's
#: extra field is longer than the directory said: a read never needs more.
MAX_RANGE_REQUESTS = 4
#: Bytes read past a member's compressed data for a local extra field that the central
#: directory does not show (zip writers put padding or timestamps there); a longer one costs
#: the fourth request.
LOCAL_EXTRA_SLACK = 1024

_EOCD = struct.Struct("<4s4H2LH")
_EOCD_SIG = b"PK\x05\x06"
_LOCATOR = struct.Struct("<4sLQL")
_LOCATOR_SIG = b"PK\x06\x07"
_EOCD64 = struct.Struct("<4sQ2H2L4Q")
_EOCD64_SIG = b"PK\x06\x06"
_CENTRAL = struct.Struct("<4s6H3L5H2L")
_CENTRAL_SIG = b"PK\x01\x02"
_LOCAL = struct.Struct("<4s5H3L2H")
_LOCAL_SIG = b"PK\x03\x04"
_MASK32 = 0xFFFFFFFF
_MASK16 = 0xFFFF
_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(\d{1,19})-(\d{1,19})/(\d{1,19})\s*$", re.IGNORECASE)


class RangesUnsupported(UpstreamError):
    """The server does not serve byte ranges of this file (200, 416, or an unusable 206):
    download the whole file instead."""


@dataclass(frozen=True)
class Ranged:
    """One 206 answer: *data* is bytes ``start`` .. ``start + len(data) - 1`` of a file of
    ``total`` bytes."""

    start: int
    data: bytes
    total: int


#: ``read(range_spec, cap)``: one GET with ``Range: bytes=<range_spec>``; its answer's body is at
#: most *cap* bytes. Raises `RangesUnsupported` when the server does not answer with a range.
ReadRange = Callable[[str, int], Awaitable[Ranged]]


@dataclass(frozen=True)
class RangeRead:
    """The METADATA read, and what it cost: requests and body bytes."""

    data: bytes
    requests: int
    received: int


def parse_content_range(value: str | None, what: str) -> tuple[int, int, int]:
    """(first, last, total) of a ``Content-Range: bytes first-last/total`` header."""
    found = _CONTENT_RANGE.match(value or "")
    if found is None:
        raise RangesUnsupported(f"{what}: a 206 answer without a usable Content-Range")
    first, last, total = (int(part) for part in found.groups())
    if not first <= last < total:
        raise RangesUnsupported(f"{what}: an impossible Content-Range {value!r}")
    return first, last, total


@dataclass(frozen=True)
class _Directory:
    offset: int
    size: int
    entries: int
    #: Where the end records begin: the directory must end exactly there.
    end: int


@dataclass(frozen=True)
class _Entry:
    name: str
    flags: int
    method: int
    crc: int
    compressed: int
    size: int
    offset: int
    name_len: int


class _Reader:
    """`ReadRange` counted and bounded: at most `MAX_RANGE_REQUESTS`, one file size."""

    def __init__(self, read: ReadRange, what: str, expected_size: int | None) -> None:
        self._read = read
        self.what = what
        self.expected_size = expected_size
        self.requests = 0
        self.received = 0
        self.total: int | None = None
        #: The tail, once read: a span inside it costs no request (a small wheel is all tail).
        self.tail: Ranged | None = None

    async def get(self, spec: str, cap: int) -> Ranged:
        if self.requests >= MAX_RANGE_REQUESTS:
            raise HostileInput(f"{self.what}: more than {MAX_RANGE_REQUESTS} range requests")
        self.requests += 1
        answer = await self._read(spec, cap)
        self.received += len(answer.data)
        if self.total is None:
            if self.expected_size is not None and answer.total != self.expected_size:
                raise UpstreamError(
                    f"{self.what}: the server holds {answer.total} bytes for it, the index says "
                    f"{self.expected_size}: not the file the index lists"
                )
            self.total = answer.total
        elif answer.total != self.total:
            raise HostileInput(f"{self.what}: the file changed size between range requests")
        return answer

    async def span(self, start: int, end: int) -> bytes:
        """Bytes ``start`` .. ``end - 1``, exactly."""
        tail = self.tail
        if tail is not None and start >= tail.start:
            return tail.data[start - tail.start : end - tail.start]
        answer = await self.get(f"{start}-{end - 1}", end - start)
        if answer.start != start or len(answer.data) != end - start:
            raise RangesUnsupported(f"{self.what}: the server answered another range")
        return answer.data


async def read_wheel_metadata(
    read: ReadRange, filename: str, *, expected_size: int | None, what: str
) -> RangeRead:
    """The METADATA of the wheel *filename*, read with range requests (see the module
    docstring). Raises `RangesUnsupported` (download the file instead), `HostileInput` (the
    archive lies) or the `UpstreamError` of a failed request."""
    reader = _Reader(read, what, expected_size)
    tail = await reader.get(f"-{TAIL}", TAIL)
    total = tail.total
    if tail.start + len(tail.data) != total:
        raise RangesUnsupported(f"{what}: the server answered another range than the tail")
    reader.tail = tail
    directory = _end_records(tail.data, tail.start, total, what)
    if directory.offset >= tail.start:
        begin = directory.offset - tail.start
        central = tail.data[begin : begin + directory.size]
    else:
        rest = await reader.span(directory.offset, tail.start)
        central = rest + tail.data[: directory.size - len(rest)]
    entry = _find_metadata(central, directory, what)
    data = await _member(reader, entry, directory, what)
    return RangeRead(data, reader.requests, reader.received)


def _end_records(tail: bytes, tail_start: int, total: int, what: str) -> _Directory:
    """The central directory's place and size, from the end records in *tail*."""
    position = len(tail)
    while True:
        position = tail.rfind(_EOCD_SIG, 0, position)
        if position < 0 or len(tail) - position < _EOCD.size:
            if position < 0:
                raise HostileInput(f"{what}: not a zip archive (no end of central directory)")
            continue
        fields = _EOCD.unpack_from(tail, position)
        if position + _EOCD.size + fields[7] == len(tail):
            break  # the comment runs exactly to the end: this is the record
    _sig, disk, cd_disk, _here, entries, size, offset, _comment = fields
    end = tail_start + position
    if disk or cd_disk:
        raise HostileInput(f"{what}: a multi-disk zip archive")
    if entries == _MASK16 or size == _MASK32 or offset == _MASK32:
        locator = position - _LOCATOR.size
        if locator < 0 or tail[locator : locator + 4] != _LOCATOR_SIG:
            raise HostileInput(f"{what}: a ZIP64 archive without its ZIP64 locator")
        record = _LOCATOR.unpack_from(tail, locator)[2] - tail_start
        if not 0 <= record <= locator - _EOCD64.size or tail[record : record + 4] != _EOCD64_SIG:
            raise HostileInput(f"{what}: the ZIP64 end record is not where its locator says")
        z = _EOCD64.unpack_from(tail, record)
        entries, size, offset = z[7], z[8], z[9]
        end = tail_start + record
    if size > MAX_CENTRAL_DIRECTORY:
        raise HostileInput(
            f"{what}: its central directory claims {size} bytes, over the "
            f"{MAX_CENTRAL_DIRECTORY} byte limit"
        )
    if offset + size != end or end > total:
        raise HostileInput(
            f"{what}: its central directory (at byte {offset}, {size} bytes) does not end where "
            f"the end record begins (byte {end}) in a file of {total} bytes: the archive lies"
        )
    return _Directory(offset=offset, size=size, entries=entries, end=end)


def _find_metadata(central: bytes, directory: _Directory, what: str) -> _Entry:
    """The first ``<x>.dist-info/METADATA`` entry, as `metadata_from_file` picks it."""
    position = 0
    for _ in range(directory.entries):
        if central[position : position + 4] != _CENTRAL_SIG:
            raise HostileInput(f"{what}: a broken central directory entry at byte {position}")
        if position + _CENTRAL.size > len(central):
            raise HostileInput(f"{what}: the central directory is cut short")
        fields = _CENTRAL.unpack_from(central, position)
        flags, method = fields[3], fields[4]
        crc, compressed, size = fields[7], fields[8], fields[9]
        name_len, extra_len, comment_len = fields[10], fields[11], fields[12]
        offset = fields[16]
        start = position + _CENTRAL.size
        raw_name = central[start : start + name_len]
        extra = central[start + name_len : start + name_len + extra_len]
        position = start + name_len + extra_len + comment_len
        if position > len(central):
            raise HostileInput(f"{what}: the central directory is cut short")
        name = raw_name.decode("utf-8" if flags & 0x800 else "cp437", "replace")
        parts = name.split("/")
        if len(parts) == 2 and parts[0].endswith(".dist-info") and parts[1] == "METADATA":
            size, compressed, offset = _zip64_sizes(extra, size, compressed, offset, what)
            return _Entry(name, flags, method, crc, compressed, size, offset, name_len)
    raise UpstreamError(f"{what}: no usable core metadata inside the file (no .dist-info/METADATA)")


def _zip64_sizes(
    extra: bytes, size: int, compressed: int, offset: int, what: str
) -> tuple[int, int, int]:
    """Sizes and offset from the ZIP64 extra field where the 32-bit fields say 0xFFFFFFFF."""
    if _MASK32 not in (size, compressed, offset):
        return size, compressed, offset
    position = 0
    while position + 4 <= len(extra):
        tag, length = struct.unpack_from("<2H", extra, position)
        body = extra[position + 4 : position + 4 + length]
        position += 4 + length
        if tag != 1:
            continue
        values = [v[0] for v in struct.iter_unpack("<Q", body[: len(body) // 8 * 8])]
        out = []
        for value in (size, compressed, offset):
            if value == _MASK32:
                if not values:
                    break
                value = values.pop(0)
            out.append(value)
        if len(out) == 3:
            return out[0], out[1], out[2]
    raise HostileInput(f"{what}: a ZIP64 entry without its ZIP64 sizes")


async def _member(reader: _Reader, entry: _Entry, directory: _Directory, what: str) -> bytes:
    """The entry's bytes: local header and data read, inflated, checked."""
    label = f"{what}: {entry.name}"
    if entry.size > MAX_METADATA_BYTES or entry.compressed > MAX_METADATA_BYTES:
        raise HostileInput(
            f"{label} claims {max(entry.size, entry.compressed)} bytes, over the "
            f"{MAX_METADATA_BYTES} byte limit for core metadata"
        )
    if entry.flags & 0x1:
        raise HostileInput(f"{label} is encrypted")
    if entry.method not in (0, 8):
        raise RangesUnsupported(f"{label}: compression method {entry.method}")
    least = entry.offset + _LOCAL.size + entry.name_len + entry.compressed
    if least > directory.offset:
        raise HostileInput(
            f"{label}: at byte {entry.offset} with {entry.compressed} bytes, it would run into "
            f"the central directory (byte {directory.offset}): the archive lies"
        )
    end = min(least + LOCAL_EXTRA_SLACK, directory.offset)
    chunk = await reader.span(entry.offset, end)
    if chunk[:4] != _LOCAL_SIG or len(chunk) < _LOCAL.size:
        raise HostileInput(f"{label}: no local file header where the directory says")
    fields = _LOCAL.unpack_from(chunk, 0)
    begin = _LOCAL.size + fields[9] + fields[10]
    stop = begin + entry.compressed
    if entry.offset + stop > directory.offset:
        raise HostileInput(f"{label}: its local header runs it into the central directory")
    if stop > len(chunk):
        chunk += await reader.span(entry.offset + len(chunk), entry.offset + stop)
    raw = chunk[begin:stop]
    if entry.method == 8:
        inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        try:
            data = inflater.decompress(raw, entry.size + 1)
        except zlib.error as exc:
            raise HostileInput(f"{label}: corrupt compressed data ({exc})") from None
    else:
        data = raw
    if len(data) != entry.size:
        raise HostileInput(
            f"{label}: {len(data)}{'+' if len(data) > entry.size else ''} bytes where the "
            f"central directory says {entry.size}: the archive lies"
        )
    if zlib.crc32(data) != entry.crc:
        raise HostileInput(f"{label}: its CRC-32 does not match the central directory's")
    return data
