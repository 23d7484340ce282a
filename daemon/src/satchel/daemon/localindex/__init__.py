"""The local simple index: Satchel's cache as an HTTP index on 127.0.0.1 for pip, uv and the rest.

pip, uv, poetry and pdm cannot speak the daemon's Unix socket, and uv keys its offline cache by
index URL; one stable loopback URL that works online and offline gives them Satchel's cache and
its index scoping. Modules, one job each:

* `http`: an HTTP/1.1 server on trio over h11 (limits, timeouts, keep-alive, file streaming);
* `pages`: PEP 503/691 documents and content negotiation (pure);
* `auth`: the per-user token file and the basic-auth check;
* `service`: the routes, over the daemon's catalog and store.

`serve_local_index` is started by the runtime once the catalog exists. Failing to listen (the
port is taken) never stops the daemon: the error is logged, shown by `localindex.info`, and the
bind is retried with backoff, so the index appears once the port frees up. A change of
``local-index-port`` in config.toml moves the listener without a restart.
"""

from __future__ import annotations

import logging
import os
import time
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import trio

from satchel.daemon.localindex.auth import TOKEN_FILE, load_or_create_token
from satchel.daemon.localindex.http import LISTEN_BACKLOG, HttpServer
from satchel.daemon.localindex.service import LocalIndex

if TYPE_CHECKING:
    from satchel.daemon.app import App
    from satchel.daemon.runtime import Runtime

__all__ = [
    "DEFAULT_PORT",
    "HOST",
    "LocalIndexState",
    "local_index_state",
    "serve_local_index",
]

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
#: The default port. Fixed, because uv keys its offline cache by index URL and users paste the
#: URL into config files: it must survive daemon restarts. Chosen to collide with nothing a
#: Python developer commonly runs (devpi 3141, apt-cacher-ng 3142, proxpi 5000, pypiserver and
#: most dev servers 8000/8080), unprivileged, and below every OS's ephemeral range (Linux starts
#: at 32768, Windows and macOS at 49152), so an outgoing connection never holds it by chance.
DEFAULT_PORT = 7340
#: Bind retries after a failure (port in use): first delay, doubling up to the maximum.
RETRY_FIRST = 1.0
RETRY_MAX = 30.0
#: How often the configured port is compared with the one being served.
CONFIG_POLL = 1.0
#: How often served files' last-used times are written to the metadb (one batch).
USED_FLUSH_INTERVAL = 10.0

State = Literal["starting", "serving", "error", "stopped"]


@dataclass
class LocalIndexState:
    """What `localindex.info` reports; one per running daemon."""

    state: State = "starting"
    host: str = HOST
    #: The port being served (the bound one when the configuration says 0), or the one wanted.
    port: int | None = None
    token: str | None = None
    error: str | None = None
    since: float = 0.0

    @property
    def base_url(self) -> str | None:
        """``http://127.0.0.1:PORT/simple/`` (no credentials), when serving."""
        if self.state != "serving" or self.port is None:
            return None
        return f"http://{self.host}:{self.port}/simple/"


_STATES: weakref.WeakKeyDictionary[App, LocalIndexState] = weakref.WeakKeyDictionary()


def local_index_state(app: App) -> LocalIndexState:
    """The local index's state for *app* ("stopped" when it was never started)."""
    return _STATES.get(app) or LocalIndexState(state="stopped")


#: The port used when config.toml sets none (`DEFAULT_PORT` without it). Test suites set it
#: to 0, so that their daemons never take the port a user's real daemon serves on.
PORT_ENV = "SATCHEL_LOCAL_INDEX_PORT"


def configured_port(rt: Runtime) -> int:
    port = rt.config.settings.local_index_port
    if port is not None:
        return port
    fallback = os.environ.get(PORT_ENV, "")
    if fallback.isdigit() and int(fallback) < 65536:
        return int(fallback)
    return DEFAULT_PORT


async def serve_local_index(
    app: App, rt: Runtime, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    """Serve the local index until cancelled; never raises for a bind or token problem."""
    state = LocalIndexState(since=time.time())
    _STATES[app] = state
    try:
        state.token = await trio.to_thread.run_sync(load_or_create_token, app.paths.state_dir)
    except OSError as exc:
        state.state, state.error = "error", f"cannot create {TOKEN_FILE}: {exc.strerror}"
        log.error("local index disabled: %s", state.error)  # noqa: TRY400
        task_status.started()
        return
    service = LocalIndex(rt, state.token)
    # The first bind happens before the runtime reports ready, so `localindex.info` never
    # answers "starting" to a client that asks right after start-up.
    port = configured_port(rt)
    listeners = await _bind(state, port)
    task_status.started()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_flush_used, rt, service)
        delay = RETRY_FIRST
        while True:
            if listeners is None:
                await _sleep_or_port_change(rt, port, delay)
                delay = min(delay * 2, RETRY_MAX)
                port = configured_port(rt)
                listeners = await _bind(state, port)
                continue
            delay = RETRY_FIRST
            server = HttpServer(service.route, authorize=service.authorize, hold=app.activity.hold)
            with trio.CancelScope() as scope:
                nursery.start_soon(_cancel_on_port_change, rt, port, scope)
                await server.serve(listeners)
            log.info("local index: configured port changed; moving the listener")
            port = configured_port(rt)
            listeners = await _bind(state, port)


async def _bind(state: LocalIndexState, port: int) -> list[trio.SocketListener] | None:
    """Listen on *port* and record the outcome in *state*; None (logged once) on failure."""
    state.port = port
    try:
        listeners = await trio.open_tcp_listeners(port, host=HOST, backlog=LISTEN_BACKLOG)
    except OSError as exc:
        message = f"cannot listen on {HOST}:{port}: {exc.strerror or exc}"
        if state.error != message:
            log.error(  # noqa: TRY400
                "local index: %s; retrying (set [settings] local-index-port in config.toml "
                "to use another port)",
                message,
            )
        state.state, state.error, state.since = "error", message, time.time()
        return None
    bound = listeners[0].socket.getsockname()[1]
    state.state, state.port, state.error, state.since = "serving", bound, None, time.time()
    log.info("local index serving on http://%s:%d/simple/", HOST, bound)
    return listeners


async def _sleep_or_port_change(rt: Runtime, port: int, delay: float) -> None:
    with trio.move_on_after(delay):
        # Polled: config.toml reloads have no subscription hook, and a 1 s poll is free.
        while configured_port(rt) == port:  # noqa: ASYNC110
            await trio.sleep(min(CONFIG_POLL, delay))


async def _cancel_on_port_change(rt: Runtime, port: int, scope: trio.CancelScope) -> None:
    while configured_port(rt) == port:  # noqa: ASYNC110 (polled, as above)
        await trio.sleep(CONFIG_POLL)
    scope.cancel()


async def _flush_used(rt: Runtime, service: LocalIndex) -> None:
    """Bump last_used of served blobs in batches (garbage collection keeps what is used).

    Not flushed at shutdown: the metadb closes first, and losing the last few seconds of
    last-used times only makes garbage collection slightly less precise.
    """
    while True:
        await trio.sleep(USED_FLUSH_INTERVAL)
        await _flush_once(rt, service)


async def _flush_once(rt: Runtime, service: LocalIndex) -> None:
    if not service.used:
        return
    used, service.used = service.used, set()
    try:
        await trio.to_thread.run_sync(rt.metadb.mark_used, used)
    except Exception as exc:  # a closed or busy database must not take the server down
        log.warning("local index: cannot record file use: %s", exc)
