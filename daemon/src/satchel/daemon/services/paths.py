"""Every location the daemon uses, and the ownership rules for the ones that guard access.

Cache, config and state directories come from platformdirs (which honours ``XDG_CACHE_HOME``,
``XDG_CONFIG_HOME`` and ``XDG_STATE_HOME`` on Linux). The runtime directory and the socket come
from `satchel.protocol.locations`, the stdlib re-derivation the client uses too, so both sides
always agree on the rendezvous (a test checks it against platformdirs).

Why the runtime directory is checked so strictly: the socket's own mode (0600) is only half of
the access story; whoever controls the directory can replace the socket with their own and
collect the requests (and answers) of the real user. So the directory must be ours and 0700;
anything else is refused at start-up with the path, what we found, and the command that fixes
it. (Peer credentials are checked on every connection as well; see `server`.)
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from satchel.protocol import locations

__all__ = [
    "LOCK_NAME",
    "PRIVATE_DIR_MODE",
    "SOCKET_MODE",
    "Paths",
    "StartupError",
    "ensure_private_dir",
]

PRIVATE_DIR_MODE = 0o700
SOCKET_MODE = 0o600
LOCK_NAME = "satcheld.lock"


class StartupError(Exception):
    """The daemon cannot start; the message is shown to the user as is (and sent to the
    autostarting client through the notify channel)."""


@dataclass(frozen=True, slots=True)
class Paths:
    """The daemon's locations, computed once at start-up."""

    runtime_dir: Path
    socket: Path
    #: False when ``--socket``/``SATCHEL_SOCKET`` chose the socket: its directory is then the
    #: user's business, but it must still be private.
    socket_is_default: bool
    cache_dir: Path
    config_dir: Path
    state_dir: Path
    log_dir: Path

    @property
    def lock_file(self) -> Path:
        """The single-instance lock: in the state dir, because that is what two daemons would
        fight over (the cache and state), whatever sockets they were told to use."""
        return self.state_dir / LOCK_NAME

    @property
    def socket_dir(self) -> Path:
        return self.socket.parent

    @classmethod
    def from_env(cls, socket: str | os.PathLike[str] | None = None) -> Paths:
        """Compute every location from the environment; *socket* overrides the socket path."""
        dirs = platformdirs.PlatformDirs(locations.APP_NAME, appauthor=False)
        runtime = Path(locations.runtime_dir())
        if socket is not None:
            sock = Path(socket).expanduser().absolute()
            default = False
        else:
            sock = Path(locations.socket_path())
            default = not os.environ.get(locations.SOCKET_ENV)
        state = Path(dirs.user_state_dir)
        return cls(
            runtime_dir=runtime,
            socket=sock,
            socket_is_default=default,
            cache_dir=Path(dirs.user_cache_dir),
            config_dir=Path(dirs.user_config_dir),
            state_dir=state,
            log_dir=Path(dirs.user_log_dir),
        )

    def as_dict(self) -> dict[str, str]:
        return {
            "runtime_dir": str(self.runtime_dir),
            "socket": str(self.socket),
            "cache_dir": str(self.cache_dir),
            "config_dir": str(self.config_dir),
            "state_dir": str(self.state_dir),
            "log_dir": str(self.log_dir),
        }


def ensure_private_dir(path: Path) -> None:
    """Create *path* with mode 0700 if it is missing; refuse it unless ours and exactly 0700.

    Missing parents are created 0700 too, as the XDG spec says of a missing base directory:
    the parent is the runtime directory (``XDG_RUNTIME_DIR``), which clients take only when it
    is private, so one made with the umask's mode hid the socket from every later client.
    Only the leaf is held to the private rule.
    """
    try:
        _make_parents(path)
        path.mkdir(PRIVATE_DIR_MODE)
    except FileExistsError:
        pass
    except OSError as exc:
        raise StartupError(f"cannot create directory {path}: {exc.strerror}") from exc
    else:
        # mkdir's mode is filtered by the umask; make it exactly 0700 on what we just created.
        path.chmod(PRIVATE_DIR_MODE)
    try:
        info = os.lstat(path)
    except OSError as exc:
        raise StartupError(f"cannot inspect directory {path}: {exc.strerror}") from exc
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        found = "symlink" if stat.S_ISLNK(info.st_mode) else "non-directory"
        raise StartupError(
            f"{path} must be a directory (found a {found}); remove it and start satcheld again"
        )
    uid = os.geteuid()
    mode = stat.S_IMODE(info.st_mode)
    if info.st_uid != uid:
        raise StartupError(
            f"{path} is owned by uid {info.st_uid}, but satcheld runs as uid {uid}; the socket "
            f"directory must belong to the user (fix: remove it, or `chown {uid} {path}` "
            f"and `chmod 700 {path}`)"
        )
    if mode != PRIVATE_DIR_MODE:
        raise StartupError(
            f"{path} has mode {mode:04o}, but the socket directory must be 0700 so that no other "
            f"user can reach or replace the socket (fix: `chmod 700 {path}`)"
        )
    _check_parent(path, uid)


def _make_parents(path: Path) -> None:
    """Create the missing ancestors of *path*, each exactly 0700 (whatever the umask)."""
    missing: list[Path] = []
    parent = path.parent
    while not os.path.lexists(parent):
        missing.append(parent)
        parent = parent.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(PRIVATE_DIR_MODE)
        except FileExistsError:
            continue  # made meanwhile (another daemon starting): its mode is its maker's
        directory.chmod(PRIVATE_DIR_MODE)


def _check_parent(path: Path, uid: int) -> None:
    """Another user who controls the parent could rename our private directory away and put
    their own in its place; the parent must be ours (or root's) and not writable by others,
    unless it is sticky like /tmp (then only owners may rename entries)."""
    parent = path.parent
    info = parent.stat()
    mode = stat.S_IMODE(info.st_mode)
    if info.st_uid not in (0, uid):
        raise StartupError(
            f"{parent} (parent of the socket directory {path}) is owned by uid {info.st_uid}; "
            f"another user could replace the socket directory (fix: choose a socket under a "
            f"directory you own, e.g. set XDG_RUNTIME_DIR or SATCHEL_SOCKET)"
        )
    if mode & 0o022 and not mode & stat.S_ISVTX:
        raise StartupError(
            f"{parent} (parent of the socket directory {path}) has mode {mode:04o}: writable by "
            f"other users, who could replace the socket directory (fix: `chmod go-w {parent}`)"
        )
