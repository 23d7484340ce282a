"""The look-ahead: a request's likely dependencies fetched before the resolver asks for them.

Pages of likely dependencies, and the cheap metadata (PEP 658, or byte ranges from a host that
serves them) of each one's likely candidate, are fetched ahead of the resolver (`follow`, `aim`),
so a resolve waits on the network roughly once per dependency level, not once per project. Only
what the resolution can use is fetched ahead: dependencies whose marker holds on the target, of
the extras asked for, at the newest version the requirements seen so far allow (each other
request is a round trip on a remote index: issue 15).

It works for one request (`catalog.Session`), through the few things it needs of it
(`Looked`), and starts its fetches in the catalog's nursery.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Protocol

import trio
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from satchel.daemon.errors import SatchelError
from satchel.daemon.resolver.candidates import (
    MAX_CACHED_PROJECT_FILES,
    ProjectFiles,
    parse_core_metadata,
)
from satchel.daemon.resolver.scope import ScopedPages
from satchel.daemon.settings.credentials import redact
from satchel.daemon.storage.model import FileEntry, ProjectPage

if TYPE_CHECKING:
    from satchel.daemon.resolver.target import Target

__all__ = ["WARM_CONCURRENCY", "LookAhead", "Looked", "likely_candidate"]

log = logging.getLogger(__name__)

#: A project with at most this many files has its likely candidate chosen on the event loop
#: (~0.7 us a file, ~25 us at 32), not in a worker thread: a hop cost ~60 us of CPU (issue 15).
INLINE_GUESS_FILES = 32
#: Concurrent look-ahead page fetches per request: enough to overlap a dependency level's
#: round trips, few enough not to starve the foreground requests of the per-index limiter.
WARM_CONCURRENCY = 32


class Looked(Protocol):
    """What the look-ahead needs of the request it works for (`catalog.Session`)."""

    @property
    def offline(self) -> bool: ...

    async def scoped_pages(self, project: str) -> ScopedPages: ...

    async def core_metadata(self, page: ProjectPage, file: FileEntry) -> bytes: ...

    def has_scope(self, project: str) -> bool: ...

    def forget_scope(self, project: str) -> None: ...


class LookAhead:
    """One request's look-ahead: what it has seen asked, and the fetches it started."""

    def __init__(self, nursery: trio.Nursery, ranged: Callable[[str], bool]) -> None:
        # The session is handed to each call, never kept: a session holding its look-ahead and
        # the look-ahead holding the session would be a cycle, which only the collector frees,
        # and one frozen by an enormous page's burst (`storage.memory`) would keep the page.
        self._nursery = nursery
        #: Whether a file URL's host served byte ranges already (cheap metadata by range).
        self._ranged = ranged
        self._warming: set[str] = set()
        self._warm_limit = trio.CapacityLimiter(WARM_CONCURRENCY)
        #: The target's tag ranks and Python version, once `aim` was called: the look-ahead
        #: then also fetches the core metadata of each project's likely candidate.
        self._aim: tuple[dict[str, int], Version] | None = None
        #: The target's environment markers, once `aim` was called: the look-ahead follows
        #: only the dependencies whose marker holds there.
        self._markers: dict[str, str] | None = None
        #: Project -> the extras some requirement seen by the look-ahead asks of it.
        self._extras: dict[str, set[str]] = {}
        #: Project -> every specifier seen by the look-ahead for it, intersected (the likely
        #: candidate is the newest version they allow).
        self._specs: dict[str, SpecifierSet] = {}
        #: Project -> the dependencies listed by the last metadata of it read in this request,
        #: for an extra asked of it later (`follow`).
        self._requires: dict[str, tuple[Requirement, ...]] = {}

    def aim(self, target: Target) -> None:
        """Let the look-ahead fetch metadata for *target*'s likely candidates, not just pages.

        Without it the resolver thread waits one metadata round trip per project, in sequence
        (resolvelib asks for a candidate's dependencies only when it pins it). With it, the
        metadata of the newest version that fits the target is fetched as soon as its page
        arrives, and its dependencies' pages and metadata after it, concurrently: a guess that
        turns out wrong (a requirement excludes the newest version) costs one small request.
        """
        self._aim = (target.tag_ranks(), Version(target.python_full_version))
        self._markers = dict(target.markers)

    # -- look-ahead ---------------------------------------------------------------------------

    def dependencies_of(self, session: Looked, data: bytes, file: FileEntry) -> None:
        """Start fetching the pages of *file*'s dependencies before the resolver asks: those
        the resolution can use on the aimed target (`follow`)."""
        if self._markers is None:
            return  # no target: nothing to evaluate markers against, so nothing is guessed
        try:
            meta = parse_core_metadata(
                data, sdist=not file.is_wheel, where=file.filename, ahead=True
            )
        except SatchelError:
            return
        self._requires[meta.name] = meta.requires_dist
        self._follow(session, meta.requires_dist, ("", *sorted(self._extras.get(meta.name, ()))))

    def _follow(
        self, session: Looked, requires: tuple[Requirement, ...], extras: Iterable[str]
    ) -> None:
        """Look ahead for each of *requires* whose marker holds under one of *extras* ("" for
        the dependencies of no extra); the others could only cost requests (issue 15)."""
        markers = self._markers
        assert markers is not None
        wanted = tuple(extras)
        for requirement in requires:
            marker = requirement.marker
            if marker is None or any(
                marker.evaluate({**markers, "extra": extra}) for extra in wanted
            ):
                self.follow(session, requirement)

    def follow(self, session: Looked, requirement: Requirement) -> None:
        """Look ahead for *requirement* (a root, or a dependency whose marker holds): its
        project's page, the metadata of the newest version its specifiers allow, and the
        dependencies of that version and of the extras *requirement* asks for."""
        if session.offline or self._markers is None:
            return
        project = canonicalize_name(requirement.name)
        seen = self._specs.get(project)
        self._specs[project] = (
            requirement.specifier if seen is None else seen & requirement.specifier
        )
        asked = {canonicalize_name(extra) for extra in requirement.extras}
        known = self._extras.setdefault(project, set())
        new = asked - known
        known |= new
        requires = self._requires.get(project)
        if new and requires is not None:  # its metadata came already: follow the new extras
            self._follow(session, requires, sorted(new))
        self.warm(session, project)

    def warm(self, session: Looked, project: str) -> None:
        project = canonicalize_name(project)
        if session.has_scope(project) or project in self._warming or session.offline:
            return
        self._warming.add(project)
        self._nursery.start_soon(self._warm_one, session, project)

    async def _warm_one(self, session: Looked, project: str) -> None:
        async with self._warm_limit:
            try:
                scoped = await session.scoped_pages(project)
            except Exception as exc:
                # The resolver will ask again and get the error itself, if it needs the project;
                # a look-ahead must never take the daemon's nursery down with it.
                log.debug("look-ahead for %s failed: %s", project, redact(exc))
                session.forget_scope(project)
                return
            if self._aim is None or session.offline or not scoped.pages:
                return
            if sum(len(page.files) for page in scoped.pages) > MAX_CACHED_PROJECT_FILES:
                # Grouping an enormous page (90,000 files) costs seconds and ~100 MB: the
                # resolver does it anyway, and a guess is not worth doing it twice (issue 11.6).
                return
            ranks, python = self._aim
            guess = functools.partial(
                likely_candidate,
                project,
                scoped.pages,
                ranks,
                python,
                self._ranged,
                self._specs.get(project),
            )
            if sum(len(page.files) for page in scoped.pages) <= INLINE_GUESS_FILES:
                likely = guess()
            else:
                likely = await trio.to_thread.run_sync(guess)
            if likely is None:
                return
            try:
                await session.core_metadata(*likely)
            except Exception as exc:
                log.debug("metadata look-ahead for %s failed: %s", project, redact(exc))


