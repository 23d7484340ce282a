"""Issue 4, end to end: sdists are built while online and installed offline.

The index serves ``sdpkg`` 1.0 only as an sdist whose PKG-INFO declares its dependencies dynamic
(PEP 643), so they are known only by building it; it depends on ``dep>=1`` and builds with
``buildtool``, which exists only on this loopback index, as a wheel. `satchel prefetch sdpkg`
must build it (fetching ``buildtool`` through Satchel); with the index stopped the built wheel
installs; an interpreter it was never built for fails with the message that says how to fix it.
``stpkg`` 2.0 is an sdist with static metadata (resolved without building) and a console script
``st``. Each test has its own daemon and index (they stop the index).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.world import World, site_packages
from tests.support.wheels import build_sdist, build_wheel

EXIT_OFFLINE = 5


def _other_python() -> str | None:
    """A CPython on PATH of another release than this one (so another interpreter key)."""
    ours = ".".join(map(str, sys.version_info[:3]))
    seen: set[str] = set()
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        for name in ("python3", *(f"python3.{minor}" for minor in range(9, 15))):
            found = shutil.which(name, path=directory)
            if found is None or os.path.realpath(found) in seen or "shims" in found:
                continue
            seen.add(os.path.realpath(found))
            probe = subprocess.run(
                [found, "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"],
                capture_output=True,
                text=True,
                check=False,
                timeout=30,
            )
            if probe.returncode == 0 and probe.stdout.strip() not in ("", ours):
                return found
    return None


#: Another CPython release on this machine (a different interpreter key than the test's own).
OTHER_PYTHON = _other_python()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path)
    w.index.add(build_wheel(w.dist, "buildtool", "1.0"))
    w.index.add(build_wheel(w.dist, "dep", "1.0"))
    w.index.add(
        build_sdist(
            w.dist,
            "sdpkg",
            "1.0",
            requires=["dep>=1"],
            build_requires=["buildtool>=1"],
            static_metadata=False,
            files={"sdpkg/__init__.py": 'WHO = "built from the sdist"\n'},
        )
    )
    w.index.add(
        build_sdist(
            w.dist,
            "stpkg",
            "2.0",
            requires=["dep>=1"],
            files={
                "stpkg/__init__.py": 'def main():\n    print("stpkg 2.0 from an sdist")\n',
                # The in-tree backend copies this into the wheel: a console script.
                "stpkg-2.0.dist-info/entry_points.txt": "[console_scripts]\nst = stpkg:main\n",
            },
        )
    )
    try:
        yield w
    finally:
        w.close()


def test_prefetch_builds_the_sdist_and_its_build_requirement_comes_from_the_index(
    world: World,
) -> None:
    result = world.ok("prefetch", "sdpkg")

    assert "built sdpkg-1.0-py3-none-any.whl from sdpkg-1.0.tar.gz" in result.stderr
    assert any("buildtool-1.0" in path for path in world.index.requests)
    info = world.json("cache", "info")
    assert info["built_wheels"] == 1
    again = world.ok("prefetch", "sdpkg")  # the build is kept: nothing is built again
    assert "built " not in again.stderr
    assert world.json("cache", "info")["built_wheels"] == 1


def test_offline_install_uses_the_wheel_built_while_online(world: World, tmp_path: Path) -> None:
    world.ok("prefetch", "sdpkg")
    world.index.stop()
    venv = tmp_path / "venv"

    world.ok("install", "--offline", "--venv", str(venv), "sdpkg")

    listed = world.pip_list(venv)
    assert (listed.get("sdpkg"), listed.get("dep")) == ("1.0", "1.0")
    assert "buildtool" not in listed  # a build requirement, not a dependency
    assert world.pip(venv, "check").returncode == 0
    imported = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import sdpkg; print(sdpkg.WHO)"],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert imported.stdout == "built from the sdist\n"
    assert (site_packages(venv) / "sdpkg-1.0.dist-info" / "INSTALLER").read_text() == "satchel\n"


def test_the_build_survives_a_daemon_restart(world: World, tmp_path: Path) -> None:
    world.ok("prefetch", "sdpkg")
    world.ok("stop")
    world.index.stop()

    world.ok("install", "--offline", "--venv", str(tmp_path / "venv"), "sdpkg")

    assert world.pip_list(tmp_path / "venv")["sdpkg"] == "1.0"


def test_an_index_outage_needs_no_offline_flag(world: World, tmp_path: Path) -> None:
    world.ok("prefetch", "sdpkg")
    world.index.stop()

    world.ok("install", "--venv", str(tmp_path / "venv"), "sdpkg")

    assert world.pip_list(tmp_path / "venv")["sdpkg"] == "1.0"


def test_an_online_install_builds_what_was_never_prefetched(world: World, tmp_path: Path) -> None:
    value = world.json("install", "--venv", str(tmp_path / "venv"), "sdpkg")

    assert sorted(value["installed"]) == ["dep 1.0", "sdpkg 1.0"]


@pytest.mark.skipif(OTHER_PYTHON is None, reason="needs a CPython of another release on PATH")
def test_an_interpreter_it_was_never_built_for_fails_offline_saying_how_to_fix_it(
    world: World, tmp_path: Path
) -> None:
    assert OTHER_PYTHON is not None
    world.ok("prefetch", "sdpkg")
    world.index.stop()
    venv = tmp_path / "other"

    result = world.satchel(
        "install", "--offline", "--venv", str(venv), "--python", OTHER_PYTHON, "sdpkg"
    )

    assert result.returncode == EXIT_OFFLINE, result.stderr
    assert "sdpkg" in result.stderr
    assert "never built for the interpreter" in result.stderr
    assert f"satchel prefetch sdpkg==1.0 --python {venv / 'bin' / 'python'}" in result.stderr
    listed = json.loads(world.pip(venv, "list", "--format=json").stdout)
    assert "sdpkg" not in {row["name"] for row in listed}

    # The advice works: online, prefetch for that interpreter; then offline, the install does.
    world.index.start()
    world.ok("prefetch", "sdpkg==1.0", "--python", str(venv / "bin" / "python"))
    world.index.stop()
    world.ok("install", "--offline", "--venv", str(venv), "sdpkg")
    assert world.pip_list(venv)["sdpkg"] == "1.0"


def test_a_static_sdist_is_built_by_prefetch_even_though_resolving_did_not_need_it(
    world: World, tmp_path: Path
) -> None:
    result = world.ok("prefetch", "stpkg")
    world.index.stop()

    assert "built stpkg-2.0-py3-none-any.whl from stpkg-2.0.tar.gz" in result.stderr
    world.ok("install", "--offline", "--venv", str(tmp_path / "venv"), "stpkg")
    assert world.pip_list(tmp_path / "venv")["stpkg"] == "2.0"


def test_prefetch_of_a_pylock_builds_its_sdists_for_an_offline_install(
    world: World, tmp_path: Path
) -> None:
    lock = tmp_path / "pylock.toml"
    world.ok("resolve", "stpkg", "--format", "pylock", "-o", str(lock))
    assert world.json("cache", "info")["built_wheels"] == 0  # static metadata: no build yet

    world.ok("prefetch", "-r", str(lock))
    world.index.stop()

    assert world.json("cache", "info")["built_wheels"] == 1
    world.ok("install", "--offline", "--venv", str(tmp_path / "venv"), "--lock", str(lock))
    assert world.pip_list(tmp_path / "venv")["stpkg"] == "2.0"


def test_a_tool_from_an_sdist_runs_offline_after_prefetch(world: World) -> None:
    world.ok("prefetch", "stpkg")
    world.index.stop()

    result = world.satchel("run", "--offline", "--from", "stpkg", "st")

    assert result.returncode == 0, result.stderr
    assert result.stdout == "stpkg 2.0 from an sdist\n"


def test_an_online_run_builds_the_sdist_of_its_tool(world: World) -> None:
    result = world.ok("run", "--from", "stpkg", "st")

    assert result.stdout == "stpkg 2.0 from an sdist\n"
    assert world.json("cache", "info")["built_wheels"] == 1
