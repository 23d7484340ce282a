"""Load: 100 concurrent clients mixing ping / status / resolve while one client stalls.

The daemon must stay up and answer every request of every other client without error while the
stalled ones hold their connections. How fast ``ping`` stays (the goal is a p99 under 10 ms) is
measured, not asserted: the test prints the figures, which ``docs/reliability.md`` reports (an
idle baseline, then the same pinger under load), and the benchmarks track them. A latency bound
in a test fails on a loaded 2-core machine for reasons that have nothing to do with the code.

Load comes from separate processes (`tests.reliability.load_worker`): 4 processes of 25
connections each. The stalling clients: one that sends requests and never reads an answer (its
socket buffers fill, the daemon's writes to it block), and one that sends half a frame and
waits.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.harness import Rig, scaled
from tests.support.daemon import Client, call
from tests.support.wheels import build_wheel

SECONDS = scaled(5, 30)
CLIENTS = 100
PROCESSES = 4
MIX = "ping,status,resolve"
REPO = Path(__file__).resolve().parents[2]


def _worker(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.reliability.load_worker", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _collect(proc: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = proc.communicate(timeout=SECONDS + 120)
    assert proc.returncode == 0, err
    result: dict[str, Any] = json.loads(out)
    return result


def _percentiles(pings: list[float]) -> dict[str, float]:
    ordered = sorted(pings)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000

    return {"n": len(ordered), "p50": at(0.5), "p99": at(0.99), "max": ordered[-1] * 1000}


def _phase(path: str, think: float) -> dict[str, Any]:
    """100 clients for SECONDS (THINK s between each client's requests) plus the pinger."""
    loaders = [
        _worker("clients", path, str(CLIENTS // PROCESSES), str(SECONDS), MIX, str(think))
        for _ in range(PROCESSES)
    ]
    pinger = _worker("pinger", path, str(SECONDS))
    results = [_collect(proc) for proc in loaders]
    pinged = _collect(pinger)
    errors = [e for r in results for e in r["errors"]] + pinged["errors"]
    requests = sum(r["requests"] for r in results)
    ping = _percentiles(pinged["pings"])
    print(
        f"\nload ({CLIENTS} clients, think {think * 1000:.0f} ms, {SECONDS} s): {requests} "
        f"requests ({requests / SECONDS:.0f}/s), {len(errors)} errors; ping under load "
        f"p50 {ping['p50']:.2f} ms p99 {ping['p99']:.2f} ms max {ping['max']:.1f} ms "
        f"(n={ping['n']})"
    )
    return {"errors": errors, "requests": requests, "ping": ping}


@pytest.mark.slow
def test_100_clients_and_a_stalled_one_keep_ping_fast_and_error_free(rig: Rig) -> None:
    """Two phases: clients pausing 20 ms between requests (a busy but not saturated daemon:
    ~4,000 requests/s offered), then clients sending as fast as answers come (saturated: the
    daemon's one event loop shares 2 cores with 5 load processes)."""
    rig.index.add(build_wheel(rig.root / "dist", "small", "1.0"))
    rig.ok("prefetch", "small")
    pid = rig.daemon_pid()
    path = str(rig.env.socket)

    idle = _percentiles(_collect(_worker("pinger", path, "2"))["pings"])
    print(f"\nidle ping p50 {idle['p50']:.2f} ms p99 {idle['p99']:.2f} ms (n={idle['n']})")

    stalled = Client(path)
    stalled.hello()
    half = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    half.connect(path)
    try:
        stalled.sock.setblocking(False)
        sent = 0
        try:  # requests until our own send buffer is full: we never read an answer
            while sent < 5000:
                stalled.request("status")
                sent += 1
        except BlockingIOError:
            pass
        half.sendall((1000).to_bytes(4, "big") + b'{"type": "hel')
        paced = _phase(path, 0.02)
        saturated = _phase(path, 0.0)
    finally:
        stalled.close()
        half.close()

    for phase in (paced, saturated):
        assert phase["errors"] == [], phase["errors"][:10]
        # Every client was answered (none timed out: no errors), each at least once; how many
        # requests a loaded machine gets through in SECONDS is printed, not asserted.
        assert phase["requests"] >= CLIENTS
        assert phase["ping"]["n"] > 0, phase  # the pinger was answered under load
    assert call(path, "ping") == {"pid": pid}
