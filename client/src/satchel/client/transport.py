"""A blocking Unix-socket stream built on `_socket`, for a client that must start fast.

Why `_socket` and not `socket`: the `socket` module imports `enum` (and with it a few ms of
class construction) only to give constants pretty names. The client runs once per shell command,
so every millisecond of import is paid by the user on every call; `_socket` is the C module that
`socket` wraps and offers everything a blocking AF_UNIX client needs.

Long socket paths (over `sun_path`'s ~107 bytes) are reached through
`satchel.protocol.locations.UnixAddress`, the same helper the daemon binds with.
"""

from __future__ import annotations

import _socket

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
    path that is not a socket all mean the same thing to the caller: nobody is serving.
    """
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
    return Stream(sock, path)
