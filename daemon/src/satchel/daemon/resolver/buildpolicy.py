"""What a build may do: whether an sdist may be built at all, and what its backend sees.

Building an sdist runs its build backend: arbitrary code from the index. Users say when they
want none of that, and three sources decide, strictest first:

* ``--no-build`` (resolve, install, run, prefetch): no sdist is a candidate and no build runs;
* ``--only-binary`` / ``--no-binary`` (in a requirements file or on the command line), with pip's
  syntax and semantics (`Formats`): ``:all:``, ``:none:`` or comma-separated project names
  (canonicalised); a later statement about a project overrides an earlier one, ``:all:`` resets
  the other list, ``:none:`` empties this one. A project that may only come as a binary has no
  sdist candidates, and an sdist of it (from a lock) is never built;
* ``builds`` in config.toml ``[settings]``: ``"on-request"`` (the default: a command the user ran
  may build, background prefetches of watched projects may not), ``"background"`` (those may
  too), ``"never"`` (nothing is ever built; as ``--no-build`` on every command).

An sdist still pinned where builds are forbidden (named by a lock, or resolved in a background
prefetch) is served by a wheel built from it earlier for the same interpreter when one is stored:
using it runs no code. A build that is needed but forbidden is `BuildForbidden`,
naming the project, the sdist and what forbids it.

A build that does run sees a scrubbed environment
(`satchel.daemon.installing.childenv.scrubbed_environ`): an allow-list of what
compilers and locales need, never the daemon's credentials (``SATCHEL_INDEX_*_PASSWORD``,
``*_TOKEN``, ``PIP_*``/``UV_*`` with their index URLs, cloud keys): a backend is code from an
index and must not learn how to reach another one. Every other child process that may run code
from an index gets the same environment: an environment's interpreter, asked to describe itself
or to byte-compile, runs the ``.pth`` files that installed wheels put in its site-packages.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from packaging.utils import canonicalize_name

from satchel.daemon.errors import BuildForbidden, SatchelError

__all__ = ["BuildPolicy", "Formats"]

ALL = ":all:"
NONE = ":none:"


@dataclass(frozen=True)
class Formats:
    """pip's ``FormatControl``: which projects may come only as wheels, or only as sdists."""

    no_binary: frozenset[str] = frozenset()
    only_binary: frozenset[str] = frozenset()
    #: Where the last ``--only-binary`` came from ("--only-binary :all: (requirements.txt:3)").
    only_binary_origin: str = ""

    def update(self, option: str, value: str, origin: str) -> Formats:
        """Apply ``--no-binary VALUE`` or ``--only-binary VALUE`` as pip does."""
        if option not in ("--no-binary", "--only-binary"):
            raise ValueError(f"not a format option: {option}")
        target = set(self.no_binary if option == "--no-binary" else self.only_binary)
        other = set(self.only_binary if option == "--no-binary" else self.no_binary)
        for name in (part.strip() for part in value.split(",")):
            if not name:
                continue
            if name == ALL:
                target, other = {ALL}, set()
            elif name == NONE:
                target = set()
            else:
                canonical = canonicalize_name(name)
                other.discard(canonical)
                target.add(canonical)
        if option == "--no-binary":
            return replace(self, no_binary=frozenset(target), only_binary=frozenset(other))
        said = f"--only-binary {value} ({origin})" if origin else f"--only-binary {value}"
        return Formats(frozenset(other), frozenset(target), said)

    def sdist_allowed(self, project: str) -> bool:
        if project in self.only_binary:
            return False
        if project in self.no_binary:
            return True
        return ALL not in self.only_binary

    def wheel_allowed(self, project: str) -> bool:
        if project in self.only_binary:
            return True
        if project in self.no_binary:
            return False
        return ALL not in self.no_binary


@dataclass(frozen=True)
class BuildPolicy:
    """What one request may build. Hashable: the resolver's result cache is keyed by it."""

    formats: Formats = field(default_factory=Formats)
    #: Why no build may run at all ("--no-build", "builds = \"never\" in config.toml"), or None.
    forbidden: str | None = None
    #: Whether sdists stay resolver candidates although no build may run: in the background,
    #: a watched project's sdists are still resolved and stored, for a build the user runs.
    sdists_resolve: bool = False

    @classmethod
    def of(
        cls,
        formats: Formats,
        *,
        no_build: bool,
        setting: str,
        background: bool = False,
    ) -> BuildPolicy:
        """The policy for a request: its flags, then config.toml's ``builds`` *setting*."""
        if no_build:
            return cls(formats, "--no-build")
        if setting == "never":
            return cls(formats, 'builds = "never" in config.toml [settings]')
        if background and setting != "background":
            return cls(
                formats,
                "background builds being off (a watched project's prefetch builds only with "
                'builds = "background" in config.toml [settings]; `satchel prefetch --watched` '
                "builds now)",
                sdists_resolve=True,
            )
        return cls(formats)

    def sdist_allowed(self, project: str) -> bool:
        """Whether an sdist of normalised *project* may be a resolver candidate."""
        if self.forbidden is not None and not self.sdists_resolve:
            return False
        return self.formats.sdist_allowed(project)

    def wheel_allowed(self, project: str) -> bool:
        return self.formats.wheel_allowed(project)

    def why_not(self, project: str) -> str | None:
        """What forbids building *project* (None: it may be built)."""
        if self.forbidden is not None:
            return self.forbidden
        if not self.formats.sdist_allowed(project):
            return self.formats.only_binary_origin or "--only-binary"
        return None

    def check(self, project: str, filename: str) -> None:
        """Raise `BuildForbidden` unless the sdist *filename* of *project* may be built."""
        why = self.why_not(canonicalize_name(project))
        if why is not None:
            raise BuildForbidden(
                f"{project}: only the sdist {filename} fits, and building it is forbidden by "
                f"{why}; allow the build, or require a version that has a wheel for this "
                "interpreter",
                details={"project": project, "file": filename, "forbidden_by": why},
            )

    def explain(self, excluded: Mapping[str, str], failure: SatchelError) -> SatchelError:
        """The error for a resolution that failed while this policy left out the sdists
        *excluded* (project -> sdist file name) where nothing else fitted: `BuildForbidden`
        naming them first (what the user forbade is the reason), then *failure*'s explanation;
        *failure* itself when nothing was left out."""
        if not excluded:
            return failure
        lines = [
            f"{project}: only the sdist {filename} fits, and building it is forbidden by "
            f"{self.why_not(project)}"
            for project, filename in sorted(excluded.items())
        ]
        return BuildForbidden(
            "\n".join([*lines, failure.message]),
            details={**failure.details, "sdists": dict(excluded)},
        )
