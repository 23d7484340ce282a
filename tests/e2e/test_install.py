"""Issue 4, end to end: `satchel install` into real venvs, checked with the real pip.

One daemon and one loopback index serve the whole module (none of these tests stops the index or
the daemon, and each installs into its own venv), which keeps the module fast. The index:

* ``alpha`` 1.0: console script ``alpha-cli``, depends on ``beta>=1``;
* ``beta`` 1.0 (module ``beta.old``) and 2.0 (module ``beta.new``, console script ``beta-cli``);
* ``gamma`` 1.0: console script ``gamma`` and a ``.data/scripts`` shell script ``gamma-sh``;
* ``tampered`` 1.0: a wheel whose ``__init__.py`` no longer matches its RECORD (the index
  advertises the tampered file's real sha256, so the download itself succeeds).
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.world import World, listing, record_problems, site_packages
from tests.support.locks import wait_for_flock_waiter
from tests.support.wheels import build_wheel

MAIN = 'def main():\n    print("{name} {version} runs")\n'


def _tamper(wheel: Path) -> None:
    """Rewrite *wheel* with one file's bytes changed and its RECORD left as it was."""
    with zipfile.ZipFile(wheel) as zf:
        members = [(info, zf.read(info)) for info in zf.infolist()]
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as zf:
        for info, data in members:
            if info.filename == "tampered/__init__.py":
                data = b"import os  # not what RECORD promised\n"
            zf.writestr(info, data)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    w = World(tmp_path_factory.mktemp("install"))
    dist = w.dist
    w.index.add(
        build_wheel(
            dist,
            "alpha",
            "1.0",
            requires=["beta>=1"],
            files={"alpha/__init__.py": MAIN.format(name="alpha", version="1.0")},
            console_scripts={"alpha-cli": "alpha:main"},
        )
    )
    w.index.add(build_wheel(dist, "beta", "1.0", files={"beta/__init__.py": "", "beta/old.py": ""}))
    w.index.add(
        build_wheel(
            dist,
            "beta",
            "2.0",
            files={"beta/__init__.py": MAIN.format(name="beta", version="2.0"), "beta/new.py": ""},
            console_scripts={"beta-cli": "beta:main"},
        )
    )
    w.index.add(
        build_wheel(
            dist,
            "gamma",
            "1.0",
            files={"gamma/__init__.py": MAIN.format(name="gamma", version="1.0")},
            console_scripts={"gamma": "gamma:main"},
            data={"scripts": {"gamma-sh": "#!/bin/sh\necho gamma-sh runs\n"}},
        )
    )
    tampered = build_wheel(dist, "tampered", "1.0")
    _tamper(tampered)
    w.index.add(tampered)
    try:
        yield w
    finally:
        w.close()


def dist_info(venv: Path, name: str, version: str) -> Path:
    return site_packages(venv) / f"{name}-{version}.dist-info"


def install(world: World, venv: Path, *args: str) -> dict[str, Any]:
    value: dict[str, Any] = world.json("install", "--venv", str(venv), *args)
    return value


def test_install_creates_the_venv_and_pip_agrees_with_everything(
    world: World, tmp_path: Path
) -> None:
    venv = tmp_path / "venv"

    value = install(world, venv, "alpha", "gamma")

    assert value["created"] is True
    assert sorted(value["installed"]) == ["alpha 1.0", "beta 2.0", "gamma 1.0"]
    listed = world.pip_list(venv)
    assert {k: listed[k] for k in ("alpha", "beta", "gamma")} == {
        "alpha": "1.0",
        "beta": "2.0",
        "gamma": "1.0",
    }
    check = world.pip(venv, "check")
    assert check.returncode == 0, check.stdout + check.stderr


