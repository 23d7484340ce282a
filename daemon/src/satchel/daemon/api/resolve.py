"""`resolve` and `prefetch`: pin a requirement set, and (prefetch) store every file it needs.

`prefetch` is what a user runs before going offline; it also builds a wheel (`builder`) for every
pinned sdist, for the interpreter resolved for, since nothing can be built offline. Its progress
events count bytes of the files being stored (``unit="B"``), with the message naming the file
that just finished, so the client can draw a bar on a terminal and plain lines in a log.
"""

from __future__ import annotations

import time

from satchel.daemon.api import RequestContext, method
from satchel.daemon.indexes.lockorigins import locked_files, unsupported_notes
from satchel.daemon.requests.builder import build_sdists
from satchel.daemon.requests.fetching import EarlyFetches, fetch_files
from satchel.daemon.requests.resolution import (
    Outcome,
    inputs_and_target,
    pin_info,
    pinned_files,
    render,
    request_session,
    resolve_params,
    resolve_request,
)
from satchel.daemon.services.daemon import runtime
from satchel.daemon.settings.config import IndexConfig
from satchel.daemon.storage.model import FileEntry
from satchel.protocol.methods.resolve import (
    PREFETCH,
    RESOLVE,
    PrefetchResult,
    ResolveParams,
    ResolveResult,
)

__all__ = ["prefetch", "resolve"]


@method(RESOLVE, ResolveParams)
async def resolve(ctx: RequestContext, params: ResolveParams) -> ResolveResult:
    rt = await runtime(ctx.app)
    outcome = await resolve_params(rt, params, progress=ctx.progress)
    if outcome.resolution.stats.get("cached"):
        ctx.churned = False  # a remembered answer: nothing built, nothing to give back
    traffic = outcome.session.traffic
    return ResolveResult(
        pins=[pin_info(outcome.session, pin) for pin in outcome.resolution.pins],
        output=render(outcome, params.format),
        offline=outcome.session.offline,
        offline_reason=outcome.session.offline_reason,
        notes=outcome.session.notes,
        target=outcome.describe_target(),
        elapsed=outcome.elapsed,
        downloaded=traffic.downloaded,
        downloaded_bytes=traffic.downloaded_bytes,
        metadata_requests=traffic.metadata_requests,
        metadata_bytes=traffic.metadata_bytes,
    )


@method(PREFETCH, ResolveParams)
async def prefetch(ctx: RequestContext, params: ResolveParams) -> PrefetchResult:
    started = time.perf_counter()
    rt = await runtime(ctx.app)
    inputs, target = await inputs_and_target(rt, params)
    files: list[tuple[IndexConfig, str, FileEntry]] = []
    outcome: Outcome | None = None
    session = request_session(rt, params, inputs)
    inputs_locks = list(inputs.locks)
    for lock in inputs_locks:
        files += await locked_files(session, lock)
        session.notes.extend(unsupported_notes(lock))
    early = EarlyFetches(rt.catalog)  # each pinned file's download starts as it is pinned
    if inputs.requirements.requirements:
        inputs.locks = []  # already taken file by file above
        try:
            outcome = await resolve_request(
                rt, params, inputs, target, progress=ctx.progress, pinned=early.pinned
            )
        finally:
            early.close()
        outcome.session.notes[:0] = session.notes
        session = outcome.session
        files += pinned_files(session, outcome.resolution.pins)
    fetched = await fetch_files(
        rt.catalog, files, ctx.progress, offline=session.offline, early=early
    )
    traffic = session.traffic
    for sha, size in early.unused(fetched.stored.values()).items():  # pinned, then dropped
        traffic.count_download(sha, size)
    fetched.raise_failures()
    # Wheels downloaded while resolving (read whole for their metadata) are downloads of this
    # request, not files it found cached (issue 13.7).
    whole = sum(1 for sha in fetched.stored.values() if sha in traffic.downloaded_shas)
    sdists = [(pin.name, pin.file) for pin in outcome.resolution.pins] if outcome else []
    for lock in inputs_locks:
        for package in lock.applicable(target):
            best = package.best_file(target)
            if best is not None:
                sdists.append((package.name, best))
    began = time.time() - (time.perf_counter() - started)
    for sdist, wheel in await build_sdists(
        rt, session, target, sdists, fetched.stored, progress=ctx.progress
    ):
        if wheel.built_at >= began:  # built by this request, not reused from an earlier one
            session.notes.append(f"built {wheel.filename} from {sdist.filename}")
    return PrefetchResult(
        pins=[pin_info(session, pin) for pin in outcome.resolution.pins] if outcome else [],
        files=len(files),
        downloaded=fetched.downloaded + traffic.downloaded,
        downloaded_bytes=fetched.downloaded_bytes + traffic.downloaded_bytes,
        cached=len(files) - fetched.downloaded - whole,
        metadata_requests=traffic.metadata_requests,
        metadata_bytes=traffic.metadata_bytes,
        total_bytes=fetched.total_bytes,
        offline=session.offline,
        offline_reason=session.offline_reason,
        notes=session.notes,
        target=outcome.describe_target() if outcome else "",
        elapsed=time.perf_counter() - started,
    )
