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
  the next request probes again (or, when the caller has a cached answer, `claim_probe` lets it
  probe in the background instead of waiting). A hung index costs `Limits.timeout` once, all
  attempts together. `index_states()` feeds ``satchel status``.
* **Bounded everything.** Per-index concurrency (`trio.CapacityLimiter`), short connect timeout,
  page/metadata/file size caps counted on *decompressed* bytes (the gzip decoder is driven with
  ``max_length``, so a gzip bomb never inflates past the cap), at most a few redirects and never to
  another scheme (https -> http and http -> file are refused).
* **No credential leaks.** Credentials (`satchel.daemon.settings.credentials`) are attached per
  request, only to the index's own origin (a redirect elsewhere goes without them); every URL in
  pages and errors is credential-free, and every message goes through `redact`.
* **file:// and find-links like http.** A ``file://`` simple index reads ``<dir>/<project>/
  index.html``; a find-links index (a directory or a page of links) is filtered per project; the
  same validation applies to both.

Every error names the index, the project (or file) and the reason.

This module decides what to request and owns the HTTP exchange (negotiation, redirects,
credentials, per-index concurrency); the parts with rules of their own live beside it:
`satchel.daemon.upstream._breaker` (retries and the circuit breaker),
`satchel.daemon.upstream._downloads` (bounded
decoding, resumable and rate-limited file bodies) and `satchel.daemon.upstream._localfiles` (``file://``
indexes and find-links directories).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar
from urllib.parse import urljoin, urlsplit

import httpx
import msgspec
import trio
from packaging.utils import canonicalize_name

from satchel.daemon.errors import (
    HostileInput,
    IndexUnreachable,
    NotFound,
    UpstreamError,
)
from satchel.daemon.settings.config import IndexConfig
from satchel.daemon.settings.credbinding import CredentialBindings
from satchel.daemon.settings.credentials import (
    Credentials,
    find_credentials,
    origin_of,
    redact,
    split_userinfo,
)
from satchel.daemon.storage.digests import Digests, checkable
from satchel.daemon.storage.model import FileEntry, ProjectPage
from satchel.daemon.upstream._breaker import (
    Breaker,
    ConnectFailure,
    IndexState,
    Retries,
    ServerError,
    check_status,
    describe,
)
from satchel.daemon.upstream._downloads import CHUNK, Decoder, Download, FileDownload
from satchel.daemon.upstream._httpclient import http_client
from satchel.daemon.upstream._localfiles import (
    file_index_page,
    is_local,
    local_download,
    local_links_page,
    local_path,
    read_local,
    scan_directory,
    wheel_metadata,
)
from satchel.daemon.upstream._pagebody import HTML_V1, JSON_V1, read_page
from satchel.daemon.upstream.limits import Limits
from satchel.daemon.upstream.remotezip import Ranged, RangesUnsupported, parse_content_range
from satchel.daemon.upstream.simple import (
    file_project,
    validate_filename,
)

__all__ = ["ACCEPT", "FileDownload", "IndexState", "Upstream"]

_T = TypeVar("_T")

#: PEP 691 negotiation: JSON preferred, the versioned HTML next, legacy HTML last.
ACCEPT = f"{JSON_V1}, {HTML_V1};q=0.2, text/html;q=0.01"
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_log = logging.getLogger(__name__)


#: The largest ``max-age`` taken from an index: RFC 9111 5.2 (delta-seconds) says a cache
#: takes a larger one, or one it cannot represent, as 2^31; SQLite holds no integer past 2^63,
#: and a page with a larger one could not be stored.
_MAX_AGE_CAP = 2**31


