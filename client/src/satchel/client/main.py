"""`satchel`: the console-script entry point, dispatching by hand for speed.

Every invocation is a fresh process, so start-up time *is* the product. `satchel ping` must cost
at most twice a bare `python -c pass`. argparse alone costs several milliseconds (it imports `re`,
`gettext`, ...), so the hot commands (`ping`, `status`, `stop`, `--version`, `--help`) are parsed
here with a few string comparisons. Every other command is registered in
`satchel.client.commands.COMMANDS` and handled by its own module, imported only when that
command runs (see docs/client.md for the convention). A module that declares its command line
as a `SPEC` table (`resolve`, `install`, `run`, `prefetch`: the benchmarked ones) is parsed by
`satchel.client.args` without argparse; argparse then serves only its `--help`. The others are
parsed by argparse.

Exit statuses come from `satchel.protocol.errors` and are listed by `satchel --help`.
"""

from __future__ import annotations

import os
import sys
import time

from satchel.protocol import errors

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from typing import Any, NoReturn

    from satchel.client.session import Session

HOT_COMMANDS = {
    "ping": "check that the daemon answers; print the round-trip time",
    "status": "show the daemon's state (--json for machine-readable output)",
    "stop": "stop the daemon (it is started again on demand)",
}

USAGE = "usage: satchel [--no-autostart] [--socket PATH] COMMAND [ARGS...]"

GLOBAL_OPTIONS = """\
global options:
  -h, --help        show this help and exit
  -V, --version     show the client's version and build (and the daemon's, if running)
  --no-autostart    never start the daemon (also: SATCHEL_NO_AUTOSTART=1)
  --socket PATH     the daemon's socket (also: SATCHEL_SOCKET)"""


class UsageError(Exception):
    """A bad command line: printed with the usage line, exit status 2."""


class Options:
    """The global options, shaped like the argparse namespace cold commands receive."""

    __slots__ = ("autostart", "json", "socket")

    def __init__(self) -> None:
        self.socket: str | None = None
        self.autostart: bool | None = None
        self.json = False


#: What Ctrl-C left behind, by `session.Interrupted.outcome` (a request the daemon confirmed
#: cancelled, or Ctrl-C outside a request, needs no more words).
_AFTER_INTERRUPT = {
    "completed": ", but the daemon had already completed the request: what it did stands",
    "unconfirmed": (
        "; the daemon has not confirmed that the request stopped, so it may still complete "
        "(an install commits or rolls back, never half-done); `satchel status` lists it "
        "while it runs"
    ),
}


def main(argv: list[str] | None = None) -> int:
    """Run the `satchel` command line; return the exit status."""
    args = sys.argv[1:] if argv is None else argv
    try:
        return _dispatch(args)
    except UsageError as exc:
        print(f"{USAGE}\nsatchel: error: {exc}", file=sys.stderr)
        return errors.EXIT_USAGE
    except KeyboardInterrupt as exc:
        print(f"satchel: interrupted{_AFTER_INTERRUPT.get(str(exc), '')}", file=sys.stderr)
        return errors.EXIT_CANCELLED
    except BrokenPipeError:
        # `satchel status | head -1`: the reader left; say nothing more, like other Unix tools.
        # Point stdout at /dev/null so the interpreter's final flush cannot fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return errors.EXIT_FAILURE
    except Exception as exc:
        from satchel.client.session import ClientError, RemoteError
        from satchel.client.terminal import shown

        if isinstance(exc, RemoteError):
            print(f"satchel: error: {shown(exc.message)} [{exc.code}]", file=sys.stderr)
            if _wants_json(args):
                _print_error_json(exc.code, exc.message, exc.details)
            return errors.exit_status(exc.code)
        if isinstance(exc, ClientError):
            print(f"satchel: error: {shown(exc.message)}", file=sys.stderr)
            return errors.exit_status(exc.code)
        raise


def console() -> NoReturn:
    """The `satchel` console script: `main`, then an exit that skips the interpreter's teardown.

    Once `main` has returned, what CPython still does at exit (a full garbage collection,
    then clearing every module's globals: ~9M instructions, ~1.5-2 ms, more than the daemon
    takes to answer a cached resolve) changes nothing a user can see. So the exit handlers
    registered with `atexit` run (none on the client's own paths; `weakref.finalize`, logging
    or a coverage tool register them), stdout and stderr are flushed, and the process ends
    with `os._exit`. A failed flush (the reader went away) or a thread still running takes
    the ordinary `sys.exit`, which reports or waits exactly as before. Files the client writes
    are closed by `with` blocks before `main` returns, so no buffered output is left behind.
    An uncaught exception never gets here: it propagates to the interpreter as before.
    """
    status = main()
    threading = sys.modules.get("threading")
    if threading is not None and threading.active_count() > 1:
        sys.exit(status)
    import atexit

    try:
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:
        sys.exit(status)
    os._exit(status)


