"""`satchel index-url [--no-token]`: print the URL of the daemon's local simple index.

On Linux the daemon tells its own user's connections from other users' by asking the kernel, so
the URL carries no secret (``http://127.0.0.1:PORT/simple/``) and a tool may write it into a file
without leaking anything (issue 13.5). Where the daemon cannot (other systems) it carries the
access token as basic-auth userinfo (``http://satchel:<token>@127.0.0.1:PORT/simple/``): then
keep it out of files (docs/local-index.md says how, per tool). ``--no-token`` always prints it
without credentials.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from satchel.client.session import Session
from satchel.protocol import errors

__all__ = ["add_parser", "fetch_info", "run"]


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "index-url",
        help="print the local simple index URL for pip, uv, poetry, pdm and pip-tools",
        description=__doc__.split("\n\n", 1)[0] if __doc__ else None,
    )
    parser.add_argument("--no-token", action="store_true", help="print the URL without the token")
    parser.set_defaults(handler=run)


def fetch_info(args: argparse.Namespace) -> dict[str, Any] | None:
    """The daemon's `localindex.info`, or None (with the reason on stderr) when not serving."""
    with Session.for_args(args) as session:
        info: dict[str, Any] = session.call("localindex.info", {})
    if info.get("state") != "serving" or not info.get("url"):
        reason = info.get("error") or f"it is {info.get('state', 'not running')}"
        print(f"satchel: the local index is not serving: {reason}", file=sys.stderr)
        return None
    return info


def run(args: argparse.Namespace) -> int:
    info = fetch_info(args)
    if info is None:
        return errors.EXIT_FAILURE
    print(info["base_url"] if args.no_token else info["url"])
    return errors.EXIT_OK
