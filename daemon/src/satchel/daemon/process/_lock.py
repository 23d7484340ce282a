"""Single instance: an flock held for the daemon's whole life, with the holder's pid inside.

Why flock and not a pid file alone: a pid file outlives a `kill -9`, and the pid may since have
been reused by an unrelated process, so "is the pid alive?" is a guess. An flock is released by
the kernel the instant its holder dies, however it dies, so holding it *is* being the one daemon.
The pid written into the file, and the socket the holder listens on (a second line, once it
does), are only for the message the second daemon prints: started from a shell whose
``XDG_RUNTIME_DIR`` differs, it looked for the socket elsewhere, and `satchel stop` from that
shell would not reach the one running.

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

    def __init__(
        self,
        lock_file: Path,
        pid: int | None,
        socket: str | None = None,
        own_socket: Path | None = None,
    ) -> None:
        who = f"pid {pid}" if pid is not None else "a process whose pid is not recorded yet"
        kill = f"`kill {pid or '<pid>'}`"
        if socket is not None and own_socket is not None and socket != str(own_socket):
            super().__init__(
                f"satcheld is already running ({who}, lock {lock_file}) and listens on {socket},"
                f" not on {own_socket} (this shell's XDG_RUNTIME_DIR or --socket differs from"
                f" the one it was started from): use it with `satchel --socket {socket} ...`"
                f" (or SATCHEL_SOCKET), or stop it with `satchel --socket {socket} stop`"
                f" (or {kill}) before starting another"
            )
        else:
            super().__init__(
                f"satcheld is already running ({who}, lock {lock_file}); "
                f"stop it with `satchel stop` (or {kill}) before starting another"
            )
        self.pid = pid


class InstanceLock:
    """The daemon's lock file; `acquire()` once at start, keep the object until exit."""

    def __init__(self, path: Path, socket: Path | None = None) -> None:
        self.path = path
        #: The socket this daemon means to listen on (for the message of `AlreadyRunning`).
        self.socket = socket
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
            pid, socket = _read_holder(fd)
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise AlreadyRunning(self.path, pid, socket, self.socket) from None
            raise StartupError(f"cannot lock {self.path}: {exc.strerror}") from exc
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def record_socket(self, socket: Path) -> None:
        """Write the socket the daemon listens on after its pid (for a second daemon's error)."""
        if self._fd is not None:
            os.pwrite(self._fd, f"{os.getpid()}\n{socket}\n".encode(), 0)

    def release(self) -> None:
        """Release the lock (process exit would too; explicit release keeps tests honest)."""
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.close(self._fd)
            self._fd = None


def _read_holder(fd: int) -> tuple[int | None, str | None]:
    """The holder's pid and socket, as far as it recorded them."""
    try:
        text = os.pread(fd, 4096, 0).decode("utf-8", "replace")
    except OSError:
        return None, None
    lines = text.split("\n")
    pid = int(lines[0]) if lines[0].strip().isdigit() else None
    socket = lines[1] if len(lines) > 2 and lines[1].startswith("/") else None
    return pid, socket
