"""From index pages and core metadata to what a resolver can reason about.

Two jobs, both pure and both cached, because they dominate a resolve's cost in Python:

* `ProjectFiles` groups a project's in-scope files by version and, only when the resolver asks
  about a version, picks the file to use for the target: the best-ranked compatible wheel (rank as
  ``packaging.tags`` orders the target's tags), a file's ``data-requires-python`` checked, yanked
  files kept apart (PEP 592: usable only by an exact ``==`` pin), the sdist only when no wheel fits,
  the earlier index's file when two indexes serve the same version (unsafe-best-match).
  Filenames are split with string operations (a wheel name cannot contain ``-`` by spec), never
  parsed with ``packaging.utils`` for every file of a 2,000-file project.
* `CoreMetadata` is the part of METADATA/PKG-INFO a resolver needs (dependencies, Requires-Python,
  extras), parsed once per file and kept in a `MetadataCache` shared across resolves, with the
  parsed `Requirement` objects interned by their text (parsing one costs ~50 us).

Sdists: their PKG-INFO is only trusted when PEP 643 says it is static (Metadata-Version >= 2.2 and
neither Requires-Dist nor Requires-Python listed as Dynamic); otherwise `SdistNeedsBuild`.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from packaging.metadata import parse_email
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import InvalidVersion, Version

from satchel.daemon.errors import BuildError, UpstreamError
from satchel.daemon.storage.memory import dismantle_sequence, hold_huge, long_lived_burst
from satchel.daemon.storage.model import FileEntry, ProjectPage

__all__ = [
    "MAX_CACHED_PROJECT_FILES",
    "Choice",
    "CoreMetadata",
    "MetadataCache",
    "ProjectFiles",
    "SdistNeedsBuild",
    "file_version",
    "parse_core_metadata",
    "requirement_text",
]

_SDIST_SUFFIXES = (".tar.gz", ".zip")


class SdistNeedsBuild(BuildError):
    """Only an sdist with dynamic (or pre-PEP 643) metadata fits: it must be built to resolve."""


@dataclass(frozen=True, slots=True)
class Choice:
    """The file picked for one version of a project on this target."""

    file: FileEntry
    page: ProjectPage
    yanked: bool
    #: 0 is the target's best tag; sdists rank after every wheel.
    rank: int


@dataclass(frozen=True, slots=True)
class CoreMetadata:
    name: NormalizedName
    version: Version
    requires_dist: tuple[Requirement, ...]
    requires_python: SpecifierSet | None
    provides_extra: frozenset[NormalizedName]


#: Projects listing more files than this are not kept in `MetadataCache.projects`: a page of
#: 90,000 files (a hostile or enormous index page) held ~250 MB there for good; real projects
#: stay far below (the largest list some thousands of files per index).
MAX_CACHED_PROJECT_FILES = 20_000
#: Parsed versions kept by `version`; past this the memo starts over (bounded, like the others).
MAX_CACHED_VERSIONS = 50_000
#: Interned requirement and specifier texts (each); past this the memo starts over. Whatever
#: the workload, the daemon's memory must stay bounded (issue 15): ~25,000 distinct texts is
#: more than a large set's whole dependency tree over many versions.
MAX_INTERNED = 25_000
#: `MetadataCache.metadata` entries (parsed core metadata, ~0.3-1 KiB each, requirements shared).
MAX_CACHED_METADATA = 20_000
#: `MetadataCache.markers` entries (a marker's result per target, requirement and extra).
MAX_CACHED_MARKERS = 50_000

_requirement_cache: dict[str, Requirement] = {}
_specifier_cache: dict[str, SpecifierSet] = {}
_version_cache: dict[str, Version | None] = {}
_intern_lock = threading.Lock()
_T = TypeVar("_T")


def _interned(cache: dict[str, _T], text: str, make: Callable[[str], _T]) -> _T:
    """*text* parsed by *make* once per distinct text, kept in *cache* (started over past
    `MAX_INTERNED`); the result is shared, never mutate it."""
    found = cache.get(text)
    if found is None:
        found = make(text)
        with _intern_lock:
            if len(cache) >= MAX_INTERNED:
                cache.clear()
            cache[text] = found
    return found


def requirement(text: str) -> Requirement:
    """Parse (once per distinct text) a requirement; the result is shared, never mutate it."""
    return _interned(_requirement_cache, text, Requirement)


_requirement_texts: dict[int, tuple[Requirement, str]] = {}


def requirement_text(req: Requirement) -> str:
    """``str(req)``, made once per requirement object (kept with it, started over past
    `MAX_INTERNED`): requirements are interned (`requirement`), and a resolve of a large set
    names ~750 skipped ones, each ``str`` a walk of packaging's parts."""
    kept = _requirement_texts.get(id(req))
    if kept is not None and kept[0] is req:
        return kept[1]
    text = str(req)
    with _intern_lock:
        if len(_requirement_texts) >= MAX_INTERNED:
            _requirement_texts.clear()
        _requirement_texts[id(req)] = (req, text)
    return text


