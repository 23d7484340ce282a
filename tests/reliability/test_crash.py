"""Crash safety: ``kill -9`` of the daemon at randomized points during prefetch and install.

What must hold after every kill, once a new daemon has started (issue 7):

* ``satchel cache verify`` is clean; every file under ``blobs/`` is named by its own sha256 (no
  partial or temporary file is ever visible there); every unpacked tree holds every file its
  manifest lists, at full size; the temp directory is swept;
* the interrupted command, rerun, completes;
* an environment the daemon was installing into is the old state or the new one: either the
  kill came after the commit (new), or before any change (old), or in between, where the
  install journal is present and the documented recovery
  (`satchel.daemon.installing.installer.recover`, which every later install runs first) brings
  back exactly the old state.

Kill points are random times drawn over the measured length of an uninterrupted run (seeded,
printed, so a failure can be replayed with ``SATCHEL_CRASH_SEED``); any kill point is a valid
one, so no check depends on where a kill lands. That some kills land inside the work is made
sure of without a clock: the prefetch's first kill comes while the index holds the wheels'
answers (`IndexServer.gate`), the install's while the daemon waits for the environment's lock
the test holds. An install's kill clock starts when the test lets that lock go (not at the
client's start), and its draws are capped by the earliest draw that came after the commit.
Each kill uses a fresh daemon (the restart is part of what is tested); the per-run outcomes are
printed for ``docs/reliability.md``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from satchel.daemon.installing._layout import LOCK_NAME
from tests.reliability.harness import Rig, env_state, kill_and_wait, scaled, venv_state
from tests.support.locks import wait_for_flock_waiter
from tests.support.wheels import build_wheel

SEED = int(os.environ.get("SATCHEL_CRASH_SEED", str(random.randrange(1 << 30))))


def _big_wheels(rig: Rig, count: int, size: int) -> list[str]:
    """*count* wheels of 1..*count* times *size* random bytes: downloads end at different times."""
    names = []
    for i in range(count):
        payload = random.Random(i).randbytes(size * (i + 1))
        rig.index.add(
            build_wheel(
                rig.root / "dist",
                f"big-{i}",
                "1.0",
                files={f"big_{i}/__init__.py": "", f"big_{i}/payload.bin": payload},
            )
        )
        names.append(f"big-{i}")
    return names


def _kill_after(rig: Rig, args: list[str], delay: float) -> subprocess.CompletedProcess[str]:
    """Start a daemon, run ``satchel *args``, SIGKILL the daemon *delay* seconds later."""
    pid = rig.daemon_pid()  # autostarts a fresh daemon
    command = rig.env.spawn(*args)
    time.sleep(delay)
    kill_and_wait(pid)
    out, err = command.communicate(timeout=30)
    return subprocess.CompletedProcess(command.args, command.returncode, out, err)


def _kill_while_held(
    rig: Rig, args: list[str], held: Callable[[str], bool]
) -> subprocess.CompletedProcess[str]:
    """Start a daemon, run ``satchel *args`` with the index holding its answers to the paths
    *held* picks, SIGKILL the daemon once it asked for one: certainly in the middle of it."""
    pid = rig.daemon_pid()  # autostarts a fresh daemon
    rig.index.reset_log()
    rig.index.held = held
    rig.index.gate.clear()
    try:
        command = rig.env.spawn(*args)
        while not any(held(path) for path in rig.index.requests):
            assert command.poll() is None, command.communicate()
            time.sleep(0.01)  # polling the index's log: there is no event to wait on
        kill_and_wait(pid)
    finally:
        rig.index.gate.set()
        rig.index.held = lambda path: True
    out, err = command.communicate(timeout=60)
    return subprocess.CompletedProcess(command.args, command.returncode, out, err)


def _timed(rig: Rig, *args: str) -> float:
    start = time.monotonic()
    rig.ok(*args)
    return time.monotonic() - start


@pytest.mark.slow
def test_kill_9_at_random_points_of_a_prefetch(rig: Rig) -> None:
    """Odd runs start with pages and metadata cached, so their kill points all fall among
    downloads and blob commits; even runs start from an empty cache (pages, metadata, SQLite)."""
    kills = scaled(12, 60)
    print(f"seed {SEED}: replay with SATCHEL_CRASH_SEED={SEED}")  # shown when the test fails
    rng = random.Random(SEED)
    names = _big_wheels(rig, 8, 512 * 1024)
    rig.index.delay = 0.01  # spreads the work over more of the run: more distinct kill points
    rig.daemon_pid()
    cold = _timed(rig, "prefetch", *names)
    rig.ok("stop")
    shutil.rmtree(rig.cache)
    rig.ok("resolve", *names)
    warm = _timed(rig, "prefetch", *names)
    outcomes = {"failed": 0, "completed": 0}
    partial_stores = 0
    for run in range(kills):
        rig.ok("stop")
        shutil.rmtree(rig.cache)
        if run % 2:
            rig.ok("resolve", *names)
        if run == 0:  # held at its first wheel: certainly inside the prefetch
            result = _kill_while_held(rig, ["prefetch", *names], lambda p: p.endswith(".whl"))
        else:
            delay = rng.uniform(0.0, warm if run % 2 else cold)
            result = _kill_after(rig, ["prefetch", *names], delay)
        outcomes["completed" if result.returncode == 0 else "failed"] += 1
        # No daemon runs now: what a crash left must already be safe to look at.
        for path in (rig.cache / "blobs").rglob("*") if (rig.cache / "blobs").exists() else ():
            assert path.is_dir() or len(path.name) == 64, f"non-blob file in blobs/: {path}"
        stored = rig.assert_store_consistent()  # restarts the daemon
        partial_stores += 0 < stored < len(names)
        rig.ok("prefetch", *names)
        assert rig.assert_store_consistent() == len(names)
        assert list((rig.cache / "tmp").iterdir()) == [], "temp debris after a restart"
    print(
        f"\nprefetch kills (seed {SEED}): {kills} kills (runs of {cold:.2f} s cold, "
        f"{warm:.2f} s metadata-warm), {outcomes}, {partial_stores} left a partial store"
    )
    assert outcomes["failed"] > 0, "the held kill did not fail the prefetch it interrupted"


# -- install --------------------------------------------------------------------------------


def _package(rig: Rig, name: str, version: str, files: int) -> None:
    """A wheel with many modules (installing it takes long enough to be interrupted) and a
    console script; version 2 drops some modules and adds others."""
    dist = name.replace("-", "_")
    shift = 0 if version == "1.0" else files // 3
    modules = {f"{dist}/m{i}.py": f"V = {version!r}\n" * 20 for i in range(shift, files + shift)}
    modules[f"{dist}/__init__.py"] = f"__version__ = {version!r}\n"
    rig.index.add(
        build_wheel(
            rig.root / "dist",
            name,
            version,
            files=modules,
            console_scripts={f"{name}-cli": f"{dist}:__init__"},
        )
    )


@contextlib.contextmanager
def _install_waiting_on_our_lock(
    rig: Rig, venv: Path, args: list[str]
) -> Iterator[tuple[int, subprocess.Popen[str], Callable[[], None]]]:
    """Start ``satchel install *args`` into *venv* while the test holds the environment's lock;
    yield (the daemon's pid, the command, the lock's release) once the daemon is seen waiting
    for it in the kernel's lock table: the request has reached the install, whatever the
    client's start-up took. The lock is let go on leaving, if not before."""
    lock = venv / LOCK_NAME
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    held = [True]

    def release() -> None:
        if held:
            held.clear()
            os.close(fd)  # closing releases the flock

    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        pid = rig.daemon_pid()  # autostarts a fresh daemon
        command = rig.env.spawn("install", *args, "--venv", str(venv))
        wait_for_flock_waiter(lock, lambda: command.poll() is not None, "the install")
        yield pid, command, release
    finally:
        release()


