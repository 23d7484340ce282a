"""`satchel resolve REQ... [-r FILE] [--offline] [--format requirements|pylock|json] [-o FILE]`.

Prints (or writes) the pinned set: by default requirements lines with ``--hash=sha256:`` for
each file, so the output can be installed in hash-checking mode; `pylock` writes a PEP 751 lock
recording each package's index; `json` the daemon's answer as is. Offline (``--offline``, or by
itself when every index is unreachable, which it reports) it answers from the cache alone.

A benchmarked command: its options are the `SPEC` table, parsed by `satchel.client.args`
(argparse is loaded only for ``--help``), `json` is imported only for ``--format json``, and
`satchel.client.progress` only when the daemon reports progress or traffic (a warm resolve
does neither).
"""

from __future__ import annotations

import sys

from satchel.client.args import Command, Option, add_to_argparse
from satchel.client.commands.requirements import (
    REQUIREMENT_OPTIONS,
    REQUIREMENTS,
    ParamsError,
    requirement_params,
    show_notes,
)
from satchel.client.session import Session
from satchel.protocol import errors

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from typing import Any

    from satchel.client.args import Namespace
    from satchel.client.progress import ProgressDisplay

__all__ = ["SPEC", "add_parser", "build_params", "fetched_summary", "run"]

SPEC = Command(
    "resolve",
    help="pin requirements (with hashes) from the configured indexes, or offline",
    description=__doc__.split("\n\n", 1)[0] if __doc__ else None,
    options=(
        *REQUIREMENT_OPTIONS,
        Option(
            "--format",
            choices=("requirements", "pylock", "json"),
            default="requirements",
            help="what to print: pinned requirements with hashes, a PEP 751 lock, or JSON",
        ),
        Option("-o", "--output", metavar="FILE", help="write to FILE instead of stdout"),
    ),
    positionals=(REQUIREMENTS,),
)


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    add_to_argparse(SPEC, subparsers, run)


def build_params(args: Namespace) -> dict[str, Any]:
    """The `resolve` request's params; `ParamsError` for options that clash."""
    params = requirement_params(args)
    params["format"] = args.format
    return params


def fetched_summary(value: dict[str, Any]) -> str:
    """What the resolve fetched from the indexes ("" when nothing: a warm or offline resolve)."""
    requests = value.get("metadata_requests") or 0
    downloaded = value.get("downloaded") or 0
    if not requests and not downloaded:
        return ""
    from satchel.client.progress import format_bytes

    parts = []
    if requests:
        received = format_bytes(value.get("metadata_bytes") or 0)
        parts.append(f"{requests} metadata request(s) ({received})")
    if downloaded:
        size = format_bytes(value.get("downloaded_bytes") or 0)
        parts.append(f"{downloaded} whole file(s) downloaded for their metadata ({size}), stored")
    return "; ".join(parts)


def run(args: Namespace) -> int:
    try:
        params = build_params(args)
    except ParamsError as exc:
        sys.stderr.write(f"satchel resolve: {exc}\n")
        return errors.EXIT_USAGE
    shown: list[ProgressDisplay] = []  # made at the first progress event, if any comes

    def on_progress(event: dict[str, Any]) -> None:
        if not shown:
            from satchel.client.progress import ProgressDisplay

            shown.append(ProgressDisplay("resolve"))
        shown[0](event)

    try:
        with Session.for_args(args) as session:
            # Offline, a resolve only reads the cache: safe to send with the Hello (one round
            # trip less). Online it may fetch for a while, which a skewed daemon would do for
            # nothing; its metadata reads are shown as they go ("metadata 12/31").
            value = session.call(
                "resolve", params, on_progress=on_progress, pipeline=bool(params["offline"])
            )
    finally:
        for display in shown:
            display.finish()
    show_notes(value)
    summary = fetched_summary(value)
    if summary:
        sys.stderr.write(f"resolve: {summary}\n")
    if args.format == "json":
        import json

        output = json.dumps(value, indent=2) + "\n"
    else:
        output = value["output"]
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(output)
        sys.stderr.write(f"wrote {len(value['pins'])} pins to {args.output}\n")
    else:
        sys.stdout.write(output)
    return errors.EXIT_OK
