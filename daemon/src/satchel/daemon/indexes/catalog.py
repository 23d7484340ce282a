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

The `Catalog` is shared by every request: pages, files and metadata, fetched once however many
requests want them at the same time. A request works through its own `session.Session`
(`Catalog.session`), which decides what is in scope.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING

import trio

from satchel.daemon.errors import (
    MetadataMismatch,
    NotAPage,
    NotCached,
    NotFound,
    SatchelError,
)
from satchel.daemon.indexes._juststored import JustStored
from satchel.daemon.indexes._offlinescope import OfflineScopes
from satchel.daemon.indexes.origins import Origins, index_identity
from satchel.daemon.indexes.session import Session
from satchel.daemon.resolver.buildpolicy import BuildPolicy, Formats
from satchel.daemon.resolver.coremetadata import metadata_differences, metadata_from_file
from satchel.daemon.resolver.scope import Strategy
from satchel.daemon.settings.config import Config, IndexConfig
from satchel.daemon.settings.credentials import redact
from satchel.daemon.storage import provenance
from satchel.daemon.storage.digests import Digests, require_checkable
from satchel.daemon.storage.fsutil import Unsynced
from satchel.daemon.storage.metadb import MetaDB
from satchel.daemon.storage.model import FileEntry, Origin, ProjectPage
from satchel.daemon.storage.singleflight import SingleFlight
from satchel.daemon.storage.store import BlobInfo, BlobStore
from satchel.daemon.upstream.client import Upstream
from satchel.daemon.upstream.remotezip import RangesUnsupported, read_wheel_metadata
from satchel.daemon.upstream.traffic import PEP658, RANGES, WHOLE, Traffic

if TYPE_CHECKING:
    pass

__all__ = ["Catalog", "degrades", "metadata_differences", "metadata_from_file"]

