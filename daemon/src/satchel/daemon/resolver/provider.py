"""Resolve requirements to pinned files for one target, with resolvelib over a `MetadataSource`.

The algorithm is resolvelib's (backtracking with backjumping); this module is the provider that
feeds it and the translation of its answer (pins) and of its failures (explanations). All I/O is
behind `MetadataSource`, a synchronous seam: the online source calls back into trio with
``trio.from_thread``, the offline one reads the metadb. `resolve` runs in a worker thread
(``trio.to_thread.run_sync``) and never touches trio itself.

Rules (pip's, except where the index scope is concerned):

* Candidates are the versions of the project's in-scope files (`scope`), newest first; a version
  counts only if a file fits the target (`candidates.ProjectFiles`): a compatible wheel, else,
  when sdists are allowed, the sdist (with static PEP 643 metadata).
* ``requires-python``: a file's ``data-requires-python`` filters files; METADATA's Requires-Python
  becomes a dependency on the pseudo-project ``<python>`` whose single candidate is the target's
  version, so a version that needs another Python is backtracked over and explained.
* Pre-releases: only when a requirement's specifier names one, when ``prereleases=True``, or when
  no final release matches at all (packaging's ``SpecifierSet.filter`` rule, as pip).
* Yanked files (PEP 592): only for an exact ``==``/``===`` pin of that version.
* Extras: ``name[x]`` is its own identifier whose candidate depends on ``name==version`` (the
  very same file) plus the dependencies guarded by ``extra == "x"``.
* Installed: with ``prefer_installed``, an installed version that satisfies is tried first, so an
  install keeps what already works and changes only what must change.
* Hash-checking (``hashes`` given): every project must be listed, and only files whose sha256 is
  listed are candidates.

Complexity: resolving is NP-complete in general; resolvelib is exponential in the worst case
(bounded here by `MAX_ROUNDS`), linear in the number of pinned projects when nothing conflicts.
The provider's own cost per round is O(identifiers) for preferences plus, per `find_matches`,
O(versions of the project) cheap comparisons. A project's files are grouped once per page
revision and target (`MetadataCache.projects`); a file's metadata is fetched and parsed once per
daemon (`MetadataCache.metadata`); requirements, specifiers, versions and marker results are
interned, so a repeated resolve of a warm set does no parsing at all.
"""

from __future__ import annotations

import functools
import itertools
import logging
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec
import resolvelib
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version
from resolvelib.structs import RequirementInformation

from satchel.daemon.errors import ResolutionImpossible
from satchel.daemon.resolver import _explain as explain
from satchel.daemon.resolver import _resolvelib
from satchel.daemon.resolver._fastpath import resolve_straight
from satchel.daemon.resolver.buildpolicy import BuildPolicy
from satchel.daemon.resolver.candidates import (
    CoreMetadata,
    MetadataCache,
    ProjectFiles,
    SdistNeedsBuild,
    page_signature,
    parse_core_metadata,
    specifier,
)
from satchel.daemon.resolver.scope import ScopedPages
from satchel.daemon.resolver.target import Target
from satchel.daemon.storage.memory import settles_long_lived
from satchel.daemon.storage.model import FileEntry, ProjectPage

__all__ = [
    "MAX_ROUNDS",
    "MetadataSource",
    "Pin",
    "Resolution",
    "Skipped",
    "resolve",
]

_resolvelib.patch()  # cycle-safe result building (see `_resolvelib`)

log = logging.getLogger(__name__)

#: resolvelib rounds before giving up; pip allows 200,000 but a daemon answering many clients
#: should fail a pathological resolve in seconds, not minutes.
MAX_ROUNDS = 20_000

PYTHON = "<python>"


class MetadataSource(Protocol):
    """Where a resolve gets index pages and core metadata from (may block; never async)."""

    def pages(self, project: str) -> ScopedPages:
        """In-scope pages for normalised *project*, plus what exists out of scope."""
        ...

    def core_metadata(self, page: ProjectPage, file: FileEntry) -> bytes:
        """METADATA of a wheel (PEP 658 file or from the wheel) or PKG-INFO of an sdist."""
        ...


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