def _max_age(cache_control: str | None) -> int | None:
    if not cache_control:
        return None
    directives = [d.strip().lower() for d in cache_control.split(",")]
    if "no-cache" in directives or "no-store" in directives:
        return None
    for directive in directives:
        name, _, value = directive.partition("=")
        if name == "max-age" and value.strip().isdigit():
            digits = value.strip()
            return _MAX_AGE_CAP if len(digits) > 10 else min(int(digits), _MAX_AGE_CAP)
    return None


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
        silence = self.limits.silence
        connect = min(silence, self.limits.connect_timeout)
        timeout = httpx.Timeout(silence, connect=connect)
        self._file_timeout = httpx.Timeout(self.limits.read_timeout, connect=connect)
        self._client = http_client(timeout)
        self._breakers: dict[str, Breaker] = {}
        self._limiters: dict[str, trio.CapacityLimiter] = {}
        self._credentials: dict[str, tuple[str, Credentials | None]] = {}
        #: Name-given credentials' first origins (`credbinding`); None: not checked (tests).
        self.credential_bindings: CredentialBindings | None = None
        self._links: dict[str, tuple[float, ProjectPage]] = {}
        #: Origins that ignored or refused a range request: their wheels are read whole.
        self._no_ranges: set[tuple[str, str, int | None]] = set()
        #: Origins that answered a range request with a range.
        self._ranges_ok: set[tuple[str, str, int | None]] = set()

    async def __aenter__(self) -> Upstream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    # -- state ----------------------------------------------------------------------------------

    def index_states(self) -> dict[str, IndexState]:
        """Per index name: online / offline (since when, why, next probe) / unknown."""
        return {name: b.snapshot(name) for name, b in self._breakers.items()}

    def is_offline(self, index_name: str) -> bool:
        breaker = self._breakers.get(index_name)
        return breaker is not None and breaker.state == "offline"

    def offline_error(self, index: IndexConfig, what: str) -> IndexUnreachable | None:
        """The error to answer with, without a request, while *index* is marked offline
        (None while it is not): a caller with a cached answer uses that instead of waiting on a
        probe, and probes in the background."""
        breaker = self._breakers.get(index.name)
        if breaker is None or breaker.state != "offline":
            return None
        return breaker.offline_error(index, what)

    def reset(self, index_name: str) -> None:
        """Forget what is known about *index_name* (e.g. after its URL changed)."""
        self._breakers.pop(index_name, None)
        self._credentials.pop(index_name, None)
        self._links.pop(index_name, None)

    def _breaker(self, index: IndexConfig) -> Breaker:
        breaker = self._breakers.get(index.name)
        if breaker is None:
            breaker = self._breakers[index.name] = Breaker(self.limits, self._clock)
        return breaker

    async def _retrying(
        self,
        index: IndexConfig,
        what: str,
        call: Callable[[], Awaitable[_T]],
        *,
        background: bool = False,
    ) -> _T:
        """Run *call* with retries, backoff and the index's circuit breaker."""
        return await self._breaker(index).retrying(index, what, call, background=background)

    def claim_probe(self, index: IndexConfig) -> bool:
        """Whether the caller should probe *index* now, in the background: it is offline and
        its cool-down is over (`Breaker.claim_probe`); then ``fetch_page(..., probe=True)``."""
        return self._breaker(index).claim_probe()

    # -- public API -----------------------------------------------------------------------------

    async def fetch_page(
        self,
        index: IndexConfig,
        project: str,
        cached: ProjectPage | None = None,
        *,
        force: bool = False,
        probe: bool = False,
    ) -> ProjectPage:
        """The project page of *project* on *index*, revalidating *cached* when given.

        Raises `NotFound` when the index does not have the project, `IndexUnreachable` when it
        cannot be reached (or is in its offline cool-down), `UpstreamError` otherwise. *probe*:
        the background probe `claim_probe` granted (it goes out despite the cool-down).
        """
        project = canonicalize_name(project)
        if index.kind == "find-links":
            return await self._find_links_page(index, project, probe=probe)
        page_url = self._base_url(index).rstrip("/") + f"/{project}/"
        now = self._clock()
        if cached is not None and (cached.index != index.name or cached.url != page_url):
            cached = None
        if cached is not None and not force:
            max_age = index.max_age if index.max_age is not None else cached.max_age
            if max_age is not None and now - cached.fetched_at < max_age:
                return cached
        if is_local(page_url):
            return await file_index_page(
                index, project, page_url, cached, cap=self.limits.max_page_bytes, clock=self._clock
            )
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
                check_status(response, what)
                page = await read_page(response, index, project, final_url, what, self.limits)
            return msgspec.structs.replace(
                page,
                fetched_at=self._clock(),
                etag=response.headers.get("ETag"),
                last_modified=response.headers.get("Last-Modified"),
                max_age=_max_age(response.headers.get("Cache-Control")),
            )

        return await self._retrying(index, what, attempt, background=probe)

    async def fetch_core_metadata(self, index: IndexConfig, file: FileEntry) -> bytes:
        """The file's core metadata: PEP 658 ``<url>.metadata``, hash-checked.

        For a local (``file://``) wheel without a ``.metadata`` sidecar the METADATA is read from
        the wheel itself (cheap: the zip directory). Anything else raises `NotFound`, and the
        caller downloads the file instead.
        """
        project = file_project(file.filename) or "?"
        what = f"index {index.name}: project {project}: {file.filename}.metadata"
        stated = file.core_metadata
        if stated is None:
            if file.is_wheel and is_local(file.url):
                return await trio.to_thread.run_sync(wheel_metadata, local_path(file.url), what)
            raise NotFound(f"{what}: the index offers no core metadata for this file")
        digests = checkable(stated)
        if stated and not digests:
            # Unverifiable: the caller reads the metadata from the (verified) file instead.
            offered = ", ".join(sorted(stated))
            raise NotFound(f"{what}: only {offered} digest(s), none of which can be checked")
        url = file.url + ".metadata"
        if is_local(url):
            data = await trio.to_thread.run_sync(
                read_local, local_path(url), self.limits.max_metadata_bytes, what
            )
        else:

            async def get() -> bytes:
                return await self._get_bytes(index, url, what, self.limits.max_metadata_bytes)

            if self._own_host(index, url):
                data = await self._retrying(index, what, get)
            else:
                data = await self._from_file_host(index, url, what, get)
        check = Digests(digests)
        check.update((data,))
        check.check(what)
        return data

    @asynccontextmanager
    async def open_file(
        self, index: IndexConfig, file: FileEntry, *, max_bytes: int | None = None
    ) -> AsyncIterator[FileDownload]:
        """Stream *file*: ``async with up.open_file(i, f) as dl: async for chunk in dl: ...``.

        The caller hashes and stores; this enforces the size cap (announced and actual). The
        opening is retried on transport failures and 5xx/429; a body that breaks off mid-way is
        resumed with a Range request (`satchel.daemon.upstream._downloads.Download`), so the caller
        sees
        one stream; one slower than `Limits.min_rate` is cut. A file on the index's own host
        that cannot be reached marks the index offline; one on another host (the index's file
        host) is an `UpstreamError` naming that host, and the index stays as it was.
        """
        cap = self.limits.max_file_bytes if max_bytes is None else max_bytes
        project = file_project(file.filename) or "?"
        what = f"index {index.name}: project {project}: file {file.filename}"
        validate_filename(file.filename, None)
        if is_local(file.url):
            yield local_download(file, cap, what)
            return
        breaker = self._breaker(index)
        # Files on a host of their own (a CDN, object storage) say nothing about the index:
        # an unreachable file host neither waits on nor marks the index's breaker.
        own_host = self._own_host(index, file.url)
        if own_host:
            breaker.fail_fast(index, what)
        async with self._limiter(index):
            download = Download(
                lambda headers: self._get(
                    index, file.url, headers, what, limiter=False, file_body=True
                ),
                what,
                cap,
                self.limits,
            )
            try:
                await download.open(0)
                if own_host:
                    breaker.mark_online()
                length = download.response.headers.get("Content-Length")
                announced = int(length) if length and length.isdigit() else None
                if announced is not None and announced > cap:
                    raise HostileInput(f"{what}: announced {announced} bytes, over {cap}")
                yield FileDownload(file.url, file.filename, announced, download.chunks())
            except ConnectFailure as exc:
                if not own_host:
                    raise self._file_host_error(index, file.url, what, exc) from None
                breaker.mark_offline(index, str(exc))
                raise IndexUnreachable(
                    redact(f"{what}: index unreachable ({exc}); marked offline"),
                    details={"index": index.name, "reason": str(exc)},
                ) from None
            finally:
                await download.aclose()

    async def read_range(self, index: IndexConfig, file: FileEntry, spec: str, cap: int) -> Ranged:
        """One ``Range: bytes=<spec>`` GET of *file* (`remotezip.ReadRange`), retried like a
        metadata request; credentials go only to the index's own origin (`_get`).

        A 200 (the range ignored), a 416 (refused) or an unusable 206 raises
        `RangesUnsupported`, for the whole file instead (a 200's body is not read), and the
        origin is not asked for a range again (`ranges_ignored`)."""
        project = file_project(file.filename) or "?"
        what = f"index {index.name}: project {project}: file {file.filename}"
        headers = {"Range": f"bytes={spec}", "Accept-Encoding": "identity"}
        origin = origin_of(file.url)

        async def get() -> Ranged:
            async with self._get(index, file.url, headers, what) as (response, _):
                status = response.status_code
                if status == 200:
                    length = response.headers.get("Content-Length", "")
                    if not (length.isdigit() and int(length) <= cap):
                        self._no_ranges.add(origin)  # a small file may come whole: no verdict
                    raise RangesUnsupported(f"{what}: the server ignored a range request (200)")
                if status == 416:
                    self._no_ranges.add(origin)
                    raise RangesUnsupported(f"{what}: the server refused a range request (416)")
                if status != 206:
                    check_status(response, what)
                    raise UpstreamError(f"{what}: unexpected HTTP {status}")
                try:
                    return await self._read_partial(response, what, cap)
                except RangesUnsupported:
                    self._no_ranges.add(origin)
                    raise

        if self._own_host(index, file.url):
            ranged = await self._retrying(index, what, get)
        else:
            ranged = await self._from_file_host(index, file.url, what, get)
        self._ranges_ok.add(origin)
        return ranged

    async def _read_partial(self, response: httpx.Response, what: str, cap: int) -> Ranged:
        """A 206 answer's range: its Content-Range, and a body of exactly that length."""
        encoding = response.headers.get("Content-Encoding", "").strip().lower()
        if encoding not in ("", "identity"):
            raise RangesUnsupported(f"{what}: a range sent with {encoding[:40]!r} encoding")
        first, last, total = parse_content_range(response.headers.get("Content-Range"), what)
        if last - first + 1 > cap:
            raise HostileInput(f"{what}: a range of {last - first + 1} bytes, over {cap}")
        decoder = Decoder("", cap, what)
        parts: list[bytes] = []
        async for raw in response.aiter_raw(CHUNK):
            parts.extend(decoder.decode(raw))
        data = b"".join(parts)
        if len(data) != last - first + 1:
            raise RangesUnsupported(f"{what}: a 206 body of another length than its range")
        return Ranged(first, data, total)

    def ranges_served(self, url: str) -> bool:
        """Whether *url*'s origin answered a range request with a range before (so the
        resolver's look-ahead may read metadata from its wheels on a guess)."""
        origin = origin_of(url)
        return origin in self._ranges_ok and origin not in self._no_ranges

    def ranges_ignored(self, url: str) -> bool:
        """Whether *url*'s origin answered a range request with the whole file before."""
        return origin_of(url) in self._no_ranges

    # -- file hosts -----------------------------------------------------------------------------

    def _own_host(self, index: IndexConfig, url: str) -> bool:
        """Whether *url* is on the index's own origin (else: a file host, e.g. a CDN)."""
        return origin_of(url) == origin_of(self._base_url(index))

    async def _from_file_host(
        self, index: IndexConfig, url: str, what: str, call: Callable[[], Awaitable[_T]]
    ) -> _T:
        """*call* with the usual retries but without the index's breaker: a file host that
        cannot be reached says nothing about the index (issue 11.8)."""
        retries = Retries(self.limits)
        while True:
            try:
                with trio.fail_after(self.limits.request_deadline):
                    return await call()
            except (ConnectFailure, ServerError, trio.TooSlowError) as exc:
                pause = retries.pause(exc)
                if pause is None:
                    raise self._file_host_error(index, url, what, exc) from None
                await trio.sleep(pause)

    def _file_host_error(
        self, index: IndexConfig, url: str, what: str, exc: Exception
    ) -> UpstreamError:
        """A file host failed: the error names it, and says the index itself is not at fault."""
        parts = urlsplit(url)
        host = parts.hostname or "?"
        host = f"{host}:{parts.port}" if parts.port else host
        reason = str(exc) or type(exc).__name__
        return UpstreamError(
            redact(
                f"{what}: the file host {host} did not answer usably ({reason}; "
                f"{self.limits.attempts} attempts); the index itself answers and is not "
                "affected: retry later, or ask the index's operators"
            ),
            details={"index": index.name, "host": host, "reason": redact(reason)},
        )

    # -- http machinery -------------------------------------------------------------------------

    def _base_url(self, index: IndexConfig) -> str:
        return split_userinfo(index.url)[0]

    def _auth(self, index: IndexConfig, url: str) -> httpx.BasicAuth | None:
        known = self._credentials.get(index.name)
        if known is None or known[0] != index.url:
            known = (index.url, find_credentials(index.name, index.url, environ=self._environ))
            self._credentials[index.name] = known
        creds = known[1]
        if creds is not None and self.credential_bindings is not None:
            # A credential given by index name goes to the origin it was first used for only
            # (records it on first use: one small write per index name, ever).
            self.credential_bindings.check(index.name, creds)
        # Bound to the index URL's origin: a redirect to another host, port or scheme goes
        # without (redirects are followed here, by hand, so httpx never carries it over).
        if creds is None or not creds.allows(url):
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
        file_body: bool = False,
    ) -> AsyncIterator[tuple[httpx.Response, str]]:
        """GET *url* following at most `max_redirects` same-scheme redirects; streams the body.

        *file_body*: reads may pause up to `Limits.read_timeout`, not just `Limits.silence`
        (the caller bounds the wait for the answer's head itself)."""
        timeout = self._file_timeout if file_body else self._client.timeout
        async with self._limiter(index) if limiter else _nothing():
            for _hop in range(self.limits.max_redirects + 1):
                request = self._client.build_request("GET", url, headers=headers, timeout=timeout)
                try:
                    response = await self._client.send(
                        request, stream=True, auth=self._auth(index, url)
                    )
                except httpx.UnsupportedProtocol as exc:
                    raise UpstreamError(redact(f"{what}: {exc}")) from None
                except (httpx.TransportError, OSError) as exc:
                    raise ConnectFailure(redact(describe(exc))) from None
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
                    raise ConnectFailure(redact(describe(exc))) from None
                finally:
                    await response.aclose()
                return
            raise UpstreamError(f"{what}: more than {self.limits.max_redirects} redirects")

    async def _get_bytes(self, index: IndexConfig, url: str, what: str, cap: int) -> bytes:
        async with self._get(index, url, {"Accept-Encoding": "gzip"}, what) as (response, _):
            check_status(response, what)
            decoder = Decoder(response.headers.get("Content-Encoding", ""), cap, what)
            parts: list[bytes] = []
            async for raw in response.aiter_raw(CHUNK):
                parts.extend(decoder.decode(raw))
            return b"".join(parts)

    # -- file:// and find-links -----------------------------------------------------------------

    async def _find_links_page(
        self, index: IndexConfig, project: str, *, probe: bool = False
    ) -> ProjectPage:
        what = f"index {index.name}: project {project}"
        base = self._base_url(index)
        if is_local(base) and local_path(base).is_dir():
            files = await trio.to_thread.run_sync(scan_directory, local_path(base), project)
        else:
            links = await self._links_page(index, base, probe=probe)
            files = tuple(f for f in links.files if file_project(f.filename) == project)
        if not files:
            raise NotFound(f"{what}: no distribution of this project among the find-links")
        return ProjectPage(
            index=index.name, project=project, url=base, files=files, fetched_at=self._clock()
        )

    async def _links_page(
        self, index: IndexConfig, url: str, *, probe: bool = False
    ) -> ProjectPage:
        known = self._links.get(index.name)
        ttl = index.max_age if index.max_age is not None else self.limits.find_links_ttl
        if known is not None and self._clock() - known[0] < ttl:
            return known[1]
        what = f"index {index.name}: find-links page"
        if is_local(url):
            page = await local_links_page(index, url, self.limits.max_page_bytes, what)
        else:

            async def attempt() -> ProjectPage:
                headers = {"Accept": "text/html", "Accept-Encoding": "gzip"}
                async with self._get(index, url, headers, what) as (response, final_url):
                    check_status(response, what)
                    return await read_page(response, index, None, final_url, what, self.limits)

            page = await self._retrying(index, what, attempt, background=probe)
        self._links[index.name] = (self._clock(), page)
        return page


@asynccontextmanager
async def _nothing() -> AsyncIterator[None]:
    yield
