"""`satchel resolve REQ... [-r FILE] [--offline] [--format requirements|pylock|json] [-o FILE]`.

Prints (or writes) the pinned set: by default requirements lines with ``--hash=sha256:`` for
each file, so the output can be installed in hash-checking mode; `pylock` writes a PEP 751 lock
recording each package's index; `json` the daemon's answer as is. Offline (``--offline``, or by
itself when every index is unreachable, which it reports) it answers from the cache alone.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from satchel.client.commands.requirements import (
    add_requirement_arguments,
    requirement_params,
    show_notes,
)
from satchel.client.session import Session
from satchel.protocol import errors

__all__ = ["add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "resolve",
        help="pin requirements (with hashes) from the configured indexes, or offline",
        description=__doc__.split("\n\n", 1)[0] if __doc__ else None,
    )
    add_requirement_arguments(parser)
    parser.add_argument(
        "--format", choices=["requirements", "pylock", "json"], default="requirements"
    )
    parser.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    try:
        params = requirement_params(args)
    except argparse.ArgumentTypeError as exc:
        sys.stderr.write(f"satchel resolve: {exc}\n")
        return errors.EXIT_USAGE
    params["format"] = args.format
    with Session.for_args(args) as session:
        value = session.call("resolve", params)
    show_notes(value)
    output = value["output"] if args.format != "json" else json.dumps(value, indent=2) + "\n"
    if args.output:
        Path(args.output).write_text(output, encoding="utf-8")
        sys.stderr.write(f"wrote {len(value['pins'])} pins to {args.output}\n")
    else:
        sys.stdout.write(output)
    return errors.EXIT_OK
