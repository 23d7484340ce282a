"""The daemon's view of its indexes: scoped pages, core metadata and files, online or offline.

This is where "identity is the sha256; trust is the index" is enforced. Everything a resolve or
a prefetch learns passes through here, so that:

* pages are fetched from the configured indexes in priority order and remembered per (index,
  project) in the metadb; offline, the remembered pages answer instead;
* a project comes only from the scope the configuration allows (`scope.select_pages`), and only
  from the index it came from before (`origins`: a changed origin is refused, not followed); under
  first-index, when the first index that serves a project cannot be reached and was never seen
  serving it, the answer is an error, never a silent fall-through to the next index (that is how
  dependency confusion happens);
* offline answers list only files whose bytes are in the store, so what resolves offline also
  installs offline;
* every download is hash-checked by the store and recorded with its origin (index, project,
  filename, url); a file served by two indexes is stored once and remembered with both.

A `Session` is one request's view: one configuration snapshot, one online/offline decision
(automatic when every index is unreachable, and reported), and a memo so a page is fetched at
most once per request. Pages of likely dependencies, and the cheap metadata (PEP 658, or byte
ranges from a host that serves them) of each one's likely candidate, are fetched ahead of the
resolver (`follow`, `aim`), so a resolve waits on the network roughly once per dependency level,
not once per project. Only what the resolution can use is fetched ahead: dependencies whose
marker holds on the target, of the extras asked for, at the newest version the requirements
seen so far allow (each other request is a round trip on a remote index: issue 15).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import msgspec
import trio
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from satchel.daemon.errors import (
    IndexUnreachable,
    MetadataMismatch,
    NotCached,
    NotFound,
    SatchelError,
)
from satchel.daemon.indexes._offlinescope import OfflineScopes
from satchel.daemon.indexes.origins import Binding, Origins, index_identity, judge
from satchel.daemon.resolver.buildpolicy import BuildPolicy, Formats
from satchel.daemon.resolver.candidates import (
    MAX_CACHED_PROJECT_FILES,
    ProjectFiles,
    file_version,
    parse_core_metadata,
)
from satchel.daemon.resolver.coremetadata import metadata_differences, metadata_from_file
from satchel.daemon.resolver.scope import ScopedPages, Strategy, select_pages
from satchel.daemon.settings.config import Config, IndexConfig
from satchel.daemon.settings.credentials import redact, strip_userinfo
from satchel.daemon.storage import provenance
from satchel.daemon.storage.digests import Digests, require_checkable
from satchel.daemon.storage.metadb import MetaDB
from satchel.daemon.storage.model import FileEntry, Origin, ProjectPage
from satchel.daemon.storage.singleflight import SingleFlight
from satchel.daemon.storage.store import BlobInfo, BlobStore
from satchel.daemon.upstream.client import Upstream
from satchel.daemon.upstream.remotezip import RangesUnsupported, read_wheel_metadata
from satchel.daemon.upstream.traffic import PEP658, RANGES, WHOLE, Traffic

if TYPE_CHECKING:
    from satchel.daemon.resolver.target import Target

__all__ = [
    "Catalog",
    "Session",
    "degrades",
    "likely_candidate",
    "metadata_differences",
    "metadata_from_file",
]

log = logging.getLogger(__name__)

#: Concurrent look-ahead page fetches per request: enough to overlap a dependency level's
#: round trips, few enough not to starve the foreground requests of the per-index limiter.
WARM_CONCURRENCY = 32


class Catalog:
    """Long-lived: owns the shared downloads and the parsed-metadata memo of the daemon."""

    def __init__(
        self,
        upstream: Upstream,
        store: BlobStore,
        metadb: MetaDB,
        nursery: trio.Nursery,
        config: Callable[[], Config],
    ) -> None:
        self.upstream = upstream
        self.store = store
        self.metadb = metadb
        self.origins = Origins(metadb)
        self.config = config
        #: Where look-ahead fetches run: they outlive the request that started them, harmlessly
        #: (their pages land in the metadb for the next request).
        self.nursery = nursery
        self._downloads: SingleFlight[str, BlobInfo] = SingleFlight(nursery, name="download")
        self._pages: SingleFlight[tuple[str, str], ProjectPage | None] = SingleFlight(
            nursery, name="page"
        )
        self._metadata: SingleFlight[str, bytes] = SingleFlight(nursery, name="metadata")
        #: Offline scopes of earlier requests, while their inputs stand (`offlinescope`).
        self.offline_scopes = OfflineScopes(store)
        #: (index, project) -> why a fresh page was not stored (`degrades`); read by sessions
        #: for their notes, cleared when a page that may replace the stored one arrives.
        self.kept: dict[tuple[str, str], str] = {}
        #: Called with (sha256, url) of a wheel whose cached core metadata was replaced by the
        #: wheel's own: whoever derived something from the old bytes forgets it.
        self.metadata_listeners: list[Callable[[str, str], None]] = []

    def session(
        self,
        *,
        offline: bool = False,
        strategy: str | None = None,
        config: Config | None = None,
        formats: Formats | None = None,
        no_build: bool = False,
        background: bool = False,
    ) -> Session:
        """A request's session; what it may build comes from *formats* and *no_build* (the
        request's flags), the configuration's ``builds`` and whether it runs in the
        *background* (`buildpolicy`)."""
        snapshot = config if config is not None else self.config()
        chosen = Strategy(strategy or snapshot.settings.index_strategy)
        builds = BuildPolicy.of(
            formats or Formats(),
            no_build=no_build,
            setting=snapshot.settings.builds,
            background=background,
        )
        return Session(self, snapshot, offline=offline, strategy=chosen, builds=builds)

    # -- single pages -----------------------------------------------------------------------

    async def fetch_page(
        self,
        index: IndexConfig,
        project: str,
        stored: Mapping[str, ProjectPage] | None = None,
    ) -> ProjectPage | None:
        """The page of *project* on *index*, revalidated; None when the index lacks it.

        *stored*: the stored pages of *project* by index, when the caller has read them
        already (a stored page of 90,000 files is then not decoded a second time: issue 11.6).
        Shared between concurrent requests. Raises `IndexUnreachable` or `UpstreamError`.
        """

        async def fetch(probe: bool = False) -> ProjectPage | None:
            if stored is not None:
                cached = stored.get(index.name)
            else:
                cached = await trio.to_thread.run_sync(self.metadb.get_page, index.name, project)
            try:
                page = await self.upstream.fetch_page(index, project, cached, probe=probe)
            except NotFound:
                return None
            if page is cached:
                return page
            if cached is not None and page.files and page.files is cached.files:
                # A 304: the stored files stand, only the validators change (rewriting a page
                # of 90,000 files for that cost seconds: issue 11.6).
                touched = await trio.to_thread.run_sync(
                    lambda: self.metadb.touch_page(
                        index.name,
                        project,
                        page.fetched_at,
                        page.etag,
                        page.last_modified,
                        page.max_age,
                    )
                )
                if touched:
                    self.kept.pop((index.name, project), None)
                    return page
            if cached is not None and degrades(cached, page):
                why = (
                    f"index {index.name} answered a page for {project} that lists none of the "
                    f"{len(cached.files)} files of the stored page (a captive portal or an error "
                    "page?): it is ignored and the stored page is used"
                )
                log.warning("%s", why)
                self.kept[(index.name, project)] = why
                return cached
            self.kept.pop((index.name, project), None)
            await trio.to_thread.run_sync(self.metadb.put_page, page)
            return page

        key = (index.name, project)
        down = self.upstream.offline_error(index, f"index {index.name}: project {project}")
        if down is not None and await trio.to_thread.run_sync(
            self.metadb.has_page, index.name, project
        ):
            # Known down, and a cached page can answer: no request waits on the index again
            # (a hung one would cost `Limits.timeout` each time); once the cool-down is over
            # the next probe runs in the background, and the index's pages are used again as
            # soon as it answers (issue 11.8).
            if self.upstream.claim_probe(index):
                self.nursery.start_soon(self._probe, key, lambda: fetch(probe=True))
            raise down
        return await self._pages.run(key, fetch)

    async def _probe(
        self, key: tuple[str, str], fetch: Callable[[], Awaitable[ProjectPage | None]]
    ) -> None:
        """`fetch_page` in the background: a failure is already known (the index is down)."""
        try:
            await self._pages.run(key, fetch)
        except SatchelError as exc:
            log.debug("background probe of %s: %s", key[0], redact(exc))

    # -- files ------------------------------------------------------------------------------

    async def fetch_file(self, index: IndexConfig, project: str, file: FileEntry) -> BlobInfo:
        """Make sure *file*'s bytes are in the store (hash-checked) and record where from."""
        label = f"{file.filename} (index {index.name})"
        # Every digest the index promised is checked, not only the sha256 (issue 11.4).
        others = require_checkable(file.hashes, label)
        others.pop("sha256", None)
        sha = file.sha256
        if sha is not None and self.store.has(sha):
            if others:  # stored from elsewhere: this index's other promises still hold or not
                await trio.to_thread.run_sync(
                    Digests(others).check_file, self.store.path(sha), label
                )
            await trio.to_thread.run_sync(self._remember, sha, None, index, project, file)
            return BlobInfo(sha, self.store.path(sha).stat().st_size)

        async def download() -> BlobInfo:
            async with self.upstream.open_file(index, file) as stream:
                info = await self.store.ingest(
                    stream,
                    expected_sha256=sha,
                    expected_size=file.size,
                    digests=Digests(others),
                    label=label,
                )
            await trio.to_thread.run_sync(
                self._remember, info.sha256, info.size, index, project, file
            )
            if file.is_wheel:
                await self._check_metadata(index, file, info.sha256, label)
            return info

        return await self._downloads.run(sha or file.url, download)

    async def _check_metadata(
        self, index: IndexConfig, file: FileEntry, sha: str, label: str
    ) -> None:
        """The wheel just stored must agree with the core metadata the cache holds for it
        (PEP 658, or read by range requests, before the wheel and used to resolve): issue
        11.5, 13.7.

        The cache keeps the wheel's own METADATA from now on (what the local index serves and
        the next resolve reads), and the listeners forget what they derived from the old one.
        When name, version, Requires-Dist or Requires-Python differ, the resolution that used
        the index's file was wrong: `MetadataMismatch`, naming the file and what differs.
        """
        used = await trio.to_thread.run_sync(
            lambda: self.metadb.get_core_metadata(sha, index=index.name, filename=file.filename)
        )
        if used is None:
            return  # nothing was read ahead of the wheel: its metadata is its own
        own = await trio.to_thread.run_sync(metadata_from_file, self.store.path(sha), file.filename)
        if own == used:
            return
        differences = metadata_differences(used, own, file.filename)
        await trio.to_thread.run_sync(
            lambda: self.metadb.put_core_metadata(
                sha, own, index=index.name, filename=file.filename
            )
        )
        for listener in self.metadata_listeners:
            listener(sha, file.url)
        # Without a PEP 658 file, what was read ahead came by range requests into the wheel
        # (`remotezip`): a claim of the server's all the same, until the whole file is checked.
        source = "PEP 658" if file.core_metadata is not None else "read by range requests"
        if not differences:
            log.info("%s: %s metadata differs from the wheel's in form only", label, source)
            return
        raise MetadataMismatch(
            f"{label}: the index's core metadata ({source}) disagrees with the wheel's own "
            f"METADATA: {'; '.join(differences)}. The resolution used the index's version; "
            "Satchel now keeps the wheel's own: resolve again",
            details={"file": file.filename, "index": index.name, "differences": differences},
        )

    def confirm_stored(self, files: list[tuple[IndexConfig, str, FileEntry]]) -> list[BlobInfo]:
        """`fetch_file` for files already in the store, all in the calling (worker) thread.

        Offline, every file of an install is stored (`resolution.require_present` checked),
        so there is nothing to download: one thread hop records their origins and sizes
        instead of one hop (and one task) per file. Raises `NotCached` for a file that is gone.
        """
        out: list[BlobInfo] = []
        for index, project, file in files:
            sha = file.sha256
            try:
                size = self.store.path(sha).stat().st_size if sha is not None else None
            except FileNotFoundError:
                size = None
            if sha is None or size is None:
                raise NotCached(
                    f"offline, and {project} ({file.filename}) is not in the cache; "
                    "run `satchel prefetch` for it while online",
                    details={"missing": [f"{project} ({file.filename})"]},
                )
            self._remember(sha, None, index, project, file)
            out.append(BlobInfo(sha, size))
        return out

    def _remember(
        self, sha: str, size: int | None, index: IndexConfig, project: str, file: FileEntry
    ) -> None:
        """Record a stored file's origin. An already-stored file costs a read, not a durable
        write: installs touch hundreds of stored files, and their origins are nearly always
        known already (`last_used` is marked once per batch by `resolution.fetch_files`).

        A new origin goes to the blob's provenance record first, then to the metadb: the
        record is what rebuilds the metadb if it is ever lost (`satchel.daemon.indexes.dbrecovery`).
        """
        origin = Origin(index=index.name, project=project, filename=file.filename, url=file.url)
        url = index_identity(index.url)
        if size is not None:
            provenance.add_source(self.store.root, sha, index.name, project, file, index_url=url)
            self.metadb.record_blob(sha, size, origin.filename, origin=origin)
        elif origin not in self.metadb.origins(sha):
            provenance.add_source(self.store.root, sha, index.name, project, file, index_url=url)
            self.metadb.add_origin(sha, origin)

    # -- core metadata ----------------------------------------------------------------------

    async def core_metadata(
        self,
        index: IndexConfig | None,
        page: ProjectPage,
        file: FileEntry,
        *,
        offline: bool,
        traffic: Traffic | None = None,
    ) -> bytes:
        """METADATA (wheel) or PKG-INFO (sdist) of *file*: cached, PEP 658, by range requests
        into the wheel (`remotezip`), or from the whole file. What the network cost is counted
        in *traffic* (the request's, `satchel.daemon.upstream.traffic`)."""
        key = file.sha256 or f"{page.index}\0{file.filename}"
        counts = traffic if traffic is not None else Traffic()

        async def load() -> bytes:
            cached = await trio.to_thread.run_sync(
                lambda: self.metadb.get_core_metadata(
                    file.sha256, index=page.index, filename=file.filename
                )
            )
            if cached is not None:
                return cached
            if file.sha256 is not None and self.store.has(file.sha256):
                data = await trio.to_thread.run_sync(
                    metadata_from_file, self.store.path(file.sha256), file.filename
                )
            elif offline or index is None:
                raise NotCached(
                    f"{file.filename}: its metadata is not cached (index {page.index}); "
                    "run `satchel prefetch` for it while online",
                    details={"file": file.filename, "index": page.index},
                )
            else:
                counts.begin()
                how: str | None = None
                try:
                    data, how = await self._fetch_metadata(index, page, file, counts)
                finally:
                    await counts.end(how)
            await trio.to_thread.run_sync(
                lambda: self.metadb.put_core_metadata(
                    file.sha256, data, index=page.index, filename=file.filename
                )
            )
            return data

        return await self._metadata.run(key, load)

    async def _fetch_metadata(
        self, index: IndexConfig, page: ProjectPage, file: FileEntry, traffic: Traffic
    ) -> tuple[bytes, str]:
        """The metadata and how it was read (`traffic.PEP658`, `RANGES` or `WHOLE`)."""
        if file.core_metadata is not None or file.url.startswith("file:"):
            try:
                data = await self.upstream.fetch_core_metadata(index, file)
            except NotFound:
                pass
            else:
                if not file.url.startswith("file:"):
                    traffic.count_metadata(1, len(data))
                return data, PEP658
        ranges = file.is_wheel and not file.url.startswith("file:")
        if ranges and not self.upstream.ranges_ignored(file.url):
            # A file that could never be verified is not read in part either (issue 11.4).
            require_checkable(file.hashes, f"{file.filename} (index {index.name})")
            try:
                read = await read_wheel_metadata(
                    functools.partial(self.upstream.read_range, index, file),
                    file.filename,
                    expected_size=file.size,
                    what=f"index {index.name}: project {page.project}: file {file.filename}",
                )
            except RangesUnsupported as exc:
                log.info("%s: reading the whole file", redact(exc))
            else:
                traffic.count_metadata(read.requests, read.received)
                return read.data, RANGES
        # No PEP 658 file and no ranges: the metadata is inside the distribution, so download
        # it (it will be needed anyway if it wins) and read it from the store.
        present = file.sha256 is not None and self.store.has(file.sha256)
        info = await self.fetch_file(index, page.project, file)
        if not present:
            traffic.count_download(info.sha256, info.size)
        data = await trio.to_thread.run_sync(
            metadata_from_file, self.store.path(info.sha256), file.filename
        )
        return data, WHOLE


