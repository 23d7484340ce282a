"""What a watched project needs for its target, and whether the cache holds it (offline)."""

from __future__ import annotations

import sys
from pathlib import Path

import msgspec

from satchel.daemon.requests.readiness import (
    check_project,
    check_tools,
    needed_files,
    prefetch_project,
    python_for,
)
from satchel.daemon.requests.tools import RECORD_NAME, ToolRecord, tools_dir
from satchel.daemon.requests.watch import WatchedProject
from tests.support.index_server import IndexServer
from tests.support.warm import running_warmer
from tests.support.wheels import build_wheel, file_sha256


def project_at(path: Path, python: str | None = None) -> WatchedProject:
    return WatchedProject(path=str(path), python=python, added_at=0.0)


def lock_text(index: IndexServer, wheels: list[Path], *, index_url: str | None = None) -> str:
    """A pylock.toml listing *wheels* (grouped into packages by name) as served by *index*."""
    packages: dict[tuple[str, str], list[Path]] = {}
    for wheel in wheels:
        name, version = wheel.name.split("-")[:2]
        packages.setdefault((name, version), []).append(wheel)
    out = 'lock-version = "1.0"\ncreated-by = "test"\n'
    for (name, version), files in packages.items():
        tables = ", ".join(
            f'{{ name = "{w.name}", url = "{index.file_url(w.name)}", '
            f'hashes = {{ sha256 = "{file_sha256(w)}" }} }}'
            for w in files
        )
        out += (
            f'[[packages]]\nname = "{name}"\nversion = "{version}"\n'
            f'index = "{index_url or index.url}"\nwheels = [{tables}]\n'
        )
    return out


def test_the_target_is_the_given_python_else_the_projects_venv_else_default(
    tmp_path: Path,
) -> None:
    assert python_for(project_at(tmp_path)) is None
    (tmp_path / ".venv").mkdir()
    assert python_for(project_at(tmp_path)) == str(tmp_path / ".venv")
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("")
    assert python_for(project_at(requirements)) == str(tmp_path / ".venv")
    assert python_for(project_at(tmp_path, "3.12")) == "3.12"


async def test_a_missing_file_is_a_gap_naming_it_until_it_is_fetched(tmp_path: Path) -> None:
    with IndexServer(tmp_path / "index") as index:
        wheel = index.add(build_wheel(tmp_path / "dist", "alpha", "1.0"))
        proj = tmp_path / "proj"
        proj.mkdir()
        (proj / "pylock.toml").write_text(lock_text(index, [wheel]))
        async with running_warmer(tmp_path / "d", index.url) as warm:
            project = project_at(proj)

            before = await check_project(warm.rt, project)
            assert before.gaps == ["alpha (alpha-1.0-py3-none-any.whl)"]
            assert index.requests == []  # checking never touches the network

            record = await prefetch_project(warm.rt, project)
            assert record.ok and record.needed == [file_sha256(wheel)]

            after = await check_project(warm.rt, project)
            assert after.ready
            assert after.size == wheel.stat().st_size


async def test_a_requirements_file_that_cannot_resolve_offline_is_a_gap(tmp_path: Path) -> None:
    with IndexServer(tmp_path / "index") as index:
        proj = tmp_path / "proj"
        proj.mkdir()
        (proj / "requirements.txt").write_text("alpha\n")
        async with running_warmer(tmp_path / "d", index.url) as warm:
            check = await check_project(warm.rt, project_at(proj))
            assert not check.ready
            assert len(check.gaps) == 1
            assert check.gaps[0].startswith("requirements.txt: ")
            assert "alpha" in check.gaps[0]


async def test_only_the_lock_file_that_fits_the_target_is_needed(tmp_path: Path) -> None:
    with IndexServer(tmp_path / "index") as index:
        pure = index.add(build_wheel(tmp_path / "dist", "alpha", "1.0"))
        foreign = index.add(build_wheel(tmp_path / "dist", "alpha", "1.0", tag="cp39-cp39-win32"))
        proj = tmp_path / "proj"
        proj.mkdir()
        (proj / "pylock.toml").write_text(lock_text(index, [foreign, pure]))
        async with running_warmer(tmp_path / "d", index.url) as warm:
            needed = await needed_files(warm.rt, project_at(proj), offline=True)
            assert [file.sha256 for _i, _p, file in needed.files] == [file_sha256(pure)]