def _recover(rig: Rig, venv: Path) -> bool:
    """The documented recovery of a killed install (what the next install runs first), with
    the journals the daemon keeps in its cache."""
    from satchel.daemon.installing.installer import Scheme, recover
    from satchel.daemon.installing.journal import journal_dir

    site = next((venv / "lib").glob("python*/site-packages"))
    scheme = Scheme(site, site, venv / "bin", venv, venv / "include", venv / "bin" / "python")
    return recover(scheme, journal_dir(rig.cache))


@pytest.mark.slow
def test_kill_9_at_random_points_of_an_install(rig: Rig) -> None:
    kills = scaled(8, 40)
    print(f"seed {SEED}: replay with SATCHEL_CRASH_SEED={SEED}")  # shown when the test fails
    rng = random.Random(SEED + 1)
    names = [f"app-{i}" for i in range(4)]
    for name in names:
        _package(rig, name, "1.0", 300)
        _package(rig, name, "2.0", 300)
    venv = rig.root / "venv"
    pristine = rig.root / "venv.old"
    python = ["--python", sys.executable]
    old_reqs = [f"{n}==1.0" for n in names]
    new_reqs = [f"{n}==2.0" for n in names]
    rig.ok("prefetch", *old_reqs)
    rig.ok("prefetch", *new_reqs)
    rig.ok("install", *old_reqs, "--venv", str(venv), *python)
    shutil.copytree(venv, pristine, symlinks=True)
    old = env_state(venv)
    assert venv_state(venv)[0] == old[0]  # the real pip list agrees with the in-process scan
    # One uninterrupted upgrade gives the new state (and unpacks 2.0 into the cache); a second
    # one from the old state measures the install the kills interrupt.
    rig.ok("install", *new_reqs, "--venv", str(venv), *python)
    new = env_state(venv)
    assert {new[0][n] for n in names} == {"2.0"} and new != old
    shutil.rmtree(venv)
    shutil.copytree(pristine, venv, symlinks=True)
    # Timed from the moment the daemon may take the lock: the install proper, not the
    # client's start-up (on a loaded machine most draws landed before the client connected).
    with _install_waiting_on_our_lock(rig, venv, [*new_reqs, *python]) as (_pid, command, go):
        go()
        started = time.monotonic()
        _out, err = command.communicate(timeout=60)
    length = time.monotonic() - started
    assert command.returncode == 0, err
    assert env_state(venv) == new

    outcomes = {"old": 0, "new": 0, "rolled back": 0}
    upper = length  # lowered to any draw that came after the commit: that run was shorter
    for run in range(kills):
        rig.ok("stop")
        shutil.rmtree(venv)
        shutil.copytree(pristine, venv, symlinks=True)
        delay = rng.uniform(0, upper)
        with _install_waiting_on_our_lock(rig, venv, [*new_reqs, *python]) as (pid, cmd, go):
            if run:  # a random point of the install proper
                go()
                time.sleep(delay)
            kill_and_wait(pid)  # the first run: while it waits for the lock, certainly inside
        cmd.communicate(timeout=60)
        now = env_state(venv)
        if now == new:
            outcomes["new"] += 1
            upper = delay
            assert not _recover(rig, venv) or env_state(venv) == new
        elif now == old:
            outcomes["old"] += 1
        else:
            assert _recover(rig, venv), (
                "an environment neither old nor new, and no journal to replay"
            )
            assert env_state(venv) == old, "recovery did not restore the old state"
            outcomes["rolled back"] += 1
        rig.assert_store_consistent()
        rig.ok("install", *new_reqs, "--venv", str(venv), *python)
        assert env_state(venv) == new
    assert venv_state(venv)[0] == new[0]
    print(f"\ninstall kills (seed {SEED}): {kills} kills over {length:.2f} s runs, {outcomes}")
    assert outcomes["new"] < kills, "every kill came after the commit: the test proves nothing"
