"""The local index keeps rendered pages (`localindex.pagememo`): what that may and may not change.

Counted, never timed: upstream requests (the `IndexServer` log) and metadb reads (the real
methods, wrapped to count their calls). The revalidation window is set per test (`window`) so that
no outcome depends on how fast the machine is: an hour stands for "within the window", zero for
"past it".
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trio

from satchel.daemon.localindex import _pagememo as pagememo
from satchel.daemon.requests.runtime import Runtime
from satchel.daemon.services.daemon import runtime
from tests.support.localindex import Local, local_index, two_indexes

JSON_V1 = "application/vnd.pypi.simple.v1+json"
#: Page requests per test: enough that "once" cannot be a coincidence of a few.
REQUESTS = 25


@pytest.fixture
def window(monkeypatch: pytest.MonkeyPatch) -> Callable[[float], None]:
    def set_window(seconds: float) -> None:
        monkeypatch.setattr(pagememo, "REVALIDATE_WINDOW", seconds)

    set_window(3600.0)
    return set_window


class Reads:
    """Calls of the metadb reads a page is built from (the real methods, counted)."""

    def __init__(self, rt: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        for owner, name in ((rt.metadb, "pages_for_project"), (rt.metadb, "get_page")):
            monkeypatch.setattr(owner, name, self._counted(getattr(owner, name)))
        origins = rt.catalog.origins
        monkeypatch.setattr(origins, "get", self._counted(origins.get))

    def _counted(self, method: Callable[..., Any]) -> Callable[..., Any]:
        def counted(*args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return method(*args, **kwargs)

        return counted


def page_requests(local: Local, project: str) -> int:
    return sum(1 for r in local.index.requests if r == f"/simple/{project}/")


async def test_pages_within_the_window_ask_upstream_and_the_metadb_once(
    tmp_path: Path, window: Callable[[float], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    async with local_index(tmp_path) as local:
        rt = await runtime(local.app)
        first = await local.get("/simple/alpha/", Accept=JSON_V1)
        assert first.status_code == 200
        # The first page bound alpha to its index and stored the page (metadb writes): the
        # next request builds it once more, from then on it is kept.
        await local.get("/simple/alpha/", Accept=JSON_V1)
        local.index.reset_log()
        reads = Reads(rt, monkeypatch)
        for i in range(REQUESTS):
            accept = JSON_V1 if i % 2 else "text/html"
            response = await local.get("/simple/alpha/", Accept=accept)
            assert response.status_code == 200
            if accept == JSON_V1:
                assert response.content == first.content
                assert response.headers["ETag"] == first.headers["ETag"]
        assert page_requests(local, "alpha") == 0
        assert reads.count == 0


async def test_past_the_window_each_page_is_revalidated_upstream(
    tmp_path: Path, window: Callable[[float], None]
) -> None:
    window(0.0)
    async with local_index(tmp_path) as local:
        await local.get("/simple/alpha/", Accept=JSON_V1)
        local.index.reset_log()
        for _ in range(REQUESTS):
            assert (await local.get("/simple/alpha/", Accept=JSON_V1)).status_code == 200
        assert page_requests(local, "alpha") == REQUESTS


async def test_a_yank_stored_by_the_daemon_shows_in_the_next_page(
    tmp_path: Path, window: Callable[[float], None]
) -> None:
    async with local_index(tmp_path) as local:
        rt = await runtime(local.app)
        for _ in range(3):
            page = (await local.get("/simple/alpha/", Accept=JSON_V1)).json()
        assert not any(f.get("yanked") for f in page["files"])
        local.index.yank("alpha-1.0-py3-none-any.whl", "broken")
        # Within the window the local index does not ask upstream; a resolve does (here: its
        # catalog, as `satchel resolve` uses it), and stores the new page.
        await rt.catalog.session().scoped_pages("alpha")
        page = (await local.get("/simple/alpha/", Accept=JSON_V1)).json()
        yanked = {f["filename"]: f.get("yanked") for f in page["files"]}
        assert yanked["alpha-1.0-py3-none-any.whl"] == "broken"
        html = (await local.get("/simple/alpha/", Accept="text/html")).text
        assert 'data-yanked="broken"' in html


async def test_metadata_stored_since_is_advertised_in_the_next_page(
    tmp_path: Path, window: Callable[[float], None]
) -> None:
    async with local_index(tmp_path) as local:
        rt = await runtime(local.app)
        local.index.metadata = False
        for _ in range(3):
            page = (await local.get("/simple/beta/", Accept=JSON_V1)).json()
        assert "core-metadata" not in page["files"][0]
        # A resolve reads the wheel's metadata (by range requests) and caches it.
        session = rt.catalog.session()
        stored = (await session.scoped_pages("beta")).pages[0]
        await session.core_metadata(stored, stored.files[0])
        again = (await local.get("/simple/beta/", Accept=JSON_V1)).json()
        assert "core-metadata" in again["files"][0]


async def test_a_config_edit_is_followed_by_the_next_page(
    tmp_path: Path, window: Callable[[float], None]
) -> None:
    async with two_indexes(tmp_path) as (local, _public):
        rt = await runtime(local.app)
        for _ in range(3):
            page = (await local.get("/simple/internal-tool/", Accept=JSON_V1)).json()
        assert [f["filename"] for f in page["files"]] == ["internal_tool-1.0-py3-none-any.whl"]
        before = rt.config
        config = tmp_path / "config" / "config.toml"
        text = config.read_text().replace('name = "private"', 'name = "private"\nexplicit = true')
        config.write_text(text)
        with trio.fail_after(30):
            while rt.config is before:  # noqa: ASYNC110 (the live reload has no event to wait on)
                await trio.sleep(0.05)
        response = await local.get("/simple/internal-tool/", Accept=JSON_V1)
        # Bound to 'private', which now serves pinned projects only: refused (naming the way
        # out), never the kept page, and never the look-alike of the other index.
        assert response.status_code == 403, response.text
        assert response.headers["Content-Type"].startswith("text/plain")
        assert "satchel index pin internal-tool" in response.text


async def test_pages_fresh_by_upstream_max_age_are_kept_past_the_window(
    tmp_path: Path, window: Callable[[float], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    window(0.0)
    async with local_index(tmp_path) as local:
        rt = await runtime(local.app)
        local.index.max_age = 3600
        for _ in range(2):  # fetched, bound, stored; then built once more from the metadb
            assert (await local.get("/simple/alpha/", Accept=JSON_V1)).status_code == 200
        local.index.reset_log()
        reads = Reads(rt, monkeypatch)
        for _ in range(REQUESTS):
            assert (await local.get("/simple/alpha/", Accept=JSON_V1)).status_code == 200
        assert page_requests(local, "alpha") == 0
        assert reads.count == 0


class FileReads:
    """Calls of the metadb reads a stored file's and its metadata's answers are made of."""

    def __init__(self, rt: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        for name in ("origins", "get_core_metadata"):
            monkeypatch.setattr(rt.metadb, name, self._counted(getattr(rt.metadb, name)))

    def _counted(self, method: Callable[..., Any]) -> Callable[..., Any]:
        def counted(*args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return method(*args, **kwargs)

        return counted


async def test_a_stored_file_and_its_metadata_are_decided_once(
    tmp_path: Path, window: Callable[[float], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    async with local_index(tmp_path) as local:
        rt = await runtime(local.app)
        url = (await local.get("/simple/beta/", Accept=JSON_V1)).json()["files"][0]["url"]
        first = await local.get(url)
        metadata = await local.get(url + ".metadata")
        assert first.status_code == metadata.status_code == 200
        reads = FileReads(rt, monkeypatch)
        for _ in range(REQUESTS):
            assert (await local.get(url)).content == first.content
            assert (await local.get(url + ".metadata")).content == metadata.content
        assert reads.count == 0


async def test_a_pin_elsewhere_refuses_a_stored_file_served_before(
    tmp_path: Path, window: Callable[[float], None]
) -> None:
    async with two_indexes(tmp_path) as (local, _public):
        rt = await runtime(local.app)
        page = (await local.get("/simple/internal-tool/", Accept=JSON_V1)).json()
        url = page["files"][0]["url"]
        for _ in range(3):
            assert (await local.get(url)).status_code == 200
            assert (await local.get(url + ".metadata")).status_code == 200
        before = rt.config
        config = tmp_path / "config" / "config.toml"
        config.write_text(config.read_text() + '\n[pins]\ninternal-tool = "public"\n')
        with trio.fail_after(30):
            while rt.config is before:  # noqa: ASYNC110 (the live reload has no event to wait on)
                await trio.sleep(0.05)
        for path in (url, url + ".metadata"):
            response = await local.get(path)
            assert response.status_code == 403, response.text
            assert "pinned to index 'public'" in response.text