def specifier(text: str) -> SpecifierSet:
    return _interned(_specifier_cache, text, SpecifierSet)


def version(text: str, *, memo: bool = True) -> Version | None:
    """A parsed version, or None for a legacy (non-PEP 440) version, which is ignored.

    ``memo=False`` for the versions of an enormous page: they are not kept, since objects
    kept for good from a burst of millions scatter over the allocator's arenas and pin them
    (the daemon stayed at 280 MB after a 60 MB page: issue 11.6).
    """
    if text in _version_cache:
        return _version_cache[text]
    try:
        parsed: Version | None = Version(text)
    except InvalidVersion:
        parsed = None
    if not memo:
        return parsed
    if len(_version_cache) >= MAX_CACHED_VERSIONS:
        _version_cache.clear()
    _version_cache[text] = parsed
    return parsed


#: Metadata the look-ahead parsed that no resolver has read yet: a resolver reads the same bytes
#: moments later (`LookAhead.dependencies_of`, then `Provider.metadata`), and the email parse is
#: most of a metadata read's Python cost (13% of a cold prefetch's, issue 15). Taken by that
#: read; a guess the resolver never reads ages out past this many (~5 KiB of bytes each).
MAX_PARSED_AHEAD = 128

_parsed_ahead: dict[tuple[bytes, bool], CoreMetadata] = {}


def parse_core_metadata(
    data: bytes, *, sdist: bool, where: str, ahead: bool = False
) -> CoreMetadata:
    """Read what resolving needs from METADATA (wheel) or PKG-INFO (sdist) bytes.

    *where* names the file in errors. Malformed metadata is an `UpstreamError`: the index served
    something no installer could use. *ahead*: for the look-ahead, which keeps what it parsed
    for the resolver's read of the same bytes (`MAX_PARSED_AHEAD`).
    """
    key = (data, sdist)
    with _intern_lock:
        found = _parsed_ahead.get(key) if ahead else _parsed_ahead.pop(key, None)
    if found is not None:
        return found
    meta = _parse_core_metadata(data, sdist=sdist, where=where)
    if ahead:
        with _intern_lock:
            if len(_parsed_ahead) >= MAX_PARSED_AHEAD:
                del _parsed_ahead[next(iter(_parsed_ahead))]
            _parsed_ahead[key] = meta
    return meta


