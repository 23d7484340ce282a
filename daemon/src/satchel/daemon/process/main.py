"""`satcheld`: start-up, one `serve`, and a recorded exit.

The daemon always runs in the foreground: whoever starts it (systemd, launchd, the client's
autostart, a terminal) supervises it, so it never forks, never double-forks, never writes a pid
file. Start-up is ordered so that every failure is reported to whoever is waiting and nothing
belonging to another daemon is ever touched::

    parse args, logging
    paths from the environment (platformdirs / satchel.protocol.locations)
    umask 0o077 (everything created is the user's alone)
    instance lock (state dir)          -> "already running (pid N)" and exit 1 otherwise
    tighten cache/config/state left readable by earlier versions (satchel.daemon.process._privacy)
    open-file limit: soft raised to hard (satchel.daemon.services.fdlimit)
    exit records: previous run's ending (crash detection), mark us running
    listeners: systemd / launchd / bind (stale socket removed here, under the lock)
    serve (trio) ... READY ... shutdown request ... drain
    remove the socket we created, record the exit reason, release the lock

Exit status: 0 after any graceful shutdown (signal, `stop`, idle timeout), 1 when start-up
fails (the reason is logged, sent as ``ERROR ...`` on ``--notify-fd``, and given to systemd as
STATUS), 2 for a bad command line.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import errno
import logging
import os
import stat
import sys
import time
from pathlib import Path

import trio

from satchel.daemon.process._activation import Listeners, open_listeners
from satchel.daemon.process._lock import InstanceLock
from satchel.daemon.process._notify import StartupChannel, SystemdNotifier
from satchel.daemon.process._privacy import set_private_umask, tighten
from satchel.daemon.process.app import serve
from satchel.daemon.services.daemon import App
from satchel.daemon.services.fdlimit import raise_open_file_limit
from satchel.daemon.services.paths import Paths, StartupError
from satchel.daemon.services.state import FATAL_ERROR, STARTUP_ERROR, ExitRecorder
from satchel.daemon.settings.log import LEVEL_ENV, parse_level, setup_logging
from satchel.daemon.storage.memory import (
    freeze_survivors,
    limit_malloc_arenas,
    use_system_allocator,
)
from satchel.protocol.buildid import build_id
from satchel.protocol.version import __version__

__all__ = ["build_parser", "main"]

log = logging.getLogger("satchel.daemon")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="satcheld",
        description="Satchel's daemon: owns the package cache and answers `satchel` clients. "
        "Runs in the foreground; start it from a service manager or let `satchel` autostart it.",
    )
    parser.add_argument(
        "--socket",
        metavar="PATH",
        help="listen on PATH instead of $SATCHEL_SOCKET or <runtime dir>/satchel/satchel.sock",
    )
    parser.add_argument(
        "--idle-timeout",
        metavar="SECONDS",
        type=float,
        default=0.0,
        help="exit after SECONDS without any connection, request or background job "
        "(0, the default: never)",
    )
    parser.add_argument(
        "--log-level",
        metavar="LEVEL",
        default=None,
        help="debug, info (default), warning or error; default from $SATCHEL_LOG_LEVEL",
    )
    parser.add_argument(
        "--notify-fd",
        metavar="N",
        type=int,
        default=None,
        help="write READY or ERROR <message> to inherited file descriptor N (used by autostart)",
    )
    parser.add_argument("--version", action="version", version=f"satcheld {__version__}")
    return parser


def main(argv: list[str] | None = None) -> int:
    if argv is None:  # run as the daemon (not called with arguments, as by tests)
        use_system_allocator()  # may re-execute this process: see satchel.daemon.storage.memory
    limit_malloc_arenas()  # before any thread exists (see satchel.daemon.storage.memory)
    set_private_umask()
    parser = build_parser()
    args = parser.parse_args(argv)
    channel = StartupChannel(_checked_fd(parser, args.notify_fd))
    level = args.log_level if args.log_level is not None else os.environ.get(LEVEL_ENV, "")
    try:
        parse_level(level)
    except ValueError as exc:
        source = "--log-level" if args.log_level is not None else LEVEL_ENV
        channel.error(f"{source}: {exc}")
        parser.error(f"{source}: {exc}")
    setup_logging(level)
    if args.idle_timeout < 0:
        channel.error("--idle-timeout must be >= 0")
        parser.error("--idle-timeout must be >= 0")
    notifier = SystemdNotifier()
    return _run(args, channel, notifier)


def _checked_fd(parser: argparse.ArgumentParser, fd: int | None) -> int | None:
    if fd is None:
        return None
    try:
        os.fstat(fd)
    except OSError:
        parser.error(f"--notify-fd {fd}: not an open file descriptor")
    return fd


def _run(args: argparse.Namespace, channel: StartupChannel, notifier: SystemdNotifier) -> int:
    lock: InstanceLock | None = None
    recorder: ExitRecorder | None = None
    #: Which directory the step under way writes to, for a message naming it.
    where: tuple[str, Path] | None = None
    try:
        paths = Paths.from_env(args.socket)
        where = ("state directory", paths.state_dir)
        _make_state_dir(paths.state_dir)
        lock = InstanceLock(paths.lock_file, paths.socket)
        lock.acquire()
        tighten(
            (paths.cache_dir, paths.config_dir, paths.state_dir, paths.log_dir), paths.state_dir
        )
        raise_open_file_limit()
        recorder = ExitRecorder(paths.state_dir)
        recorder.start(time.time())
        where = ("runtime directory", paths.socket.parent)
        listeners = open_listeners(paths, autostarted=args.notify_fd is not None)
    except (StartupError, OSError) as exc:
        message = str(exc) if isinstance(exc, StartupError) else _startup_failure(exc, where)
        log.error("%s", message)  # noqa: TRY400 -- the message says it all; no traceback
        channel.error(message)
        notifier.send(f"STATUS=start-up failed: {message}")
        if recorder is not None:
            recorder.record_exit(STARTUP_ERROR, message, exit_code=1)
        if lock is not None:
            lock.release()
        return 1

    paths = _effective_socket(paths, listeners)
    lock.record_socket(paths.socket)
    with contextlib.suppress(OSError):
        os.chdir("/")  # never pin the directory we were started from (unmounts, rm -rf)
    app = App(
        paths,
        activation=listeners.mode,
        idle_timeout=args.idle_timeout or None,
        version=__version__,
        build_id=build_id(),
        exit_recorder=recorder,
    )
    app.log_file = _stderr_file()

    def on_ready() -> None:
        channel.ready()
        notifier.ready(f"serving on {paths.socket}")

    def on_stopping() -> None:
        notifier.stopping(f"stopping: {app.exit_message}")

    # The switch interval bounds how long the event loop waits for the GIL a worker thread
    # holds (resolving, decoding a large page): at the default 5 ms a ping waited two or three
    # such turns, 10-15 ms; 1 ms keeps it within a few ms, at no measurable cost (issue 11.6).
    sys.setswitchinterval(0.001)
    freeze_survivors()  # before the first request: see satchel.daemon.storage.memory
    exit_code = 0
    try:
        trio.run(lambda: serve(app, listeners, on_ready=on_ready, on_stopping=on_stopping))
    except BaseException as exc:
        exit_code = 1
        if app.exit_reason is None:
            app.exit_reason, app.exit_message = FATAL_ERROR, f"fatal error: {exc!r}"
        log.critical("satcheld failed: %r", exc, exc_info=not isinstance(exc, KeyboardInterrupt))
        channel.error(app.exit_message)
    finally:
        listeners.close()
        listeners.remove_created_socket()
        recorder.record_exit(app.exit_reason or FATAL_ERROR, app.exit_message, exit_code)
        lock.release()
    log.info("satcheld exited: %s", app.exit_message)
    return exit_code


def _startup_failure(exc: OSError, where: tuple[str, Path] | None) -> str:
    """What to say when start-up fails with *exc*: a full disk names the directory."""
    if where is None:
        return f"start-up failed: {exc}"
    what, directory = where
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return (
            f"start-up failed: no space left on device in the {what} {directory}; "
            "free space there (or move it: XDG_STATE_HOME, XDG_RUNTIME_DIR)"
        )
    return f"start-up failed in the {what} {directory}: {exc}"


def _make_state_dir(path: Path) -> None:
    """The state dir holds the lock and exit records: private, created 0700 when missing."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.mkdir(mode=0o700, exist_ok=True)
    except OSError as exc:
        raise StartupError(f"cannot create state directory {path}: {exc.strerror}") from exc


def _effective_socket(paths: Paths, listeners: Listeners) -> Paths:
    """With a socket handed over by a service manager, report the path it actually has."""
    if listeners.created_path is not None or not listeners.sockets:
        return paths
    with contextlib.suppress(OSError):
        name = listeners.sockets[0].getsockname()
        if isinstance(name, str) and name.startswith("/"):
            return dataclasses.replace(paths, socket=Path(name))
    return paths


def _stderr_file() -> str | None:
    """Where our stderr goes, when it is a regular file (autostart's log); None otherwise."""
    try:
        if not stat.S_ISREG(os.fstat(2).st_mode):
            return None
        return str(Path("/proc/self/fd/2").readlink())
    except OSError:
        return None


if __name__ == "__main__":
    sys.exit(main())
