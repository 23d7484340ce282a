"""Where a fetched project page is parsed: on the event loop when it is a few KB (a worker-thread
hop cost more than the parse: issue 15), in a worker thread when larger; the same page either
way."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from satchel.daemon.settings.config import IndexConfig
from satchel.daemon.upstream import _pagebody
from satchel.daemon.upstream.client import Upstream
from satchel.daemon.upstream.limits import Limits
from tests.support.hops import count_hops
from tests.support.index_server import IndexServer
from tests.support.wheels import build_wheel, file_sha256

FAST = Limits(backoff=0.01, connect_timeout=1.0, timeout=15.0)


@pytest.fixture
def hops(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The name of every function handed to a worker thread meanwhile."""
    return count_hops(monkeypatch)


def _config(url: str) -> IndexConfig:
    return msgspec.convert({"name": "test", "url": url}, IndexConfig)


async def test_a_page_of_a_few_files_is_parsed_without_a_thread_hop(
    tmp_path: Path, hops: list[str]
) -> None:
    with IndexServer(tmp_path / "index") as index:
        wheel = index.add(build_wheel(tmp_path / "dist", "demo", "1.0"))
        async with Upstream(limits=FAST) as up:
            page = await up.fetch_page(_config(index.url), "demo")
    (entry,) = page.files
    assert entry.filename == wheel.name and entry.sha256 == file_sha256(wheel)
    assert "_parse_json_body" not in hops


async def test_a_larger_page_is_parsed_in_a_worker_thread(tmp_path: Path, hops: list[str]) -> None:
    with IndexServer(tmp_path / "index") as index:
        wheels = [
            index.add(build_wheel(tmp_path / "dist", "demo", f"1.{minor}")) for minor in range(24)
        ]
        async with Upstream(limits=FAST) as up:
            page = await up.fetch_page(_config(index.url), "demo")
    assert {entry.filename: entry.sha256 for entry in page.files} == {
        wheel.name: file_sha256(wheel) for wheel in wheels
    }
    assert hops.count("_parse_json_body") == 1, f"{_pagebody._INLINE_UP_TO} bytes inline at most"
