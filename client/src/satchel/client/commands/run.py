"""`satchel run [--offline] [--from SPEC] COMMAND [ARGS...]`: the offline-first `uvx`.

The daemon finds (or builds once) a cached environment for the resolved set and answers with the
path of COMMAND in it; this process then *becomes* that command (``exec``), so the terminal,
signals and the exit status are exactly the tool's. The cache is asked first: a tool run once
runs again without the network, and without any index flag.

Everything after COMMAND belongs to the tool, verbatim (even ``--help`` or ``--``). A
benchmarked command: its options are the `SPEC` table, parsed by `satchel.client.args`.
"""

from __future__ import annotations

import os
import sys

from satchel.client.args import (
    APPEND,
    FLAG,
    ONE,
    REMAINDER,
    Command,
    Option,
    Positional,
    add_to_argparse,
)
from satchel.client.commands.requirements import BUILD_OPTIONS, show_notes
from satchel.client.commands.requirements import build_params as build_options
from satchel.client.interpreters import resolve_python
from satchel.client.session import Session
from satchel.protocol import errors

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from typing import Any

    from satchel.client.args import Namespace

__all__ = ["SPEC", "add_parser", "build_params", "run"]

SPEC = Command(
    "run",
    help="run a tool from a cached environment (offline-first uvx)",
    description=__doc__.split("\n\n", 1)[0] if __doc__ else None,
    options=(
        Option("--from", dest="spec", metavar="SPEC", help="requirement providing it"),
        Option(
            "--with",
            dest="extra",
            kind=APPEND,
            metavar="REQ",
            help="another requirement for the environment (repeatable)",
        ),
        Option("--python", metavar="PYTHON", help="interpreter for the environment"),
        Option("--offline", kind=FLAG, help="never touch the network"),
        *BUILD_OPTIONS,
    ),
    positionals=(
        Positional("command", nargs=ONE, metavar="COMMAND", help="the tool's command"),
        Positional("args", nargs=REMAINDER, metavar="ARGS", help="the tool's arguments"),
    ),
)


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    add_to_argparse(SPEC, subparsers, run)


def build_params(args: Namespace) -> dict[str, Any]:
    """The `run` request's params."""
    return {
        "command": args.command,
        "requirements": [args.spec or args.command, *args.extra],
        "python": resolve_python(args.python),
        "offline": bool(args.offline),
        **build_options(args),
    }


def run(args: Namespace) -> int:
    params = build_params(args)
    with Session.for_args(args) as session:
        value = session.call("run", params)
    show_notes(value)
    executable = value["executable"]
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execv(executable, [args.command, *args.args])  # noqa: S606 - the point of `run`
    except OSError as exc:
        sys.stderr.write(f"satchel run: cannot execute {executable}: {exc.strerror}\n")
        return errors.EXIT_FAILURE
    return errors.EXIT_OK  # pragma: no cover - exec does not return
