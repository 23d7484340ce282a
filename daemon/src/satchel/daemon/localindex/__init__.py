"""The local simple index: Satchel's cache as an HTTP index on 127.0.0.1 for pip, uv and the rest.

pip, uv, poetry and pdm cannot speak the daemon's Unix socket, and uv keys its offline cache by
index URL; one stable loopback URL that works online and offline gives them Satchel's cache and
its index scoping. Modules, one job each:

* `_http`: an HTTP/1.1 server on trio over h11 (limits, timeouts, keep-alive, file streaming);
* `_messages`: the `Request` and `Response` it exchanges with the routes;
* `_responses`: small answers, and the checks on names in a request path;
* `_pages`: PEP 503/691 documents and content negotiation (pure);
* `_auth`: who may ask anything: the Host, the owner's own connections, the token;
* `_peer`: the uid of a loopback peer, from the kernel (token-less access for the owner);
* `_pagememo`: rendered pages kept between requests, within a short revalidation window;
* `_filememo`: which stored files may be served, and their metadata, kept while nothing moved;
* `_service`: the routes, over the daemon's catalog and store.

`serve_local_index` is handed to the runtime by `satchel.daemon.process.app.serve` and started
once the catalog exists. Failing to listen (the
port is taken) never stops the daemon: the error is logged, shown by `localindex.info`, and the
bind is retried with backoff, so the index appears once the port frees up. A change of
``local-index-port`` in config.toml moves the listener without a restart.

The port is per user, remembered from the first start, and the token is per user too: where both
are kept is `satchel.daemon.settings.ownindex`'s (the daemon needs them before this starts).
"""

from __future__ import annotations

import functools
import logging
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import trio

from satchel.daemon.localindex._http import LISTEN_BACKLOG, HttpServer
from satchel.daemon.localindex._peer import peer_is_owner, supported
from satchel.daemon.localindex._service import LocalIndex
from satchel.daemon.settings.ownindex import (
    PORT_FILE,
    TOKEN_FILE,
    configured_port,
    load_or_create_token,
    remembered_port,
    user_port,
)
from satchel.daemon.storage.fsutil import atomic_write

if TYPE_CHECKING:
    from satchel.daemon.requests.runtime import Runtime
    from satchel.daemon.services.daemon import App

__all__ = ["HOST", "LocalIndexState", "local_index_state", "serve_local_index"]

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
#: How many ports after `user_port` a first start tries before it reports the first as taken.
PORT_PROBES = 16
#: Named in every "cannot listen" error: the way to choose another port.
PORT_SETTING_HINT = "set [settings] local-index-port in config.toml to use another port"
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
    #: Whether requests without the token are let in when the kernel says the peer is our own
    #: user (`_peer`: Linux), so tools can be given a URL without a secret in it.
    peer_auth: bool = False
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


async def serve_local_index(
    app: App, rt: Runtime, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    """Serve the local index until cancelled; never raises for a bind or token problem."""
    state = LocalIndexState(since=time.time(), peer_auth=supported())
    _STATES[app] = state
    rt.bound_port = lambda: state.port
    try:
        state.token = await trio.to_thread.run_sync(load_or_create_token, app.paths.state_dir)
    except OSError as exc:
        state.state, state.error = "error", f"cannot create {TOKEN_FILE}: {exc.strerror}"
        log.error("local index disabled: %s", state.error)  # noqa: TRY400
        task_status.started()
        return
    service = LocalIndex(rt, state.token)
    state_dir = app.paths.state_dir
    # The first bind happens before the runtime reports ready, so `localindex.info` never
    # answers "starting" to a client that asks right after start-up.
    port = configured_port(rt.config)
    listeners = await _bind_wanted(state, port, state_dir)
    task_status.started()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_flush_used, rt, service)
        delay = RETRY_FIRST
        while True:
            if listeners is None:
                await _sleep_or_port_change(rt, port, delay)
                delay = min(delay * 2, RETRY_MAX)
                port = configured_port(rt.config)
                listeners = await _bind_wanted(state, port, state_dir)
                continue
            delay = RETRY_FIRST
            server = HttpServer(
                service.route,
                authorize=service.authorize,
                identify=peer_is_owner if state.peer_auth else None,
                hold=app.activity.hold,
            )
            with trio.CancelScope() as scope:
                nursery.start_soon(_cancel_on_port_change, rt, port, scope)
                await server.serve(listeners)
            log.info("local index: configured port changed; moving the listener")
            port = configured_port(rt.config)
            listeners = await _bind_wanted(state, port, state_dir)


async def _bind_wanted(
    state: LocalIndexState, port: int | None, state_dir: Path
) -> list[trio.SocketListener] | None:
    """Bind the configured *port*, else the remembered one, else the first free per-user one
    (remembered from then on)."""
    if port is not None:
        return await _bind(state, port)
    remembered = await trio.to_thread.run_sync(remembered_port, state_dir)
    if remembered is not None:
        return await _bind(state, remembered)
    first = user_port()
    for candidate in range(first, min(first + PORT_PROBES, 65536)):
        try:
            listeners = await trio.open_tcp_listeners(candidate, host=HOST, backlog=LISTEN_BACKLOG)
        except OSError:
            continue  # held by another user's daemon (or anything else): the next one
        data = f"{candidate}\n".encode("ascii")
        await trio.to_thread.run_sync(
            functools.partial(atomic_write, state_dir / PORT_FILE, data, mode=0o600)
        )
        log.info(
            "local index: chose port %d for this user (remembered in %s)", candidate, PORT_FILE
        )
        return _serving(state, listeners)
    return await _bind(state, first)  # all taken: report the first, and retry it


async def _bind(state: LocalIndexState, port: int) -> list[trio.SocketListener] | None:
    """Listen on *port* and record the outcome in *state*; None (logged once) on failure."""
    state.port = port
    try:
        listeners = await trio.open_tcp_listeners(port, host=HOST, backlog=LISTEN_BACKLOG)
    except OSError as exc:
        message = f"cannot listen on {HOST}:{port}: {exc.strerror or exc} ({PORT_SETTING_HINT})"
        if state.error != message:
            log.error("local index: %s; retrying", message)  # noqa: TRY400
        state.state, state.error, state.since = "error", message, time.time()
        return None
    return _serving(state, listeners)


def _serving(
    state: LocalIndexState, listeners: list[trio.SocketListener]
) -> list[trio.SocketListener]:
    bound = listeners[0].socket.getsockname()[1]
    state.state, state.port, state.error, state.since = "serving", bound, None, time.time()
    log.info("local index serving on http://%s:%d/simple/", HOST, bound)
    return listeners


async def _sleep_or_port_change(rt: Runtime, port: int | None, delay: float) -> None:
    with trio.move_on_after(delay):
        # Polled: config.toml reloads have no subscription hook, and a 1 s poll is free.
        while configured_port(rt.config) == port:  # noqa: ASYNC110
            await trio.sleep(min(CONFIG_POLL, delay))


async def _cancel_on_port_change(rt: Runtime, port: int | None, scope: trio.CancelScope) -> None:
    while configured_port(rt.config) == port:  # noqa: ASYNC110 (polled, as above)
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
