"""Offline scopes kept between requests while nothing they were computed from has changed.

An offline resolve asks, for every project, which stored files its cached pages list in scope
(`catalog.Session.offline_pages_sync`): two metadb reads and a decode of every page, the
origin binding judged, and one stat per listed file. That is about a third of a never-resolved
warm resolve, the same answer every time (issue 15). A kept scope is reused only when all of
its inputs are unchanged:

* the metadb: every write (a page, a binding, a blob record, a forgotten blob) goes through
  `MetaDB._write`, which moves `MetaDB.generation` on; a scope computed while the generation
  stood still is kept with it, and any write since makes every kept scope stale;
* the configuration snapshot and index strategy of the session: compared by identity;
* the store: every file the scope lists as stored is stat'ed again (a file deleted behind the
  daemon's back is noticed); a file can only be added with a metadb write (its blob record).

Refusals are never kept (they are computed again, and raised again, each time), nor are scopes
that name stored files outside any page (`ScopedPages.stored_unlisted`, a rare error path).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from satchel.daemon.resolver.scope import ScopedPages, Strategy
from satchel.daemon.settings.config import Config
from satchel.daemon.storage.store import BlobStore

__all__ = ["MAX_KEPT", "OfflineScopes"]

#: Scopes kept at most; past it the memo starts over. A resolve of the largest sets touches some
#: hundreds of projects, and a scope of stored files only is small (a few KiB).
MAX_KEPT = 4096


@dataclass(frozen=True)
class _Kept:
    config: Config
    strategy: Strategy
    generation: int
    scoped: ScopedPages
    #: How the project is bound to its index, for the session's `bound` (None: not reported).
    held: str | None


class OfflineScopes:
    """Thread-safe: resolver threads read and fill it concurrently."""

    def __init__(self, store: BlobStore) -> None:
        self._store = store
        self._kept: dict[str, _Kept] = {}
        self._lock = threading.Lock()

    def get(
        self, project: str, config: Config, strategy: Strategy, generation: int
    ) -> tuple[ScopedPages, str | None] | None:
        """The kept scope of *project* and its binding, if still true; else None."""
        with self._lock:
            kept = self._kept.get(project)
        if (
            kept is None
            or kept.generation != generation
            or kept.config is not config
            or kept.strategy is not strategy
        ):
            return None
        has = self._store.has
        for page in kept.scoped.pages:
            for file in page.files:
                if file.sha256 is None or not has(file.sha256):
                    return None
        return kept.scoped, kept.held

    def put(
        self,
        project: str,
        config: Config,
        strategy: Strategy,
        generation: int,
        scoped: ScopedPages,
        held: str | None,
    ) -> None:
        """Keep *scoped*, computed from the metadb at *generation* (read before computing)."""
        if scoped.stored_unlisted:
            return
        with self._lock:
            if len(self._kept) >= MAX_KEPT:
                self._kept.clear()
            self._kept[project] = _Kept(config, strategy, generation, scoped, held)
