"""The requirement options `prefetch`, `resolve` and `install` share, and how they travel.

`REQUIREMENT_OPTIONS` is the one description of these options (`satchel.client.args` parses
it on the normal path and builds the argparse parser for `--help` from it). This module is on
the start-up path of benchmarked commands, so it imports no `argparse`, `pathlib` or `typing`.

Paths are made absolute here (`os.path.abspath`): the daemon has its own working directory. The
target interpreter defaults to the client's own (`sys.executable`), as the issue for `--python`
asks; `--platform` and `--python-version` describe another machine instead (prewarming a cache
for a laptop). No option names an index: the daemon's configuration and the recorded origins
decide.
"""

from __future__ import annotations

import os
import sys

from satchel.client.args import APPEND, FLAG, ZERO_OR_MORE, Option, Positional

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from satchel.client.args import Namespace

__all__ = [
    "BUILD_OPTIONS",
    "REQUIREMENTS",
    "REQUIREMENT_OPTIONS",
    "ParamsError",
    "build_params",
    "requirement_params",
    "show_notes",
]


class ParamsError(Exception):
    """Options that parse but do not make sense together (exit 2, printed by the command)."""


#: The positional requirements (PEP 508 strings).
REQUIREMENTS = Positional(
    "requirements", nargs=ZERO_OR_MORE, metavar="REQ", help="PEP 508 requirements"
)

#: What may be built (pip's syntax: `:all:`, `:none:` or comma-separated project names).
BUILD_OPTIONS = (
    Option(
        "--only-binary",
        kind=APPEND,
        metavar="NAMES",
        help="wheels only for these projects (:all:, :none:, or names): never build them",
    ),
    Option(
        "--no-binary",
        kind=APPEND,
        metavar="NAMES",
        help="sdists only for these projects (:all:, :none:, or names): build them",
    ),
    Option("--no-build", kind=FLAG, help="never build an sdist (earlier builds are still used)"),
)

REQUIREMENT_OPTIONS = (
    Option(
        "-r",
        "--requirement",
        kind=APPEND,
        metavar="FILE",
        help="requirements file, pyproject.toml, pylock.toml or uv.lock (repeatable)",
    ),
    Option("-c", "--constraint", kind=APPEND, metavar="FILE", help="constraints file (repeatable)"),
    Option("--extra", kind=APPEND, help="extra of a pyproject.toml input"),
    Option("--group", kind=APPEND, help="dependency group of a pyproject.toml input"),
    Option("--python", metavar="PYTHON", help="interpreter, venv or X.Y (default: this one)"),
    Option(
        "--platform",
        kind=APPEND,
        metavar="TAG",
        help="resolve for another platform (wheel platform tag, repeatable)",
    ),
    Option("--python-version", metavar="X.Y", help="resolve for another Python version"),
    Option("--offline", kind=FLAG, help="use only what is cached; never touch the network"),
    Option(
        "--index-strategy",
        choices=("first-index", "unsafe-best-match"),
        help="where a project may come from (default: the configuration's, first-index)",
    ),
    Option("--pre", kind=FLAG, help="allow pre-releases"),
    *BUILD_OPTIONS,
)


def requirement_params(args: Namespace, *, allow_empty: bool = False) -> dict[str, Any]:
    """The `ResolveParams` dict for *args*; options that clash raise `ParamsError`."""
    if not (args.requirements or args.requirement or allow_empty):
        raise ParamsError("nothing to do: give requirements or -r FILE")
    synthetic = bool(args.platform or args.python_version)
    if synthetic and args.python:
        raise ParamsError("--python cannot be combined with --platform/--python-version")
    params: dict[str, Any] = {
        "requirements": list(args.requirements),
        "requirement_files": [os.path.abspath(p) for p in args.requirement],  # noqa: PTH100
        "constraint_files": [os.path.abspath(p) for p in args.constraint],  # noqa: PTH100
        "extras": list(args.extra),
        "groups": list(args.group),
        "platforms": list(args.platform),
        "python_version": args.python_version,
        # Resolved here, in the caller's environment: a service daemon has another PATH.
        "python": None if synthetic else _python(args.python),
        "offline": bool(args.offline),
        "prereleases": bool(args.pre),
        **build_params(args),
    }
    if args.index_strategy:
        params["index_strategy"] = args.index_strategy
    return params


def _python(value: str | None) -> str:
    """The interpreter to send: this one without ``--python`` (nothing to look up, so the
    lookup module is not even imported on the benchmarked path), else `resolve_python`'s."""
    if value is None:
        return sys.executable
    from satchel.client.interpreters import resolve_python

    return resolve_python(value)


def build_params(args: Namespace) -> dict[str, Any]:
    """The `BUILD_OPTIONS` part of the request's params (only what was given)."""
    params: dict[str, Any] = {}
    if args.only_binary:
        params["only_binary"] = list(args.only_binary)
    if args.no_binary:
        params["no_binary"] = list(args.no_binary)
    if args.no_build:
        params["no_build"] = True
    return params


def show_notes(value: dict[str, Any]) -> None:
    """Print the daemon's notes (offline fallback, stale pages) to stderr; a note that is a
    warning (a yanked release) says so itself."""
    from satchel.client.terminal import shown

    for note in value.get("notes") or []:
        prefix = "" if note.startswith("warning: ") else "note: "
        sys.stderr.write(f"{prefix}{shown(note)}\n")
