"""Durable file-system writes: the only way the daemon changes state that must survive a crash.

A write is durable and atomic when the bytes reach a temporary file in the *same directory* (so the
rename cannot cross file systems), the file is fsynced, renamed over the destination, and the
directory is fsynced (so the rename itself survives power loss). Readers therefore see the old file
or the new one, never half of either. This is what lets `kill -9` at any instant leave a consistent
cache.

ENOSPC and EDQUOT are turned into `DiskFull` naming the path, so a full disk reads as a full disk.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import os
import secrets
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import cast

from satchel.daemon.errors import DiskFull

__all__ = [
    "TEMP_PREFIX",
    "Unsynced",
    "atomic_write",
    "disk_full_guard",
    "fsync_dir",
    "fsync_tree",
    "replace_durably",
    "sync_dir",
    "syncfs",
    "temp_path_for",
]

#: Temporary files carry this prefix so that start-up sweeps and `cache verify` can recognise and
#: delete leftovers of a crash without ever touching a committed file.
TEMP_PREFIX = ".satchel-tmp-"

_DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


@contextlib.contextmanager
def disk_full_guard(path: Path | str) -> Iterator[None]:
    """Translate "no space left" into `DiskFull` naming *path*; other OSErrors pass through."""
    try:
        yield
    except OSError as exc:
        if exc.errno in _DISK_FULL_ERRNOS:
            raise DiskFull(
                f"no space left on device while writing {path}",
                details={"path": str(path), "errno": exc.errno},
            ) from exc
        raise


def temp_path_for(dest: Path) -> Path:
    """A fresh temporary path beside *dest* (same directory, so rename is atomic)."""
    return dest.with_name(f"{TEMP_PREFIX}{dest.name}.{secrets.token_hex(6)}")


def fsync_dir(directory: Path) -> None:
    """Make a rename or unlink inside *directory* durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Unsynced:
    """Directories whose new entries (renames, subdirectories) are not durable yet.

    A batch of stored files (one prefetch) makes its directories durable together, each once,
    with `sync` before it reports success, rather than one directory fsync per file and step.
    Only directory entries wait: a file's bytes are fsynced before it is renamed into place, so
    a power loss before `sync` can lose a whole new file, never leave a partial one.
    """

    def __init__(self) -> None:
        self._dirs: set[Path] = set()
        self._lock = threading.Lock()
        #: Held through a whole `sync`: a second one returns only once the first, which may
        #: have taken its directories, has made them durable.
        self._syncing = threading.Lock()

    def add(self, directory: Path) -> None:
        with self._lock:
            self._dirs.add(directory)

    def pending(self) -> bool:
        """Whether directories wait for a `sync`."""
        with self._lock:
            return bool(self._dirs)

    def sync(self) -> int:
        """fsync every directory added so far (worker thread); how many there were. Once it
        returns, every directory added before the call is durable, whoever synced it."""
        with self._syncing:
            with self._lock:
                dirs, self._dirs = self._dirs, set()
            for directory in sorted(dirs, key=lambda d: len(d.parts)):  # parents first
                with contextlib.suppress(FileNotFoundError):  # removed since (collected)
                    fsync_dir(directory)
            return len(dirs)


def sync_dir(directory: Path, unsynced: Unsynced | None) -> None:
    """`fsync_dir` now, or (with *unsynced*) at its next `Unsynced.sync`."""
    if unsynced is None:
        fsync_dir(directory)
    else:
        unsynced.add(directory)


def replace_durably(tmp: Path, dest: Path, unsynced: Unsynced | None = None) -> None:
    """Rename an already-fsynced *tmp* over *dest* and fsync the directory (*unsynced*: later,
    with the batch)."""
    tmp.replace(dest)
    sync_dir(dest.parent, unsynced)


def atomic_write(dest: Path, data: bytes, *, mode: int = 0o600) -> None:
    """Write *data* to *dest* atomically and durably (temp file + fsync + rename + dir fsync).

    Private by default (0600, a missing directory 0700): what the daemon writes is the user's.
    """
    dest.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = temp_path_for(dest)
    with disk_full_guard(dest):
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
            try:
                view = memoryview(data)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                os.fsync(fd)
            finally:
                os.close(fd)
            replace_durably(tmp, dest)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            raise


@functools.cache
def _libc_syncfs() -> Callable[[int], int] | None:
    """``syncfs(2)`` from the C library, looked up once (None off Linux)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return cast("Callable[[int], int]", libc.syncfs)
    except (OSError, AttributeError):
        return None


def syncfs(directory: Path) -> bool:
    """Flush the whole filesystem holding *directory* in one call; False when unavailable."""
    call = _libc_syncfs()
    if call is None:
        return False
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        return call(fd) == 0
    finally:
        os.close(fd)


def fsync_tree(tree: Path) -> None:
    """fsync every file and directory under *tree* (where `syncfs` is unavailable)."""
    for dirpath, _dirnames, filenames in os.walk(tree):
        for filename in filenames:
            fd = os.open(Path(dirpath, filename), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(Path(dirpath))
