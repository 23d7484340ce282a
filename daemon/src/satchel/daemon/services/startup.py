"""The daemon's long-lived services, started before it serves and stopped after it drains.

One task owns them all (`run_runtime`), so their lifetime is a single nursery scope:

    check the metadata database (a damaged one is moved aside and rebuilt from the store)
      -> open the cache (sweep crash debris, reconcile the metadb with the blobs present)
      -> no config.toml, and none ever in use (`CONFIG_IN_USE`): adopt pip's/uv's indexes
         ONCE and write them to it (`satchel.daemon.settings.indexset.adopt_once`); an
         existing file is never touched, and a missing one that was in use is an error
      -> load config.toml (a broken file: no index set at all; every command that needs one
         fails with the file's error, naming the line, until the file is fixed)
      -> upstream HTTP client, catalog (shared downloads, look-ahead), metadata cache
      -> the front ends handed in (the local index), the background refresh
      -> READY; then watch config.toml and apply each good edit live (a broken edit keeps the
         last good configuration, and `status` / `index list` show the error)

The index set is config.toml's, never the environment the daemon was started from.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import trio

from satchel.daemon.errors import ConfigError, SatchelError
from satchel.daemon.indexes.catalog import Catalog
from satchel.daemon.indexes.dbrecovery import backfill_provenance, recover
from satchel.daemon.indexes.origins import index_identity
from satchel.daemon.installing.installer import recover_all
from satchel.daemon.installing.journal import journal_dir
from satchel.daemon.installing.wheel import sweep_temporaries
from satchel.daemon.requests import buildenv
from satchel.daemon.requests.runtime import Runtime
from satchel.daemon.services.daemon import App
from satchel.daemon.services.refresh import keep_warm
from satchel.daemon.settings.config import Config, load_config
from satchel.daemon.settings.credbinding import FILENAME as CREDENTIALS_FILE
from satchel.daemon.settings.credbinding import CredentialBindings
from satchel.daemon.settings.indexset import OwnIndex, adopt_once
from satchel.daemon.settings.liveconfig import LiveConfig
from satchel.daemon.settings.ownindex import default_port, load_or_create_token
from satchel.daemon.storage.store import open_cache
from satchel.daemon.upstream.client import Upstream
from satchel.daemon.upstream.limits import Limits

__all__ = ["CONFIG_NAME", "FrontEnd", "run_runtime"]

log = logging.getLogger(__name__)

CONFIG_NAME = "config.toml"
#: In the state directory: a config.toml was in use, so a missing one is not a first start.
CONFIG_IN_USE = "config-in-use"

#: A service started beside the runtime once it exists (``nursery.start(front_end, app, rt)``).
FrontEnd = Callable[..., Awaitable[Any]]


async def run_runtime(app: App, front_ends: Sequence[FrontEnd] = ()) -> None:
    """Start the services, then keep config.toml watched until cancelled.

    Each of *front_ends* (the local index: `satchel.daemon.process.app.serve` hands it over,
    this layer never imports it) is started with the app and the runtime once the catalog
    exists, and runs until the runtime stops.

    A failure to start (unreadable cache directory, corrupt database) is logged and reported to
    every request that needs the runtime, while `ping`, `status` and `stop` keep working.
    """
    try:
        await _run(app, front_ends)
    except SatchelError as exc:
        log.error("cannot start the cache and index services: %s", exc)  # noqa: TRY400
        app.services.runtime_error = str(exc)
    except OSError as exc:
        log.error("cannot start the cache and index services: %s", exc)  # noqa: TRY400
        app.services.runtime_error = f"{exc.strerror}: {exc.filename}"
    finally:
        app.services.runtime = None
        app.services.runtime_ready.set()


def _known_indexes(config_path: Path) -> dict[str, str]:
    """Configured index name -> identity, for a rebuild's records that name no URL (an
    unreadable config.toml gives none: those projects are then not guessed, see `dbrecovery`)."""
    try:
        config = load_config(config_path)
    except ConfigError:
        return {}
    return {index.name: index_identity(index.url) for index in config.indexes}


async def _run(app: App, front_ends: Sequence[FrontEnd]) -> None:
    cache_dir = app.paths.cache_dir
    config_path = app.paths.config_dir / CONFIG_NAME
    rebuilt = await trio.to_thread.run_sync(recover, cache_dir, _known_indexes(config_path))
    if rebuilt is not None:
        app.services.repaired = rebuilt.describe()
    store, metadb, recovery = await trio.to_thread.run_sync(open_cache, cache_dir)
    if recovery.swept or recovery.rows_added or recovery.rows_dropped:
        log.info("cache recovery after an unclean stop: %s", recovery)
    await trio.to_thread.run_sync(backfill_provenance, store, metadb)
    # Unpacks killed mid-way leave staging directories; safe to sweep only now, under the
    # daemon's single-instance lock and before any unpack can run.
    unpack_debris = await trio.to_thread.run_sync(sweep_temporaries, store.unpacked_dir)
    if unpack_debris:
        log.info("removed %d interrupted wheel unpack(s)", unpack_debris)
    # Environments a killed daemon was installing into have a journal: replay it now, so the
    # user sees the old state again rather than a half-applied one until the next install.
    await trio.to_thread.run_sync(recover_all, journal_dir(store.root))

    def on_error(exc: ConfigError) -> None:
        app.config_error = str(exc)

    try:
        token: str | None = await trio.to_thread.run_sync(load_or_create_token, app.paths.state_dir)
    except OSError:
        token = None  # the local index reports it; its port still identifies it
    own = OwnIndex(frozenset({default_port(app.paths.state_dir, env=True)}), token)
    in_use = app.paths.state_dir / CONFIG_IN_USE
    decided = await trio.to_thread.run_sync(in_use.exists)
    adopted = await trio.to_thread.run_sync(
        functools.partial(adopt_once, config_path, own, decided=decided)
    )

    def own_check(url: str, port: int | None) -> bool:
        # Once running, with the port the local index is actually bound to as well.
        rt = app.services.runtime
        return (rt.own() if rt is not None else own).matches(url, port)

    live = LiveConfig(config_path, on_error=on_error, own=own_check, marker=in_use)
    limits = Limits.from_environ(os.environ)
    async with Upstream(limits=limits) as upstream, trio.open_nursery() as nursery:
        upstream.credential_bindings = CredentialBindings(app.paths.state_dir / CREDENTIALS_FILE)
        rt = Runtime(store=store, metadb=metadb, upstream=upstream, live=live)
        rt.build_requirements = buildenv.provide
        rt.interpreters_dir = cache_dir / "interpreters"
        rt.own_index, rt.notes, rt.no_index_set = own, adopted.notes, adopted.nothing
        await trio.to_thread.run_sync(rt.refresh_config)
        rt.catalog = Catalog(upstream, store, metadb, nursery, lambda: rt.config)
        rt.catalog.metadata_listeners.append(rt.metadata_cache.forget_metadata)
        app.services.runtime = rt

        async def on_change(_config: Config) -> None:
            app.config_error = None
            old = {index.name: index for index in rt.config.indexes}
            await trio.to_thread.run_sync(rt.refresh_config)
            for index in rt.config.indexes:
                if old.get(index.name) != index:
                    upstream.reset(index.name)
            log.info("configuration reloaded from %s", config_path)

        await nursery.start(live.watch, on_change)
        for front_end in front_ends:
            await nursery.start(front_end, app, rt)
        await nursery.start(keep_warm, app, rt)
        app.services.runtime_ready.set()
        try:
            await trio.sleep_forever()
        finally:
            metadb.close()
