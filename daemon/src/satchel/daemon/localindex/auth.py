"""The local index's access token: one per user, in a 0600 file, checked on every request.

Why a token at all on a loopback port: 127.0.0.1 is reachable by every local user (and by any
process a browser tricks into a request), and the cache holds what private indexes served. The
Unix socket is protected by its directory's permissions and a peer-uid check; TCP has neither, so
the HTTP side carries a secret that only the owner can read, sent as HTTP basic auth. On Linux
the owner's own connections need no token (`peer` asks the kernel whose they are), so tools get a
URL without it and cannot write it into a lock or requirements file (issue 13.5); the token
remains for other systems (``http://satchel:<token>@127.0.0.1:PORT/simple/``) and for clients
the owner hands it to.

The token is created on first start with `atomic_write` (temp + fsync + rename, mode 0600), so
two daemons racing, or a crash mid-write, never leave a half-written or world-readable token. A
token file that other users could read is treated as leaked: it is replaced, with a warning.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import os
import secrets
import stat
from pathlib import Path

from satchel.daemon.settings.credentials import register_secret
from satchel.daemon.storage.fsutil import atomic_write

__all__ = ["TOKEN_FILE", "TOKEN_MODE", "check_basic_auth", "load_or_create_token"]

log = logging.getLogger(__name__)

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
    `credentials.register_secret`, so it never appears in a log line.
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


def check_basic_auth(header: bytes | None, token: str) -> bool:
    """Whether an ``Authorization`` header carries *token* as the basic-auth password.

    Any user name is accepted (the token is the secret). The comparison is constant-time, so the
    response time tells an attacker nothing about how much of a guess was right.
    """
    expected = token.encode("ascii")
    if header is None:
        # Still compare, so that "no header" costs the same as "wrong token".
        hmac.compare_digest(expected, b"")
        return False
    scheme, _, value = header.strip().partition(b" ")
    if scheme.lower() != b"basic":
        return False
    try:
        decoded = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    _user, sep, password = decoded.partition(b":")
    if not sep:
        return False
    return hmac.compare_digest(expected, password)
