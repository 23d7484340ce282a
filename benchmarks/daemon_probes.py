"""Measures of the warm daemon itself, not of whole processes (used by ``run.py``).

- `page_latency`: the local index's cached page p50/p99 next to the static index's (the floor),
  with ``local_index.measure_latency`` (one persistent connection, uv's ``Accept``), plus how many
  upstream requests the daemon made while serving them (the static index's counters).
- `memory_after_edits`: the daemon's resident memory after many different resolves and
  installs (``variants.Edits``: real edits of the set, each never seen before).
- `ping_round_trips`: ping p50/p99 (``ping.py --round-trips``), idle and while never-resolved
  resolves run back to back.

None of these alternate tools: Satchel is the only subject. They report counts and
distributions, and nothing here asserts a duration.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from benchmarks.harness import PY, SatchelInstance, Unavailable, classify, execute
from benchmarks.local_index import Target, measure_latency, percentile, summarize_latency
from benchmarks.static_index import read_counters
from benchmarks.variants import Edits

__all__ = ["memory_after_edits", "page_latency", "ping_round_trips"]

_PIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(\[[^\]]*\])?==\S")  # a pin line of the output
PING_INTERVAL_MS = 10
"""Pause between two pings: spreads the samples over several resolves of the load (300 pings
take ~3 s, a large never-resolved resolve ~0.1 s) instead of a burst that could fall between
two of them; the same pause idle, so the two distributions compare."""
PING_SCRIPT = str(Path(__file__).resolve().parent / "ping.py")


def page_latency(
    local_url: str,
    static_url: str,
    projects: Sequence[str],
    requests: int,
    upstream: tuple[str, str],
) -> dict[str, Any]:
    """Cached page latency of Satchel's local index and of the static index, same pages.

    ``upstream`` is (static simple URL, the warm daemon's tag): the requests the daemon sent
    upstream while its pages were measured (revalidation) are read from the counters.
    """
    before = read_counters(*upstream)
    local, ctype = measure_latency(Target.from_url(local_url), projects, requests)
    after = read_counters(*upstream)
    static, _ = measure_latency(Target.from_url(static_url), projects, requests)
    return {
        "satchel": summarize_latency(local),
        "static": summarize_latency(static),
        "page_type": ctype,
        "requests": requests,
        "upstream_during_satchel": {k: after[k] - before[k] for k in after},
    }


def _status_kib(pid: int | None) -> dict[str, int]:
    """VmRSS and VmHWM of ``pid`` in KiB (empty when the process is gone)."""
    if pid is None:
        return {}
    found: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key = line.split(":", 1)[0]
            if key in ("VmRSS", "VmHWM"):
                found[key] = int(line.split()[1])
    except OSError:
        return {}
    return found


def memory_after_edits(
    inst: SatchelInstance, edits: Edits, operations: int, fresh: Callable[[str], Path]
) -> dict[str, Any]:
    """Resident memory before and after ``operations`` different offline resolves and installs.

    Resolves and installs alternate; each takes a new edit of the set (never seen before), each
    install a new venv. Distinct results are counted by the digest of the pins a resolve prints.
    """
    pid = inst.daemon_pid() or inst.pid
    before = _status_kib(pid)
    results: set[str] = set()
    done = {"resolve": 0, "install": 0}
    for i in range(operations):
        path = edits.varied()
        if path is None:
            break
        if i % 2 == 0:
            out = inst.run("resolve", "--offline", "-r", str(path))
            kind = "resolve"
            pins = sorted(ln.split()[0] for ln in out.output.splitlines() if _PIN.match(ln))
            results.add(hashlib.sha256("\n".join(pins).encode()).hexdigest())
        else:
            venv = fresh("mem") / "venv"
            out = inst.run("install", "--offline", "-r", str(path), "--venv", str(venv))
            kind = "install"
        if not out.ok:
            raise Unavailable(*classify(out.output))
        done[kind] += 1
    after_pid = inst.daemon_pid()
    after = _status_kib(after_pid)
    ops = done["resolve"] + done["install"]
    growth = (after.get("VmRSS", 0) - before.get("VmRSS", 0)) if before and after else None
    return {
        "operations": ops,
        "resolves": done["resolve"],
        "installs": done["install"],
        "distinct_resolve_results": len(results),
        "rss_before_kib": before.get("VmRSS"),
        "rss_after_kib": after.get("VmRSS"),
        "peak_after_kib": after.get("VmHWM"),
        "growth_kib_per_operation": None if growth is None or not ops else growth / ops,
        "restarted": pid != after_pid,
    }


def _round_trips(inst: SatchelInstance, count: int, cwd: Path) -> list[float]:
    interval = ["--interval-ms", str(PING_INTERVAL_MS)]
    out = execute([[PY, PING_SCRIPT, "--round-trips", str(count), *interval]], inst.env, cwd)
    if not out.ok:
        raise Unavailable(*classify(out.output))
    return [float(x) for x in json.loads(out.output.strip().splitlines()[-1])]


def _summary(seconds: Sequence[float]) -> dict[str, float]:
    return {
        "p50_ms": percentile(seconds, 0.5) * 1000,
        "p99_ms": percentile(seconds, 0.99) * 1000,
        "max_ms": max(seconds) * 1000,
        "n": float(len(seconds)),
    }


def ping_round_trips(inst: SatchelInstance, edits: Edits, count: int, cwd: Path) -> dict[str, Any]:
    """Ping p50/p99 of ``count`` round trips idle, then while resolves run back to back
    (``PING_INTERVAL_MS`` apart, both times).

    The load is one client at a time running ``satchel resolve --offline`` on a new edit of
    the set, as soon as the previous one answered, until the pings are done.
    """
    idle = _round_trips(inst, count, cwd)
    stop = threading.Event()
    load = {"resolves": 0, "failures": 0, "exhausted": False}

    def loader() -> None:
        while not stop.is_set():
            path = edits.any()
            if path is None:
                load["exhausted"] = True
                return
            proc = subprocess.run(
                inst.cmd("resolve", "--offline", "-r", str(path)),
                env=inst.env,
                cwd=cwd,
                capture_output=True,
                check=False,
            )
            load["resolves" if proc.returncode == 0 else "failures"] += 1

    thread = threading.Thread(target=loader, daemon=True)
    thread.start()
    try:
        loaded = _round_trips(inst, count, cwd)
    finally:
        stop.set()
        thread.join()
    return {"idle": _summary(idle), "loaded": _summary(loaded), "load": load}
