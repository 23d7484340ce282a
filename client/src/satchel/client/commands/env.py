"""`satchel env [--shell bash|zsh|fish|powershell]`: shell exports that point pip and uv at Satchel.

``eval "$(satchel env)"`` (bash, zsh), ``satchel env --shell fish | source``, or
``satchel env --shell powershell | Invoke-Expression``. Afterwards pip and uv use the local index,
and only it: the extra-index and find-links variables are set empty, so an index configured in
pip.conf or uv.toml cannot be consulted beside Satchel (that is what scoping is for). The shell is
guessed from ``$SHELL`` when not given.

pip needs no ``trusted-host`` for this URL: it treats 127.0.0.0/8 as a secure origin, plain
HTTP included.
"""

from __future__ import annotations

import argparse
import os
from pathlib import PurePath

from satchel.client.commands.index_url import fetch_info
from satchel.protocol import errors

__all__ = ["SHELLS", "add_parser", "exports", "render", "run"]

SHELLS = ("bash", "zsh", "fish", "powershell")


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "env",
        help="print shell exports that make pip and uv use the local index",
        description=__doc__.split("\n\n", 1)[0] if __doc__ else None,
    )
    parser.add_argument("--shell", choices=SHELLS, help="the shell syntax (default: from $SHELL)")
    parser.set_defaults(handler=run)


def exports(url: str) -> list[tuple[str, str]]:
    """The variables, in order. Values are the URL or empty."""
    return [
        ("PIP_INDEX_URL", url),
        ("PIP_EXTRA_INDEX_URL", ""),
        ("PIP_FIND_LINKS", ""),
        # uv's current name and its older alias: a uv of either age reads one of them.
        ("UV_DEFAULT_INDEX", url),
        ("UV_INDEX_URL", url),
        ("UV_INDEX", ""),
        ("UV_EXTRA_INDEX_URL", ""),
        ("UV_FIND_LINKS", ""),
    ]


def _quote_posix(value: str) -> str:
    return "'" + value.replace("'", "'\\''") + "'"


def render(variables: list[tuple[str, str]], shell: str) -> str:
    lines = []
    for name, value in variables:
        if shell == "fish":
            lines.append(f"set -gx {name} {_quote_posix(value)};")
        elif shell == "powershell":
            escaped = value.replace("'", "''")
            lines.append(f"$Env:{name} = '{escaped}'")
        else:
            lines.append(f"export {name}={_quote_posix(value)}")
    return "\n".join(lines)


def _guess_shell() -> str:
    name = PurePath(os.environ.get("SHELL", "")).name
    if name in SHELLS:
        return name
    if name in ("pwsh", "powershell.exe", "pwsh.exe"):
        return "powershell"
    return "powershell" if os.name == "nt" else "bash"


def run(args: argparse.Namespace) -> int:
    info = fetch_info(args)
    if info is None:
        return errors.EXIT_FAILURE
    print(render(exports(info["url"]), args.shell or _guess_shell()))
    return errors.EXIT_OK