def test_every_installed_console_script_runs(world: World, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    install(world, venv, "alpha", "gamma")

    outputs = {}
    for script in ("alpha-cli", "beta-cli", "gamma", "gamma-sh"):
        run = subprocess.run(
            [str(venv / "bin" / script)], capture_output=True, text=True, timeout=30, check=False
        )
        assert run.returncode == 0, f"{script}: {run.stderr}"
        outputs[script] = run.stdout.strip()

    assert outputs == {
        "alpha-cli": "alpha 1.0 runs",
        "beta-cli": "beta 2.0 runs",
        "gamma": "gamma 1.0 runs",
        "gamma-sh": "gamma-sh runs",
    }
    shebang = (venv / "bin" / "alpha-cli").read_text().splitlines()[0]
    assert shebang == f"#!{venv / 'bin' / 'python'}"


def test_dist_info_marks_installer_requested_and_a_consistent_record(
    world: World, tmp_path: Path
) -> None:
    venv = tmp_path / "venv"
    install(world, venv, "alpha")

    for name, version in (("alpha", "1.0"), ("beta", "2.0")):
        info = dist_info(venv, name, version)
        assert (info / "INSTALLER").read_text() == "satchel\n"
        assert record_problems(venv, info) == []
    assert (dist_info(venv, "alpha", "1.0") / "REQUESTED").exists()
    assert not (dist_info(venv, "beta", "2.0") / "REQUESTED").exists()


def test_pip_uninstall_removes_everything_satchel_installed(world: World, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    install(world, venv, "gamma")  # create the venv, so that its own files are in `before`
    removed = world.pip(venv, "uninstall", "-y", "gamma")
    assert removed.returncode == 0, removed.stderr
    before = listing(venv)
    install(world, venv, "alpha", "gamma")

    result = world.pip(venv, "uninstall", "-y", "alpha", "beta", "gamma")

    assert result.returncode == 0, result.stderr
    leftovers = {
        path
        for path in set(listing(venv)) - set(before)
        if "__pycache__" not in path  # pip leaves no bytecode, but tolerate an import's
    }
    assert leftovers == set()


def test_a_compatible_requirement_keeps_what_is_installed(world: World, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    install(world, venv, "alpha")
    mtime = (dist_info(venv, "beta", "2.0") / "RECORD").stat().st_mtime_ns

    value = install(world, venv, "beta>=1")

    assert value["installed"] == []
    assert value["removed"] == []
    assert value["kept"] == ["beta 2.0"]
    assert (dist_info(venv, "beta", "2.0") / "RECORD").stat().st_mtime_ns == mtime


def test_an_incompatible_requirement_downgrades_through_the_old_record(
    world: World, tmp_path: Path
) -> None:
    venv = tmp_path / "venv"
    install(world, venv, "alpha")

    value = install(world, venv, "beta<2")

    assert value["removed"] == ["beta 2.0"]
    assert value["installed"] == ["beta 1.0"]
    package = site_packages(venv) / "beta"
    assert (package / "old.py").exists()
    assert not (package / "new.py").exists()
    assert not (venv / "bin" / "beta-cli").exists()
    assert not dist_info(venv, "beta", "2.0").exists()
    assert world.pip_list(venv)["beta"] == "1.0"
    assert world.pip(venv, "check").returncode == 0


def test_an_upgrade_replaces_the_old_version(world: World, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    install(world, venv, "beta==1.0")

    value = install(world, venv, "beta>=2")

    assert value["removed"] == ["beta 1.0"]
    assert value["installed"] == ["beta 2.0"]
    assert not (site_packages(venv) / "beta" / "old.py").exists()
    assert record_problems(venv, dist_info(venv, "beta", "2.0")) == []


def test_install_from_a_requirements_file(world: World, tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("# tools\nalpha\ngamma==1.0\n")
    venv = tmp_path / "venv"

    install(world, venv, "-r", str(requirements))

    listed = world.pip_list(venv)
    assert (listed["alpha"], listed["beta"], listed["gamma"]) == ("1.0", "2.0", "1.0")


def test_install_from_a_pylock_written_by_satchel_resolve(world: World, tmp_path: Path) -> None:
    lock = tmp_path / "pylock.toml"
    world.ok("resolve", "alpha", "--format", "pylock", "-o", str(lock))
    venv = tmp_path / "venv"

    install(world, venv, "--lock", str(lock))

    listed = world.pip_list(venv)
    assert (listed["alpha"], listed["beta"]) == ("1.0", "2.0")
    assert world.pip(venv, "check").returncode == 0


def test_concurrent_installs_into_one_environment_both_succeed(
    world: World, tmp_path: Path
) -> None:
    venv = tmp_path / "venv"
    install(world, venv, "gamma")

    procs = [
        world.spawn("install", "--venv", str(venv), "alpha"),
        world.spawn("install", "--venv", str(venv), "beta==1.0"),
    ]
    results = [proc.communicate(timeout=60) for proc in procs]

    assert [proc.returncode for proc in procs] == [0, 0], results
    # Whichever ran first, the end state is the same: beta 1.0 satisfies alpha's beta>=1.
    listed = world.pip_list(venv)
    assert (listed["alpha"], listed["beta"], listed["gamma"]) == ("1.0", "1.0", "1.0")
    assert world.pip(venv, "check").returncode == 0
    for name, version in (("alpha", "1.0"), ("beta", "1.0"), ("gamma", "1.0")):
        assert record_problems(venv, dist_info(venv, name, version)) == []


def test_concurrent_installs_into_a_missing_environment_create_it_once(
    world: World, tmp_path: Path
) -> None:
    venv = tmp_path / "new"

    procs = [
        world.spawn("install", "--venv", str(venv), "--json", "gamma"),
        world.spawn("install", "--venv", str(venv), "--json", "beta"),
    ]
    results = [proc.communicate(timeout=60) for proc in procs]

    assert [proc.returncode for proc in procs] == [0, 0], results
    assert sorted(json.loads(out)["created"] for out, _err in results) == [False, True]
    listed = world.pip_list(venv)
    assert (listed["beta"], listed["gamma"]) == ("2.0", "1.0")


def test_an_install_waits_for_its_environment_but_not_for_another(
    world: World, tmp_path: Path
) -> None:
    busy, free = tmp_path / "busy", tmp_path / "free"
    install(world, busy, "gamma")
    install(world, free, "gamma")
    lock_file = next(p for p in busy.iterdir() if p.name.endswith("lock"))
    fd = os.open(lock_file, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # as if another install held the environment
        waiting = world.spawn("install", "--venv", str(busy), "alpha")
        other = world.spawn("install", "--venv", str(free), "alpha")
        _out, err = other.communicate(timeout=60)
        assert other.returncode == 0, err
        # The kernel says the daemon's install is blocked on the lock we hold.
        wait_for_flock_waiter(lock_file, lambda: waiting.poll() is not None, "the install")
        assert waiting.poll() is None  # still queued behind the lock
        assert "alpha" not in world.pip_list(busy)
    finally:
        os.close(fd)
    _out, err = waiting.communicate(timeout=60)
    assert waiting.returncode == 0, err
    assert world.pip_list(busy)["alpha"] == "1.0"


def test_a_bad_wheel_fails_the_whole_install_and_touches_nothing(
    world: World, tmp_path: Path
) -> None:
    venv = tmp_path / "venv"
    install(world, venv, "alpha")
    before = listing(venv)

    result = world.satchel("install", "--venv", str(venv), "gamma", "tampered")

    assert result.returncode != 0
    assert "tampered" in result.stderr
    assert "RECORD" in result.stderr
    assert listing(venv) == before
    assert "gamma" not in json.loads(world.pip(venv, "list", "--format=json").stdout)
