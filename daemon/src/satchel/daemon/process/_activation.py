"""Where the listening socket comes from: systemd, launchd, or our own bind.

systemd socket activation (sd_listen_fds(3), on the stdlib): ``LISTEN_PID`` must equal our pid
(strictly: the variables leak into children otherwise and a grandchild must not steal the
sockets), ``LISTEN_FDS`` says how many descriptors start at fd 3, ``LISTEN_FDNAMES`` optionally
names them. The variables are removed after use for the same reason. Sockets handed to us belong
to the service manager: we never chmod or unlink them.

launchd: ``launch_activate_socket(name, &fds, &count)`` from libSystem via ctypes, for the
``Sockets`` key of our plist (name `LAUNCHD_SOCKET_NAME`). Any failure (not started by launchd,
the name not in the plist) falls back to binding ourselves, which is also what a manual or
autostarted run does.

Binding ourselves: the socket directory must be private (`paths.ensure_private_dir`), an existing
socket file is removed only if nobody answers on it, and only by the holder of the instance lock
(the caller guarantees that), and the new socket is made 0600 before `listen`, so there is no
instant where another user could connect.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import socket
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

from satchel.daemon.services.daemon import ActivationMode
from satchel.daemon.services.paths import SOCKET_MODE, Paths, StartupError, ensure_private_dir
from satchel.protocol.locations import SocketPathTooLong, UnixAddress

__all__ = [
    "LAUNCHD_SOCKET_NAME",
    "LISTEN_BACKLOG",
    "Listeners",
    "bind_unix",
    "launchd_sockets",
    "open_listeners",
    "systemd_sockets",
]

#: Matches the ``Sockets`` dictionary key in the launchd plist.
LAUNCHD_SOCKET_NAME = "Listeners"

#: Many clients may connect at once (32 shells autostarting, parallel tool runs); a short backlog
#: turns a burst into connection refusals or retransmits. The kernel caps it at somaxconn anyway.
LISTEN_BACKLOG = 4096

SD_LISTEN_FDS_START = 3

log = logging.getLogger(__name__)


@dataclass
class Listeners:
    """The listening sockets and how we got them."""

    sockets: list[socket.socket]
    mode: ActivationMode
    #: The path of a socket file we created (and must unlink at exit), or None when the service
    #: manager owns it.
    created_path: str | None = None
    created_identity: tuple[int, int] | None = None

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()

    def remove_created_socket(self) -> None:
        """Unlink the socket file we bound, if it is still ours (same inode)."""
        path, self.created_path = self.created_path, None
        if path is None:
            return
        with contextlib.suppress(FileNotFoundError):
            info = os.lstat(path)
            if (info.st_dev, info.st_ino) == self.created_identity:
                Path(path).unlink()
            else:
                log.warning("not removing %s: the socket file was replaced by someone else", path)


def systemd_sockets(
    environ: os._Environ[str] | dict[str, str] | None = None,
) -> list[socket.socket] | None:
    """The sockets systemd passed us, or None when we were not socket-activated.

    Raises `StartupError` when the variables are present for us but unusable (a wrong socket
    type), because silently binding our own socket would leave systemd's one dead.
    """
    env = os.environ if environ is None else environ
    pid_text = env.get("LISTEN_PID", "")
    fds_text = env.get("LISTEN_FDS", "")
    names_text = env.get("LISTEN_FDNAMES", "")
    for key in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        env.pop(key, None)
    if not pid_text or not fds_text:
        return None
    if not pid_text.isdigit() or int(pid_text) != os.getpid():
        log.debug("LISTEN_PID=%s is not us (%d): not socket-activated", pid_text, os.getpid())
        return None
    if not fds_text.isdigit() or int(fds_text) == 0:
        return None
    count = int(fds_text)
    names = names_text.split(":") if names_text else []
    sockets = []
    for index, fd in enumerate(range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + count)):
        os.set_inheritable(fd, False)
        name = names[index] if index < len(names) else "unknown"
        try:
            sock = socket.socket(fileno=fd)
        except OSError as exc:
            raise StartupError(
                f"systemd passed fd {fd} ({name}) that is not a socket: {exc}"
            ) from exc
        if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM:
            raise StartupError(
                f"systemd passed fd {fd} ({name}) of family {sock.family!r} type {sock.type!r}; "
                "satcheld needs a Unix stream socket (ListenStream=%t/satchel/satchel.sock)"
            )
        if not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
            raise StartupError(f"systemd passed fd {fd} ({name}) that is not listening")
        sockets.append(sock)
    return sockets


def launchd_sockets(name: str = LAUNCHD_SOCKET_NAME) -> list[socket.socket] | None:
    """The sockets launchd holds for us under *name*, or None (not macOS, not launchd)."""
    if sys.platform != "darwin":
        return None
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    try:
        activate = libc.launch_activate_socket
    except AttributeError:
        return None
    fds = ctypes.POINTER(ctypes.c_int)()
    count = ctypes.c_size_t(0)
    activate.argtypes = [
        ctypes.c_char_p,
        ctypes.POINTER(ctypes.POINTER(ctypes.c_int)),
        ctypes.POINTER(ctypes.c_size_t),
    ]
    activate.restype = ctypes.c_int
    result = activate(name.encode(), ctypes.byref(fds), ctypes.byref(count))
    if result != 0:
        # ESRCH: not managed by launchd; ENOENT: no such socket name; either way, bind ourselves.
        log.debug("launch_activate_socket(%s): %s", name, os.strerror(result))
        return None
    try:
        sockets = []
        for i in range(count.value):
            os.set_inheritable(fds[i], False)
            sockets.append(socket.socket(fileno=fds[i]))
        return sockets
    finally:
        libc.free.argtypes = [ctypes.c_void_p]
        libc.free(fds)


def bind_unix(path: str, backlog: int = LISTEN_BACKLOG) -> socket.socket:
    """Bind and listen on *path* (mode 0600 before listen); long paths via `UnixAddress`."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        # fchmod on a Unix socket does not change the file's mode on Linux, so the umask makes
        # the file 0600 at creation (no window), and chmod below makes it exact regardless.
        old_umask = os.umask(0o177)
        try:
            with UnixAddress(path) as address:
                sock.bind(address)
        finally:
            os.umask(old_umask)
        Path(path).chmod(SOCKET_MODE)
        sock.listen(backlog)
    except SocketPathTooLong as exc:
        sock.close()
        raise StartupError(str(exc)) from exc
    except OSError as exc:
        sock.close()
        raise StartupError(f"cannot listen on {path}: {exc.strerror or exc}") from exc
    return sock


