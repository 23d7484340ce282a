"""`remotezip.read_wheel_metadata`: the zip format and its bounds, over an in-memory file.

The reads go to `Served`, which answers ranges of real wheel bytes exactly as an HTTP server's
206 would (and counts them); the end-to-end behaviour over real HTTP is in
tests/e2e/test_range_metadata.py. Each case states what a wheel looks like and what a range
reader must make of it: the same METADATA `metadata_from_file` reads from the whole file, or a
refusal naming the cause.
"""

from __future__ import annotations

import io
import os
import random
import struct
import zipfile
from pathlib import Path

import pytest

from satchel.daemon.errors import HostileInput, UpstreamError
from satchel.daemon.resolver.coremetadata import metadata_from_file
from satchel.daemon.upstream.remotezip import (
    MAX_RANGE_REQUESTS,
    TAIL,
    Ranged,
    RangeRead,
    RangesUnsupported,
    read_wheel_metadata,
)
from tests.support.index_server import byte_range
from tests.support.wheels import build_wheel


class Served:
    """A file served by ranges; `requests` and `sent` count what was asked and answered."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.requests: list[str] = []
        self.sent = 0

    async def __call__(self, spec: str, cap: int) -> Ranged:
        self.requests.append(spec)
        span = byte_range(f"bytes={spec}", len(self.data))
        assert isinstance(span, tuple), spec
        first, last = span
        body = self.data[first : last + 1]
        assert len(body) <= cap
        self.sent += len(body)
        return Ranged(first, body, len(self.data))


async def _read(data: bytes, name: str = "demo-1.0-py3-none-any.whl") -> tuple[RangeRead, Served]:
    served = Served(data)
    read = await read_wheel_metadata(served, name, expected_size=len(data), what=name)
    return read, served


def _whole(path: Path) -> bytes:
    return metadata_from_file(path, path.name)


@pytest.fixture
def rng() -> random.Random:
    seed = int.from_bytes(os.urandom(4), "big")
    print(f"seed: {seed}")
    return random.Random(seed)


async def test_a_wheel_within_the_tail_costs_one_request_and_reads_what_the_whole_file_says(
    tmp_path: Path,
) -> None:
    wheel = build_wheel(tmp_path, "demo", "1.0", requires=["dep>=1"])
    read, served = await _read(wheel.read_bytes())
    assert read.data == _whole(wheel)
    assert read.requests == len(served.requests) == 1
    assert read.received == served.sent == wheel.stat().st_size


async def test_a_large_wheel_with_metadata_near_its_end_costs_one_tail_request(
    tmp_path: Path, rng: random.Random
) -> None:
    """Wheel builders write .dist-info last, so its METADATA is usually inside the tail."""
    files = {"demo/pad.bin": rng.randbytes(2 * 2**20), "demo/__init__.py": ""}
    wheel = build_wheel(tmp_path, "demo", "1.0", requires=["dep>=1"], files=files)
    read, served = await _read(wheel.read_bytes())
    assert read.data == _whole(wheel)
    assert served.requests == [f"-{TAIL}"]
    assert served.sent == TAIL


async def test_metadata_before_the_tail_costs_a_second_small_request(
    tmp_path: Path, rng: random.Random
) -> None:
    path = tmp_path / "demo-1.0-py3-none-any.whl"
    metadata = b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n\n"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("demo-1.0.dist-info/METADATA", metadata)
        zf.writestr("demo/pad.bin", rng.randbytes(2 * 2**20))
    read, served = await _read(path.read_bytes())
    assert read.data == metadata == _whole(path)
    assert len(served.requests) == 2, served.requests
    assert served.sent <= TAIL + 2048


async def test_a_wheel_of_many_files_reads_the_rest_of_its_directory_in_a_third_request(
    tmp_path: Path, rng: random.Random
) -> None:
    files = {f"demo/m{i}.py": "" for i in range(3000)}
    files["demo/pad.bin"] = rng.randbytes(2 * 2**20)
    wheel = build_wheel(tmp_path, "demo", "1.0", files=files)
    read, served = await _read(wheel.read_bytes())
    assert read.data == _whole(wheel)
    assert len(served.requests) == 3, served.requests
    assert served.sent < wheel.stat().st_size // 4


def _as_zip64(data: bytes) -> bytes:
    """*data* (a zip) with ZIP64 end records, its classic end record saying "see ZIP64", as a
    writer of a wheel with more than 65535 files or over 4 GiB does."""
    end = data.rfind(b"PK\x05\x06")
    _sig, _d, _cd, _here, entries, size, offset, _comment = struct.unpack_from(
        "<4s4H2LH", data, end
    )
    record = struct.pack(
        "<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, entries, entries, size, offset
    )
    locator = struct.pack("<4sLQL", b"PK\x06\x07", 0, end, 1)
    classic = struct.pack(
        "<4s4H2LH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0
    )
    return data[:end] + record + locator + classic


async def test_zip64_end_records_and_stored_members_are_read(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    metadata = b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n\n"
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("demo/__init__.py", b"")
        zf.writestr("demo-1.0.dist-info/METADATA", metadata)
    data = _as_zip64(buffer.getvalue())
    path = tmp_path / "demo-1.0-py3-none-any.whl"
    path.write_bytes(data)
    assert _whole(path) == metadata  # zipfile reads it too: a valid ZIP64 archive
    read, _served = await _read(data)
    assert read.data == metadata


async def test_the_first_metadata_in_directory_order_is_the_one_read_as_from_the_whole_file(
    tmp_path: Path,
) -> None:
    path = tmp_path / "demo-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("demo-1.0.dist-info/METADATA", "Name: demo\nVersion: 1.0\n\n")
        zf.writestr("other-2.0.dist-info/METADATA", "Name: other\nVersion: 2.0\n\n")
    read, _served = await _read(path.read_bytes())
    assert read.data == _whole(path)


async def test_a_member_whose_bytes_do_not_match_its_crc_is_refused(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path, "demo", "1.0")
    data = bytearray(wheel.read_bytes())
    entry = data.rfind(b"PK\x01\x02", 0, data.rfind(b".dist-info/METADATA"))
    crc = struct.unpack_from("<L", data, entry + 16)[0]
    struct.pack_into("<L", data, entry + 16, crc ^ 1)
    with pytest.raises(HostileInput, match="CRC-32"):
        await _read(bytes(data))


async def test_a_directory_whose_entry_count_runs_past_it_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "demo-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("demo/__init__.py", "")
    data = bytearray(path.read_bytes())
    end = data.rfind(b"PK\x05\x06")
    struct.pack_into("<2H", data, end + 8, 500, 500)
    with pytest.raises(HostileInput, match="central directory"):
        await _read(bytes(data))


async def test_a_wheel_without_metadata_is_an_index_error(tmp_path: Path) -> None:
    path = tmp_path / "demo-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("demo/__init__.py", "")
    with pytest.raises(UpstreamError, match="no usable core metadata"):
        await _read(path.read_bytes())


async def test_not_a_zip_is_refused(tmp_path: Path) -> None:
    with pytest.raises(HostileInput, match="not a zip archive"):
        await _read(b"<html>login</html>" * 100)


async def test_a_file_of_another_size_than_the_index_says_is_refused(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path, "demo", "1.0")
    data = wheel.read_bytes()
    with pytest.raises(UpstreamError, match="not the file the index lists"):
        await read_wheel_metadata(
            Served(data), wheel.name, expected_size=len(data) + 1, what=wheel.name
        )


async def test_a_server_answering_another_range_means_no_ranges(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path, "demo", "1.0")
    data = wheel.read_bytes()

    async def wrong(spec: str, cap: int) -> Ranged:
        return Ranged(0, data[: min(cap, 100)], len(data))

    with pytest.raises(RangesUnsupported):
        await read_wheel_metadata(wrong, wheel.name, expected_size=None, what=wheel.name)


async def test_a_long_local_extra_field_costs_one_more_request_and_no_more(
    tmp_path: Path,
) -> None:  # the padding is random but its content never matters here: no seed to print
    """A wheel of many files (its directory longer than the tail) whose METADATA's local
    header carries 8 KiB of extra field, past the slack read with it: tail, rest of the
    directory, member, rest of the member; MAX_RANGE_REQUESTS is never exceeded."""
    path = tmp_path / "demo-1.0-py3-none-any.whl"
    metadata = b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n\n"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("demo/pad.bin", os.urandom(256 * 1024))
        for i in range(3000):
            zf.writestr(f"demo/m{i}.py", "")
        info = zipfile.ZipInfo("demo-1.0.dist-info/METADATA")
        info.compress_type = zipfile.ZIP_DEFLATED
        info.extra = struct.pack("<2H", 0xCAFE, 8192) + bytes(8192)
        zf.writestr(info, metadata)
    read, served = await _read(path.read_bytes())
    assert read.data == metadata == _whole(path)
    assert len(served.requests) == MAX_RANGE_REQUESTS == 4, served.requests
    assert served.requests[0] == f"-{TAIL}"
