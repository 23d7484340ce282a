"""`Upstream.read_range` over real HTTP: credentials stay with their origin, and what a server
that honours, ignores or refuses ranges answers becomes a range, or a reason to read the whole
file (issue 13.7)."""

from __future__ import annotations

import functools
import random
from pathlib import Path

import msgspec
import pytest

from satchel.daemon.settings.config import IndexConfig
from satchel.daemon.storage.model import FileEntry
from satchel.daemon.upstream.client import Upstream
from satchel.daemon.upstream.limits import Limits
from satchel.daemon.upstream.remotezip import TAIL, RangesUnsupported, read_wheel_metadata
from tests.support.index_server import IndexServer
from tests.support.wheels import build_wheel, wheel_metadata

FAST = Limits(backoff=0.01, connect_timeout=1.0, timeout=15.0)


def _config(url: str) -> IndexConfig:
    return msgspec.convert({"name": "test", "url": url}, IndexConfig)


def _big_wheel(tmp_path: Path) -> Path:
    # Incompressible (a fixed seed: the bytes never matter, only that they do not deflate).
    files = {"demo/__init__.py": "", "demo/pad.bin": random.Random(0).randbytes(2**20)}
    return build_wheel(tmp_path / "dist", "demo", "1.0", requires=["dep"], files=files)


async def test_range_requests_carry_credentials_to_the_index_origin_only(tmp_path: Path) -> None:
    """The index needs a password; its wheels are read by ranges with it. A wheel on another
    origin (a file host) is read by ranges too, and never gets the password."""
    wheel = _big_wheel(tmp_path)
    with (
        IndexServer(tmp_path / "private", auth=("alice", "s3cret"), ranges="honour") as private,
        IndexServer(tmp_path / "files", ranges="honour") as host,
    ):
        private.add(wheel)
        host.add(wheel)
        index = _config(private.url_with_auth())
        async with Upstream(limits=FAST) as up:
            page = await up.fetch_page(index, "demo")
            own = page.files[0]
            elsewhere = msgspec.structs.replace(own, url=host.file_url(wheel.name))
            for file in (own, elsewhere):
                read = await read_wheel_metadata(
                    functools.partial(up.read_range, index, file),
                    file.filename,
                    expected_size=file.size,
                    what=file.filename,
                )
                assert read.data == wheel_metadata(wheel)
                assert read.received < wheel.stat().st_size // 4
        ranged = [r for r in private.records if "range" in r.headers]
        assert ranged and all("authorization" in r.headers for r in ranged)
        assert host.records and all("authorization" not in r.headers for r in host.records)


@pytest.mark.parametrize("mode", ["ignore", "refuse"])
async def test_a_server_without_ranges_is_asked_once_per_origin(tmp_path: Path, mode: str) -> None:
    wheel = _big_wheel(tmp_path)
    with IndexServer(tmp_path / "index", ranges=mode) as server:
        server.add(wheel)
        index = _config(server.url)
        async with Upstream(limits=FAST) as up:
            page = await up.fetch_page(index, "demo")
            file: FileEntry = page.files[0]
            assert not up.ranges_ignored(file.url)
            with pytest.raises(RangesUnsupported, match="200" if mode == "ignore" else "416"):
                await up.read_range(index, file, f"-{TAIL}", TAIL)
            assert up.ranges_ignored(file.url)
            assert up.ranges_ignored(server.file_url("other-1.0-py3-none-any.whl"))
