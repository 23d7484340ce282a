"""Issue 13.6, end to end: locks written by uv and pip install offline once their files are stored.

The locks are written by the real tools against a loopback index (`IndexServer`): ``uv pip
compile --format pylock.toml`` and ``pip lock`` (no ``packages.index``), ``uv export --format
pylock.toml`` (with ``index``, and the project itself as an editable directory) and ``uv lock``
(``uv.lock``, read with ``-r``). The index serves ``alpha`` 1.0 (depends on ``beta>=1`` and, on
Windows only, ``gamma``), ``beta`` 2.0 and ``gamma`` 1.0. Each lock is prefetched (or, as the issue
reported it, its files stored by an ordinary prefetch), the index is stopped, and ``satchel install
--offline`` installs it; pip, pointed at the venv, is the independent check: alpha and beta, never
gamma on this platform, never the project itself.

The tools run with their own configuration turned off and only the loopback index given (no
``PIP_*``/``UV_*`` of this machine, ``UV_NO_CONFIG``, ``PIP_CONFIG_FILE=/dev/null``, their caches in
the test's directory), so they never reach beyond 127.0.0.1.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.world import World
from tests.support.wheels import build_wheel

UV = shutil.which("uv")
needs_uv = pytest.mark.skipif(UV is None, reason="uv is not on PATH")


def _pip_has_lock() -> bool:
    probe = subprocess.run(
        [sys.executable, "-m", "pip", "lock", "--help"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PIP_CONFIG_FILE": os.devnull},
    )
    return probe.returncode == 0


needs_pip_lock = pytest.mark.skipif(
    not _pip_has_lock(), reason="the installed pip has no `pip lock` (pip >= 25.1 has)"
)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    """A world of its own per test: each stops its index."""
    w = World(tmp_path / "world")
    w.index.add(
        build_wheel(w.dist, "alpha", "1.0", requires=["beta>=1", "gamma; sys_platform == 'win32'"])
    )
    w.index.add(build_wheel(w.dist, "beta", "2.0"))
    w.index.add(build_wheel(w.dist, "gamma", "1.0"))
    try:
        yield w
    finally:
        w.close()


def tool_env(root: Path) -> dict[str, str]:
    """The environment uv and pip run in: none of this machine's index settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    env.update(
        HOME=str(root / "home"),
        XDG_CONFIG_HOME=str(root / "tool-config"),
        UV_NO_CONFIG="1",
        UV_CACHE_DIR=str(root / "uv-cache"),
        UV_PYTHON=sys.executable,
        UV_PYTHON_DOWNLOADS="never",
        PIP_CONFIG_FILE=os.devnull,
        PIP_CACHE_DIR=str(root / "pip-cache"),
        PIP_DISABLE_PIP_VERSION_CHECK="1",
    )
    return env