class _Req:
    """A requirement as the resolver sees it: identifier, specifier, and who made it."""

    __slots__ = ("exact", "extras", "ident", "name", "satisfied", "specifier", "text")

    def __init__(
        self, name: str, extras: frozenset[NormalizedName], spec: SpecifierSet, text: str
    ) -> None:
        self.name = name
        self.extras = extras
        self.specifier = spec
        self.text = text
        self.ident = f"{name}[{','.join(sorted(extras))}]" if extras else name
        #: version -> does it satisfy? resolvelib re-checks every pin against every requirement
        #: each round (O(n^2) calls), and SpecifierSet.contains is the single hottest call.
        self.satisfied: dict[_Candidate, bool] = {}
        self.exact = _is_exact(spec)

    def __repr__(self) -> str:
        return self.text


class _Candidate:
    __slots__ = ("_hash", "extras", "file", "ident", "installed", "name", "page", "version")

    def __init__(
        self,
        name: str,
        ver: Version,
        extras: frozenset[NormalizedName] = frozenset(),
        file: FileEntry | None = None,
        page: ProjectPage | None = None,
        *,
        installed: bool = False,
    ) -> None:
        self.name = name
        self.version = ver
        self.extras = extras
        self.file = file
        self.page = page
        self.installed = installed
        self.ident = f"{name}[{','.join(sorted(extras))}]" if extras else name
        self._hash = hash(self._key())

    def _key(self) -> tuple[str, Version, str | None]:
        return (self.ident, self.version, self.file.url if self.file else None)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Candidate) and self._key() == other._key()

    def __hash__(self) -> int:
        return self._hash

    def __repr__(self) -> str:
        return f"{self.ident} {self.version}"


def _from_requirement(req: Requirement) -> _Req:
    name = canonicalize_name(req.name)
    extras = frozenset(canonicalize_name(e) for e in req.extras)
    shown = f"{req.name}[{','.join(sorted(req.extras))}]" if req.extras else req.name
    return _Req(name, extras, req.specifier, f"{shown}{req.specifier}")


_Info = RequirementInformation[_Req, _Candidate]


@dataclass(frozen=True, slots=True)
class _Picking:
    """What `_candidates` needs of one `find_matches`: never the provider itself, whose
    ``matches`` hold the factory (that cycle left an enormous project's versions for the cycle
    collector, whose pass then held the GIL for ~250 ms)."""

    identifier: str
    name: str
    extras: frozenset[NormalizedName]
    project: ProjectFiles
    allowed: list[Version]
    bad: set[Version]
    allow_yanked: bool
    hashes: frozenset[str] | None
    #: The installed version, tried first (it is kept when it satisfies).
    kept: Version | None
    sdists_allowed: bool
    #: The provider's: one candidate object per (identifier, version, file URL).
    candidates: dict[tuple[str, Version, str], _Candidate]
    #: The provider's: project -> an sdist left out by the build policy.
    excluded: dict[str, str]


def _candidates(pick: _Picking) -> Iterator[_Candidate]:
    """The candidates of *pick*: the installed version first, then newest first."""
    allowed, kept = pick.allowed, pick.kept
    order = itertools.chain((v for v in allowed if v == kept), (v for v in allowed if v != kept))
    found = False
    for v in order:
        if v in pick.bad:
            continue
        choice = pick.project.choose(v, allow_yanked=pick.allow_yanked, hashes=pick.hashes)
        if choice is None:
            continue
        # One object per candidate, so later lookups hit the identity fast path.
        key = (pick.identifier, v, choice.file.url)
        candidate = pick.candidates.get(key)
        if candidate is None:
            candidate = pick.candidates[key] = _Candidate(
                pick.name, v, pick.extras, choice.file, choice.page, installed=v == kept
            )
        found = True
        yield candidate
    if not found and pick.name not in pick.excluded and not pick.sdists_allowed:
        for v in allowed:
            sdist = pick.project.excluded_sdist(v, allow_yanked=pick.allow_yanked)
            if sdist is not None:
                pick.excluded[pick.name] = sdist.filename
                break


#: What `find_matches` gives resolvelib: a list, or a factory of the candidates in order.
_Matches = list["_Candidate"] | Callable[[], Iterator["_Candidate"]]


def _is_exact(spec: SpecifierSet) -> bool:
    return any(s.operator == "===" or (s.operator == "==" and "*" not in s.version) for s in spec)


def _preference(identifier: str, information: Iterable[_Info]) -> tuple[bool, bool, str]:
    """Exact pins first (nothing to choose), then direct requirements, then by name."""
    infos = list(information)
    pinned = any(info.requirement.exact for info in infos)
    direct = any(info.parent is None for info in infos)
    return (not pinned, not direct, identifier)


