"""SingleFlight: concurrent callers of one key share one execution, and leave independently."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from satchel.daemon.errors import HashMismatch, SatchelError
from satchel.daemon.storage.singleflight import SingleFlight


class Work:
    """An async function that counts its executions and finishes when told to."""

    def __init__(self, value: str = "result") -> None:
        self.value = value
        self.calls = 0
        self.release = trio.Event()
        self.cancelled = False
        self.error: BaseException | None = None

    async def __call__(self) -> str:
        self.calls += 1
        try:
            await self.release.wait()
        except trio.Cancelled:
            self.cancelled = True
            raise
        if self.error is not None:
            raise self.error
        return self.value


async def test_concurrent_callers_of_one_key_share_one_execution() -> None:
    work = Work()
    results: list[str] = []
    async with trio.open_nursery() as nursery:
        flight: SingleFlight[str, str] = SingleFlight(nursery)

        async def caller() -> None:
            results.append(await flight.run("k", work))

        for _ in range(5):
            nursery.start_soon(caller)
        await trio.testing.wait_all_tasks_blocked()
        assert flight.in_flight("k")
        work.release.set()

    assert work.calls == 1
    assert results == ["result"] * 5
    assert len(flight) == 0


async def test_different_keys_run_separately() -> None:
    a, b = Work("a"), Work("b")
    a.release.set()
    b.release.set()
    async with trio.open_nursery() as nursery:
        flight: SingleFlight[str, str] = SingleFlight(nursery)
        assert await flight.run("a", a) == "a"
        assert await flight.run("b", b) == "b"
    assert (a.calls, b.calls) == (1, 1)


async def test_results_are_not_cached_after_completion() -> None:
    work = Work()
    work.release.set()
    async with trio.open_nursery() as nursery:
        flight: SingleFlight[str, str] = SingleFlight(nursery)
        await flight.run("k", work)
        await flight.run("k", work)
    assert work.calls == 2


async def test_every_waiter_gets_the_shared_exception() -> None:
    work = Work()
    work.error = HashMismatch("x.whl: sha256 mismatch")
    errors: list[BaseException] = []
    async with trio.open_nursery() as nursery:
        flight: SingleFlight[str, str] = SingleFlight(nursery)

        async def caller() -> None:
            try:
                await flight.run("k", work)
            except HashMismatch as exc:
                errors.append(exc)

        for _ in range(3):
            nursery.start_soon(caller)
        await trio.testing.wait_all_tasks_blocked()
        work.release.set()

    assert work.calls == 1
    assert [str(e) for e in errors] == ["x.whl: sha256 mismatch"] * 3


async def test_a_cancelled_waiter_leaves_the_shared_work_running_for_the_others() -> None:
    work = Work()
    results: list[str] = []
    first_scope = trio.CancelScope()
    first_done = trio.Event()
    async with trio.open_nursery() as nursery:
        flight: SingleFlight[str, str] = SingleFlight(nursery)

        async def first() -> None:
            with first_scope:
                await flight.run("k", work)
            first_done.set()

        async def second() -> None:
            results.append(await flight.run("k", work))

        nursery.start_soon(first)
        nursery.start_soon(second)
        await trio.testing.wait_all_tasks_blocked()
        first_scope.cancel()
        # The cancelled caller returns at once, without waiting for the work.
        await first_done.wait()
        assert not work.cancelled
        work.release.set()

    assert results == ["result"]
    assert work.calls == 1


async def test_the_work_is_cancelled_when_every_waiter_is_gone() -> None:
    work = Work()
    async with trio.open_nursery() as nursery:
        flight: SingleFlight[str, str] = SingleFlight(nursery)
        with trio.move_on_after(0.01):
            await flight.run("k", work)
        # The key is released immediately: a new caller starts a fresh execution.
        assert not flight.in_flight("k")
        await trio.testing.wait_all_tasks_blocked()
        assert work.cancelled

        fresh = Work("fresh")
        fresh.release.set()
        assert await flight.run("k", fresh) == "fresh"


async def test_waiters_see_a_clear_error_when_the_nursery_shuts_down() -> None:
    work = Work()
    errors: list[BaseException] = []

    async def caller(flight: SingleFlight[str, str]) -> None:
        try:
            await flight.run("k", work)
        except SatchelError as exc:
            errors.append(exc)

    async with trio.open_nursery() as outer, trio.open_nursery() as service:
        flight: SingleFlight[str, str] = SingleFlight(service)
        outer.start_soon(caller, flight)
        await trio.testing.wait_all_tasks_blocked()
        service.cancel_scope.cancel()

    assert work.cancelled
    assert len(errors) == 1
    assert "cancelled" in str(errors[0])


async def test_plain_exceptions_never_reach_the_nursery() -> None:
    work = Work()
    work.error = RuntimeError("boom")
    async with trio.open_nursery() as nursery:
        flight: SingleFlight[str, str] = SingleFlight(nursery)
        work.release.set()
        with pytest.raises(RuntimeError, match="boom"):
            await flight.run("k", work)
    # Reaching here means the nursery closed cleanly.
