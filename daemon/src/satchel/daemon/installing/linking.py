"""Put a cached file into an environment: reflink, hard link or copy.

Modes, fastest first:

``clone``
    A copy-on-write reflink (Linux ``ioctl(FICLONE)`` on btrfs, XFS, bcachefs, ...; macOS
    ``clonefile`` on APFS). A new inode sharing the cached blocks: as cheap as a link, as safe as
    a copy. Unsupported filesystems (ext4, tmpfs) refuse it.
``hardlink``
    ``link(2)``: one directory entry, no data written. **Caveat:** the environment's file *is*
    the cache's file. Editing it in place (``open(path, "w")``, ``sed -i`` without rename,
    patching a site-packages file in an editor that writes in place) would edit the cached copy
    for every environment linked to it. Satchel makes cached files read-only (0400/0500), so such
    an edit fails with "permission denied" instead of spreading, except for root, whom the kernel
    lets write anyway. Tools that replace files by writing a new file and renaming it over
    (pip, uv, installers, most editors) are unaffected: the rename breaks the link for that
    environment only. Use ``copy`` or ``clone`` for environments you intend to patch.
``copy``
    A full copy (``copy_file_range``/``sendfile`` in the kernel where possible).
``auto``
    clone, else hardlink, else copy, decided once per (source filesystem, destination
    filesystem) pair from the first file and cached for the process lifetime, so the decision
    costs one failed syscall, not one per file.

Durability: nothing here fsyncs. An environment is a staged, rebuildable projection of the
cache (which *is* durable); the installer's journal makes an interrupted install roll back, and
fsyncing 11,000 files would cost seconds for no recoverable benefit.
"""

# Paths are plain strings and os calls on purpose: these loops run per file, 10^4 times per
# install, where pathlib objects cost several microseconds each.
# ruff: noqa: PTH101, PTH108, PTH116, PTH120

from __future__ import annotations

import errno
import fcntl
import os
import sys
import threading
from collections.abc import Callable
from typing import Literal

__all__ = [
    "LINK_MODES",
    "LinkMode",
    "Linker",
    "Strategy",
    "clone_file",
    "copy_file",
]

LinkMode = Literal["auto", "clone", "hardlink", "copy"]
LINK_MODES: tuple[LinkMode, ...] = ("auto", "clone", "hardlink", "copy")

_FICLONE = 0x40049409  # _IOW(0x94, 9, int) from linux/fs.h
#: errnos meaning "this filesystem pair cannot do that", as opposed to a real failure.
_UNSUPPORTED = frozenset(
    {
        errno.EOPNOTSUPP,
        errno.ENOTSUP,
        errno.EXDEV,
        errno.EINVAL,
        errno.ENOTTY,
        errno.ENOSYS,
        errno.EPERM,
        errno.EMLINK,
        errno.EBADF,
    }
)

_clonefileat = None
_AT_FDCWD_DARWIN = -2
if sys.platform == "darwin":  # pragma: no cover - exercised on macOS only
    import ctypes

    _libc = ctypes.CDLL(None, use_errno=True)
    _clonefileat = _libc.clonefileat
    _clonefileat.argtypes = (
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_uint32,
    )


def clone_file(name: str, dst: str, mode: int, src_dir: int | None = None) -> None:
    """Reflink *name* (relative to the directory *src_dir*, else a path) to a new *dst*;
    OSError (EOPNOTSUPP, EXDEV, ...) when unsupported."""
    if _clonefileat is not None:  # pragma: no cover - macOS
        import ctypes

        at = _AT_FDCWD_DARWIN if src_dir is None else src_dir
        if _clonefileat(at, os.fsencode(name), _AT_FDCWD_DARWIN, os.fsencode(dst), 0) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), dst)
        os.chmod(dst, mode)
        return
    if not sys.platform.startswith("linux"):
        raise OSError(errno.EOPNOTSUPP, "reflinks are not supported on this platform", dst)
    src_fd = os.open(name, os.O_RDONLY, dir_fd=src_dir)
    try:
        dst_fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        try:
            fcntl.ioctl(dst_fd, _FICLONE, src_fd)
        except BaseException:
            os.close(dst_fd)
            os.unlink(dst)
            raise
        os.close(dst_fd)
    finally:
        os.close(src_fd)


