"""satchel.daemon.storage.memory: the malloc arena cap, checked in real processes with real
threads; enormous objects freed by `reap`, off the event loop, in pieces."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
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


def test_a_held_object_keeps_the_collector_paused_until_it_is_taken_apart() -> None:
    """The versions a huge page is grouped into are built with the collector off, and it stays
    off while they live: turning it on then walks none of them (issue 11.6)."""
    assert gc.isenabled()
    with memory.long_lived_burst():
        assert not gc.isenabled()
        versions = [[_Item()] for _ in range(100)]
        memory.hold_huge(versions, memory.dismantle_sequence, tracked=True)
    assert not gc.isenabled(), "the collector ran while the burst's objects were alive"
    del versions
    assert memory.reap() == 1
    assert gc.isenabled()


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
    assert not gc.isenabled()
    versions = grouped.versions  # a look at what it holds, not a use of it
    del grouped
    assert len(versions) == count
    assert memory.reap() == 1
    assert versions == [], "its versions were not freed"
    assert gc.isenabled()


def test_an_object_kept_in_use_stops_pausing_the_collector_after_a_while() -> None:
    """A huge object someone keeps (a cache, a leak) must not keep the collector off for the
    daemon's life: after `REAP_AGAIN_AFTER` it is still held, but the collector runs again."""

    async def scenario() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(memory.settle_memory)
            await trio.sleep(1)  # it is waiting to be woken
            kept = memory.hold_huge(
                [[_Item()] for _ in range(10)], memory.dismantle_sequence, tracked=True
            )
            assert not gc.isenabled()
            memory.wake_settler()
            started = trio.current_time()
            for _ in range(3600):  # mock seconds: the worker threads take what they take
                if gc.isenabled():
                    break
                await trio.sleep(1)
            assert gc.isenabled(), "the collector stayed paused"
            assert trio.current_time() - started >= sum(memory.REAP_AGAIN_AFTER)
            assert memory.holding() >= 1 and kept
            del kept
            memory.wake_settler()
            for _ in range(3600):
                if not memory.holding():
                    break
                await trio.sleep(1)
            assert memory.holding() == 0
            nursery.cancel_scope.cancel()

    assert gc.isenabled()
    trio.run(scenario, clock=trio.testing.MockClock(autojump_threshold=0))
    assert gc.isenabled()
