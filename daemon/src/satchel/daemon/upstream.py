"""The upstream client: project pages, core metadata and files from the configured indexes.

One `Upstream` per daemon owns one ``httpx.AsyncClient`` (HTTP/1.1, keep-alive, running on trio
through anyio) and knows nothing about the store: it returns parsed `ProjectPage` objects and
streams of bytes, and the store decides what to keep.

What it guarantees, and why:

* **Cheap revalidation.** A cached page is not requested at all while fresh (``Cache-Control:
  max-age`` from the index, or the index's ``max-age`` override in config.toml), and otherwise
  revalidated with ``If-None-Match`` / ``If-Modified-Since``, so a warm check costs a 304.
* **A dead index costs one timeout, not one per package.** Each index has a circuit breaker: the
  first request to an index in an unknown state is a probe and the others wait for its outcome;
  when the probe fails (after bounded retries with exponential backoff) the index is marked
  offline once, and every request fails fast with `IndexUnreachable` until the cool-down ends and
  the next request probes again. `index_states()` feeds ``satchel status``.
* **Bounded everything.** Per-index concurrency (`trio.CapacityLimiter`), short connect timeout,
  page/metadata/file size caps counted on *decompressed* bytes (the gzip decoder is driven with
  ``max_length``, so a gzip bomb never inflates past the cap), at most a few redirects and never to
  another scheme (https -> http and http -> file are refused).
* **No credential leaks.** Credentials (`satchel.daemon.credentials`) are attached per request,
  only to the index's own origin (a redirect elsewhere goes without them); every URL in pages and
  errors is credential-free, and every message goes through `redact`.
* **file:// and find-links like http.** A ``file://`` simple index reads ``<dir>/<project>/
  index.html``; a find-links index (a directory or a page of links) is filtered per project; the
  same validation applies to both.

Every error names the index, the project (or file) and the reason.
"""

from __future__ import annotations

import hashlib
import logging
import random
import time
import zipfile
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeVar
from urllib.parse import quote, unquote, urljoin, urlsplit
from urllib.request import url2pathname

import httpx
import msgspec
import trio
from packaging.utils import canonicalize_name

from satchel.daemon.config import IndexConfig
from satchel.daemon.credentials import Credentials, find_credentials, redact, split_userinfo
from satchel.daemon.errors import (
    HashMismatch,
    HostileInput,
    IndexUnreachable,
    NotFound,
    UpstreamError,
)
from satchel.daemon.model import FileEntry, ProjectPage
from satchel.daemon.simple import (
    HTMLPageParser,
    file_project,
    parse_json_page,
    validate_filename,
)

__all__ = ["ACCEPT", "FileDownload", "IndexState", "Limits", "Upstream"]

_log = logging.getLogger(__name__)
_T = TypeVar("_T")

JSON_V1 = "application/vnd.pypi.simple.v1+json"
HTML_V1 = "application/vnd.pypi.simple.v1+html"
#: PEP 691 negotiation: JSON preferred, the versioned HTML next, legacy HTML last.
ACCEPT = f"{JSON_V1}, {HTML_V1};q=0.2, text/html;q=0.01"
_CHUNK = 256 * 1024
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


@dataclass(frozen=True)
class Limits:
    """Caps and timings; the defaults suit a laptop on a flaky connection."""

    max_page_bytes: int = 64 * 2**20
    max_metadata_bytes: int = 16 * 2**20
    max_file_bytes: int = 16 * 2**30
    #: Short: a dead host should cost seconds, not minutes, before the index is marked offline.
    connect_timeout: float = 3.0
    read_timeout: float = 30.0
    per_index_concurrency: int = 16
    attempts: int = 3
    #: Delay before the first retry, doubled for each further one (with jitter).
    backoff: float = 0.25
    max_redirects: int = 5
    #: A page or metadata request must complete within this (a slow-drip server resets the
    #: read timeout with every byte; this bounds the whole exchange).
    request_deadline: float = 120.0
    #: A file download slower than `min_rate` bytes/s over any `min_rate_window` seconds is cut
    #: (curl's --speed-limit/--speed-time): a slow-drip server resets the read timeout with
    #: every byte, and a file has no size-independent deadline.
    min_rate: int = 1024
    min_rate_window: float = 10.0
    #: How long an index marked offline fails fast before the next probe.
    offline_cooldown: float = 30.0
    #: How long a find-links page over http is reused for other projects.
    find_links_ttl: float = 60.0


