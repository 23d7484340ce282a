"""Offline resolves read pages in the resolver thread (no hop to the event loop per project).

A warm offline resolve of a 112-project set spent three quarters of its time hopping from the
resolver thread to trio and back once per project page. Offline, a scope depends only on the
metadb and the store, so `Session.offline_pages_sync` computes it in the calling thread; these
tests pin down that it answers exactly what `scoped_pages` answers, and needs no trio token.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio

from satchel.daemon.api import RequestContext
from satchel.daemon.api.resolve import resolve as resolve_method
from satchel.daemon.errors import NotCached
from satchel.daemon.requests.fetching import fetch_files
from satchel.daemon.requests.resolution import (
    CACHE_CHECK_THREADS,
    RESOLVE_THREADS,
    Outcome,
    SessionSource,
    cache_check_threads,
    resolve_params,
    resolver_threads,
)
from satchel.daemon.resolver.scope import ScopedPages
from satchel.daemon.services.refresh import Warmer
from satchel.protocol.messages import Message
from satchel.protocol.methods.resolve import ResolveParams
from tests.support.index_server import IndexServer
from tests.support.warm import running_warmer
from tests.support.wheels import build_wheel


def _in_plain_thread(fn: object, *args: str) -> ScopedPages:
    """Run *fn* in a thread trio knows nothing about (`trio.from_thread` fails there)."""
    box: list[object] = []
    thread = threading.Thread(target=lambda: box.append(_call(fn, *args)))
    thread.start()
    thread.join()
    (result,) = box
    if isinstance(result, BaseException):
        raise result
    assert isinstance(result, ScopedPages)
    return result


def _call(fn: object, *args: str) -> object:
    try:
        return fn(*args)  # type: ignore[operator]
    except BaseException as exc:
        return exc


@asynccontextmanager
async def alpha_stored(tmp_path: Path) -> AsyncIterator[tuple[Warmer, ResolveParams]]:
    """A running warmer whose cache holds alpha 1.0 (its page and its wheel), and the params of
    an offline resolve of it."""
    with IndexServer(tmp_path / "index") as index:
        index.add(build_wheel(tmp_path / "dist", "alpha", "1.0"))
        async with running_warmer(tmp_path / "d", index.url) as warm:
            online = warm.rt.catalog.session()
            (page,) = (await online.scoped_pages("alpha")).pages
            await warm.rt.catalog.fetch_file(online.indexes[0], "alpha", page.files[0])
            yield warm, ResolveParams(requirements=["alpha"], offline=True)


async def test_offline_pages_in_a_thread_match_scoped_pages(tmp_path: Path) -> None:
    with IndexServer(tmp_path / "index") as index:
        dist = tmp_path / "dist"
        for version in ("1.0", "2.0"):
            index.add(build_wheel(dist, "alpha", version))
        async with running_warmer(tmp_path / "d", index.url) as warm:
            online = warm.rt.catalog.session()
            (page,) = (await online.scoped_pages("alpha")).pages
            stored = next(f for f in page.files if f.filename.startswith("alpha-1.0"))
            await warm.rt.catalog.fetch_file(online.indexes[0], "alpha", stored)

            expected = await warm.rt.catalog.session(offline=True).scoped_pages("alpha")
            session = warm.rt.catalog.session(offline=True)
            source = SessionSource(session)
            got = _in_plain_thread(source.pages, "Alpha")

    assert got == expected
    assert [f.filename for p in got.pages for f in p.files] == ["alpha-1.0-py3-none-any.whl"]
    assert got.unstored == ("2.0",)


async def test_offline_pages_are_memoised_per_session(tmp_path: Path) -> None:
    async with alpha_stored(tmp_path) as (warm, _params):
        session = warm.rt.catalog.session(offline=True)
        first = await trio.to_thread.run_sync(session.offline_pages_sync, "alpha")
        again = await session.scoped_pages("alpha")

    assert again is first


async def test_online_sessions_still_hop_to_the_event_loop(tmp_path: Path) -> None:
    with IndexServer(tmp_path / "index") as index:
        index.add(build_wheel(tmp_path / "dist", "alpha", "1.0"))
        async with running_warmer(tmp_path / "d", index.url) as warm:
            source = SessionSource(warm.rt.catalog.session())
            scoped = await trio.to_thread.run_sync(source.pages, "alpha")

    assert [f.filename for p in scoped.pages for f in p.files] == ["alpha-1.0-py3-none-any.whl"]


async def test_offline_fetch_files_confirms_stored_files_in_one_batch(tmp_path: Path) -> None:
    with IndexServer(tmp_path / "index") as index:
        dist = tmp_path / "dist"
        index.add(build_wheel(dist, "alpha", "1.0"))
        index.add(build_wheel(dist, "beta", "2.0"))
        async with running_warmer(tmp_path / "d", index.url) as warm:
            catalog = warm.rt.catalog
            online = catalog.session()
            files = []
            for project in ("alpha", "beta"):
                (page,) = (await online.scoped_pages(project)).pages
                files.append((online.indexes[0], project, page.files[0]))
            await fetch_files(catalog, files)
            events: list[tuple[int, int | None, str]] = []

            async def progress(done: int, total: int | None, unit: str, message: str) -> None:
                events.append((done, total, message))

            result = await fetch_files(catalog, files, progress, offline=True)

    assert result.stored == {file.url: file.sha256 for _i, _p, file in files}
    assert result.downloaded == 0 and not result.failures
    total = sum(file.size or 0 for _i, _p, file in files)
    assert [m for _d, _t, m in events] == ["2/2 cached"]  # one event for the batch
    assert events[-1][:2] == (total, total)


async def test_offline_fetch_files_names_a_blob_that_is_gone(tmp_path: Path) -> None:
    with IndexServer(tmp_path / "index") as index:
        index.add(build_wheel(tmp_path / "dist", "alpha", "1.0"))
        async with running_warmer(tmp_path / "d", index.url) as warm:
            catalog = warm.rt.catalog
            online = catalog.session()
            (page,) = (await online.scoped_pages("alpha")).pages
            files = [(online.indexes[0], "alpha", page.files[0])]
            await fetch_files(catalog, files)
            assert page.files[0].sha256 is not None
            catalog.store.path(page.files[0].sha256).unlink()

            with pytest.raises(NotCached, match=r"alpha \(alpha-1\.0-py3-none-any\.whl\)"):
                await fetch_files(catalog, files, offline=True)


async def test_a_repeated_offline_resolve_is_answered_without_a_resolver_thread(
    tmp_path: Path,
) -> None:
    # Issue 15, warm repeated resolve: the result cache is checked in the hop that reads the
    # inputs, so a remembered answer waits for no resolver thread (here: all of them taken).
    async with alpha_stored(tmp_path) as (warm, params):
        first = await resolve_params(warm.rt, params)
        limiter = resolver_threads()
        holders = [object() for _ in range(RESOLVE_THREADS)]
        for holder in holders:
            limiter.acquire_on_behalf_of_nowait(holder)
        with trio.fail_after(60):  # a guard against a hang, not a measurement
            again = await resolve_params(warm.rt, params)
        for holder in holders:
            limiter.release_on_behalf_of(holder)

    assert [(p.name, p.version) for p in again.resolution.pins] == [("alpha", "1.0")]
    assert again.resolution.pins == first.resolution.pins
    assert again.resolution.stats["cached"] == 1.0


async def test_only_a_resolve_that_worked_asks_for_its_memory_to_be_given_back(
    tmp_path: Path,
) -> None:
    # A resolve answered from the result cache builds next to nothing: the server skips the
    # worker-thread hop and heap walk of `give_back_now` after it (`RequestContext.churned`).
    async def nothing(_message: Message) -> None:
        return None

    async with alpha_stored(tmp_path) as (warm, params):
        churned, pins = [], []
        for request_id in (1, 2):
            ctx = RequestContext(warm.app, request_id, "resolve", nothing)
            pins.append((await resolve_method(ctx, params)).pins)
            churned.append(ctx.churned)

    assert churned == [True, False]
    assert pins[0] == pins[1]


async def test_offline_result_cache_checks_run_in_a_bounded_pool_of_their_own(
    tmp_path: Path,
) -> None:
    # A check whose kept page sets are out of date decodes stored pages: checks at once are
    # bounded (`CACHE_CHECK_THREADS`) like resolves, not by trio's 40 default threads; one waits
    # while the pool is full and answers once a slot frees.
    async with alpha_stored(tmp_path) as (warm, params):
        await resolve_params(warm.rt, params)
        limiter = cache_check_threads()
        assert limiter.total_tokens == CACHE_CHECK_THREADS
        holders = [object() for _ in range(CACHE_CHECK_THREADS)]
        for holder in holders:
            limiter.acquire_on_behalf_of_nowait(holder)
        answers: list[Outcome] = []

        async def resolve_again() -> None:
            answers.append(await resolve_params(warm.rt, params))

        with trio.fail_after(60):  # a guard against a hang, not a measurement
            async with trio.open_nursery() as nursery:
                nursery.start_soon(resolve_again)
                while limiter.statistics().tasks_waiting == 0 and not answers:  # noqa: ASYNC110
                    await trio.sleep(0.01)
                assert answers == []  # waiting for a slot
                limiter.release_on_behalf_of(holders.pop())
        for holder in holders:
            limiter.release_on_behalf_of(holder)

    assert [(p.name, p.version) for p in answers[0].resolution.pins] == [("alpha", "1.0")]
    assert answers[0].resolution.stats["cached"] == 1.0
