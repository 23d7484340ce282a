"""Issue 11.1 (critical) and 11.11, end to end: a wheel cannot plant an install journal, nor
take a name the venv owns, and no install ever reaches outside the environment.

The attack (found on main): a wheel's ``.data/data/`` scheme puts
``.satchel-trash-<token>/journal.json`` at the environment's root; the *next* install into that
venv replayed it (unlink, rmtree, rename) with no check that its paths lie inside the venv, so
it deleted a file and a directory outside and replaced another file with the wheel's content,
and both installs reported success. Relative paths resolved against the daemon's working
directory ``/``.

Here a real daemon, a loopback index and the real pip (which installs such a wheel as any
installer would) play it through: Satchel refuses to install the wheel, and when pip has put
the file in place, neither the next install nor a daemon restart touches anything outside.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.world import World
from tests.support.wheels import build_wheel

TOKEN = "aaaaaaaaaaaa"


class Victims:
    """Files and a directory outside every environment, which no install may touch."""

    def __init__(self, root: Path) -> None:
        root.mkdir()
        self.unlinked = root / "unlink-me.txt"
        self.removed = root / "rmtree-me"
        self.replaced = root / "replace-me.txt"
        self.relative = root / "relative-victim.txt"
        self.unlinked.write_text("precious 1")
        self.removed.mkdir()
        (self.removed / "inner.txt").write_text("precious 2")
        self.replaced.write_text("precious 3")
        self.relative.write_text("precious 4")

    def journal(self, venv: Path) -> str:
        """The old journal format, aimed at the victims (absolute, and relative to ``/``)."""
        return json.dumps(
            {
                "trash": str(venv / f".satchel-trash-{TOKEN}"),
                "moves": [str(self.replaced)],
                "dirs": [str(self.removed)],
                "created": [str(self.unlinked), str(self.relative).lstrip("/")],
            }
        )

    def assert_intact(self) -> None:
        assert self.unlinked.read_text() == "precious 1"
        assert (self.removed / "inner.txt").read_text() == "precious 2"
        assert self.replaced.read_text() == "precious 3"
        assert self.relative.read_text() == "precious 4"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    w = World(tmp_path_factory.mktemp("journal"))
    w.index.add(build_wheel(w.dist, "harmless", "1.0"))
    w.index.add(build_wheel(w.dist, "harmless", "2.0"))
    w.index.add(build_wheel(w.dist, "shadow", "1.0", console_scripts={"python": "shadow:__init__"}))
    w.index.add(
        build_wheel(w.dist, "shadow-data", "1.0", data={"scripts": {"python3": "#!/bin/sh\n"}})
    )
    w.index.add(build_wheel(w.dist, "shadow-cfg", "1.0", data={"data": {"pyvenv.cfg": "home=/"}}))
    try:
        yield w
    finally:
        w.close()


def _planter(world: World, victims: Victims, venv: Path) -> Path:
    """The hostile wheel: a journal at the venv's root, and the bytes its rename would move."""
    return build_wheel(
        world.root / "planter" / venv.name,
        "planter",
        "1.0",
        data={
            "data": {
                f".satchel-trash-{TOKEN}/journal.json": victims.journal(venv),
                f".satchel-trash-{TOKEN}/0": "the wheel's content",
            }
        },
    )


def _new_venv(world: World, name: str) -> Path:
    venv = world.root / name
    world.ok("install", "--venv", str(venv), "harmless==1.0")
    return venv


def test_satchel_refuses_a_wheel_that_writes_its_reserved_names(world: World) -> None:
    victims = Victims(world.root / "victims-refused")
    venv = _new_venv(world, "venv-refused")
    world.index.add(_planter(world, victims, venv))
    before = sorted(p.relative_to(venv).as_posix() for p in venv.rglob("*"))

    result = world.satchel("install", "--venv", str(venv), "planter==1.0")

    assert result.returncode == 1, result.stderr
    assert f".satchel-trash-{TOKEN}" in result.stderr
    assert "reserved for Satchel" in result.stderr
    assert sorted(p.relative_to(venv).as_posix() for p in venv.rglob("*")) == before
    world.ok("install", "--venv", str(venv), "harmless==2.0")
    victims.assert_intact()


def test_a_journal_planted_by_another_installer_is_never_replayed(world: World) -> None:
    victims = Victims(world.root / "victims-planted")
    venv = _new_venv(world, "venv-planted")
    wheel = _planter(world, victims, venv)
    installed = world.pip(venv, "install", "--no-deps", str(wheel))
    assert installed.returncode == 0, installed.stderr
    assert (venv / f".satchel-trash-{TOKEN}" / "journal.json").is_file()  # planted

    world.ok("install", "--venv", str(venv), "harmless==2.0")  # the next install
    victims.assert_intact()
    assert not (venv / f".satchel-trash-{TOKEN}").exists()  # trash is Satchel's to purge

    # Planted again, then a restart: start-up recovery replays only the daemon's own journals.
    assert world.pip(venv, "install", "--no-deps", "--force-reinstall", str(wheel)).returncode == 0
    world.ok("stop")
    world.ok("install", "--venv", str(venv), "harmless==1.0")
    victims.assert_intact()


def test_the_daemon_works_from_a_directory_where_relative_paths_would_land(world: World) -> None:
    """The journal's relative path named a file relative to ``/``, the daemon's directory."""
    victims = Victims(world.root / "victims-relative")
    venv = _new_venv(world, "venv-relative")
    assert (
        world.pip(venv, "install", "--no-deps", str(_planter(world, victims, venv))).returncode == 0
    )
    world.ok("stop")  # the next command autostarts a daemon, whose working directory is /
    world.ok("install", "--venv", str(venv), "harmless==2.0")
    victims.assert_intact()


@pytest.mark.parametrize(
    ("project", "name"),
    [("shadow", "python"), ("shadow-data", "python3"), ("shadow-cfg", "pyvenv.cfg")],
)
def test_a_wheel_cannot_replace_what_the_venv_itself_owns(
    world: World, project: str, name: str
) -> None:
    """Issue 11.11: an entry point (or a data file) named like the venv's interpreter."""
    venv = _new_venv(world, f"venv-{project}")
    python = venv / "bin" / "python"
    target, cfg = os.readlink(python), (venv / "pyvenv.cfg").read_text()

    result = world.satchel("install", "--venv", str(venv), f"{project}==1.0")

    assert result.returncode == 1, result.stderr
    assert f"refusing to install {venv}" in result.stderr
    assert repr(name) in result.stderr
    assert os.readlink(python) == target
    assert (venv / "pyvenv.cfg").read_text() == cfg
    assert "shadow" not in world.pip_list(venv)