async def test_a_lock_naming_an_unconfigured_index_is_reported_not_fetched(
    tmp_path: Path,
) -> None:
    with IndexServer(tmp_path / "index") as index:
        wheel = index.add(build_wheel(tmp_path / "dist", "alpha", "1.0"))
        proj = tmp_path / "proj"
        proj.mkdir()
        other = "http://127.0.0.1:9/elsewhere/simple"
        (proj / "pylock.toml").write_text(lock_text(index, [wheel], index_url=other))
        async with running_warmer(tmp_path / "d", index.url) as warm:
            record = await prefetch_project(warm.rt, project_at(proj))
            assert not record.ok
            assert "not configured" in record.missing[0]
            assert index.requests == []


async def test_uv_lock_files_are_mapped_to_the_configured_index(tmp_path: Path) -> None:
    with IndexServer(tmp_path / "index") as index:
        wheel = index.add(build_wheel(tmp_path / "dist", "alpha", "1.0"))
        proj = tmp_path / "proj"
        proj.mkdir()
        (proj / "uv.lock").write_text(
            f'version = 1\n[[package]]\nname = "alpha"\nversion = "1.0"\n'
            f'source = {{ registry = "{index.url.rstrip("/")}" }}\n'
            f'wheels = [{{ url = "{index.file_url(wheel.name)}", '
            f'hash = "sha256:{file_sha256(wheel)}" }}]\n'
        )
        async with running_warmer(tmp_path / "d", index.url) as warm:
            record = await prefetch_project(warm.rt, project_at(proj))
            assert record.ok, record.missing
            assert warm.rt.store.has(file_sha256(wheel))


async def test_one_broken_input_does_not_stop_the_others(tmp_path: Path) -> None:
    with IndexServer(tmp_path / "index") as index:
        alpha = index.add(build_wheel(tmp_path / "dist", "alpha", "1.0"))
        proj = tmp_path / "proj"
        proj.mkdir()
        (proj / "requirements.txt").write_text("alpha\n")
        (proj / "requirements-broken.txt").write_text("-e ./somewhere\n")
        async with running_warmer(tmp_path / "d", index.url) as warm:
            record = await prefetch_project(warm.rt, project_at(proj))
            assert not record.ok
            assert [m.split(":")[0] for m in record.missing] == ["requirements-broken.txt"]
            assert warm.rt.store.has(file_sha256(alpha))


def make_tool(root: Path, spec: str, command: str) -> Path:
    """A built tool environment as `satchel run` leaves it (record written last)."""
    env = root / spec
    (env / "bin").mkdir(parents=True)
    (env / "bin" / "python").symlink_to(sys.executable)
    (env / "bin" / command).write_text("#!/bin/sh\n")
    record = ToolRecord(
        key=spec,
        spec=spec,
        pins=[f"{spec}==1.0"],
        commands=[command],
        created_at=0.0,
        last_used=0.0,
        python=sys.executable,
    )
    (env / RECORD_NAME).write_bytes(msgspec.json.encode(record))
    return env


async def test_a_cached_tool_is_ready_while_its_environment_is_intact(tmp_path: Path) -> None:
    with IndexServer(tmp_path / "index") as index:
        async with running_warmer(tmp_path / "d", index.url) as warm:
            env = make_tool(tools_dir(warm.rt), "cowsay", "cowsay")
            (good,) = await check_tools(warm.rt)
            assert (good.spec, good.gaps, good.files) == ("cowsay", [], 1)

            (env / "bin" / "python").unlink()
            (env / "bin" / "python").symlink_to(tmp_path / "uninstalled-python")
            (broken,) = await check_tools(warm.rt)
            assert len(broken.gaps) == 1
            assert broken.gaps[0].startswith("its interpreter is gone")
