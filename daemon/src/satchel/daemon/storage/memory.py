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
burst of objects freed (issue 11.6): see its docstring.
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
    "hold_huge",
    "holding",
    "limit_malloc_arenas",
    "long_lived_burst",
    "reap",
    "release_free_memory",
    "settle_memory",
    "settles_long_lived",
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
#: Reasons the collector is paused now (`long_lived_burst` blocks and the held objects they
#: built), and whether it was enabled before the first.
_gc_pauses = 0
_gc_was_enabled = True


def _pause_collector() -> None:
    global _gc_pauses, _gc_was_enabled
    with _gc_lock:
        if _gc_pauses == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_pauses += 1


def _resume_collector() -> None:
    global _gc_pauses
    with _gc_lock:
        _gc_pauses -= 1
        if _gc_pauses == 0 and _gc_was_enabled:
            gc.enable()


@contextlib.contextmanager
def long_lived_burst() -> Iterator[None]:
    """Build hundreds of thousands of objects at once without collector pauses.

    Why: the resolver groups an enormous page (90,000 files) into as many `Version` objects and
    choices. Each collection of CPython's collector walks the tracked objects of its generations
    while it holds the GIL, so as they piled up it ran about ten times, for up to 300 ms each,
    and the event loop answered pings that late (issue 11.6); it found nothing to free. Inside
    the block automatic collection is off. What the block built and gave to `hold_huge` (with
    ``tracked=True``) keeps it off until `reap` has taken it apart: the collector's count of new
    objects then falls back as they are freed, so turning it on walks nothing of theirs. (A
    ``gc.freeze`` of the burst, as before, needed a full collection afterwards to find garbage
    frozen with it: 50-120 ms holding the GIL.) Thread-safe: the collector is turned on again
    when the last pause ends.
    """
    _pause_collector()
    try:
        yield
    finally:
        _resume_collector()


def freeze_survivors() -> None:
    """Collect everything once, then freeze what survives (`gc.freeze`).

    At start-up: the daemon's modules, classes and long-lived state (~100,000 objects) are then
    never walked again by a full collection, each of which cost 45-90 ms on a loaded machine
    with them (issue 11.6). Call it before serving: the collection is one pause of that length.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()


#: From this many items on, a collection is worth `hold_huge`: freeing 20,000 page entries at
#: once takes ~3-10 ms holding the GIL; below that, freeing where the last reference goes is
#: cheaper than a worker thread's round trip.
HUGE_ITEMS = 20_000
#: Items a held object is taken apart by at a time, in `reap`: freeing 1,000 page entries
#: (their strings) takes ~0.2-0.5 ms, under the daemon's 1 ms GIL switch interval, so the
#: event loop gets the GIL back between pieces.
DISMANTLE_STEP = 1000
#: When held objects are still in use, `settle_memory` looks again after these many seconds
#: (then waits for the next request to end): a request may hold its page for a while (a slow
#: client, downloads), and looking costs a worker thread.
REAP_AGAIN_AFTER = (1.0, 3.0, 9.0, 27.0)

_held_lock = threading.Lock()


class _Held:
    """One object `reap` owns the freeing of, and how to take it apart."""

    __slots__ = ("dismantle", "obj", "tracked")

    def __init__(self, obj: object, dismantle: Callable[[Any], None], tracked: bool) -> None:
        self.obj: object | None = obj
        self.dismantle = dismantle
        self.tracked = tracked

    def unused(self) -> bool:
        # References while asked: this slot's and getrefcount's argument; more means in use.
        return sys.getrefcount(self.obj) <= 2


_held: list[_Held] = []
#: Wakes `settle_memory` (thread-safe); None until it runs.
_wake_settler: Callable[[], None] | None = None


def hold_huge(obj: _T, dismantle: Callable[[list[_T]], None], *, tracked: bool = False) -> _T:
    """Give the freeing of *obj* to `reap`; returns *obj*.

    Why: freeing an enormous object (the 90,000 entries of a huge page, the versions grouped
    from them) is one C-level cascade of hundreds of thousands of deallocations, 10-45 ms
    holding the GIL, wherever its last reference goes: at the end of a request, on the event
    loop (issue 11.6: pings answered 30-60 ms late). Held here, the request's references go
    without freeing anything; `reap`, in a worker thread, takes the object apart once nothing
    else refers to it, with *dismantle*, which gets it as the one item of a list (so that it can
    own the last reference) and frees its items `DISMANTLE_STEP` at a time. *tracked*: *obj*
    holds objects the cyclic collector tracks (built inside `long_lived_burst`), so the
    collector stays paused until it is taken apart.
    """
    if tracked:
        _pause_collector()
    with _held_lock:
        _held.append(_Held(obj, dismantle, tracked))
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
            if held.tracked:
                _resume_collector()
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


def settles_long_lived(function: Callable[_P, _R]) -> Callable[_P, _R]:
    """Decorate work that may build enormous objects (`hold_huge`): once it has returned (its
    frame, and its references to them, gone), `settle_memory` frees what it no longer uses."""

    @functools.wraps(function)
    def settling(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return function(*args, **kwargs)
        finally:
            wake_settler()

    return settling


async def settle_memory() -> None:
    """Run for the daemon's life: after work that made enormous objects, free them (`reap`)
    and give the memory back (`release_free_memory`), in a worker thread, without blocking the
    event loop on either.

    Woken by `wake_settler` (a request or a resolve ended); an idle daemon does not wake.
    While held objects are still in use it looks again after each of `REAP_AGAIN_AFTER`; then
    they stop keeping the collector paused, and it waits for the next wake.
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
        if lingering or not holding():  # (a wake during the last pass is seen here)
            await woken.wait()
        for delay in (0.0, *REAP_AGAIN_AFTER):
            await trio.sleep(delay)
            if await trio.to_thread.run_sync(reap):
                await trio.to_thread.run_sync(release_free_memory)
            if not holding():
                lingering = False
                break
        else:
            _stop_pausing()
            lingering = True


def _stop_pausing() -> None:
    """Objects still in use long after they were made (a reference kept somewhere) no longer
    keep the collector paused: it must not stay off for the daemon's life."""
    with _held_lock:
        lingering = [held for held in _held if held.tracked]
        for held in lingering:
            held.tracked = False
    for _ in lingering:
        _resume_collector()