def _wants_json(args: list[str]) -> bool:
    """Whether the command line asked for JSON output (`--json`, `--format json`)."""
    from itertools import pairwise

    pairs = pairwise(args)
    return "--json" in args or "--format=json" in args or ("--format", "json") in pairs


def _print_error_json(code: str, message: str, details: dict[str, Any]) -> None:
    """A refusal or failure as JSON on stdout, so a script reads its fields (e.g. an
    `origin-changed` refusal's ``bound`` and ``offered`` indexes), as it reads a result."""
    import json

    print(json.dumps({"error": {"code": code, "message": message, "details": details}}, indent=2))


def _dispatch(args: list[str]) -> int:
    options = Options()
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in ("-h", "--help"):
            print(help_text())
            return errors.EXIT_OK
        if arg in ("-V", "--version"):
            return cmd_version(options)
        if arg == "--no-autostart":
            options.autostart = False
        elif arg == "--socket" or arg.startswith("--socket="):
            if "=" in arg:
                options.socket = arg.split("=", 1)[1]
            elif i + 1 < len(args):
                i += 1
                options.socket = args[i]
            else:
                raise UsageError("--socket needs a path")
            if not options.socket:
                raise UsageError("--socket needs a path")
        elif arg.startswith("-"):
            raise UsageError(f"unknown option {arg!r}")
        else:
            break
        i += 1
    if i >= len(args):
        print(help_text(), file=sys.stderr)
        return errors.EXIT_USAGE
    command, rest = args[i], args[i + 1 :]
    if command == "help":
        print(help_text())
        return errors.EXIT_OK
    if command in HOT_COMMANDS:
        if "-h" in rest or "--help" in rest:
            print(f"usage: satchel {command}{' [--json]' if command == 'status' else ''}")
            print(f"\n{HOT_COMMANDS[command]}")
            return errors.EXIT_OK
        allowed = ("--json",) if command == "status" else ()
        for extra in rest:
            if extra not in allowed:
                raise UsageError(f"satchel {command}: unexpected argument {extra!r}")
        options.json = "--json" in rest
        if command == "ping":
            return cmd_ping(options)
        if command == "status":
            return cmd_status(options)
        return cmd_stop(options)
    return _run_registered(command, args[:i], rest, options)


def _run_registered(command: str, global_args: list[str], rest: list[str], options: Options) -> int:
    """Load the command's module; parse with its `SPEC` table if it has one, else argparse."""
    from satchel.client.commands import COMMANDS, module_name

    if command not in COMMANDS:
        raise UsageError(f"unknown command {command!r} (see `satchel --help`)")
    # `__import__` rather than `importlib.import_module`: the same, minus an import.
    module = __import__(module_name(command), fromlist=["run"])
    spec = getattr(module, "SPEC", None)
    if spec is not None:
        from satchel.client import args as fast

        try:
            parsed = fast.parse(spec, rest)
        except fast.HelpRequested:
            pass  # argparse below prints the complete help, built from the same table
        except fast.ArgsError as exc:
            print(f"{spec.usage()}\nsatchel {command}: error: {exc}", file=sys.stderr)
            return errors.EXIT_USAGE
        else:
            parsed.socket = options.socket
            parsed.autostart = options.autostart
            return int(module.run(parsed))
    namespace = argparse_parser(module).parse_args([*global_args, command, *rest])
    handler = namespace.handler
    return int(handler(namespace))


def argparse_parser(module: Any) -> argparse.ArgumentParser:
    """The argparse parser for one registered command's module (with the global options)."""
    import argparse

    parser = argparse.ArgumentParser(prog="satchel", description="Satchel client.")
    parser.add_argument("--no-autostart", dest="autostart", action="store_false", default=None)
    parser.add_argument("--socket", default=None)
    sub = parser.add_subparsers(dest="command", required=True)
    module.add_parser(sub)
    return parser


# -- hot commands -------------------------------------------------------------------------------


def _session(
    options: Options, *, autostart: bool | None = None, check_build: bool = True
) -> Session:
    from satchel.client.session import Session

    return Session(
        options.socket,
        autostart=options.autostart if autostart is None else autostart,
        check_build=check_build,
    )


