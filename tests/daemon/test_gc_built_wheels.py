"""Garbage collection and built wheels: a wheel built from a needed sdist stays with it.

A built wheel is a blob with no origin (no index serves it): nothing but its sdist says it is
needed, and an offline install of an sdist pin uses that wheel, never the sdist. So while a
watched project (or a lock) needs the sdist, its built wheel is protected like the sdist; once
nothing needs the sdist, both are ordinary files for the caps.
"""

from __future__ import annotations

from pathlib import Path

from satchel.daemon.requests import gc
from satchel.daemon.requests.builder import wheel_for
from satchel.daemon.requests.readiness import project_target
from satchel.daemon.requests.watch import WatchedProject
from satchel.daemon.services.refresh import Warmer
from satchel.daemon.storage.metadb import BuiltWheel
from tests.support.index_server import IndexServer
from tests.support.warm import running_warmer
from tests.support.wheels import build_sdist, build_wheel, file_sha256


async def _build(warm: Warmer, project: WatchedProject, sdist: Path) -> BuiltWheel:
    """Fetch *sdist* (the index's only file for it) and build it for *project*'s target."""
    name = sdist.name.split("-")[0]
    session = warm.rt.catalog.session()
    page = (await session.scoped_pages(name)).pages[0]
    (file,) = page.files
    await warm.rt.catalog.fetch_file(session.indexes[0], name, file)
    target = await project_target(warm.rt, project)
    return await wheel_for(warm.rt, session, target, name, file, file_sha256(sdist))


async def test_the_wheel_built_from_a_watched_projects_sdist_survives_a_tiny_cap(
    tmp_path: Path,
) -> None:
    with IndexServer(tmp_path / "index") as index:
        sdist = index.add(build_sdist(tmp_path / "dist", "stpkg", "2.0"))
        other = index.add(build_wheel(tmp_path / "dist", "other", "1.0"))
        proj = tmp_path / "proj"
        proj.mkdir()
        (proj / "requirements.txt").write_text("stpkg\n")
        project = WatchedProject(path=str(proj), python=None, added_at=0.0)
        async with running_warmer(tmp_path / "d", index.url) as warm:
            built = await _build(warm, project, sdist)
            session = warm.rt.catalog.session()
            (entry,) = (await session.scoped_pages("other")).pages[0].files
            await warm.rt.catalog.fetch_file(session.indexes[0], "other", entry)

            report = await gc.collect(warm.rt, [project], max_size=1, max_age=None)

            store = warm.rt.store
            assert [v.sha256 for v in report.plan.victims] == [file_sha256(other)]
            assert store.has(file_sha256(sdist))
            assert store.has(built.wheel_sha256)


async def test_once_nothing_needs_the_sdist_its_built_wheel_may_go_too(tmp_path: Path) -> None:
    with IndexServer(tmp_path / "index") as index:
        sdist = index.add(build_sdist(tmp_path / "dist", "stpkg", "2.0"))
        proj = tmp_path / "proj"
        proj.mkdir()
        project = WatchedProject(path=str(proj), python=None, added_at=0.0)
        async with running_warmer(tmp_path / "d", index.url) as warm:
            built = await _build(warm, project, sdist)

            await gc.collect(warm.rt, [], max_size=1, max_age=None)

            assert not warm.rt.store.has(file_sha256(sdist))
            assert not warm.rt.store.has(built.wheel_sha256)
