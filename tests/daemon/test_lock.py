"""The single-instance lock."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from satchel.daemon.process._lock import AlreadyRunning, InstanceLock


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
