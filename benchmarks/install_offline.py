"""The offline-install row alone: `satchel install --offline` against `uv pip install --offline`.

    uv run python benchmarks/install_offline.py [--set large] [--runs 15] [--strace]

The same set-up as ``run.py`` (one static loopback index, uv's cache and a Satchel daemon warmed
online with the set), then only the install row: one untimed round, then ``--runs`` rounds, the
tools alternating and the starting tool rotating every round, each trial into a fresh venv (uv's
trial includes its ``uv venv``, as in ``run.py``). Prints each tool's median wall time, the
median of the per-round ratios Satchel / uv (paired: both ran within one round, under the same
load), microseconds per installed file, and the load average before and after.

Wall time on a shared machine follows the load; CPU time much less so. Each trial's CPU time
(user + system) is therefore reported too: for uv, its processes' (``RUSAGE_CHILDREN``); for
Satchel, the client's plus what the daemon's counters in ``/proc/<pid>/stat`` moved by (the
daemon does nothing else meanwhile). ``--strace`` then installs once more per tool under
``strace -c -f`` (the daemon attached by pid, uv as a child) and prints both syscall summaries.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if not __package__:  # run as a script: make `benchmarks` importable from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import corpus, static_index
from benchmarks.common import ensure_bytecode
from benchmarks.harness import PY, execute
from benchmarks.rows import Bench
from benchmarks.run import REPO, start_index


def _load() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def _strace(bench: Bench, req: str) -> None:
    """One more install per tool under ``strace -c -f``: the syscalls each makes."""
    pid = bench.warm.daemon_pid()
    if pid is None or shutil.which("strace") is None:
        print("strace: no daemon pid or no strace", file=sys.stderr)
        return
    out = bench.work / "strace-satchel.txt"
    tracer = subprocess.Popen(["strace", "-c", "-f", "-o", str(out), "-p", str(pid)])
    time.sleep(1.0)  # strace attaches to every thread before the install starts
    venv = bench.fresh("sv-strace") / "venv"
    done = execute(
        [bench.warm.cmd("install", "-r", req, "--venv", str(venv), "--offline")],
        bench.warm.env,
        bench.work,
    )
    tracer.terminate()
    tracer.wait()
    print(f"satchel (daemon side, ok={done.ok}):\n{out.read_text()}")
    venv = bench.fresh("uvi-strace") / "venv"
    execute([bench.uv_cmd("venv", "-q", "--no-config", "-p", PY, str(venv))], bench.env, bench.work)
    out = bench.work / "strace-uv.txt"
    cmd = bench.uv_cmd(
        "pip", "install", "-q", "--offline", *bench.uv_index(bench.uv_warm_cache),
        "-p", str(venv), "-r", req,
    )  # fmt: skip
    subprocess.run(["strace", "-c", "-f", "-o", str(out), *cmd], env=bench.env, check=False)
    print(f"uv pip install:\n{out.read_text()}")


def _daemon_cpu(pid: int | None) -> float:
    """User + system seconds the daemon has used so far (0 when unknown)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _trial(bench: Bench, tool: str, req: str, pid: int | None) -> tuple[float, float]:
    """One install into a fresh venv: (wall seconds, CPU seconds)."""
    if tool == "satchel":
        venv = bench.last_venv["satchel"] = bench.fresh("sv") / "venv"
        commands = [bench.warm.cmd("install", "-r", req, "--venv", str(venv), "--offline")]
        env = bench.warm.env
    else:
        venv = bench.last_venv["uv"] = bench.fresh("uvi") / "venv"
        commands = [
            bench.uv_cmd("venv", "-q", "--no-config", "-p", PY, str(venv)),
            bench.uv_cmd(
                "pip", "install", "-q", "--offline", *bench.uv_index(bench.uv_warm_cache),
                "-p", str(venv), "-r", req,
            ),
        ]  # fmt: skip
        env = bench.env
    cpu0, daemon0 = _children_cpu(), _daemon_cpu(pid)
    out = execute(commands, env, bench.work)
    if not out.ok:
        raise SystemExit(f"{tool} install failed:\n{out.output[-2000:]}")
    return out.seconds, _children_cpu() - cpu0 + _daemon_cpu(pid) - daemon0


def _summary(values: list[float], files: int) -> str:
    median = statistics.median(values)
    return f"median {median * 1e3:.0f} ms, {median / max(files, 1) * 1e6:.1f} us/file"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--set", default="large", help="a set of benchmarks/sets (default large)")
    parser.add_argument("--runs", type=int, default=15, help="timed rounds (default 15)")
    parser.add_argument("--strace", action="store_true", help="also count syscalls per tool")
    parser.add_argument("--uv", help="the uv binary (default: uv on PATH, a shim resolved)")
    args = parser.parse_args(argv)
    cs = corpus.ensure_set(args.set)
    ensure_bytecode(*(REPO / m / "src" for m in ("protocol", "client", "daemon")))
    work = Path(tempfile.mkdtemp(prefix="sb-"))
    server = None
    bench = None
    try:
        static_index.build_index(cs.wheels, work / "index")
        server, url = start_index(work / "index")
        bench = Bench(work, url, args.runs, False, uv=args.uv)
        bench.warm_up_set(cs)
        req = str(cs.requirements)
        pid = bench.warm.daemon_pid()
        load_before = _load()
        wall: dict[str, list[float]] = {"satchel": [], "uv": []}
        cpu: dict[str, list[float]] = {"satchel": [], "uv": []}
        for round_ in range(-1, args.runs):
            order = ["satchel", "uv"] if round_ % 2 else ["uv", "satchel"]
            for tool in order:
                seconds, used = _trial(bench, tool, req, pid)
                if round_ >= 0:  # round -1 warms the page cache and the daemon
                    wall[tool].append(seconds)
                    cpu[tool].append(used)
        load_after = _load()
        files = bench.installed_files()
        n_sat, n_uv = files.get("satchel", 0), files.get("uv", 0)
        ratios = [s / u for s, u in zip(wall["satchel"], wall["uv"], strict=True)]
        cpu_ratios = [s / u for s, u in zip(cpu["satchel"], cpu["uv"], strict=True)]
        print(f"set {cs.name}: {len(cs.wheels)} wheels, {args.runs} rounds")
        print(f"load before {load_before}, after {load_after}")
        print(f"satchel wall: {_summary(wall['satchel'], n_sat)} ({n_sat} files)")
        print(f"uv wall:      {_summary(wall['uv'], n_uv)} ({n_uv} files)")
        of_medians = statistics.median(wall["satchel"]) / statistics.median(wall["uv"])
        print(f"wall: ratio of medians {of_medians:.2f}x, "
              f"median paired ratio {statistics.median(ratios):.2f}x "
              f"(range {min(ratios):.2f}-{max(ratios):.2f})")  # fmt: skip
        print(f"cpu: satchel median {statistics.median(cpu['satchel']) * 1e3:.0f} ms, "
              f"uv {statistics.median(cpu['uv']) * 1e3:.0f} ms, "
              f"median paired ratio {statistics.median(cpu_ratios):.2f}x")  # fmt: skip
        for tool in ("satchel", "uv"):
            print(f"{tool} wall ms:", " ".join(f"{t * 1e3:.0f}" for t in wall[tool]))
            print(f"{tool} cpu ms: ", " ".join(f"{t * 1e3:.0f}" for t in cpu[tool]))
        if args.strace:
            _strace(bench, req)
    finally:
        if bench is not None:
            bench.warm.stop()
        if server is not None:
            server.terminate()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
