"""Satchel versus uv and pip on real packages: one command, whole processes, alternating tools.

    uv run --group bench python benchmarks/run.py [--sets small,medium,large] [--runs 5] [--quick]
        [--requirements FILE] [--latency-ms 20]

For each requirement set (``benchmarks/sets/*.txt``, or any file given with ``--requirements``)
the corpus is downloaded once (``corpus.py``), served from one static loopback index
(``static_index.py``; a second server on the same files adds ``--latency-ms`` per request for the
slow-network column), and every row (``rows.py``) is timed as whole processes (``perf_counter``
around ``subprocess.run``): one untimed warm-up, then ``--runs`` timed rounds, the tools rotating
their order every round so that drift (other engineers' tests on the same 2 cores, page cache,
CPU frequency) hits all of them alike. The index counts each trial's page, metadata and file
requests. Then the warm daemon's own measures (``daemon_probes.py``): cached page latency of the
local index, ping p99 idle and under never-resolved resolves, resident memory after many
different resolves and installs. Medians and ratios go to ``docs/benchmarks.json`` (a full run of
the named sets; any other run to ``benchmarks/.work/results/``), rendered by ``report.py``.

Isolation (``harness.py``): every Satchel daemon gets its own ``XDG_*`` directories under a
short work directory (Unix socket paths are limited to ~107 bytes) and a ``config.toml`` naming
only the loopback index, so no user configuration leaks in; pip runs with ``PIP_CONFIG_FILE`` set
to the null device, uv with ``--no-config``, and every ``PIP_*``/``UV_*`` variable is dropped.

Satchel rows degrade instead of crashing: a command that exits non-zero saying it is unknown (or
whose module does not exist yet) is reported as "n/a (not implemented)", any other failure as
"failed" with its last line, and the run goes on. Once the commands exist the rows fill in.

Nothing is deleted between timed runs (``rm -rf`` of big trees slows file creation on ext4 for
minutes): each trial creates fresh directories, and the whole work directory goes at the end.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

if not __package__:  # run as a script: make `benchmarks` importable from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import corpus, report, static_index
from benchmarks.common import ensure_bytecode
from benchmarks.harness import PY, SatchelInstance, ToolResult
from benchmarks.rows import TOOLS_BY_SET, Bench

__all__ = ["Bench", "main", "parse_args", "run_set", "start_index"]

REPO = Path(__file__).resolve().parent.parent
STATIC_INDEX = str(Path(__file__).resolve().parent / "static_index.py")
DEFAULT_LATENCY_MS = 20.0  # the slow-network figure: a nearby mirror over the internet
MEMORY_OPERATIONS = 250  # the "~250 different large resolves and installs"
PING_COUNT = 300  # round trips idle and again under load: enough samples for a p99
PAGE_REQUESTS = 1000  # page GETs per server for the local index's p50 / p99
QUICK_MEMORY_OPERATIONS, QUICK_PING_COUNT, QUICK_PAGE_REQUESTS = 20, 50, 100
WORK_RESULTS = Path(__file__).resolve().parent / ".work" / "results"


def _pack(results: dict[str, ToolResult]) -> dict[str, Any]:
    return {name: {**asdict(r), "median": r.median} for name, r in results.items()}


def start_index(root: Path, latency_ms: float = 0.0) -> tuple[subprocess.Popen[str], str]:
    """Serve the static index in its own process; return it and its simple URL."""
    proc = subprocess.Popen(
        [PY, STATIC_INDEX, "serve", str(root), "--latency-ms", str(latency_ms)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    if not url.startswith("http://127.0.0.1:"):
        proc.terminate()
        raise RuntimeError(f"static index did not start (got {url!r})")
    return proc, url


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Benchmark Satchel against uv and pip.")
    parser.add_argument("--sets", help="comma-separated set names (default: small,medium,large)")
    parser.add_argument(
        "--requirements",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="also (or, without --sets, only) a set built from this requirements file",
    )
    parser.add_argument("--runs", type=int, default=5, help="timed runs per row (median; >= 5)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="3 runs, small probes, small set unless --sets/--requirements: checks the harness",
    )
    parser.add_argument(
        "--compile", action="store_true", help="byte-compile on install for all tools (default off)"
    )
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=DEFAULT_LATENCY_MS,
        help=f"slow-network column: latency per index request (default {DEFAULT_LATENCY_MS:g}; "
        "0: no slow column)",
    )
    parser.add_argument("--uv", help="the uv binary (default: uv on PATH, a pyenv shim resolved)")
    parser.add_argument(
        "--memory-ops",
        type=int,
        help=f"resolves + installs before reading memory (default {MEMORY_OPERATIONS})",
    )
    parser.add_argument("--ping-count", type=int, help=f"round trips (default {PING_COUNT})")
    parser.add_argument(
        "--page-requests", type=int, help=f"local index page GETs (default {PAGE_REQUESTS})"
    )
    parser.add_argument(
        "--output",
        type=Path,
        help="results JSON (default: docs/benchmarks.json for a full run of the named sets, "
        "else benchmarks/.work/results/benchmarks.json, so a check never overwrites the "
        "published run); the markdown and chart are written beside it",
    )
    parser.add_argument("--keep-work", action="store_true", help="do not delete the work dir")
    args = parser.parse_args(argv)
    quick = args.quick
    if args.sets is None:
        args.sets = "" if args.requirements else "small" if quick else "small,medium,large"
    args.runs = 3 if quick else args.runs
    args.memory_ops = args.memory_ops or (QUICK_MEMORY_OPERATIONS if quick else MEMORY_OPERATIONS)
    args.ping_count = args.ping_count or (QUICK_PING_COUNT if quick else PING_COUNT)
    args.page_requests = args.page_requests or (QUICK_PAGE_REQUESTS if quick else PAGE_REQUESTS)
    if args.output is None:
        full = not quick and not args.requirements and args.sets == "small,medium,large"
        args.output = (REPO / "docs" if full else WORK_RESULTS) / "benchmarks.json"
    if args.latency_ms < 0:
        parser.error("--latency-ms must be >= 0")
    return args


def run_set(bench: Bench, cs: corpus.CorpusSet, args: argparse.Namespace) -> dict[str, Any]:
    """Every row and probe of one set, in an order that keeps the timed rows clean: the
    probes that load the daemon (the many installs of the memory probe, ping under load)
    come last."""
    print(f"set {cs.name}: {len(cs.wheels)} wheels", file=sys.stderr)
    notes = bench.warm_up_set(cs)
    pid_before = bench.warm.daemon_pid()
    rows: dict[str, Any] = {}
    for row, fn in (
        ("ping", lambda cs=cs: bench.row_ping()),
        ("resolve", bench.row_resolve),
        ("resolve_first", bench.row_resolve_first),
        ("prefetch", bench.row_prefetch_cold),
        ("prefetch_slow", bench.row_prefetch_slow),
        ("install", bench.row_install),
        ("run", bench.row_run),
        ("local", bench.row_local_index),
    ):
        print(f"  {row} ...", file=sys.stderr)
        result = fn(cs)
        if result is not None:
            rows[row] = _pack(result)
    probes: dict[str, Any] = {"installed_files": bench.installed_files()}
    print("  local index pages ...", file=sys.stderr)
    probes["pages"] = bench.probe_pages(cs, args.page_requests)
    # memory before the ping probe: a set of few projects has few edits, and the memory probe
    # needs them more (the ping probe's load says when they ran out)
    print(f"  memory after {args.memory_ops} resolves and installs ...", file=sys.stderr)
    probes["memory"] = bench.probe_memory(cs, args.memory_ops)
    print("  ping idle and under load ...", file=sys.stderr)
    probes["ping_load"] = bench.probe_ping_load(cs, args.ping_count)
    pid_after = bench.warm.daemon_pid()
    if pid_before and pid_after and pid_before != pid_after:
        notes["daemon restarted"] = (
            f"the warm daemon was replaced during the set (pid {pid_before} -> "
            f"{pid_after}): the client restarts an autostarted daemon whose build differs, "
            "i.e. sources were edited during the run; its rows include a restart"
        )
    rss = bench.warm.peak_rss_kib()
    if rss is None and bench.warm_status == ("ok", ""):
        notes["daemon memory"] = (
            "the warm daemon did not answer `status` at the end of the set "
            "(exited, or restarted for a new build)"
        )
    tool = TOOLS_BY_SET.get(cs.name)
    return {
        "wheels": len(cs.wheels),
        "bytes": cs.size_bytes,
        "rows": rows,
        "probes": probes,
        "tool": " ".join([tool[0], *tool[1]]) if tool else None,
        "daemon_peak_rss_kib": rss,
        "notes": notes,
    }


def _secrets(work: Path, bench: Bench) -> dict[str, str]:
    """What never goes into the results: this machine's paths and the local index's token."""
    paths = {str(work): "<work>", str(REPO): "<repo>", str(Path.home()): "~"}
    for url in bench.local_urls:  # carries the per-user token: never written out
        paths[url] = "<satchel index-url>"
        token = urlsplit(url).password
        if token:
            paths[token] = "<token>"
    return paths


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sets = [name for name in args.sets.split(",") if name]
    css = [corpus.ensure_set(name) for name in sets]
    css += [corpus.ensure_requirements(path) for path in args.requirements]
    if len({cs.name for cs in css}) != len(css):
        raise SystemExit("two sets of the same name: rename one requirements file")
    # Workspace members are editable installs with no .pyc, and PYTHONDONTWRITEBYTECODE=1 means
    # every `satchel` run would recompile them: measure what an installed client costs instead.
    ensure_bytecode(*(REPO / m / "src" for m in ("protocol", "client", "daemon")))
    work = Path(tempfile.mkdtemp(prefix="sb-"))  # short: socket paths must fit in sun_path
    servers: list[subprocess.Popen[str]] = []
    warm: SatchelInstance | None = None
    try:
        info = static_index.build_index((w for cs in css for w in cs.wheels), work / "index")
        server, url = start_index(work / "index")
        servers.append(server)
        slow_url = None
        if args.latency_ms > 0:
            slow, slow_url = start_index(work / "index", args.latency_ms)
            servers.append(slow)
        print(f"index: {len(info.projects)} projects on {url}", file=sys.stderr)
        bench = Bench(work, url, args.runs, args.compile, uv=args.uv, slow_url=slow_url)
        warm = bench.warm
        data: dict[str, Any] = {
            "machine": report.describe_machine(),
            "config": {
                "runs": args.runs,
                "compile": args.compile,
                "sync_before_trial": True,
                "quick": args.quick,
                "sets": [cs.name for cs in css],
                "requirements_files": [cs.name for cs in css[len(sets) :]],
                "latency_ms": args.latency_ms,
                "memory_operations": args.memory_ops,
                "ping_count": args.ping_count,
                "page_requests": args.page_requests,
                "load_start": " / ".join(f"{x:.2f}" for x in os.getloadavg()),
            },
            "sets": {},
        }
        args.output.parent.mkdir(parents=True, exist_ok=True)
        scrubbed = data
        for cs in css:
            data["sets"][cs.name] = run_set(bench, cs, args)
            data["config"]["load_end"] = " / ".join(f"{x:.2f}" for x in os.getloadavg())
            # after every set, so an interrupted run keeps the sets it finished
            scrubbed = report.scrub(copy.deepcopy(data), _secrets(work, bench))
            args.output.write_text(json.dumps(scrubbed, indent=1) + "\n")
        print(f"results: {args.output}", file=sys.stderr)
        report.render(
            scrubbed, args.output.parent / "benchmarks.md", args.output.parent / "benchmarks.png"
        )
    finally:
        if warm is not None:
            warm.stop()
        for server in servers:
            server.terminate()
            server.wait(timeout=10)
        if not args.keep_work:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
