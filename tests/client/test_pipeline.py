"""`Session.call(..., pipeline=True)` (used by `satchel resolve --offline`): one write, one wait.

A scripted server on a real Unix socket records what arrives before it answers anything: a
pipelined call must have sent its Request together with the Hello. Against real daemons, a
pipelined call from another build still ends up answered by the replacement daemon.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from satchel.client.session import Session
from satchel.client.transport import Stream
from satchel.protocol import NEED_DATA, SERVER, Connection
from satchel.protocol.buildid import build_id
from satchel.protocol.codec import DictCodec
from tests.client.clientenv import ClientEnv


def _waiting_for_an_answer(thread: threading.Thread) -> bool:
    """Whether *thread* (the client, in this process) is inside `Stream.recv`: it has sent
    everything it meant to before reading, and waits (no clock: the interpreter says so)."""
    frame = sys._current_frames().get(thread.ident or 0)
    return frame is not None and frame.f_code is Stream.recv.__code__


class ScriptedDaemon:
    """Accepts one connection; reads until `wanted` messages arrived or the client (the main
    thread) waits for an answer, then answers Welcome and a Result for every request seen."""

    def __init__(self, path: Path, wanted: int) -> None:
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(path))
        self.listener.listen(1)
        self.wanted = wanted
        self.before_welcome: list[str] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        sock, _ = self.listener.accept()
        conn = Connection(SERVER, DictCodec())
        sock.settimeout(0.01)  # how often to look at the client: pacing, not a deadline
        requests = []
        client = threading.main_thread()
        try:
            while len(self.before_welcome) < self.wanted:
                try:
                    data = sock.recv(65536)
                except TimeoutError:
                    if not _waiting_for_an_answer(client):
                        continue
                    sock.setblocking(False)  # what it sent before waiting is here by now
                    try:
                        data = sock.recv(65536)
                    except BlockingIOError:
                        break
                    finally:
                        sock.settimeout(0.01)
                if not data:
                    break
                conn.receive_data(data)
                while (event := conn.next_event()) is not NEED_DATA:
                    self.before_welcome.append(event["type"])
                    if event["type"] == "request":
                        requests.append(event["id"])
            reply = conn.send(
                {
                    "type": "welcome",
                    "major": 1,
                    "minor": 0,
                    "daemon_version": "test",
                    "build_id": build_id(),
                    "pid": 1,
                    "features": [],
                }
            )
            sock.settimeout(5)
            if not requests:  # the client waited for the Welcome: now its request comes
                sock.sendall(reply)
                reply = b""
                while not requests:
                    conn.receive_data(sock.recv(65536))
                    while (event := conn.next_event()) is not NEED_DATA:
                        if event["type"] == "request":
                            requests.append(event["id"])
            for rid in requests:
                reply += conn.send({"type": "result", "id": rid, "value": {"answered": rid}})
            sock.sendall(reply)
        finally:
            sock.close()
            self.listener.close()


@pytest.fixture
def sock_path(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "s.sock"


def test_a_pipelined_call_sends_its_request_with_the_hello(sock_path: Path) -> None:
    daemon = ScriptedDaemon(sock_path, wanted=2)
    with Session(str(sock_path), autostart=False) as session:
        value = session.call("resolve", {"offline": True}, pipeline=True)
    daemon.thread.join(5)
    assert value == {"answered": 1}
    assert daemon.before_welcome == ["hello", "request"]


def test_an_ordinary_call_waits_for_the_welcome(sock_path: Path) -> None:
    daemon = ScriptedDaemon(sock_path, wanted=2)
    with Session(str(sock_path), autostart=False) as session:
        value = session.call("resolve", {"offline": False})
    daemon.thread.join(5)
    assert value == {"answered": 1}
    assert daemon.before_welcome == ["hello"]


PIPELINED_CALL = """
from satchel.client.session import Session
with Session() as session:
    value = session.call("debug.sleep", {"seconds": 0}, pipeline=True)
    print(value["slept"] >= 0, session.welcome["pid"])
"""


def test_a_pipelined_call_of_another_build_is_answered_by_the_new_daemon(
    tmp_path: Path,
) -> None:
    client = ClientEnv(tmp_path / "c")
    newer = tmp_path / "newer" / "satchel" / "client"
    newer.mkdir(parents=True)
    (newer / "added_in_newer_build.py").write_text('"""Only the newer build has it."""\n')
    try:
        assert client.satchel("ping").returncode == 0
        old_pid = client.daemon_pid()
        result = subprocess.run(
            [sys.executable, "-c", PIPELINED_CALL],
            env={**client.env, "PYTHONPATH": str(tmp_path / "newer")},
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        ok, pid = result.stdout.split()
        client.pids.add(int(pid))
        assert ok == "True"
        assert int(pid) != old_pid
        assert "restarting the autostarted daemon" in result.stderr
    finally:
        client.cleanup()
