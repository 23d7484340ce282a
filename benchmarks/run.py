"""Satchel versus uv and pip on real packages: one command, whole processes, alternating tools.

    uv run --group bench python benchmarks/run.py [--sets small,medium,large] [--runs 5] [--quick]

For each requirement set (``benchmarks/sets/*.txt``) the corpus is downloaded once
(``corpus.py``), served from one static loopback index (``static_index.py``), and every row is
timed as whole processes (``perf_counter`` around ``subprocess.run``): one untimed warm-up, then
``--runs`` timed rounds, the tools rotating their order every round so that drift (other
engineers' tests on the same 2 cores, page cache, CPU frequency) hits all of them alike. Medians
and ratios go to ``docs/benchmarks.json``, rendered by ``report.py`` into ``docs/benchmarks.md``.

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
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

if not __package__:  # run as a script: make `benchmarks` importable from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import corpus, report, static_index
from benchmarks.common import ensure_bytecode
from benchmarks.harness import (
    PY,
    SatchelInstance,
    ToolResult,
    Trial,
    Unavailable,
    classify,
    execute,
    tool_env,
)

REPO = Path(__file__).resolve().parent.parent
STATIC_INDEX = str(Path(__file__).resolve().parent / "static_index.py")
PING_RUNS = 20
TOOLS_BY_SET: dict[str, tuple[str, list[str]]] = {
    # set -> (--from spec, command line) for the `satchel run` / `uvx` row; a console script
    # whose dependencies are all in the set, cheap to run so the row measures the launcher.
    "medium": ("uvicorn", ["uvicorn", "--version"]),
    "large": ("jupyter-core", ["jupyter", "--paths"]),
}


class Bench:
    """Shared context of one benchmark run: work directory, index, warm caches, options."""

    def __init__(self, work: Path, index_url: str, runs: int, compile_bytecode: bool) -> None:
        self.work = work
        self.index_url = index_url
        self.runs = runs
        self.compile = compile_bytecode
        self.env = tool_env()
        self._counter = 0
        self.uv = shutil.which("uv") or "uv"
        self.uv_warm_cache = self.fresh("uv-warm")
        self.warm = SatchelInstance(self.fresh("sw"))
        self.warm_status: tuple[str, str] | None = None  # (status, detail) once started
        self.local_urls: set[str] = set()  # every `satchel index-url` answer (to scrub)

    def fresh(self, tag: str) -> Path:
        """A new, empty directory: trials never reuse (or delete) each other's trees."""
        self._counter += 1
        path = self.work / "t" / f"{self._counter}{tag}"
        path.mkdir(parents=True)
        return path

    def uv_cmd(self, *args: str) -> list[str]:
        return [self.uv, *args]

    def uv_index(self, cache: Path) -> list[str]:
        return ["--no-config", "--index-url", self.index_url, "--cache-dir", str(cache)]

    def pip_cmd(self, *args: str) -> list[str]:
        return [PY, "-m", "pip", *args]

    # -- set-up (untimed) -------------------------------------------------------------------

    def warm_up_set(self, cs: corpus.CorpusSet) -> dict[str, str]:
        """Fill uv's warm cache and the warm Satchel daemon with the set, online."""
        notes: dict[str, str] = {}
        req = str(cs.requirements)
        venv = self.fresh("uvw")
        steps = [
            self.uv_cmd("pip", "compile", "-q", *self.uv_index(self.uv_warm_cache), "-p", PY, req),
            self.uv_cmd("venv", "-q", "--no-config", "-p", PY, str(venv)),
            self.uv_cmd(
                "pip",
                "install",
                "-q",
                *self.uv_index(self.uv_warm_cache),
                "-p",
                str(venv),
                "-r",
                req,
            ),
        ]
        if cs.name in TOOLS_BY_SET:
            spec, argv = TOOLS_BY_SET[cs.name]
            steps.append(self._uvx(spec, argv, offline=False))
        out = execute(steps, self.env, self.work)
        if not out.ok:
            raise RuntimeError(f"warming uv for {cs.name} failed:\n{out.output[-2000:]}")
        if self.warm_status is None:
            try:
                self.warm.start(self.index_url)
                self.warm_status = ("ok", "")
            except Unavailable as exc:
                self.warm_status = (exc.status, exc.detail)
        if self.warm_status[0] == "ok":
            out = self.warm.run("prefetch", "-r", req)
            if not out.ok:
                notes["satchel prefetch (warm-up)"] = " ".join(classify(out.output))
        return notes

    def _uvx(self, spec: str, argv: list[str], *, offline: bool) -> list[str]:
        flags = ["--offline"] if offline else []
        return self.uv_cmd(
            "tool",
            "run",
            *flags,
            *self.uv_index(self.uv_warm_cache),
            "-p",
            PY,
            "--from",
            spec,
            *argv,
        )

    def _require_warm(self) -> None:
        """Raise Unavailable when the warm daemon could not be set up."""
        if self.warm_status is not None and self.warm_status[0] != "ok":
            raise Unavailable(*self.warm_status)

    def _satchel_warm(self, *args: str) -> Callable[[str], Trial]:
        def contender(_tag: str) -> Trial:
            self._require_warm()
            return Trial([self.warm.cmd(*args)], self.warm.env)

        return contender

    # -- rows ---------------------------------------------------------------------------------

    def measure(
        self, contenders: dict[str, Callable[[str], Trial]], runs: int | None = None
    ) -> dict[str, ToolResult]:
        """One warm-up round, then ``runs`` timed rounds, rotating the tools' order each round."""
        results = {name: ToolResult() for name in contenders}
        names = list(contenders)
        for i in range(-1, runs or self.runs):
            active = [n for n in names if results[n].status == "ok"]
            if not active:
                break
            k = (i + 1) % len(active)  # the warm-up round starts with the first tool
            for name in active[k:] + active[:k]:
                res = results[name]
                try:
                    trial = contenders[name](name)
                except Unavailable as exc:
                    res.status, res.detail = exc.status, exc.detail
                    continue
                out = execute(trial.commands, trial.env, self.work)
                if trial.cleanup is not None:
                    trial.cleanup()
                if not out.ok:
                    res.status, res.detail = classify(out.output)
                    res.times.clear()
                elif i >= 0:
                    res.times.append(out.seconds)
        return results

    def row_ping(self) -> dict[str, ToolResult]:
        """Cheap (~10 ms a process), so more rounds: a 5-sample median of 10 ms is noisy."""
        return self.measure(
            {
                "satchel": self._satchel_warm("ping"),
                "python": lambda _t: Trial([[PY, "-c", "pass"]], self.env),
            },
            runs=max(self.runs, PING_RUNS),
        )

    def row_resolve(self, cs: corpus.CorpusSet, *, first: bool = False) -> dict[str, ToolResult]:
        """Offline resolution; ``first``: a requirement set the daemon has never resolved.

        Satchel keeps a result cache, so asking for the same set again measures a cache hit.
        ``first`` adds a constraints file naming a project that exists nowhere, new in every
        trial: it changes nothing in the result but makes each request one never seen, with
        metadata still warm (the issue's "a set never resolved before" target, <= 2x uv).
        All three tools get the same constraints file.
        """
        req = str(cs.requirements)

        def extra() -> list[str]:
            if not first:
                return []
            path = self.fresh("con") / "constraints.txt"
            path.write_text(f"satchel-bench-nonce-{self._counter}==1\n")
            return ["-c", str(path)]

        def satchel(_t: str) -> Trial:
            self._require_warm()
            return Trial(
                [self.warm.cmd("resolve", "--offline", "-r", req, *extra())], self.warm.env
            )

        def uv(_t: str) -> Trial:
            cmd = self.uv_cmd(
                "pip", "compile", "-q", "--offline", *self.uv_index(self.uv_warm_cache), "-p", PY,
                req, *extra(),
            )  # fmt: skip
            return Trial([cmd], self.env)

        def pip(_t: str) -> Trial:
            cmd = self.pip_cmd(
                "install", "-q", "--dry-run", "--ignore-installed", "--no-index",
                "--find-links", str(cs.wheel_dir), "-r", req, *extra(),
            )  # fmt: skip
            return Trial([cmd], self.env)

        return self.measure({"satchel": satchel, "uv": uv, "pip": pip})

    def row_resolve_first(self, cs: corpus.CorpusSet) -> dict[str, ToolResult]:
        return self.row_resolve(cs, first=True)

    def row_prefetch_cold(self, cs: corpus.CorpusSet) -> dict[str, ToolResult]:
        req = str(cs.requirements)

        def satchel(_t: str) -> Trial:
            inst = SatchelInstance(self.fresh("sc"))
            inst.start(self.index_url)
            return Trial([inst.cmd("prefetch", "-r", req)], inst.env, cleanup=inst.stop)

        def pip(_t: str) -> Trial:
            cmd = self.pip_cmd(
                "download", "-q", "--index-url", self.index_url, "--trusted-host", "127.0.0.1",
                "--only-binary", ":all:", "--cache-dir", str(self.fresh("pipc")),
                "-d", str(self.fresh("pipd")), "-r", req,
            )  # fmt: skip
            return Trial([cmd], self.env)

        uv = self._uv_cold(req, lambda: self.index_url)
        return self.measure({"satchel": satchel, "uv": uv, "pip": pip})

    def _uv_cold(self, req: str, index_url: Callable[[], str]) -> Callable[[str], Trial]:
        """`uv pip install` with a new, empty cache into a new venv (made untimed)."""

        def contender(_t: str) -> Trial:
            url = index_url()
            venv = self.fresh("uvv")
            made = execute([self.uv_cmd("venv", "-q", "--no-config", "-p", PY, str(venv))],
                           self.env, self.work)  # fmt: skip
            if not made.ok:
                raise Unavailable(*classify(made.output))
            cmd = self.uv_cmd(
                "pip", "install", "-q", "--no-config", "--index-url", url,
                "--cache-dir", str(self.fresh("uvc")), "-p", str(venv), "-r", req,
            )  # fmt: skip
            return Trial([cmd], self.env)

        return contender

    def local_index_url(self) -> str:
        """The warm daemon's local index (`satchel index-url`); raise Unavailable without one.

        Asked again for every trial (untimed): the port is ephemeral, and a daemon restarted
        mid-run (a new build in a development checkout) listens on another one.
        """
        self._require_warm()
        out = self.warm.run("index-url")
        if not out.ok:
            raise Unavailable(*classify(out.output))
        url = out.output.strip().splitlines()[-1].strip()
        self.local_urls.add(url)
        return url

    def row_local_index(self, cs: corpus.CorpusSet) -> dict[str, ToolResult]:
        """uv, cold, through Satchel's local index versus straight from the static index.

        The daemon has prefetched the set, so this measures what the local index adds on top of
        serving files (issue target: at most 1.05x direct).
        """
        req = str(cs.requirements)
        try:
            self.local_index_url()
        except Unavailable as exc:  # nothing to compare with: spare the CPU of a uv-only row
            return {
                "satchel": ToolResult(exc.status, [], exc.detail),
                "uv": ToolResult("skipped", [], "no local index to compare with"),
            }
        return self.measure(
            {
                "satchel": self._uv_cold(req, self.local_index_url),
                "uv": self._uv_cold(req, lambda: self.index_url),
            }
        )

    def row_install(self, cs: corpus.CorpusSet) -> dict[str, ToolResult]:
        req = str(cs.requirements)
        compile_satchel = ["--compile"] if self.compile else []
        compile_uv = ["--compile-bytecode"] if self.compile else []
        compile_pip = [] if self.compile else ["--no-compile"]

        def satchel(_t: str) -> Trial:
            self._require_warm()
            venv = self.fresh("sv") / "venv"
            cmd = self.warm.cmd("install", "-r", req, "--venv", str(venv), "--offline")
            return Trial([cmd + compile_satchel], self.warm.env)

        def uv(_t: str) -> Trial:
            venv = self.fresh("uvi") / "venv"
            return Trial(
                [
                    self.uv_cmd("venv", "-q", "--no-config", "-p", PY, str(venv)),
                    self.uv_cmd(
                        "pip", "install", "-q", "--offline", *self.uv_index(self.uv_warm_cache),
                        "-p", str(venv), "-r", req, *compile_uv,
                    ),
                ],
                self.env,
            )  # fmt: skip

        def pip(_t: str) -> Trial:
            venv = self.fresh("pipi") / "venv"
            return Trial(
                [
                    [PY, "-m", "venv", "--without-pip", str(venv)],
                    self.pip_cmd(
                        "--python", str(venv / "bin" / "python"), "install", "-q", "--no-index",
                        "--find-links", str(cs.wheel_dir), "-r", req, *compile_pip,
                    ),
                ],
                self.env,
            )  # fmt: skip

        return self.measure({"satchel": satchel, "uv": uv, "pip": pip})

    def row_run(self, cs: corpus.CorpusSet) -> dict[str, ToolResult] | None:
        if cs.name not in TOOLS_BY_SET:
            return None
        spec, argv = TOOLS_BY_SET[cs.name]
        uvx = self._uvx(spec, argv, offline=True)
        return self.measure(
            {
                "satchel": self._satchel_warm("run", "--offline", "--from", spec, *argv),
                "uv": lambda _t: Trial([uvx], self.env),
            }
        )


