"""Place an install's directories and files: one pass per wheel that checks each unpacked file
against its unpack-time stamp and links it, the wheels spread over a few threads.

An unpacked tree is hard-linked into every environment, so a file edited through one
environment's link would spread to the next (`satchel.daemon.installing.treecheck` explains the
stamps). Each file's ``lstat`` is compared with its stamp right before it is placed, in the same
loop and relative to the same open directory (``fstatat`` and ``linkat`` on one directory fd: the
kernel walks the cache path once per directory, not twice per file). A file whose stamp differs
is not placed: the wheel's changed members are returned, and the installer rolls the whole
install back (`TreeChanged`) so that its caller unpacks those trees again and installs afresh.

Directories are made first, one depth level at a time, so a parent always exists before its
children whichever thread makes them. Then each wheel is one unit of work: its files checked
and placed, then its written files (RECORD, INSTALLER, launchers) created. ``mkdir``, ``lstat``,
``link`` and ``write`` release the GIL, and the units go to `PLACE_THREADS` threads largest
first, so the threads finish together. The first error is raised after every thread stopped, and
the caller's rollback undoes whatever was done (each rollback step tolerates having never
happened).
"""

# Paths are plain strings and os calls on purpose: these loops run per file, 10^4 times per
# install, where pathlib objects cost several microseconds each.
# ruff: noqa: PTH102

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from satchel.daemon.errors import InstallError
from satchel.daemon.installing._manifest import Stamp
from satchel.daemon.installing.linking import Linker

__all__ = ["NO_STAMPS", "PARALLEL_PLACE_MIN", "PLACE_THREADS", "TreeChanged", "Unit", "place"]

#: Files from which an install places them with `PLACE_THREADS` threads: mkdir, lstat and link
#: release the GIL, so two threads use both cores of a small machine; a small install is not
#: worth a thread pool.
PARALLEL_PLACE_MIN = 2000
PLACE_THREADS = 2
#: What a tree unpacked by an older Satchel (no stamps in its manifest) reports as changed: it
#: cannot be checked cheaply, so it is unpacked again once and carries stamps from then on.
NO_STAMPS = "(no unpack-time stamps)"
#: How a tree directory is opened: only as a base for lstat and link (O_PATH: no read access
#: is checked or set up, where the platform has it).
_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_PATH", 0)
#: At most this many changed members are named per tree (in the error and the log).
_MAX_NAMED = 20


class TreeChanged(InstallError):
    """An unpacked tree changed since it was unpacked; the install was rolled back.

    *changed* maps each such tree's sha256 to the members found changed (or `NO_STAMPS`): the
    caller unpacks those trees again from their blobs and installs again.
    """

    def __init__(self, message: str, changed: dict[str, list[str]]) -> None:
        super().__init__(message, details={"changed": {k: v[:5] for k, v in changed.items()}})
        self.changed = changed


@dataclass
class Unit:
    """One wheel's share of the placement: its files, checked and placed, then its writes."""

    label: str
    sha256: str
    tree: str  # the unpacked tree, ending in "/"
    stamped: bool  # False: a manifest without stamps (`NO_STAMPS`)
    links: list[tuple[str, str, int, Stamp]] = field(default_factory=list)  # member, dst, mode
    writes: list[tuple[str, bytes, int]] = field(default_factory=list)  # dst, data, mode
    #: Written last, their bytes computed by the placement thread (RECORD: a row per file).
    late_writes: list[tuple[str, Callable[[], bytes], int]] = field(default_factory=list)

    def destinations(self) -> list[str]:
        """Every path the unit creates: linked files, written ones, late ones."""
        dsts = [link[1] for link in self.links] + [write[0] for write in self.writes]
        return dsts + [write[0] for write in self.late_writes]


def place(dirs: list[str], units: list[Unit], linker: Linker) -> dict[str, list[str]]:
    """Create *dirs* (parents first), then place every unit; ``{sha256: changed members}`` of
    the trees found changed (nothing of theirs from the first change on is placed), else {}."""
    changed: dict[str, list[str]] = {}
    if sum(len(unit.links) for unit in units) < PARALLEL_PLACE_MIN:
        for directory in dirs:
            os.mkdir(directory)
        for unit in units:
            _place_unit(unit, linker, changed)
        return changed
    by_depth: dict[int, list[str]] = {}
    for directory in dirs:
        by_depth.setdefault(directory.count("/"), []).append(directory)

    def mkdirs(chunk: list[str]) -> None:
        for directory in chunk:
            os.mkdir(directory)

    with ThreadPoolExecutor(PLACE_THREADS, thread_name_prefix="satchel-place") as pool:
        for depth in sorted(by_depth):
            level, k = by_depth[depth], PLACE_THREADS
            chunks = [level[i * len(level) // k : (i + 1) * len(level) // k] for i in range(k)]
            _wait_all(pool, mkdirs, chunks)
        largest_first = sorted(units, key=lambda unit: len(unit.links), reverse=True)
        _wait_all(pool, lambda unit: _place_unit(unit, linker, changed), largest_first)
    return changed


def _wait_all(pool: ThreadPoolExecutor, work: Callable[[Any], None], items: list[Any]) -> None:
    """*work* on each of *items* in *pool*; the first error once none is still running."""
    futures = [pool.submit(work, item) for item in items if item]
    wait(futures)
    for future in futures:
        future.result()


def _place_unit(unit: Unit, linker: Linker, changed: dict[str, list[str]]) -> None:
    """Check and place one wheel's files, then write its own; record its changed members."""
    if not unit.stamped:
        changed[unit.sha256] = [NO_STAMPS]
        return
    found: list[str] = []
    base = unit.tree
    lstat = os.lstat
    strategy = linker.strategy
    current: str | None = None
    fd = -1
    try:
        for member, dst, mode, (size, mtime_ns, inode) in unit.links:
            parent, _, name = member.rpartition("/")
            if parent != current:
                if fd >= 0:
                    os.close(fd)
                    fd = -1
                current = parent
                with contextlib.suppress(OSError):  # missing, not a directory, unreadable
                    fd = os.open(base + parent, _DIRECTORY)
            try:
                st = lstat(name, dir_fd=fd) if fd >= 0 else None
            except OSError:  # whatever the tree no longer lets us see counts as changed
                st = None
            if st is None or st.st_mtime_ns != mtime_ns or st.st_size != size or st.st_ino != inode:
                found.append(member)
                if len(found) >= _MAX_NAMED:
                    break
                continue
            if found:
                continue  # only checking now: the install is rolled back anyway
            if strategy is None:
                linker.place(name, dst, mode, fd)
                strategy = linker.strategy
                continue
            try:
                strategy(name, dst, mode, fd)
            except OSError as exc:
                if not linker.recoverable(exc):
                    raise
                linker.place(name, dst, mode, fd)
                strategy = linker.strategy
    finally:
        if fd >= 0:
            os.close(fd)
    if found:
        changed[unit.sha256] = found
        return
    writes = unit.writes + [(dst, make(), mode) for dst, make, mode in unit.late_writes]
    for dst, data, mode in writes:
        out = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        try:
            os.write(out, data)
            os.fchmod(out, mode)
        finally:
            os.close(out)
