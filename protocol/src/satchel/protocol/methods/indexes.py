"""Index methods: `index.list`, `index.add`, `index.remove`, `index.pin`, `index.adopt`.

Every method answers with the same `IndexListResult`, so a client always prints the state after
its change. URLs in answers are redacted (no credentials); `source` says where an index came from
("config.toml" when the user added it, or how it was adopted from pip or uv, as config.toml's
``adopted-from`` records it).
"""

from __future__ import annotations

import msgspec

__all__ = [
    "INDEX_ADD",
    "INDEX_ADOPT",
    "INDEX_LIST",
    "INDEX_PIN",
    "INDEX_REMOVE",
    "IndexAddParams",
    "IndexAdoptParams",
    "IndexInfo",
    "IndexListParams",
    "IndexListResult",
    "IndexPinParams",
    "IndexRemoveParams",
]

INDEX_LIST = "index.list"
INDEX_ADD = "index.add"
INDEX_REMOVE = "index.remove"
INDEX_PIN = "index.pin"
INDEX_ADOPT = "index.adopt"


class IndexListParams(msgspec.Struct, frozen=True, kw_only=True):
    """`index.list`: *environ* is the caller's pip/uv variables (``PIP_*``, ``UV_*``, ``HOME``,
    ``XDG_CONFIG_*``, ``VIRTUAL_ENV``), to compare with config.toml; None: the daemon's own."""

    environ: dict[str, str] | None = None


class IndexAdoptParams(msgspec.Struct, frozen=True, kw_only=True):
    """`index.adopt`: replace config.toml's adopted indexes with what pip and uv configure in
    *environ* (the caller's variables, as for `IndexListParams`)."""

    environ: dict[str, str] | None = None


class IndexAddParams(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    #: http(s):// or file:// (the client turns a local path into a file:// URL). Credentials are
    #: refused here: they would be written to config.toml; use netrc or the environment.
    url: str
    explicit: bool = False
    #: "simple" or "find-links" (a directory or a page of links).
    kind: str = "simple"
    #: Insert before this index (default: last, i.e. lowest priority).
    before: str | None = None
    max_age: int | None = None
    #: The default (public) index: always asked last, after every other index.
    default: bool = False


class IndexRemoveParams(msgspec.Struct, frozen=True, kw_only=True):
    name: str


class IndexPinParams(msgspec.Struct, frozen=True, kw_only=True):
    project: str
    #: The index the project may only come from; None removes the pin.
    index: str | None


class IndexInfo(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    #: Redacted URL.
    url: str
    kind: str
    explicit: bool
    #: Where it came from: "config.toml", "pip: PIP_INDEX_URL", "uv: /etc/uv/uv.toml ...".
    source: str
    #: The default index: asked after every other one (pip's index-url, uv's default index).
    default: bool = False
    #: Whether it was adopted from pip/uv (`source` says from where) rather than added.
    adopted: bool = False
    max_age: int | None = None
    #: Projects pinned to this index.
    pinned: list[str] = []
    #: What the daemon knows of it: "unknown" (not used yet), "online", "offline".
    state: str = "unknown"
    #: Why it is offline, and since when (Unix time).
    reason: str | None = None
    offline_since: float | None = None


class IndexListResult(msgspec.Struct, frozen=True, kw_only=True):
    #: In priority order (first-index: a project comes from the first index that has it).
    indexes: list[IndexInfo]
    #: True when some index in config.toml was adopted from pip/uv (see each `IndexInfo`).
    adopted: bool
    config_path: str
    index_strategy: str
    #: project -> index name.
    pins: dict[str, str] = {}
    #: The last broken edit of config.toml (file:line: reason), if it is still broken.
    config_error: str | None = None
    #: Notes for the user about what this change did (e.g. adopted indexes written out).
    notes: list[str] = []
    #: How pip's/uv's configuration disagrees with config.toml, and how to adopt it.
    drift: list[str] = []
    #: `index remove`: the projects bound to the removed index (by URL). They are refused
    #: (origin-changed) until the index is back or another is accepted (`satchel origins trust`).
    bound_to_removed: list[str] = []
