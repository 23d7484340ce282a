"""Where Satchel's own local index is: its port and its access token, as files and settings.

The daemon needs both before the local index starts (adoption must recognise the local index's
URL and refuse it as an upstream, `satchel.daemon.settings.indexset.OwnIndex`), and the local
index (`satchel.daemon.localindex`) binds the port and checks the token. This module is the one
place that knows where they are kept.

The port is per user: several users of one host each run a daemon, and a fixed port would give
the index to whoever started first. Unless configured, the first start tries `user_port` (one
port per uid) and the next few after it, and remembers the one it bound in the state directory,
so the URL survives restarts (uv keys its offline cache by index URL; people paste it into
config files).

The token: one per user, in a 0600 file (why a token on a loopback port: see
`satchel.daemon.localindex._auth`). It is created on first start with `atomic_write` (temp + fsync
+ rename, mode 0600), so two daemons racing, or a crash mid-write, never leave a half-written or
world-readable token. A token file that other users could read is treated as leaked: it is
replaced, with a warning.
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
from pathlib import Path
from typing import TYPE_CHECKING

from satchel.daemon.settings.credentials import register_secret
from satchel.daemon.storage.fsutil import atomic_write

if TYPE_CHECKING:
    from satchel.daemon.settings.config import Config

__all__ = [
    "PORT_BASE",
    "PORT_ENV",
    "PORT_FILE",
    "PORT_SPAN",
    "TOKEN_FILE",
    "TOKEN_MODE",
    "configured_port",
    "default_port",
    "load_or_create_token",
    "remembered_port",
    "user_port",
]

log = logging.getLogger(__name__)

#: Per-user default ports: ``PORT_BASE + uid % PORT_SPAN``. The range [20000, 30000) is
#: unprivileged, holds nothing a Python developer commonly runs (devpi 3141, proxpi 5000, dev
#: servers 8000/8080), and lies below every OS's ephemeral range (Linux from 32768, Windows and
#: macOS from 49152), so an outgoing connection never holds one by chance. Two users share a
#: candidate only when their uids differ by a multiple of 10,000; then the later one probes on.
PORT_BASE = 20000
PORT_SPAN = 10000
#: The port a first start bound, remembered (state directory) so every later start asks for it.
PORT_FILE = "local-index-port"
#: The port used when config.toml sets none (before the per-user default). Test suites set it
#: to 0, so that their daemons never take the port a user's real daemon serves on.
PORT_ENV = "SATCHEL_LOCAL_INDEX_PORT"


def user_port(uid: int | None = None) -> int:
    """The first port a daemon of *uid* (default: ours) tries when none is configured."""
    return PORT_BASE + (os.getuid() if uid is None else uid) % PORT_SPAN


def configured_port(config: Config) -> int | None:
    """The port config.toml (or else the daemon's environment) asks for; None: the default."""
    port = config.settings.local_index_port
    if port is not None:
        return port
    fallback = os.environ.get(PORT_ENV, "")
    if fallback.isdigit() and int(fallback) < 65536:
        return int(fallback)
    return None


def default_port(state_dir: Path, *, env: bool = False) -> int:
    """The port the local index asks for when config.toml names none (with *env*, the
    daemon's `PORT_ENV` first): the one remembered from the first start, else `user_port`."""
    fallback = os.environ.get(PORT_ENV, "") if env else ""
    if fallback.isdigit() and int(fallback) < 65536:
        return int(fallback)
    remembered = remembered_port(state_dir)
    return user_port() if remembered is None else remembered


def remembered_port(state_dir: Path) -> int | None:
    try:
        text = (state_dir / PORT_FILE).read_text("ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() and 0 < int(text) < 65536 else None


#: Name of the token file in the daemon's state directory.
TOKEN_FILE = "local-index-token"  # noqa: S105 (a file name, not a secret)
TOKEN_MODE = 0o600
#: 32 random bytes: unguessable, and url-safe base64 needs no escaping inside URL userinfo.
_TOKEN_BYTES = 32
#: A token read back must look like one we wrote; anything else is regenerated.
_MIN_TOKEN_CHARS = 32
_MAX_TOKEN_CHARS = 256


def _valid(token: str) -> bool:
    return _MIN_TOKEN_CHARS <= len(token) <= _MAX_TOKEN_CHARS and all(
        c.isascii() and (c.isalnum() or c in "-_") for c in token
    )


def load_or_create_token(state_dir: Path) -> str:
    """The user's token, created (0600, atomically) when missing, unreadable or exposed.

    Blocking (file I/O): call it from a worker thread. The token is registered with
    `satchel.daemon.settings.credentials.register_secret`, so it never appears in a log line.
    """
    path = state_dir / TOKEN_FILE
    token: str | None = None
    try:
        st = path.stat()
        if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            log.warning(
                "%s was readable by other users: replacing the local index token", path.name
            )
        elif st.st_uid != os.getuid():
            log.warning("%s belongs to another user: replacing the local index token", path.name)
        else:
            text = path.read_text(encoding="ascii", errors="replace").strip()
            if _valid(text):
                token = text
            else:
                log.warning("%s is malformed: replacing the local index token", path.name)
    except FileNotFoundError:
        pass
    if token is None:
        token = secrets.token_urlsafe(_TOKEN_BYTES)
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        atomic_write(path, token.encode("ascii") + b"\n", mode=TOKEN_MODE)
        # atomic_write's mode goes through the umask: make sure it is exactly 0600.
        path.chmod(TOKEN_MODE)
    register_secret(token)
    return token
