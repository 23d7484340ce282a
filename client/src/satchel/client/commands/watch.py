"""`satchel watch add|remove|list`: projects the daemon keeps prefetched by itself.

A watched project is a directory (its requirements*.txt, pyproject.toml, pylock.toml, uv.lock
and scripts with inline metadata, plus requirements/*.txt) or one such file. Whenever one of
those files changes while an index is reachable, the daemon resolves and downloads what the
project needs for its interpreter: ``--python``, else the project's ``.venv``, else the daemon's
default. `satchel ready` then says whether it can be installed offline.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from satchel.client.interpreters import resolve_python
from satchel.client.progress import call_with_progress, format_bytes
from satchel.client.session import Session
from satchel.protocol import errors

TYPE_CHECKING = False
if TYPE_CHECKING:
    from satchel.client.args import Namespace

__all__ = ["add_parser", "format_project", "prefetch_watched", "run"]


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "watch",
        help="keep projects prefetched: add, remove or list watched projects",
        description=__doc__.split("\n\n", 1)[0] if __doc__ else None,
    )
    actions = parser.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help="watch a project directory or one input file")
    add.add_argument("path", help="project directory, requirements file, pyproject.toml, lock...")
    add.add_argument(
        "--python", metavar="PYTHON", help="interpreter, venv or X.Y (default: the project's .venv)"
    )
    add.add_argument("--json", action="store_true", help="print the answer as JSON")
    remove = actions.add_parser("remove", help="stop watching a project")
    remove.add_argument("path")
    remove.add_argument("--json", action="store_true", help="print the answer as JSON")
    listing = actions.add_parser("list", help="watched projects, last prefetch, what is missing")
    listing.add_argument("--json", action="store_true", help="print the answer as JSON")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    with Session.for_args(args) as session:
        if args.action == "add":
            python = None if args.python is None else resolve_python(args.python)
            params = {"path": str(Path(args.path).absolute()), "python": python}
            value = session.call("watch.add", params)
        elif args.action == "remove":
            value = session.call("watch.remove", {"path": str(Path(args.path).absolute())})
        else:
            value = session.call("watch.list", {})
    if args.json:
        print(json.dumps(value, indent=2))
    elif args.action == "add":
        print(f"watching {value['path']}: " + ", ".join(Path(s).name for s in value["sources"]))
        print("prefetching in the background; see `satchel watch list`")
    elif args.action == "remove":
        print(f"no longer watching {value['path']}")
    elif not value["projects"]:
        print("no watched projects; add one with `satchel watch add PATH`")
    else:
        print("\n".join(format_project(p, time.time()) for p in value["projects"]))
    return errors.EXIT_OK


def _ago(at: float, now: float) -> str:
    seconds = max(0, int(now - at))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def format_project(project: dict[str, Any], now: float) -> str:
    lines = [project["path"]]
    sources = ", ".join(Path(s).name for s in project.get("sources") or []) or "(no input files)"
    lines.append(f"  inputs:   {sources}")
    target = project.get("target") or project.get("python") or "(not chosen yet)"
    lines.append(f"  python:   {target}")
    last = project.get("last_prefetch")
    if last is None:
        state = "pending" if project.get("pending") else "never"
        lines.append(f"  prefetch: {state}")
    else:
        outcome = "ok" if last["ok"] else "FAILED"
        size = format_bytes(last.get("bytes") or 0)
        lines.append(
            f"  prefetch: {outcome} {_ago(last['at'], now)}: {last['message']} ({size})"
            + (" [pending]" if project.get("pending") else "")
        )
    for item in project.get("missing") or []:
        lines.append(f"  missing:  {item}")
    return "\n".join(lines)


def prefetch_watched(args: Namespace) -> int:
    """`satchel prefetch --watched`: every watched project now, with progress; exit 5 if any
    project could not get everything it needs."""
    if args.requirements or args.requirement or args.constraint:
        sys.stderr.write("satchel prefetch: --watched takes no requirements\n")
        return errors.EXIT_USAGE
    value = call_with_progress(args, "prefetch", "watch.prefetch", {})
    if args.json:
        print(json.dumps(value, indent=2))
    elif not value["projects"]:
        print("no watched projects; add one with `satchel watch add PATH`")
    for project in [] if args.json else value["projects"]:
        mark = "ok" if project["ok"] else "FAILED"
        print(f"{mark}  {project['path']}: {project['message']}")
        for item in project.get("missing") or []:
            print(f"      missing: {item}")
    ok = all(project["ok"] for project in value["projects"])
    return errors.EXIT_OK if ok else errors.EXIT_OFFLINE