class IndexState(msgspec.Struct, frozen=True, kw_only=True):
    """What ``satchel status`` shows per index (all text redacted)."""

    name: str
    state: Literal["unknown", "online", "offline"]
    reason: str | None = None
    offline_since: float | None = None
    retry_at: float | None = None
    last_success: float | None = None


@dataclass
class _Breaker:
    state: Literal["unknown", "online", "offline"] = "unknown"
    reason: str | None = None
    offline_since: float | None = None
    retry_at: float = 0.0
    last_success: float | None = None
    probe: trio.Event | None = None


class _ConnectFailure(Exception):
    """No usable answer at the transport level (refused, reset, timeout): retry, then breaker."""


class _BodyBroken(UpstreamError):
    """A file body broke off (reset, truncated): resumed from where it stopped, or retried."""


class _ServerError(Exception):
    """The index answered 5xx or 429: retry, but the index is reachable."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


@dataclass
class FileDownload:
    """An open download: iterate it for chunks; `size` is the announced length, if any."""

    url: str
    filename: str
    size: int | None
    _chunks: AsyncIterator[bytes] = field(repr=False)

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks


class _Decoder:
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
            piece = self._zlib.decompress(data, _CHUNK)
            out.append(self._count(piece))
            while self._zlib.unconsumed_tail:
                piece = self._zlib.decompress(self._zlib.unconsumed_tail, _CHUNK)
                out.append(self._count(piece))
        except zlib.error as exc:
            raise UpstreamError(f"{self.what}: corrupt compressed body ({exc})") from None
        return out


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme.lower(), (parts.hostname or "").lower(), parts.port


def _max_age(cache_control: str | None) -> int | None:
    if not cache_control:
        return None
    directives = [d.strip().lower() for d in cache_control.split(",")]
    if "no-cache" in directives or "no-store" in directives:
        return None
    for directive in directives:
        name, _, value = directive.partition("=")
        if name == "max-age" and value.strip().isdigit():
            return int(value)
    return None


def _local_path(url: str) -> Path:
    return Path(url2pathname(unquote(urlsplit(url).path)))


def _file_url(path: Path) -> str:
    return "file://" + quote(str(path.resolve()))


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


class Upstream:
    """Fetches from indexes; see the module docstring. Use as ``async with Upstream() as up``."""

    def __init__(
        self,
        *,
        limits: Limits | None = None,
        clock: Callable[[], float] = time.time,
        environ: dict[str, str] | None = None,
    ) -> None:
        self.limits = limits or Limits()
        self._clock = clock
        self._environ = environ
        timeout = httpx.Timeout(self.limits.read_timeout, connect=self.limits.connect_timeout)
        self._client = httpx.AsyncClient(
            http1=True,
            http2=False,
            timeout=timeout,
            follow_redirects=False,
            limits=httpx.Limits(max_connections=256, max_keepalive_connections=64),
            headers={"User-Agent": "satchel"},
        )
        self._breakers: dict[str, _Breaker] = {}
        self._limiters: dict[str, trio.CapacityLimiter] = {}
        self._credentials: dict[str, tuple[str, Credentials | None]] = {}
        self._links: dict[str, tuple[float, ProjectPage]] = {}

    async def __aenter__(self) -> Upstream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    # -- state ----------------------------------------------------------------------------------

    def index_states(self) -> dict[str, IndexState]:
        """Per index name: online / offline (since when, why, next probe) / unknown."""
        return {
            name: IndexState(
                name=name,
                state=b.state,
                reason=b.reason,
                offline_since=b.offline_since,
                retry_at=b.retry_at if b.state == "offline" else None,
                last_success=b.last_success,
            )
            for name, b in self._breakers.items()
        }

    def is_offline(self, index_name: str) -> bool:
        breaker = self._breakers.get(index_name)
        return breaker is not None and breaker.state == "offline"

    def reset(self, index_name: str) -> None:
        """Forget what is known about *index_name* (e.g. after its URL changed)."""
        self._breakers.pop(index_name, None)
        self._credentials.pop(index_name, None)
        self._links.pop(index_name, None)

    # -- public API -----------------------------------------------------------------------------

    async def fetch_page(
        self,
        index: IndexConfig,
        project: str,
        cached: ProjectPage | None = None,
        *,
        force: bool = False,
    ) -> ProjectPage:
        """The project page of *project* on *index*, revalidating *cached* when given.

        Raises `NotFound` when the index does not have the project, `IndexUnreachable` when it
        cannot be reached (or is in its offline cool-down), `UpstreamError` otherwise.
        """
        project = canonicalize_name(project)
        if index.kind == "find-links":
            return await self._find_links_page(index, project)
        page_url = self._base_url(index).rstrip("/") + f"/{project}/"
        now = self._clock()
        if cached is not None and (cached.index != index.name or cached.url != page_url):
            cached = None
        if cached is not None and not force:
            max_age = index.max_age if index.max_age is not None else cached.max_age
            if max_age is not None and now - cached.fetched_at < max_age:
                return cached
        if urlsplit(page_url).scheme == "file":
            return await self._file_index_page(index, project, page_url, cached)
        headers = {"Accept": ACCEPT, "Accept-Encoding": "gzip"}
        if cached is not None and cached.etag:
            headers["If-None-Match"] = cached.etag
        if cached is not None and cached.last_modified:
            headers["If-Modified-Since"] = cached.last_modified
        what = f"index {index.name}: project {project}"

        async def attempt() -> ProjectPage:
            async with self._get(index, page_url, headers, what) as (response, final_url):
                if response.status_code == 304 and cached is not None:
                    return msgspec.structs.replace(
                        cached,
                        fetched_at=self._clock(),
                        etag=response.headers.get("ETag") or cached.etag,
                        max_age=_max_age(response.headers.get("Cache-Control")),
                    )
                self._check_status(response, what)
                page = await self._read_page(response, index, project, final_url, what)
            return msgspec.structs.replace(
                page,
                fetched_at=self._clock(),
                etag=response.headers.get("ETag"),
                last_modified=response.headers.get("Last-Modified"),
                max_age=_max_age(response.headers.get("Cache-Control")),
            )

        return await self._retrying(index, what, attempt)

    async def fetch_core_metadata(self, index: IndexConfig, file: FileEntry) -> bytes:
        """The file's core metadata: PEP 658 ``<url>.metadata``, hash-checked.

        For a local (``file://``) wheel without a ``.metadata`` sidecar the METADATA is read from
        the wheel itself (cheap: the zip directory). Anything else raises `NotFound`, and the
        caller downloads the file instead.
        """
        project = file_project(file.filename) or "?"
        what = f"index {index.name}: project {project}: {file.filename}.metadata"
        if file.core_metadata is None:
            if file.is_wheel and urlsplit(file.url).scheme == "file":
                return await trio.to_thread.run_sync(_wheel_metadata, _local_path(file.url), what)
            raise NotFound(f"{what}: the index offers no core metadata for this file")
        url = file.url + ".metadata"
        if urlsplit(url).scheme == "file":
            data = await trio.to_thread.run_sync(
                _read_local, _local_path(url), self.limits.max_metadata_bytes, what
            )
        else:
            data = await self._retrying(
                index,
                what,
                lambda: self._get_bytes(index, url, what, self.limits.max_metadata_bytes),
            )
        _check_hashes(data, file.core_metadata, what)
        return data

    @asynccontextmanager
    async def open_file(
        self, index: IndexConfig, file: FileEntry, *, max_bytes: int | None = None
    ) -> AsyncIterator[FileDownload]:
        """Stream *file*: ``async with up.open_file(i, f) as dl: async for chunk in dl: ...``.

        The caller hashes and stores; this enforces the size cap (announced and actual). The
        opening is retried on 5xx/429; a body that breaks off mid-way is resumed with a Range
        request (`_resuming_chunks`), so the caller sees one stream; one slower than
        `Limits.min_rate` is cut.
        """
        cap = self.limits.max_file_bytes if max_bytes is None else max_bytes
        project = file_project(file.filename) or "?"
        what = f"index {index.name}: project {project}: file {file.filename}"
        validate_filename(file.filename, None)
        if urlsplit(file.url).scheme == "file":
            path = _local_path(file.url)
            try:
                size = path.stat().st_size
            except OSError as exc:
                raise NotFound(f"{what}: {exc.strerror}") from None
            if size > cap:
                raise HostileInput(f"{what}: {size} bytes is over the {cap} byte limit")
            yield FileDownload(file.url, file.filename, size, _local_chunks(path, cap, what))
            return
        breaker = self._breakers.setdefault(index.name, _Breaker())
        self._fail_fast(breaker, index, what)
        async with self._limiter(index):
            body = _Body()
            try:
                await self._open_body(body, index, file, what, cap, 0)
                self._mark_online(breaker)
                length = body.response.headers.get("Content-Length")
                announced = int(length) if length and length.isdigit() else None
                if announced is not None and announced > cap:
                    raise HostileInput(f"{what}: announced {announced} bytes, over {cap}")
                chunks = self._resuming_chunks(body, index, file, what, cap)
                yield FileDownload(file.url, file.filename, announced, chunks)
            except _ConnectFailure as exc:
                self._mark_offline(breaker, index, str(exc))
                raise IndexUnreachable(
                    redact(f"{what}: index unreachable ({exc}); marked offline"),
                    details={"index": index.name, "reason": str(exc)},
                ) from None
            finally:
                await body.stack.aclose()

    async def _open_body(
        self, body: _Body, index: IndexConfig, file: FileEntry, what: str, cap: int, offset: int
    ) -> None:
        """Open *file* from byte *offset* into *body*; 5xx and 429 are retried with backoff."""
        headers = {"Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        for attempt in range(1, self.limits.attempts + 1):
            await body.stack.aclose()
            body.stack = AsyncExitStack()
            response, _ = await body.stack.enter_async_context(
                self._get(index, file.url, headers, what, limiter=False)
            )
            try:
                if not (offset and response.status_code == 206):
                    self._check_status(response, what)
            except _ServerError as exc:
                if attempt == self.limits.attempts:
                    raise UpstreamError(f"{what}: the index answered {exc}") from None
                await trio.sleep(self._backoff(attempt))
                continue
            body.response = response
            return

    def _backoff(self, attempt: int) -> float:
        """The pause after failed attempt number *attempt* (exponential, with jitter)."""
        return self.limits.backoff * 2.0 ** (attempt - 1) * (0.5 + random.random())  # noqa: S311

    async def _resuming_chunks(
        self, body: _Body, index: IndexConfig, file: FileEntry, what: str, cap: int
    ) -> AsyncIterator[bytes]:
        """The body's bytes; a body that breaks off is resumed where it stopped (a Range
        request; bytes already seen are skipped if the index ignores the range), at most
        `Limits.attempts` times. The consumer sees one uninterrupted stream."""
        received = 0
        for attempt in range(1, self.limits.attempts + 1):
            response = body.response
            encoding = response.headers.get("Content-Encoding", "")
            skip = received if response.status_code == 200 else 0
            decoder = _Decoder(encoding, cap - received + skip, what)
            try:
                async for piece in _chunks(response, decoder, what, self.limits):
                    if skip:
                        dropped = min(skip, len(piece))
                        piece, skip = piece[dropped:], skip - dropped
                    received += len(piece)
                    if piece:
                        yield piece
            except _BodyBroken:
                resumable = encoding.strip().lower() in ("", "identity")
                if not resumable or attempt == self.limits.attempts:
                    raise
            else:
                return
            await trio.sleep(self._backoff(attempt))
            _log.info("%s: resuming at byte %d", what, received)
            await self._open_body(body, index, file, what, cap, received)

    # -- http machinery -------------------------------------------------------------------------

    def _base_url(self, index: IndexConfig) -> str:
        return split_userinfo(index.url)[0]

    def _auth(self, index: IndexConfig, url: str) -> httpx.BasicAuth | None:
        known = self._credentials.get(index.name)
        if known is None or known[0] != index.url:
            known = (index.url, find_credentials(index.name, index.url, environ=self._environ))
            self._credentials[index.name] = known
        creds = known[1]
        if creds is None or _origin(url) != _origin(self._base_url(index)):
            return None
        return httpx.BasicAuth(creds.username, creds.password)

    def _limiter(self, index: IndexConfig) -> trio.CapacityLimiter:
        limiter = self._limiters.get(index.name)
        if limiter is None:
            limiter = trio.CapacityLimiter(self.limits.per_index_concurrency)
            self._limiters[index.name] = limiter
        return limiter

    @asynccontextmanager
    async def _get(
        self,
        index: IndexConfig,
        url: str,
        headers: dict[str, str],
        what: str,
        *,
        limiter: bool = True,
    ) -> AsyncIterator[tuple[httpx.Response, str]]:
        """GET *url* following at most `max_redirects` same-scheme redirects; streams the body."""
        async with self._limiter(index) if limiter else _nothing():
            for _hop in range(self.limits.max_redirects + 1):
                request = self._client.build_request("GET", url, headers=headers)
                try:
                    response = await self._client.send(
                        request, stream=True, auth=self._auth(index, url)
                    )
                except httpx.UnsupportedProtocol as exc:
                    raise UpstreamError(redact(f"{what}: {exc}")) from None
                except (httpx.TransportError, OSError) as exc:
                    raise _ConnectFailure(redact(_describe(exc))) from None
                location = response.headers.get("Location")
                if response.status_code in _REDIRECTS and location:
                    await response.aclose()
                    target = urljoin(url, location)
                    old, new = urlsplit(url).scheme, urlsplit(target).scheme
                    if new != old and not (old == "http" and new == "https"):
                        raise HostileInput(
                            redact(f"{what}: refused redirect from {old}: to {new or 'none'}:")
                        )
                    url = target
                    continue
                try:
                    yield response, split_userinfo(url)[0]
                except httpx.TransportError as exc:
                    # Reading the body failed (reset, timeout). Only httpx errors: an OSError
                    # here is the caller's own (e.g. the store's disk), not the index's fault.
                    raise _ConnectFailure(redact(_describe(exc))) from None
                finally:
                    await response.aclose()
                return
            raise UpstreamError(f"{what}: more than {self.limits.max_redirects} redirects")

    def _check_status(self, response: httpx.Response, what: str) -> None:
        status = response.status_code
        if status == 200:
            return
        if status >= 500 or status == 429:
            raise _ServerError(status)
        if status in (404, 410):
            raise NotFound(f"{what}: not found on the index (HTTP {status})")
        if status in (401, 403):
            raise UpstreamError(
                f"{what}: access denied (HTTP {status}); check the index credentials "
                "(URL, SATCHEL_INDEX_<NAME>_USERNAME/_PASSWORD or netrc)"
            )
        raise UpstreamError(f"{what}: unexpected HTTP {status}")

    async def _get_bytes(self, index: IndexConfig, url: str, what: str, cap: int) -> bytes:
        async with self._get(index, url, {"Accept-Encoding": "gzip"}, what) as (response, _):
            self._check_status(response, what)
            decoder = _Decoder(response.headers.get("Content-Encoding", ""), cap, what)
            parts: list[bytes] = []
            async for raw in response.aiter_raw(_CHUNK):
                parts.extend(decoder.decode(raw))
            return b"".join(parts)

    async def _read_page(
        self, response: httpx.Response, index: IndexConfig, project: str | None, url: str, what: str
    ) -> ProjectPage:
        media, charset = _media_type(response.headers.get("Content-Type"))
        decoder = _Decoder(
            response.headers.get("Content-Encoding", ""), self.limits.max_page_bytes, what
        )
        if media in (JSON_V1, "application/json") and project is not None:
            parts: list[bytes] = []
            async for raw in response.aiter_raw(_CHUNK):
                parts.extend(decoder.decode(raw))
            return parse_json_page(b"".join(parts), index=index.name, project=project, url=url)
        if media not in (HTML_V1, "text/html"):
            raise UpstreamError(f"{what}: unexpected content type {media[:60]!r}")
        parser = HTMLPageParser(index=index.name, project=project, url=url, encoding=charset)
        async for raw in response.aiter_raw(_CHUNK):
            for piece in decoder.decode(raw):
                parser.feed_bytes(piece)
        return parser.result()

    async def _retrying(
        self, index: IndexConfig, what: str, call: Callable[[], Awaitable[_T]]
    ) -> _T:
        """Run *call* with retries, backoff and the index's circuit breaker."""
        breaker = self._breakers.setdefault(index.name, _Breaker())
        probe = await self._enter(breaker, index, what)
        last: Exception | None = None
        try:
            for attempt in range(1, self.limits.attempts + 1):
                if attempt > 1:
                    delay = self.limits.backoff * 2 ** (attempt - 2)
                    await trio.sleep(delay * (0.5 + random.random()))  # noqa: S311 (jitter)
                try:
                    with trio.fail_after(self.limits.request_deadline):
                        result = await call()
                except (_ConnectFailure, trio.TooSlowError) as exc:
                    last = exc
                    if isinstance(exc, trio.TooSlowError):
                        deadline = self.limits.request_deadline
                        last = _ConnectFailure(f"no complete answer within {deadline:g}s")
                    if not probe:
                        # It was online; from now on one request probes and the others wait.
                        if breaker.state == "online":
                            breaker.state = "unknown"
                        probe = await self._enter(breaker, index, what)
                    continue
                except _ServerError as exc:
                    last = exc
                    self._mark_online(breaker)
                    continue
                except (NotFound, HashMismatch, UpstreamError) as exc:
                    if not isinstance(exc, IndexUnreachable):
                        self._mark_online(breaker)  # it answered, if unhelpfully
                    raise
                self._mark_online(breaker)
                return result
            if isinstance(last, _ServerError):
                raise UpstreamError(
                    f"{what}: the index answered HTTP {last.status} "
                    f"{self.limits.attempts} times in a row",
                    details={"index": index.name, "status": last.status},
                )
            reason = str(last)
            self._mark_offline(breaker, index, reason)
            raise IndexUnreachable(
                redact(f"{what}: index unreachable ({reason}); marked offline"),
                details={"index": index.name, "reason": reason},
            )
        finally:
            if probe and breaker.probe is not None:
                breaker.probe.set()
                breaker.probe = None

    async def _enter(self, breaker: _Breaker, index: IndexConfig, what: str) -> bool:
        """Wait until a request may go out; True when this request is the probe."""
        while True:
            if breaker.state == "online":
                return False
            self._fail_fast(breaker, index, what)
            if breaker.probe is None:
                breaker.probe = trio.Event()
                return True
            await breaker.probe.wait()

    def _fail_fast(self, breaker: _Breaker, index: IndexConfig, what: str) -> None:
        """Raise `IndexUnreachable` while *index* is in its offline cool-down."""
        now = self._clock()
        if breaker.state == "offline" and now < breaker.retry_at:
            raise IndexUnreachable(
                redact(
                    f"{what}: index offline since {_ago(breaker.offline_since, now)}"
                    f" ({breaker.reason}); next try in {max(0, breaker.retry_at - now):.0f}s"
                ),
                details={"index": index.name, "reason": breaker.reason},
            )

    def _mark_online(self, breaker: _Breaker) -> None:
        breaker.state = "online"
        breaker.reason = None
        breaker.offline_since = None
        breaker.last_success = self._clock()

    def _mark_offline(self, breaker: _Breaker, index: IndexConfig, reason: str) -> None:
        now = self._clock()
        if breaker.state != "offline":
            breaker.offline_since = now
            _log.warning(
                "%s",
                redact(
                    f"index {index.name} ({self._base_url(index)}) is unreachable ({reason}): "
                    f"marked offline, next try in {self.limits.offline_cooldown:.0f}s"
                ),
            )
        breaker.state = "offline"
        breaker.reason = reason
        breaker.retry_at = now + self.limits.offline_cooldown

    # -- file:// and find-links -----------------------------------------------------------------

    async def _file_index_page(
        self, index: IndexConfig, project: str, page_url: str, cached: ProjectPage | None
    ) -> ProjectPage:
        what = f"index {index.name}: project {project}"
        directory = _local_path(page_url)
        candidates = [directory / "index.html", directory.with_suffix(".html")]
        path = next((c for c in candidates if c.is_file()), None)
        if path is None:
            raise NotFound(f"{what}: not found on the index ({directory} has no index.html)")
        stat = path.stat()
        etag = f'"file-{stat.st_mtime_ns}-{stat.st_size}"'
        if cached is not None and cached.etag == etag:
            return msgspec.structs.replace(cached, fetched_at=self._clock())
        data = await trio.to_thread.run_sync(_read_local, path, self.limits.max_page_bytes, what)
        parser = HTMLPageParser(index=index.name, project=project, url=page_url)
        parser.feed_bytes(data)
        page = parser.result()
        return msgspec.structs.replace(page, fetched_at=self._clock(), etag=etag)

    async def _find_links_page(self, index: IndexConfig, project: str) -> ProjectPage:
        what = f"index {index.name}: project {project}"
        base = self._base_url(index)
        if urlsplit(base).scheme == "file" and _local_path(base).is_dir():
            files = await trio.to_thread.run_sync(_scan_directory, _local_path(base), project)
        else:
            links = await self._links_page(index, base)
            files = tuple(f for f in links.files if file_project(f.filename) == project)
        if not files:
            raise NotFound(f"{what}: no distribution of this project among the find-links")
        return ProjectPage(
            index=index.name, project=project, url=base, files=files, fetched_at=self._clock()
        )

    async def _links_page(self, index: IndexConfig, url: str) -> ProjectPage:
        known = self._links.get(index.name)
        ttl = index.max_age if index.max_age is not None else self.limits.find_links_ttl
        if known is not None and self._clock() - known[0] < ttl:
            return known[1]
        what = f"index {index.name}: find-links page"
        if urlsplit(url).scheme == "file":
            data = await trio.to_thread.run_sync(
                _read_local, _local_path(url), self.limits.max_page_bytes, what
            )
            parser = HTMLPageParser(index=index.name, project=None, url=url)
            parser.feed_bytes(data)
            page = parser.result()
        else:

            async def attempt() -> ProjectPage:
                headers = {"Accept": "text/html", "Accept-Encoding": "gzip"}
                async with self._get(index, url, headers, what) as (response, final_url):
                    self._check_status(response, what)
                    return await self._read_page(response, index, None, final_url, what)

            page = await self._retrying(index, what, attempt)
        self._links[index.name] = (self._clock(), page)
        return page


