"""The resolvelib provider (`Provider`) over a `MetadataSource`: candidates, preferences,
dependencies, for one target.

The algorithm is resolvelib's (backtracking with backjumping); this module is the provider that
feeds it, and `resolve.resolve` runs it and translates its answer (pins) and its failures
(explanations). All I/O is behind `MetadataSource`, a synchronous seam: the online source calls
back into trio with ``trio.from_thread``, the offline one reads the metadb. A resolve runs in a
worker thread (``trio.to_thread.run_sync``) and never touches trio itself.

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
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import resolvelib
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version
from resolvelib.structs import RequirementInformation

from satchel.daemon.errors import ResolutionImpossible
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
from satchel.daemon.storage.model import FileEntry, ProjectPage

__all__ = [
    "MAX_ROUNDS",
    "PYTHON",
    "Candidate",
    "Info",
    "MetadataSource",
    "Provider",
    "Req",
    "from_requirement",
    "preference",
]

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


class Req:
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
        self.satisfied: dict[Candidate, bool] = {}
        self.exact = _is_exact(spec)

    def __repr__(self) -> str:
        return self.text


class Candidate:
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
        return isinstance(other, Candidate) and self._key() == other._key()

    def __hash__(self) -> int:
        return self._hash

    def __repr__(self) -> str:
        return f"{self.ident} {self.version}"


def from_requirement(req: Requirement) -> Req:
    name = canonicalize_name(req.name)
    extras = frozenset(canonicalize_name(e) for e in req.extras)
    shown = f"{req.name}[{','.join(sorted(req.extras))}]" if req.extras else req.name
    return Req(name, extras, req.specifier, f"{shown}{req.specifier}")


Info = RequirementInformation[Req, Candidate]


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
    candidates: dict[tuple[str, Version, str], Candidate]
    #: The provider's: project -> an sdist left out by the build policy.
    excluded: dict[str, str]


def _candidates(pick: _Picking) -> Iterator[Candidate]:
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
            candidate = pick.candidates[key] = Candidate(
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
_Matches = list["Candidate"] | Callable[[], Iterator["Candidate"]]


def _is_exact(spec: SpecifierSet) -> bool:
    return any(s.operator == "===" or (s.operator == "==" and "*" not in s.version) for s in spec)


def preference(identifier: str, information: Iterable[Info]) -> tuple[bool, bool, str]:
    """Exact pins first (nothing to choose), then direct requirements, then by name."""
    infos = list(information)
    pinned = any(info.requirement.exact for info in infos)
    direct = any(info.parent is None for info in infos)
    return (not pinned, not direct, identifier)


class Provider(resolvelib.AbstractProvider[Req, Candidate, str]):
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
        self.skipped: dict[Candidate, list[Requirement]] = {}
        #: project -> candidates seen requiring it (any state, for explaining chains)
        self.required_by: dict[str, set[Candidate]] = {}
        self.roots: set[str] = set()
        self.candidates: dict[tuple[str, Version, str], Candidate] = {}
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

    def metadata(self, candidate: Candidate) -> CoreMetadata:
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

    def identify(self, requirement_or_candidate: Req | Candidate) -> str:
        return requirement_or_candidate.ident

    def narrow_requirement_selection(
        self,
        identifiers: Iterable[str],
        resolutions: Mapping[str, Candidate],
        candidates: Mapping[str, Iterator[Candidate]],
        information: Mapping[str, Iterator[Info]],
        backtrack_causes: Sequence[Info],
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
            return [min(narrowed, key=lambda i: preference(i, information[i]))]
        return narrowed

    def get_preference(
        self,
        identifier: str,
        resolutions: Mapping[str, Candidate],
        candidates: Mapping[str, Iterator[Candidate]],
        information: Mapping[str, Iterator[Info]],
        backtrack_causes: Sequence[Info],
    ) -> tuple[bool, bool, str]:
        """Exact pins first (nothing to choose), then direct requirements, then by name."""
        return preference(identifier, information[identifier])

    def find_matches(
        self,
        identifier: str,
        requirements: Mapping[str, Iterator[Req]],
        incompatibilities: Mapping[str, Iterator[Candidate]],
    ) -> _Matches:
        self.stats["find_matches"] += 1
        reqs = list(requirements[identifier])
        bad = {c.version for c in incompatibilities[identifier]}
        memo_key = (identifier, frozenset(r.text for r in reqs), frozenset(bad))
        found = self.matches.get(memo_key)
        if found is None:
            found = self.matches[memo_key] = self._find_matches(identifier, reqs, bad)
        return found

    def _find_matches(self, identifier: str, reqs: list[Req], bad: set[Version]) -> _Matches:
        if identifier == PYTHON:
            ok = all(r.specifier.contains(self.python, prereleases=True) for r in reqs)
            return [Candidate(PYTHON, self.python)] if ok and self.python not in bad else []
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

    def is_satisfied_by(self, requirement: Req, candidate: Candidate) -> bool:
        held = requirement.satisfied.get(candidate)
        if held is None:
            held = requirement.specifier.contains(candidate.version, prereleases=True)
            requirement.satisfied[candidate] = held
        return held

    def get_dependencies(self, candidate: Candidate) -> list[Req]:
        if candidate.name == PYTHON:
            return []
        meta = self.metadata(candidate)
        deps: list[Req] = []
        skipped: list[Requirement] = []
        if candidate.extras:
            # The extra's candidate is the base candidate plus the extra's own dependencies.
            pin = f"=={candidate.version}"
            deps.append(Req(candidate.name, frozenset(), specifier(pin), candidate.name + pin))
            for req in meta.requires_dist:
                if not self.marker_holds(req, "") and any(
                    self.marker_holds(req, extra) for extra in candidate.extras
                ):
                    deps.append(from_requirement(req))
            self._record(candidate, deps)
            return deps
        if meta.requires_python is not None:
            rp = str(meta.requires_python)
            deps.append(Req(PYTHON, frozenset(), meta.requires_python, f"Python{rp}"))
        for req in meta.requires_dist:
            if self.marker_holds(req, ""):
                deps.append(from_requirement(req))
            else:
                skipped.append(req)  # stringified only for the pins (`_pins`)
        if skipped:
            self.skipped[candidate] = skipped
        self._record(candidate, deps)
        return deps

    def _record(self, candidate: Candidate, deps: list[Req]) -> None:
        for dep in deps:
            if dep.name != candidate.name:
                self.required_by.setdefault(dep.name, set()).add(candidate)