def _remove_stale_socket(path: str) -> None:
    """Unlink a leftover socket file at *path* if nobody answers on it (caller holds the lock)."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(info.st_mode):
        raise StartupError(
            f"{path} exists and is not a socket; refusing to replace it (remove it yourself "
            "if it is not needed)"
        )
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        with UnixAddress(path) as address:
            probe.connect(address)
    except OSError as exc:
        if exc.errno not in (errno.ECONNREFUSED, errno.ENOENT):
            raise StartupError(f"cannot check existing socket {path}: {exc.strerror}") from exc
    else:
        raise StartupError(
            f"another daemon is already serving on {path} (with a different state directory); "
            "stop it or choose another socket with --socket"
        )
    finally:
        probe.close()
    log.info("removing stale socket %s left by a previous daemon", path)
    with contextlib.suppress(FileNotFoundError):
        Path(path).unlink()


def open_listeners(paths: Paths, *, autostarted: bool) -> Listeners:
    """Get the listening socket(s): systemd, then launchd, then bind *paths.socket* ourselves.

    The caller must hold the instance lock (stale-socket removal depends on it).
    """
    sockets = systemd_sockets()
    if sockets is not None:
        return Listeners(sockets, "systemd")
    sockets = launchd_sockets()
    if sockets:
        return Listeners(sockets, "launchd")
    ensure_private_dir(paths.socket_dir)
    path = str(paths.socket)
    _remove_stale_socket(path)
    sock = bind_unix(path)
    info = os.lstat(path)
    return Listeners(
        [sock],
        "autostart" if autostarted else "manual",
        created_path=path,
        created_identity=(info.st_dev, info.st_ino),
    )
