"""`resolve`: requirements to pins for one target, and the answer's shape (`Resolution`).

The algorithm is resolvelib's, fed by `provider.Provider`; a resolve that meets no conflict
takes resolvelib's own choices in linear time (`_fastpath`), and resolvelib's result builder is
made safe from dependency cycles (`_resolvelib`). This module turns the outcome into pins (who
required each, what was skipped by markers) and a failure into an explanation (`_explain`).
`resolve` runs in a worker thread and never touches trio.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

import msgspec
import resolvelib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from satchel.daemon.errors import ResolutionImpossible
from satchel.daemon.resolver import _explain as explain
from satchel.daemon.resolver import _resolvelib
from satchel.daemon.resolver._fastpath import resolve_straight
from satchel.daemon.resolver.buildpolicy import BuildPolicy
from satchel.daemon.resolver.candidates import MetadataCache, page_signature, requirement_text
from satchel.daemon.resolver.provider import (
    MAX_ROUNDS,
    PYTHON,
    Candidate,
    MetadataSource,
    Provider,
    Req,
    from_requirement,
    preference,
)
from satchel.daemon.resolver.target import Target
from satchel.daemon.storage.memory import settles_long_lived
from satchel.daemon.storage.model import FileEntry

__all__ = ["Pin", "Resolution", "Skipped", "cached_resolution", "resolve"]

_resolvelib.patch()  # cycle-safe result building (see `_resolvelib`)

log = logging.getLogger(__name__)


class Pin(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    version: str
    #: Name of the configured index the file comes from.
    index: str
    file: FileEntry
    #: Credential-free URL of the project page the file was listed on.
    page_url: str
    #: A direct (root) requirement, as opposed to a dependency.
    requested: bool
    extras: tuple[str, ...] = ()
    #: Who required it: "name version" of each dependent, "(requested)" for the root.
    dependents: tuple[str, ...] = ()
    #: The installed version was kept (it satisfies every requirement).
    installed: bool = False


class Skipped(msgspec.Struct, frozen=True, kw_only=True):
    """A requirement whose environment marker is false on this target."""

    requirement: str
    required_by: str


class Resolution(msgspec.Struct, frozen=True, kw_only=True):
    pins: list[Pin]
    target_key: str
    python_full_version: str
    #: Marker-filtered requirements of the result, for "why is X not installed?".
    skipped: list[Skipped] = []
    #: Index name -> URL, as the sources reported them (for lock files).
    index_urls: dict[str, str] = {}
    stats: dict[str, float] = {}
    #: Warnings for the user about the result (an extra the project does not provide).
    notes: list[str] = []


class _Reporter(resolvelib.BaseReporter[Req, Candidate, str]):
    def __init__(self) -> None:
        self.rounds = 0
        self.backtracks = 0

    def starting_round(self, index: int) -> None:
        self.rounds = index + 1

    def rejecting_candidate(self, criterion: Any, candidate: Any) -> None:
        self.backtracks += 1


def _group_constraints(constraints: Iterable[Requirement]) -> dict[str, list[Requirement]]:
    grouped: dict[str, list[Requirement]] = {}
    for constraint in constraints:
        grouped.setdefault(canonicalize_name(constraint.name), []).append(constraint)
    return grouped


def _memo_key(
    requirements: Sequence[Requirement],
    constraints: Sequence[Requirement],
    target: Target,
    installed: Mapping[str, str],
    prefer_installed: bool,
    allow_sdists: bool,
    prereleases: bool,
    hash_sets: Mapping[str, frozenset[str]] | None,
    policy: BuildPolicy,
) -> tuple[object, ...]:
    """The result cache's key: everything a resolution depends on but the pages it read."""
    return (
        tuple(str(r) for r in requirements),
        tuple(str(c) for c in constraints),
        target.key,
        tuple(sorted(installed.items())),
        prefer_installed,
        allow_sdists,
        prereleases,
        None if hash_sets is None else tuple(sorted(hash_sets.items(), key=lambda kv: kv[0])),
        policy,
    )


def _hash_sets(hashes: Mapping[str, Collection[str]] | None) -> dict[str, frozenset[str]] | None:
    if hashes is None:
        return None
    return {canonicalize_name(k): frozenset(v) for k, v in hashes.items()}


