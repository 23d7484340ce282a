"""The registry of `satchel` sub-commands that are loaded on demand.

Convention (also in docs/client.md): a command `NAME` lives in the module
`satchel.client.commands.<NAME with "-" replaced by "_">`, which exposes

    def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
        parser = subparsers.add_parser("NAME", help=..., description=...)
        parser.add_argument(...)
        parser.set_defaults(handler=run)

    def run(args: argparse.Namespace) -> int:   # the exit status
        with Session.for_args(args) as session:
            value = session.call("area.method", {...}, on_progress=..., on_log=...)
        ...

and gets one line in `COMMANDS` below (the summary is what `satchel --help` prints). `args.socket`
and `args.autostart` (the global options) are always set. A handler may raise
`satchel.client.session.RemoteError` or `ClientError`; `main` prints them and exits with the
documented status, so handlers only deal with success.

Why a registry instead of importing every module: `satchel --help` and the hot commands (`ping`,
`status`, `stop`) must not pay for argparse or for dozens of command modules; only the command
being run is imported.
"""

from __future__ import annotations

#: command name -> one-line summary, in the order `satchel --help` lists them.
COMMANDS: dict[str, str] = {
    "prefetch": "resolve online and download every file of the result into the cache",
    "resolve": "pin requirements (with hashes) from the configured indexes, or offline",
    "install": "install requirements into a virtual environment from the cache",
    "run": "run a tool from a cached environment (offline-first uvx)",
    "tool": "list, remove or prune cached tool environments",
    "watch": "keep projects prefetched: add, remove or list watched projects",
    "ready": "can I work offline? check every watched project against the cache",
    "cache": "show what the cache holds (per index) or verify every stored file",
    "index": "list, add, remove or pin the package indexes the daemon uses",
    "origins": "list the index each project is bound to; trust another, or forget",
    "service": "install, remove or inspect the systemd/launchd units for the daemon",
    "index-url": "print the local simple index URL (with its token) for pip, uv and others",
    "env": "print shell exports that make pip and uv use the local index",
}


def module_name(command: str) -> str:
    """The module that implements `command`."""
    return "satchel.client.commands." + command.replace("-", "_")
