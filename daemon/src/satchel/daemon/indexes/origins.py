"""Project origins: which index a project came from, remembered (trust on first use).

As ssh's ``known_hosts`` remembers a host's key, Satchel remembers, the first time a project is
served from an index in scope, the *binding* project -> index, and the indexes in scope that
answered "not here" for it then (or later, while the binding held). Afterwards, any answer that
would take the project from a different index is refused (`OriginChanged`) instead of followed:
a 404 or 410 from its index (an expired token, a misrouted proxy), its index removed or made
``explicit``, another index configured ahead of it, a daemon started with another environment.
The user accepts a change with a pin (`satchel index pin`) or `satchel origins trust`; the
``unsafe-best-match`` strategy ignores bindings altogether (the documented opt-out).

An index is identified by its normalised URL (`index_identity`), never only by its name: names
are the user's labels and can be renamed or reused for another host, the URL is what the bytes
came from. The name at binding time is kept for messages and for finding its cached page.

The "not here" records make half-offline work: when the private index is unreachable, a project
bound to the public index, which the private index said it did not serve, may be looked up past
it; a project never seen is still refused (it may be the private one).

Storage: two tables in the metadb (its migration 2 creates them: `satchel.daemon.storage._schema`),
read and written
through the metadb's own short transactions (a pin or a trust durably at once; a first use
committed at once and durable before any answer goes out: `Origins.make_durable`, or with a
prefetch's settle: `Origins.durable_with`). They are state, not cache:
garbage collection never touches them, and when a damaged metadb is rebuilt they are restored
from the stored files' provenance records (`satchel.daemon.indexes.dbrecovery`, `Origins.restore`).
`judge` is pure: the session calls it with what it fetched and the stored binding, and applies
the verdict.
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

import msgspec
import trio

from satchel.daemon.errors import OriginChanged
from satchel.daemon.resolver.scope import IndexLike, ScopedPages, Strategy, page_versions
from satchel.daemon.storage.model import ProjectPage

if TYPE_CHECKING:
    import sqlite3

    from satchel.daemon.storage.metadb import MetaDB

__all__ = [
    "Binding",
    "How",
    "Origins",
    "Verdict",
    "contested",
    "index_identity",
    "judge",
    "refusal",
]

_DEFAULT_PORTS = {"http": 80, "https": 443}


def index_identity(url: str) -> str:
    """The stable identity of an index: its URL without credentials, query or fragment, scheme
    and host lower-cased, default port dropped, path with exactly one trailing slash."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"  # IPv6 literal
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = host if port is None or port == _DEFAULT_PORTS.get(scheme) else f"{host}:{port}"
    path = parts.path.rstrip("/") + "/"
    return urlunsplit((scheme, netloc, path, "", ""))


class How(enum.StrEnum):
    """How a binding came to be."""

    FIRST_USE = "first-use"  # the first index in scope that served the project
    PIN = "pin"  # the project is pinned to the index (the pin is the user's word)
    TRUST = "trust"  # `satchel origins trust PROJECT INDEX`
    #: Restored from the stored files' provenance records when the metadb was rebuilt.
    RESTORED = "restored"
    #: After a rebuild, the project's stored files came from several indexes: which one it was
    #: bound to is unknown, so every answer is refused until the user says (trust or pin).
    #: ``url`` is then "" and ``index`` lists the candidates.
    CONTESTED = "contested"


class Binding(msgspec.Struct, frozen=True, kw_only=True):
    """A project's remembered origin (what `--json` outputs show as ``origin``)."""

    project: str
    #: `index_identity` of the index the project came from.
    url: str
    #: That index's name when the binding was made (names can change; the URL decides).
    index: str
    how: How
    bound_at: float
    #: Identities of indexes that answered "not here" for the project.
    absent: tuple[str, ...] = ()


class Verdict(msgspec.Struct, frozen=True, kw_only=True):
    """What `judge` decided: keep as is, (re)bind and record absences, or refuse."""

    #: The binding the answer is served under (None: not bound, or refused).
    held: Binding | None = None
    bind: Binding | None = None
    #: Identities to add to the project's "not here" records.
    absent: tuple[str, ...] = ()
    refuse: OriginChanged | None = None


