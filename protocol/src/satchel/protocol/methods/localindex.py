"""Local index methods: `localindex.info`: where the loopback simple index is, and its state.

The URL returned is what `satchel index-url` and `satchel env` give to pip, uv, poetry, pdm and
pip-tools. Where the daemon can tell from the kernel that a loopback connection is its own user's
(`peer_auth`: Linux) it carries no credentials, so no tool writes a secret into a lock or
requirements file (issue 13.5); elsewhere it carries the token as basic-auth userinfo
(``http://satchel:<token>@127.0.0.1:PORT/simple/``). The answer travels only over the daemon's
Unix socket, which admits the owning user alone.
"""

from __future__ import annotations

import msgspec

__all__ = ["LOCALINDEX_INFO", "LocalIndexInfoParams", "LocalIndexInfoResult"]

LOCALINDEX_INFO = "localindex.info"


class LocalIndexInfoParams(msgspec.Struct, frozen=True):
    """`localindex.info` takes nothing."""


class LocalIndexInfoResult(msgspec.Struct, frozen=True, kw_only=True):
    #: "serving", "starting", "error" (e.g. the port is taken; retried) or "stopped".
    state: str
    #: The index URL for tools (no credentials when `peer_auth`, else the token as userinfo);
    #: None unless serving.
    url: str | None = None
    #: The same URL without credentials (safe to show); None unless serving.
    base_url: str | None = None
    host: str = "127.0.0.1"
    #: The port served, or the port wanted while in error.
    port: int | None = None
    #: Why the index is not serving (names the port and the cause).
    error: str | None = None
    #: Where the token lives (0600, in the daemon's state directory).
    token_file: str | None = None
    #: Unix time of the last state change.
    since: float = 0.0
    #: Whether the daemon admits its own user's connections without the token (Linux).
    peer_auth: bool = False