def likely_candidate(
    project: str,
    pages: tuple[ProjectPage, ...],
    ranks: dict[str, int],
    python: Version,
    ranged: Callable[[str], bool] = lambda _url: False,
    allowed: SpecifierSet | None = None,
) -> tuple[ProjectPage, FileEntry] | None:
    """The (page, wheel) a resolver most likely pins for *project*, if its metadata is cheap.

    The newest non-prerelease version with a wheel for the target that the *allowed*
    specifiers (of the requirements seen so far) accept: what resolvelib tries first. Only
    wheels whose metadata is cheap qualify: a PEP 658 file, or byte ranges from a host that
    served them already (*ranged*, by file URL: a wrong guess then costs a range read of some
    KiB). Otherwise the metadata is inside the file, and a look-ahead must not download whole
    distributions on a guess.
    """
    files = ProjectFiles(project, pages, ranks, python, allow_sdists=False)
    candidates = files.versions
    if allowed is not None:
        candidates = list(allowed.filter(candidates, prereleases=True))
    versions = [v for v in candidates if not v.is_prerelease] or candidates
    for version in versions[:3]:
        choice = files.choose(version, allow_yanked=False)
        if choice is not None:
            if choice.file.metadata_sha256 is None and not ranged(choice.file.url):
                return None
            return choice.page, choice.file
    return None
