"""`satchel ping` against a warm daemon versus `python -c pass`, as whole processes.

Usage: `uv run python benchmarks/ping.py [--runs N] [--shared]`

The target (issue "Foundation", Benchmark): the client round trip costs at most 2.0x the bare
interpreter start, because every `satchel` command pays it. Both are run with the same interpreter
(the one whose bin directory holds `satchel`), alternated, and the medians and their ratio are
printed. By default the daemon is a private one (temporary runtime and state directories,
autostarted by the first ping and stopped at the end), so the benchmark neither needs nor disturbs
the user's daemon; `--shared` uses the environment's normal socket instead.

`--round-trips N` measures the daemon's side instead of a process: N round trips from this one
process to the environment's daemon (never autostarted), each a new connection, handshake and
`ping`, i.e. what `satchel ping` reports as "in X ms"; it prints the N durations in seconds as
a JSON list. `run.py` uses it for the ping p99, idle and while never-resolved resolves run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import alternate, ensure_bytecode, machine, median_ms, time_process

TARGET_RATIO = 2.0


def round_trips(count: int, interval: float = 0.0) -> list[float]:
    """Seconds of ``count`` connect + handshake + ping round trips to the running daemon,
    ``interval`` seconds apart."""
    from satchel.client.session import Session

    samples = []
    for i in range(count):
        if i and interval:
            time.sleep(interval)
        started = time.perf_counter()
        with Session(autostart=False) as session:
            session.call("ping", {})
        samples.append(time.perf_counter() - started)
    return samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--runs", type=int, default=30, help="timed runs of each (default 30)")
    parser.add_argument("--shared", action="store_true", help="use the normal daemon socket")
    parser.add_argument(
        "--round-trips", type=int, metavar="N", help="N in-process round trips; JSON seconds"
    )
    parser.add_argument(
        "--interval-ms", type=float, default=0.0, help="pause between round trips (default 0)"
    )
    args = parser.parse_args()
    if args.round_trips is not None:
        print(json.dumps(round_trips(args.round_trips, args.interval_ms / 1000)))
        return 0

    python = sys.executable
    satchel = str(Path(python).parent / "satchel")
    if not os.access(satchel, os.X_OK):
        print(f"no satchel script next to {python}; run through `uv run`", file=sys.stderr)
        return 2

    import importlib

    packages = [importlib.import_module(f"satchel.{part}") for part in ("client", "protocol")]
    ensure_bytecode(*(Path(p) for package in packages for p in package.__path__))

    with tempfile.TemporaryDirectory(prefix="satchel-bench-") as tmp:
        env = dict(os.environ)
        if not args.shared:
            runtime = Path(tmp, "run")
            runtime.mkdir(mode=0o700)
            env.update(
                XDG_RUNTIME_DIR=str(runtime),
                XDG_STATE_HOME=str(Path(tmp, "state")),
                XDG_CACHE_HOME=str(Path(tmp, "cache")),
                XDG_CONFIG_HOME=str(Path(tmp, "config")),
            )
            env.pop("SATCHEL_SOCKET", None)
            env.pop("SATCHEL_NO_AUTOSTART", None)
        try:
            time_process([satchel, "ping"], env)  # autostarts the daemon if needed: now warm
            samples = alternate(
                {"python -c pass": [python, "-c", "pass"], "satchel ping": [satchel, "ping"]},
                args.runs,
                env,
            )
        finally:
            if not args.shared:
                time_process([satchel, "stop"], env)
    bare = median_ms(samples["python -c pass"])
    ping = median_ms(samples["satchel ping"])
    ratio = ping / bare
    print(f"machine:         {machine()}, Python {sys.version.split()[0]}")
    print(f"runs:            {args.runs} each, alternating, medians")
    print(f"python -c pass:  {bare:7.2f} ms")
    print(f"satchel ping:    {ping:7.2f} ms")
    verdict = "ok" if ratio <= TARGET_RATIO else "OVER TARGET"
    print(f"ratio:           {ratio:7.2f}x (target <= {TARGET_RATIO}x: {verdict})")
    return 0 if ratio <= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
