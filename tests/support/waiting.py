"""A check shared by tests of "a second caller must not return before the first's sync"."""

from __future__ import annotations

import threading
from collections.abc import Callable

__all__ = ["second_call_waits_for_the_first"]


def second_call_waits_for_the_first(
    call: Callable[[], object], blocked: threading.Event, release: threading.Event, why: str
) -> None:
    """Run *call* in a thread until it signals *blocked* (inside the sync the test made slow),
    then *call* again in another: the second must not return while the first is held (*why*
    says what it would have answered too early); once *release* is set, both return."""
    first = threading.Thread(target=call)
    first.start()
    assert blocked.wait(30)
    second_done = threading.Event()
    second = threading.Thread(target=lambda: (call(), second_done.set()))
    second.start()
    second.join(0.5)
    assert not second_done.is_set(), why
    release.set()
    first.join(30)
    second.join(30)
    assert second_done.is_set()