class _Provider(resolvelib.AbstractProvider[_Req, _Candidate, str]):
    def __init__(
        self,
        target: Target,
        source: MetadataSource,
        cache: MetadataCache,
        *,
        constraints: Mapping[str, list[Requirement]],
        installed: Mapping[str, str],
        prefer_installed: bool,
        allow_sdists: bool,
        prereleases: bool,
        hashes: Mapping[str, frozenset[str]] | None,
        policy: BuildPolicy | None = None,
    ) -> None:
        self.target = target
        #: Computed once: `Target.key` hashes the whole target (every tag) on each access.
        self.target_key = target.key
        self.source = source
        self.cache = cache
        self.constraints = constraints
        self.installed = installed
        self.prefer_installed = prefer_installed
        self.allow_sdists = allow_sdists
        self.prereleases = prereleases
        self.hashes = hashes
        self.policy = policy or BuildPolicy()
        #: project -> an sdist left out by `policy` where nothing else fitted (for the error).
        self.excluded: dict[str, str] = {}
        self.python = Version(target.python_full_version)
        self.ranks = target.tag_ranks()
        self.scoped: dict[str, ScopedPages] = {}
        self.projects: dict[str, ProjectFiles] = {}
        self.skipped: dict[_Candidate, list[Requirement]] = {}
        #: project -> candidates seen requiring it (any state, for explaining chains)
        self.required_by: dict[str, set[_Candidate]] = {}
        self.roots: set[str] = set()
        self.candidates: dict[tuple[str, Version, str], _Candidate] = {}
        self.matches: dict[tuple[str, frozenset[str], frozenset[Version]], _Matches] = {}
        self.stats = {"find_matches": 0.0, "metadata_fetched": 0.0, "metadata_cached": 0.0}

    # -- project data ------------------------------------------------------------------------

    def project(self, name: str) -> ProjectFiles:
        files = self.projects.get(name)
        if files is None:
            scoped = self.source.pages(name)
            self.scoped[name] = scoped
            signature = page_signature(scoped.pages)
            sdists = self.allow_sdists and self.policy.sdist_allowed(name)
            wheels = self.policy.wheel_allowed(name)
            key: tuple[object, ...] = (self.target_key, sdists, wheels, name, signature)
            files = self.cache.projects.get(key)
            if files is None:
                files = ProjectFiles(
                    name,
                    scoped.pages,
                    self.ranks,
                    self.python,
                    allow_sdists=sdists,
                    allow_wheels=wheels,
                )
                self.cache.remember_project(key, files)
            self.projects[name] = files
        return files

    def metadata(self, candidate: _Candidate) -> CoreMetadata:
        file, page = candidate.file, candidate.page
        assert file is not None and page is not None
        key = file.sha256 or file.url
        meta = self.cache.metadata.get(key)
        # An sdist whose metadata is dynamic is known through the wheel built for this target.
        built_key = f"{key}\0{self.target_key}"
        if meta is None and not file.is_wheel:
            meta = self.cache.metadata.get(built_key)
        if meta is None:
            self.stats["metadata_fetched"] += 1
            where = f"{file.filename} from index '{page.index}'"
            try:
                # An sdist may need building because of its PKG-INFO (dynamic) or for want of
                # one (the source raises it then).
                data = self.source.core_metadata(page, file)
                meta = parse_core_metadata(data, sdist=not file.is_wheel, where=where)
            except SdistNeedsBuild:
                built = getattr(self.source, "built_metadata", None)
                if built is None:
                    raise
                data = built(page, file)
                where = f"the wheel built from {where}"
                meta = parse_core_metadata(data, sdist=False, where=where)
                key = built_key
            if meta.name != candidate.name or meta.version != candidate.version:
                raise ResolutionImpossible(
                    f"{where} declares {meta.name} {meta.version} in its metadata, "
                    f"not {candidate.name} {candidate.version}: refusing inconsistent metadata"
                )
            self.cache.remember_metadata(key, meta)
        else:
            self.stats["metadata_cached"] += 1
        return meta

    def marker_holds(self, req: Requirement, extra: str) -> bool:
        if req.marker is None:
            return True
        # Keyed by the requirement object, not its text: requirements live in the cached
        # metadata for the daemon's lifetime, and str(req) was ~8% of a resolve. The entry
        # keeps the object, so its id cannot be reused while the entry exists.
        key = (self.target_key, id(req), extra)
        entry = self.cache.markers.get(key)
        if entry is None or entry[0] is not req:
            held = req.marker.evaluate({**self.target.markers, "extra": extra})
            self.cache.remember_marker(key, req, held)
            return held
        return entry[1]

    # -- resolvelib interface ----------------------------------------------------------------

    def identify(self, requirement_or_candidate: _Req | _Candidate) -> str:
        return requirement_or_candidate.ident

    def narrow_requirement_selection(
        self,
        identifiers: Iterable[str],
        resolutions: Mapping[str, _Candidate],
        candidates: Mapping[str, Iterator[_Candidate]],
        information: Mapping[str, Iterator[_Info]],
        backtrack_causes: Sequence[_Info],
    ) -> Iterable[str]:
        """Settle ``<python>`` first (it is free), then whatever just caused a backtrack.

        Among those, the one `get_preference` prefers is picked here, and only it returned:
        resolvelib then skips its own ``min(..., key=_get_preference)``, which wraps every
        call in three fresh mappings (the same choice, about 5% of a large resolve less).
        """
        identifiers = list(identifiers)
        if PYTHON in identifiers:
            return [PYTHON]
        causes = {c.requirement.ident for c in backtrack_causes}
        causes |= {c.parent.ident for c in backtrack_causes if c.parent is not None}
        narrowed = [i for i in identifiers if i in causes] or identifiers
        if len(narrowed) > 1:
            return [min(narrowed, key=lambda i: _preference(i, information[i]))]
        return narrowed

    def get_preference(
        self,
        identifier: str,
        resolutions: Mapping[str, _Candidate],
        candidates: Mapping[str, Iterator[_Candidate]],
        information: Mapping[str, Iterator[_Info]],
        backtrack_causes: Sequence[_Info],
    ) -> tuple[bool, bool, str]:
        """Exact pins first (nothing to choose), then direct requirements, then by name."""
        return _preference(identifier, information[identifier])

    def find_matches(
        self,
        identifier: str,
        requirements: Mapping[str, Iterator[_Req]],
        incompatibilities: Mapping[str, Iterator[_Candidate]],
    ) -> _Matches:
        self.stats["find_matches"] += 1
        reqs = list(requirements[identifier])
        bad = {c.version for c in incompatibilities[identifier]}
        memo_key = (identifier, frozenset(r.text for r in reqs), frozenset(bad))
        found = self.matches.get(memo_key)
        if found is None:
            found = self.matches[memo_key] = self._find_matches(identifier, reqs, bad)
        return found

    def _find_matches(self, identifier: str, reqs: list[_Req], bad: set[Version]) -> _Matches:
        if identifier == PYTHON:
            ok = all(r.specifier.contains(self.python, prereleases=True) for r in reqs)
            return [_Candidate(PYTHON, self.python)] if ok and self.python not in bad else []
        if not reqs:
            # Backjumping re-asks for a project whose every requirement went with the versions
            # it undid: nothing asks for it now, so nothing matches (pip's answer too).
            return []
        name = reqs[0].name
        spec = SpecifierSet()
        for req in reqs:
            spec &= req.specifier
        for constraint in self.constraints.get(name, ()):
            spec &= constraint.specifier
        project = self.project(name)
        prereleases = True if self.prereleases or spec.prereleases else None
        allowed = list(spec.filter(project.versions, prereleases=prereleases))
        if prereleases is None and any(not v.is_prerelease for v in allowed):
            allowed = [v for v in allowed if not v.is_prerelease]
        # Candidates are made as the resolver reaches them (resolvelib takes a factory, and
        # keeps what it has iterated): it looks at the newest few, so an enormous project
        # (90,000 versions) costs a few candidates, not one per version (issue 11.6).
        keep = self.installed.get(name) if self.prefer_installed else None
        return functools.partial(
            _candidates,
            _Picking(
                identifier,
                name,
                reqs[0].extras,
                project,
                allowed,
                bad,
                allow_yanked=_is_exact(spec),
                hashes=None if self.hashes is None else self.hashes.get(name, frozenset()),
                kept=Version(keep) if keep is not None and allowed else None,
                sdists_allowed=self.policy.sdist_allowed(name),
                candidates=self.candidates,
                excluded=self.excluded,
            ),
        )

    def is_satisfied_by(self, requirement: _Req, candidate: _Candidate) -> bool:
        held = requirement.satisfied.get(candidate)
        if held is None:
            held = requirement.specifier.contains(candidate.version, prereleases=True)
            requirement.satisfied[candidate] = held
        return held

    def get_dependencies(self, candidate: _Candidate) -> list[_Req]:
        if candidate.name == PYTHON:
            return []
        meta = self.metadata(candidate)
        deps: list[_Req] = []
        skipped: list[Requirement] = []
        if candidate.extras:
            # The extra's candidate is the base candidate plus the extra's own dependencies.
            pin = f"=={candidate.version}"
            deps.append(_Req(candidate.name, frozenset(), specifier(pin), candidate.name + pin))
            for req in meta.requires_dist:
                if not self.marker_holds(req, "") and any(
                    self.marker_holds(req, extra) for extra in candidate.extras
                ):
                    deps.append(_from_requirement(req))
            self._record(candidate, deps)
            return deps
        if meta.requires_python is not None:
            rp = str(meta.requires_python)
            deps.append(_Req(PYTHON, frozenset(), meta.requires_python, f"Python{rp}"))
        for req in meta.requires_dist:
            if self.marker_holds(req, ""):
                deps.append(_from_requirement(req))
            else:
                skipped.append(req)  # stringified only for the pins (`_pins`)
        if skipped:
            self.skipped[candidate] = skipped
        self._record(candidate, deps)
        return deps

    def _record(self, candidate: _Candidate, deps: list[_Req]) -> None:
        for dep in deps:
            if dep.name != candidate.name:
                self.required_by.setdefault(dep.name, set()).add(candidate)