def degrades(stored: ProjectPage, fresh: ProjectPage) -> bool:
    """Whether *fresh* must not replace *stored*: it lists none of the stored page's files.

    Indexes add files and rarely remove a few; a page with nothing in common with what the
    index served before is a captive portal, a login or error page served with 200, or a
    misrouted proxy, and storing it would make every prefetched file unreachable offline.
    """
    if not stored.files:
        return False
    names = {file.filename for file in stored.files}
    return not any(file.filename in names for file in fresh.files)


def _present_only(page: ProjectPage, store: BlobStore) -> ProjectPage:
    files = tuple(f for f in page.files if f.sha256 is not None and store.has(f.sha256))
    return msgspec.structs.replace(page, files=files)


def _with_unstored(scoped: ScopedPages, full: dict[str, ProjectPage]) -> ScopedPages:
    """*scoped* (of pages filtered to stored files) plus the versions the filter removed.

    *full* holds the unfiltered pages by index. Only versions none of whose files are stored
    count: a version with any stored file is still a candidate.
    """
    project = scoped.project

    def versions(page: ProjectPage) -> set[Version]:
        memo = len(page.files) <= MAX_CACHED_PROJECT_FILES
        found = (file_version(file.filename, project, memo=memo) for file in page.files)
        return {v for v in found if v is not None}

    listed: set[Version] = set()
    present: set[Version] = set()
    for page in scoped.pages:
        present |= versions(page)
        listed |= versions(full.get(page.index, page))
    unstored = tuple(str(v) for v in sorted(listed - present, reverse=True))
    return msgspec.structs.replace(scoped, unstored=unstored) if unstored else scoped


