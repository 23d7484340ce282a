"""The Warmer's background work: prefetch on change, page refresh (paused offline), idle GC.

Everything runs in-process on real sockets (a loopback `IndexServer`, the real `Upstream`),
with the background tasks' delays shortened through `Timing` and the upstream's offline
cool-down through `Limits` (`tests.support.warm`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import pytest
import trio

from satchel.daemon.requests import gc
from satchel.daemon.requests.watch import WatchedProject
from satchel.daemon.services.refresh import Timing, Warmer
from satchel.daemon.storage.metadb import MetaDB
from tests.support.index_server import IndexServer
from tests.support.warm import FAST_LIMITS, running_warmer
from tests.support.wheels import build_wheel, file_sha256


async def until(predicate: Callable[[], bool], seconds: float = 60.0) -> None:
    """Poll *predicate* (state of other tasks and threads, with no event to wait on); *seconds*
    is a hang guard, not a measurement."""
    with trio.fail_after(seconds):
        while not predicate():  # noqa: ASYNC110
            await trio.sleep(0.01)


def publish(index: IndexServer, root: Path, name: str, version: str = "1.0") -> str:
    wheel = build_wheel(root / "dist", name, version)
    index.add(wheel)
    return file_sha256(wheel)


async def watched(warm: Warmer, directory: Path, requirements: str) -> WatchedProject:
    """Watch a project with this requirements.txt and wait for its first prefetch."""
    directory.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 (a test's own tmp dir)
    (directory / "requirements.txt").write_text(requirements)
    project, added = await warm.add(directory.resolve(), None)  # noqa: ASYNC240
    assert added
    await until(lambda: project.last is not None)
    return project


def page_requests(index: IndexServer, project: str) -> list[str]:
    return [path for path in index.requests if path == f"/simple/{project}/"]


async def test_refresh_revalidates_watched_pages_with_conditional_requests(tmp_path: Path) -> None:
    with IndexServer(tmp_path / "index") as index:
        publish(index, tmp_path, "alpha")
        async with running_warmer(tmp_path / "d", index.url) as warm:
            await watched(warm, tmp_path / "proj", "alpha\n")
            index.reset_log()

            assert await warm.refresh_once() == 0

            records = [r for r in index.records if r.path == "/simple/alpha/"]
            assert len(records) == 1
            assert "if-none-match" in records[0].headers


async def test_a_new_version_found_by_refresh_is_prefetched_without_any_request(
    tmp_path: Path,
) -> None:
    with IndexServer(tmp_path / "index") as index:
        publish(index, tmp_path, "alpha", "1.0")
        async with running_warmer(tmp_path / "d", index.url) as warm:
            project = await watched(warm, tmp_path / "proj", "alpha\n")
            assert project.last is not None and project.last.ok
            newer = publish(index, tmp_path, "alpha", "2.0")

            assert await warm.refresh_once() == 1

            await until(lambda: warm.rt.store.has(newer))


async def test_recently_used_projects_are_refreshed_too(tmp_path: Path) -> None:
    with IndexServer(tmp_path / "index") as index:
        publish(index, tmp_path, "gamma")
        async with running_warmer(tmp_path / "d", index.url) as warm:
            catalog = warm.rt.catalog
            loop = warm.rt.config.indexes[0]
            page = await catalog.fetch_page(loop, "gamma")
            assert page is not None
            await catalog.fetch_file(loop, "gamma", page.files[0])  # used just now
            index.reset_log()

            await warm.refresh_once()

            assert page_requests(index, "gamma") == ["/simple/gamma/"]


#: The offline cool-down of the pause test: long beside the one second it watches the pause for,
#: so that a loaded machine (a stalled thread, a slow round finishing) cannot reach its end.
_COOLDOWN = 8.0


async def test_refresh_pauses_while_every_index_is_offline_and_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with IndexServer(tmp_path / "index") as index:
        publish(index, tmp_path, "alpha")
        timing = Timing(refresh_interval=0.05, offline_poll=0.01)
        limits = dataclasses.replace(FAST_LIMITS, offline_cooldown=_COOLDOWN)
        async with running_warmer(tmp_path / "d", index.url, timing=timing, limits=limits) as warm:
            await watched(warm, tmp_path / "proj", "alpha\n")
            await until(lambda: len(page_requests(index, "alpha")) >= 3)  # refreshing

            index.stop()
            await until(lambda: not warm.reachable())
            # A round that was under way when the index went away ends (counted) first.
            await until(
                lambda: not any(j.method == "refresh" for j in warm.app.background_jobs.values())
            )
            index.start()  # back on the same port, but the daemon has not probed it yet
            index.reset_log()
            rounds = warm.refreshes
            told_to_wait = _count_refusals(warm, monkeypatch)
            # Counted in the refresh loop's own checks, not in seconds: it asked ten times
            # whether it may go, was told to wait, and asked the index nothing.
            await until(lambda: told_to_wait() >= 10)
            assert not warm.reachable()  # still inside the cool-down: the window was in it

            assert index.requests == []  # paused: not one request during the cool-down
            assert warm.refreshes == rounds

            await until(lambda: len(page_requests(index, "alpha")) >= 2, _COOLDOWN + 10)  # resumed
            assert warm.reachable()


def _count_refusals(warm: Warmer, monkeypatch: pytest.MonkeyPatch) -> Callable[[], int]:
    """Count the times the background tasks ask `Warmer.reachable` and are told to wait."""
    refusals = 0
    reachable = warm.reachable

    def counting() -> bool:
        nonlocal refusals
        answer = reachable()
        refusals += not answer
        return answer

    monkeypatch.setattr(warm, "reachable", counting)
    return lambda: refusals


async def test_a_change_made_while_offline_is_prefetched_when_the_index_returns(
    tmp_path: Path,
) -> None:
    with IndexServer(tmp_path / "index") as index:
        publish(index, tmp_path, "alpha")
        beta = publish(index, tmp_path, "beta")
        timing = Timing(offline_poll=0.01, debounce_ms=50)
        async with running_warmer(tmp_path / "d", index.url, timing=timing) as warm:
            project = await watched(warm, tmp_path / "proj", "alpha\n")
            index.stop()
            await warm.refresh_once()  # learns the index is gone
            assert not warm.reachable()

            (tmp_path / "proj" / "requirements.txt").write_text("alpha\nbeta\n")
            await until(lambda: project.path in warm.pending)
            index.start()

            await until(lambda: warm.rt.store.has(beta))
            await until(lambda: project.last is not None and project.last.ok)


async def test_garbage_collection_runs_by_itself_when_idle_and_over_the_cap(
    tmp_path: Path,
) -> None:
    with IndexServer(tmp_path / "index") as index:
        alpha = publish(index, tmp_path, "alpha")
        gamma = publish(index, tmp_path, "gamma")
        timing = Timing(gc_poll=0.02)
        settings = "cache-max-size = 1\n"
        async with running_warmer(
            tmp_path / "d", index.url, settings=settings, timing=timing
        ) as warm:
            await watched(warm, tmp_path / "proj", "alpha\n")
            loop = warm.rt.config.indexes[0]
            page = await warm.rt.catalog.fetch_page(loop, "gamma")
            assert page is not None
            await warm.rt.catalog.fetch_file(loop, "gamma", page.files[0])

            await until(lambda: warm.collections >= 1 and not warm.rt.store.has(gamma))

            assert warm.rt.store.has(alpha)


async def test_an_idle_collection_that_cannot_free_anything_is_not_repeated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    polls = 0
    usage = gc.usage

    def counted_usage(metadb: MetaDB) -> gc.Usage:  # once per idle poll that checks the caps
        nonlocal polls
        polls += 1
        return usage(metadb)

    monkeypatch.setattr(gc, "usage", counted_usage)
    with IndexServer(tmp_path / "index") as index:
        publish(index, tmp_path, "alpha")
        gamma = publish(index, tmp_path, "gamma")
        timing = Timing(gc_poll=0.01)
        settings = "cache-max-size = 1\n"
        async with running_warmer(
            tmp_path / "d", index.url, settings=settings, timing=timing
        ) as warm:
            await watched(warm, tmp_path / "proj", "alpha\n")  # protected, and over the cap
            await until(lambda: warm.collections == 1)
            seen = polls
            await until(lambda: polls >= seen + 10)  # ten more polls, each over the cap
            assert warm.collections == 1

            loop = warm.rt.config.indexes[0]
            page = await warm.rt.catalog.fetch_page(loop, "gamma")
            assert page is not None
            await warm.rt.catalog.fetch_file(loop, "gamma", page.files[0])  # the store changed

            await until(lambda: warm.collections == 2)
            assert not warm.rt.store.has(gamma)


async def test_editing_a_watched_script_prefetches_its_new_dependency(tmp_path: Path) -> None:
    with IndexServer(tmp_path / "index") as index:
        publish(index, tmp_path, "alpha")
        beta = publish(index, tmp_path, "beta")
        script = tmp_path / "tool.py"
        script.write_text('# /// script\n# dependencies = ["alpha"]\n# ///\n')
        timing = Timing(debounce_ms=50)
        async with running_warmer(tmp_path / "d", index.url, timing=timing) as warm:
            project, _added = await warm.add(script, None)
            await until(lambda: project.last is not None and project.last.ok)
            await until(lambda: not warm.pending and not warm.running)

            script.write_text('# /// script\n# dependencies = ["alpha", "beta"]\n# ///\n')

            await until(lambda: warm.rt.store.has(beta))


async def test_a_new_requirements_subdirectory_of_a_watched_project_is_prefetched(
    tmp_path: Path,
) -> None:
    with IndexServer(tmp_path / "index") as index:
        publish(index, tmp_path, "alpha")
        beta = publish(index, tmp_path, "beta")
        timing = Timing(debounce_ms=50)
        async with running_warmer(tmp_path / "d", index.url, timing=timing) as warm:
            project = await watched(warm, tmp_path / "proj", "alpha\n")
            (tmp_path / "proj" / "requirements").mkdir()
            (tmp_path / "proj" / "requirements" / "dev.txt").write_text("beta\n")

            await until(lambda: warm.rt.store.has(beta))
            await until(lambda: project.last is not None and len(project.last.sources) == 2)
