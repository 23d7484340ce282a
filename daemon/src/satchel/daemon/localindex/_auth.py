"""Who may ask the local index anything: its own Host names, the owner's own connections, and
the per-user token, checked on every request before any other work (`refusal`).

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

from satchel.daemon.localindex._messages import Request, Response
from satchel.daemon.localindex._responses import text

__all__ = ["BROWSER_HEADERS", "LOCAL_HOSTS", "check_basic_auth", "refusal"]

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


#: Host names a request may use: the listener is on 127.0.0.1, and refusing other names defeats
#: DNS rebinding (a web page resolving its own name to 127.0.0.1 to reach this port).
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost"})
#: Headers every current browser sends (Fetch Metadata on every request to a trustworthy origin,
#: which loopback is; ``Origin`` on cross-origin ones) and no installer does. A web page runs as
#: the user too, so a token-less request that the kernel attributes to the user is refused when
#: it carries one: a page must not make the daemon fetch, or probe what the cache holds.
BROWSER_HEADERS = ("origin", "sec-fetch-site", "sec-fetch-mode", "sec-fetch-dest")


def refusal(request: Request, token: str) -> Response | None:
    """The refusal of a request without *token* (or for a foreign Host), else None.

    A request without credentials passes when the kernel says its connection's peer runs as
    the daemon's own user (`_peer`, Linux; issue 13.5), unless a browser sent it."""
    host = (request.header("host") or "127.0.0.1").rsplit(":", 1)[0].strip("[]").lower()
    if host not in LOCAL_HOSTS:
        return text(400, "unexpected Host header: use 127.0.0.1")
    if request.peer_is_owner and request.header("authorization") is None:
        if any(request.header(name) is not None for name in BROWSER_HEADERS):
            return text(403, "requests from a web browser need the token")
        return None
    if not check_basic_auth(
        (request.header("authorization") or "").encode("latin-1") or None, token
    ):
        # No project name, no path: nothing here tells an intruder what the cache holds.
        return text(
            401,
            "authentication required: use the URL printed by `satchel index-url`",
            [("WWW-Authenticate", 'Basic realm="satchel", charset="UTF-8"')],
        )
    return None
