"""Issue 3, end to end: kill -9 of the daemon in the middle of a prefetch.

No partial file may ever be visible under the store's ``blobs/``; whatever the killed daemon left
in ``tmp/`` is swept by the next one, and the same prefetch then completes.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.client.clientenv import SATCHEL
from tests.e2e.twoindexes import World, blobs_are_whole, open_world
from tests.support.wheels import build_wheel, file_sha256


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with open_world(tmp_path) as w:
        yield w


class HoldingProxy:
    """A TCP relay on 127.0.0.1 to *port* that passes *hold_after* bytes of answers per
    connection, then holds the rest until `released` is set.

    The test index writes a whole file at once, which loopback delivers in a millisecond; behind
    this relay a big download stops part-way for as long as the test wants: a kill then lands in
    the middle of it whatever the machine's speed. Requests pass unchanged (the index's relative
    links keep pointing at the relay).
    """

    def __init__(self, port: int, hold_after: int) -> None:
        self.target = port
        self.hold_after = hold_after
        self.released = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/simple/"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
                upstream = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                return
            for src, dst, answers in ((client, upstream, False), (upstream, client, True)):
                threading.Thread(target=self._pump, args=(src, dst, answers), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, answers: bool) -> None:
        passed = 0
        try:
            while data := src.recv(16384):
                if answers and not self.released.is_set():
                    room = max(0, self.hold_after - passed)
                    if len(data) > room:
                        dst.sendall(data[:room])
                        passed += room
                        data = data[room:]
                        self.released.wait()
                dst.sendall(data)
                passed += len(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def close(self) -> None:
        self.released.set()
        self.listener.close()


def _wheels(world: World, prefix: str, count: int, size: int) -> dict[str, str]:
    """*count* wheels of about *size* bytes (incompressible) on `internal`: {project: sha256}."""
    out = {}
    for i in range(count):
        name = f"{prefix}-{i}"
        module = name.replace("-", "_")
        payload = random.Random(name).randbytes(size)
        wheel = build_wheel(
            world.root / "dist" / prefix,
            name,
            "1.0",
            files={f"{module}/__init__.py": "", f"{module}/payload.bin": payload},
        )
        world.internal.add(wheel)
        out[name] = file_sha256(wheel)
    return out


#: What the relay passes of each connection's answers before it holds them: past the store's
#: first write batch (`WRITE_BATCH`, 1 MiB) of a big wheel (2.5 MiB), far past everything else
#: a connection carries (pages, metadata, the 1000-byte wheels).
_HOLD_AFTER = 3 << 19

#: A temp file past this size is one of the big wheels, held by the relay: the kill that follows
#: lands mid-download, however long it takes to come.
_IN_FLIGHT = 64 * 1024


def _wait_for_partial_download(tmp: Path, seconds: float = 60) -> None:
    """Wait for a big wheel's first batch in tmp/ (*seconds*: a hang guard)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(FileNotFoundError):
            if any(entry.stat().st_size > _IN_FLIGHT for entry in tmp.iterdir()):
                return
        time.sleep(0.005)  # polling the store's tmp/: there is no event to wait on
    raise AssertionError("no download reached the store's tmp/ in time")


def test_kill_9_during_prefetch_leaves_no_partial_blob_and_a_rerun_completes(
    world: World,
) -> None:
    wheels = _wheels(world, "small", 3, 1000) | _wheels(world, "big", 3, 5 << 19)
    proxy = HoldingProxy(world.internal.port, _HOLD_AFTER)  # big wheels stop part-way
    try:
        world.ok("index", "remove", "internal")
        world.ok("index", "add", "internal", proxy.url, "--before", "public")
        pid = world.env.daemon_pid()
        prefetch = subprocess.Popen(
            [SATCHEL, "prefetch", *wheels],
            env=world.env.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait_for_partial_download(world.cache / "tmp")
            os.kill(pid, signal.SIGKILL)
            assert prefetch.wait(60) != 0
        finally:
            if prefetch.poll() is None:
                prefetch.kill()
                prefetch.wait()
        # The kill landed mid-download: bytes in tmp/, and only whole files under blobs/.
        assert any(entry.stat().st_size > 0 for entry in (world.cache / "tmp").iterdir())
        stored = blobs_are_whole(world.cache)
        assert stored < set(wheels.values())

        proxy.released.set()
        summary = json.loads(world.ok("prefetch", *wheels, "--json").stdout)
    finally:
        proxy.close()

    assert summary["files"] == len(wheels)
    assert summary["downloaded"] == len(wheels) - len(stored)
    assert blobs_are_whole(world.cache) == set(wheels.values())
    assert list((world.cache / "tmp").iterdir()) == []
    assert world.verify_clean() == len(wheels)
