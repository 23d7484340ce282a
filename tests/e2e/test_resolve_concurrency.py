"""Issue 3, end to end: a large resolve neither blocks the daemon nor waits on the network one
project at a time.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.twoindexes import World, open_world
from tests.support.daemon import HANG_GUARD, call
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


def test_the_daemon_answers_while_a_large_resolve_runs(world: World) -> None:
    """Pings on another connection are answered while a resolve is provably under way (its
    index answers are held), and it then completes. That resolvelib itself runs off the event
    loop is checked, also without a clock, by tests/daemon/test_resolver_thread.py."""
    _tree(world, 10, 9)  # 1 + 10 + 90 = 101 packages
    world.ok("ping")
    world.internal.reset_log()
    world.internal.gate.clear()  # every answer of the index waits: the resolve cannot end
    resolve = world.env.spawn("resolve", "--format", "json", "tree-root")
    try:
        while not world.internal.requests:  # the resolve has asked the index: it is running
            assert resolve.poll() is None, resolve.communicate()
            time.sleep(0.01)  # polling the index's log: there is no event to wait on
        pid = world.env.daemon_pid()
        for _ in range(20):
            assert call(str(world.env.socket), "ping") == {"pid": pid}
        assert resolve.poll() is None  # still waiting on the index it asked
    finally:
        world.internal.gate.set()
    out, err = resolve.communicate(timeout=120)
    assert resolve.returncode == 0, err
    assert len(json.loads(out)["pins"]) == 101


def test_cold_resolve_fetches_metadata_ahead_of_the_resolver(world: World) -> None:
    """24 dependencies: while the index holds every answer about them, the daemon has already
    asked it about at least 4 (one at a time, it would wait for the first answer)."""
    dist = world.root / "dist" / "fan"
    leaves = [f"fan-leaf-{n}" for n in range(24)]
    world.internal.add(build_wheel(dist, "fan-root", "1.0", requires=leaves))
    for leaf in leaves:
        world.internal.add(build_wheel(dist, leaf, "1.0"))
    world.ok("ping")
    world.internal.reset_log()
    world.internal.held = lambda path: "fan-leaf" in path or "fan_leaf" in path
    world.internal.gate.clear()

    def asked() -> set[str]:  # distinct: a retry of one request is not a second
        return {p for p in world.internal.requests if world.internal.held(p)}

    resolve = world.env.spawn("resolve", "--format", "json", "fan-root")
    try:
        deadline = time.monotonic() + HANG_GUARD  # a hang guard, not a measurement
        while len(asked()) < 4:  # none of them answered yet
            assert time.monotonic() < deadline, f"asked one at a time: {asked()}"
            time.sleep(0.01)  # polling the index's log: there is no event to wait on
    finally:
        world.internal.gate.set()
    out, err = resolve.communicate(timeout=120)
    assert resolve.returncode == 0, err
    assert len(json.loads(out)["pins"]) == 25
    metadata = [p for p in world.internal.requests if p.endswith(".metadata")]
    assert len(metadata) == 25
