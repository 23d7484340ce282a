"""Cache methods: `cache.info`, `cache.verify` and `cache.prune`, from the store and the metadb.

Both run their blocking parts (SQLite, directory walks, hashing) in worker threads, so the daemon
keeps answering `ping` while `cache.verify` re-hashes gigabytes. `cache.verify` checks the blobs
first, then the unpacked trees against their RECORD (`treecheck.verify_trees`), so a damaged tree
is unpacked again only from a blob just proven intact.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from satchel.daemon.api import RequestContext, method
from satchel.daemon.errors import SatchelError
from satchel.daemon.installing.treecheck import TreeReport, verify_trees
from satchel.daemon.installing.wheel import unpack_all
from satchel.daemon.services.daemon import runtime
from satchel.daemon.services.refresh import warmer
from satchel.daemon.storage.metadb import MetaDB
from satchel.daemon.storage.store import BlobStore, VerifyProgress
from satchel.protocol.methods.cache import (
    CACHE_INFO,
    CACHE_PRUNE,
    CACHE_VERIFY,
    CacheInfoParams,
    CacheInfoResult,
    CachePruneParams,
    CachePruneResult,
    CacheVerifyParams,
    CacheVerifyResult,
    CorruptFile,
    CorruptTree,
    IndexUsage,
    PrunedFile,
)

if TYPE_CHECKING:
    from satchel.daemon.services.daemon import App

__all__ = ["cache_info", "cache_prune", "cache_services", "cache_verify"]

log = logging.getLogger(__name__)

#: At most this many progress events per second reach the client during `cache.verify`.
PROGRESS_INTERVAL = 0.1


async def cache_services(app: App) -> tuple[BlobStore, MetaDB]:
    """The daemon's store and metadb, opened once at start-up by the runtime (`open_cache`
    sweeps crash debris, so a second opening while downloads run would be unsafe)."""
    rt = await runtime(app)
    return rt.store, rt.metadb


@method(CACHE_INFO, CacheInfoParams)
async def cache_info(ctx: RequestContext, params: CacheInfoParams) -> CacheInfoResult:
    """Counts and sizes from the metadb (reconciled with the blobs at start-up)."""
    store, metadb = await cache_services(ctx.app)
    stats = await trio.to_thread.run_sync(metadb.stats)
    quarantined, database_bytes = await trio.to_thread.run_sync(_disk_facts, store, metadb)
    return CacheInfoResult(
        cache_dir=str(store.root),
        files=stats.blobs,
        bytes=stats.bytes,
        pages=stats.pages,
        core_metadata=stats.core_metadata,
        built_wheels=stats.built_wheels,
        unattributed_files=stats.unattributed_blobs,
        quarantined=quarantined,
        database_bytes=database_bytes,
        indexes=[
            IndexUsage(index=i.index, projects=i.projects, files=i.blobs, bytes=i.bytes)
            for i in stats.indexes
        ],
    )


@method(CACHE_VERIFY, CacheVerifyParams)
async def cache_verify(ctx: RequestContext, params: CacheVerifyParams) -> CacheVerifyResult:
    """Re-hash every blob; quarantine corrupt ones and make the metadb forget them.

    What the metadb knew about a corrupt blob (its file name, the indexes that served it) is
    read before it is forgotten, so the answer says where the file can be fetched again.
    """
    store, metadb = await cache_services(ctx.app)
    known: dict[str, tuple[str | None, list[str]]] = {}
    last_sent = 0.0

    async def on_corrupt(sha256: str) -> None:
        known[sha256] = await trio.to_thread.run_sync(_describe_and_forget, metadb, sha256)

    async def on_progress(update: VerifyProgress) -> None:
        nonlocal last_sent
        now = time.monotonic()
        if now - last_sent < PROGRESS_INTERVAL and update.checked < update.total:
            return
        last_sent = now
        await ctx.progress(
            update.bytes_checked,
            update.bytes_total,
            "bytes",
            f"{update.checked}/{update.total} files",
        )

    report = await store.verify(on_progress, on_corrupt)
    corrupt = []
    for blob in report.corrupt:
        filename, indexes = known.get(blob.name, (None, []))
        corrupt.append(
            CorruptFile(
                sha256=blob.name,
                actual_sha256=blob.actual_sha256,
                filename=filename,
                indexes=indexes,
                quarantined_as=str(store.root / blob.quarantined_as),
            )
        )
        log.warning(
            "cache verify: %s (%s) is corrupt, quarantined as %s",
            filename or "unknown file",
            blob.name,
            blob.quarantined_as,
        )
    trees = await _verify_trees(ctx, store, metadb)
    return CacheVerifyResult(
        checked=report.checked,
        bytes=report.bytes,
        corrupt=corrupt,
        quarantine_dir=str(store.quarantine_dir),
        trees_checked=trees.checked,
        tree_bytes=trees.bytes,
        corrupt_trees=[
            CorruptTree(
                sha256=d.sha256,
                filename=d.filename,
                files=list(d.files),
                quarantined_as=str(store.root / d.quarantined_as),
                repaired=d.repaired,
            )
            for d in trees.damaged
        ],
    )


async def _verify_trees(ctx: RequestContext, store: BlobStore, metadb: MetaDB) -> TreeReport:
    """Re-hash the unpacked trees; each damaged one is quarantined and unpacked again."""

    def repair(sha256: str, filename: str) -> bool:
        if not store.has(sha256):
            return False
        if not filename.endswith(".whl"):  # a tree unpacked by an older Satchel: named by sha
            filename = metadb.blob_filenames([sha256]).get(sha256) or filename
        try:
            unpack_all([(store.path(sha256), sha256)], store.unpacked_dir, filenames=[filename])
        except (SatchelError, OSError) as exc:
            log.warning("cache verify: cannot unpack %s (%s) again: %s", filename, sha256, exc)
            return False
        return True

    def progress(checked: int, total: int) -> None:
        trio.from_thread.run(ctx.progress, checked, total, "trees", f"{checked}/{total} trees")

    report = await trio.to_thread.run_sync(
        functools.partial(
            verify_trees,
            store.unpacked_dir,
            store.quarantine_dir,
            store.root,
            repair,
            progress,
        )
    )
    for damage in report.damaged:
        log.warning(
            "cache verify: the unpacked tree of %s (%s) is damaged (%s); quarantined as %s, %s",
            damage.filename or "unknown wheel",
            damage.sha256,
            ", ".join(damage.files[:5]),
            damage.quarantined_as,
            "unpacked again" if damage.repaired else "its wheel is gone",
        )
    return report


@method(CACHE_PRUNE, CachePruneParams)
async def cache_prune(ctx: RequestContext, params: CachePruneParams) -> CachePruneResult:
    """Garbage-collect under the given (else configured) caps; see `satchel.daemon.requests.gc`."""
    warm = await warmer(ctx.app)
    settings = warm.rt.config.settings
    max_size = params.max_size if params.max_size is not None else settings.cache_max_size
    max_age = params.max_age if params.max_age is not None else settings.cache_max_age
    report = await warm.collect(max_size=max_size, max_age=max_age, dry_run=params.dry_run)
    plan = report.plan
    return CachePruneResult(
        dry_run=params.dry_run,
        removed=[
            PrunedFile(
                sha256=v.sha256,
                filename=v.filename,
                size=v.size,
                last_used=v.last_used,
                reason=v.reason,
            )
            for v in plan.victims
        ],
        freed_bytes=plan.freed_bytes,
        protected=plan.protected,
        protected_bytes=plan.protected_bytes,
        total_before=plan.total_before,
        total_after=plan.total_after,
        trees=report.trees,
        tree_bytes=report.tree_bytes,
        max_size=max_size,
        max_age=max_age,
    )


def _describe_and_forget(metadb: MetaDB, sha256: str) -> tuple[str | None, list[str]]:
    origins = metadb.origins(sha256)
    rows = metadb.blob_filenames([sha256])
    filename = rows.get(sha256) or (origins[0].filename if origins else None)
    metadb.forget_blob(sha256)
    return filename, sorted({origin.index for origin in origins})


def _disk_facts(store: BlobStore, metadb: MetaDB) -> tuple[int, int]:
    """(quarantined files, database bytes including its WAL and shared-memory files)."""
    quarantined = sum(1 for _ in os.scandir(store.quarantine_dir))
    database = 0
    for suffix in ("", "-wal", "-shm"):
        try:
            database += Path(f"{metadb.path}{suffix}").stat().st_size
        except FileNotFoundError:
            continue
    return quarantined, database