def _parse_core_metadata(data: bytes, *, sdist: bool, where: str) -> CoreMetadata:
    raw, _unparsed = parse_email(data)
    if sdist:
        meta_version = version(raw.get("metadata_version", "1.0"))
        dynamic = {d.lower() for d in raw.get("dynamic", [])}
        if meta_version is None or meta_version < Version("2.2"):
            raise SdistNeedsBuild(
                f"{where} is an sdist with Metadata-Version {raw.get('metadata_version')} "
                "(before PEP 643), so its dependencies are only known after building it"
            )
        if dynamic & {"requires-dist", "requires-python"}:
            raise SdistNeedsBuild(
                f"{where} is an sdist whose {', '.join(sorted(dynamic))} metadata is dynamic "
                "(PEP 643), so it must be built to know its dependencies"
            )
    try:
        name = canonicalize_name(raw["name"])
        parsed_version = Version(raw["version"])
        deps = tuple(requirement(text) for text in raw.get("requires_dist", []))
        rp = raw.get("requires_python")
        requires_python = specifier(rp) if rp else None
    except (KeyError, InvalidVersion, InvalidRequirement, InvalidSpecifier) as exc:
        raise UpstreamError(f"unusable core metadata in {where}: {exc!r}") from exc
    extras = frozenset(canonicalize_name(e) for e in raw.get("provides_extra", []))
    return CoreMetadata(name, parsed_version, deps, requires_python, extras)


@dataclass
class MetadataCache:
    """Parsed core metadata and marker results, shared by every resolve of a daemon.

    Keyed by the file's sha256 (or URL when the index gave no sha256): the same file yields the
    same metadata whichever index served it. Thread-safe enough for resolves in worker threads:
    entries are only ever added, and a lost race only means parsing twice.
    """

    metadata: dict[str, CoreMetadata] = field(default_factory=dict)
    #: (target key, id of a Requirement in cached metadata, extra) -> (that requirement, does
    #: its marker hold?); the requirement is kept so that its id stays unique.
    markers: dict[tuple[str, int, str], tuple[Any, bool]] = field(default_factory=dict)
    #: (target key, pages signature) -> ProjectFiles
    projects: dict[tuple[object, ...], ProjectFiles] = field(default_factory=dict)
    #: resolve inputs -> (resolution, {project: page signature} of every project consulted)
    results: dict[tuple[object, ...], tuple[Any, dict[str, tuple[object, ...]]]] = field(
        default_factory=dict
    )
    max_projects: int = 4096
    max_results: int = 256
    #: Pins held by all of `results` together: each costs ~2-3 KiB (its `Pin`, names, who
    #: required it, measured), so 256 results of a 99-package set held ~57 MiB and the daemon
    #: grew ~153 KiB per distinct result (issue 15). This bound is ~10 MiB, whatever the sets:
    #: still ~40 results of 100 pins for repeated resolves to answer from.
    max_result_pins: int = 4096
    #: Pins held by `results` now (each result counts one more than its pins).
    result_pins: int = 0

    def forget_metadata(self, sha256: str, url: str) -> None:
        """Drop the parsed metadata of one file (its cached bytes were replaced) and every
        resolution, any of which may have used it."""
        self.metadata.pop(sha256, None)
        self.metadata.pop(url, None)
        self.results.clear()
        self.result_pins = 0

    def remember_metadata(self, key: str, meta: CoreMetadata) -> None:
        if len(self.metadata) >= MAX_CACHED_METADATA:
            self.metadata.clear()  # bounded like the others; parsed again from the database
        self.metadata[key] = meta

    def remember_marker(self, key: tuple[str, int, str], req: Any, held: bool) -> None:
        if len(self.markers) >= MAX_CACHED_MARKERS:
            self.markers.clear()
        self.markers[key] = (req, held)

    def remember_project(self, key: tuple[object, ...], files: ProjectFiles) -> None:
        if files.file_count > MAX_CACHED_PROJECT_FILES:
            return  # rebuilt per resolve rather than pinned for the daemon's life (issue 11.6)
        if len(self.projects) >= self.max_projects:
            self.projects.clear()  # crude but bounded: a daemon-wide set is rarely this large
        self.projects[key] = files

    def remember_result(
        self, key: tuple[object, ...], result: Any, signatures: dict[str, tuple[object, ...]]
    ) -> None:
        """Keep *result* (a `Resolution`); the oldest go first past `max_results` results or
        `max_result_pins` pins in all."""
        size = _result_size(result)
        if size > self.max_result_pins:
            return
        previous = self.results.pop(key, None)
        if previous is not None:
            self.result_pins -= _result_size(previous[0])
        while self.results and (
            len(self.results) >= self.max_results or self.result_pins + size > self.max_result_pins
        ):
            oldest = next(iter(self.results))
            self.result_pins -= _result_size(self.results.pop(oldest)[0])
        self.results[key] = (result, signatures)
        self.result_pins += size


