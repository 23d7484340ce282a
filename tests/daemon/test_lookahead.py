"""The resolve look-ahead asks the index only for what the resolution can use (issue 15).

An online resolve fetches the pages of dependencies, and the core metadata of each one's likely
candidate, ahead of the resolver (`catalog.Session.warm`). On a remote index every such request
is a round trip and bytes, so the look-ahead must follow the requirements as the resolver will:

* a dependency whose environment marker is false for the target is never asked for;
* a dependency under an extra nobody requested is never asked for; a requested extra's are;
* the likely candidate is the newest version the known requirements allow, so a dependency
  pinned below its newest release does not cost the newest release's metadata (and the pages of
  its dependencies).

The runtime runs in the test's trio run with a nursery of its own for the look-ahead, so when
that nursery closes every look-ahead request has been made: the counts are exact, not timed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio

from satchel.daemon.indexes.catalog import Catalog
from satchel.daemon.requests.resolution import read_inputs, resolve_request, target_for
from satchel.daemon.requests.runtime import Runtime
from satchel.daemon.settings.liveconfig import LiveConfig
from satchel.daemon.storage.store import open_cache
from satchel.daemon.upstream.client import Upstream
from satchel.protocol.methods.resolve import ResolveParams
from tests.support.index_server import IndexServer
from tests.support.wheels import build_wheel

#: A Linux target, so a ``sys_platform == "win32"`` marker is false whatever runs the test.
TARGET = {"python_version": "3.11", "platforms": ["manylinux2014_x86_64"]}


@pytest.fixture
def index(tmp_path: Path) -> IndexServer:
    dist = tmp_path / "dist"
    build_wheel(
        dist,
        "app",
        "1.0",
        requires=[
            "needed<2",
            'onlywin; sys_platform == "win32"',
            'oldpy; python_version < "3"',
        ],
        extras={"docs": ["docstool"], "gui": ["guitool"]},
    )
    build_wheel(dist, "needed", "1.0", requires=["deep"])
    build_wheel(dist, "needed", "2.0", requires=["newdep"])  # newest, but excluded by app
    for name, requires in [
        ("deep", []),
        ("newdep", []),
        ("onlywin", ["windep"]),
        ("windep", []),
        ("oldpy", []),
        ("docstool", ["docdep"]),
        ("docdep", []),
        ("guitool", []),
    ]:
        build_wheel(dist, name, "1.0", requires=requires)
    return IndexServer(dist)


@asynccontextmanager
async def runtime(directory: Path, index_url: str) -> AsyncIterator[Runtime]:
    """The daemon's runtime on *index_url*; on exit, waits for every look-ahead to finish."""
    config = directory / "config" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text(f'[[index]]\nname = "loop"\nurl = "{index_url}"\n')
    store, metadb, _recovery = await trio.to_thread.run_sync(open_cache, directory / "cache")
    try:
        async with Upstream() as upstream, trio.open_nursery() as nursery:
            rt = Runtime(store=store, metadb=metadb, upstream=upstream, live=LiveConfig(config))
            rt.interpreters_dir = directory / "interpreters"
            rt.refresh_config()
            rt.catalog = Catalog(upstream, store, metadb, nursery, lambda: rt.config)
            yield rt
    finally:
        metadb.close()


async def resolve_counting(tmp_path: Path, index: IndexServer, *requirements: str) -> Counter[str]:
    """Resolve *requirements* online; every request the index got, look-ahead included."""
    params = ResolveParams(requirements=list(requirements), **TARGET)  # type: ignore[arg-type]
    with index:
        async with runtime(tmp_path / "daemon", index.url) as rt:
            target = await target_for(rt, params)
            await resolve_request(rt, params, await read_inputs(params), target)
        return Counter(index.requests)


def pages(*projects: str) -> Counter[str]:
    return Counter(f"/simple/{project}/" for project in projects)


def metadata(*files: str) -> Counter[str]:
    return Counter(f"/files/{name}-py3-none-any.whl.metadata" for name in files)


async def test_false_markers_unrequested_extras_and_excluded_versions_cost_no_request(
    tmp_path: Path, index: IndexServer
) -> None:
    """issue 15: each page and metadata file the resolution uses, once; nothing else."""
    requests = await resolve_counting(tmp_path, index, "app")

    assert requests == pages("app", "needed", "deep") + metadata(
        "app-1.0", "needed-1.0", "deep-1.0"
    )


async def test_a_requested_extra_is_looked_ahead_and_the_others_are_not(
    tmp_path: Path, index: IndexServer
) -> None:
    """issue 15: ``app[docs]`` brings docstool and its dependency, never guitool."""
    requests = await resolve_counting(tmp_path, index, "app[docs]")

    assert requests == pages("app", "needed", "deep", "docstool", "docdep") + metadata(
        "app-1.0", "needed-1.0", "deep-1.0", "docstool-1.0", "docdep-1.0"
    )


async def test_metadata_just_fetched_is_handed_to_the_next_read_without_reading_the_metadb(
    tmp_path: Path, index: IndexServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """issue 15: the look-ahead fetches and stores a candidate's metadata, and the resolver
    reads the same file moments later: that read is handed the bytes in memory
    (`_juststored`), once; it was a thread hop to read back what had just been written."""
    reads: list[str | None] = []
    with index:
        async with runtime(tmp_path / "daemon", index.url) as rt:
            get = rt.metadb.get_core_metadata

            def counted(
                sha256: str | None = None, *, index: str | None = None, filename: str | None = None
            ) -> bytes | None:
                reads.append(filename)
                return get(sha256, index=index, filename=filename)

            monkeypatch.setattr(rt.metadb, "get_core_metadata", counted)
            (config,) = rt.config.indexes
            page = await rt.catalog.fetch_page(config, "deep")
            assert page is not None
            (file,) = page.files
            first = await rt.catalog.core_metadata(config, page, file, offline=False)
            assert reads == [file.filename]  # nothing stored yet: fetched from the index
            assert await rt.catalog.core_metadata(config, page, file, offline=False) == first
            assert reads == [file.filename]  # handed over: no metadb read, no request
            assert await rt.catalog.core_metadata(config, page, file, offline=False) == first
            assert reads == [file.filename] * 2  # once only: then the metadb, as before
    assert b"Name: deep" in first
    assert Counter(index.requests) == pages("deep") + metadata("deep-1.0")
