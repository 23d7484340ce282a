"""satchel.daemon.storage.memory: the malloc arena cap, checked in real processes with real
threads; enormous objects freed by `reap`, off the event loop, in pieces."""

from __future__ import annotations

import gc
import math
import os
import subprocess
import sys
import threading
import weakref

import pytest
import trio
import trio.testing
from packaging.version import Version

from satchel.daemon.resolver.candidates import MAX_CACHED_PROJECT_FILES, ProjectFiles
from satchel.daemon.storage import memory
from satchel.daemon.storage.model import FileEntry, ProjectPage

try:
    _GLIBC = (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc")
except (ValueError, OSError):
    _GLIBC = False

needs_glibc = pytest.mark.skipif(not _GLIBC, reason="malloc arenas are glibc's")

# Eight threads allocate at once (each new thread gets an arena of its own when it can), then
# glibc's malloc_stats() prints one "Arena N:" block per arena to stderr.
_PROBE = """
import ctypes, sys, threading
from satchel.daemon.storage.memory import limit_malloc_arenas
if sys.argv[1] == "cap":
    assert limit_malloc_arenas()
barrier = threading.Barrier(8)
held = []
def work():
    barrier.wait()
    held.append([bytes(600) * 2 for _ in range(200)])
    barrier.wait()
threads = [threading.Thread(target=work) for _ in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
sys.stderr.flush()
ctypes.CDLL(None).malloc_stats()
"""


def _arenas(mode: str) -> int:
    env = {k: v for k, v in os.environ.items() if k != memory.ARENA_MAX_ENV}
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, mode],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return sum(1 for line in proc.stderr.splitlines() if line.startswith("Arena "))


@needs_glibc
def test_threads_share_at_most_the_capped_arenas() -> None:
    assert 1 <= _arenas("cap") <= memory.ARENA_MAX


@needs_glibc
def test_without_the_cap_threads_take_arenas_of_their_own() -> None:
    # The control: proves the probe can see more arenas than the cap allows.
    assert _arenas("none") > memory.ARENA_MAX


def test_a_user_setting_in_the_environment_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(memory.ARENA_MAX_ENV, "4")
    assert memory.limit_malloc_arenas() is False


def test_the_daemon_caps_arenas_before_anything_else() -> None:
    # Started through main(): a daemon launched any way (autostart, systemd, by hand) has it.
    probe = (
        "import sys\n"
        "from unittest import mock\n"
        "from satchel.daemon.process import main as m\n"
        "calls = []\n"
        "with mock.patch.object(m, 'limit_malloc_arenas', lambda: calls.append(1) or True):\n"
        "    try:\n"
        "        m.main(['--version'])\n"
        "    except SystemExit:\n"
        "        pass\n"
        "sys.exit(0 if calls == [1] else 1)\n"
    )
    subprocess.run([sys.executable, "-c", probe], timeout=30, check=True, capture_output=True)


# Runs `use_system_allocator` (which re-executes the process once), then reports what a
# process sees: its pid across the re-execution, which allocator holds its objects (pymalloc's
# statistics name its "Small block threshold"), and the environment its own children get.
_ALLOCATOR_PROBE = """
import os, subprocess, sys
print("start", os.getpid(), flush=True)
from satchel.daemon.storage.memory import use_system_allocator
use_system_allocator()
read, write = os.pipe()
saved = os.dup(2)
os.dup2(write, 2)
sys._debugmallocstats()
os.dup2(saved, 2)
os.close(write)
stats = os.read(read, 1 << 20).decode()
names = ('PYTHONMALLOC', 'SATCHEL_DAEMON_ALLOCATOR')
seen = f"import os; print([k for k in {names!r} if k in os.environ])"
child = subprocess.run(
    [sys.executable, "-c", seen], capture_output=True, text=True, check=True
).stdout.strip()
print("pymalloc" if "Small block threshold" in stats else "malloc", os.getpid(), child)
"""


