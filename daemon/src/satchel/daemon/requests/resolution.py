"""Resolve and prefetch requests: from `ResolveParams` to pins, lock text and stored files.

The steps, each behind its own module's seam:

    inputs   requirement strings, -r/-c files, pyproject.toml, locks  (reqfiles, pylock, uvlock)
    target   the interpreter asked for (queried once, cached) or a synthetic one        (target)
    session  one configuration snapshot, online or offline                              (catalog)
    resolve  resolvelib in a worker thread, calling back into trio for pages/metadata (resolver)
    fetch    every pinned file, hash-checked into the store with its origin          (fetching)

The resolver thread reaches trio only through `SessionSource`, whose two methods hop back to the
event loop with ``trio.from_thread.run``; a cancelled request cancels those hops, which unwinds
the resolver. The event loop never blocks on the resolve itself.
"""

from __future__ import annotations

import functools
import logging
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
import trio
from packaging import tags as packaging_tags
from packaging.requirements import Requirement

from satchel.daemon.errors import InvalidParams, NotFound
from satchel.daemon.indexes.session import Session
from satchel.daemon.requests.builder import sdist_metadata
from satchel.daemon.requests.fetching import Progress
from satchel.daemon.requests.runtime import Runtime
from satchel.daemon.resolver import pylock
from satchel.daemon.resolver.buildpolicy import Formats
from satchel.daemon.resolver.candidates import SdistNeedsBuild
from satchel.daemon.resolver.reqfiles import (
    ParsedRequirement,
    RequirementSet,
    RequirementsFileError,
    parse_requirements,
    read_pyproject,
    read_toml,
)
from satchel.daemon.resolver.resolve import Pin, Resolution, cached_resolution, resolve
from satchel.daemon.resolver.scope import ScopedPages
from satchel.daemon.resolver.target import (
    Target,
    known_target,
    locate_interpreter,
    query_interpreter,
    synthetic_target,
)
from satchel.daemon.resolver.uvlock import read_uv_lock
from satchel.daemon.settings.config import IndexConfig
from satchel.daemon.settings.credentials import strip_userinfo
from satchel.daemon.settings.uvproject import ProjectIndexes, read_uv_project
from satchel.daemon.settings.uvproject import apply as apply_project
from satchel.daemon.storage.model import FileEntry, ProjectPage
from satchel.protocol.methods.resolve import PinInfo, ResolveParams

__all__ = [
    "CACHE_CHECK_THREADS",
    "RESOLVE_THREADS",
    "Inputs",
    "Outcome",
    "Pinned",
    "SessionSource",
    "cache_check_threads",
    "escaped",
    "inputs_and_target",
    "is_lock",
    "pin_info",
    "pinned_files",
    "read_inputs",
    "read_lock",
    "render",
    "request_formats",
    "request_session",
    "resolve_params",
    "resolve_request",
    "resolver_threads",
    "shown_reason",
    "target_for",
    "yanked_warnings",
]

log = logging.getLogger(__name__)

#: Resolver threads come from a pool of their own. A resolve thread hops back into trio for
#: pages and metadata, and those hops read SQLite through ``trio.to_thread`` with the default
#: limiter (40 threads): were resolves allowed every default token, 40 concurrent resolves
#: would wait forever on their own hops (the 100-client load test hung that way).
RESOLVE_THREADS = 8
_resolve_limiter: trio.lowlevel.RunVar[trio.CapacityLimiter] = trio.lowlevel.RunVar(
    "satchel_resolve_limiter"
)


def resolver_threads() -> trio.CapacityLimiter:
    """This trio run's resolver thread pool (a RunVar: limiters must not outlive their run)."""
    return _run_limiter(_resolve_limiter, RESOLVE_THREADS)


def _run_limiter(
    var: trio.lowlevel.RunVar[trio.CapacityLimiter], tokens: int
) -> trio.CapacityLimiter:
    try:
        return var.get()
    except LookupError:
        limiter = trio.CapacityLimiter(tokens)
        var.set(limiter)
        return limiter


