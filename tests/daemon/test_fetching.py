"""`fetching.fetch_files`: the one download loop prefetch, install and watched projects share,
and a prefetch's downloads started while it resolves (`EarlyFetches`, issue 15)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from satchel.daemon.errors import HashMismatch, NotCached
from satchel.daemon.indexes.session import Session
from satchel.daemon.requests.fetching import EarlyFetches, Fetched, fetch_files
from satchel.daemon.requests.resolution import (
    pinned_files,
    read_inputs,
    resolve_request,
    target_for,
)
from satchel.daemon.requests.runtime import Runtime
from satchel.daemon.settings.config import IndexConfig
from satchel.daemon.storage.model import FileEntry
from satchel.daemon.storage.store import BlobInfo
from satchel.protocol.methods.resolve import ResolveParams
from tests.support.index_server import IndexServer
from tests.support.warm import running_warmer
from tests.support.wheels import build_wheel

Entry = tuple[IndexConfig, str, FileEntry]


async def entry(session: Session, project: str) -> Entry:
    """(index, project, file) for the only file of *project*, as a resolve would pin it."""
    scoped = await session.scoped_pages(project)
    (page,) = scoped.pages
    index = session.index(page.index)
    assert index is not None
    return (index, project, page.files[0])


@pytest.fixture
def index(tmp_path: Path) -> Iterator[IndexServer]:
    dist = tmp_path / "dist"
    for name in ("alpha", "beta", "gamma"):
        build_wheel(dist, name, "1.0")
    with IndexServer(dist) as server:
        yield server


async def test_one_bad_file_fails_as_itself_and_the_others_stay_stored(
    tmp_path: Path, index: IndexServer
) -> None:
    index.corrupt("beta-1.0-py3-none-any.whl")
    async with running_warmer(tmp_path / "d", index.url) as warm:
        rt = warm.rt
        session = rt.catalog.session()
        files = [await entry(session, name) for name in ("alpha", "beta", "gamma")]
        result = await fetch_files(rt.catalog, files)
        assert sorted(what for what, _exc in result.failures) == [
            "beta (beta-1.0-py3-none-any.whl)"
        ]
        assert {f.filename for _i, _p, f in files if f.url in result.stored} == {
            "alpha-1.0-py3-none-any.whl",
            "gamma-1.0-py3-none-any.whl",
        }
        assert all(rt.store.has(sha) for sha in result.stored.values())
        with pytest.raises(HashMismatch, match=r"beta-1\.0-py3-none-any\.whl"):
            result.raise_failures()


async def test_offline_a_batch_is_only_confirmed_and_misses_are_named(
    tmp_path: Path, index: IndexServer
) -> None:
    async with running_warmer(tmp_path / "d", index.url) as warm:
        rt = warm.rt
        session = rt.catalog.session()
        files = [await entry(session, "alpha")]
        requests_before = len(index.requests)
        with pytest.raises(NotCached, match=r"alpha \(alpha-1.0-py3-none-any.whl\)"):
            await fetch_files(rt.catalog, files, offline=True)
        assert len(index.requests) == requests_before
        await fetch_files(rt.catalog, files)
        confirmed = await fetch_files(rt.catalog, files, offline=True)
        assert (confirmed.downloaded, confirmed.failures) == (0, [])


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[IndexServer]:
    """app -> needed -> deep: each pinned only once its dependent's metadata is read."""
    dist = tmp_path / "chain"
    build_wheel(dist, "app", "1.0", requires=["needed"])
    build_wheel(dist, "needed", "1.0", requires=["deep"])
    build_wheel(dist, "deep", "1.0")
    with IndexServer(dist) as server:
        yield server


async def prefetch_early(
    tmp_path: Path, index: IndexServer, prepare: Callable[[Runtime], None] | None = None
) -> tuple[EarlyFetches, Fetched]:
    """What `satchel prefetch app` does: resolve with early downloads, then fetch the pins;
    when it returns, nothing it stored still waits to be made durable. *prepare* gets the
    daemon's runtime first."""
    params = ResolveParams(requirements=["app"])
    async with running_warmer(tmp_path / "d", index.url) as warm:
        rt = warm.rt
        if prepare is not None:
            prepare(rt)
        early = EarlyFetches(rt.catalog)
        target = await target_for(rt, params)
        inputs = await read_inputs(params)
        outcome = await resolve_request(rt, params, inputs, target, pinned=early.pinned)
        files = pinned_files(outcome.session, outcome.resolution.pins)
        fetched = await fetch_files(rt.catalog, files, early=early)
        assert rt.catalog.unsynced.sync() == 0  # its directories were synced with the batch
        return early, fetched


def wheel_requests(index: IndexServer) -> Counter[str]:
    return Counter(path for path in index.requests if path.endswith(".whl"))


async def test_each_file_is_downloaded_as_it_is_pinned_once_and_counted_once(
    tmp_path: Path, chain: IndexServer
) -> None:
    early, fetched = await prefetch_early(tmp_path, chain)
    names = ("app", "needed", "deep")
    assert {url.rsplit("/", 1)[-1] for url in early.started} == {
        f"{name}-1.0-py3-none-any.whl" for name in names
    }
    assert not fetched.failures
    assert fetched.downloaded == 3
    assert wheel_requests(chain) == Counter(f"/files/{n}-1.0-py3-none-any.whl" for n in names)


async def test_an_early_download_that_fails_is_the_files_error_not_retried(
    tmp_path: Path, chain: IndexServer
) -> None:
    chain.corrupt("needed-1.0-py3-none-any.whl")
    _early, fetched = await prefetch_early(tmp_path, chain)
    assert [what for what, _exc in fetched.failures] == ["needed (needed-1.0-py3-none-any.whl)"]
    with pytest.raises(HashMismatch, match=r"needed-1\.0-py3-none-any\.whl"):
        fetched.raise_failures()
    assert wheel_requests(chain)["/files/needed-1.0-py3-none-any.whl"] == 1
    assert fetched.downloaded == 2


async def test_an_early_download_that_breaks_unexpectedly_is_fetched_again_by_its_request(
    tmp_path: Path, chain: IndexServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure that is no `SatchelError` (an EIO from the disk, a bug) in an early download
    must not end the daemon, whose service nursery runs it: the request fetches the file
    itself, as it did before early downloads."""
    broken: list[str] = []

    def break_first_fetch(rt: Runtime) -> None:
        real = rt.catalog.fetch_file

        async def breaks_once(
            index: IndexConfig, project: str, file: FileEntry, **kw: Any
        ) -> BlobInfo:
            if not broken:
                broken.append(file.filename)
                raise OSError(5, "Input/output error")
            return await real(index, project, file, **kw)

        monkeypatch.setattr(rt.catalog, "fetch_file", breaks_once)

    early, fetched = await prefetch_early(tmp_path, chain, break_first_fetch)
    assert broken and fetched.failures == []
    assert set(fetched.stored) == early.started  # every pinned file stored


async def test_a_file_fetched_outside_a_batch_answers_durable_while_a_batch_is_pending(
    tmp_path: Path, chain: IndexServer
) -> None:
    """A download outside any prefetch (the local index, a build) may join a prefetch's early
    download of the same file, which leaves its directories to the prefetch's end: it answers
    only once what is pending is durable."""
    async with running_warmer(tmp_path / "d", chain.url) as warm:
        rt = warm.rt
        index, project, file = await entry(rt.catalog.session(), "needed")
        rt.catalog.unsynced.add(tmp_path)  # what a batch under way left to its end
        await rt.catalog.fetch_file(index, project, file)
        assert not rt.catalog.unsynced.pending()
