"""What the daemon writes is readable by its user alone: the umask, and tightening old trees.

The cache holds what private indexes served (wheels, unpacked trees, pages and their URLs in the
metadata database and its WAL), the config holds index URLs, the state holds the local index's
token. Other local users must read none of it (issue 11.2). Two parts:

* **Creation.** `set_private_umask` makes the daemon's umask 0o077 at start, so every directory
  and file it creates anywhere gets no group or other bits unless a mode is set explicitly; the
  store, the unpacker and `fsutil.atomic_write` also pass private modes (0700 directories, 0600
  files, 0400/0500 for the read-only blobs and unpacked members) so the rule holds in any
  process. The environments Satchel installs into are the user's own: files hard-linked from the
  cache keep the cache's owner-only mode there (the user, who owns them, reads and runs them;
  other users cannot), copies and clones get the wheel's modes.
* **Tightening.** Caches written by earlier versions have 0755 directories and 0644/0444 files.
  `tighten` walks the cache, config, state and log directories once and removes group and other
  bits from everything the user owns there (symlinks are never followed or changed), then writes
  the `MARKER` file in the state directory. Later starts walk again only when the marker is
  missing or a root directory itself has group or other bits (a `chmod -R` by hand), so a start
  costs a few `stat` calls, not a walk of 10^5 unpacked files.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["MARKER", "PRIVATE_UMASK", "Tightened", "set_private_umask", "tighten"]

log = logging.getLogger(__name__)

#: No group or other bits on anything the daemon creates.
PRIVATE_UMASK = 0o077
#: Written in the state directory after a complete tightening walk; bump the version when what
#: counts as private changes, so every cache is walked once more.
MARKER = "private-v1"
_GROUP_OTHER = 0o077


def set_private_umask() -> int:
    """Set the daemon's umask to `PRIVATE_UMASK`; returns the previous one."""
    return os.umask(PRIVATE_UMASK)


@dataclass
class Tightened:
    """What one walk changed."""

    root: Path
    directories: int = 0
    files: int = 0
    #: Entries with group/other bits that belong to another uid (they cannot be changed).
    foreign: int = 0

    @property
    def changed(self) -> int:
        return self.directories + self.files


def tighten(roots: Iterable[Path], state_dir: Path) -> list[Tightened]:
    """Remove group and other bits under *roots* when needed (module docstring); log and
    return what changed. Call at start-up, under the instance lock, before serving."""
    existing = [root for root in roots if root.is_dir()]
    marker = state_dir / MARKER
    if marker.exists() and not any(_loose(root) for root in existing):
        return []
    results = []
    for root in existing:
        result = Tightened(root)
        _walk(root, result)
        _fix(root, root.stat(), result, is_dir=True)  # the root last: an interrupted walk
        results.append(result)  # leaves it loose, so the next start walks again
        if result.changed:
            log.warning(
                "made %s private: removed group/other permissions from %d directories and "
                "%d files (written by an earlier version, or changed by hand)",
                root,
                result.directories,
                result.files,
            )
        if result.foreign:
            log.warning(
                "%d entries under %s belong to another user and stay readable by others; "
                "remove them or change their owner",
                result.foreign,
                root,
            )
    fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.close(fd)
    return results


def _loose(root: Path) -> bool:
    # stat, not lstat: a root may be a symlink the user made (a cache on another disk).
    return bool(root.stat().st_mode & _GROUP_OTHER)


def _walk(directory: Path, result: Tightened) -> None:
    try:
        entries = list(os.scandir(directory))
    except OSError as exc:
        log.warning("cannot read %s to make it private: %s", directory, exc.strerror)
        return
    for entry in entries:
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if stat.S_ISLNK(info.st_mode):
            continue
        is_dir = stat.S_ISDIR(info.st_mode)
        if is_dir:
            _walk(Path(entry.path), result)
        _fix(Path(entry.path), info, result, is_dir=is_dir)


def _fix(path: Path, info: os.stat_result, result: Tightened, *, is_dir: bool) -> None:
    mode = stat.S_IMODE(info.st_mode)
    if not mode & _GROUP_OTHER:
        return
    if info.st_uid != os.geteuid():
        result.foreign += 1
        return
    try:
        path.chmod(mode & ~_GROUP_OTHER)  # never a symlink: the caller lstat()ed it
    except OSError as exc:
        log.warning("cannot make %s private: %s", path, exc.strerror)
        return
    if is_dir:
        result.directories += 1
    else:
        result.files += 1