log = logging.getLogger(__name__)


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
        #: Metadata just fetched, for the next read of the same file (`_juststored`).
        self.just_stored = JustStored()
        #: Offline scopes of earlier requests, while their inputs stand (`offlinescope`).
        self.offline_scopes = OfflineScopes(store)
        #: (index, project) -> why a fresh page was not stored (`degrades`); read by sessions
        #: for their notes, cleared when a page that may replace the stored one arrives.
        self.kept: dict[tuple[str, str], str] = {}
        #: Directories of batch downloads not yet durable (`fetch_file(batch=True)`, `settle`).
        self.unsynced = Unsynced()
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

    def _keep(self, index: str, project: str, stored: ProjectPage, why: str) -> ProjectPage:
        """*stored*, kept against a fresh answer that would degrade it; *why* is logged and
        read by sessions (`kept`), which offer only its stored files."""
        log.warning("%s", why)
        self.kept[(index, project)] = why
        return stored

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
            except NotAPage as exc:
                if cached is None or not cached.files:
                    raise
                # Kept as against a page listing none of the stored files (`degrades`).
                return self._keep(
                    index.name,
                    project,
                    cached,
                    f"index {index.name} answered for {project} something that is not a project "
                    f"page ({exc.message.rpartition(': ')[2]}; a captive portal or an error "
                    "page?): it is ignored and the stored page is used",
                )
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
                return self._keep(
                    index.name,
                    project,
                    cached,
                    f"index {index.name} answered a page for {project} that lists none of the "
                    f"{len(cached.files)} files of the stored page (a captive portal or an error "
                    "page?): it is ignored and the stored page is used",
                )
            self.kept.pop((index.name, project), None)
            # Written by the next transaction (the binding's, right after), not in a hop and a
            # transaction of its own, unless it is large (`_soon`).
            if not self.metadb.put_page_soon(page):
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

    async def fetch_file(
        self, index: IndexConfig, project: str, file: FileEntry, *, batch: bool = False
    ) -> BlobInfo:
        """Make sure *file*'s bytes are in the store (hash-checked) and record where from.

        *batch*: a download is made durable with the caller's batch (`settle`), not on its own:
        its bytes before they are renamed into place, as always; its directory entries,
        provenance record's and metadb row at the next `settle`."""
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
            replaced: list[tuple[bytes, bytes]] = []

            def record(info: BlobInfo) -> None:
                used_own = self._record_download(info, index, project, file, batch)
                if used_own is not None:
                    replaced.append(used_own)

            async with self.upstream.open_file(index, file) as stream:
                # Its origin and, for a wheel, its own METADATA against what the cache used:
                # in the thread hop that commits it (`ingest`'s *then*).
                info = await self.store.ingest(
                    stream,
                    expected_sha256=sha,
                    expected_size=file.size,
                    digests=Digests(others),
                    label=label,
                    unsynced=self.unsynced if batch else None,
                    then=record,
                )
            for used, own in replaced:
                self._metadata_replaced(index, file, info.sha256, label, used, own)
            return info

        info = await self._downloads.run(sha or file.url, download)
        if not batch and self.unsynced.pending():
            # Joined a batch's download of the same file (the first caller's flag won): this
            # caller answers with the file durable all the same.
            await trio.to_thread.run_sync(self.settle, [info.sha256])
        return info

    def _record_download(
        self, info: BlobInfo, index: IndexConfig, project: str, file: FileEntry, batch: bool
    ) -> tuple[bytes, bytes] | None:
        """Record the origin of a file just stored; for a wheel, check that it agrees with the
        core metadata the cache holds for it (PEP 658, or read by range requests, before the
        wheel and used to resolve): issue 11.5, 13.7. Worker thread.

        The cache keeps the wheel's own METADATA from now on (what the local index serves and
        the next resolve reads): when it differs from what was used, (used, own) is returned
        for `_metadata_replaced`.
        """
        self._remember(info.sha256, info.size, index, project, file, batch=batch)
        if not file.is_wheel:
            return None
        used = self.metadb.get_core_metadata(info.sha256, index=index.name, filename=file.filename)
        if used is None:
            return None  # nothing was read ahead of the wheel: its metadata is its own
        own = metadata_from_file(self.store.path(info.sha256), file.filename)
        if own == used:
            return None
        self.just_stored.replace(
            (info.sha256, _metadata_key(index.name, file)),
            lambda: self.metadb.put_core_metadata(
                info.sha256, own, index=index.name, filename=file.filename
            ),
        )
        return used, own

    def _metadata_replaced(
        self, index: IndexConfig, file: FileEntry, sha: str, label: str, used: bytes, own: bytes
    ) -> None:
        """The wheel's own METADATA replaced *used* in the cache: the listeners forget what
        they derived from the old one. When name, version, Requires-Dist or Requires-Python
        differ, the resolution that used the index's file was wrong: `MetadataMismatch`,
        naming the file and what differs."""
        differences = metadata_differences(used, own, file.filename)
        for listener in self.metadata_listeners:
            listener(sha, file.url)
        # Without a PEP 658 file, what was read ahead came by range requests into the wheel
        # (`remotezip`): a claim of the server's all the same, until the whole file is checked.
        source = "PEP 658" if file.metadata_sha256 is not None else "read by range requests"
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

        Offline, every file of an install is stored (`fetching.require_present` checked),
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

    def settle(self, sha256s: list[str]) -> None:
        """Make every stored file of a batch durable (worker thread; before the batch reports
        success): the directories its downloads left unsynced, then one durable metadb commit
        (marking *sha256s* used), which makes every row written since durable too (and so
        the first-use bindings of the batch's resolution: `Origins.durable_with`)."""
        self.unsynced.sync()
        self.origins.durable_with(lambda: self.metadb.mark_used(sha256s, durable=True))

    def _remember(
        self,
        sha: str,
        size: int | None,
        index: IndexConfig,
        project: str,
        file: FileEntry,
        *,
        batch: bool = False,
    ) -> None:
        """Record a stored file's origin. An already-stored file costs a read, not a durable
        write: installs touch hundreds of stored files, and their origins are nearly always
        known already (`last_used` is marked once per batch by `fetching.fetch_files`).

        A new origin goes to the blob's provenance record first, then to the metadb: the
        record is what rebuilds the metadb if it is ever lost (`satchel.daemon.indexes.dbrecovery`).
        """
        origin = Origin(index=index.name, project=project, filename=file.filename, url=file.url)
        url = index_identity(index.url)
        if size is not None:
            unsynced = self.unsynced if batch else None
            provenance.add_source(
                self.store.root, sha, index.name, project, file, index_url=url, unsynced=unsynced
            )
            self.metadb.record_blob(sha, size, origin.filename, origin=origin, durable=not batch)
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
        key = _metadata_key(page.index, file)
        counts = traffic if traffic is not None else Traffic()

        async def load() -> bytes:
            kept = self.just_stored.take(key)
            if kept is not None:
                return kept
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
            if self.metadb.put_core_metadata_soon(  # no hop: the next transaction's (`_soon`)
                file.sha256, data, index=page.index, filename=file.filename
            ):
                self.just_stored.keep(key, data)
            else:
                await trio.to_thread.run_sync(
                    self.just_stored.store,
                    key,
                    data,
                    lambda: self.metadb.put_core_metadata(
                        file.sha256, data, index=page.index, filename=file.filename
                    ),
                )
            return data

        return await self._metadata.run(key, load)

    async def _fetch_metadata(
        self, index: IndexConfig, page: ProjectPage, file: FileEntry, traffic: Traffic
    ) -> tuple[bytes, str]:
        """The metadata and how it was read (`traffic.PEP658`, `RANGES` or `WHOLE`)."""
        if file.metadata_sha256 is not None or file.url.startswith("file:"):
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


def _metadata_key(index: str, file: FileEntry) -> str:
    """What a file's core metadata is known by: its sha256, else its index and name."""
    return file.sha256 or f"{index}\0{file.filename}"


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
