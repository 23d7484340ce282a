"""Origin methods: `origins.list`, `origins.trust`, `origins.forget`.

A project's origin is the index it was first served from (trust on first use); afterwards it is
never taken from another index without the user's word. `origins.trust` is that word: it binds
the project to a configured index. Every method answers with the bindings after its change.
"""

from __future__ import annotations

import msgspec

__all__ = [
    "ORIGINS_FORGET",
    "ORIGINS_LIST",
    "ORIGINS_TRUST",
    "OriginInfo",
    "OriginsForgetParams",
    "OriginsListParams",
    "OriginsListResult",
    "OriginsTrustParams",
]

ORIGINS_LIST = "origins.list"
ORIGINS_TRUST = "origins.trust"
ORIGINS_FORGET = "origins.forget"


class OriginsListParams(msgspec.Struct, frozen=True, kw_only=True):
    #: Only this project (None: every bound project).
    project: str | None = None


class OriginsTrustParams(msgspec.Struct, frozen=True, kw_only=True):
    project: str
    #: A configured index's name: the project may come from it from now on (and no other).
    index: str


class OriginsForgetParams(msgspec.Struct, frozen=True, kw_only=True):
    project: str


class OriginInfo(msgspec.Struct, frozen=True, kw_only=True):
    project: str
    #: The configured index with the bound URL now (None: no configured index has that URL).
    index: str | None
    #: The index's name when the binding was made.
    bound_name: str
    #: The bound index's identity: its URL without credentials, normalised.
    url: str
    #: "first-use", "pin" or "trust".
    how: str
    bound_at: float
    #: Identities of indexes that answered "not here" for the project.
    absent: list[str] = []


class OriginsListResult(msgspec.Struct, frozen=True, kw_only=True):
    origins: list[OriginInfo]
    notes: list[str] = []
