"""`satchel run [--offline] [--from SPEC] COMMAND [ARGS...]`: the offline-first `uvx`.

The daemon finds (or builds once) a cached environment for the resolved set and answers with the
path of COMMAND in it; this process then *becomes* that command (``exec``), so the terminal,
signals and the exit status are exactly the tool's. The cache is asked first: a tool run once
runs again without the network, and without any index flag.
"""

from __future__ import annotations

import argparse
import os
import sys

from satchel.client.commands.requirements import show_notes
from satchel.client.session import Session
from satchel.protocol import errors

__all__ = ["add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run a tool from a cached environment (offline-first uvx)",
        description=__doc__.split("\n\n", 1)[0] if __doc__ else None,
    )
    parser.add_argument("--from", dest="spec", metavar="SPEC", help="requirement providing it")
    parser.add_argument("--with", dest="extra", action="append", default=[], metavar="REQ")
    parser.add_argument("--python", metavar="PYTHON", help="interpreter for the environment")
    parser.add_argument("--offline", action="store_true", help="never touch the network")
    parser.add_argument("command", metavar="COMMAND")
    parser.add_argument("args", nargs=argparse.REMAINDER, metavar="ARGS")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    params = {
        "command": args.command,
        "requirements": [args.spec or args.command, *args.extra],
        "python": args.python or sys.executable,
        "offline": bool(args.offline),
    }
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