class Origins:
    """The bindings in the metadb. Synchronous and short; call from trio via a worker thread."""

    def __init__(self, metadb: MetaDB) -> None:
        self.db = metadb
        #: First-use bindings committed so far, and how many of them are durable: a binding
        #: is committed at once (every reader sees it) and made durable before any answer
        #: goes out (`make_durable`): one WAL sync per answer, not one per project bound
        #: (issue 15: ~35 on a cold medium prefetch, each holding the metadb's lock).
        self._written = 0
        self._durable = 0
        self._syncing = threading.Lock()

    def owed(self) -> bool:
        """Whether a binding is committed but not yet durable (any thread, no I/O)."""
        return self._durable < self._written

    def durable_with(self, commit: Callable[[], None]) -> None:
        """Run *commit*, a durable commit of the caller's (worker thread), in one transaction
        with the bindings' mark when any are owed: the bindings committed before it are
        durable with it, and `make_durable` need not sync again. The mark is what makes the
        commit sync: one that changes no row (marking files whose rows are gone) writes no
        WAL frame, and SQLite then syncs nothing."""
        target = self._written
        with self.db._write(durable=True, shown=False) as conn:
            commit()  # joins this transaction
            if self._durable < target:
                _mark_durable(conn, target)
        with self._syncing:
            self._durable = max(self._durable, target)

    async def durable_before_answer(self) -> None:
        """`make_durable`, in a worker thread, when a binding is owed (the hop taken only then):
        what the daemon's replies and the local index's answers await before they go out."""
        if self.owed():
            await trio.to_thread.run_sync(self.make_durable)

    def make_durable(self) -> None:
        """Make every binding committed before the call durable (worker thread): one durable
        commit unless nothing is owed. The daemon's replies and the local index's answers
        call it before they go out; once it returns, whoever made the commit, they are."""
        target = self._written
        if self._durable >= target:
            return
        with self._syncing:
            if self._durable >= target:  # another caller's commit covered them
                return
            with self.db._write(durable=True, shown=False) as conn:
                _mark_durable(conn, target)
            self._durable = max(self._durable, target)

    def get(self, project: str) -> Binding | None:
        """*project*'s binding (one query: asked once per project of every resolve)."""
        rows = self.db._read(
            "SELECT o.origin, o.idx, o.how, o.bound_at, a.origin FROM project_origins o "
            "LEFT JOIN project_absent a ON a.project = o.project WHERE o.project = ? "
            "ORDER BY a.origin",
            (project,),
        )
        if not rows:
            return None
        url, index, how, bound_at, _ = rows[0]
        return Binding(
            project=project,
            url=url,
            index=index,
            how=How(how),
            bound_at=bound_at,
            absent=tuple(row[4] for row in rows if row[4] is not None),
        )

    def all(self) -> list[Binding]:
        projects = self.db._read("SELECT project FROM project_origins ORDER BY project")
        return [b for (project,) in projects if (b := self.get(project)) is not None]

    def apply(self, verdict: Verdict, project: str) -> None:
        """Write what *verdict* decided (nothing for a refusal)."""
        if verdict.refuse is not None or (verdict.bind is None and not verdict.absent):
            return
        now = time.time()
        # A binding is state, not cache: durable before any answer goes out (a power cut must
        # not lose it and let the next answer bind the project afresh): a first use by the
        # next `make_durable`, the user's word at once; "not here" records need not be.
        bind = verdict.bind
        first_use = bind is not None and bind.how is How.FIRST_USE
        with self.db._write(durable=bind is not None and not first_use) as conn:
            if first_use:  # counted before the commit, under the metadb's lock: no reader
                self._written += 1  # sees the binding before `owed` says so
            if bind is not None:
                # A first use never overwrites a binding another request made meanwhile (the
                # first one stands); a pin or a trust is the user's word and replaces it.
                verb = "IGNORE" if bind.how is How.FIRST_USE else "REPLACE"
                written = conn.execute(
                    f"INSERT OR {verb} INTO project_origins VALUES (?, ?, ?, ?, ?)",  # noqa: S608
                    (project, bind.url, bind.index, str(bind.how), bind.bound_at),
                )
                if written.rowcount > 0:  # the bound index itself is no longer "not here"
                    conn.execute(
                        "DELETE FROM project_absent WHERE project = ? AND origin = ?",
                        (project, bind.url),
                    )
            for origin in verdict.absent:
                conn.execute(
                    "INSERT OR REPLACE INTO project_absent VALUES (?, ?, ?)",
                    (project, origin, now),
                )

    def restore(self, bindings: Sequence[Binding]) -> None:
        """Write bindings recovered by a rebuild (`satchel.daemon.indexes.dbrecovery`)."""
        with self.db._write(durable=True) as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO project_origins VALUES (?, ?, ?, ?, ?)",
                [(b.project, b.url, b.index, str(b.how), b.bound_at) for b in bindings],
            )

    def stored_files(self, project: str) -> list[tuple[str, str, str]]:
        """(sha256, index, filename) of every file recorded as served for *project* (provenance,
        the metadb's ``origins`` table); asked only when an offline lookup found nothing."""
        rows = self.db._read(
            "SELECT DISTINCT sha256, idx, filename FROM origins WHERE project = ? "
            "ORDER BY filename",
            (project,),
        )
        return [(row[0], row[1], row[2]) for row in rows]

    def trust(self, project: str, index: IndexLike) -> Binding:
        """Bind *project* to *index* on the user's word (`satchel origins trust`)."""
        binding = Binding(
            project=project,
            url=index_identity(index.url),
            index=index.name,
            how=How.TRUST,
            bound_at=time.time(),
        )
        self.apply(Verdict(bind=binding), project)
        return binding

    def forget(self, project: str) -> bool:
        """Drop *project*'s binding and records; whether there was one."""
        with self.db._write(durable=True) as conn:
            gone = conn.execute("DELETE FROM project_origins WHERE project = ?", (project,))
            conn.execute("DELETE FROM project_absent WHERE project = ?", (project,))
            return gone.rowcount > 0


