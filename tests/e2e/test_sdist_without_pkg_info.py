"""An sdist with no PKG-INFO at all (old or hand-made archives) is built to learn its metadata.

Such an sdist says nothing about its dependencies until its backend builds it, exactly like one
whose PKG-INFO marks them dynamic: online, a resolve builds it and an install uses the wheel
built; it is never an index error.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.world import World
from tests.support.wheels import build_sdist, build_wheel


def _without_pkg_info(sdist: Path) -> Path:
    """Rewrite *sdist* in place without its PKG-INFO member."""
    buffer = io.BytesIO()
    with tarfile.open(sdist, "r:gz") as src, tarfile.open(fileobj=buffer, mode="w:gz") as out:
        for member in src:
            if member.name.endswith("/PKG-INFO"):
                continue
            out.addfile(member, src.extractfile(member))
    sdist.write_bytes(buffer.getvalue())
    return sdist


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path)
    w.index.add(build_wheel(w.dist, "dep", "1.0"))
    sdist = build_sdist(
        w.dist,
        "bare",
        "1.0",
        requires=["dep>=1"],
        files={"bare/__init__.py": 'WHO = "built without PKG-INFO"\n'},
    )
    w.index.add(_without_pkg_info(sdist))
    try:
        yield w
    finally:
        w.close()


def test_resolving_builds_it_and_reads_the_dependencies_of_the_built_wheel(world: World) -> None:
    result = world.ok("resolve", "bare")

    assert "bare==1.0" in result.stdout
    assert "dep==1.0" in result.stdout


def test_it_installs_online(world: World, tmp_path: Path) -> None:
    venv = tmp_path / "venv"

    value = world.json("install", "--venv", str(venv), "bare")

    assert sorted(value["installed"]) == ["bare 1.0", "dep 1.0"]
    assert world.pip_list(venv)["bare"] == "1.0"


def test_after_prefetch_it_installs_offline_from_the_wheel_built(
    world: World, tmp_path: Path
) -> None:
    world.ok("prefetch", "bare")
    world.index.stop()
    venv = tmp_path / "venv"

    world.ok("install", "--offline", "--venv", str(venv), "bare")

    listed = world.pip_list(venv)
    assert (listed.get("bare"), listed.get("dep")) == ("1.0", "1.0")
