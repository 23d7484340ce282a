"""Rendered project pages of the local index, kept between requests for a short window.

Building a page means reading the project's stored pages and binding from the metadb (worker
threads), maybe revalidating it upstream, applying the index strategy and rendering; for a cached
page that is most of its latency, and an installer asks for the same pages again and again (one
resolve after another, several tools in a row, a benchmark). So the view of an online page, and
the bytes rendered from it per media type with their ETag, are kept here and served as they are
while *both* hold:

* nothing moved that the page is made of: the daemon's configuration is the same object (a
  reload of config.toml replaces it: index set, pins, strategy, credentials), and the metadb's
  `generation` is the one read before the page was built (every write that can change a page
  moves it: a page stored or replaced, a yank, a binding made or dropped, a blob stored or
  forgotten, core metadata stored);
* the page was revalidated upstream less than `REVALIDATE_WINDOW` seconds ago, or every page it
  was built from is still fresh by upstream's own ``max-age`` (or the index's ``max-age`` in
  config.toml): building it again would not ask upstream either.

Stale pages (an index unreachable, the session offline) are never kept: they carry the time they
date from, and they must follow the store, so they are built on every request, as before.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from satchel.daemon.localindex._pages import ProjectView, render_project

__all__ = ["MAX_MEMO_BYTES", "REVALIDATE_WINDOW", "Memo", "PageMemo", "page_etag"]

#: Seconds a page revalidated upstream is served again without asking upstream. An installer
#: asks for the same pages in bursts: a resolve then its install, a few tools run back to back
#: by a script or a CI job, pip's backtracking; 5 s covers such a burst, so each page costs one
#: revalidation per burst, not one per request. It is also short enough that a release just
#: uploaded to an index that sends no max-age (devpi, most private indexes: they want every
#: request revalidated) shows up before a person can retype the install command. (Upstream's own
#: ``Cache-Control: max-age`` still applies after the window: the public index's 10 minutes.)
REVALIDATE_WINDOW = 5.0
#: Bytes of rendered pages and views kept (estimated; the oldest entries go first). A project's
#: JSON page is ~300 bytes per file: 16 MiB holds a few hundred ordinary projects, or a couple
#: of the biggest (90,000 files) without growing the daemon by more than that.
MAX_MEMO_BYTES = 16 * 1024 * 1024
#: Estimated bytes of a view per listed file (the `FileLink` struct and its strings).
_VIEW_BYTES_PER_FILE = 300


def page_etag(media_type: str, body: bytes) -> str:
    """A page's ETag: its media type and bytes, hashed (strong: same bytes, same tag)."""
    return '"' + hashlib.sha256(media_type.encode() + b"\0" + body).hexdigest()[:40] + '"'


@dataclass
class Memo:
    """One project's page: the view, what it was built from, and its renderings."""

    view: ProjectView
    #: The configuration snapshot and metadb generation it was built from.
    config: object
    generation: int
    #: Monotonic time its upstream revalidation started.
    validated: float
    #: Unix time until which upstream's max-age keeps every page it was built from fresh.
    fresh_until: float | None = None
    #: media type -> (body, ETag), rendered on first request of each type.
    bodies: dict[str, tuple[bytes, str]] = field(default_factory=dict)

    @property
    def size(self) -> int:
        bodies = sum(len(body) for body, _ in self.bodies.values())
        return bodies + _VIEW_BYTES_PER_FILE * (1 + len(self.view.files))


class PageMemo:
    """Project -> `Memo`, bounded by `MAX_MEMO_BYTES`; touched on the event loop only."""

    def __init__(self, max_bytes: int = MAX_MEMO_BYTES) -> None:
        self.max_bytes = max_bytes
        self._memos: dict[str, Memo] = {}
        self._bytes = 0

    def get(
        self, project: str, config: object, generation: int, now: float, wall: float
    ) -> Memo | None:
        """The memo of *project* if it still stands for *config*, *generation* and the
        monotonic time *now* (or the Unix time *wall*, for upstream's max-age)."""
        memo = self._memos.get(project)
        if memo is None:
            return None
        fresh = memo.fresh_until is not None and wall < memo.fresh_until
        if (
            memo.config is not config
            or memo.generation != generation
            or not (fresh or 0.0 <= now - memo.validated < REVALIDATE_WINDOW)
        ):
            self._drop(project)
            return None
        return memo

    def put(
        self,
        project: str,
        view: ProjectView,
        config: object,
        generation: int,
        validated: float,
        fresh_until: float | None = None,
    ) -> Memo:
        """Keep *view*, built from *config* and *generation*, revalidated at *validated*."""
        self._drop(project)
        memo = Memo(
            view=view,
            config=config,
            generation=generation,
            validated=validated,
            fresh_until=fresh_until,
        )
        self._memos[project] = memo
        self._bytes += memo.size
        self._evict()
        return memo

    def rendered(self, project: str, memo: Memo, media_type: str) -> tuple[bytes, str]:
        """*memo*'s page in *media_type* and its ETag (rendered once, then kept)."""
        found = memo.bodies.get(media_type)
        if found is None:
            body = render_project(memo.view, media_type)
            found = memo.bodies[media_type] = (body, page_etag(media_type, body))
            if self._memos.get(project) is memo:
                self._bytes += len(body)
                self._evict()
        return found

    def _drop(self, project: str) -> None:
        memo = self._memos.pop(project, None)
        if memo is not None:
            self._bytes -= memo.size

    def _evict(self) -> None:
        while self._bytes > self.max_bytes and self._memos:
            self._drop(next(iter(self._memos)))
