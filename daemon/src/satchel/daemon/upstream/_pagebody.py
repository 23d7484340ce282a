"""A project page's body, read off an HTTP response: PEP 691 JSON or HTML, bounded, off the loop.

The body is decoded under `Limits.max_page_bytes` (after decompression). A JSON body is parsed in a
worker thread, or, once it grows past `_CHILD_ABOVE`, streamed on into a child process that parses
it (`_pageprocess`, issue 11.6); an HTML body is parsed chunk by chunk in worker threads as it
arrives. Neither ever holds the event loop (a JSON page of a few KB is parsed on it: less work
than the hop).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import trio

from satchel.daemon.errors import NotAPage
from satchel.daemon.settings.config import IndexConfig
from satchel.daemon.storage.memory import release_free_memory
from satchel.daemon.storage.model import ProjectPage
from satchel.daemon.upstream._downloads import CHUNK, Decoder
from satchel.daemon.upstream._pageprocess import parse_in_child
from satchel.daemon.upstream.limits import Limits
from satchel.daemon.upstream.simple import HTMLPageParser, parse_json_page

__all__ = ["HTML_V1", "JSON_V1", "read_page"]

JSON_V1 = "application/vnd.pypi.simple.v1+json"
HTML_V1 = "application/vnd.pypi.simple.v1+html"


async def read_page(
    response: httpx.Response,
    index: IndexConfig,
    project: str | None,
    url: str,
    what: str,
    limits: Limits,
) -> ProjectPage:
    """The page in *response*: PEP 691 JSON or (legacy) HTML, decoded under the page cap."""
    media, charset = _media_type(response.headers.get("Content-Type"))
    decoder = Decoder(response.headers.get("Content-Encoding", ""), limits.max_page_bytes, what)
    if media in (JSON_V1, "application/json") and project is not None:
        # One growing buffer (not a list of chunks joined at the end: that held the page
        # twice), parsed in a worker thread; a page that grows past `_CHILD_ABOVE` streams
        # on into a child process that parses it (issue 11.6: `pageprocess`).
        body = bytearray()
        raws = response.aiter_raw(CHUNK)
        async for raw in raws:
            for piece in decoder.decode(raw):
                body += piece
            if len(body) > _CHILD_ABOVE:
                return await parse_in_child(
                    bytes(body),
                    _pieces(raws, decoder),
                    index=index.name,
                    project=project,
                    url=url,
                )
        if len(body) <= _INLINE_UP_TO:
            return _parse_json_body(body, index.name, project, url)
        return await trio.to_thread.run_sync(_parse_json_body, body, index.name, project, url)
    if media not in (HTML_V1, "text/html"):
        raise NotAPage(f"{what}: unexpected content type {media[:60]!r}")
    parser = HTMLPageParser(index=index.name, project=project, url=url, encoding=charset)
    async for raw in response.aiter_raw(CHUNK):
        # Each chunk is parsed in a worker thread too: a large legacy page must not hold
        # the event loop either, and its anchors are parsed as they arrive.
        await trio.to_thread.run_sync(_feed, parser, decoder.decode(raw))
    page = await trio.to_thread.run_sync(parser.result)
    if decoder.total > _TRIM_AFTER:
        await trio.to_thread.run_sync(release_free_memory)
    return page


def _media_type(content_type: str | None) -> tuple[str, str]:
    if not content_type:
        return "", "utf-8"
    media, *params = (p.strip() for p in content_type.split(";"))
    charset = "utf-8"
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value:
            charset = value.strip().strip('"')
    return media.lower(), charset


#: A page body above this size is followed by `release_free_memory`: parsing it churned tens of
#: MB through malloc, which glibc would otherwise keep mapped (issue 11.6). Below it the trim
#: is not worth its cost (it walks the heap).
_TRIM_AFTER = 4 * 2**20


def _parse_json_body(body: bytearray, index: str, project: str, url: str) -> ProjectPage:
    """`parse_json_page` in a worker thread; then the body is freed and free memory returned."""
    try:
        return parse_json_page(body, index=index, project=project, url=url)
    finally:
        size = len(body)
        body.clear()
        if size > _TRIM_AFTER:
            release_free_memory()


#: A JSON page body up to this size is parsed on the event loop: a few files, ~15 us each
#: (~0.1 ms for the lot), where a worker-thread hop cost ~60 us of CPU before any waiting for a
#: worker and the interpreter lock (issue 15: a cold prefetch made one per project page).
_INLINE_UP_TO = 4 * 2**10
#: A JSON page body above this size is parsed in a child process (`pageprocess`), below it in
#: a worker thread: starting the child costs ~0.1 s, which a page of a few MB (parsed in a
#: fraction of a second, with a few MB of garbage) is not worth.
_CHILD_ABOVE = 4 * 2**20


async def _pieces(raws: AsyncIterator[bytes], decoder: Decoder) -> AsyncIterator[list[bytes]]:
    async for raw in raws:
        yield decoder.decode(raw)


def _feed(parser: HTMLPageParser, pieces: list[bytes]) -> None:
    for piece in pieces:
        parser.feed_bytes(piece)
