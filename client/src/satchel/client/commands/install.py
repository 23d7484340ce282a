"""`satchel install REQ... [-r FILE] [--lock FILE] --venv PATH [--python PYTHON] [--offline]`.

Creates the environment when it is missing (with ``--python``, else this interpreter), resolves
against what is already installed (keeping what satisfies, changing only what must), and
installs from the cache only: each wheel is unpacked once into the cache and its files are linked
into the environment (``--link-mode``: clone where the file system supports it, else hardlink,
else copy). Hardlinked files are shared with the cache: the cache makes them read-only, so an
in-place edit fails instead of changing every environment that shares the file.
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
from satchel.client.progress import ProgressDisplay
from satchel.client.session import Session
from satchel.protocol import errors

__all__ = ["add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "install",
        help="install requirements into a virtual environment from the cache",
        description=__doc__.split("\n\n", 1)[0] if __doc__ else None,
    )
    add_requirement_arguments(parser)
    parser.add_argument("--venv", required=True, metavar="PATH", help="the environment")
    parser.add_argument("--lock", metavar="FILE", help="install exactly this pylock.toml")
    parser.add_argument(
        "--link-mode", choices=["auto", "clone", "hardlink", "copy"], default="auto"
    )
    parser.add_argument("--compile", action="store_true", help="byte-compile installed files")
    parser.add_argument("--json", action="store_true", help="print the answer as JSON")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.lock and not args.requirement:
        args.requirement = []
    try:
        if args.lock:
            args.requirements = args.requirements or []
            params = requirement_params(args, allow_empty=True)
        else:
            params = requirement_params(args)
    except argparse.ArgumentTypeError as exc:
        sys.stderr.write(f"satchel install: {exc}\n")
        return errors.EXIT_USAGE
    params["venv"] = str(Path(args.venv).absolute())
    # The environment's own interpreter is the target; --python only says what to create it with.
    params["python"] = args.python or sys.executable
    params["link_mode"] = args.link_mode
    params["compile"] = bool(args.compile)
    if args.lock:
        params["lock"] = str(Path(args.lock).absolute())
    progress = ProgressDisplay("install")
    try:
        with Session.for_args(args) as session:
            value = session.call("install", params, on_progress=progress)
    finally:
        progress.finish()
    show_notes(value)
    if args.json:
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
