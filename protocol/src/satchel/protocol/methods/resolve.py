"""Resolve methods: `resolve` (pin a set) and `prefetch` (pin it and download every file).

Both take the same `ResolveParams`. Paths are absolute (the client resolves them against its own
working directory, which the daemon does not share). Neither carries index URLs: the daemon's
configuration and the recorded origins decide where everything comes from.
"""

from __future__ import annotations

import msgspec

__all__ = [
    "PREFETCH",
    "RESOLVE",
    "PinInfo",
    "PrefetchResult",
    "ResolveParams",
    "ResolveResult",
]

RESOLVE = "resolve"
PREFETCH = "prefetch"


class ResolveParams(msgspec.Struct, frozen=True, kw_only=True):
    #: PEP 508 requirement strings given on the command line.
    requirements: list[str] = []
    #: ``-r`` files (requirements.txt syntax, ``pyproject.toml``, or ``pylock.toml``).
    requirement_files: list[str] = []
    #: ``-c`` constraint files.
    constraint_files: list[str] = []
    #: Extras and PEP 735 dependency groups to take from a ``pyproject.toml`` input.
    extras: list[str] = []
    groups: list[str] = []
    #: Interpreter (path, venv directory, or ``X.Y``) to resolve for; the client sends its own.
    python: str | None = None
    #: ``--platform`` tags and ``--python-version``: resolve for another machine.
    platforms: list[str] = []
    python_version: str | None = None
    offline: bool = False
    #: ``first-index`` (default from the configuration) or ``unsafe-best-match``.
    index_strategy: str | None = None
    prereleases: bool = False
    #: ``--only-binary`` / ``--no-binary`` values as pip takes them (``:all:``, ``:none:``,
    #: comma-separated names); applied after the requirements files' own, ``--only-binary`` last.
    only_binary: list[str] = []
    no_binary: list[str] = []
    #: ``--no-build``: no sdist is a candidate and nothing is built (earlier builds still used).
    no_build: bool = False
    #: ``requirements`` | ``pylock`` | ``json``: what `ResolveResult.output` holds.
    format: str = "requirements"


class PinInfo(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    version: str
    #: Name of the configured index it comes from, and that index's credential-free URL.
    index: str
    index_url: str
    filename: str
    url: str
    sha256: str | None
    size: int | None = None
    requested: bool = False
    #: Who required it ("name version", or "(requested)").
    dependents: list[str] = []
    #: How the project is bound to `index` (project origins): "first-use", "pin" or "trust";
    #: None when it is not bound (unsafe-best-match, or an offline answer never seen online).
    bound: str | None = None


class ResolveResult(msgspec.Struct, frozen=True, kw_only=True):
    pins: list[PinInfo]
    #: The rendered result in the requested format (what `satchel resolve` prints or writes).
    output: str
    #: True when the answer came from the cache only.
    offline: bool
    #: Why the daemon answered offline without being asked to ("every index unreachable").
    offline_reason: str | None = None
    #: Things the user should know (stale pages used, skipped requirements).
    notes: list[str] = []
    #: The target resolved for: interpreter path, or the synthetic platform/version.
    target: str = ""
    elapsed: float = 0.0
    #: Whole files downloaded (and stored) while resolving, to read their metadata (an index
    #: with neither PEP 658 files nor byte ranges), and their bytes.
    downloaded: int = 0
    downloaded_bytes: int = 0
    #: Requests for core metadata while resolving (PEP 658 files, byte ranges of wheels) and
    #: the bytes they received.
    metadata_requests: int = 0
    metadata_bytes: int = 0


class PrefetchResult(msgspec.Struct, frozen=True, kw_only=True):
    pins: list[PinInfo]
    #: Files in the result; files downloaded by this request (while resolving, for their
    #: metadata, or afterwards), and their bytes.
    files: int
    downloaded: int
    downloaded_bytes: int
    #: Bytes of every file of the result (downloaded or already stored).
    total_bytes: int
    offline: bool
    offline_reason: str | None = None
    notes: list[str] = []
    target: str = ""
    elapsed: float = 0.0
    #: Files of the result that were stored before this request (None: not said).
    cached: int | None = None
    #: As in `ResolveResult`.
    metadata_requests: int = 0
    metadata_bytes: int = 0