async def _chunks(
    response: httpx.Response, decoder: _Decoder, what: str, limits: Limits
) -> AsyncIterator[bytes]:
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
        raise _BodyBroken(redact(f"{what}: download broken: {_describe(exc)}")) from None


@dataclass
class _Body:
    """The response a download currently reads, and what closes it (replaced on resume)."""

    stack: AsyncExitStack = field(default_factory=AsyncExitStack)
    response: httpx.Response = field(init=False)


@asynccontextmanager
async def _nothing() -> AsyncIterator[None]:
    yield


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if str(exc) else text


def _ago(since: float | None, now: float) -> str:
    if since is None:
        return "now"
    return f"{max(0.0, now - since):.0f}s ago"


def _check_hashes(data: bytes, expected: dict[str, str], what: str) -> None:
    for name, digest in expected.items():
        if name not in hashlib.algorithms_guaranteed:
            continue
        actual = hashlib.new(name, data).hexdigest()
        if actual != digest:
            raise HashMismatch(
                f"{what}: {name} mismatch: the index promised {digest}, got {actual}",
                details={"expected": digest, "actual": actual, "algorithm": name},
            )


def _read_local(path: Path, cap: int, what: str) -> bytes:
    try:
        with path.open("rb") as handle:
            data = handle.read(cap + 1)
    except OSError as exc:
        raise NotFound(f"{what}: cannot read {path}: {exc.strerror}") from None
    if len(data) > cap:
        raise HostileInput(f"{what}: larger than the {cap} byte limit")
    return data


