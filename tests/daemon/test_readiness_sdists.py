"""`satchel ready` and sdists: an sdist pin is ready offline only once built for the target.

An offline install replaces a pinned sdist by the wheel built from it for that interpreter
(`environments._wheels`); without one it fails (`builder.NotBuilt`). So the stored sdist alone
is not readiness: the check must look for the built wheel, and when there is none name the sdist,
the interpreter and the command that builds it.
"""

from __future__ import annotations

from pathlib import Path

from satchel.daemon.requests.builder import wheel_for
from satchel.daemon.requests.fetching import fetch_files
from satchel.daemon.requests.readiness import (
    check_project,
    needed_files,
    prefetch_project,
    project_target,
)
from satchel.daemon.requests.watch import WatchedProject
from tests.support.index_server import IndexServer
from tests.support.warm import running_warmer
from tests.support.wheels import build_sdist, build_wheel, file_sha256


def project_at(path: Path) -> WatchedProject:
    return WatchedProject(path=str(path), python=None, added_at=0.0)


async def test_a_stored_sdist_never_built_is_a_gap_naming_it_the_interpreter_and_the_fix(
    tmp_path: Path,
) -> None:
    with IndexServer(tmp_path / "index") as index:
        index.add(build_wheel(tmp_path / "dist", "dep", "1.0"))
        sdist = index.add(build_sdist(tmp_path / "dist", "stpkg", "2.0", requires=["dep>=1"]))
        proj = tmp_path / "proj"
        proj.mkdir()
        (proj / "requirements.txt").write_text("stpkg\n")
        async with running_warmer(tmp_path / "d", index.url) as warm:
            project = project_at(proj)
            # Stored, not built (as a download-only fill would leave it).
            needed = await needed_files(warm.rt, project, offline=False)
            await fetch_files(warm.rt.catalog, needed.files)
            assert warm.rt.store.has(file_sha256(sdist))
            target = await project_target(warm.rt, project)

            check = await check_project(warm.rt, project)

            assert not check.ready
            assert len(check.gaps) == 1, check.gaps
            gap = check.gaps[0]
            assert "stpkg-2.0.tar.gz" in gap
            assert target.executable is not None and target.executable in gap
            assert f"satchel prefetch stpkg==2.0 --python {target.executable}" in gap


async def test_a_watched_prefetch_builds_the_sdists_it_pins_so_the_project_is_ready(
    tmp_path: Path,
) -> None:
    with IndexServer(tmp_path / "index") as index:
        index.add(build_sdist(tmp_path / "dist", "stpkg", "2.0"))
        proj = tmp_path / "proj"
        proj.mkdir()
        (proj / "requirements.txt").write_text("stpkg\n")
        async with running_warmer(tmp_path / "d", index.url) as warm:
            project = project_at(proj)
            record = await prefetch_project(warm.rt, project)
            assert record.ok, record.message

            check = await check_project(warm.rt, project)

            assert check.ready, check.gaps


async def test_a_stored_sdist_built_for_the_target_is_ready(tmp_path: Path) -> None:
    with IndexServer(tmp_path / "index") as index:
        sdist = index.add(build_sdist(tmp_path / "dist", "stpkg", "2.0"))
        proj = tmp_path / "proj"
        proj.mkdir()
        (proj / "requirements.txt").write_text("stpkg\n")
        async with running_warmer(tmp_path / "d", index.url) as warm:
            project = project_at(proj)
            await prefetch_project(warm.rt, project)
            target = await project_target(warm.rt, project)
            session = warm.rt.catalog.session()
            page = (await session.scoped_pages("stpkg")).pages[0]
            (file,) = page.files
            await wheel_for(warm.rt, session, target, "stpkg", file, file_sha256(sdist))

            check = await check_project(warm.rt, project)

            assert check.ready, check.gaps
