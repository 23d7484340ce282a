"""The single-instance lock."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from satchel.daemon.process._lock import AlreadyRunning, InstanceLock
from tests.client.clientenv import ClientEnv, wait_gone


def test_lock_records_the_holder_pid(tmp_path: Path) -> None:
    lock = InstanceLock(tmp_path / "state" / "satcheld.lock")
    lock.acquire()
    try:
        assert (tmp_path / "state" / "satcheld.lock").read_text() == f"{os.getpid()}\n"
    finally:
        lock.release()


def test_second_holder_is_refused_with_the_first_pid(tmp_path: Path) -> None:
    path = tmp_path / "satcheld.lock"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys\n"
            "from pathlib import Path\n"
            "from satchel.daemon.process._lock import InstanceLock\n"
            f"InstanceLock(Path({str(path)!r})).acquire()\n"
            "print('held', flush=True)\n"
            "sys.stdin.read()\n",  # held until killed, however long the test takes
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "held\n"
        with pytest.raises(AlreadyRunning) as excinfo:
            InstanceLock(path).acquire()
        assert excinfo.value.pid == holder.pid
        assert f"pid {holder.pid}" in str(excinfo.value)
    finally:
        holder.kill()
        holder.wait()
    # The kernel released the dead holder's lock: no stale-pid guesswork needed.
    lock = InstanceLock(path)
    lock.acquire()
    lock.release()


def test_release_lets_another_instance_in(tmp_path: Path) -> None:
    first = InstanceLock(tmp_path / "satcheld.lock")
    first.acquire()
    first.release()
    second = InstanceLock(tmp_path / "satcheld.lock")
    second.acquire()
    assert second.held
    second.release()


def test_a_shell_with_another_runtime_dir_is_told_which_socket_to_stop(tmp_path: Path) -> None:
    """QA 2026-12-05: a daemon autostarted from one shell; another shell of the same user with
    another (or no) ``XDG_RUNTIME_DIR`` (an IDE, cron, ssh without a login session) looks for a
    socket elsewhere and autostarts a second daemon, which finds the lock taken. The error said
    "stop it with `satchel stop`", which from that shell answers "satcheld is not running"
    (exit 0) and changes nothing. It now names the running daemon's socket and the
    `satchel --socket ... stop` that reaches it; that command stops it."""
    first = ClientEnv(tmp_path)
    try:
        pid = first.daemon_pid() if first.satchel("ping").returncode == 0 else None
        assert pid is not None
        elsewhere = tempfile.mkdtemp(prefix="st-other-", dir="/tmp")
        other = {"XDG_RUNTIME_DIR": elsewhere}
        try:
            refused = first.satchel("ping", extra_env=other)
            assert refused.returncode != 0
            assert f"listens on {first.socket}" in refused.stderr, refused.stderr
            hint = f"satchel --socket {first.socket} stop"
            assert hint in refused.stderr
            assert (
                first.satchel("--socket", str(first.socket), "stop", extra_env=other).returncode
                == 0
            )
            assert wait_gone(pid, 30)
        finally:
            shutil.rmtree(elsewhere, ignore_errors=True)
    finally:
        first.cleanup()
