"""`satchel prefetch REQ... [-r FILE]...`: resolve online and download every file of the result.

This is how a cache is prewarmed before going offline: afterwards `satchel resolve --offline`,
`satchel install --offline` and `satchel run --offline` need no network and no index flags.
Progress (files, bytes, rate) is a bar on a terminal and plain lines otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys

from satchel.client.commands.requirements import (
    add_requirement_arguments,
    requirement_params,
    show_notes,
)
from satchel.client.progress import ProgressDisplay, format_bytes
from satchel.client.session import Session
from satchel.protocol import errors

__all__ = ["add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "prefetch",
        help="resolve online and download every file of the result into the cache",
        description=__doc__.split("\n\n", 1)[0] if __doc__ else None,
    )
    add_requirement_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print the answer as JSON")
    parser.add_argument(
        "--watched", action="store_true", help="prefetch every watched project now instead"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.watched:
        from satchel.client.commands.watch import prefetch_watched

        return prefetch_watched(args)
    try:
        params = requirement_params(args)
    except argparse.ArgumentTypeError as exc:
        sys.stderr.write(f"satchel prefetch: {exc}\n")
        return errors.EXIT_USAGE
    progress = ProgressDisplay("prefetch")
    try:
        with Session.for_args(args) as session:
            value = session.call("prefetch", params, on_progress=progress)
    finally:
        progress.finish()
    show_notes(value)
    if args.json:
        print(json.dumps(value, indent=2))
        return errors.EXIT_OK
    for pin in value["pins"]:
        print(f"{pin['name']}=={pin['version']}  ({pin['index']})")
    print(
        f"prefetched {value['files']} files ({format_bytes(value['total_bytes'])}): "
        f"{value['downloaded']} downloaded ({format_bytes(value['downloaded_bytes'])}), "
        f"{value['files'] - value['downloaded']} already cached, in {value['elapsed']:.2f} s"
    )
    return errors.EXIT_OK