def _allocator_probe(**env: str) -> list[str]:
    environ = {k: v for k, v in os.environ.items() if k != memory.ALLOCATOR_ENV} | env
    proc = subprocess.run(
        [sys.executable, "-c", _ALLOCATOR_PROBE],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return proc.stdout.splitlines()


@needs_glibc
def test_the_daemon_holds_its_objects_in_malloc_so_freed_memory_can_go_back() -> None:
    """issue 11.6: objects from glibc's malloc (not pymalloc's arenas, which a few survivors
    pin), chosen by one re-execution of the same process, and not passed on to children."""
    lines = _allocator_probe()
    assert len(lines) == 3, lines  # started twice (the re-execution), reported once
    first, second, report = lines
    assert first == second  # the same process: a service manager or autostart sees one pid
    allocator, pid, child_environment = report.split(" ", 2)
    assert allocator == "malloc"
    assert first == f"start {pid}"
    assert child_environment == "[]"  # build backends and parsers get Python's default


def test_a_users_allocator_choice_wins() -> None:
    lines = _allocator_probe(PYTHONMALLOC="pymalloc")
    assert len(lines) == 2, lines  # not re-executed
    assert lines[1].split(" ")[0] == "pymalloc"


class _Item:
    """A weakly referable stand-in for a page entry."""


def test_a_held_object_is_freed_by_reap_not_where_its_last_user_lets_go() -> None:
    """issue 11.6: the 90,000 entries of a huge page are freed in a worker thread, in pieces,
    not in one pause on the event loop when the request that read it ends."""
    items = tuple(_Item() for _ in range(3 * memory.DISMANTLE_STEP + 7))
    probes = [weakref.ref(items[0]), weakref.ref(items[-1])]
    memory.hold_huge(items, memory.dismantle_tuple)
    before = memory.holding()
    assert memory.reap() == 0, "taken apart while still in use"
    del items  # the request lets go: nothing is freed here
    assert all(probe() is not None for probe in probes)
    assert memory.reap() == 1
    assert all(probe() is None for probe in probes)
    assert memory.holding() == before - 1


def test_no_full_collection_walks_held_objects(monkeypatch: pytest.MonkeyPatch) -> None:
    """The versions a huge page is grouped into are built in a burst, frozen (no collection
    walks them), and freed by `reap`: while they are held, the settler makes no full collection
    (it would walk them all, for nothing: 50-120 ms holding the GIL, issue 11.6)."""
    collections: list[int] = []
    monkeypatch.setattr(memory, "freeze_survivors", lambda: collections.append(memory.holding()))
    monkeypatch.setattr(memory, "release_free_memory", lambda: False)
    with memory.long_lived_burst():
        versions = [[_Item()] for _ in range(10_000)]
        probe = weakref.ref(versions[0][0])
        memory.hold_huge(versions, memory.dismantle_sequence)
    assert gc.isenabled()
    memory._settle()  # held and in use: neither freed nor walked
    assert probe() is not None and collections == []
    del versions
    memory._settle()  # reaped first; the collection that was due then walks none of it
    assert probe() is None
    assert all(held == 0 for held in collections)


def test_frozen_garbage_is_not_collected_in_the_round_a_burst_ends_in(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The settling round at 0 s runs while the request whose burst just ended goes on (a
    prefetch downloading after its resolve): a collection due then waits for the round at
    `COLLECT_FROM` (issue 15), and happens there. The round at 0 s does not even count the
    frozen objects (the count walks them all)."""
    collections: list[bool] = []
    counted: list[int] = []
    count = gc.get_freeze_count
    monkeypatch.setattr(memory, "freeze_survivors", lambda: collections.append(True))
    monkeypatch.setattr(memory, "release_free_memory", lambda: False)
    monkeypatch.setattr(gc, "get_freeze_count", lambda: counted.append(count()) or counted[-1])
    with memory.long_lived_burst():
        kept = [[_Item()] for _ in range(100)]
    monkeypatch.setattr(memory, "_settled_frozen", 0)  # the burst made a collection due
    memory._settle(collect=False)
    assert collections == [] and counted == []
    memory._settle(collect=True)
    assert collections == [True] and len(counted) == 1
    assert len(kept) == 100


def test_the_settler_collects_only_from_the_round_at_collect_from(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each round of `settle_memory` after a burst ends says whether it may collect: not at
    0 s, from `COLLECT_FROM` on."""
    rounds: list[bool] = []
    all_rounds = trio.Event()

    def settle(collect: bool) -> None:  # in the settler's worker thread, as `_settle` runs
        rounds.append(collect)
        if len(rounds) == len(memory.SETTLE_AFTER):
            trio.from_thread.run_sync(all_rounds.set)

    monkeypatch.setattr(memory, "_settle", settle)

    async def scenario() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(memory.settle_memory)
            await trio.sleep(1)  # it is waiting to be woken
            with memory.long_lived_burst():
                pass  # its end wakes the settler
            # Woken by the last round itself, not after a count of mock seconds: the clock
            # jumps while a worker thread runs, however long a loaded machine makes it take.
            await all_rounds.wait()
            nursery.cancel_scope.cancel()

    trio.run(scenario, clock=trio.testing.MockClock(autojump_threshold=0))
    assert memory.SETTLE_AFTER[0] < memory.COLLECT_FROM
    assert rounds == [delay >= memory.COLLECT_FROM for delay in memory.SETTLE_AFTER]
    assert rounds[0] is False and any(rounds)


def test_a_huge_projects_versions_are_held_and_taken_apart_once_unused() -> None:
    """The resolver's grouping of a page over `HUGE_ITEMS` files goes to `reap`."""
    count = max(MAX_CACHED_PROJECT_FILES, memory.HUGE_ITEMS) + 1
    files = tuple(
        FileEntry(filename=f"demo-0.{i}-py3-none-any.whl", url=f"http://127.0.0.1:1/{i}.whl")
        for i in range(count)
    )
    page = ProjectPage(index="test", project="demo", url="http://127.0.0.1:1/demo/", files=files)
    before = memory.holding()
    grouped = ProjectFiles("demo", [page], {}, Version("3.11"), allow_sdists=False)
    assert len(grouped.versions) == count
    assert memory.holding() == before + 1
    versions = grouped.versions  # a look at what it holds, not a use of it
    del grouped
    assert len(versions) == count
    assert memory.reap() == 1
    assert versions == [], "its versions were not freed"


def test_an_object_still_in_use_is_freed_when_a_later_request_ends(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A request may hold a huge page longer than the settler's rounds (a slow client, a
    download): once a later request ends (`wake_settler`), the settler looks again."""
    ended, rounds_ended = trio.open_memory_channel[None](math.inf)
    settle = memory._settle

    def settle_and_say(collect: bool) -> None:  # in the settler's worker thread
        settle(collect)
        trio.from_thread.run_sync(ended.send_nowait, None)

    monkeypatch.setattr(memory, "_settle", settle_and_say)

    async def scenario() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(memory.settle_memory)
            await trio.sleep(1)  # it is waiting to be woken
            kept = memory.hold_huge([[_Item()] for _ in range(10)], memory.dismantle_sequence)
            probe = weakref.ref(kept[0][0])
            memory.wake_settler()
            await trio.sleep(sum(memory.SETTLE_AFTER) + 60)
            assert probe() is not None, "freed while in use"
            del kept
            memory.wake_settler()
            # Counted in rounds, not mock seconds: the clock jumps while a worker thread runs,
            # however long a loaded machine makes it take. At most the first wake's rounds
            # still under way, then the second wake's.
            for _ in range(2 * len(memory.SETTLE_AFTER)):
                if probe() is None:
                    break
                await rounds_ended.receive()
            assert probe() is None and memory.holding() == 0
            nursery.cancel_scope.cancel()

    trio.run(scenario, clock=trio.testing.MockClock(autojump_threshold=0))


# A burst as a resolve makes one (`settles_long_lived`), then `_settle` as the daemon's settler
# runs it moments later; cyclic garbage is watched through a weak reference to one of its nodes.
_SETTLE_PROBE = """
import gc, sys, weakref
from satchel.daemon.storage import memory

class Node:
    def __init__(self):
        self.me = self

memory.freeze_survivors()
kept = []

@memory.settles_long_lived
def work(garbage):
    assert not gc.isenabled()
    kept.append([object() for _ in range(100)])
    nodes = [Node() for _ in range(garbage)]
    return weakref.ref(nodes[0]) if nodes else None

baseline = gc.get_freeze_count()
small = work(int(baseline * 0.1))
print("enabled after", gc.isenabled())
print("kept frozen", not any(o is kept[0] for o in gc.get_objects()))
gc.collect()
print("small garbage frozen", small() is not None)
memory._settle()
print("small garbage after settle", small() is not None)
large = work(int(baseline * 0.5))
memory._settle()
print("large garbage after settle", large() is not None, "small", small() is not None)
with memory.long_lived_burst():  # a burst under way (an enormous page's grouping): not walked
    young = Node()
    watched_young = weakref.ref(young)
    del young
    memory._settle()
    print("garbage of a burst under way after settle", watched_young() is not None)
with memory.long_lived_burst():  # a burst that has not ended: the collector is off
    memory._bursts_since -= memory.OVERLAP_COLLECT_AFTER + 1  # bursts overlapping for long
    overlapped = Node()
    watched = weakref.ref(overlapped)
    del overlapped
    print("garbage during a burst after settle", watched() is not None, end=" ")
    memory._settle()
    print(watched() is not None)
"""


def test_a_resolve_runs_without_collector_pauses_and_its_frozen_garbage_is_bounded() -> None:
    """issue 15: work wrapped in `settles_long_lived` (a resolve) runs with the collector off and
    freezes what it keeps; the settler collects the cyclic garbage it froze once the frozen
    objects grew by more than `SETTLE_GROWTH`, and not for less (no full collection, with the
    interpreter lock held, after every resolve); while bursts overlap without end (resolves of
    several clients) past `OVERLAP_COLLECT_AFTER`, each settle collects what none of them froze
    yet."""
    assert memory.SETTLE_GROWTH == 1.25  # the probe's 0.1 and 0.5 sit either side of it
    proc = subprocess.run(
        [sys.executable, "-c", _SETTLE_PROBE],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert proc.stdout.splitlines() == [
        "enabled after True",
        "kept frozen True",
        "small garbage frozen True",  # a collection does not walk frozen objects
        "small garbage after settle True",  # under a quarter more: not worth a full walk
        "large garbage after settle False small False",  # past it: everything collected
        "garbage of a burst under way after settle True",  # its objects are not walked
        # bursts that overlap for good (several clients resolving) still get collected
        "garbage during a burst after settle True False",
    ]


def test_requests_answering_together_give_memory_back_once_each_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """issue 15: each resolve or install gives freed heap back once it has answered
    (`give_back_now`); requests answering together share one walk of the heap instead of
    queueing one each, and a request answering later gets a walk of its own."""
    gate = threading.Event()
    calls: list[bool] = []
    real = memory.release_free_memory

    def counted() -> bool:
        gate.wait(timeout=30)
        calls.append(True)
        return real()  # the real walk, after the others have come and gone

    monkeypatch.setattr(memory, "release_free_memory", counted)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            for _ in range(5):
                nursery.start_soon(memory.give_back_now)
            await trio.testing.wait_all_tasks_blocked()
            gate.set()
        assert len(calls) == 1
        await memory.give_back_now()
        assert len(calls) == 2

    trio.run(main)