class _Reporter(resolvelib.BaseReporter[_Req, _Candidate, str]):
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
    target_key = target.key
    installed = {canonicalize_name(k): v for k, v in (installed or {}).items()}
    hash_sets: dict[str, frozenset[str]] | None = (
        None if hashes is None else {canonicalize_name(k): frozenset(v) for k, v in hashes.items()}
    )
    memo_key: tuple[object, ...] = (
        tuple(str(r) for r in requirements),
        tuple(str(c) for c in constraints),
        target_key,
        tuple(sorted(installed.items())),
        prefer_installed,
        allow_sdists,
        prereleases,
        None if hash_sets is None else tuple(sorted(hash_sets.items(), key=lambda kv: kv[0])),
        policy,
    )
    hit = store.results.get(memo_key)
    if hit is not None:
        previous, signatures = hit
        if all(page_signature(source.pages(p).pages) == sig for p, sig in signatures.items()):
            elapsed = time.perf_counter() - started
            log.debug("resolve answered from the result cache in %.1f ms", elapsed * 1000)
            stats = {"seconds": round(elapsed, 4), "cached": 1.0, "pins": len(previous.pins)}
            return msgspec.structs.replace(previous, stats=stats)  # type: ignore[no-any-return]
    env = {**target.markers, "extra": ""}
    roots: list[_Req] = []
    skipped_roots: list[Skipped] = []
    for req in requirements:
        if req.marker is not None and not req.marker.evaluate(env):
            skipped_roots.append(Skipped(requirement=str(req), required_by="(requested)"))
            continue
        roots.append(_from_requirement(req))
    active_constraints = [c for c in constraints if c.marker is None or c.marker.evaluate(env)]
    provider = _Provider(
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
    resolver: resolvelib.Resolver[_Req, _Candidate, str] = resolvelib.Resolver(provider, reporter)
    try:
        # Without a conflict, resolvelib's own choices in linear time (`fastpath`); with one,
        # resolvelib from the start.
        result: Any = resolve_straight(provider, roots, first=PYTHON, preference=_preference)
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


def _describe_parent(parent: _Candidate | None) -> str:
    return "(requested)" if parent is None else f"{parent.name} {parent.version}"


def _pins(result: Any, provider: _Provider, target: Target, skipped: list[Skipped]) -> Resolution:
    mapping: Mapping[str, _Candidate] = result.mapping
    extras: dict[str, set[str]] = {}
    dependents: dict[str, set[str]] = {}
    requested: set[str] = set()
    #: A parent is described once, not once per dependency (str(Version) is slow, and a large
    #: set has ~8 dependents per pin).
    described: dict[_Candidate, str] = {}
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
        for skipped_req in provider.skipped.get(candidate, []):
            skipped.append(
                Skipped(requirement=str(skipped_req), required_by=_describe_parent(candidate))
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