@dataclass
class Session:
    """One request's view of the catalog: a config snapshot, online or offline, and a memo."""

    catalog: Catalog
    config: Config
    offline: bool
    strategy: Strategy
    #: What this request may build (flags, config.toml's ``builds``, background or not).
    builds: BuildPolicy = field(default_factory=BuildPolicy)
    #: Why this session is offline when it was not asked to be (every index unreachable).
    offline_reason: str | None = None
    #: Human-readable notes for the client (stale pages used, indexes that failed).
    notes: list[str] = field(default_factory=list)
    #: What this request fetched for metadata, and its progress events (`traffic`).
    traffic: Traffic = field(default_factory=Traffic)
    _scoped: dict[str, ScopedPages] = field(default_factory=dict)
    #: Project -> how it is bound to the index it comes from ("first-use", "pin", "trust").
    bound: dict[str, str] = field(default_factory=dict)
    _warming: set[str] = field(default_factory=set)
    #: Projects whose scope is being computed (`scoped_pages`), set when it is done.
    _pending: dict[str, trio.Event] = field(default_factory=dict)
    #: Indexes that answered during this request (no need to probe them again).
    _reachable: set[str] = field(default_factory=set)
    _warm_limit: trio.CapacityLimiter = field(
        default_factory=lambda: trio.CapacityLimiter(WARM_CONCURRENCY)
    )
    #: The target's tag ranks and Python version, once `aim` was called: the look-ahead then
    #: also fetches the core metadata of each project's likely candidate.
    _aim: tuple[dict[str, int], Version] | None = None
    #: The target's environment markers, once `aim` was called: the look-ahead follows only
    #: the dependencies whose marker holds there.
    _markers: dict[str, str] | None = None
    #: Project -> the extras some requirement seen by the look-ahead asks of it.
    _extras: dict[str, set[str]] = field(default_factory=dict)
    #: Project -> every specifier seen by the look-ahead for it, intersected (the likely
    #: candidate is the newest version they allow).
    _specs: dict[str, SpecifierSet] = field(default_factory=dict)
    #: Project -> the dependencies listed by the last metadata of it read in this session, for
    #: an extra asked of it later (`follow`).
    _requires: dict[str, tuple[Requirement, ...]] = field(default_factory=dict)

    def aim(self, target: Target) -> None:
        """Let the look-ahead fetch metadata for *target*'s likely candidates, not just pages.

        Without it the resolver thread waits one metadata round trip per project, in sequence
        (resolvelib asks for a candidate's dependencies only when it pins it). With it, the
        metadata of the newest version that fits the target is fetched as soon as its page
        arrives, and its dependencies' pages and metadata after it, concurrently: a guess that
        turns out wrong (a requirement excludes the newest version) costs one small request.
        """
        self._aim = (target.tag_ranks(), Version(target.python_full_version))
        self._markers = dict(target.markers)

    @property
    def indexes(self) -> tuple[IndexConfig, ...]:
        return self.config.indexes

    def index(self, name: str) -> IndexConfig | None:
        return self.config.index(name)

    def _scope_indexes(self) -> list[IndexConfig]:
        # Scope results and error messages carry index URLs: never with credentials in them.
        return [msgspec.structs.replace(i, url=strip_userinfo(i.url)) for i in self.indexes]

    def _pins(self) -> dict[str, str]:
        return {canonicalize_name(k): v for k, v in self.config.pins.items()}

    async def scoped_pages(self, project: str) -> ScopedPages:
        """The pages *project* may come from, per the configuration; memoised per request."""
        project = canonicalize_name(project)
        while (found := self._scoped.get(project)) is None:
            # One computation per project at a time: the resolver and the look-ahead asking
            # together read a stored page of 90,000 files twice at once (issue 11.6).
            pending = self._pending.get(project)
            if pending is None:
                break
            await pending.wait()  # then it is memoised, or that attempt failed: try again
        if found is not None:
            return found
        self._pending[project] = done = trio.Event()
        try:
            scoped = await self._compute_scope(project)
        finally:
            del self._pending[project]
            done.set()
        self._scoped[project] = scoped
        return scoped

    async def _compute_scope(self, project: str) -> ScopedPages:
        if not self.offline:
            try:
                return await self._online_pages(project)
            except IndexUnreachable:
                if not self._all_unreachable():
                    raise
                self._go_offline()
        return await self._offline_pages(project)

    def _all_unreachable(self) -> bool:
        names = [index.name for index in self.indexes]
        return bool(names) and all(self.catalog.upstream.is_offline(name) for name in names)

    def _go_offline(self) -> None:
        if not self.offline:
            self.offline = True
            self.offline_reason = "every configured index is unreachable"
            self.notes.append("offline: every configured index is unreachable; using the cache")
            log.warning("every configured index is unreachable: answering from the cache")
            self._scoped.clear()

    async def _offline_pages(self, project: str) -> ScopedPages:
        pages = await trio.to_thread.run_sync(self.catalog.metadb.pages_for_project, project)
        return self._offline_scope(project, pages)

    def offline_pages_sync(self, project: str) -> ScopedPages:
        """`scoped_pages` of an offline session, computed in the calling (worker) thread.

        Offline, a project's scope depends only on the metadb and the store, both safe to read
        from any thread, and an offline session starts no look-ahead; so the resolver thread
        reads them itself instead of hopping to the event loop and back for each project (on
        a 112-project set those hops were three quarters of a warm resolve). Memoised in the
        same per-request dict as `scoped_pages` (a race only computes a page twice).
        """
        project = canonicalize_name(project)
        found = self._scoped.get(project)
        if found is not None:
            return found
        kept = self.catalog.offline_scopes
        generation = self.catalog.metadb.generation  # read before the pages it vouches for
        hit = kept.get(project, self.config, self.strategy, generation)
        if hit is not None:
            scoped, held = hit
            if held is not None:
                self.bound[project] = held
        else:
            scoped = self._offline_scope(project, self.catalog.metadb.pages_for_project(project))
            kept.put(
                project, self.config, self.strategy, generation, scoped, self.bound.get(project)
            )
        self._scoped[project] = scoped
        return scoped

    def _offline_scope(self, project: str, pages: list[ProjectPage]) -> ScopedPages:
        catalog = self.catalog
        available = {page.index: _present_only(page, catalog.store) for page in pages}
        scoped = select_pages(
            project,
            available,
            self._scope_indexes(),
            self._pins(),
            self.strategy,
            offline=True,
        )
        # Offline the cache answers, and it must not swap origins either (an index removed
        # since, a page cached from another index by an earlier opt-out).
        binding = catalog.origins.get(project)
        verdict = judge(scoped, binding, self.indexes, self.strategy, online=False, cached=pages)
        if verdict.refuse is not None:
            raise verdict.refuse
        if verdict.held is not None:
            self.bound[project] = str(verdict.held.how)
        if not any(page.files for page in scoped.pages):
            stored = [
                f"{filename} (index {index})"
                for sha, index, filename in catalog.origins.stored_files(project)
                if catalog.store.has(sha)
            ]
            if stored:
                scoped = msgspec.structs.replace(scoped, stored_unlisted=tuple(stored))
        return _with_unstored(scoped, {page.index: page for page in pages})

    def _known(self, project: str) -> tuple[Binding | None, list[ProjectPage]]:
        return self.catalog.origins.get(project), self.catalog.metadb.pages_for_project(project)

    async def _online_pages(self, project: str) -> ScopedPages:
        catalog = self.catalog
        pinned = self._pins().get(project)
        binding, cached = await trio.to_thread.run_sync(self._known, project)
        stored = {page.index: page for page in cached}
        available: dict[str, ProjectPage] = {}
        queried: set[str] = set()
        missing: list[str] = []  # indexes that answered "not here" (404, 410)
        for index in self.indexes:
            if pinned is not None and index.name != pinned:
                continue
            if index.explicit and pinned != index.name:
                continue
            queried.add(index.name)
            try:
                page = await catalog.fetch_page(index, project, stored)
                if page is None:
                    missing.append(index.name)
                elif (kept := catalog.kept.get((index.name, project))) is not None:
                    self.notes.append(kept)
            except IndexUnreachable as exc:
                page = await self._stale_page(index, project, exc, binding)
            if page is None:
                continue
            available[index.name] = page
            if self.strategy is Strategy.FIRST_INDEX or pinned is not None:
                break
        # Cached pages of indexes not asked (shadowed, explicit, unconfigured) can only ever be
        # reported as out of scope, which is what makes "cached under X" hints possible.
        for page in cached:
            if page.index not in queried and page.index not in available:
                available[page.index] = page
        scoped = select_pages(
            project, available, self._scope_indexes(), self._pins(), self.strategy
        )
        verdict = judge(
            scoped,
            binding,
            self.indexes,
            self.strategy,
            missing=missing,
            online=True,
            cached=cached,
        )
        if verdict.refuse is not None:
            raise verdict.refuse
        if verdict.bind is not None or verdict.absent:
            await trio.to_thread.run_sync(catalog.origins.apply, verdict, project)
        if verdict.held is not None:
            self.bound[project] = str(verdict.held.how)
        return scoped

    async def _stale_page(
        self, index: IndexConfig, project: str, exc: IndexUnreachable, binding: Binding | None
    ) -> ProjectPage | None:
        """An unreachable index: use its cached page, look past it when it said before that it
        does not serve *project* (half-offline), or refuse to look past it.

        When every index is down the whole session turns offline instead (the caller catches
        the re-raised error), which is reported once rather than per project.
        """
        if self._all_unreachable():
            raise exc
        cached = await trio.to_thread.run_sync(self.catalog.metadb.get_page, index.name, project)
        if cached is not None:
            note = f"index {index.name} is unreachable: using its cached pages"
            if note not in self.notes:
                self.notes.append(note)
            return cached
        if binding is not None and index_identity(index.url) in binding.absent:
            self.notes.append(
                f"index {index.name} is unreachable; it said before that it does not serve "
                f"{project}, so {project} comes from index '{binding.index}' it is bound to"
            )
            return None
        if await self._probe_others(index):
            raise exc  # every index is down after all: the session turns offline
        raise IndexUnreachable(
            redact(
                f"index {index.name} is unreachable and has never been seen serving {project}, "
                f"so Satchel will not take {project} from a later index in its place "
                f"(that is how dependency confusion happens). Retry when {index.name} is back, "
                f"or pin the project: `satchel index pin {project} <index>`"
            ),
            details={"index": index.name, "project": project, **exc.details},
        ) from exc

    async def _probe_others(self, down: IndexConfig) -> bool:
        """Whether every other index is unreachable too; probes those not yet tried.

        Under first-index the later indexes are never asked for a project the first one might
        serve, so with the network gone they were simply never tried, and the session would
        refuse (above) instead of answering from the cache. Each untried index is probed with
        a project it was seen serving before (never with the one being resolved, which may be
        a private name), so a probe reveals nothing new. An index with nothing cached cannot be
        probed this way; it counts as reachable and the refusal stands.
        """
        upstream = self.catalog.upstream
        for index in self.indexes:
            if index.name == down.name or upstream.is_offline(index.name):
                continue
            if index.name in self._reachable:
                return False
            keys = await trio.to_thread.run_sync(self.catalog.metadb.page_keys, index.name)
            if not keys:
                return False
            try:
                await self.catalog.fetch_page(index, keys[0].project)
            except IndexUnreachable:
                continue
            except SatchelError:
                pass  # it answered, if unhelpfully
            self._reachable.add(index.name)
            return False
        return self._all_unreachable()

    async def core_metadata(self, page: ProjectPage, file: FileEntry) -> bytes:
        index = self.index(page.index)
        data = await self.catalog.core_metadata(
            index, page, file, offline=self.offline, traffic=self.traffic
        )
        if not self.offline:
            self._warm_dependencies(data, file)
        return data

    # -- look-ahead ---------------------------------------------------------------------------

    def _warm_dependencies(self, data: bytes, file: FileEntry) -> None:
        """Start fetching the pages of *file*'s dependencies before the resolver asks: those
        the resolution can use on the aimed target (`follow`)."""
        if self._markers is None:
            return  # no target: nothing to evaluate markers against, so nothing is guessed
        try:
            meta = parse_core_metadata(data, sdist=not file.is_wheel, where=file.filename)
        except SatchelError:
            return
        self._requires[meta.name] = meta.requires_dist
        self._follow(meta.requires_dist, ("", *sorted(self._extras.get(meta.name, ()))))

    def _follow(self, requires: tuple[Requirement, ...], extras: Iterable[str]) -> None:
        """Look ahead for each of *requires* whose marker holds under one of *extras* ("" for
        the dependencies of no extra); the others could only cost requests (issue 15)."""
        markers = self._markers
        assert markers is not None
        wanted = tuple(extras)
        for requirement in requires:
            marker = requirement.marker
            if marker is None or any(
                marker.evaluate({**markers, "extra": extra}) for extra in wanted
            ):
                self.follow(requirement)

    def follow(self, requirement: Requirement) -> None:
        """Look ahead for *requirement* (a root, or a dependency whose marker holds): its
        project's page, the metadata of the newest version its specifiers allow, and the
        dependencies of that version and of the extras *requirement* asks for."""
        if self.offline or self._markers is None:
            return
        project = canonicalize_name(requirement.name)
        seen = self._specs.get(project)
        self._specs[project] = (
            requirement.specifier if seen is None else seen & requirement.specifier
        )
        asked = {canonicalize_name(extra) for extra in requirement.extras}
        known = self._extras.setdefault(project, set())
        new = asked - known
        known |= new
        requires = self._requires.get(project)
        if new and requires is not None:  # its metadata came already: follow the new extras
            self._follow(requires, sorted(new))
        self.warm(project)

    def warm(self, project: str) -> None:
        project = canonicalize_name(project)
        if project in self._scoped or project in self._warming or self.offline:
            return
        self._warming.add(project)
        self.catalog.nursery.start_soon(self._warm_one, project)

    async def _warm_one(self, project: str) -> None:
        async with self._warm_limit:
            try:
                scoped = await self.scoped_pages(project)
            except Exception as exc:
                # The resolver will ask again and get the error itself, if it needs the project;
                # a look-ahead must never take the daemon's nursery down with it.
                log.debug("look-ahead for %s failed: %s", project, redact(exc))
                self._scoped.pop(project, None)
                return
            if self._aim is None or self.offline or not scoped.pages:
                return
            if sum(len(page.files) for page in scoped.pages) > MAX_CACHED_PROJECT_FILES:
                # Grouping an enormous page (90,000 files) costs seconds and ~100 MB: the
                # resolver does it anyway, and a guess is not worth doing it twice (issue 11.6).
                return
            ranks, python = self._aim
            likely = await trio.to_thread.run_sync(
                likely_candidate,
                project,
                scoped.pages,
                ranks,
                python,
                self.catalog.upstream.ranges_served,
                self._specs.get(project),
            )
            if likely is None:
                return
            try:
                await self.core_metadata(*likely)
            except Exception as exc:
                log.debug("metadata look-ahead for %s failed: %s", project, redact(exc))


