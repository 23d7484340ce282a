"""Offline sessions remember which listed versions the store lacks (`ScopedPages.unstored`).

Offline, a project's cached pages are filtered to stored files, so what resolves offline also
installs offline; the versions the filter removed are kept aside, so that a miss can be
explained as "not downloaded" rather than "no such version".
"""

from __future__ import annotations

from pathlib import Path

from tests.support.index_server import IndexServer
from tests.support.warm import running_warmer
from tests.support.wheels import build_sdist, build_wheel


async def test_versions_listed_but_not_stored_are_named_offline(tmp_path: Path) -> None:
    with IndexServer(tmp_path / "index") as index:
        dist = tmp_path / "dist"
        index.add(build_wheel(dist, "alpha", "1.0"))
        index.add(build_wheel(dist, "alpha", "2.0"))
        index.add(build_wheel(dist, "alpha", "3.0"))
        index.add(build_sdist(dist, "alpha", "3.0"))
        async with running_warmer(tmp_path / "d", index.url) as warm:
            online = warm.rt.catalog.session()
            (page,) = (await online.scoped_pages("alpha")).pages
            assert (await online.scoped_pages("alpha")).unstored == ()  # online: no filter
            for file in page.files:
                if file.filename in ("alpha-1.0-py3-none-any.whl", "alpha-3.0.tar.gz"):
                    await warm.rt.catalog.fetch_file(online.indexes[0], "alpha", file)

            scoped = await warm.rt.catalog.session(offline=True).scoped_pages("alpha")

            assert sorted(f.filename for p in scoped.pages for f in p.files) == [
                "alpha-1.0-py3-none-any.whl",
                "alpha-3.0.tar.gz",
            ]
            # 3.0 has a stored file (its sdist), so it is a candidate, not "unstored".
            assert scoped.unstored == ("2.0",)
