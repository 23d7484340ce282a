"""`resolution.fetch_files`: the one download loop prefetch, install and watched projects share."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from satchel.daemon.errors import HashMismatch, NotCached
from satchel.daemon.indexes.session import Session
from satchel.daemon.requests.resolution import fetch_files
from satchel.daemon.settings.config import IndexConfig
from satchel.daemon.storage.model import FileEntry
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