def run_tool(world: World, cwd: Path, *args: str, **extra: str) -> None:
    result = subprocess.run(
        args,
        cwd=cwd,
        env={**tool_env(world.root), **extra},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"{' '.join(args)}:\n{result.stdout}\n{result.stderr}"


def project(world: World) -> Path:
    """A uv project depending on alpha, with a build backend (so uv locks it as editable)."""
    root = world.root / "proj"
    root.mkdir()
    (root / "pyproject.toml").write_text(
        '[project]\nname = "myproj"\nversion = "0.1"\nrequires-python = ">=3.11"\n'
        'dependencies = ["alpha"]\n'
        '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n',
        "utf-8",
    )
    return root


def uv_lock(world: World) -> Path:
    root = project(world)
    assert UV is not None
    run_tool(world, root, UV, "lock", UV_DEFAULT_INDEX=world.index.url)
    return root / "uv.lock"


def offline_install(world: World, *args: str) -> dict[str, str]:
    """Stop the index, install *args* offline into a new venv, and list it with pip."""
    world.index.stop()
    venv = world.root / "venv"
    result = world.satchel("install", "--offline", *args, "--venv", str(venv))
    assert result.returncode == 0, result.stderr
    listed = world.pip_list(venv)
    assert "myproj" not in listed
    return {k: v for k, v in listed.items() if k in ("alpha", "beta", "gamma")}


@needs_uv
def test_a_uv_pip_compile_lock_without_index_installs_offline_from_stored_files(
    world: World,
) -> None:
    """The issue's report: the files are stored (an ordinary prefetch), the lock written by uv
    names no index, and the install used to say "locked to index (none)" with exit 5."""
    (world.root / "req.in").write_text("alpha\n", "utf-8")
    lock = world.root / "pylock.toml"
    assert UV is not None
    run_tool(
        world,
        world.root,
        *(UV, "pip", "compile", "--format", "pylock.toml", "req.in", "-o", str(lock)),
        UV_INDEX_URL=world.index.url,
    )
    assert "index =" not in lock.read_text("utf-8")
    world.ok("prefetch", "alpha")

    assert offline_install(world, "--lock", str(lock)) == {"alpha": "1.0", "beta": "2.0"}


@needs_uv
def test_a_uv_export_pylock_installs_offline_without_the_project_itself(world: World) -> None:
    root = project(world)
    assert UV is not None
    run_tool(
        world,
        root,
        *(UV, "export", "--format", "pylock.toml", "-o", "pylock.toml"),
        UV_DEFAULT_INDEX=world.index.url,
    )
    lock = root / "pylock.toml"
    text = lock.read_text("utf-8")
    assert "editable = true" in text  # the project itself, which Satchel skips
    assert "sys_platform == 'win32'" in text  # gamma, for Windows only
    prefetched = world.ok("prefetch", "-r", str(lock))
    assert "myproj" in prefetched.stderr  # named as not installed from the lock

    assert offline_install(world, "--lock", str(lock)) == {"alpha": "1.0", "beta": "2.0"}


@needs_uv
@pytest.mark.parametrize("option", ["-r", "--lock"])
def test_uv_lock_installs_offline_what_uv_sync_would(world: World, option: str) -> None:
    lock = uv_lock(world)
    assert 'source = { editable = "." }' in lock.read_text("utf-8")
    world.ok("prefetch", "-r", str(lock))

    assert offline_install(world, option, str(lock)) == {"alpha": "1.0", "beta": "2.0"}


@needs_pip_lock
def test_a_pip_lock_installs_offline(world: World) -> None:
    lock = world.root / "pylock.toml"
    args = ("lock", "--index-url", world.index.url, "alpha", "-o", str(lock))
    run_tool(world, world.root, sys.executable, "-m", "pip", *args)
    text = lock.read_text("utf-8")
    assert 'created-by = "pip"' in text
    assert "index =" not in text
    world.ok("prefetch", "-r", str(lock))

    assert offline_install(world, "--lock", str(lock)) == {"alpha": "1.0", "beta": "2.0"}


@needs_uv
def test_a_git_dependency_in_uv_lock_is_refused_naming_it(world: World) -> None:
    """A package from git cannot come from Satchel: the install says which and why (exit 2, the
    input is unusable), and nothing is installed."""
    lock = uv_lock(world)
    text = lock.read_text("utf-8").replace(
        '[[package]]\nname = "myproj"',
        '[[package]]\nname = "fromgit"\nversion = "0.3"\n'
        'source = { git = "https://127.0.0.1:9/fromgit.git#0123abcd" }\n\n'
        '[[package]]\nname = "myproj"',
    )
    text = text.replace('dependencies = [\n    { name = "alpha" },\n]\n\n[package.metadata]',
                        'dependencies = [\n    { name = "alpha" },\n    { name = "fromgit" },\n]'
                        "\n\n[package.metadata]")  # fmt: skip
    assert 'name = "fromgit" }' in text
    lock.write_text(text, "utf-8")
    venv = world.root / "venv"

    result = world.satchel("install", "-r", str(lock), "--venv", str(venv))

    assert result.returncode == 2, result.stderr
    assert "fromgit comes from the git repository https://127.0.0.1:9/fromgit.git" in result.stderr
    assert "not from an index" in result.stderr
    assert not (venv / "lib").exists() or "alpha" not in world.pip_list(venv)


def test_a_lock_and_other_requirements_in_one_install_are_refused(world: World) -> None:
    """A lock installs exactly what it lists: requirements beside it would be silently
    re-resolved or dropped, so the install says so instead (and installs nothing)."""
    lock = world.root / "pylock.toml"
    world.ok("resolve", "beta", "--format", "pylock", "-o", str(lock))
    venv = world.root / "venv"

    result = world.satchel("install", "--lock", str(lock), "alpha", "--venv", str(venv))

    assert result.returncode == 1, result.stderr
    assert "installs exactly what it lists" in result.stderr
    assert "[invalid-params]" in result.stderr