def _result_size(result: Any) -> int:
    """What a cached result counts toward `MetadataCache.max_result_pins`."""
    return len(getattr(result, "pins", ())) + 1


def page_signature(pages: Iterable[ProjectPage]) -> tuple[object, ...]:
    """What identifies a revision of a project's pages (a revalidation changes ``fetched_at``)."""
    return tuple((p.index, p.url, p.fetched_at, len(p.files)) for p in pages)


def _wheel_version_and_tags(filename: str) -> tuple[str, list[str]] | None:
    parts = filename[:-4].split("-")
    if len(parts) not in (5, 6):
        return None
    py, abi, plat = parts[-3], parts[-2], parts[-1]
    tags = [f"{x}-{y}-{z}" for x in py.split(".") for y in abi.split(".") for z in plat.split(".")]
    return parts[1], tags


def _sdist_version(filename: str, project: str) -> str | None:
    for suffix in _SDIST_SUFFIXES:
        if filename.endswith(suffix):
            stem = filename[: -len(suffix)]
            name, sep, ver = stem.rpartition("-")
            if sep and canonicalize_name(name) == project:
                return ver
    return None


def file_version(filename: str, project: str, *, memo: bool = True) -> Version | None:
    """The version a distribution file of normalised *project* is of, by its name alone.

    None for a name no version can be read from (or a legacy, non-PEP 440 version). *memo*:
    see `version`.
    """
    if filename.endswith(".whl"):
        # Only the version is needed; tags are read when a version is chosen.
        text = filename.split("-", 2)[1] if filename.count("-") in (4, 5) else None
    else:
        text = _sdist_version(filename, project)
    return version(text, memo=memo) if text else None


def _union(groups: Iterable[dict[Version, Any]]) -> set[Version]:
    every: set[Version] = set()
    for grouped in groups:
        every.update(grouped)
    return every


