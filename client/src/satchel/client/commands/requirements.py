"""The requirement arguments `prefetch`, `resolve` and `install` share, and how they travel.

Paths are made absolute here: the daemon has its own working directory. The target interpreter
defaults to the client's own (`sys.executable`), as the issue for `--python` asks; `--platform`
and `--python-version` describe another machine instead (prewarming a cache for a laptop).
No option names an index: the daemon's configuration and the recorded origins decide.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_requirement_arguments", "requirement_params", "show_notes"]


def add_requirement_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("requirements", nargs="*", metavar="REQ", help="PEP 508 requirements")
    parser.add_argument(
        "-r",
        "--requirement",
        action="append",
        default=[],
        metavar="FILE",
        help="requirements file, pyproject.toml or pylock.toml (repeatable)",
    )
    parser.add_argument(
        "-c",
        "--constraint",
        action="append",
        default=[],
        metavar="FILE",
        help="constraints file (repeatable)",
    )
    parser.add_argument(
        "--extra", action="append", default=[], help="extra of a pyproject.toml input"
    )
    parser.add_argument(
        "--group", action="append", default=[], help="dependency group of a pyproject.toml input"
    )
    parser.add_argument(
        "--python", metavar="PYTHON", help="interpreter, venv or X.Y (default: this one)"
    )
    parser.add_argument(
        "--platform",
        action="append",
        default=[],
        metavar="TAG",
        help="resolve for another platform (wheel platform tag, repeatable)",
    )
    parser.add_argument(
        "--python-version", metavar="X.Y", help="resolve for another Python version"
    )
    parser.add_argument(
        "--offline", action="store_true", help="use only what is cached; never touch the network"
    )
    parser.add_argument(
        "--index-strategy",
        choices=["first-index", "unsafe-best-match"],
        help="where a project may come from (default: the configuration's, first-index)",
    )
    parser.add_argument("--pre", action="store_true", help="allow pre-releases")


def requirement_params(args: argparse.Namespace, *, allow_empty: bool = False) -> dict[str, Any]:
    """The `ResolveParams` dict for *args*; usage errors raise `argparse.ArgumentTypeError`."""
    if not (args.requirements or args.requirement or allow_empty):
        raise argparse.ArgumentTypeError("nothing to do: give requirements or -r FILE")
    synthetic = bool(args.platform or args.python_version)
    if synthetic and args.python:
        raise argparse.ArgumentTypeError(
            "--python cannot be combined with --platform/--python-version"
        )
    python = args.python
    if python is not None and ("/" in python or Path(python).exists()):
        python = str(Path(python).absolute())
    params: dict[str, Any] = {
        "requirements": list(args.requirements),
        "requirement_files": [str(Path(p).absolute()) for p in args.requirement],
        "constraint_files": [str(Path(p).absolute()) for p in args.constraint],
        "extras": list(args.extra),
        "groups": list(args.group),
        "platforms": list(args.platform),
        "python_version": args.python_version,
        "python": None if synthetic else (python or sys.executable),
        "offline": bool(args.offline),
        "prereleases": bool(args.pre),
    }
    if args.index_strategy:
        params["index_strategy"] = args.index_strategy
    return params


def show_notes(value: dict[str, Any]) -> None:
    """Print the daemon's notes (offline fallback, stale pages) to stderr."""
    for note in value.get("notes") or []:
        sys.stderr.write(f"note: {note}\n")
