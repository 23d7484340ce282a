"""Keeping caches warm: `watch.add`, `watch.remove`, `watch.list`, `watch.prefetch` and `ready`.

A watched project is a directory or a single file (requirements, ``pyproject.toml``, lock file,
script with inline metadata) that the daemon keeps prefetched for one target interpreter. Paths
are absolute (the client resolves them; the daemon has its own working directory). Times are
Unix times, sizes bytes.

`ready` answers "can I work offline?": for every watched project and cached tool, whether
everything needed to install it is in the cache, judged by an offline resolve, and what is
missing otherwise. Its `ready` field is True only when every entry is ready.
"""

from __future__ import annotations

import msgspec

__all__ = [
    "READY",
    "WATCH_ADD",
    "WATCH_LIST",
    "WATCH_PREFETCH",
    "WATCH_REMOVE",
    "LastPrefetch",
    "ProjectPrefetch",
    "Readiness",
    "ReadyParams",
    "ReadyResult",
    "WatchAddParams",
    "WatchListParams",
    "WatchListResult",
    "WatchPrefetchParams",
    "WatchPrefetchResult",
    "WatchRemoveParams",
    "WatchedProjectInfo",
]

WATCH_ADD = "watch.add"
WATCH_REMOVE = "watch.remove"
WATCH_LIST = "watch.list"
WATCH_PREFETCH = "watch.prefetch"
READY = "ready"


class WatchAddParams(msgspec.Struct, frozen=True, kw_only=True):
    #: Absolute path of a project directory or of one input file.
    path: str
    #: Interpreter (path, venv directory or ``X.Y``) to prefetch for; None: the project's
    #: ``.venv`` if it has one, else the daemon's default interpreter.
    python: str | None = None


class WatchRemoveParams(msgspec.Struct, frozen=True, kw_only=True):
    path: str


class WatchListParams(msgspec.Struct, frozen=True):
    """`watch.list` takes nothing."""


class LastPrefetch(msgspec.Struct, frozen=True, kw_only=True):
    """The outcome of the latest prefetch of a watched project."""

    at: float
    ok: bool
    #: One line: what was done, or why it failed.
    message: str
    #: Files the project needs for its target, how many had to be downloaded, their total size.
    files: int = 0
    downloaded: int = 0
    bytes: int = 0


class WatchedProjectInfo(msgspec.Struct, frozen=True, kw_only=True):
    path: str
    #: The interpreter asked for with ``--python`` (None: automatic).
    python: str | None = None
    #: The interpreter the project is prefetched for, as it was last chosen.
    target: str = ""
    #: The input files found (a directory's set changes as files appear and disappear).
    sources: list[str] = []
    added_at: float
    last_prefetch: LastPrefetch | None = None
    #: What the last prefetch could not get ("name (file)" or an error line).
    missing: list[str] = []
    #: A change is waiting for the indexes to come back (or for the running prefetch).
    pending: bool = False


class WatchListResult(msgspec.Struct, frozen=True, kw_only=True):
    projects: list[WatchedProjectInfo]


class WatchPrefetchParams(msgspec.Struct, frozen=True):
    """`watch.prefetch` takes nothing: it prefetches every watched project now, streaming
    `Progress` (unit "B") as files are stored."""


class ProjectPrefetch(msgspec.Struct, frozen=True, kw_only=True):
    path: str
    ok: bool
    message: str
    files: int = 0
    downloaded: int = 0
    bytes: int = 0
    missing: list[str] = []


class WatchPrefetchResult(msgspec.Struct, frozen=True, kw_only=True):
    projects: list[ProjectPrefetch]
    elapsed: float = 0.0


class ReadyParams(msgspec.Struct, frozen=True):
    """`ready` takes nothing; it never touches the network."""


class Readiness(msgspec.Struct, frozen=True, kw_only=True):
    #: "project" (a watched project) or "tool" (a cached tool environment).
    kind: str
    #: The project's path, or the tool's requirement.
    name: str
    ready: bool
    #: Files an offline install needs (all present when ready) and their total size.
    files: int = 0
    bytes: int = 0
    #: Exactly what is missing: "name (file)" lines, or why the offline resolve failed.
    gaps: list[str] = []
    target: str = ""


class ReadyResult(msgspec.Struct, frozen=True, kw_only=True):
    ready: bool
    entries: list[Readiness]
    #: Files and bytes needed by all entries together (each file once).
    files: int = 0
    bytes: int = 0
