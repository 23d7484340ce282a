"""Garbage collection: keep the cache under its caps without ever losing what a project needs.

Two caps from config.toml's ``[settings]``: ``cache-max-size`` (bytes of stored files) and
``cache-max-age`` (a file unused for longer goes). Stored files are the unit: each one's
unpacked tree (``<store>/unpacked/<sha256>``, made by the installer) goes with it, and trees
whose file is gone are removed too, since they can only be rebuilt from that file.

Protected, whatever the caps say (a cap below the protected size is simply not reached):

* every file a watched project needed at its last prefetch (`watch.Record.needed`), and every
  file its offline resolve uses now (what `ready` counts on);
* every file listed in a watched project's lock files (pylock.toml, uv.lock): a pinned lock
  must stay installable offline whatever the target;
* every wheel built from a protected sdist (`MetaDB.built_wheels_from`): a built wheel has no
  origin, so nothing else says it is needed, yet an offline install of an sdist pin uses it and
  not the sdist. Once nothing protects the sdist, its built wheels are ordinary files.

Tool environments need nothing from the store once built (their files are links into their own
directory), so they protect nothing here; removing them is `satchel tool` business.

Order: past the age cap first, then least-recently-used until under the size cap (ties broken by
sha256 so a dry run and the real run choose the same files). Removal is blob first, then its
metadb row (a crash in between is repaired at the next start by `MetaDB.reconcile_blobs`).
"""

from __future__ import annotations

import logging
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
import trio

from satchel.daemon.errors import SatchelError
from satchel.daemon.installing.wheel import remove_unpacked
from satchel.daemon.requests.readiness import needed_files
from satchel.daemon.requests.runtime import Runtime
from satchel.daemon.requests.watch import WatchedProject, discover, read_unit
from satchel.daemon.storage import provenance
from satchel.daemon.storage.metadb import MetaDB
from satchel.daemon.storage.store import BlobStore

__all__ = [
    "Plan",
    "Report",
    "Usage",
    "Victim",
    "collect",
    "over_caps",
    "plan",
    "protected_blobs",
    "usage",
]

log = logging.getLogger(__name__)

#: Rows read per metadb query when planning (all of them; this bounds one query's memory).
_ALL = 2**62

_SHA256 = re.compile(r"[0-9a-f]{64}")


class Victim(msgspec.Struct, frozen=True, kw_only=True):
    sha256: str
    filename: str
    size: int
    last_used: float
    #: "age" (past cache-max-age) or "size" (least recently used, over cache-max-size).
    reason: str


@dataclass
class Plan:
    victims: list[Victim] = field(default_factory=list)
    #: Stored files kept because a watched project or lock needs them.
    protected: int = 0
    protected_bytes: int = 0
    total_before: int = 0
    total_after: int = 0

    @property
    def freed_bytes(self) -> int:
        return sum(v.size for v in self.victims)


def plan(
    rows: list[tuple[str, int, float]],
    protected: set[str],
    *,
    max_size: int | None,
    max_age: float | None,
    now: float,
    filenames: dict[str, str] | None = None,
) -> Plan:
    """Choose what to evict from *rows* (sha256, size, last_used), least recently used first."""
    rows = sorted(rows, key=lambda row: (row[2], row[0]))
    names = filenames or {}
    out = Plan(total_before=sum(size for _sha, size, _used in rows))
    total = out.total_before
    chosen: set[str] = set()

    def evict(sha: str, size: int, used: float, reason: str) -> None:
        nonlocal total
        chosen.add(sha)
        total -= size
        out.victims.append(
            Victim(
                sha256=sha, filename=names.get(sha, ""), size=size, last_used=used, reason=reason
            )
        )

    for sha, size, used in rows:
        if sha in protected:
            out.protected += 1
            out.protected_bytes += size
        elif max_age is not None and used < now - max_age:
            evict(sha, size, used, "age")
    if max_size is not None:
        for sha, size, used in rows:
            if total <= max_size:
                break
            if sha not in protected and sha not in chosen:
                evict(sha, size, used, "size")
    out.total_after = total
    return out


