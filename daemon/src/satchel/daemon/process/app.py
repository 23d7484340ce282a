"""The orchestration of one daemon run (`serve`); the daemon object itself, `App`, is
`satchel.daemon.services.daemon`'s.

`serve` is the life of the daemon once its socket exists::

    load methods -> start the runtime (with the local index) -> accept connections
      -> notify READY (systemd, autostart pipe)
      -> wait for a shutdown request (signal, `stop`, idle timeout)
      -> STOPPING: stop accepting, refuse new requests, drain in-flight ones up to a deadline
      -> cancel whatever is left -> return the exit reason

Why drain with a deadline instead of cancelling at once: a SIGTERM from a service manager during
an install should let the install finish (its commit is seconds away); a request that hangs must
not hold the machine's shutdown hostage, so after `DRAIN_TIMEOUT` it is cancelled.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable

import trio

from satchel.daemon import api
from satchel.daemon.localindex import serve_local_index
from satchel.daemon.process._activation import Listeners
from satchel.daemon.process._server import Server
from satchel.daemon.services import startup
from satchel.daemon.services.daemon import App
from satchel.daemon.services.state import FATAL_ERROR, IDLE_TIMEOUT, SIGINT, SIGTERM, ExitReason
from satchel.daemon.storage.memory import settle_memory

__all__ = ["run_runtime", "serve"]

log = logging.getLogger(__name__)

#: After the drain deadline, how long cancelled requests get to send their final Error before
#: every connection is cut.
CANCEL_GRACE = 1.0


async def run_runtime(app: App) -> None:
    """The runtime with the front end that runs beside the socket: the local index."""
    await startup.run_runtime(app, (serve_local_index,))


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
    api.load_methods()
    server = Server(app)
    async with trio.open_nursery() as nursery:
        with trio.CancelScope() as drain_scope:
            await nursery.start(_watch_signals, app, drain_scope)
            nursery.start_soon(run_runtime, app)
            nursery.start_soon(settle_memory)
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
