"""The local simple index: Satchel's cache as an HTTP index on 127.0.0.1 for pip, uv and the rest.

pip, uv, poetry and pdm cannot speak the daemon's Unix socket, and uv keys its offline cache by
index URL; one stable loopback URL that works online and offline gives them Satchel's cache and
its index scoping. Modules, one job each:

* `http`: an HTTP/1.1 server on trio over h11 (limits, timeouts, keep-alive, file streaming);
* `pages`: PEP 503/691 documents and content negotiation (pure);
* `pagememo`: rendered pages kept between requests, within a short revalidation window;
* `filememo`: which stored files may be served, and their metadata, kept while nothing moved;
* `auth`: the per-user token file and the basic-auth check;
* `peer`: the uid of a loopback peer, from the kernel (token-less access for the owner);
* `service`: the routes, over the daemon's catalog and store.

`serve_local_index` is started by the runtime once the catalog exists. Failing to listen (the
port is taken) never stops the daemon: the error is logged, shown by `localindex.info`, and the
bind is retried with backoff, so the index appears once the port frees up. A change of
``local-index-port`` in config.toml moves the listener without a restart.

The port is per user: several users of one host each run a daemon, and a fixed port would give
the index to whoever started first. Unless configured, the first start tries `user_port` (one
port per uid) and the next few after it, and remembers the one it bound in the state directory,
so the URL survives restarts (uv keys its offline cache by index URL; people paste it into
config files).
"""

from __future__ import annotations

import functools
import logging
import os
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import trio

from satchel.daemon.fsutil import atomic_write
from satchel.daemon.localindex.auth import TOKEN_FILE, load_or_create_token
from satchel.daemon.localindex.http import LISTEN_BACKLOG, HttpServer
from satchel.daemon.localindex.peer import peer_is_owner, supported
from satchel.daemon.localindex.service import LocalIndex

if TYPE_CHECKING:
    from satchel.daemon.app import App
    from satchel.daemon.runtime import Runtime

__all__ = [
    "HOST",
    "LocalIndexState",
    "default_port",
    "local_index_state",
    "serve_local_index",
    "user_port",
]

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
#: Per-user default ports: ``PORT_BASE + uid % PORT_SPAN``. The range [20000, 30000) is
#: unprivileged, holds nothing a Python developer commonly runs (devpi 3141, proxpi 5000, dev
#: servers 8000/8080), and lies below every OS's ephemeral range (Linux from 32768, Windows and
#: macOS from 49152), so an outgoing connection never holds one by chance. Two users share a
#: candidate only when their uids differ by a multiple of 10,000; then the later one probes on.
PORT_BASE = 20000
PORT_SPAN = 10000
#: How many ports after `user_port` a first start tries before it reports the first as taken.
PORT_PROBES = 16
#: The port a first start bound, remembered (state directory) so every later start asks for it.
PORT_FILE = "local-index-port"
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
    #: user (`peer`: Linux), so tools can be given a URL without a secret in it.
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


#: The port used when config.toml sets none (before the per-user default). Test suites set it
#: to 0, so that their daemons never take the port a user's real daemon serves on.
PORT_ENV = "SATCHEL_LOCAL_INDEX_PORT"


def user_port(uid: int | None = None) -> int:
    """The first port a daemon of *uid* (default: ours) tries when none is configured."""
    return PORT_BASE + (os.getuid() if uid is None else uid) % PORT_SPAN


def configured_port(rt: Runtime) -> int | None:
    """The port config.toml (or else the daemon's environment) asks for; None: the default."""
    port = rt.config.settings.local_index_port
    if port is not None:
        return port
    fallback = os.environ.get(PORT_ENV, "")
    if fallback.isdigit() and int(fallback) < 65536:
        return int(fallback)
    return None


def default_port(state_dir: Path, *, env: bool = False) -> int:
    """The port the local index asks for when config.toml names none (with *env*, the
    daemon's `PORT_ENV` first): the one remembered from the first start, else `user_port`."""
    fallback = os.environ.get(PORT_ENV, "") if env else ""
    if fallback.isdigit() and int(fallback) < 65536:
        return int(fallback)
    remembered = _remembered_port(state_dir)
    return user_port() if remembered is None else remembered


def _remembered_port(state_dir: Path) -> int | None:
    try:
        text = (state_dir / PORT_FILE).read_text("ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() and 0 < int(text) < 65536 else None


async def serve_local_index(
    app: App, rt: Runtime, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    """Serve the local index until cancelled; never raises for a bind or token problem."""
    state = LocalIndexState(since=time.time(), peer_auth=supported())
    _STATES[app] = state
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
    port = configured_port(rt)
    listeners = await _bind_wanted(state, port, state_dir)
    task_status.started()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_flush_used, rt, service)
        delay = RETRY_FIRST
        while True:
            if listeners is None:
                await _sleep_or_port_change(rt, port, delay)
                delay = min(delay * 2, RETRY_MAX)
                port = configured_port(rt)
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
            port = configured_port(rt)
            listeners = await _bind_wanted(state, port, state_dir)


async def _bind_wanted(
    state: LocalIndexState, port: int | None, state_dir: Path
) -> list[trio.SocketListener] | None:
    """Bind the configured *port*, else the remembered one, else the first free per-user one
    (remembered from then on)."""
    if port is not None:
        return await _bind(state, port)
    remembered = await trio.to_thread.run_sync(_remembered_port, state_dir)
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
        while configured_port(rt) == port:  # noqa: ASYNC110
            await trio.sleep(min(CONFIG_POLL, delay))


async def _cancel_on_port_change(rt: Runtime, port: int | None, scope: trio.CancelScope) -> None:
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
