"""`watch.add`, `watch.remove`, `watch.list`, `watch.prefetch` and `ready`.

The watched set lives in the daemon's `Warmer` (`satchel.daemon.services.refresh`); these handlers
only
translate. `watch.add` returns at once: the first prefetch runs in the background, as every later
one does (`watch list` shows its outcome; `prefetch --watched` waits for it with progress).
"""

from __future__ import annotations

import time
from pathlib import Path

import trio

from satchel.daemon.api import RequestContext, method
from satchel.daemon.errors import NotFound
from satchel.daemon.requests.readiness import check_project, check_tools
from satchel.daemon.requests.watch import WatchedProject, discover
from satchel.daemon.services.refresh import warmer
from satchel.protocol.methods.watch import (
    READY,
    WATCH_ADD,
    WATCH_LIST,
    WATCH_PREFETCH,
    WATCH_REMOVE,
    LastPrefetch,
    ProjectPrefetch,
    Readiness,
    ReadyParams,
    ReadyResult,
    WatchAddParams,
    WatchedProjectInfo,
    WatchListParams,
    WatchListResult,
    WatchPrefetchParams,
    WatchPrefetchResult,
    WatchRemoveParams,
)

__all__ = ["ready", "watch_add", "watch_list", "watch_prefetch", "watch_remove"]


def _absolute(path: str) -> Path:
    """The canonical form of a client path (the key of the watched set)."""
    given = Path(path)
    if not given.is_absolute():
        raise NotFound(f"{path}: the client must send an absolute path")
    return given.resolve()


def _info(project: WatchedProject, sources: list[str], pending: bool) -> WatchedProjectInfo:
    last = project.last
    return WatchedProjectInfo(
        path=project.path,
        python=project.python,
        target=last.target if last else "",
        sources=sources,
        added_at=project.added_at,
        last_prefetch=(
            LastPrefetch(
                at=last.at,
                ok=last.ok,
                message=last.message,
                files=last.files,
                downloaded=last.downloaded,
                bytes=last.bytes,
            )
            if last
            else None
        ),
        missing=list(last.missing) if last else [],
        pending=pending,
    )


@method(WATCH_ADD, WatchAddParams)
async def watch_add(ctx: RequestContext, params: WatchAddParams) -> WatchedProjectInfo:
    path = _absolute(params.path)
    if not await trio.to_thread.run_sync(path.exists):
        raise NotFound(f"{path}: no such file or directory")
    sources = await trio.to_thread.run_sync(discover, path)
    if not sources:
        raise NotFound(
            f"{path}: no requirements*.txt, pyproject.toml, pylock.toml, uv.lock or script with "
            "inline metadata here; nothing to watch"
        )
    warm = await warmer(ctx.app)
    project, _added = await warm.add(path, params.python)
    return _info(project, [str(s) for s in sources], True)


@method(WATCH_REMOVE, WatchRemoveParams)
async def watch_remove(ctx: RequestContext, params: WatchRemoveParams) -> WatchedProjectInfo:
    warm = await warmer(ctx.app)
    project = await warm.remove(_absolute(params.path))
    return _info(project, [], False)


@method(WATCH_LIST, WatchListParams)
async def watch_list(ctx: RequestContext, params: WatchListParams) -> WatchListResult:
    warm = await warmer(ctx.app)
    out = []
    for project in list(warm.projects.values()):
        sources = await trio.to_thread.run_sync(discover, Path(project.path))
        busy = project.path in warm.pending or project.path in warm.running
        out.append(_info(project, [str(s) for s in sources], busy))
    return WatchListResult(projects=out)


@method(WATCH_PREFETCH, WatchPrefetchParams)
async def watch_prefetch(ctx: RequestContext, params: WatchPrefetchParams) -> WatchPrefetchResult:
    """Prefetch every watched project now, one after the other, streaming byte progress."""
    started = time.perf_counter()
    warm = await warmer(ctx.app)
    results = []
    projects = list(warm.projects.values())
    for number, project in enumerate(projects, start=1):
        prefix = f"[{number}/{len(projects)}] {Path(project.path).name}: "

        async def progress(done: int, total: int | None, unit: str, message: str) -> None:
            await ctx.progress(done, total, unit, prefix + message)  # noqa: B023 (awaited now)

        record = await warm.prefetch(project, progress, background=False)
        results.append(
            ProjectPrefetch(
                path=project.path,
                ok=record.ok,
                message=record.message,
                files=record.files,
                downloaded=record.downloaded,
                bytes=record.bytes,
                missing=record.missing,
            )
        )
    return WatchPrefetchResult(projects=results, elapsed=time.perf_counter() - started)


@method(READY, ReadyParams)
async def ready(ctx: RequestContext, params: ReadyParams) -> ReadyResult:
    """Check every watched project offline (resolvable from the cache, every file stored) and
    every cached tool environment (intact). The totals count the projects' files."""
    warm = await warmer(ctx.app)
    store = warm.rt.store
    entries = []
    files: set[str] = set()
    shas: set[str] = set()
    for project in list(warm.projects.values()):
        check = await check_project(warm.rt, project)
        for _index, _name, file in check.needed.files:
            files.add(file.sha256 or file.url)
            if file.sha256 is not None:
                shas.add(file.sha256)
        entries.append(
            Readiness(
                kind="project",
                name=project.path,
                ready=check.ready,
                files=len(check.needed.files),
                bytes=check.size,
                gaps=check.gaps,
                target=(check.needed.target.executable or "") if check.needed.target else "",
            )
        )
    for tool in await check_tools(warm.rt):
        entries.append(
            Readiness(
                kind="tool",
                name=tool.spec,
                ready=not tool.gaps,
                files=tool.files,
                bytes=tool.size,
                gaps=tool.gaps,
                target=tool.environment,
            )
        )

    def stored_bytes() -> int:
        return sum(store.path(sha).stat().st_size for sha in shas if store.has(sha))

    return ReadyResult(
        ready=all(entry.ready for entry in entries),
        entries=entries,
        files=len(files),
        bytes=await trio.to_thread.run_sync(stored_bytes),
    )