def _mark_durable(conn: sqlite3.Connection, target: int) -> None:
    """Write the count of bindings a durable commit covers: a change, so the commit syncs."""
    conn.execute(
        "INSERT OR REPLACE INTO state VALUES ('bindings-durable', ?, ?)",
        (str(target).encode(), time.time()),
    )


def judge(
    scoped: ScopedPages,
    binding: Binding | None,
    indexes: Sequence[IndexLike],
    strategy: Strategy,
    *,
    missing: Sequence[str] = (),
    online: bool,
    cached: Sequence[ProjectPage] = (),
) -> Verdict:
    """Decide what *scoped* (the pages the strategy selected) means for *binding*.

    *missing* names the indexes that answered "not here" in this request; *cached* holds the
    project's stored pages (the bound index's tells what it offered, in a refusal). Pure.
    """
    project = scoped.project
    if strategy is Strategy.UNSAFE_BEST_MATCH and scoped.pinned_to is None:
        return Verdict()  # the documented opt-out: bindings are neither checked nor made
    if not scoped.pages:
        return Verdict()  # nothing served: nothing to bind, nothing to swap to
    page = scoped.pages[0]
    chosen = next((i for i in indexes if i.name == page.index), None)
    if chosen is None:
        return Verdict()
    if binding is not None and binding.how is How.CONTESTED and scoped.pinned_to is None:
        return Verdict(refuse=contested(scoped, binding, chosen, page))
    identity = index_identity(chosen.url)
    absent = _absent(project, missing, indexes, binding)
    if scoped.pinned_to is not None:
        if binding is not None and binding.url == identity:
            return Verdict(held=binding, absent=absent)
        how = How.PIN
    elif binding is None:
        if not page.files:
            # Nothing came from it: a page listing no files (a captive portal's login page,
            # an error page served with 200) binds nothing, or it would hold the project to
            # an index that never served it once the real answers are back.
            return Verdict()
        how = How.FIRST_USE
    elif binding.url == identity:
        return Verdict(held=binding, absent=absent)
    else:
        return Verdict(refuse=refusal(scoped, binding, chosen, page, indexes, missing, cached))
    if not online:
        return Verdict()  # bindings are made from what an index answers, not from the cache
    fresh = Binding(project=project, url=identity, index=chosen.name, how=how, bound_at=time.time())
    return Verdict(held=fresh, bind=fresh, absent=absent)


