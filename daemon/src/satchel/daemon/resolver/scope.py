"""Index strategy: which index's page a project may come from.

The promise Satchel makes is that a package from one index is never silently swapped for a
same-named package from another ("dependency confusion"). This module is where that promise is
kept, as pure functions over what is known about a project (its page on each index) and the
user's configuration (indexes in priority order, each maybe ``explicit``; pins project -> index):

``first-index`` (default)
    A pinned project comes only from its pinned index (explicit or not). Any other project comes
    only from the *first non-explicit* index, in priority order, that has a page for it: later
    indexes are not consulted for it at all, even if they hold newer versions.
``unsafe-best-match`` (opt-in)
    A pinned project still comes only from its pinned index; any other project comes from every
    non-explicit index that has it (the resolver picks the best version across them, preferring
    the earlier index's file when both serve the same version).

Explicit indexes serve pinned projects only. Whatever is known but not allowed is reported as
`OutOfScope` (a page from an index that is no longer configured, an explicit index without a pin,
an index shadowed by a higher-priority one, an index a pin excludes), so that a miss can say
where the project *is* cached and how to allow it, instead of just "not found".

"Has a page" means the caller holds one: online, the index answered 200 (a 404 is "does not
have it"); offline, the metadb holds a page from an earlier fetch.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from typing import Protocol

import msgspec

from satchel.daemon.storage.model import ProjectPage

__all__ = [
    "IndexLike",
    "OutOfScope",
    "Reason",
    "ScopedPages",
    "Strategy",
    "describe_out_of_scope",
    "page_versions",
    "select_pages",
]


class Strategy(enum.StrEnum):
    FIRST_INDEX = "first-index"
    UNSAFE_BEST_MATCH = "unsafe-best-match"


class Reason(enum.StrEnum):
    """Why a page that exists is not used."""

    NOT_CONFIGURED = "not-configured"  # cached under an index that is not configured (anymore)
    EXPLICIT_UNPINNED = "explicit-unpinned"  # explicit index, and the project is not pinned to it
    SHADOWED = "shadowed"  # first-index: an earlier index has the project
    PINNED_ELSEWHERE = "pinned-elsewhere"  # the project is pinned to another index


class IndexLike(Protocol):
    """What scope needs of a configured index (the config's ``IndexConfig`` fits)."""

    @property
    def name(self) -> str: ...
    @property
    def url(self) -> str: ...
    @property
    def explicit(self) -> bool: ...


class OutOfScope(msgspec.Struct, frozen=True, kw_only=True):
    """A page that exists for the project but may not be used, and why."""

    index: str
    #: The index's configured URL; None when the index is not configured.
    index_url: str | None
    #: Credential-free URL of the project page (known even for unconfigured indexes).
    page_url: str
    reason: Reason
    versions: tuple[str, ...] = ()
    fetched_at: float = 0.0


class ScopedPages(msgspec.Struct, frozen=True, kw_only=True):
    """The pages a project may come from (priority order), and what exists beyond them."""

    project: str
    pages: tuple[ProjectPage, ...] = ()
    out_of_scope: tuple[OutOfScope, ...] = ()
    #: Unix time the project was last fetched from any index (None: never seen).
    last_seen: float | None = None
    #: Set by offline sources: a miss then means "not cached" rather than "does not exist".
    offline: bool = False
    #: The pinned index, when the project is pinned (even if that index has no page).
    pinned_to: str | None = None
    #: Configured index name -> URL, for messages and for recording provenance.
    index_urls: dict[str, str] = {}
    #: Offline only: versions the cached in-scope pages list but whose files are not stored
    #: (so they are no candidates), newest first. What makes "not downloaded" explainable.
    unstored: tuple[str, ...] = ()
    #: Offline only, when no in-scope page lists a stored file: files of the project that are in
    #: the store (recorded with their origin) but that no cached in-scope page lists any more,
    #: as "filename (index NAME)". What keeps a miss from calling stored files "not cached".
    stored_unlisted: tuple[str, ...] = ()


def page_versions(page: ProjectPage) -> tuple[str, ...]:
    if page.versions:
        return page.versions
    # Without PEP 700 ``versions`` a short summary from file names is enough for a message.
    seen: dict[str, None] = {}
    for file in page.files:
        stem = file.filename.removesuffix(".tar.gz").removesuffix(".zip")
        parts = stem.split("-")
        if len(parts) >= 2:
            seen[parts[1]] = None
    return tuple(seen)


def select_pages(
    project: str,
    available: Mapping[str, ProjectPage],
    indexes: Sequence[IndexLike],
    pins: Mapping[str, str],
    strategy: Strategy = Strategy.FIRST_INDEX,
    *,
    offline: bool = False,
) -> ScopedPages:
    """Apply the index strategy to *available* (index name -> page) for normalised *project*.

    *indexes* are the configured ones in priority order; *pins* maps normalised project names to
    index names. Pure: the same inputs always give the same answer.
    """
    configured = {index.name: index for index in indexes}
    index_urls = {index.name: index.url for index in indexes}
    pinned_to = pins.get(project)
    used: list[ProjectPage] = []
    excluded: dict[str, Reason] = {}

    if pinned_to is not None:
        for name in available:
            if name != pinned_to:
                excluded[name] = Reason.PINNED_ELSEWHERE
        if pinned_to in available and pinned_to in configured:
            used.append(available[pinned_to])
    else:
        for index in indexes:
            page = available.get(index.name)
            if page is None:
                continue
            if index.explicit:
                excluded[index.name] = Reason.EXPLICIT_UNPINNED
            elif used and strategy is Strategy.FIRST_INDEX:
                excluded[index.name] = Reason.SHADOWED
            else:
                used.append(page)
    for name in available:
        if name not in configured:
            excluded[name] = Reason.NOT_CONFIGURED

    out = tuple(
        OutOfScope(
            index=name,
            index_url=index_urls.get(name),
            page_url=available[name].url,
            reason=reason,
            versions=page_versions(available[name]),
            fetched_at=available[name].fetched_at,
        )
        for name, reason in sorted(excluded.items(), key=lambda item: _order(item[0], indexes))
    )
    last_seen = max((page.fetched_at for page in available.values()), default=None)
    return ScopedPages(
        project=project,
        pages=tuple(used),
        out_of_scope=out,
        last_seen=last_seen,
        offline=offline,
        pinned_to=pinned_to,
        index_urls=index_urls,
    )


def _order(name: str, indexes: Sequence[IndexLike]) -> tuple[int, str]:
    for position, index in enumerate(indexes):
        if index.name == name:
            return (position, name)
    return (len(indexes), name)


def describe_out_of_scope(scoped: ScopedPages) -> list[str]:
    """One sentence per out-of-scope page, each saying how to allow it (for error messages).

    Shadowed pages are left out: under first-index that is the intended behaviour, and naming
    them in every miss would invite the user to undo the protection.
    """
    project = scoped.project
    lines: list[str] = []
    if scoped.pinned_to is not None and scoped.pinned_to not in scoped.index_urls:
        lines.append(
            f"{project} is pinned to index '{scoped.pinned_to}', which is not configured; "
            f"add it with `satchel index add {scoped.pinned_to} URL` or change the pin"
        )
    for item in scoped.out_of_scope:
        where = f"index '{item.index}'" + (f" ({item.index_url})" if item.index_url else "")
        versions = f" (versions {', '.join(item.versions[-5:])})" if item.versions else ""
        if item.reason is Reason.NOT_CONFIGURED:
            lines.append(
                f"{project} is cached from index '{item.index}' ({item.page_url}){versions}, "
                f"which is not in scope (not configured); add the index with `satchel index add "
                f"{item.index} URL` and pin it with `satchel index pin {project} {item.index}`"
            )
        elif item.reason is Reason.EXPLICIT_UNPINNED:
            lines.append(
                f"{project} exists on explicit {where}{versions}, which serves pinned projects "
                f"only; pin it with `satchel index pin {project} {item.index}`"
            )
        elif item.reason is Reason.PINNED_ELSEWHERE:
            lines.append(
                f"{project} also exists on {where}{versions}, but it is pinned to index "
                f"'{scoped.pinned_to}'; change the pin with "
                f"`satchel index pin {project} {item.index}` if that is intended"
            )
    return lines
