"""Open-file limits: raise the soft limit at start, and say so when accept() runs out anyway.

Every connection costs the daemon a descriptor (Unix socket clients, local index peers, files
being served). The usual soft limit is 1024 while the hard limit is far higher (524288 under
systemd), and an unprivileged process may raise its soft limit up to the hard one, so the daemon
does that at start (`raise_open_file_limit`) and logs both numbers.

When the limit is reached anyway, ``accept()`` fails with EMFILE (ENFILE: the whole system), the
connection stays in the kernel's queue and its client waits. Before issue 11.7 that happened in
silence apart from a warning every 100 ms. `AcceptFailures` makes it one clear error per episode,
naming the limit and what to do, backs off (doubling from `FIRST_BACKOFF` to `MAX_BACKOFF`, so
the loop never spins while descriptors are short) and logs once when accepting works again. The
daemon keeps serving the connections it has throughout.
"""

from __future__ import annotations

import errno
import logging
import resource
from pathlib import Path

import trio

__all__ = [
    "FIRST_BACKOFF",
    "MACOS_OPEN_MAX",
    "MAX_BACKOFF",
    "AcceptFailures",
    "open_descriptors",
    "raise_open_file_limit",
]

log = logging.getLogger(__name__)

#: Seconds to wait after the first failed accept of an episode: descriptors come back when any
#: connection closes, usually within milliseconds.
FIRST_BACKOFF = 0.05
#: The longest wait between two attempts: a new client waits at most this long after a
#: descriptor is free again, and the loop wakes at most once a second while none is.
MAX_BACKOFF = 1.0
#: macOS refuses ``RLIM_INFINITY`` (its hard limit) for RLIMIT_NOFILE; ``OPEN_MAX`` is the most
#: setrlimit accepts there.
MACOS_OPEN_MAX = 10240

#: accept() errors that mean "out of descriptors", as opposed to other transient failures.
_OUT_OF_FILES = frozenset({errno.EMFILE, errno.ENFILE})


def raise_open_file_limit() -> tuple[int, int]:
    """Raise RLIMIT_NOFILE's soft limit to the hard limit; return (before, after)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else MACOS_OPEN_MAX
    if soft != resource.RLIM_INFINITY and soft >= wanted:
        return soft, soft
    for target in (wanted, min(wanted, MACOS_OPEN_MAX)):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            continue
        log.info("open-file limit raised from %d to %d (the hard limit)", soft, target)
        return soft, target
    log.warning("cannot raise the open-file limit above %d (hard limit %d)", soft, hard)
    return soft, soft


def open_descriptors() -> int | None:
    """How many descriptors this process has open (None where that cannot be counted cheaply)."""
    for directory in ("/proc/self/fd", "/dev/fd"):
        try:
            return sum(1 for _ in Path(directory).iterdir()) - 1  # minus the one being read
        except OSError:
            continue
    return None


class AcceptFailures:
    """Back-off and logging for one accept loop (*what* names the listener in messages)."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.failures = 0
        self._backoff = FIRST_BACKOFF

    async def failed(self, exc: OSError) -> None:
        """Log (once per episode) and wait before the next accept."""
        if self.failures == 0:
            if exc.errno in _OUT_OF_FILES:
                soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
                scope = "the system" if exc.errno == errno.ENFILE else "satcheld"
                log.error(
                    "%s: cannot accept new connections: %s has run out of file descriptors "
                    "(%s open, limit %d); new clients wait until connections close. Close idle "
                    "clients, or raise the limit (`ulimit -n`, LimitNOFILE= for systemd)",
                    self.what,
                    scope,
                    open_descriptors() or "?",
                    soft,
                )
            else:
                log.warning("%s: accept failed (%s); retrying", self.what, exc.strerror or exc)
        self.failures += 1
        await trio.sleep(self._backoff)
        self._backoff = min(MAX_BACKOFF, self._backoff * 2)

    def succeeded(self) -> None:
        """An accept worked: end the episode (logging it, if there was one)."""
        if self.failures:
            log.warning(
                "%s: accepting connections again after %d failed attempts",
                self.what,
                self.failures,
            )
            self.failures = 0
            self._backoff = FIRST_BACKOFF
