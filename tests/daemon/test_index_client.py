"""The HTTP client of the indexes keeps no cookies: one an index sets is never sent back, to it
or anywhere (the simple API is stateless; uv keeps none either; issue 15)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import msgspec
import pytest

from satchel.daemon.settings.config import IndexConfig
from satchel.daemon.upstream.client import Upstream
from satchel.daemon.upstream.limits import Limits

FAST = Limits(backoff=0.01, connect_timeout=1.0, timeout=15.0)
JSON_V1 = "application/vnd.pypi.simple.v1+json"


@pytest.fixture
def cookie_setter() -> Iterator[tuple[str, list[str | None]]]:
    """An index whose every answer sets a cookie; yields its simple URL and the Cookie header
    of each request it got (None: none)."""
    seen: list[str | None] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            seen.append(self.headers.get("Cookie"))
            body = json.dumps(
                {"meta": {"api-version": "1.1"}, "name": "demo", "files": []}
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", JSON_V1)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Set-Cookie", "session=secret; Path=/")
            self.send_header("Cache-Control", "no-cache")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/simple/", seen
    finally:
        server.shutdown()
        server.server_close()


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
