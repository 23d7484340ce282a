"""Storing a batch of files: what prefetch, install and watched projects download.

`fetch_files` stores every file of a batch, hash-checked and with its origin (each through
`Catalog.fetch_file`), a few at a time; offline it only confirms they are stored. A prefetch
starts each file's download while it still resolves, as the resolver pins it (`EarlyFetches`),
and `fetch_files` then joins those downloads.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field

import trio

from satchel.daemon.errors import NotCached, SatchelError
from satchel.daemon.indexes.session import Shared
from satchel.daemon.settings.config import IndexConfig
from satchel.daemon.storage.model import FileEntry
from satchel.daemon.storage.store import BlobInfo

__all__ = [
    "DOWNLOAD_CONCURRENCY",
    "EarlyFetches",
    "Fetched",
    "Progress",
    "combine_failures",
    "fetch_files",
    "require_present",
]

log = logging.getLogger(__name__)

#: Downloads in flight for one prefetch. The upstream limits each index separately; this bounds
#: open temp files and memory for a single request.
DOWNLOAD_CONCURRENCY = 8


def require_present(catalog: Shared, files: Sequence[tuple[IndexConfig, str, FileEntry]]) -> None:
    """Offline, a batch can only be confirmed: every file must already be stored."""
    missing = [
        f"{project} ({file.filename})"
        for _index, project, file in files
        if file.sha256 is None or not catalog.store.has(file.sha256)
    ]
    if missing:
        more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
        raise NotCached(
            f"offline, and {len(missing)} file(s) are not in the cache: "
            f"{', '.join(missing[:10])}{more}; run `satchel prefetch` for them while online",
            details={"missing": missing},
        )


Progress = Callable[[int, int | None, str, str], Awaitable[None]]


@dataclass
class Fetched:
    """What a batch of downloads did. Files that failed are in `failures`, not in `stored`."""

    #: File URL -> sha256 of the stored bytes.
    stored: dict[str, str] = field(default_factory=dict)
    downloaded: int = 0
    downloaded_bytes: int = 0
    total_bytes: int = 0
    #: ("project (filename)", error) for every file that could not be stored.
    failures: list[tuple[str, SatchelError]] = field(default_factory=list)

    def raise_failures(self) -> None:
        if self.failures:
            raise combine_failures([exc for _what, exc in self.failures])


async def fetch_files(
    catalog: Shared,
    files: Sequence[tuple[IndexConfig, str, FileEntry]],
    progress: Progress | None = None,
    *,
    offline: bool = False,
    early: EarlyFetches | None = None,
) -> Fetched:
    """Store every file of *files* (hash-checked, with its origin), `DOWNLOAD_CONCURRENCY` at a
    time; offline, require them present instead (`NotCached` naming what is missing). *early*:
    the downloads this request started while it resolved, joined rather than repeated (a file
    they stored counts as downloaded, one that failed fails here with the same error).

    One file failing does not stop the others (what succeeded stays stored and need not be
    fetched again); the caller decides whether failures are fatal (`Fetched.raise_failures`).
    Progress counts bytes, the message naming the file that just finished.
    """
    if offline:
        require_present(catalog, files)
        return await _confirm_present(catalog, files, progress)
    result = Fetched(total_bytes=sum(file.size or 0 for _, _, file in files))
    done = finished = 0
    early = early if early is not None else EarlyFetches(catalog)
    early.close()  # what has not started yet is fetched here

    async def fetch(index: IndexConfig, project: str, file: FileEntry) -> None:
        nonlocal done, finished
        joined = await early.outcome(file)
        if joined is not None and joined.error is not None:
            result.failures.append((f"{project} ({file.filename})", joined.error))
            return
        if joined is not None and joined.info is not None:  # checked and recorded already
            present, info = not joined.downloaded, joined.info
        else:
            async with early.limiter:
                present = file.sha256 is not None and catalog.store.has(file.sha256)
                try:
                    info = await catalog.fetch_file(index, project, file, batch=True)
                except SatchelError as exc:
                    result.failures.append((f"{project} ({file.filename})", exc))
                    return
        result.stored[file.url] = info.sha256
        if not present:
            result.downloaded += 1
            result.downloaded_bytes += info.size
        done += file.size or info.size
        finished += 1
        if progress is not None:
            verb = "cached" if present else "fetched"
            message = f"{finished}/{len(files)} {verb} {file.filename}"
            await progress(done, result.total_bytes or None, "B", message)

    async with trio.open_nursery() as nursery:
        for index, project, file in files:
            nursery.start_soon(fetch, index, project, file)
    result.total_bytes = max(result.total_bytes, done)
    if result.stored:  # durable together; last used: what garbage collection goes by
        await trio.to_thread.run_sync(catalog.settle, list(result.stored.values()))
    return result


@dataclass
class _EarlyFetch:
    """One early download: `done` once it stored the file (`info`), failed (`error`) or gave
    up (neither: the file was stored already, or the resolution ended before its turn)."""

    done: trio.Event = field(default_factory=trio.Event)
    info: BlobInfo | None = None
    error: SatchelError | None = None
    #: The bytes came from the network (the file was not stored before).
    downloaded: bool = False


class EarlyFetches:
    """The downloads a prefetch starts while it resolves: each file as the resolver pins it.

    A cold prefetch resolved first and downloaded after; now the resolution (a chain of round
    trips) and the downloads overlap (issue 15). `pinned` is `SessionSource`'s *pinned*; the
    downloads run in the catalog's nursery, like the look-ahead, so a resolution that fails or
    is cancelled leaves them to finish harmlessly (hash-checked into the store, with their
    origin). A file the resolver pinned and then dropped (it backtracked) is downloaded all the
    same, and counted by the caller (`unused`). `fetch_files` waits for each file's early
    download (`outcome`): its error is the file's error (a wheel whose metadata disagreed is
    stored already, and only that error says so), never a second attempt. `close` first, so
    what has not started yet is fetched there; `limiter` bounds both to `DOWNLOAD_CONCURRENCY`.
    """

    def __init__(self, catalog: Shared) -> None:
        self._catalog = catalog
        self.limiter = trio.CapacityLimiter(DOWNLOAD_CONCURRENCY)
        self._files: dict[str, _EarlyFetch] = {}
        self._closed = False

    def pinned(self, index: IndexConfig, project: str, file: FileEntry) -> None:
        """Start downloading *file* (on the trio thread; returns at once)."""
        if self._closed or file.sha256 is None or file.url in self._files:
            return
        entry = self._files[file.url] = _EarlyFetch()
        self._catalog.nursery.start_soon(self._fetch, index, project, file, entry)

    @property
    def started(self) -> frozenset[str]:
        """URLs of the files whose download started early."""
        return frozenset(self._files)

    def close(self) -> None:
        """No new downloads; those still waiting for a turn give it up."""
        self._closed = True

    async def outcome(self, file: FileEntry) -> _EarlyFetch | None:
        """The early download of *file* once it is over; None if there was none."""
        entry = self._files.get(file.url)
        if entry is None:
            return None
        await entry.done.wait()
        return entry

    def unused(self, used: Iterable[str]) -> dict[str, int]:
        """sha256 -> size of what the early downloads fetched, less the *used* sha256s."""
        kept = set(used)
        return {
            entry.info.sha256: entry.info.size
            for entry in self._files.values()
            if entry.downloaded and entry.info is not None and entry.info.sha256 not in kept
        }

    async def _fetch(
        self, index: IndexConfig, project: str, file: FileEntry, entry: _EarlyFetch
    ) -> None:
        try:
            async with self.limiter:
                if self._closed or file.sha256 is None or self._catalog.store.has(file.sha256):
                    return
                entry.info = await self._catalog.fetch_file(index, project, file, batch=True)
                entry.downloaded = True
        except SatchelError as exc:
            entry.error = exc
        except Exception:
            # This task runs in the daemon's service nursery: nothing may end the daemon from
            # here. Neither info nor error: the request fetches
            # the file itself, where the failure is its own, as before early downloads.
            log.warning("early download of %s failed", file.filename, exc_info=True)
        finally:
            entry.done.set()


async def _confirm_present(
    catalog: Shared,
    files: Sequence[tuple[IndexConfig, str, FileEntry]],
    progress: Progress | None,
) -> Fetched:
    """`fetch_files` offline: every file is stored, so confirm them all in one thread hop.

    The same result as the online path gives for cached files, without a task and a thread hop
    per file (an offline install of 112 wheels spent more time on those than on its own
    bookkeeping), and one progress event for the batch: confirming takes no time worth watching,
    and an event per file was a frame for the daemon to send and a line for the client to print
    (112 of each for an offline install of the large benchmark set).
    """
    result = Fetched(total_bytes=sum(file.size or 0 for _, _, file in files))
    infos = await trio.to_thread.run_sync(catalog.confirm_stored, list(files))
    done = 0
    for (_index, _project, file), info in zip(files, infos, strict=True):
        result.stored[file.url] = info.sha256
        done += file.size or info.size
    if progress is not None and files:
        message = f"{len(files)}/{len(files)} cached"
        await progress(done, result.total_bytes or None, "B", message)
    result.total_bytes = max(result.total_bytes, done)
    if result.stored:  # what garbage collection's least-recently-used order goes by
        await trio.to_thread.run_sync(catalog.metadb.mark_used, list(result.stored.values()))
    return result


def combine_failures(failures: list[SatchelError]) -> SatchelError:
    """One error for a batch of downloads that failed: the first, counting the others.

    Run the downloads of a batch with each task catching its `SatchelError` into a list (what
    succeeded stays stored and need not be fetched again), then raise this: the client gets an
    error of the first failure's kind (a hash mismatch stays a hash mismatch, naming the file
    and both hashes), not an exception group that the dispatcher can only call internal.
    """
    first = failures[0]
    if len(failures) == 1:
        return first
    others = "; ".join(str(exc) for exc in failures[1:4])
    more = f" and {len(failures) - 4} more" if len(failures) > 4 else ""
    return type(first)(
        f"{first.message}\n{len(failures) - 1} other file(s) failed too: {others}{more}",
        details={**first.details, "failures": len(failures)},
    )
