"""Disk full: the cache on a small tmpfs, a prefetch that cannot fit.

The kernel, not a monkeypatch, decides where ENOSPC lands (a blob write, an fsync, a new
directory, SQLite's journal), which is what the daemon must survive: the prefetch fails with a
message that says "no space left" and names the path; the store stays consistent (`cache
verify` clean, no partial blob visible); the daemon keeps serving ping, status and a resolve of
what was cached before. Skipped, with the reason, where mounting a tmpfs is not allowed.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.client.clientenv import ClientEnv
from tests.reliability.harness import Rig
from tests.support.index_server import IndexServer
from tests.support.tmpfs import small_tmpfs
from tests.support.wheels import build_wheel

EXIT_FAILURE = 1


@pytest.fixture
def full_rig(tmp_path: Path) -> Iterator[Rig]:
    """A rig whose cache directory (``XDG_CACHE_HOME``) is a 4 MiB tmpfs."""
    with small_tmpfs(tmp_path / "small", "4m") as mount:
        index = IndexServer(tmp_path / "index").start()
        env = ClientEnv(tmp_path)
        env.env["XDG_CACHE_HOME"] = str(mount)
        rig = Rig(tmp_path, env, index)
        rig.configure(index.url)
        try:
            yield rig
        finally:
            rig.cleanup()


def _wheel(rig: Rig, name: str, size: int) -> None:
    payload = random.Random(name).randbytes(size)
    files: dict[str, bytes | str] = {f"{name}/__init__.py": "", f"{name}/payload.bin": payload}
    rig.index.add(build_wheel(rig.root / "dist", name, "1.0", files=files))


def test_prefetch_on_a_full_disk_fails_clearly_and_the_daemon_keeps_serving(
    full_rig: Rig,
) -> None:
    rig = full_rig
    _wheel(rig, "small", 1000)
    for i in range(3):
        _wheel(rig, f"huge{i}", 2 * 1024 * 1024)  # 6 MiB of incompressible data: cannot fit
    rig.ok("prefetch", "small")
    before = rig.ok("resolve", "--offline", "small", "--format", "json").stdout

    failed = rig.satchel("prefetch", "huge0", "huge1", "huge2")

    assert failed.returncode == EXIT_FAILURE, failed.stderr
    assert "no space left" in failed.stderr.lower(), failed.stderr
    assert str(rig.cache) in failed.stderr, f"the message names no path: {failed.stderr}"
    assert "Traceback" not in failed.stderr
    # The daemon is still the same process, and serves.
    rig.ok("ping")
    status = json.loads(rig.ok("status", "--json").stdout)
    assert status["pid"] == rig.env.daemon_pid()
    after = rig.ok("resolve", "--offline", "small", "--format", "json").stdout
    assert json.loads(after)["pins"] == json.loads(before)["pins"]
    # Whatever did fit is whole; nothing partial is visible; verify is clean.
    rig.assert_store_consistent()
    assert not any((rig.cache / "tmp").iterdir()), "temp files of the failed writes remain"
