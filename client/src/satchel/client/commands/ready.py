"""`satchel ready [--json]`: can I work offline?

For every watched project, the daemon resolves offline (from the cache only) for the project's
interpreter and checks that every file it needs is stored; every cached tool environment
(`satchel run`) is checked to be intact. It prints one summary line, e.g.
``ready: 12/12 projects, 438 files, 1.2 GB``, and otherwise exactly what is missing. The exit
status is 0 only when everything is ready, else 5 (the not-cached status): fill the gaps with
`satchel prefetch --watched` while online.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from satchel.client.progress import format_bytes
from satchel.client.session import Session
from satchel.protocol import errors

__all__ = ["add_parser", "format_ready", "run"]


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "ready",
        help="can I work offline? check every watched project against the cache",
        description=__doc__.split("\n\n", 1)[0] if __doc__ else None,
    )
    parser.add_argument("--json", action="store_true", help="print the answer as JSON")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    with Session.for_args(args) as session:
        value = session.call("ready", {})
    print(json.dumps(value, indent=2) if args.json else format_ready(value))
    return errors.EXIT_OK if value["ready"] else errors.EXIT_OFFLINE


def format_ready(value: dict[str, Any]) -> str:
    entries = value.get("entries") or []
    if not entries:
        return "ready: nothing watched (add projects with `satchel watch add PATH`)"
    counts = []
    for kind in ("project", "tool"):
        of_kind = [e for e in entries if e["kind"] == kind]
        if of_kind or kind == "project":
            good = sum(1 for e in of_kind if e["ready"])
            counts.append(f"{good}/{len(of_kind)} {kind}s")
    head = "ready" if value["ready"] else "NOT ready"
    lines = [f"{head}: {', '.join(counts)}, {value['files']} files, {format_bytes(value['bytes'])}"]
    for entry in entries:
        if entry["ready"]:
            continue
        lines.append(f"{entry['kind']} {entry['name']}:")
        lines.extend(f"  missing: {gap}" for gap in entry["gaps"])
    if not value["ready"]:
        lines.append("run `satchel prefetch --watched` while online to fill the gaps")
    return "\n".join(lines)
