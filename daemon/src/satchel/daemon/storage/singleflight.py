"""Share one execution of an async function among concurrent callers asking for the same key.

Two requests for the same file must share one download: the second caller of
``await flight.run(sha256, download)`` waits for the first one's work and gets the same result or
the same exception. Nothing is cached once the work is done; the next call starts afresh (the
store and metadb are the caches).

Cancellation, the choice made here: the shared work runs in a task of the nursery given to
`SingleFlight`, not in any caller's task. A caller that is cancelled (its client disconnected or
sent ``Cancel``) stops waiting at once, and the work carries on for the others. When the *last*
waiter leaves, nobody wants the result any more, so the work is cancelled and the key is released;
a later caller starts a fresh execution rather than joining a dying one. Running the work in a
caller's task instead would force a cancelled leader either to kill everyone's download or to
linger until it finished.

If the work is cancelled from outside (the nursery is shutting down) while callers still wait,
they get a `SatchelError` saying so instead of a foreign `trio.Cancelled`. Every waiter re-raises
the same exception object, so its traceback shows the frames of each raise.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

import trio

from satchel.daemon.errors import SatchelError

__all__ = ["SingleFlight"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class _Flight(Generic[V]):
    """One in-progress execution and the callers waiting for it."""

    def __init__(self) -> None:
        self.scope = trio.CancelScope()
        self.done = trio.Event()
        self.waiters = 0
        self.value: V | None = None
        self.error: BaseException | None = None


class SingleFlight(Generic[K, V]):
    """Deduplicate concurrent executions per key; the work runs in *nursery*.

    The nursery must outlive every call (the daemon passes its long-lived service nursery).
    """

    def __init__(self, nursery: trio.Nursery, *, name: str = "singleflight") -> None:
        self._nursery = nursery
        self._name = name
        self._flights: dict[K, _Flight[V]] = {}

    def in_flight(self, key: K) -> bool:
        """Whether work for *key* is running now (for status and tests)."""
        return key in self._flights

    def __len__(self) -> int:
        return len(self._flights)

    async def run(self, key: K, fn: Callable[[], Awaitable[V]]) -> V:
        """Return the result of ``await fn()``, shared with every concurrent caller of *key*.

        Only the first caller's *fn* is used; later callers' *fn* are ignored while the first
        execution is running.
        """
        flight = self._flights.get(key)
        if flight is None:
            flight = _Flight()
            self._flights[key] = flight
            self._nursery.start_soon(self._work, key, flight, fn, name=f"{self._name}:{key!r}")
        flight.waiters += 1
        try:
            await flight.done.wait()
        finally:
            flight.waiters -= 1
            if flight.waiters == 0 and not flight.done.is_set():
                # The last interested caller left: stop the work and release the key now.
                flight.scope.cancel()
                self._release(key, flight)
        if flight.error is not None:
            if isinstance(flight.error, trio.Cancelled):
                raise SatchelError(
                    f"shared work for {key!r} was cancelled (the daemon is shutting down)"
                )
            raise flight.error
        return flight.value  # type: ignore[return-value]

    async def _work(self, key: K, flight: _Flight[V], fn: Callable[[], Awaitable[V]]) -> None:
        try:
            # Cancelling this scope (last waiter gone) is absorbed here; nobody awaits the result.
            with flight.scope:
                flight.value = await fn()
        except trio.Cancelled as exc:
            flight.error = exc
            raise  # the nursery itself is being cancelled: trio must see its own Cancelled
        except BaseException as exc:  # handed to every waiter, never to the nursery
            flight.error = exc
        finally:
            flight.done.set()
            self._release(key, flight)

    def _release(self, key: K, flight: _Flight[V]) -> None:
        if self._flights.get(key) is flight:
            del self._flights[key]
