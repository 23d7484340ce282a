"""The daemon object every handler sees (`App`) and the orchestration of one daemon run (`serve`).

`App` is deliberately a plain class with typed attributes: paths, identity, activity and jobs,
the shutdown request, and `services`, where later features (config, store, upstream, ...) hang
their long-lived objects. Handlers reach all of it through ``ctx.app``.

`serve` is the life of the daemon once its socket exists::

    load methods -> accept connections -> notify READY (systemd, autostart pipe)
      -> wait for a shutdown request (signal, `stop`, idle timeout)
      -> STOPPING: stop accepting, refuse new requests, drain in-flight ones up to a deadline
      -> cancel whatever is left -> return the exit reason

Why drain with a deadline instead of cancelling at once: a SIGTERM from a service manager during
an install should let the install finish (its commit is seconds away); a request that hangs must
not hold the machine's shutdown hostage, so after `DRAIN_TIMEOUT` it is cancelled.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import trio

from satchel.daemon import methods
from satchel.daemon.activation import ActivationMode, Listeners
from satchel.daemon.memory import give_back_after_bursts
from satchel.daemon.paths import Paths

if TYPE_CHECKING:
    from satchel.daemon.refresh import Warmer
    from satchel.daemon.runtime import Runtime
from satchel.daemon.state import (
    FATAL_ERROR,
    IDLE_TIMEOUT,
    SIGINT,
    SIGTERM,
    ExitReason,
    ExitRecorder,
)

__all__ = ["DRAIN_TIMEOUT", "Activity", "App", "JobInfo", "Services", "serve"]

log = logging.getLogger(__name__)

#: How long in-flight requests may keep running after a shutdown request: long enough for an
#: install to commit, and with room to spare below our unit's TimeoutStopSec (30 s), after which
#: systemd would SIGKILL us before the exit could be recorded.
DRAIN_TIMEOUT = 20.0

#: After the drain deadline, how long cancelled requests get to send their final Error before
#: every connection is cut.
CANCEL_GRACE = 1.0


class Activity:
    """Counts what keeps the daemon busy (connections, requests, background jobs).

    The idle watcher sleeps until the count has been zero for the idle timeout; every change
    wakes it, so it costs nothing while the daemon works.
    """

    def __init__(self) -> None:
        self.busy = 0
        #: trio clock time the count last dropped to zero (None: not since the watcher started).
        self.idle_since: float | None = None
        self._changed = trio.Event()

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """Mark the daemon busy for the duration of the block (never idle-exits meanwhile)."""
        self.busy += 1
        self._notify()
        try:
            yield
        finally:
            self.busy -= 1
            if self.busy == 0:
                self.idle_since = trio.current_time()
            self._notify()

    async def wait_changed(self) -> None:
        await self._changed.wait()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()


@dataclass
class JobInfo:
    """One request in flight, as `status` shows it."""

    id: int
    method: str
    request_id: int
    peer_pid: int | None
    started_at: float = field(default_factory=time.time)
    description: str = ""


class Services:
    """Long-lived objects of later features (config, store, upstream, ...).

    Each feature adds one typed attribute here, initialised to None, and sets it up in its own
    start-up hook; keeping them in one place makes the dependency graph visible.

    `runtime` (cache, configuration, upstream, catalog) starts in the background while the
    socket already answers, so `ping` and `status` never wait for it; requests that need it
    await `satchel.daemon.runtime.runtime(app)`, which waits for `runtime_ready`.
    """

    def __init__(self) -> None:
        self.runtime: Runtime | None = None
        #: Watched projects, background refresh and idle GC (`satchel.daemon.refresh`).
        self.warmer: Warmer | None = None
        self.runtime_ready = trio.Event()
        #: Why the runtime could not start (shown to every request that needs it).
        self.runtime_error: str | None = None
        #: What start-up repaired in the cache that the user should know (a damaged database
        #: moved aside and rebuilt); shown by `status` for the daemon's lifetime.
        self.repaired: str | None = None


class App:
    """Everything a request handler may need about the running daemon."""

    def __init__(
        self,
        paths: Paths,
        *,
        activation: ActivationMode,
        idle_timeout: float | None,
        version: str,
        build_id: str,
        exit_recorder: ExitRecorder,
    ) -> None:
        self.paths = paths
        self.activation: ActivationMode = activation
        self.idle_timeout = idle_timeout
        self.version = version
        self.build_id = build_id
        self.exit_recorder = exit_recorder
        self.pid = os.getpid()
        self.started_at = time.time()
        self.started_monotonic = time.monotonic()
        self.log_file: str | None = None
        #: Set by the config feature when config.toml is broken (message with file and line).
        self.config_error: str | None = None
        self.activity = Activity()
        #: Requests in flight (drained at shutdown).
        self.jobs: dict[int, JobInfo] = {}
        #: Background work of later features (cancelled at shutdown); see `background_job`.
        self.background_jobs: dict[int, JobInfo] = {}
        self._next_job = 1
        self._jobs_empty = trio.Event()
        self._jobs_empty.set()
        self.services = Services()
        self.shutdown_requested = trio.Event()
        #: How long a shutdown waits for in-flight requests; `stop` may override it.
        self.drain_timeout = DRAIN_TIMEOUT
        self.exit_reason: ExitReason | None = None
        self.exit_message = ""

    @property
    def uptime(self) -> float:
        return time.monotonic() - self.started_monotonic

    @property
    def shutting_down(self) -> bool:
        return self.shutdown_requested.is_set()

    def request_shutdown(self, reason: ExitReason, message: str = "") -> None:
        """Ask the daemon to stop; the first reason wins (a later SIGTERM does not rewrite it)."""
        if self.exit_reason is None:
            self.exit_reason = reason
            self.exit_message = message or reason
            log.info("shutting down: %s", self.exit_message)
        self.shutdown_requested.set()

    def add_job(self, method: str, request_id: int, peer_pid: int | None) -> JobInfo:
        job = JobInfo(self._next_job, method, request_id, peer_pid)
        self._next_job += 1
        self.jobs[job.id] = job
        if self._jobs_empty.is_set():
            self._jobs_empty = trio.Event()
        return job

    def remove_job(self, job: JobInfo) -> None:
        self.jobs.pop(job.id, None)
        if not self.jobs:
            self._jobs_empty.set()

    async def wait_no_jobs(self) -> None:
        """Return once no request is in flight (background jobs do not count: they are
        cancelled at shutdown, not drained)."""
        await self._jobs_empty.wait()

    @contextlib.contextmanager
    def background_job(self, name: str, description: str = "") -> Iterator[JobInfo]:
        """Mark a background job (refresh, GC, ...) for `status` and the idle timeout::

        with app.background_job("refresh", "revalidating 12 projects"):
            ...
        """
        job = JobInfo(self._next_job, name, 0, None, description=description)
        self._next_job += 1
        self.background_jobs[job.id] = job
        try:
            with self.activity.hold():
                yield job
        finally:
            self.background_jobs.pop(job.id, None)


async def _watch_signals(
    app: App,
    force: trio.CancelScope,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """First SIGTERM/SIGINT: graceful shutdown. A second one: stop draining, exit now."""
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        task_status.started()
        async for signum in signals:
            if app.shutting_down:
                log.warning("second signal %s: cancelling in-flight requests", signum)
                force.cancel()
            else:
                reason = SIGTERM if signum == signal.SIGTERM else SIGINT
                app.request_shutdown(reason, f"received {reason.upper()}")


async def _watch_idle(app: App, idle_timeout: float) -> None:
    """Request shutdown once nothing has kept the daemon busy for *idle_timeout* seconds."""
    activity = app.activity
    watching_since = trio.current_time()
    while True:
        if activity.busy:
            await activity.wait_changed()
            continue
        idle_since = max(watching_since, activity.idle_since or watching_since)
        with trio.move_on_at(idle_since + idle_timeout) as scope:
            await activity.wait_changed()
        if scope.cancelled_caught and not activity.busy:
            app.request_shutdown(IDLE_TIMEOUT, f"idle for {idle_timeout:g} s")
            return


async def serve(
    app: App,
    listeners: Listeners,
    *,
    on_ready: Callable[[], None],
    on_stopping: Callable[[], None] | None = None,
) -> ExitReason:
    """Serve until asked to stop; return the exit reason (the caller records it)."""
    from satchel.daemon.runtime import run_runtime
    from satchel.daemon.server import Server  # server imports App for typing only

    methods.load_methods()
    server = Server(app)
    async with trio.open_nursery() as nursery:
        with trio.CancelScope() as drain_scope:
            await nursery.start(_watch_signals, app, drain_scope)
            nursery.start_soon(run_runtime, app)
            nursery.start_soon(give_back_after_bursts)
            await nursery.start(server.serve, listeners)
            log.info(
                "satcheld %s (pid %d) serving on %s (%s)",
                app.version,
                app.pid,
                app.paths.socket,
                app.activation,
            )
            on_ready()
            if app.idle_timeout:
                nursery.start_soon(_watch_idle, app, app.idle_timeout)
            await app.shutdown_requested.wait()
            if on_stopping is not None:
                on_stopping()
            await server.stop_accepting()
            drain_timeout = app.drain_timeout
            with trio.move_on_after(drain_timeout) as deadline:
                await app.wait_no_jobs()
            if deadline.cancelled_caught:
                log.warning(
                    "%d request(s) still running after %g s: cancelling",
                    len(app.jobs),
                    drain_timeout,
                )
        # Drained, timed out or forced: cancel what remains, let cancelled requests say so.
        server.cancel_requests()
        with trio.move_on_after(CANCEL_GRACE):
            await app.wait_no_jobs()
        nursery.cancel_scope.cancel()
    return app.exit_reason or FATAL_ERROR
