"""Install a resolved set into an environment, from the store only.

    venv      created when missing (fast: no pip), else used as it is              (venv)
    target    the environment's own interpreter: markers, tags, install scheme   (target)
    resolve   against what is installed: keep what satisfies, change what must (resolution)
    files     every pinned file in the store: fetched online, required offline   (catalog)
    build     a pinned sdist: the wheel built from it for this interpreter        (builder)
    unpack    each wheel once into the cache, keyed by its sha256                   (wheel)
    link      staged, then committed (or rolled back) under the environment's lock (installer)

Every blocking step (venv creation, unpacking, linking) runs in a worker thread. Requests for one
environment are serialised in the daemon from resolve to commit (a trio lock per environment), and
the installer takes an ``flock`` on the environment against other processes; installs into
different environments run in parallel. The flock is taken inside the worker thread, so a waiting
install never blocks the event loop.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import trio

from satchel.daemon.errors import InstallError
from satchel.daemon.indexes.lockorigins import locked_files
from satchel.daemon.indexes.session import Session
from satchel.daemon.installing.installer import (
    InstallItem,
    InstallReport,
    Scheme,
    TreeChanged,
    install,
    installed_distributions,
)
from satchel.daemon.installing.journal import journal_dir
from satchel.daemon.installing.linking import LinkMode
from satchel.daemon.installing.venv import create_venv
from satchel.daemon.installing.wheel import unpack_all
from satchel.daemon.requests.builder import cached_wheel, not_built, wheel_for
from satchel.daemon.requests.fetching import fetch_files
from satchel.daemon.requests.resolution import (
    Inputs,
    escaped,
    pinned_files,
    request_session,
    resolve_request,
)
from satchel.daemon.requests.runtime import Runtime
from satchel.daemon.resolver import pylock
from satchel.daemon.resolver.target import Target, find_interpreter, query_interpreter
from satchel.daemon.settings.config import IndexConfig
from satchel.daemon.storage.metadb import BuiltWheel
from satchel.daemon.storage.model import FileEntry
from satchel.protocol.methods.resolve import ResolveParams

__all__ = [
    "Installed",
    "describe",
    "discard_new_environment",
    "install_files",
    "install_into",
    "prepare_environment",
    "scheme_for",
]

log = logging.getLogger(__name__)

Progress = Callable[[int, int | None, str, str], Awaitable[None]]

LINK_MODES: tuple[LinkMode, ...] = ("auto", "clone", "hardlink", "copy")


def scheme_for(target: Target) -> Scheme:
    """The install scheme of the environment *target* describes (from its own sysconfig)."""
    if target.synthetic or not target.paths or target.executable is None:
        raise InstallError("cannot install into an imagined (--platform/--python-version) target")
    paths = target.paths
    data = Path(paths["data"])
    scripts = Path(paths["scripts"])
    return Scheme(
        purelib=Path(paths["purelib"]),
        platlib=Path(paths["platlib"]),
        scripts=scripts,
        data=data,
        headers=data / "include" / "site" / f"python{target.python_version}",
        interpreter=scripts / "python",
    )


def _ensure_venv(venv: Path, python: str | None) -> Scheme | None:
    if (venv / "pyvenv.cfg").is_file():
        return None
    if python is None:
        raise InstallError(f"{venv} is not a virtual environment and no interpreter was given")
    # find_interpreter: `--python` means the same here as for resolve (X.Y on PATH, a venv).
    return create_venv(venv, find_interpreter(python))  # refuses a non-empty non-venv directory


#: One lock per environment (by real path) around resolve + install: the installer's flock only
#: covers linking, and an install resolved against a state another install then changed would
#: silently undo it (a lost update). Other processes (pip) are still kept out by the flock.
_env_locks: dict[str, trio.Lock] = {}


def _env_lock(venv: Path) -> trio.Lock:
    return _env_locks.setdefault(os.path.realpath(venv), trio.Lock())


async def prepare_environment(rt: Runtime, venv: Path, python: str | None) -> tuple[Target, bool]:
    """The environment at *venv* (created with *python* when missing) and whether it was new.

    A venv Satchel has just created is described from its base interpreter's cached answer
    (same markers and tags; the venv's own paths), saving a subprocess per install.
    """
    async with _env_lock(venv):
        scheme = await trio.to_thread.run_sync(_ensure_venv, venv, python)
    if scheme is None or python is None:
        return await query_interpreter(venv, cache_dir=rt.interpreters_dir), False
    base = await query_interpreter(python, cache_dir=rt.interpreters_dir)
    paths = {
        "purelib": str(scheme.purelib),
        "platlib": str(scheme.platlib),
        "scripts": str(scheme.scripts),
        "data": str(scheme.data),
        "include": base.paths.get("include", ""),
    }
    return base.for_venv(venv, paths, str(scheme.interpreter)), True


async def discard_new_environment(venv: Path, target: Target) -> None:
    """Remove the venv at *venv* that this request created and could not install into (a full
    disk), unless something got installed into it meanwhile (another request's install, which
    then owns it): no empty venv is left behind on a full file system."""

    def discard() -> None:
        if installed_distributions(scheme_for(target)):
            return
        log.info("removing %s: created by a failed install, and empty", venv)
        shutil.rmtree(venv, ignore_errors=True)

    with trio.CancelScope(shield=True):
        async with _env_lock(venv):
            await trio.to_thread.run_sync(discard)


@dataclass
class Installed:
    report: InstallReport
    kept: list[str]
    session: Session
    target: Target


async def install_into(
    rt: Runtime,
    params: ResolveParams,
    inputs: Inputs,
    venv: Path,
    *,
    target: Target | None = None,
    locks: Sequence[pylock.Lock] = (),
    link_mode: str = "auto",
    compile_bytecode: bool = False,
    progress: Progress | None = None,
) -> Installed:
    """Resolve *inputs* for the environment at *venv* and install the result from the store.

    Requests for one environment run one at a time, each resolving against what the previous
    one left installed. *target* is the environment's description when the caller has it
    (`prepare_environment`); otherwise the environment's interpreter is asked.
    """
    async with _env_lock(venv):
        return await _install_into(
            rt,
            params,
            inputs,
            venv,
            target=target,
            locks=locks,
            link_mode=link_mode,
            compile_bytecode=compile_bytecode,
            progress=progress,
        )


async def _install_into(
    rt: Runtime,
    params: ResolveParams,
    inputs: Inputs,
    venv: Path,
    *,
    target: Target | None,
    locks: Sequence[pylock.Lock],
    link_mode: str,
    compile_bytecode: bool,
    progress: Progress | None,
) -> Installed:
    if target is None:
        target = await query_interpreter(venv, cache_dir=rt.interpreters_dir)
    present = await trio.to_thread.run_sync(installed_distributions, scheme_for(target))
    installed_versions = {name: version for name, (version, _path) in present.items()}
    requested: set[str] = set()
    files: list[tuple[IndexConfig, str, FileEntry]] = []
    kept: list[str] = []
    if locks:
        session = request_session(rt, params, inputs)
        for lock in locks:
            # Every file the target needs, tied to a configured index, or the lock is refused.
            chosen = await locked_files(session, lock, target)
            files += chosen
            requested.update(project for _index, project, _file in chosen)
            if lock.skipped:
                session.notes.append(
                    f"{lock.path}: not installed from the lock (install the project's own code "
                    f"with pip or uv): {', '.join(lock.skipped)}"
                )
    else:
        outcome = await resolve_request(
            rt, params, inputs, target, installed=installed_versions, progress=progress
        )
        session = outcome.session
        kept = [f"{p.name} {p.version}" for p in outcome.resolution.pins if p.installed]
        changing = [p for p in outcome.resolution.pins if not p.installed]
        files = pinned_files(session, changing)
        requested = {p.name for p in changing if p.requested}
    report = await install_files(
        rt,
        session,
        scheme_for(target),
        target,
        files,
        requested,
        link_mode=link_mode,
        compile_bytecode=compile_bytecode,
        progress=progress,
    )
    return Installed(report=report, kept=kept, session=session, target=target)


async def install_files(
    rt: Runtime,
    session: Session,
    scheme: Scheme,
    target: Target,
    files: Sequence[tuple[IndexConfig, str, FileEntry]],
    requested: set[str],
    *,
    link_mode: str = "auto",
    compile_bytecode: bool = False,
    progress: Progress | None = None,
) -> InstallReport:
    """Fetch (or require) *files*, unpack each once, and install them into *scheme*."""
    if link_mode not in LINK_MODES:
        raise InstallError(f"unknown link mode {link_mode!r} (one of {', '.join(LINK_MODES)})")
    shas, filenames = await _wheels(rt, session, target, files, progress)
    wheels = [(rt.store.path(sha), sha) for sha in shas]
    chosen = [project in requested for _index, project, _file in files]
    report = await trio.to_thread.run_sync(
        functools.partial(
            _unpack_and_install,
            scheme,
            wheels,
            filenames,
            chosen,
            rt.store.unpacked_dir,
            journal_dir(rt.store.root),
            link_mode=link_mode,
            compile_bytecode=compile_bytecode,
        )
    )
    # The install above is one transaction, never cut midway: a Cancel that came meanwhile
    # takes effect at the next checkpoint. It committed, so what happened is its result, not
    # "cancelled" (the venv holds the new versions whatever the client was told).
    with trio.CancelScope(shield=True):
        await trio.to_thread.run_sync(rt.metadb.mark_used, shas, time.time())
    if report.overwritten:
        session.notes.append(overwritten_warning(report.overwritten))
    return report


#: Replaced files named in the warning; the rest are counted.
_MAX_OVERWRITTEN_NAMED = 5


def overwritten_warning(overwritten: Sequence[str]) -> str:
    """The user's warning for files an install replaced that no distribution it replaced
    lists: two distributions now claim them (pip replaces such files silently; uv warns).
    A wheel's member names may hold control characters: the paths are `escaped`."""
    named = "; ".join(escaped(path) for path in overwritten[:_MAX_OVERWRITTEN_NAMED])
    more = len(overwritten) - _MAX_OVERWRITTEN_NAMED
    log.warning("install replaced files no replaced distribution lists: %s", named)
    return (
        f"warning: replaced {len(overwritten)} file(s) that belong to another distribution or "
        f"to none (uninstalling either distribution may break the other): {named}"
        + (f"; and {more} more" if more > 0 else "")
    )


#: Installs retried after unpacking again the trees an install found changed: a tree edited
#: once is repaired by one retry; one edited again during each retry is refused by the last.
_TREE_RETRIES = 2


def _unpack_and_install(
    scheme: Scheme,
    wheels: list[tuple[Path, str]],
    filenames: list[str],
    requested: list[bool],
    unpacked_dir: Path,
    journals: Path,
    *,
    link_mode: str,
    compile_bytecode: bool,
) -> InstallReport:
    """Unpack each wheel once and install; a tree found changed while linking (the install was
    rolled back) is unpacked again from its blob and the install retried (issue 11.15)."""
    again: set[str] = set()
    for attempt in range(_TREE_RETRIES + 1):
        trees = unpack_all(wheels, unpacked_dir, filenames=filenames, again=again)
        items = [
            InstallItem(unpacked=tree, requested=chosen)
            for tree, chosen in zip(trees, requested, strict=True)
        ]
        try:
            return install(
                scheme,
                items,
                journal_dir=journals,
                link_mode=link_mode,  # type: ignore[arg-type]  # checked by install_files
                compile_bytecode=compile_bytecode,
            )
        except TreeChanged as exc:
            if attempt == _TREE_RETRIES:
                raise
            names = dict(zip((sha for _path, sha in wheels), filenames, strict=True))
            for sha, members in exc.changed.items():
                log.warning(
                    "the unpacked tree of %s (%s) changed since it was unpacked (%s): "
                    "unpacking it again from the stored file",
                    names.get(sha, sha),
                    sha,
                    ", ".join(members[:5]) + (", ..." if len(members) > 5 else ""),
                )
            again = set(exc.changed)
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


async def _wheels(
    rt: Runtime,
    session: Session,
    target: Target,
    files: Sequence[tuple[IndexConfig, str, FileEntry]],
    progress: Progress | None,
) -> tuple[list[str], list[str]]:
    """sha256 and file name of the wheel to install for each of *files*.

    A pinned sdist is replaced by the wheel built from it for *target*: a stored build is used
    as it is (offline the sdist itself is then not even needed); online, a missing one is built
    now; offline, it is `builder.NotBuilt`, raised before anything is fetched or written.
    """
    built: dict[int, BuiltWheel] = {}
    for position, (_index, project, file) in enumerate(files):
        if file.is_wheel:
            continue
        found = await cached_wheel(rt, file.sha256, target) if file.sha256 else None
        if found is not None:
            built[position] = found
        elif session.offline or target.synthetic:
            raise not_built(project, file, target)
        else:  # a build the user forbade fails before anything is fetched
            session.builds.check(project, file.filename)
    pending = [entry for position, entry in enumerate(files) if position not in built]
    result = await fetch_files(session.catalog, pending, progress, offline=session.offline)
    result.raise_failures()
    fetched = iter(result.stored[file.url] for _index, _project, file in pending)
    shas: list[str] = []
    filenames: list[str] = []
    for position, (_index, project, file) in enumerate(files):
        wheel = built.get(position)
        if wheel is None and not file.is_wheel:
            wheel = await wheel_for(rt, session, target, project, file, next(fetched))
        if wheel is not None:
            shas.append(wheel.wheel_sha256)
            filenames.append(wheel.filename)
        else:
            shas.append(next(fetched))
            filenames.append(file.filename)
    return shas, filenames


def describe(report: InstallReport) -> tuple[list[str], list[str]]:
    return (
        [f"{name} {version}" for name, version in report.installed],
        [f"{name} {version}" for name, version in report.removed],
    )
