"""resolvelib is synchronous: the daemon runs it in a worker thread, off the event loop.

Checked without a clock: the resolver is held, mid-request, on an event only a task of the
event loop sets. Were it run on the loop, that task could never run (and the hop back to trio
that announces the hold would be refused): the request would never end.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
import trio

from satchel.daemon.requests import resolution
from satchel.daemon.requests.resolution import read_inputs, resolve_request, target_for
from satchel.protocol.methods.resolve import ResolveParams
from tests.support.daemon import HANG_GUARD
from tests.support.index_server import IndexServer
from tests.support.warm import running_warmer
from tests.support.wheels import build_wheel


async def test_the_event_loop_runs_while_the_resolver_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    build_wheel(tmp_path / "dist", "app", "1.0", requires=["lib"])
    build_wheel(tmp_path / "dist", "lib", "1.0")
    inside, release = trio.Event(), threading.Event()
    threads: list[threading.Thread] = []
    resolve = resolution.resolve

    def held(*args: Any, **kwargs: Any) -> Any:
        threads.append(threading.current_thread())
        trio.from_thread.run_sync(inside.set)  # refused on the event loop's own thread
        assert release.wait(HANG_GUARD), "the event loop never ran while the resolver was held"
        return resolve(*args, **kwargs)

    monkeypatch.setattr(resolution, "resolve", held)
    params = ResolveParams(requirements=["app"])
    with IndexServer(tmp_path / "dist") as index:
        async with running_warmer(tmp_path / "d", index.url) as warm:
            rt = warm.rt
            target = await target_for(rt, params)
            inputs = await read_inputs(params)
            outcomes: list[resolution.Outcome] = []

            async def request() -> None:
                outcomes.append(await resolve_request(rt, params, inputs, target))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(request)
                await inside.wait()
                # The loop serves while the resolver holds its thread: a page fetch, then the
                # release itself, both from this task.
                assert await rt.catalog.fetch_page(rt.config.indexes[0], "lib") is not None
                release.set()
    assert threads and threads[0] is not threading.main_thread()
    assert sorted(pin.name for pin in outcomes[0].resolution.pins) == ["app", "lib"]
