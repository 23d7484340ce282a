"""Single instance: an flock held for the daemon's whole life, with the holder's pid inside.

Why flock and not a pid file alone: a pid file outlives a `kill -9`, and the pid may since have
been reused by an unrelated process, so "is the pid alive?" is a guess. An flock is released by
the kernel the instant its holder dies, however it dies, so holding it *is* being the one daemon.
The pid written into the file is only for the message the second daemon prints.

Why the stale socket is unlinked only under this lock: a daemon that finds a socket file at start
cannot tell whether it belongs to a crashed daemon or to a live one still starting up. Only the
lock holder may decide, and a live daemon would hold the lock. (`activation` additionally probes
the socket before unlinking, for sockets that belong to a daemon with a different state dir.)
"""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

from satchel.daemon.services.paths import StartupError

__all__ = ["AlreadyRunning", "InstanceLock"]


class AlreadyRunning(StartupError):
    """Another satcheld holds the lock on the same state."""

    def __init__(self, lock_file: Path, pid: int | None) -> None:
        who = f"pid {pid}" if pid is not None else "a process whose pid is not recorded yet"
        super().__init__(
            f"satcheld is already running ({who}, lock {lock_file}); "
            f"stop it with `satchel stop` (or `kill {pid or '<pid>'}`) before starting another"
        )
        self.pid = pid


class InstanceLock:
    """The daemon's lock file; `acquire()` once at start, keep the object until exit."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock or raise `AlreadyRunning` naming the holder's pid."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise StartupError(f"cannot open lock file {self.path}: {exc.strerror}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            pid = _read_pid(fd)
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise AlreadyRunning(self.path, pid) from None
            raise StartupError(f"cannot lock {self.path}: {exc.strerror}") from exc
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Release the lock (process exit would too; explicit release keeps tests honest)."""
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.close(self._fd)
            self._fd = None


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
