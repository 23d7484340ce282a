"""The daemon's long-lived services, started before it serves and stopped after it drains.

One task owns them all (`run_runtime`), so their lifetime is a single nursery scope:

    open the cache (sweep crash debris, reconcile the metadb with the blobs present)
      -> load config.toml (a broken file: empty configuration, error shown by `status`)
      -> effective indexes: config.toml's, else adopted from pip/uv, else pip's default
      -> upstream HTTP client, catalog (shared downloads, look-ahead), metadata cache
      -> READY; then watch config.toml and apply each good edit live

The effective configuration is computed once per configuration change, not per request:
adoption reads pip's and uv's files and may ask pip for its default index.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec
import trio

from satchel.daemon.candidates import MetadataCache
from satchel.daemon.catalog import Catalog
from satchel.daemon.config import Config, LiveConfig
from satchel.daemon.credentials import redact
from satchel.daemon.errors import ConfigError, SatchelError
from satchel.daemon.indexes import effective_indexes
from satchel.daemon.localindex import serve_local_index
from satchel.daemon.metadb import MetaDB
from satchel.daemon.pending import pending_dir, recover_pending
from satchel.daemon.store import BlobStore, open_cache
from satchel.daemon.upstream import Limits, Upstream
from satchel.daemon.wheel import sweep_temporaries

if TYPE_CHECKING:
    from satchel.daemon.app import App

__all__ = ["CONFIG_NAME", "Runtime", "run_runtime", "runtime"]

log = logging.getLogger(__name__)

CONFIG_NAME = "config.toml"


@dataclass
class Runtime:
    """What requests beyond ping/status need; reached through `runtime(app)`."""

    store: BlobStore
    metadb: MetaDB
    upstream: Upstream
    live: LiveConfig
    catalog: Catalog = field(init=False)
    #: Parsed metadata shared by every resolve (see `candidates.MetadataCache`).
    metadata_cache: MetadataCache = field(default_factory=MetadataCache)
    #: config.toml with its indexes replaced by the effective ones (adopted if it lists none).
    config: Config = field(default_factory=Config)
    #: Where interpreter descriptions are cached on disk.
    interpreters_dir: Path = Path()

    def refresh_config(self) -> None:
        """Recompute the effective configuration from the current config.toml."""
        base = self.live.config
        indexes = effective_indexes(base)
        self.config = msgspec.structs.replace(base, indexes=indexes)
        for index in indexes:
            log.info("index %s: %s (%s)", index.name, redact(index.url), index.source)
        if not indexes:
            log.warning("no index configured or adoptable: only the cache can answer")


async def runtime(app: App) -> Runtime:
    """The running daemon's services, once started (requests arriving early wait here)."""
    services = app.services
    await services.runtime_ready.wait()
    if services.runtime is None:
        raise SatchelError(
            f"the daemon could not open its cache: {services.runtime_error}; see the daemon log"
        )
    return services.runtime


async def run_runtime(app: App) -> None:
    """Start the services, then keep config.toml watched until cancelled.

    A failure to start (unreadable cache directory, corrupt database) is logged and reported to
    every request that needs the runtime, while `ping`, `status` and `stop` keep working.
    """
    try:
        await _run(app)
    except SatchelError as exc:
        log.error("cannot start the cache and index services: %s", exc)  # noqa: TRY400
        app.services.runtime_error = str(exc)
    except OSError as exc:
        log.error("cannot start the cache and index services: %s", exc)  # noqa: TRY400
        app.services.runtime_error = f"{exc.strerror}: {exc.filename}"
    finally:
        app.services.runtime = None
        app.services.runtime_ready.set()


async def _run(app: App) -> None:
    cache_dir = app.paths.cache_dir
    store, metadb, recovery = await trio.to_thread.run_sync(open_cache, cache_dir)
    if recovery.swept or recovery.rows_added or recovery.rows_dropped:
        log.info("cache recovery after an unclean stop: %s", recovery)
    # Unpacks killed mid-way leave staging directories; safe to sweep only now, under the
    # daemon's single-instance lock and before any unpack can run.
    unpack_debris = await trio.to_thread.run_sync(sweep_temporaries, store.unpacked_dir)
    if unpack_debris:
        log.info("removed %d interrupted wheel unpack(s)", unpack_debris)
    # Environments a killed daemon was installing into hold a journal: replay it now, so the
    # user sees the old state again rather than a half-applied one until the next install.
    await trio.to_thread.run_sync(recover_pending, pending_dir(store.root))
    config_path = app.paths.config_dir / CONFIG_NAME

    def on_error(exc: ConfigError) -> None:
        app.config_error = str(exc)

    live = LiveConfig(config_path, on_error=on_error)
    limits = Limits.from_environ(os.environ)
    async with Upstream(limits=limits) as upstream, trio.open_nursery() as nursery:
        rt = Runtime(store=store, metadb=metadb, upstream=upstream, live=live)
        rt.interpreters_dir = cache_dir / "interpreters"
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
        await nursery.start(serve_local_index, app, rt)
        from satchel.daemon.refresh import keep_warm  # imports this module: not at the top

        await nursery.start(keep_warm, app, rt)
        app.services.runtime_ready.set()
        try:
            await trio.sleep_forever()
        finally:
            metadb.close()
