"""A check shared by tests of "a second caller must not return before the first's sync"."""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import TracebackType

__all__ = ["second_call_waits_for_the_first"]

#: How long a blocked call may take to get anywhere: a hang guard, not a measurement.
_GUARD = 60.0


class _WatchedLock:
    """A lock that says when a caller finds it taken and starts to wait (no clock involved)."""

    def __init__(self, lock: threading.Lock) -> None:
        self._lock = lock
        self.contended = threading.Event()
        self.observed = threading.Event()  # set with `contended`, or when a caller returned

    def __enter__(self) -> _WatchedLock:
        if not self._lock.acquire(blocking=False):
            self.contended.set()
            self.observed.set()
            self._lock.acquire()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._lock.release()


def second_call_waits_for_the_first(
    call: Callable[[], object],
    blocked: threading.Event,
    release: threading.Event,
    why: str,
    *,
    owner: object,
) -> None:
    """Run *call* in a thread until it signals *blocked* (inside the sync the test made slow),
    then *call* again in another: the second must wait on *owner*'s sync lock (``_syncing``,
    watched) and not return while the first is held (*why* says what it would have answered
    too early); once *release* is set, both return."""
    watched = _WatchedLock(owner._syncing)  # type: ignore[attr-defined]
    owner._syncing = watched  # type: ignore[attr-defined]
    first = threading.Thread(target=call)
    first.start()
    assert blocked.wait(_GUARD)
    second_done = threading.Event()

    def second_call() -> None:
        call()
        second_done.set()
        watched.observed.set()

    second = threading.Thread(target=second_call)
    second.start()
    assert watched.observed.wait(_GUARD)
    # The second is blocked on the lock the first holds (not merely not finished yet).
    assert watched.contended.is_set() and not second_done.is_set(), why
    release.set()
    first.join(_GUARD)
    second.join(_GUARD)
    assert second_done.is_set()
