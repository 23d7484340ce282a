"""Keep glibc's malloc from multiplying the daemon's resident memory across worker threads.

Why: the daemon runs blocking work in trio worker threads (up to 40 at once while uv pulls a
large set through the local index), and glibc gives each new thread its own malloc arena, up to
8 per core. Memory freed in an arena mostly stays mapped in it, so every arena keeps a few MB
of its busiest moment: with the benchmark's large set (112 wheels) the daemon held ~30 MB in
eight thread arenas after serving it, against ~25 MB of live Python objects. Two arenas
measured 72 MB peak instead of 80 MB, resident memory flat afterwards, and no slower installs or
local-index serving (benchmarks/findings.md, "Daemon memory").

`limit_malloc_arenas` sets that cap with ``mallopt(M_ARENA_MAX)``, in-process, so it holds
however the daemon is started (autostart, a service manager, by hand) without an environment
variable in every launcher. ``MALLOC_ARENA_MAX`` in the environment still wins: glibc has read
it at start-up, and a user who set it meant it.

`use_system_allocator` makes Python's objects come from that malloc too (``PYTHONMALLOC=malloc``,
by re-executing the daemon once at start), so that `release_free_memory` can hand back what a
burst of objects freed (issue 11.6): see its docstring. `give_back_now` does so after each
request that churned the heap (issue 15).

The cyclic collector: `long_lived_burst` keeps it from pausing the daemon while an enormous page
is grouped or a resolve runs (both freeze what they keep), and `settle_memory` collects what was
frozen and became garbage, only once there is enough of it to be worth a full walk.

Enormous objects (a huge page's entries, the versions grouped from them) are freed by `reap`, in
a worker thread and in pieces, never in one cascade wherever their last reference goes
(`hold_huge`, issue 11.6).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import gc
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, ParamSpec, TypeVar

import trio

__all__ = [
    "ARENA_MAX",
    "ARENA_MAX_ENV",
    "DISMANTLE_STEP",
    "HUGE_ITEMS",
    "dismantle_sequence",
    "dismantle_tuple",
    "freeze_survivors",
    "give_back_now",
    "hold_huge",
    "holding",
    "limit_malloc_arenas",
    "long_lived_burst",
    "reap",
    "release_free_memory",
    "settle_memory",
    "settles_long_lived",
    "tuple_held_if_huge",
    "use_system_allocator",
    "wake_settler",
]

log = logging.getLogger(__name__)
_P = ParamSpec("_P")
_R = TypeVar("_R")
_T = TypeVar("_T")

#: Malloc arenas the daemon allows (the main one and one shared by every worker thread).
ARENA_MAX = 2
#: The variable glibc reads at start-up for the same setting; when set, it is left alone.
ARENA_MAX_ENV = "MALLOC_ARENA_MAX"
#: ``M_ARENA_MAX`` from glibc's ``<malloc.h>``.
_M_ARENA_MAX = -8
#: The variable CPython reads at start-up to choose the allocator of its objects.
ALLOCATOR_ENV = "PYTHONMALLOC"
#: Set across the daemon's own re-execution only, so the new image knows the allocator was its
#: own choice (and keeps it from the processes it starts).
_CHOSEN_ENV = "SATCHEL_DAEMON_ALLOCATOR"


@functools.cache
def _libc_function(name: str) -> Callable[..., int] | None:
    """*name* from glibc's C library, or None off glibc."""
    try:
        if not (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc"):
            return None
    except (ValueError, OSError):  # not a glibc system: the name is unknown there
        return None
    try:
        function: Callable[..., int] = getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError):
        return None
    return function


def release_free_memory() -> bool:
    """Give the memory malloc holds free back to the system (``malloc_trim(0)``, glibc only).

    Why: after a large parse (a 60 MB index page makes ~100 MB of short-lived objects) glibc
    keeps the freed heap mapped, and the daemon stayed at 0.5-1.8 GB resident for good (issue
    11.6). Call it from a worker thread: it walks the heap. Returns whether memory was released.
    """
    trim = _libc_function("malloc_trim")
    if trim is None:
        return False
    return bool(trim(0))


def limit_malloc_arenas(limit: int = ARENA_MAX) -> bool:
    """Cap glibc's malloc arenas at *limit*; return whether the cap was applied.

    Call it before any worker thread starts: glibc reads the setting lazily, but fixes its
    limit for good once eight arenas exist. Not applied off glibc (macOS's allocator has no
    arenas of this kind), or when ``MALLOC_ARENA_MAX`` is set (glibc honoured it already).
    """
    if ARENA_MAX_ENV in os.environ:
        return False
    mallopt = _libc_function("mallopt")
    if mallopt is None:
        return False
    applied = bool(mallopt(ctypes.c_int(_M_ARENA_MAX), ctypes.c_int(limit)))
    log.debug("malloc arenas capped at %d: %s", limit, applied)
    return applied