#: Offline result-cache checks (`resolve_params`) running at once, in a pool of their own: a
#: remembered answer never waits behind a resolve, and since a check whose kept page sets are
#: out of date decodes stored pages (of any size an index served), as many at once as resolves.
CACHE_CHECK_THREADS = RESOLVE_THREADS
_cache_check_limiter: trio.lowlevel.RunVar[trio.CapacityLimiter] = trio.lowlevel.RunVar(
    "satchel_cache_check_limiter"
)


def cache_check_threads() -> trio.CapacityLimiter:
    """This trio run's pool for offline result-cache checks (see `CACHE_CHECK_THREADS`)."""
    return _run_limiter(_cache_check_limiter, CACHE_CHECK_THREADS)


#: Async METADATA of the wheel built from an sdist whose own metadata is dynamic (`builder`).
BuiltMetadata = Callable[[ProjectPage, FileEntry], Awaitable[bytes]]


#: Told of (index, project, file) of each candidate the resolver pins (on the trio thread).
Pinned = Callable[[IndexConfig, str, FileEntry], None]


class SessionSource:
    """`resolver.MetadataSource` for a worker thread: every call hops back into trio.

    *pinned* hears of each file whose core metadata the resolver reads: it reads it exactly
    when it pins a candidate (`Provider.get_dependencies`), so a prefetch starts that file's
    download then (`EarlyFetches`), in the same hop, rather than after the whole resolution.
    """

    def __init__(
        self, session: Session, built: BuiltMetadata | None = None, pinned: Pinned | None = None
    ) -> None:
        self.session = session
        self._built = built
        self._pinned = pinned

    def pages(self, project: str) -> ScopedPages:
        if self.session.offline:  # no network, no look-ahead: read in this thread
            return self.session.offline_pages_sync(project)
        return trio.from_thread.run(self.session.scoped_pages, project)

    def core_metadata(self, page: ProjectPage, file: FileEntry) -> bytes:
        if self._pinned is None or self.session.offline:
            return trio.from_thread.run(self.session.core_metadata, page, file)
        return trio.from_thread.run(self._metadata_of_pin, page, file)

    async def _metadata_of_pin(self, page: ProjectPage, file: FileEntry) -> bytes:
        data = await self.session.core_metadata(page, file)  # the resolver waits for this first
        index = self.session.index(page.index)
        if index is not None and self._pinned is not None:
            self._pinned(index, page.project, file)
        return data

    def built_metadata(self, page: ProjectPage, file: FileEntry) -> bytes:
        """METADATA of the wheel built from the sdist *file* (built now if online)."""
        if self._built is None:
            raise SdistNeedsBuild(f"{file.filename}: no builder for this resolve")
        return trio.from_thread.run(self._built, page, file)


@dataclass
class Inputs:
    """What to resolve, read from the request's strings and files."""

    requirements: RequirementSet = field(default_factory=RequirementSet)
    #: pylock.toml and uv.lock inputs: fetched as listed (`lockorigins`), never re-resolved.
    locks: list[pylock.Lock] = field(default_factory=list)
    #: A uv project's own indexes and index pins (`satchel.daemon.settings.uvproject`).
    project: ProjectIndexes | None = None


def _read_inputs(params: ResolveParams) -> Inputs:
    inputs = Inputs()
    reqs = inputs.requirements
    for number, text in enumerate(params.requirements, start=1):
        try:
            parsed = Requirement(text)
        except ValueError as exc:
            raise RequirementsFileError(f"requirement {number} ({text!r}): {exc}") from None
        reqs.requirements.append(_parsed(parsed, f"argument {number}"))
    for name in params.requirement_files:
        path = Path(name)
        if path.name == "pyproject.toml":
            for req in read_pyproject(path, extras=params.extras, groups=params.groups):
                reqs.requirements.append(_parsed(req, str(path)))
            inputs.project = read_uv_project(path, read_toml(path))
        elif is_lock(path):
            inputs.locks.append(read_lock(path))
        else:
            reqs.extend(parse_requirements(path))
    for name in params.constraint_files:
        reqs.extend(parse_requirements(Path(name), constraint=True))
    if params.prereleases:
        reqs.prereleases = True
    return inputs


