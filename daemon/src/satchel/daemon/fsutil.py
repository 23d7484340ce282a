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
import errno
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

from satchel.daemon.errors import DiskFull

__all__ = [
    "TEMP_PREFIX",
    "atomic_write",
    "disk_full_guard",
    "fsync_dir",
    "replace_durably",
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


def replace_durably(tmp: Path, dest: Path) -> None:
    """Rename an already-fsynced *tmp* over *dest* and fsync the directory."""
    tmp.replace(dest)
    fsync_dir(dest.parent)


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
