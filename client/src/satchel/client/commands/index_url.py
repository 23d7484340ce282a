"""`satchel index-url [--no-token]`: print the URL of the daemon's local simple index.

The URL carries the access token as basic-auth userinfo
(``http://satchel:<token>@127.0.0.1:PORT/simple/``), which pip, uv, poetry and pdm all accept, so
it can be pasted anywhere an index URL goes: ``pip install --index-url "$(satchel index-url)"``.
``--no-token`` prints it without credentials (for showing, not for installing).
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
        help="print the local simple index URL (with its token) for pip, uv and others",
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
