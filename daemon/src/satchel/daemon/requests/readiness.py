"""What a watched project needs, fetching it (prefetch) and checking it is all here (ready).

Both questions go through the same steps as `satchel prefetch`, one input file (unit) at a time:

    target   --python, else the project's .venv, else the daemon's interpreter   (resolution)
    units    each input file read on its own                                          (watch)
    files    requirements resolved (resolution.resolve_request); locks taken as listed, the
             file that fits the target per package (pylock.best_file, lockorigins.locked_files)
    then     prefetch: fetch each file into the store (catalog.fetch_file)
             ready:    nothing is fetched; the resolve runs OFFLINE, where the catalog lists only
                       files whose bytes are stored, so a unit that resolves offline also installs
                       offline, and every lock file is checked against the store

A unit that fails (unreadable file, resolution impossible, index down) is reported with its
file name and does not stop the others: one broken script must not leave a project cold.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
import trio

from satchel.daemon.errors import SatchelError
from satchel.daemon.indexes.lockorigins import locked_files
from satchel.daemon.indexes.session import Session
from satchel.daemon.requests.builder import build_sdists, cached_wheel, not_built
from satchel.daemon.requests.fetching import fetch_files
from satchel.daemon.requests.resolution import (
    Inputs,
    pinned_files,
    resolve_request,
    target_for,
)
from satchel.daemon.requests.runtime import Runtime
from satchel.daemon.requests.tools import list_tools
from satchel.daemon.requests.watch import Record, WatchedProject, input_state, read_unit
from satchel.daemon.resolver import pylock
from satchel.daemon.resolver.target import Target
from satchel.daemon.settings.config import IndexConfig
from satchel.daemon.settings.credentials import redact
from satchel.daemon.storage.model import FileEntry
from satchel.protocol.methods.resolve import ResolveParams

__all__ = [
    "Check",
    "Needed",
    "Progress",
    "ToolCheck",
    "check_project",
    "check_tools",
    "describe_target",
    "missing_files",
    "needed_files",
    "prefetch_project",
    "project_target",
    "python_for",
]

log = logging.getLogger(__name__)

#: ``progress(done_bytes, total_bytes_or_None, unit, message)``, as `RequestContext.progress`.
Progress = Callable[[int, int | None, str, str], Awaitable[None]]

FileRef = tuple[IndexConfig, str, FileEntry]


@dataclass
class Needed:
    """The files a project needs for its target, and what could not be worked out."""

    target: Target | None
    #: Each input file's mtime (ns), taken before it was read.
    sources: dict[str, int] = field(default_factory=dict)
    files: list[FileRef] = field(default_factory=list)
    #: One line per failed unit ("requirements.txt: ...").
    errors: list[str] = field(default_factory=list)
    #: True when the indexes could not be reached and the cache answered instead.
    offline: bool = False

    @property
    def projects(self) -> list[str]:
        return sorted({project for _index, project, _file in self.files})

    def add(self, refs: list[FileRef]) -> None:
        seen = {file.sha256 or file.url for _i, _p, file in self.files}
        for ref in refs:
            key = ref[2].sha256 or ref[2].url
            if key not in seen:
                seen.add(key)
                self.files.append(ref)


def python_for(project: WatchedProject) -> str | None:
    """The interpreter to prefetch for: --python, else the project's ``.venv``, else default."""
    if project.python is not None:
        return project.python
    venv = project.root / ".venv"
    return str(venv) if venv.is_dir() else None


async def project_target(rt: Runtime, project: WatchedProject) -> Target:
    python = await trio.to_thread.run_sync(python_for, project)
    return await target_for(rt, ResolveParams(python=python))


def describe_target(target: Target | None) -> str:
    if target is None:
        return ""
    return target.executable or f"Python {target.python_version}"


async def _lock_files(session: Session, lock: pylock.Lock, target: Target) -> list[FileRef]:
    """The file of each package *target* needs (the best wheel, else the sdist); a package
    with no file that fits, or none from an index, is left out."""
    chosen = []
    for package in lock.applicable(target):
        best = package.best_file(target)
        if best is None:
            continue
        wheels = (best,) if best.is_wheel else ()
        sdist = None if best.is_wheel else best
        chosen.append(msgspec.structs.replace(package, wheels=wheels, sdist=sdist))
    return await locked_files(session, msgspec.structs.replace(lock, packages=tuple(chosen)))


async def needed_files(
    rt: Runtime,
    project: WatchedProject,
    *,
    offline: bool,
    target: Target | None = None,
    background: bool = False,
) -> Needed:
    """Resolve every unit of *project* (online or strictly offline) into the files it needs;
    *background*: for a prefetch no command asked for (builds only where config.toml says)."""
    if target is None:
        target = await project_target(rt, project)
    needed = Needed(target)
    needed.sources = await trio.to_thread.run_sync(input_state, Path(project.path))
    paths = [Path(p) for p in needed.sources]
    if not paths:
        needed.errors.append(f"{project.path}: no requirements, pyproject.toml, lock or script")
    params = ResolveParams(offline=offline)
    session = rt.catalog.session(offline=offline)
    for path in paths:
        try:
            unit = await trio.to_thread.run_sync(read_unit, path)
            for lock in unit.inputs.locks:
                needed.add(await _lock_files(session, lock, target))
            reqs = unit.inputs.requirements
            if reqs.requirements:
                inputs = Inputs(requirements=reqs, project=unit.inputs.project)
                outcome = await resolve_request(rt, params, inputs, target, background=background)
                needed.offline |= outcome.session.offline
                needed.add(pinned_files(outcome.session, outcome.resolution.pins))
        except SatchelError as exc:
            needed.errors.append(f"{path.name}: {redact(exc.message)}")
    return needed


