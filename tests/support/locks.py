"""Who waits on a file's flock, as the kernel says (``/proc/locks``): no clock involved.

`wait_for_flock_waiter(path, gave_up)` returns once some process or thread is blocked in
``flock`` on *path* (a ``->`` line for its inode in ``/proc/locks``), so a test can check "the
second caller waits for the lock we hold" by the kernel's own account instead of by sleeping
and seeing it has not finished yet. *gave_up* says when to stop looking (the caller finished
without waiting): it then fails naming what did not happen. pytest-timeout bounds the rest.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["flock_waiters", "wait_for_flock_waiter"]


def flock_waiters(path: Path) -> int:
    """How many are blocked in ``flock`` on *path* now."""
    st = os.stat(path)
    device = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    with open("/proc/locks") as locks:
        rows = [line.split() for line in locks]
    # "1: -> FLOCK  ADVISORY  WRITE <pid> <maj>:<min>:<inode> 0 EOF" is a blocked waiter.
    return sum(1 for row in rows if len(row) > 6 and row[1] == "->" and row[6] == device)


def wait_for_flock_waiter(path: Path, gave_up: Callable[[], bool], what: str) -> None:
    """Return once something is blocked in ``flock`` on *path*; fail if *gave_up* first."""
    while not flock_waiters(path):
        assert not gave_up(), f"{what} did not wait for the lock on {path}"
        time.sleep(0.01)  # polling the kernel's table: there is no event to wait on
