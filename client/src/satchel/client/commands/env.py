"""`satchel env [--shell bash|zsh|fish|powershell]`: shell exports that point pip, pip-tools, pdm
and poetry at Satchel.

``eval "$(satchel env)"`` (bash, zsh), ``satchel env --shell fish | source``, or
``satchel env --shell powershell | Invoke-Expression``. The shell is guessed from ``$SHELL``.

Only variables that tools read without writing their value into a project file (issue 13.5):

* pip and pip-tools: ``PIP_INDEX_URL`` and ``PIP_EXTRA_INDEX_URL``, both the local index, so
  that no extra index of pip.conf is consulted beside Satchel (scoping is the daemon's): pip
  ignores a variable set empty, so only a value overrides pip.conf's, and pip asks a URL named
  twice once. ``PIP_FIND_LINKS`` is set empty: that clears the shell's; pip.conf's find-links
  (a directory of one's own wheels, as a rule) stays. pip-compile copies the index URLs into
  requirements.txt unless given ``--no-emit-index-url`` (docs/local-index.md).
* pdm: ``PDM_PYPI_URL``, the URL of its default source; pdm.lock records file names and hashes,
  never the index URL.
* poetry: ``POETRY_PYPI_MIRROR_URL``, read by the ``poetry-plugin-pypi-mirror`` plugin, which
  fetches PyPI's packages through the mirror and keeps it out of poetry.lock.
* uv: nothing. uv records the index it resolved from in uv.lock, so an index set in the
  environment would rewrite a project's lock to this machine's loopback URL; ``uv pip`` takes the
  URL from the ``[pip]`` table of the user's uv.toml instead (docs/local-index.md).

The URL carries no token where the daemon identifies its own user's connections (Linux); pip
needs no ``trusted-host`` for it: 127.0.0.0/8 is a secure origin to pip, plain HTTP included.
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
        help="print shell exports that make pip, pip-tools, pdm and poetry use the local index",
        description=__doc__.split("\n\n", 1)[0] if __doc__ else None,
    )
    parser.add_argument("--shell", choices=SHELLS, help="the shell syntax (default: from $SHELL)")
    parser.set_defaults(handler=run)


def exports(url: str) -> list[tuple[str, str]]:
    """The variables, in order. Values are the URL or empty."""
    return [
        ("PIP_INDEX_URL", url),
        # Not empty: pip ignores an empty variable, and pip.conf's extra index (the public one,
        # say) would be asked beside Satchel, past every refusal of the daemon.
        ("PIP_EXTRA_INDEX_URL", url),
        ("PIP_FIND_LINKS", ""),
        ("PDM_PYPI_URL", url),
        ("POETRY_PYPI_MIRROR_URL", url),
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
