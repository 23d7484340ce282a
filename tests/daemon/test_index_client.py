"""The HTTP client of the indexes keeps no cookies: one an index sets is never sent back, to it
or anywhere (the simple API is stateless; uv keeps none either; issue 15)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler

import msgspec
import pytest

from satchel.daemon.settings.config import IndexConfig
from satchel.daemon.upstream.client import Upstream
from satchel.daemon.upstream.limits import Limits
from tests.support.oneoff import serving

FAST = Limits(backoff=0.01, connect_timeout=1.0, timeout=15.0)
JSON_V1 = "application/vnd.pypi.simple.v1+json"


@pytest.fixture
def cookie_setter() -> Iterator[tuple[str, list[str | None]]]:
    """An index whose every answer sets a cookie; yields its simple URL and the Cookie header
    of each request it got (None: none)."""
    seen: list[str | None] = []

    def respond(handler: BaseHTTPRequestHandler) -> None:
        seen.append(handler.headers.get("Cookie"))
        body = json.dumps({"meta": {"api-version": "1.1"}, "name": "demo", "files": []}).encode()
        handler.send_response(200)
        handler.send_header("Content-Type", JSON_V1)
        handler.send_header("Content-Length", str(len(body)))
        handler.send_header("Set-Cookie", "session=secret; Path=/")
        handler.send_header("Cache-Control", "no-cache")
        handler.end_headers()
        handler.wfile.write(body)

    with serving(respond) as base:
        yield f"{base}/simple/", seen


async def test_a_cookie_the_index_sets_is_never_sent_back(
    cookie_setter: tuple[str, list[str | None]],
) -> None:
    url, seen = cookie_setter
    index = msgspec.convert({"name": "test", "url": url}, IndexConfig)
    async with Upstream(limits=FAST) as up:
        for _ in range(3):
            page = await up.fetch_page(index, "demo", force=True)
            assert page.project == "demo"
    assert seen == [None, None, None]
