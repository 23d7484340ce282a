"""Issue 11.7: nobody without the token can stall the local index; running out of descriptors
is said, not suffered in silence.

Real daemons, real TCP and Unix sockets. The attacker is a real second uid (``satchel-intruder``)
holding hundreds of idle connections to the owner's local index. Nothing here measures a
duration: the daemons under test get the deadline that would otherwise end the attack patched to
an hour (a module constant, set in the daemon process before it starts), so the idle connections
are still held when the owner's request is answered, and the attacker checks that they were.
"""

from __future__ import annotations

import base64
import re
import select
import socket
import sys
import time
import urllib.request
from pathlib import Path

from tests.client.clientenv import ClientEnv
from tests.security.otheruser import Child, Intruder, intruder, start_as_intruder
from tests.support.daemon import DaemonProcess, call


def daemon_command(*patches: str) -> list[str]:
    """Run the real daemon after *patches* (Python statements) in its own process."""
    code = "\n".join(
        [
            "import sys, resource",
            *patches,
            "from satchel.daemon.process.main import main",
            "sys.exit(main())",
        ]
    )
    return [sys.executable, "-c", code]


HOUR_TO_AUTHENTICATE = (
    "import satchel.daemon.localindex._http as http; http.FIRST_REQUEST_TIMEOUT = 3600.0"
)


def _wait_for_log(daemon: DaemonProcess, pattern: str) -> re.Match[str]:
    deadline = time.monotonic() + 60  # a hang guard, not a measurement
    while True:
        found = re.search(pattern, daemon.stderr())
        if found:
            return found
        assert daemon.returncode is None, daemon.stderr()
        assert time.monotonic() < deadline, f"no {pattern!r} in the log:\n{daemon.stderr()}"
        time.sleep(0.05)


def _ping_once_free(owner: ClientEnv) -> object:
    """A ping, retried while the daemon is still closing its side of the departed clients: a
    connection it accepts while still short of descriptors may be dropped (reset), one made
    while the departed clients still fill the listen backlog is refused, and the client's next
    attempt is answered."""
    deadline = time.monotonic() + 60  # a hang guard, not a measurement
    while True:
        try:
            return call(str(owner.socket), "ping", timeout=60)
        except (ConnectionResetError, BrokenPipeError, ConnectionRefusedError):
            assert time.monotonic() < deadline, "the daemon never answered again"
            time.sleep(0.05)


def _episodes_closed(daemon: DaemonProcess) -> str:
    """The log once every episode of the Unix socket's listener ("socket: cannot accept") has
    its "socket: accepting connections again" (on a loaded machine a second, short episode may
    still be closing when the first recovery is logged)."""
    deadline = time.monotonic() + 60  # a hang guard, not a measurement
    while True:
        log = daemon.stderr()
        started = log.count("socket: cannot accept new connections")
        ended = len(re.findall(r"socket: accepting connections again after \d+ failed", log))
        if started == ended:
            return log
        assert time.monotonic() < deadline, f"an episode never ended:\n{log}"
        time.sleep(0.05)


def _index(owner: ClientEnv, daemon: DaemonProcess) -> tuple[int, str]:
    """The local index's port and token, from the daemon's own `localindex.info`."""
    _wait_for_log(daemon, r"local index serving on")
    info = call(str(owner.socket), "localindex.info")
    return int(info["port"]), Path(info["token_file"]).read_text().strip()


def _owner_get(port: int, token: str) -> int:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/simple/")
    basic = base64.b64encode(f"satchel:{token}".encode()).decode()
    request.add_header("Authorization", f"Basic {basic}")
    with urllib.request.urlopen(request, timeout=120) as response:
        response.read()
        return int(response.status)


def _idle_connections(port: int, count: int) -> object:
    """The attacker: *count* connections that never send a byte; reports how many the server
    had closed by the time it was told to stop (``open closed``)."""

    def work(child: Child) -> str:
        held = [socket.create_connection(("127.0.0.1", port)) for _ in range(count)]
        child.ready()
        select.select([child.stop_fd], [], [])
        closed = 0
        for conn in held:
            readable, _, _ = select.select([conn], [], [], 0)
            if readable and conn.recv(1) == b"":
                closed += 1
        return f"{count - closed} {closed}"

    return work


def _attack(user: Intruder, port: int, count: int) -> object:
    attacker = start_as_intruder(user, _idle_connections(port, count))  # type: ignore[arg-type]
    attacker.wait_ready()
    return attacker


def test_owner_is_answered_while_another_user_holds_600_idle_connections(
    owner: ClientEnv,
) -> None:
    """issue 11.7: 600 idle connections of another uid (more than the 512 serving slots) hold
    no slot: the owner's request is answered while every one of them is still open."""
    user = intruder()
    with DaemonProcess(owner.env, command=daemon_command(HOUR_TO_AUTHENTICATE)) as daemon:
        port, token = _index(owner, daemon)
        attacker = _attack(user, port, 600)
        statuses = [_owner_get(port, token) for _ in range(3)]
        report = attacker.finish()  # type: ignore[attr-defined]
    assert statuses == [200, 200, 200]
    assert report == "600 0"  # every idle connection was still open after the owner's answers