class ProjectFiles:
    """One project's in-scope files on one target, grouped by version, choices made lazily."""

    def __init__(
        self,
        project: str,
        pages: Collection[ProjectPage],
        tag_ranks: dict[str, int],
        python_version: Version,
        *,
        allow_sdists: bool,
        allow_wheels: bool = True,
    ) -> None:
        self.project = project
        self._ranks = tag_ranks
        self._python = python_version
        self._allow_sdists = allow_sdists
        self._allow_wheels = allow_wheels
        self._pages = tuple(pages)
        #: Per page (in priority order): version -> its file, or its files in page order. No
        #: tuple or list per file: a page of 90,000 versions made 270,000 of them (issue 11.6).
        self._files: list[dict[Version, FileEntry | list[FileEntry]]] = []
        self.file_count = sum(len(page.files) for page in self._pages)
        memo = self.memoised
        with contextlib.nullcontext() if memo else long_lived_burst():
            for page in self._pages:
                grouped: dict[Version, FileEntry | list[FileEntry]] = {}
                for file in page.files:
                    parsed = file_version(file.filename, project, memo=memo)
                    if parsed is None:
                        continue
                    known = grouped.setdefault(parsed, file)
                    if isinstance(known, list):
                        known.append(file)
                    elif known is not file:
                        grouped[parsed] = [known, file]
                self._files.append(grouped)
            every = self._files[0].keys() if len(self._files) == 1 else _union(self._files)
            #: Newest first, the order a resolver tries them in.
            self.versions: list[Version] = sorted(every, reverse=True)
            self._choices: dict[tuple[Version, bool, frozenset[str] | None], Choice | None] = {}
            if not memo:  # its versions are freed off the event loop (`memory.reap`)
                hold_huge(self, ProjectFiles._dismantle)

    @staticmethod
    def _dismantle(box: list[ProjectFiles]) -> None:
        """Free what the one item of *box* holds, a piece at a time (`memory.reap`)."""
        self = box[0]
        tables: list[dict[Any, Any]] = [*self._files, self._choices]
        for table in tables:
            while table:
                table.popitem()
        versions, self.versions = self.versions, []
        dismantle_sequence([versions])
        self._pages = ()

    @property
    def memoised(self) -> bool:
        """Whether this project is small enough to be kept between resolves (its versions and
        choices are memoised); an enormous one is rebuilt each time (issue 11.6)."""
        return self.file_count <= MAX_CACHED_PROJECT_FILES

    def _entries(self, v: Version) -> Iterator[tuple[int, ProjectPage, FileEntry]]:
        """(page priority, page, file) of each file of *v*, in page order."""
        for priority, grouped in enumerate(self._files):
            found = grouped.get(v)
            if isinstance(found, list):
                for file in found:
                    yield priority, self._pages[priority], file
            elif found is not None:
                yield priority, self._pages[priority], found

    def all_files(self, v: Version) -> list[FileEntry]:
        return [file for _, _, file in self._entries(v)]

    def excluded_sdist(self, v: Version, *, allow_yanked: bool) -> FileEntry | None:
        """The sdist of *v* that would fit if sdists were allowed (to name it in an error)."""
        if self._allow_sdists:
            return None
        for _, _, file in self._entries(v):
            fits = file.filename.endswith(_SDIST_SUFFIXES) and self._python_ok(file)
            if fits and (allow_yanked or not file.yanked):
                return file
        return None

    def choose(
        self, v: Version, *, allow_yanked: bool, hashes: frozenset[str] | None = None
    ) -> Choice | None:
        """The file to use for version *v* (None: nothing fits this target).

        *hashes*, when given, are the only sha256 digests acceptable (hash-checking mode).
        """
        key = (v, allow_yanked, hashes)
        if key not in self._choices:
            self._choices[key] = self._choose(v, allow_yanked, hashes)
        return self._choices[key]

    def _python_ok(self, file: FileEntry) -> bool:
        if not file.requires_python:
            return True
        try:
            return specifier(file.requires_python).contains(self._python, prereleases=True)
        except InvalidSpecifier:
            return True  # a malformed data-requires-python is ignored, as pip does

    def _choose(
        self, v: Version, allow_yanked: bool, hashes: frozenset[str] | None
    ) -> Choice | None:
        best: tuple[tuple[int, int, int, int], Choice] | None = None
        sdist_rank = len(self._ranks)
        for priority, page, file in self._entries(v):
            if (file.yanked and not allow_yanked) or not self._python_ok(file):
                continue
            if hashes is not None and file.sha256 not in hashes:
                continue
            if file.filename.endswith(".whl"):
                if not self._allow_wheels:  # --no-binary
                    continue
                split = _wheel_version_and_tags(file.filename)
                ranks = [self._ranks[t] for t in split[1] if t in self._ranks] if split else []
                if not ranks:
                    continue
                rank = min(ranks)
            elif self._allow_sdists:
                rank = sdist_rank
            else:
                continue
            # Prefer: non-yanked, any wheel over the sdist, the earlier index, the better tag.
            order = (int(file.yanked), int(rank == sdist_rank), priority, rank)
            if best is None or order < best[0]:
                best = (order, Choice(file, page, file.yanked, rank))
        return best[1] if best else None
