"""Issue 3, end to end: a large resolve neither blocks the daemon nor waits on the network one
project at a time.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.twoindexes import World, open_world
from tests.support.daemon import Client
from tests.support.wheels import build_wheel


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with open_world(tmp_path) as w:
        yield w


# -- scenario 9: the daemon answers while a large resolve runs ------------------------------------


def _tree(world: World, mids: int, leaves: int) -> None:
    dist = world.root / "dist" / "tree"
    mid_names = [f"mid-{m}" for m in range(mids)]
    world.internal.add(build_wheel(dist, "tree-root", "1.0", requires=mid_names))
    for m, mid in enumerate(mid_names):
        leaf_names = [f"leaf-{m}-{n}" for n in range(leaves)]
        world.internal.add(build_wheel(dist, mid, "1.0", requires=leaf_names))
        for leaf in leaf_names:
            # Two versions each, so the resolver has choices to make.
            world.internal.add(build_wheel(dist, leaf, "1.0"))
            world.internal.add(build_wheel(dist, leaf, "1.1"))


def test_ping_stays_fast_while_a_large_resolve_runs(world: World) -> None:
    _tree(world, 10, 9)  # 1 + 10 + 90 = 101 packages
    world.internal.delay = 0.005  # a resolve long enough to ping through, on loopback
    world.ok("ping")
    rtts: list[float] = []
    done = threading.Event()

    def ping_loop() -> None:
        with Client(world.env.socket.as_posix()) as client:
            assert client.hello()["type"] == "welcome"
            while not done.is_set():
                started = time.perf_counter()
                reply = client.wait_terminal(client.request("ping"), timeout=5)
                rtts.append(time.perf_counter() - started)
                assert reply["type"] == "result"
                time.sleep(0.01)

    pinger = threading.Thread(target=ping_loop)
    pinger.start()
    try:
        started = time.perf_counter()
        result = world.ok("resolve", "--format", "json", "tree-root", timeout=60)
        elapsed = time.perf_counter() - started
    finally:
        done.set()
        pinger.join(10)

    assert len(json.loads(result.stdout)["pins"]) == 101
    assert len(rtts) >= 10, f"the resolve ({elapsed:.2f} s) was too quick to ping through"
    # A loop blocked by the resolver would hold every ping for as long as it is blocked, a
    # large share of the resolve. Compared with the resolve itself, not with a fixed number of
    # milliseconds, so a loaded machine (which slows both alike) does not fail it.
    assert max(rtts) < elapsed / 4, (
        f"a ping waited {max(rtts):.2f} s of a {elapsed:.2f} s resolve (of {len(rtts)} pings)"
    )


def test_cold_resolve_fetches_metadata_ahead_of_the_resolver(world: World) -> None:
    """24 dependencies on an index answering in 100 ms: one at a time would take 2.4 s."""
    dist = world.root / "dist" / "fan"
    leaves = [f"fan-leaf-{n}" for n in range(24)]
    world.internal.add(build_wheel(dist, "fan-root", "1.0", requires=leaves))
    for leaf in leaves:
        world.internal.add(build_wheel(dist, leaf, "1.0"))
    world.ok("ping")
    world.internal.delay = 0.1
    world.internal.max_in_flight = 0

    pins = world.pins("fan-root")

    assert len(pins) == 25
    metadata = [p for p in world.internal.requests if p.endswith(".metadata")]
    assert len(metadata) == 25
    # Each answer takes 0.1 s: one at a time, the index never answers two at once.
    assert world.internal.max_in_flight >= 4, "metadata fetched one at a time"