def cmd_ping(options: Options) -> int:
    with _session(options) as session:
        started = time.perf_counter()
        session.call("ping", {})
        elapsed = time.perf_counter() - started
        welcome = session.welcome
    note = " (started it)" if session.started_daemon else ""
    print(
        f"pong from satcheld {welcome.get('daemon_version', '?')} (pid {welcome.get('pid')}) "
        f"in {elapsed * 1000:.2f} ms{note}"
    )
    return errors.EXIT_OK


def cmd_status(options: Options) -> int:
    with _session(options) as session:
        value = session.call("status", {})
    if options.json:
        import json

        print(json.dumps(value, indent=2, sort_keys=True))
    else:
        from satchel.client.render import format_status

        print(format_status(value))
    return errors.EXIT_OK


def cmd_stop(options: Options) -> int:
    from satchel.client.session import ClientError, wait_for_exit

    session = _session(options, autostart=False, check_build=False)
    try:
        with session:
            welcome = session.connect()
            session.call("stop", {})
    except ClientError as exc:
        if exc.code == errors.UNAVAILABLE and session.welcome == {}:
            print("satcheld is not running")
            return errors.EXIT_OK
        raise
    pid = welcome.get("pid")
    if isinstance(pid, int) and not wait_for_exit(pid, 30.0):
        print(f"satchel: satcheld (pid {pid}) is still draining requests", file=sys.stderr)
        return errors.EXIT_FAILURE
    print(f"stopped satcheld (pid {pid})")
    return errors.EXIT_OK


def cmd_version(options: Options) -> int:
    from satchel.client.session import ClientError
    from satchel.protocol.buildid import build_id
    from satchel.protocol.version import __version__

    print(f"satchel {__version__} (build {build_id()})")
    session = _session(options, autostart=False, check_build=False)
    try:
        with session:
            welcome = session.connect()
    except ClientError as exc:
        print(
            f"satcheld: not running ({session.socket_path})"
            if exc.code == errors.UNAVAILABLE
            else f"satcheld: {exc.message}"
        )
        return errors.EXIT_OK
    print(
        f"satcheld {welcome.get('daemon_version', '?')} (build {welcome.get('build_id')}, "
        f"pid {welcome.get('pid')})"
    )
    return errors.EXIT_OK


# -- help ---------------------------------------------------------------------------------------


def help_text() -> str:
    """The `--help` text: commands (hot and registered) and the exit statuses."""
    from satchel.client.commands import COMMANDS

    commands: dict[str, Any] = {**HOT_COMMANDS, **COMMANDS}
    width = max(len(name) for name in commands) + 2
    lines = [
        USAGE,
        "",
        "Satchel: an offline-first cache of Python packages, kept by a daemon (satcheld).",
        "The client starts the daemon on demand unless --no-autostart is given.",
        "",
        "commands:",
    ]
    lines += [f"  {name.ljust(width)}{summary}" for name, summary in commands.items()]
    lines += ["", GLOBAL_OPTIONS, "", "exit status:"]
    for status, meaning in exit_status_table():
        text, _, codes = meaning.partition(" [")
        line = f"  {status:<4}{meaning}"
        lines += [line] if len(line) <= 79 else [f"  {status:<4}{text}", f"      [{codes}"]
    lines += ["", "Run `satchel COMMAND --help` for a command's options."]
    return "\n".join(lines)


def exit_status_table() -> list[tuple[int, str]]:
    """(status, meaning with the wire codes that produce it), from `satchel.protocol.errors`."""
    meanings = {
        errors.EXIT_OK: "success",
        errors.EXIT_FAILURE: "the request failed (any error code not listed below)",
        errors.EXIT_USAGE: "bad command line, or malformed requirements or lock input",
        errors.EXIT_UNAVAILABLE: "the daemon is not running and could not be started",
        errors.EXIT_PROTOCOL: "client and daemon cannot talk (protocol or version mismatch)",
        errors.EXIT_OFFLINE: "offline, an index unreachable, or the package is not cached",
        errors.EXIT_RESOLUTION: "the requirements cannot be resolved (conflict explained)",
        errors.EXIT_CANCELLED: "interrupted (Ctrl-C) or cancelled",
    }
    codes: dict[int, list[str]] = {}
    for code, status in errors.EXIT_STATUS.items():
        codes.setdefault(status, []).append(code)
    table = []
    for status in sorted(meanings):
        meaning = meanings[status]
        if status in codes:
            meaning += f" [{', '.join(codes[status])}]"
        table.append((status, meaning))
    return table


if __name__ == "__main__":  # pragma: no cover - `python -m satchel.client.main`
    console()