def likely_candidate(
    project: str,
    pages: tuple[ProjectPage, ...],
    ranks: dict[str, int],
    python: Version,
    ranged: Callable[[str], bool] = lambda _url: False,
    allowed: SpecifierSet | None = None,
) -> tuple[ProjectPage, FileEntry] | None:
    """The (page, wheel) a resolver most likely pins for *project*, if its metadata is cheap.

    The newest non-prerelease version with a wheel for the target that the *allowed*
    specifiers (of the requirements seen so far) accept: what resolvelib tries first. Only
    wheels whose metadata is cheap qualify: a PEP 658 file, or byte ranges from a host that
    served them already (*ranged*, by file URL: a wrong guess then costs a range read of some
    KiB). Otherwise the metadata is inside the file, and a look-ahead must not download whole
    distributions on a guess.
    """
    files = ProjectFiles(project, pages, ranks, python, allow_sdists=False)
    candidates = files.versions
    if allowed is not None:
        candidates = list(allowed.filter(candidates, prereleases=True))
    versions = [v for v in candidates if not v.is_prerelease] or candidates
    for version in versions[:3]:
        choice = files.choose(version, allow_yanked=False)
        if choice is not None:
            if choice.file.core_metadata is None and not ranged(choice.file.url):
                return None
            return choice.page, choice.file
    return None