async def _local_chunks(path: Path, cap: int, what: str) -> AsyncIterator[bytes]:
    total = 0
    async with await trio.open_file(path, "rb") as handle:
        while chunk := await handle.read(_CHUNK * 4):
            total += len(chunk)
            if total > cap:
                raise HostileInput(f"{what}: larger than the {cap} byte limit")
            yield chunk


def _wheel_metadata(path: Path, what: str) -> bytes:
    try:
        with zipfile.ZipFile(path) as zf:
            for member in zf.namelist():
                parts = member.split("/")
                if len(parts) == 2 and parts[0].endswith(".dist-info") and parts[1] == "METADATA":
                    return zf.read(member)
    except (OSError, zipfile.BadZipFile) as exc:
        raise UpstreamError(f"{what}: unreadable wheel: {exc}") from None
    raise UpstreamError(f"{what}: the wheel has no .dist-info/METADATA")


def _scan_directory(directory: Path, project: str) -> tuple[FileEntry, ...]:
    entries: list[FileEntry] = []
    for path in sorted(directory.iterdir()):
        name = path.name
        if file_project(name) != project:
            continue
        try:
            validate_filename(name, project)
            size = path.stat().st_size
        except Exception:  # noqa: S112 (an unreadable or odd entry is just not offered)
            continue
        entries.append(FileEntry(filename=name, url=_file_url(path), size=size))
    return tuple(entries)