def test_idle_strangers_beyond_the_cap_are_dropped_oldest_first(owner: ClientEnv) -> None:
    """issue 11.7: unauthenticated connections pin a bounded number of descriptors: past
    MAX_UNAUTHENTICATED, the oldest are closed, and the owner is still answered."""
    user = intruder()
    patches = (HOUR_TO_AUTHENTICATE, "http.MAX_UNAUTHENTICATED = 64")
    with DaemonProcess(owner.env, command=daemon_command(*patches)) as daemon:
        port, token = _index(owner, daemon)
        attacker = _attack(user, port, 300)
        assert _owner_get(port, token) == 200
        report = attacker.finish()  # type: ignore[attr-defined]
    still_open, closed = map(int, report.split())
    assert still_open < 64, report
    assert closed > 300 - 64, report


def test_unauthenticated_connections_are_closed_without_any_work(owner: ClientEnv) -> None:
    """issue 11.7: a request without the token is refused and its connection closed; a
    connection that sends nothing is closed at the first-request deadline (0.2 s here); a
    request with a wrong token on a keep-alive connection cannot stay either."""
    user = intruder()
    patch = "import satchel.daemon.localindex._http as http; http.FIRST_REQUEST_TIMEOUT = 0.2"
    with DaemonProcess(owner.env, command=daemon_command(patch)) as daemon:
        port, _token = _index(owner, daemon)

        def work(child: Child) -> str:
            outcomes = []
            wrong = base64.b64encode(b"satchel:guess").decode()
            for head in (
                b"GET /simple/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
                f"GET /simple/ HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic {wrong}\r\n"
                "\r\nGET /simple/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode(),
                b"",
            ):
                conn = socket.create_connection(("127.0.0.1", port))
                conn.settimeout(60)  # a hang guard: the server closes long before
                conn.sendall(head)
                answer = b""
                while chunk := conn.recv(65536):
                    answer += chunk
                outcomes.append(answer.split(b"\r\n", 1)[0].decode() or "closed, no answer")
                outcomes.append(str(answer.count(b"HTTP/1.1 ")))
            return "|".join(outcomes)

        outcome = start_as_intruder(user, work).finish().split("|")
    assert outcome == [
        "HTTP/1.1 401 Unauthorized",
        "1",
        "HTTP/1.1 401 Unauthorized",
        "1",  # the pipelined second request was never read
        "closed, no answer",
        "0",
    ]


def test_open_file_limit_is_raised_to_the_hard_limit(owner: ClientEnv) -> None:
    """issue 11.7: the daemon raises its soft RLIMIT_NOFILE to the hard limit and logs it."""
    limits = "resource.setrlimit(resource.RLIMIT_NOFILE, (256, 4096))"
    with DaemonProcess(owner.env, command=daemon_command(limits)) as daemon:
        _wait_for_log(daemon, r"open-file limit raised from 256 to 4096")
        proc_limits = Path(f"/proc/{daemon.pid}/limits").read_text()
    assert re.search(r"Max open files\s+4096\s+4096", proc_limits), proc_limits


def test_out_of_descriptors_is_logged_once_and_the_daemon_recovers(owner: ClientEnv) -> None:
    """issue 11.7: idle same-user clients exhaust the daemon's descriptors; accept() failing
    with EMFILE is one clear error (not one per retry: no spinning), and once they leave the
    daemon accepts and answers again and says so."""
    patches = (
        "resource.setrlimit(resource.RLIMIT_NOFILE, (160, 160))",
        "import satchel.daemon.process._server as server; server.HANDSHAKE_TIMEOUT = 3600.0",
    )
    with DaemonProcess(owner.env, command=daemon_command(*patches)) as daemon:
        idle = []
        for _ in range(200):
            conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            conn.connect(str(owner.socket))
            idle.append(conn)
        _wait_for_log(daemon, r"cannot accept new connections: satcheld has run out of file")
        log_so_far = daemon.stderr()
        for conn in idle:
            conn.close()
        assert _ping_once_free(owner) is not None
        _wait_for_log(daemon, r"socket: accepting connections again after \d+ failed attempts")
        log = _episodes_closed(daemon)
    # One error per episode, never one per retry: the first says it, and a later one only
    # after an accept worked in between (a descriptor the daemon itself closed for a moment).
    # Counted for the Unix socket's listener: the local index's may have an episode of its own,
    # which ends at its next client.
    assert log_so_far.count("socket: cannot accept new connections") >= 1
    assert "limit 160" in log
