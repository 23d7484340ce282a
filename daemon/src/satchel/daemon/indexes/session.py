"""One request's view of the catalog: a `Session`.

A session is one configuration snapshot, one online/offline decision (automatic when every
index is unreachable, and reported), and a memo so a page is fetched at most once per request.
It decides what is in scope for each project (`satchel.daemon.resolver.scope.select_pages`,
then the project's origin: `origins.judge`), online from fresh pages, offline from the stored
ones and only their stored files. Its look-ahead (`_lookahead`) fetches what the resolver will
likely ask next.

It is made by the shared catalog (`catalog.Catalog.session`) and reaches it only through what
`Shared` lists, so this module does not import the catalog.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import msgspec
import trio
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from satchel.daemon.errors import (
    IndexUnreachable,
    SatchelError,
)
from satchel.daemon.indexes._lookahead import LookAhead
from satchel.daemon.indexes._offlinescope import OfflineScopes
from satchel.daemon.indexes.origins import Binding, Origins, index_identity, judge
from satchel.daemon.resolver.buildpolicy import BuildPolicy
from satchel.daemon.resolver.candidates import (
    MAX_CACHED_PROJECT_FILES,
    file_version,
)
from satchel.daemon.resolver.scope import ScopedPages, Strategy, select_pages
from satchel.daemon.settings.config import Config, IndexConfig
from satchel.daemon.settings.credentials import redact, strip_userinfo
from satchel.daemon.storage.metadb import MetaDB
from satchel.daemon.storage.model import FileEntry, ProjectPage
from satchel.daemon.storage.store import BlobInfo, BlobStore
from satchel.daemon.upstream.client import Upstream
from satchel.daemon.upstream.traffic import Traffic

if TYPE_CHECKING:
    from satchel.daemon.resolver.target import Target

__all__ = ["Session", "Shared"]

log = logging.getLogger(__name__)


class Shared(Protocol):
    """What a session, and whoever holds one, needs of the shared catalog (`catalog.Catalog`
    is one)."""

    metadb: MetaDB
    store: BlobStore
    origins: Origins
    upstream: Upstream
    nursery: trio.Nursery
    offline_scopes: OfflineScopes
    #: (index, project) -> why a fresh page was not stored (a note for the request).
    kept: dict[tuple[str, str], str]

    async def fetch_page(
        self,
        index: IndexConfig,
        project: str,
        stored: Mapping[str, ProjectPage] | None = None,
    ) -> ProjectPage | None: ...

    async def core_metadata(
        self,
        index: IndexConfig | None,
        page: ProjectPage,
        file: FileEntry,
        *,
        offline: bool,
        traffic: Traffic | None = None,
    ) -> bytes: ...

    async def fetch_file(
        self, index: IndexConfig, project: str, file: FileEntry, *, batch: bool = False
    ) -> BlobInfo: ...

    def settle(self, sha256s: list[str]) -> None: ...

    def confirm_stored(self, files: list[tuple[IndexConfig, str, FileEntry]]) -> list[BlobInfo]: ...


def _why(exc: IndexUnreachable) -> str:
    """`` (the reason)`` an index could not be reached, for a note (a refused connection, a
    timeout, a captive portal's HTTP 511), or nothing when the error does not say."""
    reason = exc.details.get("reason")
    return f" ({redact(str(reason))})" if reason else ""


def _said_absent(binding: Binding | None, index: IndexConfig) -> bool:
    """Whether *index* answered "not here" (404, 410) for the bound project."""
    return binding is not None and index_identity(index.url) in binding.absent


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

    catalog: Shared
    config: Config
    offline: bool
    strategy: Strategy
    #: What this request may build (flags, config.toml's ``builds``, background or not).
    builds: BuildPolicy = field(default_factory=BuildPolicy)
    #: Why this session is offline when it was not asked to be (every index unreachable).
    offline_reason: str | None = None
    #: What made an online request go offline (every index unreachable): raised for a project
    #: the cache has nothing of (`_unless_unreachable`).
    _unreachable: IndexUnreachable | None = None
    #: Human-readable notes for the client (stale pages used, indexes that failed).
    notes: list[str] = field(default_factory=list)
    #: What this request fetched for metadata, and its progress events (`traffic`).
    traffic: Traffic = field(default_factory=Traffic)
    _scoped: dict[str, ScopedPages] = field(default_factory=dict)
    #: Project -> how it is bound to the index it comes from ("first-use", "pin", "trust").
    bound: dict[str, str] = field(default_factory=dict)
    #: Projects whose scope is being computed (`scoped_pages`), set when it is done.
    _pending: dict[str, trio.Event] = field(default_factory=dict)
    #: Indexes that answered during this request (no need to probe them again).
    _reachable: set[str] = field(default_factory=set)
    #: What the look-ahead knows and fetches for this request (`_lookahead`); set after init.
    lookahead: LookAhead = field(init=False)

    def __post_init__(self) -> None:
        self.lookahead = LookAhead(self.catalog.nursery, self.catalog.upstream.ranges_served)

    def aim(self, target: Target) -> None:
        """Let the look-ahead fetch metadata for *target*'s likely candidates, not just pages
        (`_lookahead.LookAhead.aim`)."""
        self.lookahead.aim(target)

    def follow(self, requirement: Requirement) -> None:
        """Look ahead for *requirement* (`_lookahead.LookAhead.follow`)."""
        self.lookahead.follow(self, requirement)

    def warm(self, project: str) -> None:
        """Fetch *project*'s scope ahead of the resolver (`_lookahead.LookAhead.warm`)."""
        self.lookahead.warm(self, project)

    def has_scope(self, project: str) -> bool:
        """Whether *project*'s scope is known to this request already."""
        return project in self._scoped

    def forget_scope(self, project: str) -> None:
        self._scoped.pop(project, None)

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
            except IndexUnreachable as exc:
                if not self._all_unreachable():
                    raise
                self._go_offline(exc)
        return self._unless_unreachable(await self._offline_pages(project))

    def _unless_unreachable(self, scoped: ScopedPages) -> ScopedPages:
        """*scoped*, unless this request was online, every index turned out unreachable, and the
        cache has nothing of the project: then the unreachable index is the answer (naming it
        and why), not "not cached, run `satchel prefetch` while online", which the user may
        just have run (a TLS failure, a proxy, a VPN down)."""
        if self._unreachable is None or scoped.stored_unlisted:
            return scoped
        if any(page.files for page in scoped.pages):
            return scoped
        raise self._unreachable

    def _all_unreachable(self) -> bool:
        names = [index.name for index in self.indexes]
        return bool(names) and all(self.catalog.upstream.is_offline(name) for name in names)

    def _go_offline(self, cause: IndexUnreachable) -> None:
        if not self.offline:
            self._unreachable = cause
            self.offline = True
            self.offline_reason = "every configured index is unreachable"
            self.notes.append(
                f"offline: every configured index is unreachable{_why(cause)}; using the cache"
            )
            log.warning("every configured index is unreachable: answering from the cache")
            self._scoped.clear()

    async def _offline_pages(self, project: str) -> ScopedPages:
        # All of it in a worker thread: its binding reads take the metadb's lock, and whoever
        # takes it writes what other requests queued meanwhile (`storage._soon`), never the
        # event loop; its stats of stored files too.
        return await trio.to_thread.run_sync(self._offline_pages_now, project)

    def _offline_pages_now(self, project: str) -> ScopedPages:
        return self._offline_scope(project, self.catalog.metadb.pages_for_project(project))

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
        scoped = self._unless_unreachable(scoped)
        self._scoped[project] = scoped
        return scoped

    def _offline_scope(self, project: str, pages: list[ProjectPage]) -> ScopedPages:
        catalog = self.catalog
        binding = catalog.origins.get(project)
        # A stored page of an index that said since that it does not serve the project (a
        # captive portal's page stored before the 404) is stale: online it is not asked.
        said_absent = {i.name for i in self.indexes if _said_absent(binding, i)}
        available = {
            page.index: _present_only(page, catalog.store)
            for page in pages
            if page.index not in said_absent
        }
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
            except IndexUnreachable as exc:
                page = await self._stale_page(index, project, exc, binding)
            else:
                if page is not None and not page.files and _said_absent(binding, index):
                    self.notes.append(
                        f"index {index.name} answered a page for {project} that lists no files, "
                        f"where it said before that it does not serve {project} (a captive "
                        "portal or an error page?): it is still taken as not serving it"
                    )
                    page = None
                if page is None:
                    missing.append(index.name)
                elif (kept := catalog.kept.get((index.name, project))) is not None:
                    # Its fresh answer was no page of it (a captive portal?): its files would
                    # not come either. The stored page offers what is stored, as offline.
                    self.notes.append(kept)
                    page = await self._stored_only(page)
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
        # Said "not here" since: a page of it stored before (or a captive portal's, stored as
        # its page) is stale, as offline (`_offline_scope`); first, or it would shadow.
        if binding is not None and _said_absent(binding, index):
            self.notes.append(
                f"index {index.name} is unreachable; it said before that it does not serve "
                f"{project}, so {project} comes from index '{binding.index}' it is bound to"
            )
            return None
        cached = await trio.to_thread.run_sync(self.catalog.metadb.get_page, index.name, project)
        if cached is not None:
            present = await self._stored_only(cached)
            note = f"index {index.name} is unreachable{_why(exc)}: using its cached pages"
            if note not in self.notes:
                self.notes.append(note)
            return present
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

    async def _stored_only(self, page: ProjectPage) -> ProjectPage:
        """*page*, a stored page of an index that cannot serve files now (unreachable, or a
        captive portal answering for it), with only the files whose bytes are stored, as an
        offline answer lists them, so that what resolves also installs. With none of them
        stored, the whole page: a resolve still answers from it (what it would pin), and an
        install says which index could not serve the file."""
        present = await trio.to_thread.run_sync(_present_only, page, self.catalog.store)
        return present if present.files else page

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
            self.lookahead.dependencies_of(self, data, file)
        return data