def _pack(results: dict[str, ToolResult]) -> dict[str, Any]:
    return {name: {**asdict(r), "median": r.median} for name, r in results.items()}


def start_index(root: Path) -> tuple[subprocess.Popen[str], str]:
    """Serve the static index in its own process; return it and its simple URL."""
    proc = subprocess.Popen(
        [PY, STATIC_INDEX, "serve", str(root)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    if not url.startswith("http://127.0.0.1:"):
        proc.terminate()
        raise RuntimeError(f"static index did not start (got {url!r})")
    return proc, url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Benchmark Satchel against uv and pip.")
    parser.add_argument("--sets", default="small,medium,large", help="comma-separated set names")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per row (median; >= 5)")
    parser.add_argument(
        "--quick", action="store_true", help="small set, 3 runs: checks the harness, not a result"
    )
    parser.add_argument(
        "--compile", action="store_true", help="byte-compile on install for all tools (default off)"
    )
    parser.add_argument("--output", type=Path, default=REPO / "docs" / "benchmarks.json")
    parser.add_argument("--keep-work", action="store_true", help="do not delete the work dir")
    args = parser.parse_args(argv)
    sets = ["small"] if args.quick else args.sets.split(",")
    runs = 3 if args.quick else args.runs

    css = [corpus.ensure_set(name) for name in sets]
    # Workspace members are editable installs with no .pyc, and PYTHONDONTWRITEBYTECODE=1 means
    # every `satchel` run would recompile them: measure what an installed client costs instead.
    ensure_bytecode(*(REPO / m / "src" for m in ("protocol", "client", "daemon")))
    work = Path(tempfile.mkdtemp(prefix="sb-"))  # short: socket paths must fit in sun_path
    server: subprocess.Popen[str] | None = None
    warm: SatchelInstance | None = None
    try:
        info = static_index.build_index((w for cs in css for w in cs.wheels), work / "index")
        server, url = start_index(work / "index")
        print(f"index: {len(info.projects)} projects on {url}", file=sys.stderr)
        bench = Bench(work, url, runs, args.compile)
        warm = bench.warm
        data: dict[str, Any] = {
            "machine": report.describe_machine(),
            "config": {
                "runs": runs,
                "compile": args.compile,
                "quick": args.quick,
                "sets": sets,
                "load_start": f"{os.getloadavg()[0]:.1f}",
            },
            "sets": {},
        }
        for cs in css:
            print(f"set {cs.name}: {len(cs.wheels)} wheels", file=sys.stderr)
            notes = bench.warm_up_set(cs)
            pid_before = bench.warm.daemon_pid()
            rows: dict[str, Any] = {}
            for row, fn in (
                ("ping", lambda cs=cs: bench.row_ping()),
                ("resolve", bench.row_resolve),
                ("resolve_first", bench.row_resolve_first),
                ("prefetch", bench.row_prefetch_cold),
                ("install", bench.row_install),
                ("run", bench.row_run),
                ("local", bench.row_local_index),
            ):
                print(f"  {row} ...", file=sys.stderr)
                result = fn(cs)
                if result is not None:
                    rows[row] = _pack(result)
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
            data["sets"][cs.name] = {
                "wheels": len(cs.wheels),
                "bytes": cs.size_bytes,
                "rows": rows,
                "tool": " ".join([TOOLS_BY_SET[cs.name][0], *TOOLS_BY_SET[cs.name][1]])
                if cs.name in TOOLS_BY_SET
                else None,
                "daemon_peak_rss_kib": rss,
                "notes": notes,
            }
        data["config"]["load_end"] = f"{os.getloadavg()[0]:.1f}"
        paths = {str(work): "<work>", str(REPO): "<repo>", str(Path.home()): "~"}
        for url in bench.local_urls:  # carries the per-user token: never written out
            paths[url] = "<satchel index-url>"
            token = urlsplit(url).password
            if token:
                paths[token] = "<token>"
        report.scrub(data, paths)
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(data, indent=1) + "\n")
        print(f"results: {args.output}", file=sys.stderr)
        report.render(
            data, args.output.parent / "benchmarks.md", args.output.parent / "benchmarks.png"
        )
    finally:
        if warm is not None:
            warm.stop()
        if server is not None:
            server.terminate()
            server.wait(timeout=10)
        if not args.keep_work:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
