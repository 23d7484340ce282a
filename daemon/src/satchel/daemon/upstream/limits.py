"""What the upstream client allows an index: sizes, timeouts, retries, concurrency (`Limits`).

One frozen value, shared by the client (`satchel.daemon.upstream.client`), its retry budget and
circuit breaker (`breaker`) and its downloads (`downloads`); the defaults suit a laptop on a flaky
connection, and each carries its reason.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["MAX_TIMEOUT", "TIMEOUT_ENV", "Limits"]

#: Overrides `Limits.timeout` (seconds) for the daemon's life; read once at start.
TIMEOUT_ENV = "SATCHEL_UPSTREAM_TIMEOUT"
#: A longer wait for a silent index is the minutes-long hang this setting exists to prevent.
MAX_TIMEOUT = 600.0
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    """Caps and timings; the defaults suit a laptop on a flaky connection."""

    max_page_bytes: int = 64 * 2**20
    max_metadata_bytes: int = 16 * 2**20
    max_file_bytes: int = 16 * 2**30
    #: Short: a dead host should cost seconds, not minutes, before the index is marked offline.
    connect_timeout: float = 3.0
    #: The longest an index that does not answer holds a request, all `attempts` included: each
    #: attempt may stay silent (no byte received) for ``timeout / attempts`` seconds. 12 s is
    #: under pip's own 15 s socket timeout, so pip going through the local index gets the cached
    #: page (with a note) from a hung index instead of timing out itself; 4 s of silence per
    #: attempt is still ample for a slow private index to start a large page. A hung index then
    #: costs this once: it is marked offline, and while cached pages exist they answer at once
    #: and the next probe runs in the background. ``SATCHEL_UPSTREAM_TIMEOUT`` (seconds, read at
    #: daemon start) overrides it: `from_environ`.
    timeout: float = 12.0
    #: The longest pause in the middle of a file's body (pages and the opening of a download
    #: use `silence`): a large download over a slow link stalls for seconds at times, and a
    #: body that does break off resumes with a Range request anyway.
    read_timeout: float = 30.0
    per_index_concurrency: int = 16
    attempts: int = 3
    #: The longest ``Retry-After`` (429/503) honoured before a retry: an index asking for more
    #: would hold the request for minutes, so it gets this pause and its answer counts as failed.
    max_retry_after: float = 30.0
    #: Delay before the first retry, doubled for each further one (with jitter).
    backoff: float = 0.25
    max_redirects: int = 5
    #: A page or metadata request must complete within this (a slow-drip server resets the
    #: read timeout with every byte; this bounds the whole exchange).
    request_deadline: float = 120.0
    #: A file download slower than `min_rate` bytes/s over any `min_rate_window` seconds is cut
    #: (curl's --speed-limit/--speed-time): a slow-drip server resets the read timeout with
    #: every byte, and a file has no size-independent deadline.
    min_rate: int = 1024
    min_rate_window: float = 10.0
    #: How long an index marked offline fails fast before the next probe.
    offline_cooldown: float = 30.0
    #: How long a find-links page over http is reused for other projects.
    find_links_ttl: float = 60.0

    @property
    def silence(self) -> float:
        """How long one attempt may wait without receiving a byte (`timeout` split evenly)."""
        return self.timeout / max(1, self.attempts)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Limits:
        """The defaults, with `timeout` from ``SATCHEL_UPSTREAM_TIMEOUT`` when it is set."""
        raw = environ.get(TIMEOUT_ENV, "").strip()
        if not raw:
            return cls()
        try:
            value = float(raw)
        except ValueError:
            value = -1.0
        if not 0 < value <= MAX_TIMEOUT:
            _log.warning(
                "%s=%r is not a number of seconds in (0, %g]: using the default %gs",
                TIMEOUT_ENV,
                raw[:40],
                MAX_TIMEOUT,
                cls.timeout,
            )
            return cls()
        return cls(timeout=value)
