"""A real satcheld: ping, status, stop, single instance, crash recovery, signals, idle exit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.daemon import HANG_GUARD, CallError, Client, DaemonProcess, call, isolated_env


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return isolated_env(tmp_path)


def test_ping_answers_with_the_daemon_pid(env: dict[str, str]) -> None:
    with DaemonProcess(env) as daemon:
        assert call(daemon.socket, "ping") == {"pid": daemon.pid}


def test_status_reports_identity_locations_and_activation(
    env: dict[str, str], tmp_path: Path
) -> None:
    with DaemonProcess(env, "--idle-timeout", "600") as daemon:
        status = call(daemon.socket, "status")
    assert status["pid"] == daemon.pid
    assert status["socket"] == daemon.socket
    assert status["cache_dir"] == str(tmp_path / "cache" / "satchel")
    assert status["config_dir"] == str(tmp_path / "config" / "satchel")
    assert status["state_dir"] == str(tmp_path / "state" / "satchel")
    assert status["activation"] == "manual"
    assert status["idle_timeout"] == 600
    assert status["protocol"] == "1.0"
    assert status["jobs"] == []
    assert status["previous_exit"] is None
    assert status["uptime"] >= 0


def test_socket_is_private_and_in_a_private_directory(env: dict[str, str]) -> None:
    with DaemonProcess(env) as daemon:
        sock = os.stat(daemon.socket)
        directory = os.stat(os.path.dirname(daemon.socket))
    assert sock.st_mode & 0o777 == 0o600
    assert directory.st_mode & 0o777 == 0o700


def test_stop_replies_then_exits_zero_and_removes_its_socket(env: dict[str, str]) -> None:
    with DaemonProcess(env) as daemon:
        assert call(daemon.socket, "stop") == {"pid": daemon.pid}
        assert daemon.wait(HANG_GUARD) == 0
        assert not os.path.exists(daemon.socket)


def test_next_status_reports_the_previous_exit_once(env: dict[str, str]) -> None:
    with DaemonProcess(env) as first:
        call(first.socket, "stop")
        first.wait(HANG_GUARD)
    with DaemonProcess(env) as second:
        previous = call(second.socket, "status")["previous_exit"]
        again = call(second.socket, "status")["previous_exit"]
    assert previous["pid"] == first.pid
    assert previous["reason"] == "stop-request"
    assert previous["clean"] is True
    assert previous["exit_code"] == 0
    assert again is None


def test_second_daemon_on_the_same_state_exits_naming_the_running_pid(
    env: dict[str, str],
) -> None:
    with DaemonProcess(env) as daemon:
        other_socket = os.path.join(env["XDG_RUNTIME_DIR"], "other.sock")
        result = subprocess.run(
            [sys.executable, "-m", "satchel.daemon.process.main", "--socket", other_socket],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert result.returncode == 1
        assert f"already running (pid {daemon.pid}" in result.stderr
        assert call(daemon.socket, "ping") == {"pid": daemon.pid}  # undisturbed
        assert call(daemon.socket, "status")["previous_exit"] is None


def test_restart_after_kill_9_removes_the_stale_socket_and_reports_the_crash(
    env: dict[str, str],
) -> None:
    crashed = DaemonProcess(env).start()
    crashed.kill()
    assert os.path.exists(crashed.socket)  # left behind by the dead daemon
    with DaemonProcess(env) as daemon:
        status = call(daemon.socket, "status")
    assert status["previous_exit"]["pid"] == crashed.pid
    assert status["previous_exit"]["clean"] is False
    assert status["previous_exit"]["reason"] == "crashed (no clean exit recorded)"
    assert "stale socket" in daemon.stderr()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_exits_zero_and_removes_the_socket(env: dict[str, str], signum: int) -> None:
    with DaemonProcess(env) as daemon:
        daemon.proc.send_signal(signum)  # type: ignore[union-attr]
        assert daemon.wait(HANG_GUARD) == 0
        assert not os.path.exists(daemon.socket)
    with DaemonProcess(env) as again:
        previous = call(again.socket, "status")["previous_exit"]
    assert previous["reason"] == ("sigterm" if signum == signal.SIGTERM else "sigint")


#: A request that outlasts any test: it ends when the test cancels it (or the drain deadline).
FOREVER = {"seconds": 600, "step": 0.05}


def _until_draining(client: Client) -> dict[str, Any]:
    """Ping until the daemon refuses: it has begun draining (no clock: it answers each ping)."""
    while True:
        reply = client.wait_terminal(client.request("ping"))
        if reply["type"] == "error":
            return reply


def test_sigterm_drains_an_in_flight_request(env: dict[str, str]) -> None:
    with DaemonProcess(env) as daemon, Client(daemon.socket) as client:
        client.hello()
        rid = client.request("debug.sleep", {"seconds": 2, "step": 0.05})
        client.next_progress(rid)  # the request is running
        daemon.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
        reply = client.wait_terminal(rid)
        assert reply["type"] == "result"  # ran to its end: drained, not cut
        assert daemon.wait(HANG_GUARD) == 0
        assert not os.path.exists(daemon.socket)


def test_new_requests_are_refused_while_draining(env: dict[str, str]) -> None:
    with DaemonProcess(env) as daemon, Client(daemon.socket) as client:
        client.hello()
        slow = client.request("debug.sleep", FOREVER)
        client.next_progress(slow)
        daemon.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
        late = _until_draining(client)
        assert late["code"] == "shutting-down"
        client.next_progress(slow)  # still running after the refusal: drained, not cancelled
        assert daemon.returncode is None
        client.cancel(slow)  # the drain ends with the last request
        assert client.wait_terminal(slow)["code"] == "cancelled"
        assert daemon.wait(HANG_GUARD) == 0


def test_drain_deadline_cancels_a_request_that_runs_too_long(env: dict[str, str]) -> None:
    with DaemonProcess(env) as daemon, Client(daemon.socket) as client:
        client.hello()
        slow = client.request("debug.sleep", {"seconds": 60})
        stopper = call(daemon.socket, "stop", {"drain_timeout": 0.2})
        assert stopper == {"pid": daemon.pid}
        reply = client.wait_terminal(slow)
        assert reply["type"] == "error"
        assert reply["code"] == "shutting-down"
        assert daemon.wait(HANG_GUARD) == 0


def test_idle_timeout_exits_and_records_why(env: dict[str, str]) -> None:
    with DaemonProcess(env, "--idle-timeout", "0.5") as daemon:
        assert daemon.wait(HANG_GUARD) == 0
        assert not os.path.exists(daemon.socket)
    with DaemonProcess(env) as again:
        assert call(again.socket, "status")["previous_exit"]["reason"] == "idle-timeout"


def test_idle_timeout_never_fires_while_a_request_runs(env: dict[str, str]) -> None:
    with DaemonProcess(env, "--idle-timeout", "0.3") as daemon, Client(daemon.socket) as client:
        client.hello()
        slow = client.request("debug.sleep", FOREVER)
        while client.next_progress(slow)["done"] < 12:  # 12 steps of 0.05 s: past the 0.3 s
            pass
        # By the daemon's own clock the request has run longer than the idle timeout: a daemon
        # that had idled out would be draining now and refuse this.
        assert client.wait_terminal(client.request("ping"))["type"] == "result"
        client.cancel(slow)
        assert client.wait_terminal(slow)["code"] == "cancelled"
        client.close()  # an open connection keeps the daemon busy too
        assert daemon.wait(HANG_GUARD) == 0  # and idles out afterwards
    with DaemonProcess(env) as again:
        assert call(again.socket, "status")["previous_exit"]["reason"] == "idle-timeout"


def test_status_lists_jobs_in_flight(env: dict[str, str]) -> None:
    with DaemonProcess(env) as daemon, Client(daemon.socket) as client:
        client.hello()
        slow = client.request("debug.sleep", FOREVER)
        client.next_progress(slow)
        jobs = call(daemon.socket, "status")["jobs"]
        client.cancel(slow)
        assert client.wait_terminal(slow)["code"] == "cancelled"
    assert [job["method"] for job in jobs] == ["debug.sleep"]


def test_unknown_method_and_invalid_params_are_reported(env: dict[str, str]) -> None:
    with DaemonProcess(env) as daemon:
        with pytest.raises(CallError) as unknown:
            call(daemon.socket, "no.such.method")
        with pytest.raises(CallError) as invalid:
            call(daemon.socket, "debug.sleep", {"seconds": "long"})
    assert unknown.value.code == "unknown-method"
    assert invalid.value.code == "invalid-params"
    assert "$.seconds" in invalid.value.message


def test_handler_errors_keep_their_code_and_hide_internal_details(env: dict[str, str]) -> None:
    with DaemonProcess(env) as daemon:
        with pytest.raises(CallError) as satchel_error:
            call(daemon.socket, "debug.fail", {"kind": "satchel"})
        with pytest.raises(CallError) as internal:
            call(daemon.socket, "debug.fail", {"kind": "internal"})
        assert call(daemon.socket, "ping") == {"pid": daemon.pid}
        log = daemon.stderr()
    assert satchel_error.value.code == "busy"
    assert internal.value.code == "internal"
    assert "secret internal detail" not in internal.value.message
    assert "secret internal detail" in log  # the traceback went to the log


def test_test_methods_are_absent_without_the_opt_in(env: dict[str, str]) -> None:
    env = {k: v for k, v in env.items() if k != "SATCHEL_TEST_METHODS"}
    with DaemonProcess(env) as daemon, pytest.raises(CallError) as excinfo:
        call(daemon.socket, "debug.sleep", {"seconds": 0})
    assert excinfo.value.code == "unknown-method"
