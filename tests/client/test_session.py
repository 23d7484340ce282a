"""`Session`, the seam every client command uses, against a real autostarted daemon."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from satchel.client.session import ClientError, NotRunningError, RemoteError, Session
from satchel.protocol import errors
from tests.client.clientenv import ClientEnv


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ClientEnv]:
    env = ClientEnv(tmp_path)
    for key, value in env.env.items():
        monkeypatch.setenv(key, value)
    for key in ("SATCHEL_SOCKET", "SATCHEL_NO_AUTOSTART"):
        monkeypatch.delenv(key, raising=False)
    yield env
    env.cleanup()


def test_call_returns_the_result_value(client: ClientEnv) -> None:
    with Session() as session:
        value = session.call("ping", {})
        assert value == {"pid": session.welcome["pid"]}
    client.pids.add(value["pid"])


def test_the_welcome_identifies_the_daemon(client: ClientEnv) -> None:
    from satchel.protocol.buildid import compute_build_id

    with Session() as session:
        welcome = session.connect()
    client.pids.add(welcome["pid"])
    assert welcome["type"] == "welcome"
    assert welcome["build_id"] == compute_build_id()
    assert session.started_daemon


def test_several_calls_share_one_connection(client: ClientEnv) -> None:
    with Session() as session:
        session.call("ping", {})
        stream = session._stream
        status = session.call("status", {})
        session.call("ping", {})
        assert session._stream is stream
    client.pids.add(status["pid"])


def test_a_daemon_error_raises_remote_error_with_code_and_details(client: ClientEnv) -> None:
    with Session() as session, pytest.raises(RemoteError) as caught:
        session.call("debug.fail", {"kind": "satchel"})
    assert caught.value.code == errors.BUSY
    assert caught.value.message == "debug failure requested"
    assert caught.value.details == {"kind": "satchel"}


def test_an_unknown_method_is_a_remote_error_not_a_crash(client: ClientEnv) -> None:
    with Session() as session, pytest.raises(RemoteError) as caught:
        session.call("no.such.method", {})
    assert caught.value.code == errors.UNKNOWN_METHOD


def test_progress_events_reach_the_callback_before_the_result(client: ClientEnv) -> None:
    events: list[dict[str, Any]] = []
    with Session() as session:
        value = session.call(
            "debug.sleep", {"seconds": 0.2, "step": 0.05}, on_progress=events.append
        )
    assert set(value) == {"slept"}  # the Result, after every Progress
    assert [e["done"] for e in events] == [0, 1, 2, 3]
    assert {e["total"] for e in events} == {4}


def test_without_autostart_a_missing_daemon_raises_not_running(client: ClientEnv) -> None:
    with Session(autostart=False) as session, pytest.raises(NotRunningError) as caught:
        session.call("ping", {})
    assert caught.value.code == errors.UNAVAILABLE
    assert errors.exit_status(caught.value.code) == 3


def test_the_environment_variable_disables_autostart(
    client: ClientEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SATCHEL_NO_AUTOSTART", "1")
    with Session() as session, pytest.raises(NotRunningError):
        session.connect()


def test_a_daemon_that_goes_away_mid_request_is_a_client_error(client: ClientEnv) -> None:
    with Session() as session:
        pid = session.call("ping", {})["pid"]
        client.pids.add(pid)
        rid = session._take_id()
        session._send(
            {"type": "request", "id": rid, "method": "debug.sleep", "params": {"seconds": 30}}
        )
        import os

        os.kill(pid, signal.SIGKILL)
        with pytest.raises(ClientError) as caught:
            session._await_terminal(rid, None, None)
    assert caught.value.code == errors.UNAVAILABLE


# Ctrl-C as a shell gives it: SIGINT at Python's default. Dispositions are inherited, and twice
# in a full run of the suite (never alone) the child found SIGINT ignored and slept its 30 s out;
# what it inherited is printed to stderr for whoever meets that again.
CANCEL_SCRIPT = """
import signal, sys
print("inherited SIGINT handler:", signal.getsignal(signal.SIGINT), file=sys.stderr)
signal.signal(signal.SIGINT, signal.default_int_handler)
from satchel.client.session import Session
with Session() as session:
    session.connect()
    print("connected", flush=True)
    try:
        session.call("debug.sleep", {"seconds": 30})
    except KeyboardInterrupt:
        # Still connected: only the Cancel message can have stopped the request.
        jobs = session.call("status", {})["jobs"]
        print("interrupted; running:", [job["method"] for job in jobs], flush=True)
        sys.exit(130)
"""


def test_ctrl_c_cancels_the_request_in_the_daemon(client: ClientEnv) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", CANCEL_SCRIPT],
        env=client.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "connected"
    deadline = time.monotonic() + 60  # a hang guard, not a measurement
    while time.monotonic() < deadline:  # wait until the daemon runs the request
        jobs = json.loads(client.satchel("status", "--json").stdout)["jobs"]
        if any(job["method"] == "debug.sleep" for job in jobs):
            break
        time.sleep(0.02)
    else:
        pytest.fail("the request never started")
    proc.send_signal(signal.SIGINT)
    # No bound on how soon: the daemon's status, asked on the same connection after Ctrl-C,
    # is the proof (the 30 s sleep would still be running had the Cancel not stopped it).
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted; running: []" in out
