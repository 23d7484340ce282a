"""Issue 11.17, end to end: invalid input and full disks get a clear error naming the cause.

Real `satchel` (autostarting a real `satcheld`), a real loopback index, real wheels, and for
the full-disk cases a real tmpfs that the kernel fills (`tests.support.tmpfs`: skipped with
the reason where it cannot be mounted).
"""

from __future__ import annotations

import errno
import os
import random
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.client.clientenv import ClientEnv
from tests.e2e.world import World
from tests.support.tmpfs import small_tmpfs
from tests.support.wheels import build_wheel

EXIT_FAILURE = 1


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path)
    w.index.add(build_wheel(w.dist, "aa", "1.0"))
    payload = random.Random(7).randbytes(512 * 1024)  # incompressible, and seeded
    w.index.add(build_wheel(w.dist, "big", "1.0", files={"big/__init__.py": "", "big/p": payload}))
    try:
        yield w
    finally:
        w.close()


def _fill(mount: Path) -> None:
    """Write until the file system says it is full."""
    with (mount / "filler").open("wb", buffering=0) as out:
        chunk = b"\0" * 4096
        try:
            while True:
                out.write(chunk)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc


def assert_clear(result: subprocess.CompletedProcess[str], code: str, *words: str) -> None:
    assert result.returncode != 0, result.stdout
    assert "internal error" not in result.stderr, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert f"[{code}]" in result.stderr, result.stderr
    for word in words:
        assert word in result.stderr, (word, result.stderr)


# -- --python and --python-version ------------------------------------------------------------


@pytest.mark.parametrize("command", ["resolve", "install", "run", "prefetch"])
def test_python_that_is_not_an_interpreter_is_invalid_params(world: World, command: str) -> None:
    """issue 11.17: `--python /dev/null` (a device), `--python /etc/hostname`-like (a file that
    is not executable) and a script that is no Python give invalid-params naming the path."""
    not_exec = world.root / "notes.txt"
    not_exec.write_text("hello\n", "utf-8")
    liar = world.root / "liar"
    liar.write_text("#!/bin/sh\necho not python >&2\nexit 3\n", "utf-8")
    liar.chmod(0o755)
    for python in ("/dev/null", str(not_exec), str(liar)):
        args = {
            "resolve": ["resolve", "--python", python, "aa"],
            "install": ["install", "--python", python, "--venv", str(world.root / "v"), "aa"],
            "run": ["run", "--python", python, "--from", "aa", "aa"],
            "prefetch": ["prefetch", "--python", python, "aa"],
        }[command]
        result = world.satchel(*args)
        assert_clear(result, "invalid-params", f"--python {python}")
        assert not (world.root / "v").exists()


def test_a_python_that_does_not_exist_is_not_found_by_its_name(world: World) -> None:
    """issue 11.17: a bare name that is on no PATH is named as given (it used to be read as a
    path relative to the daemon's working directory, "/python9.9")."""
    result = world.satchel("resolve", "--python", "python9.9", "aa")
    assert_clear(result, "not-found", "'python9.9' on PATH")


@pytest.mark.parametrize(
    ("option", "value", "words"),
    [
        ("--python-version", "4.0", ["--python-version", "'4.0'"]),
        ("--python-version", "three", ["--python-version", "'three'"]),
        ("--platform", "not_a_platform", ["not_a_platform"]),
    ],
)
def test_an_impossible_target_is_invalid_params(
    world: World, option: str, value: str, words: list[str]
) -> None:
    """issue 11.17: `--python-version 4.0`, a version that is no version, and a platform tag
    that names no machine: invalid-params naming the value (never "internal error")."""
    for command in ("resolve", "prefetch"):
        result = world.satchel(command, option, value, "aa")
        assert_clear(result, "invalid-params", *words)


def test_install_refuses_an_imagined_target(world: World) -> None:
    """issue 11.17: `install --python-version`/`--platform` used to be accepted and ignored;
    an install goes into a real environment, so it is a usage error naming the options."""
    venv = world.root / "v"
    for option, value in (("--python-version", "3.11"), ("--platform", "win_amd64")):
        result = world.satchel("install", option, value, "--venv", str(venv), "aa")
        assert result.returncode == 2, result.stderr
        assert "--platform/--python-version" in result.stderr
        assert not venv.exists()


# -- full disks -------------------------------------------------------------------------------


def test_a_new_venv_on_a_full_disk_is_not_left_behind(world: World) -> None:
    """issue 11.17: a venv Satchel creates on a full file system: disk-full naming the venv,
    and nothing of it (nor the parent directories it made) is left behind."""
    with small_tmpfs(world.root / "full", "256k") as mount:
        _fill(mount)
        venv = mount / "deep" / "venv"
        result = world.satchel("install", "--venv", str(venv), "aa")
        assert_clear(result, "disk-full", "no space left", str(venv))
        assert sorted(p.name for p in mount.iterdir()) == ["filler"]


def test_a_new_venv_whose_install_does_not_fit_is_removed(world: World) -> None:
    """issue 11.17: the venv fits, the wheel does not: the install fails with disk-full, and
    the venv Satchel made for it is removed, not left behind empty. A venv that existed
    before is kept."""
    with small_tmpfs(world.root / "full", "384k") as mount:
        venv = mount / "venv"
        result = world.satchel("install", "--venv", str(venv), "big")
        assert_clear(result, "disk-full", "no space left")
        assert not venv.exists(), sorted(p.name for p in mount.iterdir())
        world.ok("install", "--venv", str(venv), "aa")  # room enough for a small one
        result = world.satchel("install", "--venv", str(venv), "big")
        assert_clear(result, "disk-full", "no space left")
        assert (venv / "pyvenv.cfg").is_file()
        assert "aa" in world.pip_list(venv)


def test_a_full_state_directory_at_start_names_the_directory(tmp_path: Path) -> None:
    """issue 11.17: the daemon cannot start with its state directory on a full disk, and says
    which directory is full (the client passes that on)."""
    with small_tmpfs(tmp_path / "state", "64k") as mount:
        env = ClientEnv(tmp_path / "client")
        env.env["XDG_STATE_HOME"] = str(mount)
        try:
            _fill(mount)
            result = env.satchel("ping", timeout=60)
            assert result.returncode != 0, result.stdout
            state_dir = str(mount / "satchel")
            assert "no space left" in result.stderr.lower(), result.stderr
            assert f"in the state directory {state_dir}" in result.stderr, result.stderr
            assert "Traceback" not in result.stderr
        finally:
            env.cleanup()
            os.sync()
