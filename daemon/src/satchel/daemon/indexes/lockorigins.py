"""Which configured index each file of a lock comes from (pylock.toml, uv.lock).

A lock file lists URLs and hashes; it is input, not configuration. Satchel never fetches a file
because a lock names its URL: every locked file is tied to a configured index, and the trust model
of `satchel.daemon.indexes.origins` holds for it as for a resolve. The index of a package is

1. the index the lock names (``index`` in a PEP 751 lock, ``source.registry`` in a uv.lock), when
   it is configured (matched by `origins.index_identity`); a lock naming an index that is not
   configured is refused. A project bound to another index is refused (`OriginChanged`, naming
   both and the way out), as a resolve would refuse it;
2. without one (uv and pip often write none): the index the project is bound to; else, the
   configured indexes in scope for the project (its pin, else every non-explicit index, in
   order).

Under first-index, a project bound to no index and pinned to none is first bound as a resolve
binds it (`_first_use`; offline, held to the first index with a stored page, unrecorded), unless
the lock names an explicit index: a lock never takes a project past the first index that serves
it.

A file whose name is not of its package's project is refused first (the checks are of that
project). A file is then taken from the first of those indexes that vouches for it, by its
sha256 (the lock's sha256 is the file's identity; the index is the trust):

* the index recorded as having served that sha256 for the project (provenance: this is how a
  stored file installs offline);
* the index's page for the project lists that sha256 (the cached page, then, online, a fresh
  one): the file is fetched from the URL that page gives, not from the lock's;
* the file's URL is on the index's own origin (scheme, host and port), under the index's own
  path (its URL less a trailing ``simple/``: another index on the same server is not it).

Online, a project tied this way that was bound to no index is bound to it (trust on first use).
A file no index vouches for is refused, naming the package, the file and what is missing.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import trio
from packaging.utils import canonicalize_name

from satchel.daemon.errors import (
    IndexUnreachable,
    NotCached,
    NotFound,
    OriginChanged,
    SatchelError,
)
from satchel.daemon.indexes.origins import Binding, How, Verdict, index_identity
from satchel.daemon.indexes.session import Session
from satchel.daemon.resolver.pylock import Lock, LockedPackage
from satchel.daemon.resolver.reqfiles import RequirementsFileError
from satchel.daemon.resolver.scope import Strategy
from satchel.daemon.resolver.target import Target
from satchel.daemon.settings.config import IndexConfig
from satchel.daemon.settings.credentials import strip_userinfo
from satchel.daemon.storage.model import FileEntry
from satchel.daemon.upstream.simple import file_project

__all__ = ["FileRef", "locked_files", "unsupported_notes"]

#: (index, project, file): what prefetch, install and run fetch or require.
FileRef = tuple[IndexConfig, str, FileEntry]

_DEFAULT_PORTS = {"http": 80, "https": 443}

#: Packages of one lock tied at a time. Tying a package costs database reads and, for files on
#: a host other than the index's (a CDN) whose page is not cached yet, one page request: a lock
#: of a few hundred packages then waits on the network a few dozen times, not a few hundred.
#: The upstream's per-index limit still bounds what one index sees.
CONCURRENCY = 16


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port or _DEFAULT_PORTS.get(scheme)
    except ValueError:
        port = None
    return scheme, (parts.hostname or "").lower(), port


def _under(file_url: str, index_url: str) -> bool:
    """Whether *file_url* is on *index_url*'s origin and under its path, less a trailing
    ``simple/`` (``+simple/``): one server often hosts several indexes by path (Nexus,
    Artifactory, GitLab, devpi: the private one and a proxy of the public one), and a URL on
    the proxy's path is not the private index's to vouch for."""
    if _origin(file_url) != _origin(index_url):
        return False
    base = urlsplit(index_url).path.rstrip("/")
    last = base.rpartition("/")[2]
    if last in ("simple", "+simple") or last.endswith((".html", ".htm")):  # or a flat page
        base = base.rpartition("/")[0]
    return urlsplit(file_url).path.startswith(f"{base}/")


async def locked_files(session: Session, lock: Lock, target: Target | None = None) -> list[FileRef]:
    """(index, project, file) for *lock*: with a *target*, the best file of each package the
    target needs (a package Satchel cannot install is refused); without, every file listed of
    every package (what a prefetch stores). Raises as the module docstring says."""
    chosen: list[tuple[LockedPackage, tuple[FileEntry, ...]]] = []
    if target is None:
        chosen = [(p, p.files()) for p in lock.packages if p.unsupported is None]
    else:
        for package in lock.applicable(target):
            if package.unsupported is not None:
                raise RequirementsFileError(f"{lock.path}: {package.unsupported}")
            best = package.best_file(target)
            if best is None:
                raise NotFound(
                    f"{lock.path}: no file of {package.name} {package.version or ''} fits this "
                    f"environment ({target.executable or target.python_version})",
                    details={"package": package.name},
                )
            chosen.append((package, (best,)))
    results: list[list[FileRef] | SatchelError] = [[] for _ in chosen]
    limiter = trio.CapacityLimiter(CONCURRENCY)

    async def tie(number: int, package: LockedPackage, files: tuple[FileEntry, ...]) -> None:
        async with limiter:
            try:
                results[number] = await _tie_package(session, lock, package, files)
            except SatchelError as exc:  # raised below, in the lock's order, not as a group
                results[number] = exc

    async with trio.open_nursery() as nursery:
        for number, (package, files) in enumerate(chosen):
            nursery.start_soon(tie, number, package, files)
    out: list[FileRef] = []
    for result in results:
        if isinstance(result, SatchelError):
            raise result
        out.extend(result)
    return out


async def _tie_package(
    session: Session, lock: Lock, package: LockedPackage, files: tuple[FileEntry, ...]
) -> list[FileRef]:
    for file in files:
        # The origin checks below are of *package*: a file of another project listed under
        # it would pass that project's binding by (an index page never lists one either).
        owner = file_project(file.filename)
        if owner != package.name:
            raise RequirementsFileError(
                f"{lock.path}: {package.name} {package.version or ''} lists {file.filename}, "
                + (
                    f"a file of {owner}, not of '{package.name}'"
                    if owner is not None
                    else "which is not a wheel or sdist file name"
                )
                + ": refused (a lock cannot take a project past its index under another name)",
                details={"package": package.name, "file": file.filename},
            )
    scope = await _candidates(session, lock, package)
    out: list[FileRef] = []
    used: dict[str, IndexConfig] = {}
    for file in files:
        index, trusted = await _vouched(session, lock, package, scope, file)
        out.append((index, package.name, trusted))
        used[index.name] = index
    if len(used) == 1 and not scope.bound:
        await _bind(session, package.name, *used.values())
    return out


def unsupported_notes(lock: Lock) -> list[str]:
    """What a prefetch of *lock* cannot store, and what it leaves to pip or uv, for notes."""
    notes = [f"{lock.path}: {p.unsupported}" for p in lock.packages if p.unsupported]
    if lock.skipped:
        notes.append(
            f"{lock.path}: not installed from the lock (the project's own code): "
            + ", ".join(lock.skipped)
        )
    return notes


@dataclass(frozen=True)
class Scope:
    """The indexes a locked package may come from, and why those (for messages)."""

    indexes: list[IndexConfig]
    why: str
    #: The command that accepts another index for the package (None: `satchel index add`).
    accept: str | None = None
    #: Whether the package's project is bound to an index already (nothing to bind).
    bound: bool = False


async def _candidates(session: Session, lock: Lock, package: LockedPackage) -> Scope:
    project = package.name
    binding = await trio.to_thread.run_sync(session.catalog.origins.get, project)
    if session.strategy is Strategy.UNSAFE_BEST_MATCH:
        binding = None  # the documented opt-out: bindings are neither checked nor made
    configured = {index_identity(i.url): i for i in session.indexes}
    pins: dict[str, str] = {canonicalize_name(k): v for k, v in session.config.pins.items()}
    pinned = pins.get(project)
    named = None
    if package.index is not None:
        named = configured.get(index_identity(package.index))
        if named is None:
            raise NotFound(
                f"{lock.path}: {project} is locked to index {strip_userinfo(package.index)}, "
                "which is not configured; add it with `satchel index add NAME URL` if you "
                "trust it",
                details={"package": project, "index": strip_userinfo(package.index)},
            )
    fresh = False  # bound by this very install (`_first_use`), not before
    if binding is None and pinned is None and not (named is not None and named.explicit):
        binding = await _first_use(session, project)
        fresh = binding is not None
    if named is not None:
        if binding is not None and binding.url != index_identity(named.url):
            raise _refusal(lock, project, binding, named, fresh=fresh)
        if binding is None and pinned is not None and pinned != named.name:
            raise NotFound(
                f"{lock.path}: {project} is pinned to index '{pinned}' in config.toml; the lock "
                f"takes it from index '{named.name}'. Refused: the pin is your word; change it "
                f"with `satchel index pin {project} {named.name}` if the lock is right",
                details={"package": project, "index": named.name, "pinned": pinned},
            )
        return Scope([named], "the index the lock names", bound=binding is not None)
    if binding is not None:
        index = configured.get(binding.url)
        if index is None:
            raise OriginChanged(
                f"{lock.path}: {project} came from index '{binding.index}' ({binding.url}), "
                "which is no longer configured, and the lock names no index. Refused: a project "
                "is never taken from another index without your word; add the index again, or "
                f"accept another with `satchel origins trust {project} INDEX`",
                details={"project": project, "reason": "not-configured", "bound": binding.url},
            )
        return Scope(
            [index],
            f"the first index that serves {project}" if fresh else f"{project} came from it before",
            accept=f"satchel origins trust {project} INDEX",
            bound=True,
        )
    if pinned is not None:
        index = session.index(pinned)
        return Scope([index] if index is not None else [], f"{project} is pinned to it")
    return Scope([i for i in session.indexes if not i.explicit], "every non-explicit index")


async def _first_use(session: Session, project: str) -> Binding | None:
    """Under first-index: bind *project* as a resolve would (to the first index in scope that
    serves it) and return that binding, so that a lock meets the same scope as a resolve; a
    lock's file on a later index is then refused, never the start of a binding to it
    (dependency confusion by lock file). Offline nothing is bound, but the project is held to
    the first index with a stored page, as an offline resolve is: a file a later index served
    (stored by an opted-out command) is not taken past it. None when no index serves (or,
    offline, has served) the project's page (a file known only by its URL on an index's
    origin, or by its provenance), or under unsafe-best-match.

    A lock naming an explicit index is not checked this way: naming it is what an explicit
    index is for (a uv project's ``[tool.uv.sources]`` pin, recorded in its uv.lock)."""
    if session.strategy is not Strategy.FIRST_INDEX:
        return None
    try:
        scoped = await session.scoped_pages(project)
    except IndexUnreachable:
        if not session.offline:
            raise
        return None  # every index down and nothing stored of it: provenance decides
    binding = await trio.to_thread.run_sync(session.catalog.origins.get, project)
    first = session.index(scoped.pages[0].index) if scoped.pages else None
    if binding is None and first is not None:
        # Its page lists no files, or the session is offline, so nothing was bound
        # (`origins.judge`), but under first-index it is still the only index the project may
        # come from: held to it for this install, unrecorded.
        return Binding(
            project=project,
            url=index_identity(first.url),
            index=first.name,
            how=How.FIRST_USE,
            bound_at=time.time(),
        )
    return binding


def _refusal(
    lock: Lock, project: str, binding: Binding, index: IndexConfig, *, fresh: bool = False
) -> OriginChanged:
    """*fresh*: *binding* was made by this very install (`_first_use`), so the message says
    why that index, not that the project "came from" it before."""
    trust = f"satchel origins trust {project} {index.name}"
    source = f"index '{binding.index}' ({binding.url})"
    history = (
        f"{source} is the first index that serves {project} (first-index: it comes only from there)"
        if fresh
        else f"{project} came from {source}"
    )
    return OriginChanged(
        f"{lock.path}: {history}; the lock "
        f"takes it from index '{index.name}' ({index_identity(index.url)}). Refused: a project is "
        "never taken from another index without your word (it may be an impostor). If the "
        f"change is intended, accept it with `{trust}`",
        details={
            "project": project,
            "reason": "lock",
            "bound": {"index": binding.index, "url": binding.url},
            "offered": {"index": index.name, "url": index_identity(index.url)},
            "accept": trust,
        },
    )


async def _vouched(
    session: Session,
    lock: Lock,
    package: LockedPackage,
    scope: Scope,
    file: FileEntry,
) -> tuple[IndexConfig, FileEntry]:
    """The first index of *scope* that vouches for *file*, and the entry to fetch it by."""
    catalog, project, sha, candidates = session.catalog, package.name, file.sha256, scope.indexes
    if sha is not None:
        served = await trio.to_thread.run_sync(catalog.metadb.origins, sha)
        for index in candidates:
            for origin in served:
                if origin.index == index.name and origin.project == project:
                    return index, FileEntry.of(
                        filename=origin.filename,
                        url=origin.url,
                        hashes=file.hashes,
                        size=file.size,
                        requires_python=file.requires_python,
                    )
    for index in candidates:
        page = await trio.to_thread.run_sync(catalog.metadb.get_page, index.name, project)
        listed = _listing(page.files, sha) if page is not None and sha is not None else None
        if listed is not None:
            return index, listed
    for index in candidates:
        if _under(file.url, index.url):
            return index, file
    unreachable: list[str] = []
    if not session.offline and sha is not None:
        for index in candidates:
            try:
                fresh = await catalog.fetch_page(index, project)
            except IndexUnreachable:
                unreachable.append(index.name)
                continue
            listed = _listing(fresh.files, sha) if fresh is not None else None
            if listed is not None:
                return index, listed
    raise _unvouched(session, lock, package, scope, file, unreachable)


def _listing(files: Sequence[FileEntry], sha: str) -> FileEntry | None:
    return next((f for f in files if f.sha256 == sha), None)


def _unvouched(
    session: Session,
    lock: Lock,
    package: LockedPackage,
    scope: Scope,
    file: FileEntry,
    unreachable: list[str],
) -> NotCached | NotFound:
    what = f"{lock.path}: {package.name} {package.version or ''} ({file.filename})".replace(
        "  ", " "
    )
    names = ", ".join(f"'{i.name}'" for i in scope.indexes) or "none"
    details = {"package": package.name, "file": file.filename, "indexes": names}
    if session.offline:
        return NotCached(
            f"{what}: offline, and no index in scope for {package.name} ({names}: {scope.why}) "
            f"is recorded as having served sha256 {file.sha256}: it is not in the cache from "
            "an index in scope; run `satchel prefetch` with this lock while online",
            details=details,
        )
    scheme, host, port = _origin(file.url)
    folder = urlsplit(file.url).path.rpartition("/")[0]
    where = f"{scheme}://{host}:{port}{folder}/" if host else file.url
    down = f" (unreachable: {', '.join(unreachable)})" if unreachable else ""
    accept = (
        f"if the change is intended, accept the index it comes from with `{scope.accept}`"
        if scope.accept
        else "add the index it comes from with `satchel index add NAME URL`"
    )
    return NotFound(
        f"{what}: no index in scope for {package.name} ({names}: {scope.why}) serves this "
        f"file{down}: none lists sha256 {file.sha256} on its page for {package.name}, and its "
        f"URL is under {where}, none of their origins and paths. Satchel does not fetch a file "
        f"because a lock names its URL; {accept}",
        details=details,
    )


async def _bind(session: Session, project: str, index: IndexConfig) -> None:
    """Online, a project tied to *index* and bound to none is bound to it (first use: a
    binding another request made meanwhile stands, `Origins.apply`)."""
    if session.offline or session.strategy is Strategy.UNSAFE_BEST_MATCH:
        return
    binding = Binding(
        project=project,
        url=index_identity(index.url),
        index=index.name,
        how=How.FIRST_USE,
        bound_at=time.time(),
    )
    await trio.to_thread.run_sync(session.catalog.origins.apply, Verdict(bind=binding), project)
