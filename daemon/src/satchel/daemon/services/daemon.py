"""The daemon object every handler sees (`App`): paths, identity, activity and jobs, the shutdown
request, and `services`, where the long-lived parts hang (the runtime, the background refresh,
the local index's state).

`App` is deliberately a plain class with typed attributes; handlers reach all of it through
``ctx.app``. It lives below the front ends (the API, the local index) and above the requests, so
each of them can be handed it without importing the process that serves them
(`satchel.daemon.process.app.serve`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import trio

from satchel.daemon.errors import SatchelError
from satchel.daemon.services.paths import Paths
from satchel.daemon.services.state import ExitReason, ExitRecorder

if TYPE_CHECKING:
    from satchel.daemon.requests.runtime import Runtime

__all__ = [
    "DRAIN_TIMEOUT",
    "ActivationMode",
    "Activity",
    "App",
    "JobInfo",
    "Services",
    "runtime",
]

log = logging.getLogger(__name__)

#: How the daemon was started (socket activation by a service manager, or not).
ActivationMode = Literal["systemd", "launchd", "autostart", "manual"]

#: How long in-flight requests may keep running after a shutdown request: long enough for an
#: install to commit, and with room to spare below our unit's TimeoutStopSec (30 s), after which
#: systemd would SIGKILL us before the exit could be recorded.
DRAIN_TIMEOUT = 20.0


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
    await `runtime(app)` (below), which waits for `runtime_ready`.
    """

    def __init__(self) -> None:
        self.runtime: Runtime | None = None
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


async def runtime(app: App, *, need_indexes: bool = True) -> Runtime:
    """The running daemon's services, once started (requests arriving early wait here).

    With *need_indexes* (every method but those that show or edit the configuration), a
    `ConfigError` while there is no index set to trust (`Runtime.check_usable`).
    """
    services = app.services
    await services.runtime_ready.wait()
    if services.runtime is None:
        raise SatchelError(
            f"the daemon could not open its cache: {services.runtime_error}; see the daemon log"
        )
    if need_indexes:
        services.runtime.check_usable()
    return services.runtime