def _remembered(
    store: MetadataCache, memo_key: tuple[object, ...], source: MetadataSource, started: float
) -> Resolution | None:
    """The result cache's answer for *memo_key*, if every page it was computed from is the
    same revision now (`page_signature`); None otherwise."""
    hit = store.results.get(memo_key)
    if hit is None:
        return None
    previous, signatures = hit
    if not all(page_signature(source.pages(p).pages) == sig for p, sig in signatures.items()):
        return None
    elapsed = time.perf_counter() - started
    log.debug("resolve answered from the result cache in %.1f ms", elapsed * 1000)
    stats = {"seconds": round(elapsed, 4), "cached": 1.0, "pins": len(previous.pins)}
    return msgspec.structs.replace(previous, stats=stats)  # type: ignore[no-any-return]


def cached_resolution(
    requirements: Sequence[Requirement],
    constraints: Sequence[Requirement],
    target: Target,
    source: MetadataSource,
    *,
    prereleases: bool = False,
    hashes: Mapping[str, Collection[str]] | None = None,
    cache: MetadataCache,
    policy: BuildPolicy | None = None,
) -> Resolution | None:
    """What `resolve` would answer from *cache*'s results alone (no installed versions, the
    defaults of `resolve` otherwise), or None: nothing remembered for these arguments, or a
    page it was computed from has changed since. Blocking (it reads the pages of *source*),
    cheap, and it builds nothing, so it needs no `settles_long_lived`."""
    started = time.perf_counter()
    key = _memo_key(
        requirements,
        constraints,
        target,
        {},
        True,
        True,
        prereleases,
        _hash_sets(hashes),
        policy or BuildPolicy(),
    )
    return _remembered(cache, key, source, started)


@settles_long_lived
def resolve(
    requirements: Sequence[Requirement],
    constraints: Sequence[Requirement],
    target: Target,
    source: MetadataSource,
    *,
    installed: Mapping[str, str] | None = None,
    prefer_installed: bool = True,
    allow_sdists: bool = True,
    prereleases: bool = False,
    hashes: Mapping[str, Collection[str]] | None = None,
    cache: MetadataCache | None = None,
    policy: BuildPolicy | None = None,
) -> Resolution:
    """Pin *requirements* (within *constraints*) for *target*, reading from *source*.

    *installed* maps normalised names to installed versions (kept when they satisfy and
    *prefer_installed*). *hashes*, when given, turns on hash-checking mode: normalised name ->
    acceptable sha256 digests. Pass a long-lived *cache* to make repeated resolves cheap.

    Raises `ResolutionImpossible` (explained), `NotCached`/`NotFound` (a project missing from
    the scope, with hints), `SdistNeedsBuild`, `BuildForbidden` (only an sdist fits where
    *policy* allows no sdist), or whatever the source raises.
    """
    policy = policy or BuildPolicy()
    started = time.perf_counter()
    store = cache if cache is not None else MetadataCache()
    installed = {canonicalize_name(k): v for k, v in (installed or {}).items()}
    hash_sets = _hash_sets(hashes)
    memo_key = _memo_key(
        requirements,
        constraints,
        target,
        installed,
        prefer_installed,
        allow_sdists,
        prereleases,
        hash_sets,
        policy,
    )
    remembered = _remembered(store, memo_key, source, started)
    if remembered is not None:
        return remembered
    env = {**target.markers, "extra": ""}
    roots: list[Req] = []
    skipped_roots: list[Skipped] = []
    for req in requirements:
        if req.marker is not None and not req.marker.evaluate(env):
            skipped_roots.append(Skipped(requirement=str(req), required_by="(requested)"))
            continue
        roots.append(from_requirement(req))
    active_constraints = [c for c in constraints if c.marker is None or c.marker.evaluate(env)]
    provider = Provider(
        target,
        source,
        store,
        constraints=_group_constraints(active_constraints),
        installed=installed,
        prefer_installed=prefer_installed,
        allow_sdists=allow_sdists,
        prereleases=prereleases,
        hashes=hash_sets,
        policy=policy,
    )
    provider.roots = {root.name for root in roots}
    reporter = _Reporter()
    resolver: resolvelib.Resolver[Req, Candidate, str] = resolvelib.Resolver(provider, reporter)
    try:
        # Without a conflict, resolvelib's own choices in linear time (`fastpath`); with one,
        # resolvelib from the start.
        result: Any = resolve_straight(provider, roots, first=PYTHON, preference=preference)
        if result is not None:
            reporter.rounds = result.rounds
        else:
            result = resolver.resolve(roots, max_rounds=MAX_ROUNDS)
    except resolvelib.ResolutionImpossible as exc:
        explained = explain.impossible(exc.causes, provider)
        raise policy.explain(provider.excluded, explained) from None
    except resolvelib.ResolutionTooDeep:
        raise ResolutionImpossible(
            f"gave up after {MAX_ROUNDS} rounds of backtracking: the requirements are too "
            "loose for the resolver to settle; add tighter version bounds or constraints"
        ) from None
    resolution = _pins(result, provider, target, skipped_roots)
    elapsed = time.perf_counter() - started
    stats = {
        **provider.stats,
        "seconds": round(elapsed, 4),
        "rounds": float(reporter.rounds),
        "backtracks": float(reporter.backtracks),
        "pins": float(len(resolution.pins)),
    }
    log.info(
        "resolved %d pins in %.1f ms (%d rounds, %d backtracks, %d metadata fetched)",
        len(resolution.pins),
        elapsed * 1000,
        reporter.rounds,
        reporter.backtracks,
        provider.stats["metadata_fetched"],
    )
    resolution = msgspec.structs.replace(resolution, stats=stats)
    consulted = {name: page_signature(s.pages) for name, s in provider.scoped.items()}
    store.remember_result(memo_key, resolution, consulted)
    return resolution