def use_system_allocator() -> None:
    """Re-execute this process with ``PYTHONMALLOC=malloc`` (once, at start; glibc only).

    Why: CPython's own small-object allocator (pymalloc) takes memory from the system in 1 MiB
    arenas and gives an arena back only when every object in it is gone. A 60 MB index page
    makes ~600,000 small objects; the few that outlived it (a cached version, a tuple on a free
    list, a timer of the event loop) were scattered over ~130-190 arenas, so the daemon kept
    110-170 MiB it no longer used, for good (issue 11.6). From glibc's malloc, `malloc_trim`
    returns every free 4 KiB page wherever it lies: measured back to within 3-14 MiB of the
    baseline after the same page. The price is allocation speed: ~5-9% more CPU (paired runs)
    for the most allocation-heavy work (parsing and grouping a huge page).

    Call it first thing in the daemon's `main`: it does not return when it re-executes. Nothing
    happens off glibc (no `malloc_trim` there), when ``PYTHONMALLOC`` is set (the user chose),
    or when re-executing fails. In the re-executed daemon it removes the setting from the
    environment, so build backends and parsers it starts get Python's default allocator.
    """
    if os.environ.pop(_CHOSEN_ENV, None) is not None:
        os.environ.pop(ALLOCATOR_ENV, None)  # chosen: nothing the daemon starts inherits it
        return
    if ALLOCATOR_ENV in os.environ or _libc_function("malloc_trim") is None:
        return
    if not sys.executable or not sys.orig_argv:
        return
    os.environ[ALLOCATOR_ENV] = "malloc"
    os.environ[_CHOSEN_ENV] = "1"
    try:
        os.execv(sys.executable, sys.orig_argv)  # noqa: S606 -- ourselves, same argv
    except OSError as exc:
        del os.environ[ALLOCATOR_ENV], os.environ[_CHOSEN_ENV]
        log.debug("not re-executed with the system allocator: %s", exc)


_gc_lock = threading.Lock()
#: Threads inside `long_lived_burst`, and whether the collector was enabled before the first.
_bursts = 0
_gc_was_enabled = True
#: Whether a burst froze objects since the last `freeze_survivors`.
_froze_burst = False
#: When `_bursts` last went from none to one (`time.monotonic`).
_bursts_since = 0.0
#: Bursts that have overlapped without a break for this long (seconds) are collected anyway by
#: `settle_memory`: one burst, even an enormous page's, lasts a few seconds at most.
OVERLAP_COLLECT_AFTER = 30.0
#: After a burst ends, or a request that held enormous objects, `settle_memory` settles (`reap`,
#: then a collection if it is due, then `release_free_memory`) after each of these delays
#: (seconds): what the burst made is freed once the request, or a task sharing its page, lets
#: go of it, a moment or seconds later (a slow client, a download).
SETTLE_AFTER = (0.0, 1.0, 3.0, 9.0)
#: Frozen objects are collected again (`freeze_survivors`) once they are this many times as
#: many as after the last collection. Frozen objects that are freed by reference counting leave
#: the count, so it grows only with what stays: caches filling (bounded) or cyclic garbage a
#: burst froze. Collecting each time walked ~77,000 objects for 20-70 ms with the interpreter
#: lock held, every few seconds under resolves back to back, and found nothing (issue 15); at
#: 1.25, like CPython's own rule for full collections, garbage kept frozen stays under a quarter
#: of the daemon's objects.
SETTLE_GROWTH = 1.25
#: The first settling round (a delay of `SETTLE_AFTER`) that may collect frozen garbage
#: (`freeze_survivors`). The round at 0 s runs as a burst ends, which is mid-request when the
#: burst was a prefetch's resolve and its downloads go on: a collection then held the
#: interpreter lock for 20-40 ms inside that request (the first request of a daemon froze its
#: lazily imported modules with its burst, so one was due every time: issue 15, ~9% of a
#: medium cold prefetch's CPU). A second later the request is normally over; the garbage
#: waits that long, which is what freezing it already means.
COLLECT_FROM = 1.0
#: The fewest frozen objects seen since the last `freeze_survivors` (`gc.get_freeze_count()`).
_settled_frozen = 0
#: Wakes `settle_memory` (thread-safe); None until it runs.
_wake_settler: Callable[[], None] | None = None