def is_lock(path: Path) -> bool:
    """Whether *path* is a lock by its name: ``uv.lock``, or ``pylock*.toml`` (PEP 751's
    ``pylock.toml`` and ``pylock.NAME.toml``). Every other ``-r`` file is a requirements file."""
    name = path.name
    return name == "uv.lock" or (name.startswith("pylock") and name.endswith(".toml"))


def read_lock(path: Path) -> pylock.Lock:
    """A uv.lock or a PEP 751 lock (blocking); `RequirementsFileError` naming what is wrong.

    By name, else (``--lock`` of a renamed file) by content: uv.lock has ``[[package]]`` and
    no ``lock-version``."""
    if path.name == "uv.lock":
        return read_uv_lock(path)
    if not is_lock(path):
        data = read_toml(path)
        if "lock-version" not in data and "package" in data:
            return read_uv_lock(path)
    return pylock.read_pylock(path)


def _parsed(req: Requirement, origin: str) -> ParsedRequirement:
    return ParsedRequirement(requirement=req, hashes=frozenset(), origin=origin)


async def read_inputs(params: ResolveParams) -> Inputs:
    return await trio.to_thread.run_sync(_read_inputs, params)


async def target_for(rt: Runtime, params: ResolveParams) -> Target:
    """The interpreter to resolve for, or the imagined machine of --platform/--python-version."""
    if params.platforms or params.python_version:
        version = params.python_version or f"{sys.version_info[0]}.{sys.version_info[1]}"
        platforms = params.platforms or list(packaging_tags.platform_tags())
        try:
            return await trio.to_thread.run_sync(synthetic_target, version, platforms)
        except ValueError as exc:  # the message names the option and what it must look like
            raise InvalidParams(
                str(exc), details={"python_version": version, "platforms": platforms}
            ) from None
    python = params.python or sys.executable
    return await query_interpreter(python, cache_dir=rt.interpreters_dir)


async def inputs_and_target(rt: Runtime, params: ResolveParams) -> tuple[Inputs, Target]:
    """`read_inputs` and `target_for` with one worker-thread hop where two were made: the
    inputs are read and the interpreter is located in the same hop (in that order, so an error
    of the inputs is the one raised first)."""
    if params.platforms or params.python_version:
        inputs = await read_inputs(params)
        return inputs, await target_for(rt, params)
    python = params.python or sys.executable

    def read_and_locate() -> tuple[Inputs, tuple[Path, tuple[str, str, int, int]]]:
        return _read_inputs(params), locate_interpreter(python)

    inputs, located = await trio.to_thread.run_sync(read_and_locate)
    target = await query_interpreter(python, cache_dir=rt.interpreters_dir, located=located)
    return inputs, target


def pin_info(session: Session, pin: Pin) -> PinInfo:
    index = session.index(pin.index)
    return PinInfo(
        name=pin.name,
        version=pin.version,
        index=pin.index,
        index_url=strip_userinfo(index.url) if index is not None else "",
        filename=pin.file.filename,
        url=pin.file.url,
        sha256=pin.file.sha256,
        size=pin.file.size,
        requested=pin.requested,
        dependents=list(pin.dependents),
        bound=session.bound.get(pin.name),
    )


@dataclass
class Outcome:
    """A finished resolve: the resolution and the session that produced it."""

    resolution: Resolution
    session: Session
    target: Target
    elapsed: float

    def describe_target(self) -> str:
        if self.target.synthetic:
            return f"Python {self.target.python_version} on {self.target.tags[0].split('-')[-1]}"
        return self.target.executable or ""