def missing_files(rt: Runtime, files: list[FileRef]) -> list[str]:
    return [
        f"{project} ({file.filename})"
        for _index, project, file in files
        if file.sha256 is None or not rt.store.has(file.sha256)
    ]


async def _build_sdists(
    rt: Runtime, needed: Needed, stored: dict[str, str], *, background: bool
) -> list[str]:
    """Build every stored sdist the project pins for its target, as `satchel prefetch` does, so
    that it is ready offline; one failure per sdist, the others still built."""
    if needed.target is None or needed.offline:
        return []
    session = rt.catalog.session(background=background)
    failures = []
    for _index, project, file in needed.files:
        if file.is_wheel or file.url not in stored:
            continue
        try:
            await build_sdists(rt, session, needed.target, [(project, file)], stored)
        except SatchelError as exc:
            failures.append(f"{project} ({file.filename}): {redact(exc.message)}")
    return failures


async def prefetch_project(
    rt: Runtime,
    project: WatchedProject,
    progress: Progress | None = None,
    *,
    background: bool = False,
) -> Record:
    """Resolve *project* online and store every file it needs; the outcome as a `Record`.

    *background* (watch add, a changed file, a refresh: no command asked for it) builds sdists
    only where config.toml's ``builds = "background"`` allows it; otherwise each unbuilt sdist
    is a problem of the record saying how to build it.
    """
    started = time.time()
    try:
        needed = await needed_files(rt, project, offline=False, background=background)
    except SatchelError as exc:  # the target interpreter itself is unusable
        return Record(at=started, ok=False, message=redact(exc.message), missing=[exc.message])
    fetched = await fetch_files(rt.catalog, needed.files, progress)
    failures = [f"{what}: {redact(exc.message)}" for what, exc in fetched.failures]
    failures += await _build_sdists(rt, needed, fetched.stored, background=background)
    downloaded, total = fetched.downloaded, fetched.total_bytes
    needed_shas = list(fetched.stored.values())
    missing = needed.errors + failures
    ok = not missing and not needed.offline
    if ok:
        message = f"{len(needed.files)} files, {downloaded} downloaded"
    elif needed.offline:
        message = "offline: every configured index is unreachable"
    else:
        message = f"{len(missing)} problem(s): {missing[0]}"
    log.info("watched project %s: %s", project.path, message)
    return Record(
        at=started,
        ok=ok,
        message=message,
        files=len(needed.files),
        downloaded=downloaded,
        bytes=total,
        missing=missing,
        needed=sorted(set(needed_shas)),
        projects=needed.projects,
        target=describe_target(needed.target),
        sources=needed.sources,
    )


@dataclass
class Check:
    """The answer to "can *project* be installed offline?"."""

    needed: Needed
    gaps: list[str]
    #: Stored bytes of the needed files that are present.
    size: int = 0

    @property
    def ready(self) -> bool:
        return not self.gaps


def _stored_size(rt: Runtime, files: list[FileRef]) -> int:
    total = 0
    for _index, _project, file in files:
        if file.sha256 is not None and rt.store.has(file.sha256):
            total += rt.store.path(file.sha256).stat().st_size
    return total


async def check_project(rt: Runtime, project: WatchedProject) -> Check:
    """Resolve *project* offline (never touching the network) and list what is not stored."""
    try:
        needed = await needed_files(rt, project, offline=True)
    except SatchelError as exc:
        return Check(Needed(None), [redact(exc.message)])
    wheels = [ref for ref in needed.files if ref[2].is_wheel]
    gaps = needed.errors + missing_files(rt, wheels) + await _unbuilt(rt, needed)
    size = await trio.to_thread.run_sync(_stored_size, rt, needed.files)
    return Check(needed, gaps, size)


async def _unbuilt(rt: Runtime, needed: Needed) -> list[str]:
    """A gap per sdist with no wheel built from it for the target, saying how to build one.

    An offline install uses the wheel built from a pinned sdist for that very interpreter and
    never the sdist itself (`environments`): a stored sdist without that wheel cannot install,
    and a built wheel installs even if the sdist is gone.
    """
    gaps: list[str] = []
    for _index, project, file in needed.files:
        if file.is_wheel:
            continue
        if needed.target is None:
            gaps.append(f"{project} ({file.filename})")
            continue
        sha = file.sha256
        if sha is None or await cached_wheel(rt, sha, needed.target) is None:
            gaps.append(not_built(project, file, needed.target).message)
    return gaps


@dataclass
class ToolCheck:
    """A cached tool environment: runnable offline when it is intact."""

    spec: str
    environment: str
    files: int
    size: int
    gaps: list[str]


def _tool_gaps(environment: Path, commands: list[str]) -> list[str]:
    """What keeps a built tool environment from running (blocking).

    A finished environment needs nothing from the store or the network; it breaks only when its
    base interpreter is uninstalled (``bin/python`` dangles) or its files are removed.
    """
    gaps = []
    python = environment / "bin" / "python"
    if not python.exists():
        gaps.append(f"its interpreter is gone ({python} no longer runs)")
    gaps.extend(
        f"command {command} is missing"
        for command in commands
        if not (environment / "bin" / command).exists()
    )
    return gaps


async def check_tools(rt: Runtime) -> list[ToolCheck]:
    """Every cached tool environment (`satchel run`), checked without the network."""
    out = []
    for tool in await list_tools(rt):
        gaps = await trio.to_thread.run_sync(_tool_gaps, Path(tool.environment), tool.commands)
        out.append(ToolCheck(tool.spec, tool.environment, len(tool.pins), tool.size, gaps))
    return out
