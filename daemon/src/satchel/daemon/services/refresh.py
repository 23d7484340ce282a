"""Keeping caches warm by themselves: the `Warmer`, the daemon's background maintenance.

It runs beside the server for the daemon's whole life (started by `runtime._run` with
`keep_warm`) and owns four tasks, none of which ever blocks a client request (each is its own
trio task; downloads share the upstream's per-index limits with everyone else):

    watcher    watchfiles on the watched projects' directories (non-recursive, debounced); a
               change to an input file marks its project pending
    prefetch   pending projects are prefetched (at most `PREFETCH_CONCURRENCY` at a time) while
               an index is reachable; while every index is offline they wait, and go as soon as
               an index's offline cool-down ends (the prefetch is then the probe)
    refresh    every ``refresh-interval`` (with +-`JITTER`, so daemons on one network do not
               revalidate in step), the pages of watched and recently used projects are
               revalidated with conditional requests (ETag / Last-Modified: an unchanged page
               costs a 304); a changed page re-prefetches the watched projects that use it.
               Paused while every index is offline
    gc         while no request is in flight, a collection runs when the cache is over its caps

Each piece of work is an `App.background_job`, so `satchel status` shows it and the idle timeout
waits for it; waiting itself holds nothing, so an idle daemon still exits.

Why the cool-down decides "offline" rather than a ping of our own: the upstream already tracks
each index (a circuit breaker with a probe after `Limits.offline_cooldown`); asking it keeps one
notion of online in the daemon, and an index that is down costs no requests at all.
"""

from __future__ import annotations

import logging
import random
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from satchel.daemon.errors import NotFound, SatchelError, UpstreamError
from satchel.daemon.requests import gc
from satchel.daemon.requests.readiness import Progress, prefetch_project
from satchel.daemon.requests.runtime import Runtime
from satchel.daemon.requests.watch import (
    Record,
    WatchedProject,
    belongs_to,
    is_stale,
    load_projects,
    save_projects,
    watch_dirs,
)
from satchel.daemon.services.daemon import JobInfo, runtime
from satchel.daemon.settings.credentials import redact

if TYPE_CHECKING:
    from satchel.daemon.services.daemon import App

__all__ = ["DEFAULT_REFRESH_INTERVAL", "Timing", "Warmer", "keep_warm", "warmer"]

log = logging.getLogger(__name__)

#: Without ``refresh-interval`` in config.toml: often enough that a laptop closed overnight
#: leaves with yesterday's releases, rare enough to be invisible to an index's operators.
DEFAULT_REFRESH_INTERVAL = 6 * 3600

#: Relative spread of each refresh period (0.1: 6 h becomes 5.4 h to 6.6 h).
JITTER = 0.1

#: Watched projects prefetched at once: their downloads already run 8 files in parallel each.
PREFETCH_CONCURRENCY = 2

#: Pages revalidated at once during a refresh.
REFRESH_CONCURRENCY = 4

#: An idle collection that could not get under the caps is retried after this long even if
#: nothing was stored since (files age past cache-max-age without any change to the store).
GC_RETRY = 3600.0

#: A project whose files were used this recently is "recently used" and kept fresh.
RECENT_WINDOW = 30 * 86400


@dataclass(frozen=True)
class Timing:
    """Delays of the background tasks (tests shorten them)."""

    #: watchfiles debounce: an editor's write-rename-chmod burst is one change.
    debounce_ms: int = 300
    #: How often pending work checks whether an offline index's cool-down has ended.
    offline_poll: float = 1.0
    #: How often the garbage collector checks the caps while the daemon is idle.
    gc_poll: float = 60.0
    #: Overrides config.toml's ``refresh-interval`` (seconds; tests use fractions of one).
    refresh_interval: float | None = None


#: The running `Warmer` of each daemon (one per `App`; kept here, not on the app, so that the
#: daemon object knows nothing of what hangs off it).
_WARMERS: weakref.WeakKeyDictionary[App, Warmer] = weakref.WeakKeyDictionary()


async def warmer(app: App) -> Warmer:
    """The running daemon's `Warmer` (started with the runtime, so this waits for it)."""
    await runtime(app)
    found = _WARMERS.get(app)
    if found is None:
        raise SatchelError("the daemon's background maintenance is not running; see its log")
    return found


