"""An in-process daemon runtime with its `Warmer`, for the watch/refresh/ready/GC tests.

`running_warmer(directory, index_url, ...)` builds what `runtime._run` builds (real store and
metadb on disk, real `Upstream` over HTTP, live config, catalog) and starts `keep_warm` in the
test's trio run, so a test can drive the background tasks on real sockets while controlling
their timing (`Timing`) and the upstream's offline cool-down (`Limits`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import trio

from satchel.daemon.indexes.catalog import Catalog
from satchel.daemon.requests.runtime import Runtime
from satchel.daemon.services.refresh import Timing, Warmer, keep_warm
from satchel.daemon.settings.liveconfig import LiveConfig
from satchel.daemon.storage.store import open_cache
from satchel.daemon.upstream.client import Upstream
from satchel.daemon.upstream.limits import Limits
from tests.support.daemon import in_process_app

__all__ = ["FAST_LIMITS", "running_warmer"]

#: An upstream that gives up on a dead index at once and probes it again after 0.6 s.
FAST_LIMITS = Limits(attempts=1, backoff=0.01, connect_timeout=1.0, offline_cooldown=0.6)


@asynccontextmanager
async def running_warmer(
    directory: Path,
    index_url: str,
    *,
    settings: str = "",
    timing: Timing | None = None,
    limits: Limits | None = None,
) -> AsyncIterator[Warmer]:
    """A runtime whose only index is *index_url*, with the Warmer running; cancelled on exit."""
    app = in_process_app(directory)
    config = app.paths.config_dir / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(f'[[index]]\nname = "loop"\nurl = "{index_url}"\n\n[settings]\n{settings}')
    store, metadb, _recovery = await trio.to_thread.run_sync(open_cache, app.paths.cache_dir)
    try:
        async with (
            Upstream(limits=limits or FAST_LIMITS) as upstream,
            trio.open_nursery() as nursery,
        ):
            rt = Runtime(store=store, metadb=metadb, upstream=upstream, live=LiveConfig(config))
            rt.interpreters_dir = app.paths.cache_dir / "interpreters"
            rt.refresh_config()
            rt.catalog = Catalog(upstream, store, metadb, nursery, lambda: rt.config)
            app.services.runtime = rt
            app.services.runtime_ready.set()
            warm: Warmer = await nursery.start(keep_warm, app, rt, timing or Timing())
            yield warm
            nursery.cancel_scope.cancel()
    finally:
        metadb.close()