def _lock_hashes(projects: list[WatchedProject]) -> set[str]:
    """sha256 of every file listed in the watched projects' lock files (blocking)."""
    found: set[str] = set()
    for project in projects:
        for path in discover(Path(project.path)):
            if path.name != "uv.lock" and not (
                path.name.startswith("pylock") and path.suffix == ".toml"
            ):
                continue
            try:
                unit = read_unit(path)
            except SatchelError as exc:
                log.warning("garbage collection: cannot read %s: %s", path, exc)
                continue
            for lock in unit.inputs.locks:
                found.update(f.sha256 for f in lock.files() if f.sha256 is not None)
    return found


async def protected_blobs(rt: Runtime, projects: list[WatchedProject]) -> set[str]:
    """Every sha256 garbage collection must keep (see the module docstring)."""
    keep: set[str] = set()
    for project in projects:
        if project.last is not None:
            keep.update(project.last.needed)
        try:
            needed = await needed_files(rt, project, offline=True)
        except SatchelError as exc:
            log.warning("garbage collection: %s: %s", project.path, exc)
            continue
        keep.update(f.sha256 for _i, _p, f in needed.files if f.sha256 is not None)
    keep |= await trio.to_thread.run_sync(_lock_hashes, projects)
    built = await trio.to_thread.run_sync(rt.metadb.built_wheels_from, keep)
    keep.update(wheel.wheel_sha256 for wheel in built)
    return keep


class Usage(msgspec.Struct, frozen=True):
    """What the store holds, in one query: the input of the idle collector's decision."""

    files: int
    bytes: int
    #: last_used of the least recently used file (None: the store is empty).
    oldest: float | None


def usage(metadb: MetaDB) -> Usage:
    """(blocking)"""
    rows = metadb.lru_blobs(_ALL)
    return Usage(len(rows), sum(size for _s, size, _u in rows), rows[0][2] if rows else None)


def over_caps(used: Usage, max_size: int | None, max_age: float | None, now: float) -> bool:
    """Whether a collection might free something (it may not: protected files stay)."""
    if max_size is not None and used.bytes > max_size:
        return True
    return max_age is not None and used.oldest is not None and used.oldest < now - max_age


def _tree_size(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size  # noqa: PTH118
            except OSError:
                continue
    return total


def _execute(store: BlobStore, metadb: MetaDB, victims: list[Victim]) -> tuple[int, int]:
    """Remove the victims' blobs, rows and trees, then orphaned trees; (trees, tree bytes)."""
    root = store.unpacked_dir
    trees = tree_bytes = 0
    for victim in victims:
        store.remove(victim.sha256)
        metadb.forget_blob(victim.sha256)
        provenance.remove(store.root, victim.sha256)
    try:
        entries = [child.name for child in root.iterdir()]
    except FileNotFoundError:
        return 0, 0
    for entry in entries:
        if _SHA256.fullmatch(entry) and not store.has(entry):
            tree_bytes += _tree_size(root / entry)
            remove_unpacked(root, entry)
            trees += 1
    return trees, tree_bytes


@dataclass
class Report:
    plan: Plan
    dry_run: bool
    trees: int = 0
    tree_bytes: int = 0


async def collect(
    rt: Runtime,
    projects: list[WatchedProject],
    *,
    max_size: int | None,
    max_age: float | None,
    dry_run: bool = False,
    now: float | None = None,
) -> Report:
    """Plan a collection under the caps and (unless *dry_run*) carry it out."""
    keep = await protected_blobs(rt, projects)
    moment = time.time() if now is None else now

    def make_plan() -> Plan:
        rows = rt.metadb.lru_blobs(_ALL)
        names = rt.metadb.blob_filenames(sha for sha, _size, _used in rows)
        return plan(rows, keep, max_size=max_size, max_age=max_age, now=moment, filenames=names)

    chosen = await trio.to_thread.run_sync(make_plan)
    report = Report(chosen, dry_run)
    if not dry_run:
        report.trees, report.tree_bytes = await trio.to_thread.run_sync(
            _execute, rt.store, rt.metadb, chosen.victims
        )
        if chosen.victims:
            log.info(
                "garbage collection freed %d files (%d bytes), kept %d protected",
                len(chosen.victims),
                chosen.freed_bytes,
                chosen.protected,
            )
    return report
