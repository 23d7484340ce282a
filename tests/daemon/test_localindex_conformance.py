"""Conformance of the local index, judged by a third-party parser (`pypi-simple`), not by our own.

The same pages are read as PEP 691 JSON and as PEP 503 HTML through `pypi_simple.PyPISimple`
(requests underneath, basic auth with the token); files and PEP 658 metadata are downloaded with
its digest verification turned on.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pypi_simple
import pytest
import trio

from tests.support.localindex import Local, local_index
from tests.support.wheels import file_sha256, wheel_metadata


def client(local: Local, accept: str) -> pypi_simple.PyPISimple:
    return pypi_simple.PyPISimple(
        endpoint=local.base + "/simple/", auth=("satchel", local.token), accept=accept
    )


@pytest.mark.parametrize(
    ("accept", "repository_version"),
    [(pypi_simple.ACCEPT_JSON_ONLY, "1.1"), (pypi_simple.ACCEPT_HTML_ONLY, "1.1")],
)
async def test_project_page_parses_with_every_field(
    tmp_path: Path, accept: str, repository_version: str
) -> None:
    async with local_index(tmp_path) as local:
        local.index.yank("alpha-1.0-py3-none-any.whl", "bad build")
        with client(local, accept) as simple:
            page = await trio.to_thread.run_sync(simple.get_project_page, "alpha")
        assert page.project == "alpha"
        assert page.repository_version == repository_version
        packages = {p.filename: p for p in page.packages}
        assert set(packages) == {"alpha-1.0-py3-none-any.whl", "alpha-2.0-py3-none-any.whl"}
        new, old = packages["alpha-2.0-py3-none-any.whl"], packages["alpha-1.0-py3-none-any.whl"]
        wheel = local.dist / new.filename
        assert new.digests == {"sha256": file_sha256(wheel)}
        assert new.requires_python == ">=3.8"
        assert new.has_metadata is True
        metadata_sha = hashlib.sha256(wheel_metadata(wheel)).hexdigest()
        assert new.metadata_digests == {"sha256": metadata_sha}
        assert (old.is_yanked, old.yanked_reason) == (True, "bad build")
        assert not new.is_yanked
        if accept == pypi_simple.ACCEPT_JSON_ONLY:
            assert sorted(page.versions or []) == ["1.0", "2.0"]
            assert new.size == wheel.stat().st_size
            assert new.upload_time is not None


async def test_downloads_and_metadata_verify_against_the_listed_digests(tmp_path: Path) -> None:
    async with local_index(tmp_path) as local:
        with client(local, pypi_simple.ACCEPT_JSON_PREFERRED) as simple:
            page = await trio.to_thread.run_sync(simple.get_project_page, "alpha")
            package = next(p for p in page.packages if p.version == "2.0")
            target = tmp_path / "out" / package.filename
            await trio.to_thread.run_sync(
                lambda: simple.download_package(package, target, verify=True)
            )
            metadata = await trio.to_thread.run_sync(
                lambda: simple.get_package_metadata_bytes(package, verify=True)
            )
        assert target.read_bytes() == (local.dist / package.filename).read_bytes()
        assert metadata == wheel_metadata(local.dist / package.filename)


async def test_root_page_lists_projects(tmp_path: Path) -> None:
    async with local_index(tmp_path) as local:
        await local.get("/simple/alpha/")
        await local.get("/simple/beta/")
        for accept in (pypi_simple.ACCEPT_JSON_ONLY, pypi_simple.ACCEPT_HTML_ONLY):
            with client(local, accept) as simple:
                index = await trio.to_thread.run_sync(simple.get_index_page)
            assert sorted(index.projects) == ["alpha", "beta"]
            assert index.repository_version == "1.1"