async def settle_memory() -> None:
    """Run for the daemon's life: after a `long_lived_burst` ended, or a request that held
    enormous objects (`hold_huge`), settle at each of `SETTLE_AFTER`, in a worker thread (the
    collection and the heap walk are long): `reap` what is no longer used, `freeze_survivors`
    when frozen garbage is due, `release_free_memory`.

    Why: the objects of a burst (an enormous page, its versions, a resolve's working state) are
    freed by the request that made them, when it is done, and glibc keeps the freed memory
    mapped until asked (issue 11.6); cyclic garbage frozen by a burst is only collected here.
    Settling here rather than at the end of each burst means one collector pause per settling
    round, not one per resolve (issue 15: resolves back to back held the interpreter lock in
    full collections of 5-50 ms each, every few resolves). Sleeps until woken: an idle daemon
    does not wake for it.
    """
    global _wake_settler
    token = trio.lowlevel.current_trio_token()
    lingering = False
    while True:
        woken = trio.Event()

        def wake(event: trio.Event = woken) -> None:
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(event.set)

        _wake_settler = wake
        if lingering or not holding():  # (a wake during the last round is seen here)
            await woken.wait()
        since = 0.0
        for delay in SETTLE_AFTER:
            await trio.sleep(delay - since)
            since = delay
            await trio.to_thread.run_sync(_settle, delay >= COLLECT_FROM)
        lingering = holding() > 0  # still in use: looked at again when a request ends


_giving_back = False


async def give_back_now() -> None:
    """`release_free_memory` in a worker thread, unless one is under way already (event loop).

    For work that churned the heap (a resolve, an install, a prefetch) once it has answered: the
    daemon's resident memory after it is then its live objects rather than the high-water mark
    of its last request (issue 15: ~18 MiB of the ~100 MiB after many large resolves and
    installs was freed memory glibc still held). The walk takes ~1-3 ms with the lock of the
    heap held and the interpreter lock released.
    """
    global _giving_back
    if _giving_back:
        return
    _giving_back = True
    try:
        await trio.to_thread.run_sync(release_free_memory)
    finally:
        _giving_back = False


def _settle(collect: bool = True) -> None:
    """One settling round (worker thread); *collect*: whether frozen garbage that is due may
    be collected now (`COLLECT_FROM`)."""
    global _settled_frozen
    reap()
    if _bursts and time.monotonic() - _bursts_since > OVERLAP_COLLECT_AFTER:
        # Bursts overlapping all along (resolves of several clients): the collector was never
        # back on. This walks what no burst has frozen yet; not sooner, or it would walk the
        # objects of a burst under way (an enormous page's versions: 100 ms and more).
        gc.collect()
    if collect:  # (counting the frozen objects walks them all: not in a round that may not)
        frozen = gc.get_freeze_count()
        # Held enormous objects (frozen by their burst, freed by `reap` later) are no garbage: a
        # collection now would walk them all, for nothing.
        if _froze_burst and frozen > _settled_frozen * SETTLE_GROWTH and not holding():
            freeze_survivors()
        else:  # the growth is measured from the fewest seen: a burst's peak is not a baseline
            _settled_frozen = min(_settled_frozen, frozen)
    release_free_memory()


@contextlib.contextmanager
def long_lived_burst() -> Iterator[None]:
    """Build hundreds of thousands of objects that outlive the block, without collector pauses.

    Why: the resolver groups an enormous page (90,000 files) into as many `Version` objects and
    choices. Each full collection of CPython's collector walks every tracked object while it
    holds the GIL, so as they piled up it ran about ten times, for up to 300 ms each, and the
    event loop answered pings that late (issue 11.6); it found nothing to free. Inside the block
    automatic collection is off; at its end `gc.freeze` moves every tracked object to the
    permanent generation, which no collection walks (the move walks nothing either), and they
    are freed by reference counting as usual. Cyclic garbage frozen meanwhile is collected
    after all by `settle_memory`, which every block's end wakes.
    Thread-safe: the collector is re-enabled when the last concurrent block ends.
    """
    global _bursts, _bursts_since, _gc_was_enabled, _froze_burst
    with _gc_lock:
        if _bursts == 0:
            _gc_was_enabled = gc.isenabled()
            _bursts_since = time.monotonic()
            gc.disable()
        _bursts += 1
    try:
        yield
    finally:
        with _gc_lock:
            _bursts -= 1
            if _bursts == 0:
                gc.freeze()
                _froze_burst = True
                if _gc_was_enabled:
                    gc.enable()
        if _wake_settler is not None:
            _wake_settler()


def freeze_survivors() -> None:
    """Collect everything once, then freeze what survives (`gc.freeze`).

    At start-up: the daemon's modules, classes and long-lived state (~100,000 objects) are then
    never walked again by a full collection, each of which cost 45-90 ms on a loaded machine
    with them (issue 11.6). Call from a worker thread once running: the collection is one
    pause of that length.
    """
    global _froze_burst, _settled_frozen
    with _gc_lock:
        _froze_burst = False
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    _settled_frozen = gc.get_freeze_count()


