"""The local index's access token: one per user, in a 0600 file, checked on every request.

Why a token at all on a loopback port: 127.0.0.1 is reachable by every local user (and by any
process a browser tricks into a request), and the cache holds what private indexes served. The
Unix socket is protected by its directory's permissions and a peer-uid check; TCP has neither, so
the HTTP side carries a secret that only the owner can read, sent as HTTP basic auth. On Linux
the owner's own connections need no token (`peer` asks the kernel whose they are), so tools get a
URL without it and cannot write it into a lock or requirements file (issue 13.5); the token
remains for other systems (``http://satchel:<token>@127.0.0.1:PORT/simple/``) and for clients
the owner hands it to.

The token file itself (created once, 0600, replaced when exposed) is
`satchel.daemon.settings.ownindex`'s.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging

__all__ = ["check_basic_auth"]

log = logging.getLogger(__name__)


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
