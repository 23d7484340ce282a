"""Where client and daemon meet: the runtime dir, the socket path, the state dir.

Both sides must compute the same rendezvous from the same environment. The daemon uses
platformdirs for everything else, but the client starts once per shell command and cannot afford
to import it, so this module re-derives the three locations the client needs with the stdlib
only (`os`, `sys`; `tempfile` only on the rare fallback path), following platformdirs' rules:

Linux and other Unixes
    runtime: ``$XDG_RUNTIME_DIR`` when it is absolute and names a real directory (not a symlink)
    owned by us with mode 0700 (missing is accepted: the daemon creates it), below parents no
    other user can replace; else ``/run/user/<uid>`` if it passes the same check (and exists);
    else ``<tempdir>/runtime-<uid>``.
    state: ``$XDG_STATE_HOME`` when absolute, else ``~/.local/state``.
macOS
    runtime: ``$XDG_RUNTIME_DIR`` under the same check (no parent check), else
    ``~/Library/Caches/TemporaryItems``; state: ``$XDG_STATE_HOME`` or
    ``~/Library/Application Support``.

Each gets ``/satchel`` appended. ``SATCHEL_SOCKET`` overrides the socket path outright.
`tests/daemon/test_locations.py` checks these answers against platformdirs itself.

Long socket paths: ``sun_path`` holds 108 bytes on Linux and 104 on macOS, NUL included, and a
socket under a deep ``XDG_RUNTIME_DIR`` (or a test's temporary directory) can exceed that.
`UnixAddress` gives bind/connect a short *equivalent* address instead of failing: on Linux
``/proc/self/fd/<dirfd>/<name>`` with the directory opened ``O_PATH`` (the kernel resolves the
magic link to the directory, so bind creates the socket file in the right place and connect finds
it); elsewhere it ``chdir``s into the directory and uses the bare name, restoring the working
directory afterwards. That is only safe while no other thread depends on the working directory:
the daemon binds before it starts any thread, the client is single-threaded. A socket *name*
that alone is too long is reported as a `SocketPathTooLong` naming the length.
"""

# os.path on purpose: importing pathlib costs the client start-up time.
# ruff: noqa: PTH100, PTH111, PTH112, PTH116, PTH118, PTH120
from __future__ import annotations

import os
import sys

__all__ = [
    "APP_NAME",
    "MAX_SUN_PATH",
    "SOCKET_ENV",
    "SOCKET_NAME",
    "SocketPathTooLong",
    "UnixAddress",
    "runtime_base",
    "runtime_dir",
    "socket_path",
    "state_dir",
]

APP_NAME = "satchel"
SOCKET_NAME = "satchel.sock"
SOCKET_ENV = "SATCHEL_SOCKET"

#: The longest path (in bytes, without the terminating NUL) that fits in `sun_path`.
MAX_SUN_PATH = 103 if sys.platform == "darwin" else 107

_PRIVATE_MODE = 0o700
_S_IFMT = 0o170000
_S_IFDIR = 0o040000
_S_IWOTH = 0o002
_S_ISVTX = 0o1000


def runtime_dir() -> str:
    """The daemon's runtime directory, ``<runtime base>/satchel`` (holds the socket)."""
    return os.path.join(runtime_base(), APP_NAME)


def socket_path() -> str:
    """The daemon's socket: ``$SATCHEL_SOCKET`` or ``<runtime dir>/satchel.sock``."""
    override = os.environ.get(SOCKET_ENV, "")
    if override:
        return os.path.abspath(os.path.expanduser(override))
    return os.path.join(runtime_dir(), SOCKET_NAME)


def state_dir() -> str:
    """The daemon's state directory (lock, exit records, autostart log)."""
    base = _xdg_dir("XDG_STATE_HOME")
    if base is None:
        home = _home()
        base = (
            os.path.join(home, "Library", "Application Support")
            if sys.platform == "darwin"
            else os.path.join(home, ".local", "state")
        )
    return os.path.join(base, APP_NAME)


