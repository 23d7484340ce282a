"""A blocking Unix-socket stream built on `_socket`, for a client that must start fast.

Why `_socket` and not `socket`: the `socket` module imports `enum` (and with it a few ms of
class construction) only to give constants pretty names. The client runs once per shell command,
so every millisecond of import is paid by the user on every call; `_socket` is the C module that
`socket` wraps and offers everything a blocking AF_UNIX client needs.

Long socket paths (over `sun_path`'s ~107 bytes) are reached through
`satchel.protocol.locations.UnixAddress`, the same helper the daemon binds with.

Who answers (issue 11.3): when no per-user runtime directory exists (containers, `su`, cron, ssh
without logind), the socket lives under the shared temporary directory, where another user may
have created the directory first and be listening in our place. So before a single byte is sent,
`connect` checks that the socket's directory is ours and not writable by group or others, and that
the process at the other end runs as our uid (``SO_PEERCRED`` on Linux, ``LOCAL_PEERCRED`` on
macOS and the BSDs). Either failing raises `Untrusted` naming the path; nothing is sent. Both
checks cost one system call each.
"""

from __future__ import annotations

# os.path on purpose: importing pathlib costs the client start-up time.
# ruff: noqa: PTH116, PTH120
import _socket
import os
import sys

from satchel.protocol.locations import UnixAddress

#: How many bytes one `recv` asks for: large enough that a typical `status` answer arrives in one
#: call, small enough not to over-allocate for a ping.
RECV_SIZE = 65536


class NotRunning(Exception):
    """Nothing accepts connections at the socket path (absent, refused, or not a socket)."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"no daemon is listening on {path} ({reason})")
        self.path = path
        self.reason = reason


class Untrusted(Exception):
    """The socket's directory, or the process listening on it, is not the user's own."""


#: ``SOL_LOCAL``/``LOCAL_PEERCRED`` from <sys/un.h> (macOS, FreeBSD): the peer's ``struct
#: xucred`` (``cr_version``, then ``cr_uid``) for the socket's level 0.
_SOL_LOCAL = 0
_LOCAL_PEERCRED = 0x001
#: ``sizeof(struct xucred)``: version, uid, ngroups (+ padding) and 16 groups.
_XUCRED_SIZE = 76
#: ``sizeof(struct ucred)`` on Linux: pid, uid, gid.
_UCRED_SIZE = 12
#: Group- and other-write bits: whoever has them on the directory can replace the socket.
_GROUP_OTHER_WRITE = 0o022


def check_directory(path: str) -> None:
    """Refuse a socket whose directory another user owns or may write (a missing one passes:
    nothing answers there, and autostart creates it private)."""
    directory = os.path.dirname(path) or "."
    try:
        info = os.stat(directory)
    except OSError:
        return
    uid = os.geteuid()
    if info.st_uid != uid:
        raise Untrusted(
            f"refusing to use the socket {path}: its directory {directory} belongs to uid "
            f"{info.st_uid}, not to you (uid {uid}), so another user may be listening there "
            f"(set XDG_RUNTIME_DIR to a private directory of yours, or SATCHEL_SOCKET)"
        )
    mode = info.st_mode & 0o7777
    if mode & _GROUP_OTHER_WRITE:
        raise Untrusted(
            f"refusing to use the socket {path}: its directory {directory} has mode {mode:04o}, "
            f"writable by other users who could replace the socket (fix: `chmod 700 {directory}`)"
        )


def peer_uid(sock: _socket.socket) -> int:
    """The uid of the process at the other end of a connected Unix socket."""
    if sys.platform.startswith("linux"):
        raw = sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, _UCRED_SIZE)
        return int.from_bytes(raw[4:8], sys.byteorder)
    option = getattr(_socket, "LOCAL_PEERCRED", _LOCAL_PEERCRED)
    raw = sock.getsockopt(_SOL_LOCAL, option, _XUCRED_SIZE)
    return int.from_bytes(raw[4:8], sys.byteorder)


def _check_peer(sock: _socket.socket, path: str) -> None:
    uid = os.geteuid()
    try:
        found = peer_uid(sock)
    except OSError as exc:
        raise Untrusted(
            f"refusing to use the socket {path}: cannot learn who listens there ({exc.strerror})"
        ) from exc
    if found != uid:
        raise Untrusted(
            f"refusing to use the socket {path}: the process listening there runs as uid "
            f"{found}, not as you (uid {uid}); it is not your satcheld, and nothing was sent "
            f"to it (set XDG_RUNTIME_DIR to a private directory of yours, or SATCHEL_SOCKET)"
        )


class Stream:
    """A connected, blocking Unix stream socket with an optional per-operation timeout."""

    __slots__ = ("_sock", "path")

    def __init__(self, sock: _socket.socket, path: str) -> None:
        self._sock = sock
        self.path = path

    def settimeout(self, seconds: float | None) -> None:
        """Bound every following `send_all`/`recv` (None: block forever)."""
        self._sock.settimeout(seconds)

    def send_all(self, data: bytes) -> None:
        self._sock.sendall(data)

    def recv(self) -> bytes:
        """Return the next chunk of bytes; `b""` means the daemon closed the connection."""
        return self._sock.recv(RECV_SIZE)

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def connect(path: str, timeout: float | None = None) -> Stream:
    """Connect to the daemon's socket at `path`, or raise `NotRunning` saying why not.

    A refused connection (a stale socket file left by a crashed daemon), a missing file, or a
    path that is not a socket all mean the same thing to the caller: nobody is serving. A
    directory or a listener that is not the user's own raises `Untrusted` (module docstring).
    """
    check_directory(path)
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        with UnixAddress(path) as address:
            sock.connect(address)
    except (FileNotFoundError, NotADirectoryError) as exc:
        sock.close()
        raise NotRunning(path, "no socket file") from exc
    except ConnectionRefusedError as exc:
        sock.close()
        raise NotRunning(path, "connection refused; stale socket") from exc
    except OSError as exc:
        sock.close()
        # ENOTSOCK / EPROTOTYPE: a regular file or another kind of socket sits at the path.
        raise NotRunning(path, exc.strerror or str(exc)) from exc
    try:
        _check_peer(sock, path)
    except BaseException:
        sock.close()
        raise
    return Stream(sock, path)