def _describe_parent(parent: Candidate | None) -> str:
    return "(requested)" if parent is None else f"{parent.name} {parent.version}"


def _pins(result: Any, provider: Provider, target: Target, skipped: list[Skipped]) -> Resolution:
    mapping: Mapping[str, Candidate] = result.mapping
    extras: dict[str, set[str]] = {}
    dependents: dict[str, set[str]] = {}
    requested: set[str] = set()
    #: A parent is described once, not once per dependency (str(Version) is slow, and a large
    #: set has ~8 dependents per pin).
    described: dict[Candidate, str] = {}
    for ident, candidate in mapping.items():
        if candidate.name == PYTHON:
            continue
        extras.setdefault(candidate.name, set()).update(candidate.extras)
        for info in result.criteria[ident].information:
            parent = info.parent
            if parent is None:
                requested.add(candidate.name)
            elif parent.name != candidate.name:  # name[x] -> name is not a dependent
                label = described.get(parent)
                if label is None:
                    label = described[parent] = _describe_parent(parent)
                dependents.setdefault(candidate.name, set()).add(label)
    for name in requested:
        dependents.setdefault(name, set()).add("(requested)")
    pins: list[Pin] = []
    index_urls: dict[str, str] = {}
    notes: list[str] = []
    for ident in sorted(mapping):
        candidate = mapping[ident]
        if candidate.name == PYTHON:
            continue
        if candidate.extras:
            # As pip warns: a misspelt extra resolves, silently adding nothing.
            missing = sorted(candidate.extras - provider.metadata(candidate).provides_extra)
            if missing:
                quoted = ", ".join(f"'{extra}'" for extra in missing)
                plural = "s" if len(missing) > 1 else ""
                notes.append(
                    f"{candidate.name} {candidate.version} does not provide the "
                    f"extra{plural} {quoted}"
                )
            continue
        assert candidate.file is not None and candidate.page is not None
        pins.append(
            Pin(
                name=candidate.name,
                version=str(candidate.version),
                index=candidate.page.index,
                file=candidate.file,
                page_url=candidate.page.url,
                requested=candidate.name in requested,
                extras=tuple(sorted(extras.get(candidate.name, ()))),
                dependents=tuple(sorted(dependents.get(candidate.name, ()))),
                installed=candidate.installed,
            )
        )
        skipped_reqs = provider.skipped.get(candidate)
        if skipped_reqs:
            label = described.get(candidate) or _describe_parent(candidate)
            skipped.extend(
                Skipped(requirement=requirement_text(req), required_by=label)
                for req in skipped_reqs
            )
        index_urls.update(provider.scoped[candidate.name].index_urls)
    return Resolution(
        pins=pins,
        target_key=provider.target_key,
        python_full_version=target.python_full_version,
        skipped=skipped,
        index_urls=index_urls,
        notes=notes,
    )