def runtime_base() -> str:
    """The per-user runtime directory itself (platformdirs' ``user_runtime_dir`` without app)."""
    xdg = _xdg_dir("XDG_RUNTIME_DIR")
    if sys.platform == "darwin":
        if xdg is not None and _dir_problem(xdg, missing_ok=True) is None:
            return xdg
        return os.path.join(_home(), "Library", "Caches", "TemporaryItems")
    if (
        xdg is not None
        and _dir_problem(xdg, missing_ok=True) is None
        and _parent_problem(xdg) is None
    ):
        return xdg
    uid = os.geteuid()
    if sys.platform.startswith("openbsd"):
        default = f"/tmp/run/user/{uid}"
    elif sys.platform.startswith(("freebsd", "netbsd")):
        default = f"/var/run/user/{uid}"
    else:
        default = f"/run/user/{uid}"
    if _dir_problem(default, missing_ok=False) is None:
        return default
    import tempfile  # rare path: costs a few ms of imports

    return os.path.join(tempfile.gettempdir(), f"runtime-{uid}")


class SocketPathTooLong(OSError):
    """The socket's file name alone does not fit in ``sun_path``."""


class UnixAddress:
    """A context manager yielding an address for `bind`/`connect` that reaches *path*.

    Usage::

        with UnixAddress(path) as address:
            sock.connect(address)

    Short paths are passed through unchanged; long ones are shortened as the module docstring
    describes. The shortcut only exists inside the ``with`` block.
    """

    __slots__ = ("_dirfd", "_path", "_previous_cwd")

    def __init__(self, path: str) -> None:
        self._path = path
        self._dirfd: int | None = None
        self._previous_cwd: int | None = None

    def __enter__(self) -> str:
        path = self._path
        if len(os.fsencode(path)) <= MAX_SUN_PATH:
            return path
        directory, name = os.path.split(path)
        directory = directory or "."
        o_path = getattr(os, "O_PATH", 0)
        if o_path and os.path.isdir("/proc/self/fd"):
            self._dirfd = os.open(directory, o_path | os.O_DIRECTORY | os.O_CLOEXEC)
            short = f"/proc/self/fd/{self._dirfd}/{name}"
        else:
            self._previous_cwd = os.open(".", os.O_RDONLY | os.O_CLOEXEC)
            os.chdir(directory)
            short = name
        if len(os.fsencode(short)) > MAX_SUN_PATH:
            self.__exit__()
            raise SocketPathTooLong(
                f"socket name {name!r} is {len(os.fsencode(name))} bytes; a Unix socket address "
                f"holds at most {MAX_SUN_PATH} bytes (set {SOCKET_ENV} to a shorter path)"
            )
        return short

    def __exit__(self, *exc: object) -> None:
        if self._dirfd is not None:
            os.close(self._dirfd)
            self._dirfd = None
        if self._previous_cwd is not None:
            try:
                os.fchdir(self._previous_cwd)
            finally:
                os.close(self._previous_cwd)
                self._previous_cwd = None


def _xdg_dir(name: str) -> str | None:
    """An XDG variable's value when it is an absolute path (the spec ignores relative ones)."""
    value = os.environ.get(name, "")
    return value if value.startswith("/") else None


def _home() -> str:
    home = os.environ.get("HOME", "")
    if home.startswith("/"):
        return home
    import pwd

    return pwd.getpwuid(os.getuid()).pw_dir


def _dir_problem(path: str, *, missing_ok: bool) -> str | None:
    """Why *path* is not a private runtime directory of ours, or None (platformdirs' check)."""
    try:
        info = os.lstat(path.rstrip("/") or "/")
    except FileNotFoundError:
        return None if missing_ok else f"{path} is missing"
    except OSError as exc:
        return f"{path} cannot be checked: {exc.strerror}"
    if info.st_mode & _S_IFMT != _S_IFDIR:
        return f"{path} is not a directory (or is a symlink)"
    if info.st_uid != os.geteuid():
        return f"{path} is owned by uid {info.st_uid}, not {os.geteuid()}"
    if info.st_mode & 0o777 != _PRIVATE_MODE:
        return f"{path} has mode {info.st_mode & 0o777:04o}, not 0700"
    return None


def _parent_problem(path: str) -> str | None:
    """Whether another user could replace *path* through one of its parents."""
    parents = []
    current = os.path.dirname(os.path.normpath(path))
    while True:
        parents.append(current)
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    in_shared_dir = False
    uid = os.geteuid()
    for parent in reversed(parents):
        try:
            if in_shared_dir and (owner := os.lstat(parent).st_uid) not in {0, uid}:
                return f"{path} is below {parent}, owned by uid {owner}"
            mode = os.stat(parent).st_mode
        except OSError:
            return None
        in_shared_dir = bool(mode & _S_IWOTH)
        if in_shared_dir and not mode & _S_ISVTX:
            return f"{path} is below {parent}, writable by every user"
    return None
