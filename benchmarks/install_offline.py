"""The offline-install row alone: `satchel install --offline` against `uv pip install --offline`.

    uv run python benchmarks/install_offline.py [--set large] [--runs 15] [--strace]

The same set-up as ``run.py`` (one static loopback index, uv's cache and a Satchel daemon warmed
online with the set), then only the install row, tools alternating and the starting tool
rotating every round, each trial into a fresh venv (uv's trial includes its ``uv venv``, as in
``run.py``). Prints each tool's median, the median of the per-round ratios Satchel / uv (paired:
both ran within one round, under the same load), microseconds per installed file, and the load
average before and after. ``--strace`` then installs once more per tool under ``strace -c -f``
(the daemon attached by pid, uv as a child) and prints both syscall summaries.
"""

from __future__ import annotations

import argparse
import os
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
from benchmarks.harness import PY, ToolResult, Trial, execute
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
        load_before = _load()
        rows = _install_row(bench, cs)
        load_after = _load()
        files = bench.installed_files()
        sat, uv = rows["satchel"].times, rows["uv"].times
        if rows["satchel"].status != "ok" or rows["uv"].status != "ok":
            print({k: (r.status, r.detail) for k, r in rows.items()})
            return 1
        ratios = [s / u for s, u in zip(sat, uv, strict=True)]
        n_sat = files.get("satchel", 0)
        n_uv = files.get("uv", 0)
        print(f"set {cs.name}: {len(cs.wheels)} wheels, {args.runs} rounds")
        print(f"load before {load_before}, after {load_after}")
        print(f"satchel: median {statistics.median(sat) * 1e3:.1f} ms  {n_sat} files  "
              f"{statistics.median(sat) / max(n_sat, 1) * 1e6:.1f} us/file")  # fmt: skip
        print(f"uv:      median {statistics.median(uv) * 1e3:.1f} ms  {n_uv} files  "
              f"{statistics.median(uv) / max(n_uv, 1) * 1e6:.1f} us/file")  # fmt: skip
        print(f"ratio of medians {statistics.median(sat) / statistics.median(uv):.2f}x, "
              f"median paired ratio {statistics.median(ratios):.2f}x "
              f"(range {min(ratios):.2f}-{max(ratios):.2f})")  # fmt: skip
        print("satchel ms:", " ".join(f"{t * 1e3:.0f}" for t in sat))
        print("uv ms:     ", " ".join(f"{t * 1e3:.0f}" for t in uv))
        if args.strace:
            _strace(bench, str(cs.requirements))
    finally:
        if bench is not None:
            bench.warm.stop()
        if server is not None:
            server.terminate()
        shutil.rmtree(work, ignore_errors=True)
    return 0


def _install_row(bench: Bench, cs: corpus.CorpusSet) -> dict[str, ToolResult]:
    """`Bench.row_install` without pip: Satchel and uv only."""
    req = str(cs.requirements)

    def satchel(_t: str) -> Trial:
        venv = bench.last_venv["satchel"] = bench.fresh("sv") / "venv"
        return Trial(
            [bench.warm.cmd("install", "-r", req, "--venv", str(venv), "--offline")],
            bench.warm.env,
        )

    def uv(_t: str) -> Trial:
        venv = bench.last_venv["uv"] = bench.fresh("uvi") / "venv"
        return Trial(
            [
                bench.uv_cmd("venv", "-q", "--no-config", "-p", PY, str(venv)),
                bench.uv_cmd(
                    "pip", "install", "-q", "--offline", *bench.uv_index(bench.uv_warm_cache),
                    "-p", str(venv), "-r", req,
                ),
            ],
            bench.env,
        )  # fmt: skip

    return bench.measure({"satchel": satchel, "uv": uv})


if __name__ == "__main__":
    raise SystemExit(main())
