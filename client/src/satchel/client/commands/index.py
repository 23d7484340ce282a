"""`satchel index add|list|remove|pin|adopt`: the indexes the daemon uses, in priority order.

Indexes live in config.toml (the daemon edits it; hand edits are picked up live). The first
daemon start adopts the indexes already configured for pip and uv into it, once; `satchel index
list` says where each came from and whether pip/uv now disagree, and `satchel index adopt` takes
their current set. With the default strategy (first-index) a project is taken only from the first
index that has it, the default index always last; `pin` restricts a project to one index.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from satchel.client.session import Session
from satchel.protocol import errors

__all__ = ["add_parser", "as_url", "format_list", "run"]


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "index",
        help="list, add, remove or pin the package indexes the daemon uses",
        description=__doc__.split("\n\n", 1)[0] if __doc__ else None,
    )
    actions = parser.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="the indexes in priority order, with their source")
    listing.add_argument("--json", action="store_true", help="print the answer as JSON")
    add = actions.add_parser("add", help="add an index (last, unless --before)")
    add.add_argument("name", help="a short name: letters, digits, '.', '_', '-'")
    add.add_argument("url", help="http(s):// or file:// URL of a simple index, or a local path")
    add.add_argument(
        "--explicit", action="store_true", help="use it only for projects pinned to it"
    )
    add.add_argument("--before", metavar="NAME", help="give it priority over index NAME")
    add.add_argument(
        "--find-links",
        action="store_true",
        help="a directory of files or a page of links, not a simple index",
    )
    add.add_argument(
        "--max-age", type=int, metavar="SECONDS", help="treat its pages as fresh this long"
    )
    add.add_argument(
        "--default",
        action="store_true",
        help="the default (public) index: always asked last, after every other index",
    )
    add.add_argument("--json", action="store_true", help="print the answer as JSON")
    remove = actions.add_parser("remove", help="remove an index")
    remove.add_argument("name")
    remove.add_argument("--json", action="store_true", help="print the answer as JSON")
    pin = actions.add_parser("pin", help="take a package only from one index")
    pin.add_argument("package")
    pin.add_argument("index", nargs="?", help="the index name (omit with --remove)")
    pin.add_argument("--remove", action="store_true", help="remove the package's pin")
    pin.add_argument("--json", action="store_true", help="print the answer as JSON")
    adopt = actions.add_parser(
        "adopt",
        help="replace the adopted indexes with those pip and uv configure in this shell",
    )
    adopt.add_argument("--json", action="store_true", help="print the answer as JSON")
    parser.set_defaults(handler=run)


#: What adoption reads from the environment (`satchel.daemon.settings.indexset.ADOPTION_VARS`): only
#: these are sent, never the whole environment.
_ADOPTION_VARS = ("HOME", "XDG_CONFIG_HOME", "XDG_CONFIG_DIRS", "VIRTUAL_ENV", "NETRC")


def adoption_environ() -> dict[str, str]:
    """This shell's pip/uv settings, for the daemon to compare or adopt."""
    return {
        key: value
        for key, value in os.environ.items()
        if key in _ADOPTION_VARS or key.startswith(("PIP_", "UV_"))
    }


def as_url(value: str) -> str:
    """A URL as given, or a local path made absolute (the daemon has another cwd)."""
    if "://" in value:
        return value
    return Path(value).expanduser().absolute().as_uri()


def run(args: argparse.Namespace) -> int:
    if args.action == "pin" and (args.index is None) != args.remove:
        print("satchel index pin: give PACKAGE INDEX, or PACKAGE --remove", file=sys.stderr)
        return errors.EXIT_USAGE
    with Session.for_args(args) as session:
        if args.action == "list":
            value = session.call("index.list", {"environ": adoption_environ()})
        elif args.action == "adopt":
            value = session.call("index.adopt", {"environ": adoption_environ()})
        elif args.action == "add":
            params: dict[str, Any] = {
                "name": args.name,
                "url": as_url(args.url),
                "explicit": args.explicit,
                "kind": "find-links" if args.find_links else "simple",
                "before": args.before,
                "max_age": args.max_age,
                "default": args.default,
            }
            value = session.call("index.add", params)
        elif args.action == "remove":
            value = session.call("index.remove", {"name": args.name})
        else:
            value = session.call("index.pin", {"project": args.package, "index": args.index})
    if args.json:
        print(json.dumps(value, indent=2, sort_keys=True))
    else:
        for note in value.get("notes") or []:
            print(f"note: {note}", file=sys.stderr)
        print(format_list(value))
    return errors.EXIT_OK


def format_list(value: dict[str, Any]) -> str:
    indexes = value.get("indexes") or []
    lines = []
    error = value.get("config_error")
    if not indexes and not error:
        lines.append(
            "no index configured: add one with `satchel index add NAME URL` "
            "(`--default` for the public one), or `satchel index adopt` pip's and uv's"
        )
    for position, index in enumerate(indexes, start=1):
        flags = [index["kind"]] if index["kind"] != "simple" else []
        if index.get("default"):
            flags.append("default: asked last")
        if index.get("explicit"):
            flags.append("explicit")
        if index.get("state") == "offline":
            flags.append(f"offline: {index.get('reason') or 'unreachable'}")
        suffix = f"  [{', '.join(flags)}]" if flags else ""
        lines.append(f"{position}. {index['name']}  {index['url']}{suffix}")
        source = index["source"]
        lines.append(f"   adopted from {source}" if index.get("adopted") else f"   from {source}")
        if index.get("pinned"):
            lines.append(f"   pinned: {', '.join(index['pinned'])}")
    strategy = value.get("index_strategy", "first-index")
    lines.append(f"strategy: {strategy}; indexes from {value.get('config_path', 'config.toml')}")
    for note in value.get("drift") or []:
        lines.append(f"note: {note}")
    if error and indexes:
        lines.append(f"config.toml error (last good configuration in use): {error}")
    elif error:  # a daemon started on a broken or missing file has no index set at all
        lines.append(
            f"config.toml error: {error}\nno index set is in use until config.toml is fixed "
            "(Satchel does not fall back to pip's or uv's indexes)"
        )
    return "\n".join(lines)
