"""`satchel tool list|remove|prune`: the cached environments `satchel run` uses.

`list` shows each environment with what it was made for, its pinned set and commands; `remove
NAME...` deletes the environments made for a spec, key or command; `prune` deletes environments
superseded by a newer one for the same spec (or, with ``--older-than DAYS``, unused that long).
"""

from __future__ import annotations

import argparse
import json
import time

from satchel.client.progress import format_bytes
from satchel.client.session import Session
from satchel.protocol import errors

__all__ = ["add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "tool",
        help="list, remove or prune cached tool environments",
        description=__doc__.split("\n\n", 1)[0] if __doc__ else None,
    )
    actions = parser.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="cached tool environments")
    listing.add_argument("--json", action="store_true")
    remove = actions.add_parser("remove", help="remove environments by spec, key or command")
    remove.add_argument("names", nargs="+")
    prune = actions.add_parser("prune", help="remove superseded or long-unused environments")
    prune.add_argument("--older-than", type=float, metavar="DAYS")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    with Session.for_args(args) as session:
        if args.action == "list":
            value = session.call("tool.list", {})
        elif args.action == "remove":
            value = session.call("tool.remove", {"names": args.names})
        else:
            older = None if args.older_than is None else args.older_than * 86400
            value = session.call("tool.prune", {"older_than": older})
    if args.action == "list":
        if args.json:
            print(json.dumps(value, indent=2))
        elif not value["tools"]:
            print("no cached tools")
        for tool in [] if args.json else value["tools"]:
            age = (time.time() - tool["last_used"]) / 86400
            print(
                f"{tool['spec']}  [{tool['key']}]  {', '.join(tool['commands'])}  "
                f"{format_bytes(tool['size'])}, used {age:.1f} days ago"
            )
            print(f"    {' '.join(tool['pins'])}")
        return errors.EXIT_OK
    for tool in value["removed"]:
        print(f"removed {tool['spec']} [{tool['key']}]")
    print(f"freed {format_bytes(value['freed'])}")
    return errors.EXIT_OK