def copy_file(name: str, dst: str, mode: int, src_dir: int | None = None) -> None:
    """Copy *name* (relative to the directory *src_dir*, else a path) to a new *dst* with
    *mode*, in the kernel when possible."""
    src_fd = os.open(name, os.O_RDONLY, dir_fd=src_dir)
    try:
        dst_fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        try:
            remaining = os.fstat(src_fd).st_size
            copier = getattr(os, "copy_file_range", None)
            while remaining > 0:
                try:
                    if copier is not None:
                        n = copier(src_fd, dst_fd, remaining)
                    else:
                        n = os.sendfile(dst_fd, src_fd, None, remaining)
                except OSError as exc:
                    if copier is None or exc.errno not in _UNSUPPORTED:
                        raise
                    copier = None
                    continue
                if n == 0:
                    break
                remaining -= n
            os.fchmod(dst_fd, mode)  # the umask must not strip what the wheel asked for
        finally:
            os.close(dst_fd)
    finally:
        os.close(src_fd)


def _hardlink(name: str, dst: str, mode: int, src_dir: int | None = None) -> None:
    os.link(name, dst, src_dir_fd=src_dir)


#: How one file is placed: ``(name, dst, mode, src_dir)``, *name* relative to the open directory
#: *src_dir* (or a path when it is None). Relative names spare the kernel a walk of the whole
#: cache path per file (the installer has the directory open already for its stamp check).
Strategy = Callable[[str, str, int, "int | None"], None]
_STRATEGIES: dict[LinkMode, Strategy] = {
    "clone": clone_file,
    "hardlink": _hardlink,
    "copy": copy_file,
}
_AUTO_ORDER: tuple[LinkMode, ...] = ("clone", "hardlink", "copy")
_detected: dict[tuple[int, int], LinkMode] = {}
_detected_lock = threading.Lock()


class Linker:
    """Places files with one mode; with ``auto``, resolves the mode once per filesystem pair.

    *mode* for each file is the mode a copy or clone gets (0644 / 0755); a hard link shares the
    cached inode's read-only, owner-only mode instead (0400 / 0500: the user who owns the
    environment reads and runs it; see `satchel.daemon.process._privacy`).

    The hot loop (`satchel.daemon.installing._placement`) calls `strategy` directly once it is
    known and `place` for the first file and after a failure. Several threads may share one
    Linker.
    """

    def __init__(self, mode: LinkMode = "auto") -> None:
        if mode not in LINK_MODES:
            raise ValueError(f"unknown link mode {mode!r}; choose from {', '.join(LINK_MODES)}")
        self.requested: LinkMode = mode
        self.used: set[LinkMode] = set()
        #: The strategy of the mode in use, once `place` has placed a file (None before).
        self.strategy: Strategy | None = None

    def _resolve(self, name: str, dst: str, file_mode: int, src_dir: int | None) -> LinkMode:
        """Place the first file of a filesystem pair, learning which mode works."""
        key = (os.stat(name, dir_fd=src_dir).st_dev, os.stat(os.path.dirname(dst)).st_dev)
        with _detected_lock:
            known = _detected.get(key)
        if known is not None:
            _STRATEGIES[known](name, dst, file_mode, src_dir)
            return known
        for candidate in _AUTO_ORDER:
            try:
                _STRATEGIES[candidate](name, dst, file_mode, src_dir)
            except OSError as exc:
                if exc.errno not in _UNSUPPORTED or candidate == "copy":
                    raise
                continue
            with _detected_lock:
                _detected[key] = candidate
            return candidate
        raise OSError(errno.EIO, "no link mode worked", dst)  # pragma: no cover - copy works

    def place(self, name: str, dst: str, file_mode: int, src_dir: int | None = None) -> None:
        """Place *name* (relative to the open directory *src_dir*, else a path) at *dst*, which
        must not exist while its directory must; *file_mode* is what a copy or clone gets.

        The slow path, for the first file and after `strategy` failed with an error
        `recoverable` says ``auto`` can recover from: it learns the mode and sets `strategy`.
        """
        if self.requested == "auto":
            chosen = self._resolve(name, dst, file_mode, src_dir)
        else:
            chosen = self.requested
            _STRATEGIES[chosen](name, dst, file_mode, src_dir)
        self.used.add(chosen)
        self.strategy = _STRATEGIES[chosen]

    def recoverable(self, exc: OSError) -> bool:
        """Whether `place` may retry a file `strategy` failed on: with ``auto``, a tree or
        scheme directory on another mount is re-detected for the new pair instead of failing."""
        return self.requested == "auto" and exc.errno in _UNSUPPORTED