def settles_long_lived(function: Callable[_P, _R]) -> Callable[_P, _R]:
    """Decorate work that builds many objects, some of them kept (a resolve): it runs as a
    `long_lived_burst`, so the collector never pauses the daemon during it, and what it froze
    and has become garbage since is collected by `settle_memory` (moments later, once for any
    number of bursts), as are the enormous objects it let go of (`reap`).

    Why not collect at the end of each call: a full collection walks every object of the
    daemon (~70,000 once its caches are warm), 5-50 ms with the interpreter lock held, and
    resolves run back to back made one every few resolves (issue 15: ping p99 18 ms). A
    resolve leaves little cyclic garbage (the collector found 0-400 objects per collection).
    """

    @functools.wraps(function)
    def settling(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        with long_lived_burst():
            return function(*args, **kwargs)

    return settling


#: From this many items on, a collection is worth `hold_huge`: freeing 20,000 page entries at
#: once takes ~3-10 ms holding the GIL; below that, freeing where the last reference goes is
#: cheaper than a worker thread's round trip.
HUGE_ITEMS = 20_000
#: Items a held object is taken apart by at a time, in `reap`: freeing 1,000 page entries
#: (their strings) takes ~0.2-0.5 ms, under the daemon's 1 ms GIL switch interval, so the
#: event loop gets the GIL back between pieces.
DISMANTLE_STEP = 1000

_held_lock = threading.Lock()


class _Held:
    """One object `reap` owns the freeing of, and how to take it apart."""

    __slots__ = ("dismantle", "obj")

    def __init__(self, obj: object, dismantle: Callable[[Any], None]) -> None:
        self.obj: object | None = obj
        self.dismantle = dismantle

    def unused(self) -> bool:
        # References while asked: this slot's and getrefcount's argument; more means in use.
        return sys.getrefcount(self.obj) <= 2


_held: list[_Held] = []


def hold_huge(obj: _T, dismantle: Callable[[list[_T]], None]) -> _T:
    """Give the freeing of *obj* to `reap`; returns *obj*.

    Why: freeing an enormous object (the 90,000 entries of a huge page, the versions grouped
    from them) is one C-level cascade of hundreds of thousands of deallocations, 10-45 ms
    holding the GIL, wherever its last reference goes: at the end of a request, on the event
    loop (issue 11.6: pings answered 30-60 ms late). Held here, the request's references go
    without freeing anything; `reap`, in a worker thread, takes the object apart once nothing
    else refers to it, with *dismantle*, which gets it as the one item of a list (so that it can
    own the last reference) and frees its items `DISMANTLE_STEP` at a time. What a
    `long_lived_burst` built is frozen: the collector does not walk it meanwhile.
    """
    with _held_lock:
        _held.append(_Held(obj, dismantle))
    return obj


def dismantle_sequence(box: list[list[Any]]) -> None:
    """Free the items of the list in *box*, `DISMANTLE_STEP` at a time from the end."""
    items = box.pop()
    while items:
        del items[-DISMANTLE_STEP:]


def dismantle_tuple(box: list[tuple[Any, ...]]) -> None:
    """Free the items of the tuple in *box* in pieces: a list takes their references, the
    tuple goes (dropping references only), then the list is emptied piece by piece."""
    pieces = list(box[0])
    box.clear()
    dismantle_sequence([pieces])


def tuple_held_if_huge(items: list[_T]) -> tuple[_T, ...]:
    """*items* as a tuple (a page's files), given to `hold_huge` from `HUGE_ITEMS` on."""
    kept = tuple(items)
    if len(kept) >= HUGE_ITEMS:
        hold_huge(kept, dismantle_tuple)
    return kept


def reap() -> int:
    """Take apart every held object nothing else refers to any more; how many were. Run it in
    a worker thread, never on the event loop. Thread-safe."""
    done = 0
    while True:
        with _held_lock:
            taken = [held for held in _held if held.unused()]
            _held[:] = [held for held in _held if held not in taken]
        if not taken:
            return done
        for held in taken:
            box, held.obj = [held.obj], None
            held.dismantle(box)
            box.clear()
            done += 1
        # Taking one apart may have let go of another (a project's versions, of its pages).


def holding() -> int:
    """How many objects `reap` holds now."""
    with _held_lock:
        return len(_held)


def wake_settler() -> None:
    """A request (or a resolve) ended: let `settle_memory` look at the held objects, if any
    (cheap otherwise: called at the end of every request). Thread-safe."""
    if _wake_settler is not None and _held:
        _wake_settler()
