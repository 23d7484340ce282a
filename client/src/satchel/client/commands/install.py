"""`satchel install REQ... [-r FILE] [--lock FILE] --venv PATH [--python PYTHON] [--offline]`.

Creates the environment when it is missing (with ``--python``, else this interpreter), resolves
against what is already installed (keeping what satisfies, changing only what must), and
installs from the cache only: each wheel is unpacked once into the cache and its files are linked
into the environment (``--link-mode``: clone where the file system supports it, else hardlink,
else copy). Hardlinked files are shared with the cache: the cache makes them read-only, so an
in-place edit fails instead of changing every environment that shares the file.

A benchmarked command: its options are the `SPEC` table, parsed by `satchel.client.args`
(argparse is loaded only for ``--help``), and `json` is imported only for ``--json``.
"""

from __future__ import annotations

import os
import sys

from satchel.client.args import FLAG, Command, Option, add_to_argparse
from satchel.client.commands.requirements import (
    REQUIREMENT_OPTIONS,
    REQUIREMENTS,
    ParamsError,
    requirement_params,
    show_notes,
)
from satchel.client.progress import call_with_progress
from satchel.protocol import errors

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from typing import Any

    from satchel.client.args import Namespace

__all__ = ["SPEC", "add_parser", "build_params", "run"]

SPEC = Command(
    "install",
    help="install requirements into a virtual environment from the cache",
    description=__doc__.split("\n\n", 1)[0] if __doc__ else None,
    options=(
        *REQUIREMENT_OPTIONS,
        Option("--venv", required=True, metavar="PATH", help="the environment"),
        Option("--lock", metavar="FILE", help="install exactly this pylock.toml or uv.lock"),
        Option(
            "--link-mode",
            choices=("auto", "clone", "hardlink", "copy"),
            default="auto",
            help="how files get into the environment (default: auto)",
        ),
        Option("--compile", kind=FLAG, help="byte-compile installed files"),
        Option("--json", kind=FLAG, help="print the answer as JSON"),
    ),
    positionals=(REQUIREMENTS,),
)


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    add_to_argparse(SPEC, subparsers, run)


def build_params(args: Namespace) -> dict[str, Any]:
    """The `install` request's params; `ParamsError` for options that clash."""
    if args.platform or args.python_version:
        raise ParamsError(
            "--platform/--python-version describe another machine; an install goes into a "
            "real environment (choose its interpreter with --python)"
        )
    params = requirement_params(args, allow_empty=bool(args.lock))
    params["venv"] = os.path.abspath(args.venv)  # noqa: PTH100 -- no pathlib on this path
    # params["python"] (--python resolved to a path, else this interpreter): what a missing
    # environment is created with; an existing environment's own interpreter is the target.
    params["link_mode"] = args.link_mode
    params["compile"] = bool(args.compile)
    if args.lock:
        params["lock"] = os.path.abspath(args.lock)  # noqa: PTH100
    return params


def run(args: Namespace) -> int:
    try:
        params = build_params(args)
    except ParamsError as exc:
        sys.stderr.write(f"satchel install: {exc}\n")
        return errors.EXIT_USAGE
    value = call_with_progress(args, "install", "install", params)
    show_notes(value)
    if args.json:
        import json

        print(json.dumps(value, indent=2))
        return errors.EXIT_OK
    if value["created"]:
        print(f"created {value['venv']}")
    for line in value["removed"]:
        print(f" - {line}")
    for line in value["installed"]:
        print(f" + {line}")
    print(
        f"installed {len(value['installed'])} packages ({value['files']} files, "
        f"{'/'.join(value['link_modes']) or 'nothing linked'}), kept {len(value['kept'])}, "
        f"in {value['elapsed']:.2f} s"
    )
    return errors.EXIT_OK
