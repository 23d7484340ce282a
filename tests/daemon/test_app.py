"""App bookkeeping and the idle watcher, on trio's virtual clock (deterministic and instant)."""

from __future__ import annotations

from pathlib import Path

import trio
import trio.testing

from satchel.daemon.process.app import _watch_idle
from satchel.daemon.services.daemon import App
from tests.support.daemon import in_process_app


def _app(tmp_path: Path) -> App:
    return in_process_app(tmp_path, idle_timeout=10.0)


async def test_idle_watcher_stops_an_unused_daemon_after_the_timeout(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    app = _app(tmp_path)
    start = trio.current_time()
    await _watch_idle(app, 10.0)
    assert app.exit_reason == "idle-timeout"
    assert trio.current_time() - start == 10.0


async def test_idle_timeout_counts_from_the_end_of_the_last_activity(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    app = _app(tmp_path)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_watch_idle, app, 10.0)
        await trio.sleep(5)
        with app.background_job("refresh", "revalidating"):
            assert [job.method for job in app.background_jobs.values()] == ["refresh"]
            await trio.sleep(60)  # far beyond the timeout: never idle while a job runs
            assert not app.shutting_down
        ended = trio.current_time()
        await app.shutdown_requested.wait()
    assert trio.current_time() - ended == 10.0
    assert app.background_jobs == {}


async def test_jobs_in_flight_are_drained_not_background_ones(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    app = _app(tmp_path)
    with app.background_job("gc"):
        job = app.add_job("debug.sleep", 1, None)
        with trio.move_on_after(1) as waiting:
            await app.wait_no_jobs()
        assert waiting.cancelled_caught
        app.remove_job(job)
        with trio.fail_after(1):
            await app.wait_no_jobs()


def test_the_first_shutdown_reason_wins(tmp_path: Path) -> None:
    app = _app(tmp_path)
    app.request_shutdown("stop-request", "stopped")
    app.request_shutdown("sigterm", "received SIGTERM")
    assert (app.exit_reason, app.exit_message) == ("stop-request", "stopped")