def _absent(
    project: str, missing: Sequence[str], indexes: Sequence[IndexLike], binding: Binding | None
) -> tuple[str, ...]:
    known = set(binding.absent) if binding is not None else set()
    found = []
    for index in indexes:
        if index.name in missing:
            identity = index_identity(index.url)
            if identity not in known:
                found.append(identity)
    return tuple(found)


def refusal(
    scoped: ScopedPages,
    binding: Binding,
    chosen: IndexLike,
    page: ProjectPage,
    indexes: Sequence[IndexLike],
    missing: Sequence[str],
    cached: Sequence[ProjectPage],
) -> OriginChanged:
    """The error for *scoped*'s project about to come from *chosen* instead of its binding."""
    project = scoped.project
    bound = next((i for i in indexes if index_identity(i.url) == binding.url), None)
    bound_name = bound.name if bound is not None else binding.index
    bound_page = next((p for p in cached if p.index in (bound_name, binding.index)), None)
    if bound is None:
        why = "is no longer configured (removed, or its URL changed)"
        reason = "not-configured"
    elif bound.explicit and scoped.pinned_to != bound.name:
        why = f"is explicit = true and {project} is not pinned to it"
        reason = "explicit-unpinned"
    elif bound.name in missing:
        why = f"now answers 'not found' for {project} (HTTP 404 or 410)"
        reason = "not-found"
    else:
        why = f"is now behind index '{chosen.name}' in the configured order"
        reason = "shadowed"
    old_versions = page_versions(bound_page) if bound_page is not None else ()
    new_versions = page_versions(page)
    trust = f"satchel origins trust {project} {chosen.name}"
    message = (
        f"{project} came from index '{bound_name}' ({binding.url}"
        f"{_offered(old_versions)}), which {why}; it would now come from index "
        f"'{chosen.name}' ({index_identity(chosen.url)}{_offered(new_versions)}). Refused: a "
        f"project is never taken from another index without your word (it may be an impostor). "
        f"If the change is intended, accept it with `{trust}` (or pin it: "
        f"`satchel index pin {project} {chosen.name}`); `--index-strategy unsafe-best-match` "
        "ignores remembered origins for one command"
    )
    return OriginChanged(
        message,
        details={
            "project": project,
            "reason": reason,
            "bound": {
                "index": bound_name,
                "url": binding.url,
                "how": str(binding.how),
                "bound_at": binding.bound_at,
                "versions": list(old_versions),
            },
            "offered": {
                "index": chosen.name,
                "url": index_identity(chosen.url),
                "versions": list(new_versions),
            },
            "accept": trust,
        },
    )


def contested(
    scoped: ScopedPages, binding: Binding, chosen: IndexLike, page: ProjectPage
) -> OriginChanged:
    """The error for a project whose binding a database rebuild could not restore."""
    project = scoped.project
    new_versions = page_versions(page)
    trust = f"satchel origins trust {project} {chosen.name}"
    message = (
        f"{project}: the cache database was rebuilt after damage, and the stored files of "
        f"{project} came from several indexes ({binding.index}), so Satchel cannot tell which "
        f"one it was bound to; it would now come from index '{chosen.name}' "
        f"({index_identity(chosen.url)}{_offered(new_versions)}). Refused until you say which "
        f"index {project} comes from: `satchel origins trust {project} <index>` (e.g. "
        f"`{trust}`), or pin it: `satchel index pin {project} <index>`"
    )
    return OriginChanged(
        message,
        details={
            "project": project,
            "reason": "contested",
            "bound": {
                "index": binding.index,
                "url": binding.url,
                "how": str(binding.how),
                "bound_at": binding.bound_at,
                "versions": [],
            },
            "offered": {
                "index": chosen.name,
                "url": index_identity(chosen.url),
                "versions": list(new_versions),
            },
            "accept": trust,
        },
    )


def _offered(versions: Sequence[str]) -> str:
    if not versions:
        return ""
    shown = list(versions[-5:])
    return ", offering " + ", ".join(shown)
