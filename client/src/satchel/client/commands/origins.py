"""`satchel origins [list|trust|forget]`: the index each project is bound to.

The first time a project is served from an index, Satchel remembers that index (its URL) as the
project's origin, like ssh's known_hosts. Afterwards an answer that would take the project from
another index is refused until you accept the change: `satchel origins trust PROJECT INDEX`
(or a pin, `satchel index pin PROJECT INDEX`).
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from satchel.client.session import Session
from satchel.protocol import errors

__all__ = ["add_parser", "format_origins", "run"]


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "origins",
        help="list the index each project is bound to; trust another, or forget",
        description=__doc__.split("\n\n", 1)[0] if __doc__ else None,
    )
    actions = parser.add_subparsers(dest="action")
    listing = actions.add_parser("list", help="every bound project (or one) and its index")
    listing.add_argument("package", nargs="?")
    listing.add_argument("--json", action="store_true", help="print the answer as JSON")
    trust = actions.add_parser(
        "trust", help="accept that a package comes from INDEX from now on (and no other)"
    )
    trust.add_argument("package")
    trust.add_argument("index", help="a configured index name (`satchel index list`)")
    trust.add_argument("--json", action="store_true", help="print the answer as JSON")
    forget = actions.add_parser(
        "forget", help="drop a package's origin: the next index that serves it is remembered"
    )
    forget.add_argument("package")
    forget.add_argument("--json", action="store_true", help="print the answer as JSON")
    parser.add_argument("--json", action="store_true", help="print the answer as JSON")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    with Session.for_args(args) as session:
        if args.action == "trust":
            value = session.call("origins.trust", {"project": args.package, "index": args.index})
        elif args.action == "forget":
            value = session.call("origins.forget", {"project": args.package})
        else:
            package = getattr(args, "package", None)
            value = session.call("origins.list", {"project": package})
    if args.json:
        print(json.dumps(value, indent=2, sort_keys=True))
    else:
        for note in value.get("notes") or []:
            print(f"note: {note}")
        print(format_origins(value))
    return errors.EXIT_OK


def format_origins(value: dict[str, Any]) -> str:
    origins = value.get("origins") or []
    if not origins:
        return "no project origin remembered yet"
    lines = []
    for item in origins:
        if item["how"] == "contested":  # a rebuilt database could not tell (docs/indexes.md)
            lines.append(
                f"{item['project']}  contested: served by {item['bound_name']}; refused until "
                f"`satchel origins trust {item['project']} INDEX`"
            )
            continue
        index = item.get("index")
        where = f"index {index}" if index else f"index {item['bound_name']} (not configured)"
        when = time.strftime("%Y-%m-%d", time.localtime(item["bound_at"]))
        lines.append(f"{item['project']}  {where}  {item['url']}  ({item['how']}, {when})")
    return "\n".join(lines)
