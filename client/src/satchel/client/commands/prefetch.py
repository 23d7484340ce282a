"""`satchel prefetch REQ... [-r FILE]...`: resolve online and download every file of the result.

This is how a cache is prewarmed before going offline: afterwards `satchel resolve --offline`,
`satchel install --offline` and `satchel run --offline` need no network and no index flags.
Progress (files, bytes, rate) is a bar on a terminal and plain lines otherwise.

Its options are the `SPEC` table, parsed by `satchel.client.args` (argparse is loaded only for
``--help``), and `json` is imported only for ``--json``.
"""

from __future__ import annotations

import sys

from satchel.client.args import FLAG, Command, Option, add_to_argparse
from satchel.client.commands.requirements import (
    REQUIREMENT_OPTIONS,
    REQUIREMENTS,
    ParamsError,
    requirement_params,
    show_notes,
)
from satchel.client.progress import call_with_progress, format_bytes
from satchel.protocol import errors

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from typing import Any

    from satchel.client.args import Namespace

__all__ = ["SPEC", "add_parser", "build_params", "run"]

SPEC = Command(
    "prefetch",
    help="resolve online and download every file of the result into the cache",
    description=__doc__.split("\n\n", 1)[0] if __doc__ else None,
    options=(
        *REQUIREMENT_OPTIONS,
        Option("--json", kind=FLAG, help="print the answer as JSON"),
        Option("--watched", kind=FLAG, help="prefetch every watched project now instead"),
    ),
    positionals=(REQUIREMENTS,),
)


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    add_to_argparse(SPEC, subparsers, run)


def build_params(args: Namespace) -> dict[str, Any]:
    """The `prefetch` request's params; `ParamsError` for options that clash."""
    return requirement_params(args)


def run(args: Namespace) -> int:
    if args.watched:
        from satchel.client.commands.watch import prefetch_watched

        return prefetch_watched(args)
    try:
        params = build_params(args)
    except ParamsError as exc:
        sys.stderr.write(f"satchel prefetch: {exc}\n")
        return errors.EXIT_USAGE
    value = call_with_progress(args, "prefetch", "prefetch", params)
    show_notes(value)
    if args.json:
        import json

        print(json.dumps(value, indent=2))
        return errors.EXIT_OK
    for pin in value["pins"]:
        print(f"{pin['name']}=={pin['version']}  ({pin['index']})")
    cached = value.get("cached")
    if cached is None:  # a daemon of an older build
        cached = value["files"] - value["downloaded"]
    print(
        f"prefetched {value['files']} files ({format_bytes(value['total_bytes'])}): "
        f"{value['downloaded']} downloaded ({format_bytes(value['downloaded_bytes'])}), "
        f"{cached} already cached, in {value['elapsed']:.2f} s"
    )
    if value.get("metadata_requests"):
        print(
            f"metadata while resolving: {value['metadata_requests']} request(s) "
            f"({format_bytes(value.get('metadata_bytes') or 0)})"
        )
    return errors.EXIT_OK
