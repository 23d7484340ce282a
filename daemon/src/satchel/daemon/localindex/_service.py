"""The local index's routes: Satchel's cache and catalog as a simple index over HTTP.

Routes (every one behind the token or the peer's uid, see `auth` and `peer`)::

    /simple/                         cached projects (PEP 503/691 root)
    /simple/<project>/               the project page, as the daemon's index strategy scopes it
    /files/<sha256>/<filename>       a distribution file (pull-through: fetched on first request)
    /files/<sha256>/<wheel>.metadata its core metadata (PEP 658), when the cache can serve it

Why the page follows `Catalog.session().scoped_pages` and never a union of every index: the point
of first-index and pins is that a private project name cannot be answered by another index, and
an installer pointed at this URL must get exactly that protection.

Online, a page is revalidated upstream (cheaply: the upstream client honours max-age and ETags)
at most once per `pagememo.REVALIDATE_WINDOW`, and served as last rendered in between while
nothing it is made of changed in the daemon; each file is downloaded on first request through
`Catalog.fetch_file`, so it is hash-checked, stored once and recorded with its origin. When an
index cannot be reached the page comes from the metadb, lists only files whose bytes are in the
store, and says so in ``X-Satchel-Stale`` (when it was last fetched) and a ``Warning: 110``
header.

File URLs contain the sha256, so a URL's bytes never change: files are served with long-lived
immutable caching, and a file already in the store is answered without consulting any index,
but held to its project's binding as pages are (`satchel.daemon.localindex._binding`: 403).
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote, unquote, urlsplit
from urllib.request import url2pathname

import msgspec
import trio
from packaging.utils import (
    canonicalize_name,
)

from satchel.daemon.errors import (
    ConfigError,
    CredentialWithheld,
    HashMismatch,
    IndexUnreachable,
    MetadataMismatch,
    NotCached,
    NotFound,
    OriginChanged,
    SatchelError,
    UpstreamError,
)
from satchel.daemon.indexes.catalog import metadata_from_file
from satchel.daemon.indexes.session import Session
from satchel.daemon.localindex._auth import refusal
from satchel.daemon.localindex._binding import stored_file_refusal
from satchel.daemon.localindex._filememo import FileMemo
from satchel.daemon.localindex._messages import FileBody, Request, Response, byte_range
from satchel.daemon.localindex._pagememo import PageMemo, page_etag
from satchel.daemon.localindex._pages import (
    HTML_V1,
    JSON_V1,
    TEXT_HTML,
    FileLink,
    ProjectView,
    content_type,
    negotiate,
    render_project,
    render_root,
)
from satchel.daemon.localindex._responses import (
    OCTET_STREAM,
    etag_matches,
    rfc3339,
    text,
    valid_filename,
    valid_project_name,
    version_of,
)
from satchel.daemon.requests.resolution import shown_reason
from satchel.daemon.settings.credentials import redact
from satchel.daemon.storage.model import FileEntry, ProjectPage
from satchel.daemon.upstream.simple import file_project

if TYPE_CHECKING:
    from satchel.daemon.requests.runtime import Runtime

__all__ = ["FILE_CACHE_CONTROL", "PAGE_CACHE_CONTROL", "LocalIndex"]

log = logging.getLogger(__name__)

#: Pages change whenever upstream does: clients may store them but must revalidate (ETag -> 304).
PAGE_CACHE_CONTROL = "no-cache"
#: A file URL names its sha256, so its bytes can never change.
FILE_CACHE_CONTROL = "public, max-age=31536000, immutable"
#: Files the local index has listed recently (sha256 -> where from), so a file request does not
#: revalidate its project page again. Beyond this many, the oldest are forgotten (and found again
#: through the project page, named by the file name, if asked for).
MAX_REMEMBERED_FILES = 200_000
_HEX = frozenset("0123456789abcdef")
_METADATA_SUFFIX = ".metadata"


def _fresh_until(session: Session, pages: tuple[ProjectPage, ...]) -> float | None:
    """Unix time until which upstream's max-age (or the index's own ``max-age`` setting) keeps
    every page in *pages* fresh, as `Upstream.fetch_page` reckons it; None: one has none."""
    until: float | None = None
    for page in pages:
        index = session.index(page.index)
        if index is None or index.kind != "simple":
            return None  # find-links listings have a freshness of their own: not reckoned here
        max_age = index.max_age if index.max_age is not None else page.max_age
        if max_age is None:
            return None
        expires = page.fetched_at + max_age
        until = expires if until is None else min(until, expires)
    return until


@dataclass(frozen=True)
class _Listed:
    """Where a listed file came from: enough to download it or its metadata later."""

    page: ProjectPage
    entry: FileEntry


class LocalIndex:
    """Answers local-index requests for one running daemon (`handle` is the HTTP handler)."""

    def __init__(self, rt: Runtime, token: str) -> None:
        self.rt = rt
        self.token = token
        self._listed: dict[str, _Listed] = {}
        #: sha256 of a file -> sha256 of the metadata bytes the cache holds for it.
        self._metadata_hashes: dict[str, str] = {}
        #: (file URL, size, mtime) -> sha256 of files in local find-links directories.
        self._local_hashes: dict[tuple[str, int, int], str] = {}
        #: sha256 of a wheel -> the metadb `generation` at which it was found without its
        #: metadata: asked again once anything was written since (a resolve or a prefetch may
        #: have stored it).
        self._metadata_absent: dict[str, int] = {}
        #: Blobs served since the last flush (their last_used is bumped in one batch).
        self.used: set[str] = set()
        #: Online pages as last built and rendered (`pagememo`: served again while nothing
        #: they are made of changed, within the revalidation window).
        self.pages = PageMemo()
        #: Stored files found servable, and metadata served (`filememo`).
        self.files = FileMemo()
        rt.catalog.metadata_listeners.append(self._forget_metadata)

    def _forget_metadata(self, sha: str, _url: str) -> None:
        """The cache replaced *sha*'s core metadata with the wheel's own (issue 11.5): the
        digest advertised on pages is taken afresh from it."""
        self._metadata_hashes.pop(sha, None)
        self._metadata_absent.pop(sha, None)

    # -- entry point ----------------------------------------------------------------------------

    async def handle(self, request: Request) -> Response:
        """`authorize`, then `route`: one request answered start to end."""
        return self.authorize(request) or await self.route(request)

    def authorize(self, request: Request) -> Response | None:
        """The refusal of a request without the token (or for a foreign Host), else None
        (`_auth.refusal`). The HTTP server calls this before any other work on every request,
        and closes the connection after a refusal (see `_http`)."""
        return refusal(request, self.token)

    async def route(self, request: Request) -> Response:
        """Answer an authorized request; whatever the answer, the first-use bindings it relied
        on are durable before it goes out (`Origins.make_durable`)."""
        try:
            return await self._route(request)
        finally:
            await self.rt.catalog.origins.durable_before_answer()

    async def _route(self, request: Request) -> Response:
        target = request.target
        if not target.startswith("/"):
            target = urlsplit(target).path or "/"  # absolute-form targets (RFC 9112 3.2.2)
        raw_path, _, query = target.partition("?")
        path = unquote(raw_path)
        if path == "/" or path == "/simple":
            return self._redirect("/simple/", query)
        if path == "/simple/":
            return await self._root(request, query)
        if path.startswith(("/simple/", "/files/")):
            try:  # no index set (config.toml broken or missing since start): say so, as commands do
                self.rt.check_usable()
            except ConfigError as exc:
                return text(503, redact(exc.message))
        if path.startswith("/simple/"):
            return await self._project_route(request, path.removeprefix("/simple/"), query)
        if path.startswith("/files/"):
            return await self._file_route(request, path.removeprefix("/files/"))
        return text(404, "not found")

    @staticmethod
    def _redirect(location: str, query: str) -> Response:
        if query:
            location = f"{location}?{query}"
        return Response(301, [("Location", location), ("Content-Type", "text/plain")], b"")

    # -- pages ----------------------------------------------------------------------------------

    @staticmethod
    def _media_type(request: Request, query: str) -> str | None:
        # Not parse_qs: it turns "+" into a space, and PEP 691's own example writes
        # ``?format=application/vnd.pypi.simple.v1+json`` unescaped.
        chosen: str | None = None
        for pair in query.split("&"):
            key, sep, value = pair.partition("=")
            if sep and unquote(key) == "format":
                chosen = unquote(value)
        return negotiate(request.header("accept"), chosen)

    def _page_response(
        self,
        request: Request,
        body: bytes,
        media_type: str,
        extra: list[tuple[str, str]] | None = None,
        etag: str | None = None,
    ) -> Response:
        etag = etag or page_etag(media_type, body)
        headers = [
            ("Vary", "Accept"),
            ("ETag", etag),
            ("Cache-Control", PAGE_CACHE_CONTROL),
            *(extra or []),
        ]
        if etag_matches(request.header("if-none-match"), etag):
            return Response(304, headers)
        return Response(200, [("Content-Type", content_type(media_type)), *headers], body)

    @staticmethod
    def _not_acceptable() -> Response:
        return text(
            406,
            f"no acceptable representation; available: {JSON_V1}, {HTML_V1}, {TEXT_HTML}",
            [("Vary", "Accept")],
        )

    async def _root(self, request: Request, query: str) -> Response:
        media_type = self._media_type(request, query)
        if media_type is None:
            return self._not_acceptable()
        configured = {index.name for index in self.rt.config.indexes}
        keys = await trio.to_thread.run_sync(self.rt.metadb.page_keys)
        projects = sorted({key.project for key in keys if key.index in configured})
        return self._page_response(request, render_root(projects, media_type), media_type)

    async def _project_route(self, request: Request, rest: str, query: str) -> Response:
        name = rest.removesuffix("/")
        if not valid_project_name(name):
            return text(404, "not found")
        canonical = canonicalize_name(name)
        if name != canonical or not rest.endswith("/"):
            return self._redirect(f"/simple/{quote(canonical)}/", query)
        media_type = self._media_type(request, query)
        if media_type is None:
            return self._not_acceptable()
        config, generation = self.rt.config, self.rt.metadb.generation
        started = time.monotonic()
        wall = time.time()
        memo = (
            None
            if self._any_offline()
            else self.pages.get(canonical, config, generation, started, wall)
        )
        if memo is not None:
            body, etag = self.pages.rendered(canonical, memo, media_type)
            return self._page_response(request, body, media_type, etag=etag)
        session = self.rt.catalog.session(config=config)
        try:
            scoped = await session.scoped_pages(canonical)
        except IndexUnreachable as exc:
            return text(503, redact(exc.message), [("Retry-After", "30")])
        except UpstreamError as exc:
            return text(502, redact(exc.message))
        except (OriginChanged, CredentialWithheld) as exc:
            # The project's index changed (or its credential is withheld): refused, the message
            # names the way out, never a 404 that an installer would read as "look elsewhere".
            return text(403, redact(exc.message))
        except SatchelError as exc:
            return text(404, redact(exc.message))
        if not scoped.pages:
            if scoped.stored_unlisted:
                return text(
                    404,
                    f"{canonical}: offline, and no cached page of an index in scope lists its "
                    f"stored files ({', '.join(scoped.stored_unlisted[:5])})",
                )
            if scoped.offline:
                return text(404, f"{canonical} is not in the cache (offline)")
            return text(404, f"{canonical} is not on the configured indexes")
        if self._needs_io(session, scoped.pages):
            view, stale_since = await trio.to_thread.run_sync(self._view, session, scoped.pages)
        else:
            # The common warm case touches neither disk nor database: a worker-thread hop
            # would cost more than the work (and is most of a cached page's latency).
            view, stale_since = self._view(session, scoped.pages)
        if stale_since is None and not session.offline:
            fresh = _fresh_until(session, scoped.pages)
            memo = self.pages.put(canonical, view, config, generation, started, fresh)
            body, etag = self.pages.rendered(canonical, memo, media_type)
            return self._page_response(request, body, media_type, etag=etag)
        extra: list[tuple[str, str]] = []
        if stale_since is not None:
            when = rfc3339(stale_since)
            extra.append(("X-Satchel-Stale", when))
            extra.append(
                ("Warning", f'110 satchel "Response is stale: index unreachable; as of {when}"')
            )
        return self._page_response(request, render_project(view, media_type), media_type, extra)

    def _any_offline(self) -> bool:
        """Whether an index is known unreachable: its pages are then stale, built each time."""
        upstream = self.rt.catalog.upstream
        return any(upstream.is_offline(index.name) for index in self.rt.config.indexes)

    def _needs_io(self, session: Session, pages: tuple[ProjectPage, ...]) -> bool:
        """Whether rendering must stat the store or read the metadb (then: a worker thread)."""
        if session.offline:
            return True
        upstream = self.rt.catalog.upstream
        generation = self.rt.metadb.generation
        for page in pages:
            if upstream.is_offline(page.index):
                return True
            for entry in page.files:
                sha = entry.sha256
                if sha is None:
                    if entry.url.startswith("file:"):
                        return True  # a find-links directory: hashed (and memoised) in a thread
                    continue
                if entry.size is None:
                    return True
                if (
                    entry.is_wheel
                    and sha not in self._metadata_hashes
                    and self._metadata_absent.get(sha) != generation
                ):
                    return True
        return False

    def _view(
        self, session: Session, pages: tuple[ProjectPage, ...]
    ) -> tuple[ProjectView, float | None]:
        """The merged view of the scoped pages (worker thread: it stats and reads the metadb).

        Under first-index there is one page; under unsafe-best-match the strategy itself allows
        several, merged in priority order (the first index listing a file name wins).
        """
        store = self.rt.store
        upstream = self.rt.catalog.upstream
        stale_since: float | None = None
        entries: list[tuple[ProjectPage, FileEntry, bool]] = []
        seen: set[str] = set()
        versions: dict[str, None] = {}
        for page in pages:
            stale = session.offline or upstream.is_offline(page.index)
            if stale:
                stale_since = min(stale_since or page.fetched_at, page.fetched_at)
            for offered in page.files:
                entry = self._hashed(offered)
                sha = entry.sha256 if entry is not None else None
                if entry is None or sha is None or entry.filename in seen:
                    continue  # a link without a sha256 cannot have a content-addressed URL
                if stale and not store.has(sha):
                    continue  # the index is unreachable: only what the store holds installs
                seen.add(entry.filename)
                entries.append((page, entry, stale))
            if not stale:
                versions.update(dict.fromkeys(page.versions))
        wheels = [e.sha256 for _, e, _ in entries if e.is_wheel and e.sha256 is not None]
        generation = self.rt.metadb.generation  # before the read: a write since moves it
        unknown = [
            sha
            for sha in wheels
            if sha not in self._metadata_hashes and self._metadata_absent.get(sha) != generation
        ]
        if unknown:
            found = self.rt.metadb.core_metadata_many(unknown)
            for sha in unknown:
                data = found.get(sha)
                if data is None:
                    self._metadata_absent[sha] = generation
                else:
                    self._metadata_hashes[sha] = hashlib.sha256(data).hexdigest()
                    self._metadata_absent.pop(sha, None)
        files: list[FileLink] = []
        derive_all = not versions  # upstream gave no PEP 700 versions: take them from files
        for page, entry, stale in entries:
            sha = entry.sha256
            assert sha is not None
            self._remember(sha, _Listed(page, entry))
            files.append(self._link(entry, sha, stale))
            if stale or derive_all:
                version = version_of(entry.filename)
                if version is not None:
                    versions.setdefault(version)
        return ProjectView(
            project=pages[0].project, files=tuple(files), versions=tuple(versions)
        ), stale_since

    def _hashed(self, entry: FileEntry) -> FileEntry | None:
        """*entry* with a sha256: as listed, or computed for a local (find-links) file.

        Blocking when it hashes; memoised by (URL, size, mtime), so a directory is read once
        per change. A remote link without a sha256 stays without one (None here when it
        cannot get one): hashing it would mean downloading it just to list it.
        """
        if entry.sha256 is not None:
            return entry
        if not entry.url.startswith("file:"):
            return None
        path = Path(url2pathname(urlsplit(entry.url).path))
        try:
            st = path.stat()
            key = (entry.url, st.st_size, st.st_mtime_ns)
            sha = self._local_hashes.get(key)
            if sha is None:
                digest = hashlib.sha256()
                with path.open("rb") as handle:
                    while block := handle.read(1024 * 1024):
                        digest.update(block)
                sha = self._local_hashes[key] = digest.hexdigest()
        except OSError:
            return None
        return msgspec.structs.replace(entry, sha256=sha, size=entry.size or st.st_size)

    def _link(self, entry: FileEntry, sha: str, stale: bool) -> FileLink:
        metadata: str | None = None
        if entry.is_wheel:
            metadata = self._metadata_hashes.get(sha)
            if metadata is None and not stale and entry.metadata_sha256:
                # Upstream serves PEP 658 metadata with a known hash: the cache fetches it on
                # request (verified against that hash) and stores it.
                metadata = entry.metadata_sha256
        size = entry.size
        if size is None and self.rt.store.has(sha):
            size = self.rt.store.path(sha).stat().st_size
        return FileLink(
            filename=entry.filename,
            sha256=sha,
            requires_python=entry.requires_python,
            yanked=entry.yanked,
            yanked_reason=entry.yanked_reason and shown_reason(entry.yanked_reason),
            size=size,
            upload_time=entry.upload_time,
            metadata_sha256=metadata,
        )

    def _remember(self, sha: str, listed: _Listed) -> None:
        self._listed.pop(sha, None)
        self._listed[sha] = listed
        if len(self._listed) > MAX_REMEMBERED_FILES:
            # Pages are rendered in worker threads, possibly two at once: pop, never del.
            for old in list(self._listed)[: MAX_REMEMBERED_FILES // 10]:
                self._listed.pop(old, None)

    # -- files ----------------------------------------------------------------------------------

    async def _file_route(self, request: Request, rest: str) -> Response:
        sha, slash, filename = rest.partition("/")
        if not slash or len(sha) != 64 or not set(sha) <= _HEX:
            return text(404, "not found")
        metadata = filename.endswith(_METADATA_SUFFIX)
        dist = filename.removesuffix(_METADATA_SUFFIX) if metadata else filename
        if not valid_filename(dist) or (metadata and not dist.endswith(".whl")):
            return text(404, "not found")
        try:
            if metadata:
                return await self._metadata(request, sha, dist)
            return await self._file(request, sha, dist)
        except IndexUnreachable as exc:
            return text(503, redact(exc.message), [("Retry-After", "30")])
        except (HashMismatch, MetadataMismatch, UpstreamError) as exc:
            return text(502, redact(exc.message))
        except (NotFound, NotCached) as exc:
            return text(404, redact(exc.message))
        except (OriginChanged, CredentialWithheld) as exc:
            return text(403, redact(exc.message))

    async def _find(self, sha: str, filename: str) -> tuple[Session, _Listed] | None:
        """Where the file *sha* named *filename* is listed, within the configured scope."""
        session = self.rt.catalog.session()
        listed = self._listed.get(sha)
        if listed is not None and listed.entry.filename == filename:
            return session, listed
        project = file_project(filename)
        if project is None:
            return None
        scoped = await session.scoped_pages(project)
        for page in scoped.pages:
            for offered in page.files:
                if offered.filename != filename:
                    continue
                entry: FileEntry | None = offered
                if offered.sha256 is None:
                    entry = await trio.to_thread.run_sync(self._hashed, offered)
                if entry is not None and entry.sha256 == sha:
                    found = _Listed(page, entry)
                    self._remember(sha, found)
                    return session, found
        return None

    async def _file(self, request: Request, sha: str, filename: str) -> Response:
        store = self.rt.store
        if not store.has(sha):
            found = await self._find(sha, filename)
            if found is None:
                return text(404, f"{filename} is not listed by the configured indexes")
            session, listed = found
            index = session.index(listed.page.index)
            if index is None or session.offline:
                return text(404, f"{filename} is not in the cache and its index is unreachable")
            await self.rt.catalog.fetch_file(index, listed.page.project, listed.entry)
        refusal = await self._origin_refusal(sha, filename)
        if refusal is not None:
            return refusal
        try:
            size = store.path(sha).stat().st_size
        except FileNotFoundError:
            return text(404, f"{filename} is not in the cache")
        self.used.add(sha)
        etag = f'"{sha}"'
        headers = [
            ("ETag", etag),
            ("Cache-Control", FILE_CACHE_CONTROL),
            ("Accept-Ranges", "bytes"),
        ]
        if etag_matches(request.header("if-none-match"), etag):
            return Response(304, headers)
        wanted = request.header("range")
        if_range = request.header("if-range")
        if if_range is not None and if_range.strip() != etag:
            wanted = None  # the client's partial copy is of other bytes: send them all
        span = byte_range(wanted, size)
        if span is False:
            return text(416, "range not satisfiable", [("Content-Range", f"bytes */{size}")])
        headers.append(("Content-Type", OCTET_STREAM))
        if span is None:
            return Response(200, headers, FileBody(store.path(sha), 0, size))
        start, end = span
        headers.append(("Content-Range", f"bytes {start}-{end - 1}/{size}"))
        return Response(206, headers, FileBody(store.path(sha), start, end - start))

    def _files_key(self) -> tuple[object, int]:
        return self.files.key(self.rt.config, self.rt.metadb.generation)

    async def _origin_refusal(self, sha: str, filename: str) -> Response | None:
        """403 for a stored file its project's binding does not allow (`stored_file_refusal`)."""
        key = self._files_key()
        if self.files.allowed(key, sha, filename):
            return None
        message = await stored_file_refusal(self.rt, sha, filename)
        if message is None:
            self.files.allow(key, sha, filename)
            return None
        log.warning("local index: %s", message)
        return text(403, redact(message))

    async def _metadata(self, request: Request, sha: str, filename: str) -> Response:
        """PEP 658 metadata: the bytes the cache holds, byte-identical to the wheel's METADATA."""
        rt = self.rt
        if rt.store.has(sha):
            refusal = await self._origin_refusal(sha, filename)
            if refusal is not None:
                return refusal
        key = self._files_key()
        kept = self.files.metadata(key, sha)
        if kept is not None:
            return self._metadata_response(request, *kept)
        data = await trio.to_thread.run_sync(lambda: rt.metadb.get_core_metadata(sha))
        if data is None and rt.store.has(sha):
            data = await trio.to_thread.run_sync(metadata_from_file, rt.store.path(sha), filename)
        if data is None:
            found = await self._find(sha, filename)
            if found is None:
                return text(404, f"{filename}: no metadata in the cache")
            session, listed = found
            index = session.index(listed.page.index)
            if index is None or session.offline or listed.entry.metadata_sha256 is None:
                return text(404, f"{filename}: no metadata in the cache")
            data = await rt.catalog.core_metadata(index, listed.page, listed.entry, offline=False)
        digest = hashlib.sha256(data).hexdigest()
        self._metadata_hashes[sha] = digest
        self._metadata_absent.pop(sha, None)
        self.files.keep_metadata(key, sha, data, digest)
        return self._metadata_response(request, data, digest)

    @staticmethod
    def _metadata_response(request: Request, data: bytes, digest: str) -> Response:
        etag = f'"{digest}"'
        headers = [("ETag", etag), ("Cache-Control", FILE_CACHE_CONTROL)]
        if etag_matches(request.header("if-none-match"), etag):
            return Response(304, headers)
        return Response(200, [("Content-Type", OCTET_STREAM), *headers], data)
