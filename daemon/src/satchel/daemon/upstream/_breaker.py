"""Per-index retries and circuit breaker: which upstream outcomes count against an index, and
when a request to it may go out at all.

Split out of `satchel.daemon.upstream.client` because it is a state machine with its own rules, not
a
fetch: an index is ``unknown`` until something answers, ``online`` while it answers, and
``offline`` after a probe failed its bounded retries. The point is that a dead index costs one
timeout, not one per package: while the state is unknown, the first request is a probe and the
others wait for its outcome; once the index is offline every request fails fast with
`IndexUnreachable` until the cool-down ends and the next request probes again.

`Retries` is one request's budget: failures use up `Limits.attempts` (with backoff), while
``Retry-After`` answers are waited for as asked within `Limits.max_retry_after`.

The outcome classes live here too, because they are what the breaker decides on:
`ConnectFailure` (no usable answer: retried, then the index goes offline), `ServerError` (5xx or
429: retried, but the index is reachable), and everything else (`NotFound`, `UpstreamError`:
the index answered, so it is online). Every text that leaves this module goes through `redact`.
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Literal, TypeVar

import httpx
import msgspec
import trio

from satchel.daemon.errors import HashMismatch, IndexUnreachable, NotFound, UpstreamError
from satchel.daemon.settings.config import IndexConfig
from satchel.daemon.settings.credentials import redact, split_userinfo

if TYPE_CHECKING:
    from satchel.daemon.upstream.limits import Limits

__all__ = [
    "Breaker",
    "ConnectFailure",
    "IndexState",
    "Retries",
    "ServerError",
    "check_status",
    "describe",
    "retry_after",
]

#: The upstream client's logger: "index X is unreachable" keeps the name operators know.
_log = logging.getLogger("satchel.daemon.upstream.client")
_T = TypeVar("_T")


class IndexState(msgspec.Struct, frozen=True, kw_only=True):
    """What ``satchel status`` shows per index (all text redacted)."""

    name: str
    state: Literal["unknown", "online", "offline"]
    reason: str | None = None
    offline_since: float | None = None
    retry_at: float | None = None
    last_success: float | None = None


class ConnectFailure(Exception):
    """No usable answer at the transport level (refused, reset, timeout): retry, then breaker."""


#: RFC 6585's "Network Authentication Required": a captive portal answering in the index's
#: place. The network wants a login; the index was not reached (unreachable, not failing).
NETWORK_LOGIN = 511


class ServerError(Exception):
    """The index answered 5xx or 429: retry, but the index is reachable.

    *retry_after* is the pause the index asked for (``Retry-After`` on 429/503), in seconds.
    """

    def __init__(self, status: int, retry_after: float | None = None) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.retry_after = retry_after


def retry_after(response: httpx.Response) -> float | None:
    """``Retry-After`` in seconds (RFC 9110 10.2.3: a delay or an HTTP date); None if absent
    or unreadable."""
    value = (response.headers.get("Retry-After") or "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value[:9])
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - time.time())


def check_status(response: httpx.Response, what: str) -> None:
    """Accept 200; otherwise raise the error that says what the status means for the index."""
    status = response.status_code
    if status == 200:
        return
    if status >= 500 or status == 429:
        wait = retry_after(response) if status in (429, 503) else None
        raise ServerError(status, wait)
    if status in (404, 410):
        raise NotFound(f"{what}: not found on the index (HTTP {status})")
    if status in (401, 403):
        raise UpstreamError(
            f"{what}: access denied (HTTP {status}); check the index credentials "
            "(URL, SATCHEL_INDEX_<NAME>_USERNAME/_PASSWORD or netrc)"
        )
    raise UpstreamError(f"{what}: unexpected HTTP {status}")


def describe(exc: BaseException) -> str:
    """A transport error as reason text: its type, and its message when it has one, else the
    message of what caused it (httpx's ConnectError over a failed TLS handshake says nothing
    itself; a cause a few levels down names the certificate problem)."""
    text, cause = str(exc), exc.__cause__ or exc.__context__
    for _depth in range(_CAUSE_DEPTH):  # httpx on trio: ConnectError <- BrokenResourceError <- SSL
        if text or cause is None:
            break
        text, cause = str(cause), cause.__cause__ or cause.__context__
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


#: How far down an exception's causes `describe` looks for words.
_CAUSE_DEPTH = 5


#: Retries a request may spend on ``Retry-After`` answers (429/503) beyond `Limits.attempts`, as
#: long as their pauses add up to at most `Limits.max_retry_after`: an index that says when to
#: come back is busy, not broken, and three "try again in 1 s" must not fail a download; the
#: count bounds an index answering ``Retry-After: 0`` forever.
MAX_POLITE_RETRIES = 10


class Retries:
    """One request's retry budget: `pause` says how long to wait before the next try, or None
    when no try is left.

    A failure counts against `Limits.attempts` and is followed by exponential backoff (with
    jitter). An answer carrying ``Retry-After`` is waited for as asked (capped at
    `Limits.max_retry_after`) without counting, while those pauses add up to at most that cap
    and number at most `MAX_POLITE_RETRIES`; past that it counts like any failure.
    """

    def __init__(self, limits: Limits) -> None:
        self._limits = limits
        self.failures = 0
        self.tries = 1
        self._asked = 0.0
        self._polite = 0

    def pause(self, failure: BaseException | None) -> float | None:
        limits = self._limits
        self.tries += 1
        if isinstance(failure, ServerError) and failure.retry_after is not None:
            wait = min(failure.retry_after, limits.max_retry_after)
            if self._polite < MAX_POLITE_RETRIES and self._asked + wait <= limits.max_retry_after:
                self._polite += 1
                self._asked += wait
                return wait
        self.failures += 1
        if self.failures >= limits.attempts:
            self.tries -= 1
            return None
        backoff = limits.backoff * 2.0 ** (self.failures - 1)
        return backoff * (0.5 + random.random())  # noqa: S311 (jitter, not secrecy)


class Breaker:
    """One index's circuit breaker (see the module docstring); the clock is the daemon's."""

    def __init__(self, limits: Limits, clock: Callable[[], float]) -> None:
        self._limits = limits
        self._clock = clock
        self.state: Literal["unknown", "online", "offline"] = "unknown"
        self.reason: str | None = None
        self.offline_since: float | None = None
        self.retry_at = 0.0
        self.last_success: float | None = None
        self._probe: trio.Event | None = None

    def snapshot(self, name: str) -> IndexState:
        """The state as ``satchel status`` shows it (the next probe only while offline)."""
        return IndexState(
            name=name,
            state=self.state,
            reason=self.reason,
            offline_since=self.offline_since,
            retry_at=self.retry_at if self.state == "offline" else None,
            last_success=self.last_success,
        )

    async def retrying(
        self,
        index: IndexConfig,
        what: str,
        call: Callable[[], Awaitable[_T]],
        *,
        background: bool = False,
    ) -> _T:
        """Run *call* with retries, backoff and this circuit breaker.

        *background*: the probe `claim_probe` granted, which goes out despite the cool-down.
        """
        limits = self._limits
        probe = await self._enter(index, what, background=background)
        last: Exception | None = None
        retries = Retries(limits)
        try:
            while True:
                try:
                    with trio.fail_after(limits.request_deadline):
                        result = await call()
                except (ConnectFailure, trio.TooSlowError) as exc:
                    last = exc
                    if isinstance(exc, trio.TooSlowError):
                        deadline = limits.request_deadline
                        last = ConnectFailure(f"no complete answer within {deadline:g}s")
                    if not probe:
                        # It was online; from now on one request probes and the others wait.
                        if self.state == "online":
                            self.state = "unknown"
                        probe = await self._enter(index, what)
                except ServerError as exc:
                    last = exc
                    if exc.status != NETWORK_LOGIN:
                        self.mark_online()
                except (NotFound, HashMismatch, UpstreamError) as exc:
                    if not isinstance(exc, IndexUnreachable):
                        self.mark_online()  # it answered, if unhelpfully
                    raise
                else:
                    self.mark_online()
                    return result
                pause = retries.pause(last)
                if pause is None:
                    break
                await trio.sleep(pause)
            if isinstance(last, ServerError) and last.status != NETWORK_LOGIN:
                raise UpstreamError(
                    f"{what}: the index answered HTTP {last.status} {retries.tries} times in a row",
                    details={"index": index.name, "status": last.status},
                )
            reason = str(last)
            if isinstance(last, ServerError):
                reason = "HTTP 511: the network asks for a login (a captive portal?)"
            self.mark_offline(index, reason)
            raise IndexUnreachable(
                redact(f"{what}: index unreachable ({reason}); marked offline"),
                details={"index": index.name, "reason": reason},
            )
        finally:
            if probe and self._probe is not None:
                self._probe.set()
                self._probe = None

    async def _enter(self, index: IndexConfig, what: str, *, background: bool = False) -> bool:
        """Wait until a request may go out; True when this request is the probe."""
        while True:
            if self.state == "online":
                return False
            if not background:
                self.fail_fast(index, what)
            if self._probe is None:
                self._probe = trio.Event()
                return True
            await self._probe.wait()

    def fail_fast(self, index: IndexConfig, what: str) -> None:
        """Raise `IndexUnreachable` while *index* is in its offline cool-down."""
        if self.state == "offline" and self._clock() < self.retry_at:
            raise self.offline_error(index, what)

    def claim_probe(self) -> bool:
        """While offline with the cool-down over: start the next cool-down now and return True;
        the caller then probes in the background (``retrying(background=True)``). Requests meet
        the new cool-down meanwhile (they fail fast, and a cached answer is used) instead of
        each waiting on an index that may still hang; the probe's success ends it."""
        now = self._clock()
        if self.state != "offline" or now < self.retry_at:
            return False
        self.retry_at = now + self._limits.offline_cooldown
        return True

    def offline_error(self, index: IndexConfig, what: str) -> IndexUnreachable:
        """The error for a request not sent because *index* is marked offline."""
        now = self._clock()
        later = (
            f"next try in {self.retry_at - now:.0f}s"
            if now < self.retry_at
            else "checking again in the background"
        )
        return IndexUnreachable(
            redact(
                f"{what}: index offline since {_ago(self.offline_since, now)}"
                f" ({self.reason}); {later}"
            ),
            details={"index": index.name, "reason": self.reason},
        )

    def mark_online(self) -> None:
        self.state = "online"
        self.reason = None
        self.offline_since = None
        self.last_success = self._clock()

    def mark_offline(self, index: IndexConfig, reason: str) -> None:
        """Start (or extend) the cool-down; the first transition is logged once."""
        now = self._clock()
        if self.state != "offline":
            self.offline_since = now
            _log.warning(
                "%s",
                redact(
                    f"index {index.name} ({split_userinfo(index.url)[0]}) is unreachable "
                    f"({reason}): marked offline, next try in "
                    f"{self._limits.offline_cooldown:.0f}s"
                ),
            )
        self.state = "offline"
        self.reason = reason
        self.retry_at = now + self._limits.offline_cooldown


def _ago(since: float | None, now: float) -> str:
    if since is None:
        return "now"
    return f"{max(0.0, now - since):.0f}s ago"