async def keep_warm(
    app: App,
    rt: Runtime,
    timing: Timing | None = None,
    *,
    task_status: trio.TaskStatus[Warmer] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the `Warmer` until cancelled; ``await nursery.start(keep_warm, app, rt)``."""
    projects = await trio.to_thread.run_sync(load_projects, rt.metadb)
    warm = Warmer(app, rt, projects, timing or Timing())
    _WARMERS[app] = warm
    try:
        async with trio.open_nursery() as nursery:
            # Not `start`: setting up OS watches must not delay the daemon's first answers.
            nursery.start_soon(warm.watch_files)
            nursery.start_soon(warm.run_prefetches)
            nursery.start_soon(warm.run_refresh)
            nursery.start_soon(warm.run_gc)
            task_status.started(warm)
    finally:
        _WARMERS.pop(app, None)


class Warmer:
    """The watched set and the background tasks that keep it (and recent projects) fresh."""

    def __init__(
        self, app: App, rt: Runtime, projects: list[WatchedProject], timing: Timing
    ) -> None:
        self.app = app
        self.rt = rt
        self.timing = timing
        self.projects: dict[str, WatchedProject] = {p.path: p for p in projects}
        #: Projects waiting to be prefetched (a change, an add, a stale one, a refresh).
        self.pending: set[str] = set()
        self.running: set[str] = set()
        self._work = trio.Event()
        self._rewatch = trio.Event()
        self._save_lock = trio.Lock()
        #: Completed refresh rounds and GC runs (for status-like introspection and tests).
        self.refreshes = 0
        self.collections = 0

    # -- the watched set -------------------------------------------------------------------

    async def add(self, path: Path, python: str | None) -> tuple[WatchedProject, bool]:
        """Watch *path* (True: newly added); a re-add with another --python updates it.

        Either way a prefetch is scheduled: adding again is how a user says "make sure now".
        """
        key = str(path)
        existing = self.projects.get(key)
        if existing is not None and existing.python == python:
            self.schedule(key)
            return existing, False
        project = WatchedProject(path=key, python=python, added_at=time.time())
        self.projects[key] = project
        await self.save()
        self._rewatch.set()
        self.schedule(key)
        return project, existing is None

    async def remove(self, path: Path) -> WatchedProject:
        project = self.projects.pop(str(path), None)
        if project is None:
            raise NotFound(f"{path} is not watched (see `satchel watch list`)")
        self.pending.discard(str(path))
        await self.save()
        self._rewatch.set()
        return project

    async def save(self) -> None:
        async with self._save_lock:
            snapshot = list(self.projects.values())
            await trio.to_thread.run_sync(save_projects, self.rt.metadb, snapshot)

    def schedule(self, key: str) -> None:
        if key in self.projects:
            self.pending.add(key)
            self._work.set()

    # -- online or not ---------------------------------------------------------------------

    def _offline_indexes(self) -> set[str]:
        return {
            n for n, state in self.rt.upstream.index_states().items() if state.state == "offline"
        }

    def reachable(self) -> bool:
        """Whether some configured index may be asked now (not in its offline cool-down)."""
        now = time.time()
        states = self.rt.upstream.index_states()
        for index in self.rt.config.indexes:
            state = states.get(index.name)
            if state is None or state.state != "offline" or (state.retry_at or 0) <= now:
                return True
        return False

    @contextmanager
    def _job(self, name: str, description: str) -> Iterator[JobInfo]:
        with self.app.background_job(name, description) as job:
            yield job

    # -- prefetching -----------------------------------------------------------------------

    async def run_prefetches(self) -> None:
        limiter = trio.CapacityLimiter(PREFETCH_CONCURRENCY)
        async with trio.open_nursery() as nursery:
            while True:
                self._work = trio.Event()
                waiting = sorted(self.pending - self.running)
                if waiting and self.reachable():
                    for key in waiting:
                        self.pending.discard(key)
                        self.running.add(key)
                        nursery.start_soon(self._prefetch_one, key, limiter)
                    continue
                with trio.move_on_after(self.timing.offline_poll if waiting else float("inf")):
                    await self._work.wait()

    async def _prefetch_one(self, key: str, limiter: trio.CapacityLimiter) -> None:
        try:
            async with limiter:
                project = self.projects.get(key)
                if project is not None:
                    await self.prefetch(project, background=True)
        except Exception:
            # A bug here must not take the runtime (and every request) down with it.
            log.exception("background prefetch of %s failed", key)
        finally:
            self.running.discard(key)
            self._work.set()

    async def prefetch(
        self, project: WatchedProject, progress: Progress | None = None, *, background: bool
    ) -> Record:
        """Prefetch one project now and remember the outcome (*background*: no command asked
        for it, so sdists are built only where config.toml's ``builds`` allows it)."""
        down = self._offline_indexes()
        with self._job("watch", f"prefetching {project.path}"):
            try:
                record = await prefetch_project(self.rt, project, progress, background=background)
            except SatchelError as exc:
                record = Record(at=time.time(), ok=False, message=redact(exc.message))
        # Again once an index is back, or at once if one came back meanwhile (a background
        # probe may answer while this prefetch was failing for want of it).
        if not record.ok and (not self.reachable() or down - self._offline_indexes()):
            self.pending.add(project.path)
        if self.projects.get(project.path) is project:
            project.last = record
            await self.save()
        return record

    # -- watching files --------------------------------------------------------------------

    async def watch_files(self) -> None:
        """Watch the projects' directories; restart the watch whenever the set changes.

        Each time a watch is in place, projects whose inputs changed while nobody watched (the
        daemon was not running, or the watch was being rebuilt) are scheduled.
        """
        while True:
            self._rewatch = trio.Event()
            dirs = sorted({d for p in self.projects.values() for d in _existing_dirs(p)})
            if not dirs:
                await self._schedule_stale()
                await self._rewatch.wait()
                continue
            async with trio.open_nursery() as nursery:
                ready = trio.Event()
                nursery.start_soon(self._watch, dirs, ready)
                await ready.wait()
                await self._schedule_stale()
                await self._rewatch.wait()
                nursery.cancel_scope.cancel()

    async def _schedule_stale(self) -> None:
        for project in list(self.projects.values()):
            if project.path in self.running or project.path in self.pending:
                continue
            if await trio.to_thread.run_sync(is_stale, project):
                self.schedule(project.path)

    async def _watch(self, dirs: list[Path], ready: trio.Event) -> None:
        import watchfiles

        try:
            async for changes in watchfiles.awatch(
                *dirs,
                debounce=self.timing.debounce_ms,
                step=20,
                recursive=False,
                yield_on_timeout=True,
                rust_timeout=200,
            ):
                ready.set()  # the first (timeout) yield proves the OS watch is in place
                for _change, changed in changes:
                    self._changed(Path(changed))
        except Exception as exc:
            # A watched directory vanished, or the OS ran out of watches: retry shortly.
            log.warning("watching projects failed (%s); retrying", exc)
            ready.set()
            await trio.sleep(1.0)
            self._rewatch.set()

    def _changed(self, path: Path) -> None:
        for key in self.projects:
            watched = Path(key)
            if path == watched / "requirements":
                self._rewatch.set()  # appeared or went: watch it (or stop), rescan for stale
            inside = watched.is_dir() and belongs_to(watched, path)
            if path == watched or inside:
                log.info("watched project %s: %s changed", key, path.name)
                self.schedule(key)

    # -- background refresh ----------------------------------------------------------------

    def refresh_interval(self) -> float | None:
        if self.timing.refresh_interval is not None:
            return self.timing.refresh_interval
        configured = self.rt.config.settings.refresh_interval
        interval = DEFAULT_REFRESH_INTERVAL if configured is None else configured
        return float(interval) if interval > 0 else None

    async def run_refresh(self) -> None:
        while True:
            interval = self.refresh_interval()
            if interval is None:  # refresh-interval = 0: off (re-read after a config change)
                await trio.sleep(60.0)
                continue
            await trio.sleep(interval * (1 + JITTER * random.uniform(-1, 1)))  # noqa: S311
            # Polling a clock-based condition: the cool-down ends without any event to wait on.
            while not self.reachable():  # noqa: ASYNC110
                await trio.sleep(self.timing.offline_poll)
            try:
                await self.refresh_once()
            except Exception:
                log.exception("background refresh failed")

    async def refresh_once(self) -> int:
        """Revalidate the pages of watched and recently used projects; return how many changed.

        The whole round is one "refresh" background job (`status`, the idle timeout), counted in
        `refreshes` as it ends.
        """
        with self._job("refresh", "listing the pages to revalidate") as job:
            changed = await self._revalidate_all(job)
        self.refreshes += 1
        if changed:
            log.info("refresh: new files for %s", ", ".join(sorted(changed)))
            for key, project in self.projects.items():
                if project.last is not None and changed & set(project.last.projects):
                    self.schedule(key)
        return len(changed)

    async def _revalidate_all(self, job: JobInfo) -> set[str]:
        rt = self.rt
        watched = {name for p in self.projects.values() if p.last for name in p.last.projects}
        recent = await trio.to_thread.run_sync(_recent_projects, rt, time.time() - RECENT_WINDOW)
        names = watched | recent
        keys = await trio.to_thread.run_sync(rt.metadb.page_keys)
        pairs = [(k.index, k.project) for k in keys if k.project in names]
        job.description = f"revalidating {len(pairs)} pages"
        changed: set[str] = set()
        limiter = trio.CapacityLimiter(REFRESH_CONCURRENCY)

        async def revalidate(index_name: str, project: str) -> None:
            index = rt.config.index(index_name)
            if index is None or not self.reachable():
                return
            async with limiter:
                before = await trio.to_thread.run_sync(rt.metadb.get_page, index_name, project)
                try:
                    # The page just read is the one to revalidate: not decoded a second time.
                    stored = {index_name: before} if before is not None else {}
                    page = await rt.catalog.fetch_page(index, project, stored)
                except UpstreamError as exc:
                    log.debug("refresh of %s on %s failed: %s", project, index_name, redact(exc))
                    return
            if page is not None and (before is None or before.files != page.files):
                changed.add(project)

        async with trio.open_nursery() as nursery:
            for index_name, name in pairs:
                nursery.start_soon(revalidate, index_name, name)
        return changed

    # -- garbage collection ----------------------------------------------------------------

    async def run_gc(self) -> None:
        """Collect while idle when over a cap; not again until the store changed (or an hour
        passed, for the age cap): when protected files alone exceed the cap, a collection per
        poll would free nothing and keep resetting the idle timer."""
        after: gc.Usage | None = None
        collected_at = -float("inf")
        while True:
            await trio.sleep(self.timing.gc_poll)
            if self.app.jobs or self.running:
                continue  # not idle: a request or a prefetch may be using the files
            settings = self.rt.config.settings
            max_size, max_age = settings.cache_max_size, settings.cache_max_age
            try:
                used = await trio.to_thread.run_sync(gc.usage, self.rt.metadb)
                if not gc.over_caps(used, max_size, max_age, time.time()):
                    continue
                unchanged = after is not None and (used.files, used.bytes) == (
                    after.files,
                    after.bytes,
                )
                if unchanged and trio.current_time() - collected_at < GC_RETRY:
                    continue
                await self.collect(max_size=max_size, max_age=max_age)
                after = await trio.to_thread.run_sync(gc.usage, self.rt.metadb)
                collected_at = trio.current_time()
            except Exception:
                log.exception("garbage collection failed")

    async def collect(
        self, *, max_size: int | None, max_age: float | None, dry_run: bool = False
    ) -> gc.Report:
        with self._job("gc", "dry run" if dry_run else "freeing cache space"):
            report = await gc.collect(
                self.rt,
                list(self.projects.values()),
                max_size=max_size,
                max_age=max_age,
                dry_run=dry_run,
            )
        if not dry_run:
            self.collections += 1
        return report


def _existing_dirs(project: WatchedProject) -> list[Path]:
    return [d for d in watch_dirs(Path(project.path)) if d.is_dir()]


def _recent_projects(rt: Runtime, since: float) -> set[str]:
    """Projects with a stored file used since *since* (blocking: one query per blob)."""
    names: set[str] = set()
    for sha, _size, used in rt.metadb.lru_blobs(2**62):
        if used >= since:
            names.update(origin.project for origin in rt.metadb.origins(sha))
    return names