async def resolve_params(
    rt: Runtime, params: ResolveParams, *, progress: Progress | None = None
) -> Outcome:
    """`inputs_and_target`, then `resolve_request`: the `resolve` method.

    An offline resolve that the result cache answers (the inputs read now, the interpreter
    known, every page the remembered result was computed from unchanged) is answered in the
    one worker-thread hop that reads its inputs, without the resolver's hop after it: the
    inputs are read afresh each time, so an edited requirements or constraints file is a
    different key, never a stale answer.
    """
    if not params.offline or params.platforms or params.python_version:
        inputs, target = await inputs_and_target(rt, params)
        return await resolve_request(rt, params, inputs, target, progress=progress)
    started = time.perf_counter()
    python = params.python or sys.executable

    def read_locate_and_look() -> tuple[Inputs, Located, _Remembered | None]:
        inputs = _read_inputs(params)
        located = locate_interpreter(python)
        target = known_target(located)
        return inputs, located, None if target is None else _remembered(rt, params, inputs, target)

    inputs, located, hit = await trio.to_thread.run_sync(
        read_locate_and_look, limiter=cache_check_threads()
    )
    if hit is None:
        target = await query_interpreter(python, cache_dir=rt.interpreters_dir, located=located)
        return await resolve_request(rt, params, inputs, target, progress=progress)
    session, target, resolution = hit
    resolution = _noted(rt, session, inputs.requirements, resolution, background=False)
    return Outcome(resolution, session, target, time.perf_counter() - started)


#: `locate_interpreter`'s answer.
Located = tuple[Path, tuple[str, str, int, int]]
#: A result-cache answer and the session and target it was checked with.
_Remembered = tuple[Session, Target, Resolution]


def _remembered(
    rt: Runtime, params: ResolveParams, inputs: Inputs, target: Target
) -> _Remembered | None:
    """`cached_resolution` of an offline request, in a worker thread (blocking: an offline
    session reads the metadb and the store in the calling thread)."""
    session = request_session(rt, params, inputs)
    reqs = inputs.requirements
    resolution = cached_resolution(
        _roots(inputs, target),
        [item.requirement for item in reqs.constraints],
        target,
        SessionSource(session),
        prereleases=reqs.prereleases,
        hashes=reqs.hashes(),
        cache=rt.metadata_cache,
        policy=session.builds,
    )
    return None if resolution is None else (session, target, resolution)


def _roots(inputs: Inputs, target: Target) -> list[Requirement]:
    """The requirements to resolve: the inputs' own, and each lock's packages for *target*."""
    roots = [item.requirement for item in inputs.requirements.requirements]
    for lock in inputs.locks:
        for package in lock.applicable(target):
            if package.unsupported is not None:
                raise RequirementsFileError(f"{lock.path}: {package.unsupported}")
            if package.version is not None:
                roots.append(Requirement(f"{package.name}=={package.version}"))
    if not roots:
        raise NotFound("nothing to resolve: the inputs list no requirements for this target")
    return roots


def _noted(
    rt: Runtime,
    session: Session,
    reqs: RequirementSet,
    resolution: Resolution,
    *,
    background: bool,
) -> Resolution:
    """*resolution* with its yanked warnings, and the session's notes for the user."""
    if not background:
        session.notes.extend(rt.take_notes())  # what the first start adopted, shown once
    if rt.live.error is not None:  # a broken edit: say on every command what is in use
        session.notes.append(
            f"config.toml is broken, the last good configuration is in use: {rt.live.error}"
        )
    yanked = yanked_warnings(resolution.pins)
    if yanked:  # in the resolution too: `--format json` output carries its notes
        resolution = msgspec.structs.replace(resolution, notes=[*resolution.notes, *yanked])
    session.notes.extend(reqs.warnings)
    session.notes.extend(resolution.notes)
    return resolution


