"""A load-generating process for `test_load` (run as ``python -m tests.reliability.load_worker``).

Why a process of its own: the latency being measured is the daemon's, and 100 client threads in
the pytest process would measure that process's GIL instead. Two roles:

``clients SOCKET N SECONDS [METHODS [THINK]]``
    N threads, each with its own connection, sending ping / status / an offline resolve of
    ``small`` in rotation (or the comma-separated METHODS among those), each pausing THINK
    seconds after every answer (default 0: as fast as answers come back), for SECONDS;
    prints ``{"requests": R, "errors": [...]}``.
``pinger SOCKET SECONDS``
    One connection, one ping at a time (2 ms apart) for SECONDS; prints the round trips in
    seconds as ``{"pings": [...], "errors": [...]}``.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any

from tests.support.daemon import Client

RESOLVE = {"requirements": ["small"], "offline": True}
MIX = "ping,status,resolve"


def _client(
    path: str,
    seconds: float,
    mix: list[str],
    think: float,
    out: dict[str, Any],
    lock: threading.Lock,
) -> None:
    done = 0
    errors: list[str] = []
    try:
        with Client(path, timeout=30) as client:
            client.hello()
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                method = mix[done % len(mix)]
                params = RESOLVE if method == "resolve" else {}
                reply = client.wait_terminal(client.request(method, params), timeout=30)
                if reply["type"] != "result":
                    errors.append(f"{method}: {reply.get('code')}: {reply.get('message')}")
                done += 1
                if think:
                    time.sleep(think)
    except Exception as exc:  # every failure is reported, none is fatal here
        errors.append(f"{type(exc).__name__}: {exc}")
    with lock:
        out["requests"] += done
        out["errors"].extend(errors)


def clients(path: str, count: int, seconds: float, mix: list[str], think: float) -> dict[str, Any]:
    out: dict[str, Any] = {"requests": 0, "errors": []}
    lock = threading.Lock()
    threads = [
        threading.Thread(target=_client, args=(path, seconds, mix, think, out, lock))
        for _ in range(count)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return out


def pinger(path: str, seconds: float) -> dict[str, Any]:
    pings: list[float] = []
    errors: list[str] = []
    with Client(path, timeout=30) as client:
        client.hello()
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            start = time.perf_counter()
            reply = client.wait_terminal(client.request("ping"), timeout=30)
            pings.append(time.perf_counter() - start)
            if reply["type"] != "result":
                errors.append(str(reply))
            time.sleep(0.002)
    return {"pings": pings, "errors": errors}


def main(argv: list[str]) -> None:
    role, path = argv[0], argv[1]
    if role == "clients":
        mix = (argv[4] if len(argv) > 4 else MIX).split(",")
        think = float(argv[5]) if len(argv) > 5 else 0.0
        result = clients(path, int(argv[2]), float(argv[3]), mix, think)
    else:
        result = pinger(path, float(argv[2]))
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
