"""Turn resolvelib's failure causes into sentences a user can act on.

resolvelib reports a failure as the set of (requirement, parent) pairs that could not be
satisfied together. A user needs more: which project clashes, who asked for each side (and who
asked for *them*), and, when nothing matched at all, why: the project is not in the index scope
(with where it *is* cached and how to allow it), not cached while offline (and when it was last
seen), the matching versions have no file for this target, or only a yanked file or a
pre-release would fit. Each of those becomes the matching error class.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Collection, Mapping
from typing import Any, Protocol

from packaging.specifiers import SpecifierSet
from packaging.version import Version

from satchel.daemon.errors import NotCached, NotFound, ResolutionImpossible, SatchelError
from satchel.daemon.resolver.candidates import ProjectFiles, version
from satchel.daemon.resolver.scope import ScopedPages, describe_out_of_scope
from satchel.daemon.resolver.target import Target

__all__ = ["impossible"]

PYTHON = "<python>"
_MAX_CHAIN = 8


class _ProviderView(Protocol):
    target: Target
    python: Version
    scoped: dict[str, ScopedPages]
    hashes: Mapping[str, frozenset[str]] | None
    roots: set[str]
    required_by: dict[str, set[Any]]

    def project(self, name: str) -> ProjectFiles: ...


def _who(parent: Any) -> str:
    return "you requested" if parent is None else f"{parent.name} {parent.version} requires"


def _chain(provider: _ProviderView, parent: Any) -> str | None:
    """``app 3.1 (requested) -> internal-tool 1.0``: how *parent* came to be in the graph."""
    if parent is None or parent.name in provider.roots:
        return None
    steps = [f"{parent.name} {parent.version}"]
    seen = {parent.name}
    name = parent.name
    while name not in provider.roots and len(steps) < _MAX_CHAIN:
        requirers = sorted(provider.required_by.get(name, ()), key=lambda c: (c.name, c.version))
        nxt = next((c for c in requirers if c.name not in seen), None)
        if nxt is None:
            break
        steps.append(f"{nxt.name} {nxt.version}")
        seen.add(nxt.name)
        name = nxt.name
    if name in provider.roots:
        steps[-1] += " (requested)"
    return " -> ".join(reversed(steps))


def _when(timestamp: float | None) -> str:
    if not timestamp:
        return "never fetched from any index"
    return "last seen " + time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(timestamp))


def _missing(provider: _ProviderView, name: str, parents: Collection[Any]) -> SatchelError:
    scoped = provider.scoped[name]
    who = ", ".join(
        sorted({"your requirements" if p is None else f"{p.name} {p.version}" for p in parents})
    )
    hints = describe_out_of_scope(scoped)
    if scoped.stored_unlisted:
        return _unlisted(scoped, who, hints)
    if scoped.pages:
        indexes = ", ".join(f"'{page.index}'" for page in scoped.pages)
        count = sum(len(page.files) for page in scoped.pages)
        if count == 0 and scoped.offline:
            return NotCached(
                f"{name} (needed by: {who}) is known from index {indexes} "
                f"({_when(scoped.last_seen)}), but none of its files is in the cache; run "
                f"`satchel prefetch {name}` while online",
                details={"project": name, "last_seen": scoped.last_seen},
            )
        if count == 0:
            return ResolutionImpossible(
                f"{name} (needed by: {who}): index {indexes} lists no files for it",
                details={"project": name},
            )
        return ResolutionImpossible(
            f"{name} (needed by: {who}) is listed on index {indexes}, but none of its {count} "
            "file(s) has a name Satchel can read a version from",
            details={"project": name},
        )
    if scoped.offline:
        message = f"{name} is not cached in the index scope ({_when(scoped.last_seen)}); "
        message += f"needed by: {who}"
        if not hints:
            message += f". Run `satchel prefetch {name}` while online"
        cls: type[SatchelError] = NotCached
    else:
        message = f"no index in scope has a project named {name} (needed by: {who})"
        cls = NotFound
    if hints:
        message += ".\n" + "\n".join(f"  {hint}" for hint in hints)
    details = {"project": name, "last_seen": scoped.last_seen, "hints": hints}
    return cls(message, details=details)


def _unlisted(scoped: ScopedPages, who: str, hints: list[str]) -> NotCached:
    """Offline, files of the project are stored, but no cached in-scope page lists them: say
    so (they are not "not cached"), and why they are not used."""
    name = scoped.project
    count = len(scoped.stored_unlisted)
    files = ", ".join(scoped.stored_unlisted[:5]) + (f" and {count - 5} more" if count > 5 else "")
    message = (
        f"{name} (needed by: {who}): {files} {'is' if count == 1 else 'are'} in the store, but "
        f"no cached page of an index in scope lists {'it' if count == 1 else 'them'} any more "
        f"({_when(scoped.last_seen)}), so offline there is no candidate"
    )
    if hints:
        message += ".\n" + "\n".join(f"  {hint}" for hint in hints)
    details = {"project": name, "stored": list(scoped.stored_unlisted), "hints": hints}
    return NotCached(message, details=details)


def _not_downloaded(provider: _ProviderView, name: str, group: list[Any]) -> NotCached | None:
    """Offline: nothing cached matches, but the cached page lists versions that would.

    Offline answers only offer stored files, so a version seen on the index but never
    downloaded is not a conflict: it is a miss, fixed by prefetching it while online.
    """
    scoped = provider.scoped[name]
    if not scoped.offline or not scoped.unstored:
        return None
    spec = SpecifierSet()
    for cause in group:
        spec &= cause.requirement.specifier
    project = provider.project(name)
    if any(True for _ in spec.filter(project.versions, prereleases=True)):
        return None  # a stored version matches: whatever failed, it was not the cache
    parsed = [v for text in scoped.unstored if (v := version(text)) is not None]
    listed = [v for v in parsed if spec.contains(v, prereleases=True)]
    if not listed:
        return None
    who = ", and ".join(f"{_who(c.parent)} {c.requirement.text}" for c in group)
    shown = ", ".join(str(v) for v in listed[:6]) + (" ..." if len(listed) > 6 else "")
    indexes = ", ".join(f"'{page.index}'" for page in scoped.pages)
    seen = max((page.fetched_at for page in scoped.pages), default=0.0) or scoped.last_seen
    cached = ", ".join(str(v) for v in project.versions[:6]) or "none"
    fix = shlex.quote(f"{name}{spec}")
    return NotCached(
        f"{who}: {name} {shown} would match, but {'is' if len(listed) == 1 else 'are'} not "
        f"downloaded (listed on index {indexes}, {_when(seen)}), and offline only cached "
        f"files can be used (cached versions: {cached}); run `satchel prefetch {fix}` while "
        "online",
        details={"project": name, "versions": [str(v) for v in listed], "last_seen": seen},
    )


def _why_nothing_fits(provider: _ProviderView, name: str, spec: SpecifierSet) -> str:
    """What exists for *name* in scope and why none of it matched *spec* on this target."""
    project = provider.project(name)
    versions = project.versions
    if not versions:
        return f"no files for {name} are in scope"
    shown = ", ".join(str(v) for v in versions[:6]) + (" ..." if len(versions) > 6 else "")
    indexes = ", ".join(f"'{page.index}'" for page in provider.scoped[name].pages)
    cached = " cached" if provider.scoped[name].offline else ""
    reasons = [f"versions{cached} in scope (index {indexes}): {shown}"]
    matching = list(spec.filter(versions, prereleases=True))
    if not matching:
        return "; ".join(reasons)
    if all(v.is_prerelease for v in matching) and not spec.prereleases:
        reasons.append(f"only pre-releases match ({matching[0]}); ask for one explicitly")
    if provider.hashes is not None:
        reasons.extend(_hash_refusals(provider, name, project, matching))
    unfit = [v for v in matching if project.choose(v, allow_yanked=False) is None]
    yanked = [v for v in unfit if project.choose(v, allow_yanked=True) is not None]
    if yanked:
        reasons.append(
            f"{name} {yanked[0]} is yanked (only an exact ==={yanked[0]} or =={yanked[0]} pin "
            "may use a yanked file)"
        )
    no_file = [v for v in unfit if v not in yanked]
    if no_file:
        v = no_file[0]
        files = ", ".join(f.filename for f in project.all_files(v)[:4])
        reasons.append(
            f"{name} {v} has no file for this target (Python {provider.target.python_full_version}"
            f", best tag {provider.target.tags[0] if provider.target.tags else '?'}): {files}"
        )
    return "; ".join(reasons)


def _hash_refusals(
    provider: _ProviderView, name: str, project: ProjectFiles, matching: list[Version]
) -> list[str]:
    """Hash-checking mode: the first matching version whose files only the hashes exclude."""
    allowed = (provider.hashes or {}).get(name, frozenset())
    for v in matching:
        if project.choose(v, allow_yanked=True) is None:
            continue  # nothing fits the target anyway: not the hashes' doing
        if project.choose(v, allow_yanked=True, hashes=allowed) is not None:
            continue
        listed = ", ".join(f"sha256:{digest}" for digest in sorted(allowed)) or "none"
        actual = ", ".join(
            f"{file.filename} sha256:{file.sha256 or '(unknown)'}"
            for file in project.all_files(v)[:4]
        )
        return [
            f"files of {name} {v} exist, but none has an allowed hash "
            f"(allowed: {listed}; found: {actual})"
        ]
    return []


def impossible(causes: Collection[Any], provider: _ProviderView) -> SatchelError:
    """The error for resolvelib's ``ResolutionImpossible(causes)``."""
    by_name: dict[str, list[Any]] = {}
    for cause in causes:
        by_name.setdefault(cause.requirement.name, []).append(cause)

    missing = [name for name in by_name if name != PYTHON and not provider.project(name).versions]
    if missing:
        errors = [_missing(provider, name, [c.parent for c in by_name[name]]) for name in missing]
        if len(errors) == 1:
            return errors[0]
        message = "\n".join(str(e) for e in errors)
        return type(errors[0])(message, details={"projects": missing})

    if provider.hashes is not None:
        unhashed = sorted(name for name in by_name if name not in provider.hashes)
        if unhashed:
            return ResolutionImpossible(
                f"hash-checking mode: {', '.join(unhashed)} has no --hash in the requirements; "
                "in this mode every package, dependencies included, must be listed with hashes",
                details={"projects": unhashed},
            )

    for name, group in sorted(by_name.items()):
        if name != PYTHON and (miss := _not_downloaded(provider, name, group)) is not None:
            return miss

    paragraphs: list[str] = []
    for name, group in sorted(by_name.items()):
        if name == PYTHON:
            clauses = [
                f"{c.parent.name} {c.parent.version} requires Python{c.requirement.specifier}"
                for c in group
                if c.parent is not None
            ]
            paragraphs.append(
                ", and ".join(clauses)
                + f", but the target is Python {provider.target.python_full_version}"
            )
            continue
        clauses = [f"{_who(c.parent)} {c.requirement.text}" for c in group]
        if len(group) == 1:
            spec = group[0].requirement.specifier
            text = f"{clauses[0]}, but nothing matches: {_why_nothing_fits(provider, name, spec)}"
        else:
            text = f"cannot satisfy {name}: " + ", but ".join(clauses)
        chains = sorted({chain for c in group if (chain := _chain(provider, c.parent))})
        text += "".join(f"\n    via {chain}" for chain in chains)
        paragraphs.append(text)
    message = "\n".join(paragraphs)
    return ResolutionImpossible(message, details={"projects": sorted(by_name)})