async def resolve_request(
    rt: Runtime,
    params: ResolveParams,
    inputs: Inputs,
    target: Target,
    *,
    installed: dict[str, str] | None = None,
    background: bool = False,
    progress: Progress | None = None,
    pinned: Pinned | None = None,
) -> Outcome:
    """Resolve *inputs* for *target* under the daemon's configuration (and, for a pyproject.toml
    with uv index tables, that project's indexes and pins). A *background* resolve (a watched
    project's prefetch) builds only where config.toml allows it, and leaves the notes meant for
    the user's next command to that command. *progress* hears of every metadata read from the
    network (`satchel.daemon.upstream.traffic`). *pinned* hears of each file the resolver pins
    as it pins it (`SessionSource`)."""
    started = time.perf_counter()
    session = request_session(rt, params, inputs, background=background)
    session.traffic.progress = progress
    reqs = inputs.requirements
    roots = _roots(inputs, target)
    if not session.offline:  # an offline session looks nothing up ahead (`_lookahead`)
        session.aim(target)
        for root in roots:
            if root.marker is None or root.marker.evaluate({**target.markers, "extra": ""}):
                session.follow(root)
    resolution = await trio.to_thread.run_sync(
        functools.partial(
            resolve,
            roots,
            [item.requirement for item in reqs.constraints],
            target,
            SessionSource(session, functools.partial(sdist_metadata, rt, session, target), pinned),
            installed=installed,
            prereleases=reqs.prereleases,
            hashes=reqs.hashes(),
            cache=rt.metadata_cache,
            policy=session.builds,
        ),
        limiter=resolver_threads(),
    )
    resolution = _noted(rt, session, reqs, resolution, background=background)
    return Outcome(resolution, session, target, time.perf_counter() - started)


def request_formats(params: ResolveParams, inputs: Inputs | None = None) -> Formats:
    """``--only-binary``/``--no-binary`` of the requirements files, then of the command line
    (``--only-binary`` last: the stricter word of the user at this command wins)."""
    formats = inputs.requirements.formats() if inputs is not None else Formats()
    for value in params.no_binary:
        formats = formats.update("--no-binary", value, "command line")
    for value in params.only_binary:
        formats = formats.update("--only-binary", value, "command line")
    return formats


def request_session(
    rt: Runtime, params: ResolveParams, inputs: Inputs | None = None, *, background: bool = False
) -> Session:
    """The session of a request: offline or not, its index strategy, what it may build, and
    for a uv project, its own indexes and pins."""
    project = inputs.project if inputs is not None else None
    return rt.catalog.session(
        offline=params.offline,
        strategy=params.index_strategy,
        config=apply_project(rt.config, project) if project else None,
        formats=request_formats(params, inputs),
        no_build=params.no_build,
        background=background,
    )


#: Longest yank reason shown: real ones are a sentence ("compromised release", a CVE id).
_MAX_REASON = 200


def escaped(text: str) -> str:
    """*text* as it may reach a terminal and the log: one line, every non-printable character
    (escape sequences that could rewrite the screen or the clipboard, line breaks,
    bidirectional overrides) escaped (``\\x1b``)."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


def shown_reason(text: str) -> str:
    """The index's free text (a yank reason), `escaped` and cut at `_MAX_REASON`."""
    cut = escaped(text[:_MAX_REASON])
    return cut + "..." if len(text) > _MAX_REASON else cut


def yanked_warnings(pins: Iterable[Pin]) -> list[str]:
    """PEP 592: a yanked file chosen (only an exact ``==`` pin can choose one) is said loudly,
    with the index's reason, on every command that resolves it."""
    out = []
    for pin in pins:
        if not pin.file.yanked:
            continue
        reason = shown_reason(pin.file.yanked_reason or "no reason given")
        out.append(
            f"warning: {pin.name} {pin.version} ({pin.file.filename}) is yanked from index "
            f"'{pin.index}': {reason}; it was chosen only because it is pinned exactly"
        )
        log.warning("%s", out[-1])
    return out


def render(outcome: Outcome, fmt: str) -> str:
    urls = {index.name: strip_userinfo(index.url) for index in outcome.session.config.indexes}
    if fmt == "pylock":
        return pylock.dumps_pylock(outcome.resolution, outcome.target, urls)
    if fmt == "json":
        return pylock.dumps_json(outcome.resolution).decode()
    return pylock.dumps_requirements(outcome.resolution, urls)


def pinned_files(session: Session, pins: Iterable[Pin]) -> list[tuple[IndexConfig, str, FileEntry]]:
    """(index, project, file) for each pin: what prefetch, install and run fetch."""
    out: list[tuple[IndexConfig, str, FileEntry]] = []
    for pin in pins:
        index = session.index(pin.index)
        if index is None:  # the configuration changed while the request ran
            raise NotFound(f"{pin.name}: index {pin.index} is no longer configured")
        out.append((index, pin.name, pin.file))
    return out
