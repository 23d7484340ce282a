"""The rows of the benchmark table, each timed as whole processes with the tools alternating.

`Bench` holds one run's shared context (work directory, the static index and its tags, uv's
warm cache, the warm Satchel daemon) and one method per row; ``run.py`` drives it set by set.
Every trial that talks to the static index does so under a URL tag of its own
(``static_index.tagged_url``), so the index's counters give that trial's page, metadata and file
requests; the warm daemon and uv's warm cache keep one tag each (``warm``, ``uvwarm``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import corpus, daemon_probes
from benchmarks.harness import (
    PY,
    SatchelInstance,
    ToolResult,
    Trial,
    Unavailable,
    classify,
    execute,
    find_uv,
    tool_env,
)
from benchmarks.static_index import read_counters, tagged_url
from benchmarks.variants import Edits, corpus_pins

__all__ = ["PING_RUNS", "TOOLS_BY_SET", "Bench"]

#: Timed rounds of the rows whose samples are ~10-20 ms (the ping, the warm repeated resolve):
#: a 5-sample median of such a process moves by a millisecond or two with the load of this
#: shared 2-core machine, as much as the gap the row is about.
PING_RUNS = 20
TOOLS_BY_SET: dict[str, tuple[str, list[str]]] = {
    # set -> (--from spec, command line) for the `satchel run` / `uvx` row; a console script
    # whose dependencies are all in the set, cheap to run so the row measures the launcher.
    "medium": ("uvicorn", ["uvicorn", "--version"]),
    "large": ("jupyter-core", ["jupyter", "--paths"]),
}


class Bench:
    """Shared context of one benchmark run: work directory, index, warm caches, options."""

    def __init__(
        self,
        work: Path,
        index_url: str,
        runs: int,
        compile_bytecode: bool,
        *,
        uv: str | None = None,
        slow_url: str | None = None,
    ) -> None:
        self.work = work
        self.base_url = index_url  # untagged: every user of it below gets a tag of its own
        self.slow_url = slow_url  # the same index behind --latency-ms (None: no slow column)
        self.index_url = tagged_url(index_url, "uvwarm")  # uv's warm cache is keyed by URL
        self.runs = runs
        self.compile = compile_bytecode
        self.env = tool_env()
        self._counter = 0
        self.uv = uv or find_uv()
        self.uv_warm_cache = self.fresh("uv-warm")
        self.warm = SatchelInstance(self.fresh("sw"))
        self.warm_url = tagged_url(index_url, "warm")
        self.warm_status: tuple[str, str] | None = None  # (status, detail) once started
        self.local_urls: set[str] = set()  # every `satchel index-url` answer (to scrub)
        self.edits: dict[str, Edits] = {}  # set name -> its never-seen requirement edits
        self.last_venv: dict[str, Path] = {}  # tool -> the venv of its latest install trial

    def tag(self, tool: str, base: str | None = None) -> tuple[str, str]:
        """A tag of its own for one trial and the index URL carrying it (``base``: the
        untagged URL, default the normal index)."""
        self._counter += 1
        name = f"{tool}-{self._counter}"
        return name, tagged_url(base or self.base_url, name)

    def edits_of(self, cs: corpus.CorpusSet) -> Edits:
        if cs.name not in self.edits:
            self.edits[cs.name] = Edits(cs.requirements, cs.wheels, self.fresh(f"ed-{cs.name}"))
        return self.edits[cs.name]

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
                self.warm.start(self.warm_url)
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
        """One warm-up round, then ``runs`` timed rounds, rotating the tools' order each round;
        each trial starts after an untimed ``sync`` (the file systems' dirty data written back)."""
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
                before = read_counters(*trial.counted) if trial.counted else None
                # Untimed: what the previous trial left for the kernel to write back (uv's
                # unpacked wheels, a venv) is written now, not charged to this trial's fsyncs.
                os.sync()
                out = execute(trial.commands, trial.env, self.work)
                if trial.cleanup is not None:
                    trial.cleanup()
                if not out.ok:
                    res.status, res.detail = classify(out.output)
                    res.times.clear()
                elif i >= 0:
                    res.times.append(out.seconds)
                    if trial.counted and before is not None:
                        after = read_counters(*trial.counted)
                        res.counts.append({k: after[k] - before[k] for k in after})
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
        ``first`` gives every Satchel trial a real edit of the set never seen before
        (``variants.py``: the set plus a pin of one or two of its own projects at the version
        it resolves to), so each request misses the cache and resolves the same pins, metadata
        warm (the issue's "never-resolved" row). uv and pip, which keep no result cache, get
        the newest edit (the same file Satchel got in this round or the previous one).
        """

        latest: list[str] = []  # the newest edit: uv and pip (no result cache) reuse it

        def req(new: bool = False) -> str:
            if not first:
                return str(cs.requirements)
            if new or not latest:
                path = self.edits_of(cs).same_result()
                if path is None:
                    raise Unavailable("failed", "no requirement edit left for this set")
                latest[:] = [str(path)]
            return latest[0]

        def satchel(_t: str) -> Trial:
            self._require_warm()
            cmd = self.warm.cmd("resolve", "--offline", "-r", req(new=True))
            return Trial([cmd], self.warm.env)

        def uv(_t: str) -> Trial:
            cmd = self.uv_cmd(
                "pip", "compile", "-q", "--offline", *self.uv_index(self.uv_warm_cache), "-p", PY,
                req(),
            )  # fmt: skip
            return Trial([cmd], self.env)

        def pip(_t: str) -> Trial:
            cmd = self.pip_cmd(
                "install", "-q", "--dry-run", "--ignore-installed", "--no-index",
                "--find-links", str(cs.wheel_dir), "-r", req(),
            )  # fmt: skip
            return Trial([cmd], self.env)

        # A warm repeated resolve is ~15 ms a process: as many rounds as the ping. The
        # never-resolved row keeps `runs`: each of its Satchel trials uses up one edit of the set.
        runs = None if first else max(self.runs, PING_RUNS)
        return self.measure({"satchel": satchel, "uv": uv, "pip": pip}, runs=runs)

    def row_resolve_first(self, cs: corpus.CorpusSet) -> dict[str, ToolResult]:
        return self.row_resolve(cs, first=True)

    def row_prefetch_cold(
        self, cs: corpus.CorpusSet, *, slow: bool = False
    ) -> dict[str, ToolResult] | None:
        """Cold prefetch (a new daemon, started untimed) vs uv's cold install vs pip download,
        each trial under a tag of its own so the index's counters give its requests; ``slow``:
        the same against the index behind ``--latency-ms`` (Satchel and uv only)."""
        if slow and self.slow_url is None:
            return None
        base = self.slow_url if slow else self.base_url
        req = str(cs.requirements)

        def satchel(_t: str) -> Trial:
            tag, url = self.tag("satchel", base)
            inst = SatchelInstance(self.fresh("sc"))
            inst.start(url)
            return Trial(
                [inst.cmd("prefetch", "-r", req)], inst.env, cleanup=inst.stop, counted=(url, tag)
            )

        def pip(_t: str) -> Trial:
            tag, url = self.tag("pip", base)
            cmd = self.pip_cmd(
                "download", "-q", "--index-url", url, "--trusted-host", "127.0.0.1",
                "--only-binary", ":all:", "--cache-dir", str(self.fresh("pipc")),
                "-d", str(self.fresh("pipd")), "-r", req,
            )  # fmt: skip
            return Trial([cmd], self.env, counted=(url, tag))

        uv = self._uv_cold(req, lambda: self.tag("uv", base))
        contenders = {"satchel": satchel, "uv": uv}
        return self.measure(contenders if slow else {**contenders, "pip": pip})

    def row_prefetch_slow(self, cs: corpus.CorpusSet) -> dict[str, ToolResult] | None:
        return self.row_prefetch_cold(cs, slow=True)

    def _uv_cold(
        self, req: str, index_url: Callable[[], tuple[str, str]]
    ) -> Callable[[str], Trial]:
        """`uv pip install` with a new, empty cache into a new venv (made untimed);
        ``index_url`` gives the (tag, URL) to install from, its tag counted."""

        def contender(_t: str) -> Trial:
            tag, url = index_url()
            venv = self.fresh("uvv")
            made = execute([self.uv_cmd("venv", "-q", "--no-config", "-p", PY, str(venv))],
                           self.env, self.work)  # fmt: skip
            if not made.ok:
                raise Unavailable(*classify(made.output))
            cmd = self.uv_cmd(
                "pip", "install", "-q", "--no-config", "--index-url", url,
                "--cache-dir", str(self.fresh("uvc")), "-p", str(venv), "-r", req,
            )  # fmt: skip
            return Trial([cmd], self.env, counted=(url, tag) if tag else None)

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

    def _through_local(self) -> tuple[str, str]:
        """The local index for uv; what is counted is the warm daemon's upstream requests."""
        return "", self.local_index_url()

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
        through = self._uv_cold(req, self._through_local)

        def satchel(name: str) -> Trial:
            trial = through(name)
            trial.counted = (self.warm_url, "warm")  # what the daemon asked upstream meanwhile
            return trial

        return self.measure({"satchel": satchel, "uv": self._uv_cold(req, lambda: self.tag("uv"))})

    def row_install(self, cs: corpus.CorpusSet) -> dict[str, ToolResult]:
        req = str(cs.requirements)
        compile_satchel = ["--compile"] if self.compile else []
        compile_uv = ["--compile-bytecode"] if self.compile else []
        compile_pip = [] if self.compile else ["--no-compile"]

        def satchel(_t: str) -> Trial:
            self._require_warm()
            venv = self.last_venv["satchel"] = self.fresh("sv") / "venv"
            cmd = self.warm.cmd("install", "-r", req, "--venv", str(venv), "--offline")
            return Trial([cmd + compile_satchel], self.warm.env)

        def uv(_t: str) -> Trial:
            venv = self.last_venv["uv"] = self.fresh("uvi") / "venv"
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
            venv = self.last_venv["pip"] = self.fresh("pipi") / "venv"
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

    def installed_files(self) -> dict[str, int]:
        """Files in site-packages of each tool's latest install (the "per installed file" row)."""
        counts = {}
        for tool, venv in self.last_venv.items():
            found = list(venv.glob("lib/python*/site-packages"))
            if found:
                counts[tool] = sum(len(files) for _d, _s, files in os.walk(found[0]))
        return counts

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

    # -- the warm daemon's own measures (daemon_probes.py), untimed whole -------------------

    def probe(self, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """Run one probe of the warm daemon; a failure becomes ``{"error": ...}``."""
        try:
            self._require_warm()
            return fn()
        except Unavailable as exc:
            return {"error": exc.detail, "status": exc.status}
        except (OSError, RuntimeError, ValueError) as exc:
            return {"error": f"{type(exc).__name__}: {exc}", "status": "failed"}

    def probe_pages(self, cs: corpus.CorpusSet, requests: int) -> dict[str, Any]:
        projects = [pin.split("==", 1)[0] for pin in corpus_pins(cs.wheels)]
        return self.probe(
            lambda: daemon_probes.page_latency(
                self.local_index_url(),
                tagged_url(self.base_url, "pages"),
                projects,
                requests,
                (self.warm_url, "warm"),
            )
        )

    def probe_ping_load(self, cs: corpus.CorpusSet, count: int) -> dict[str, Any]:
        return self.probe(
            lambda: daemon_probes.ping_round_trips(self.warm, self.edits_of(cs), count, self.work)
        )

    def probe_memory(self, cs: corpus.CorpusSet, operations: int) -> dict[str, Any]:
        return self.probe(
            lambda: daemon_probes.memory_after_edits(
                self.warm, self.edits_of(cs), operations, self.fresh
            )
        )
