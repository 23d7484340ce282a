"""Render benchmark results (``docs/benchmarks.json``) as ``docs/benchmarks.md`` and a chart.

    python benchmarks/report.py [docs/benchmarks.json]

The table shows medians of whole-process wall time and the ratios the targets are stated in
(Satchel / uv, Satchel / pip; ``satchel ping`` / ``python -c pass``), so a reader can check a
claim without rerunning anything. Ratios, not absolute times, are what carry between machines:
the absolute numbers depend on the CPU, disk and whatever else was running.

The chart (``docs/benchmarks.png``) plots the same ratios on a log scale, with uv / pip as a
grey reference bar, so rows where Satchel has no figure yet still show the gap to close. It
needs matplotlib (``uv run --group bench ...``); without it the chart is skipped and the
markdown says so.
"""

from __future__ import annotations

import datetime
import itertools
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = ["describe_machine", "format_seconds", "render", "render_markdown", "scrub"]

ROWS = {
    "resolve": (
        "resolve offline, warm",
        "`satchel resolve --offline`",
        "`uv pip compile --offline`",
        "`pip install --dry-run --no-index --find-links`",
    ),
    "resolve_first": (
        "resolve offline, never resolved before (a real edit of the set, metadata warm)",
        "`satchel resolve --offline -r <the set plus a pin or two of its own projects>`",
        "`uv pip compile --offline -r <an edit of the same kind>`",
        "`pip install --dry-run ... -r <same>`",
    ),
    "prefetch": (
        "prefetch cold (empty cache)",
        "`satchel prefetch`",
        "`uv pip install` (fresh cache)",
        "`pip download` (fresh cache)",
    ),
    "prefetch_slow": (
        "prefetch cold, slow network (latency added per request)",
        "`satchel prefetch`",
        "`uv pip install` (fresh cache)",
        "-",
    ),
    "install": (
        "install offline into a fresh venv",
        "`satchel install --offline`",
        "`uv venv` + `uv pip install --offline`",
        "`python -m venv` + `pip install --no-index --find-links`",
    ),
    "run": ("run a cached tool", "`satchel run --offline`", "`uvx --offline`", "-"),
    "local": (
        "uv cold through the local index",
        "`uv pip install` via `satchel index-url` (Satchel column)",
        "`uv pip install` straight from the static index (uv column)",
        "-",
    ),
}
LEGACY_FIRST = (
    "resolve offline, a set never resolved before (metadata warm)",
    "`satchel resolve --offline -c <new constraints>`",
    "`uv pip compile --offline -c <same>`",
    "`pip install --dry-run ... -c <same>`",
)
"""How runs before issue 15 (no ``latency_ms`` in their config) made that row: a constraint
on a project that exists nowhere, new in every trial. Their results keep their own title."""
TARGETS = (
    "cold prefetch <= 1.0x uv's cold install on every set; a never-resolved set <= 1.5x uv; a "
    "warm repeated resolve and offline install <= 1.0x uv (install <= 0.8x uv per installed "
    "file); every Satchel row >= 10x faster than pip; uv through the local index <= 1.05x "
    "direct; local index cached page p50 <= 0.3 ms; ping <= 2.0x python, ping p99 under load "
    "< 10 ms; daemon resident memory <= 100 MB after ~250 different resolves and installs"
)
PIP_BAR = 0.1  # "at least 10x faster than pip": Satchel / pip at most 0.1


def format_seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 1.0:
        return f"{value * 1000:.0f} ms" if value >= 0.0095 else f"{value * 1000:.1f} ms"
    return f"{value:.2f} s"


def _ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return "-"
    return f"{a / b:.2f}x"


def _paired(row: dict[str, Any]) -> str:
    """The median of the per-round ratios Satchel / uv: round i's Satchel trial over round i's
    uv trial, run next to each other, so drift between rounds cancels."""
    sat, uv = (row.get(t) or {} for t in ("satchel", "uv"))
    if sat.get("status") != "ok" or uv.get("status") != "ok":
        return "-"
    pairs = [a / b for a, b in zip(sat.get("times", []), uv.get("times", []), strict=False) if b]
    if len(pairs) != len(sat.get("times", [])) or not pairs:
        return "-"
    return f"{statistics.median(pairs):.2f}x"


def _cell(result: dict[str, Any] | None, notes: list[str]) -> str:
    if result is None:
        return "-"
    if result["status"] == "ok":
        return format_seconds(result["median"])
    if result["status"] == "n/a":
        return "n/a (not implemented)"
    if result["status"] == "skipped":
        return "-"
    notes.append(result["detail"])
    return f"failed [{len(notes)}]"


def describe_machine() -> dict[str, str]:
    """What the numbers were measured on, with no path or host name of this machine."""

    def first_line(cmd: list[str]) -> str:
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return "unavailable"
        lines = (out.stdout or out.stderr).strip().splitlines()
        return lines[0] if out.returncode == 0 and lines else "unavailable"

    cpu = platform.processor() or "unknown"
    mem = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    pip = first_line([sys.executable, "-m", "pip", "--version"]).split(" from ")[0]
    satchel = first_line([str(Path(sys.executable).parent / "satchel"), "--version"])
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "memory": mem,
        "kernel": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "uv": first_line([shutil.which("uv") or "uv", "--version"]),
        "pip": pip,
        "satchel": satchel,
        "PYTHONDONTWRITEBYTECODE": os.environ.get("PYTHONDONTWRITEBYTECODE", "unset"),
    }


def scrub(value: Any, replacements: dict[str, str]) -> Any:
    """Replace machine paths in every string of ``value`` (in place for dicts and lists)."""
    if isinstance(value, str):
        for old, new in sorted(replacements.items(), key=lambda kv: -len(kv[0])):
            if old:
                value = value.replace(old, new)
        return value
    if isinstance(value, dict):
        for k in value:
            value[k] = scrub(value[k], replacements)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            value[i] = scrub(v, replacements)
    return value


def _median(rows: dict[str, Any], row: str, tool: str) -> float | None:
    result = rows.get(row, {}).get(tool)
    return result.get("median") if result else None


def is_partial(data: dict[str, Any]) -> list[str]:
    """Why this run is not the full picture (empty when it is)."""
    reasons = []
    missing = [s for s in ("small", "medium", "large") if s not in data["sets"]]
    if missing:
        reasons.append(f"sets not run: {', '.join(missing)}")
    if data["config"].get("quick"):
        reasons.append("--quick run (3 runs, small set): a harness check, not a result")
    no_satchel = sorted(
        {
            row
            for s in data["sets"].values()
            for row, tools in s["rows"].items()
            if tools.get("satchel", {}).get("status") != "ok"
        }
    )
    if no_satchel:
        reasons.append(f"Satchel has no figure yet for: {', '.join(no_satchel)}")
    return reasons


def render_markdown(data: dict[str, Any], chart_note: str, findings: str = "") -> str:
    m, cfg = data["machine"], data["config"]
    out = ["# Benchmarks: Satchel vs uv vs pip", ""]
    out.append("Generated by `benchmarks/run.py` (see `benchmarks/README.md` for what each row")
    out.append("measures and how to rerun it). Do not edit by hand.")
    out.append("")
    out.append(
        "Local index versus proxpi and devpi-server (page latency, file throughput, uv through "
        "each): [benchmarks-local-index.md](benchmarks-local-index.md)."
    )
    out.append("")
    reasons = is_partial(data)
    if reasons:
        out.append("> **Partial run.** " + "; ".join(reasons) + ".")
        out.append("")
    resolve_runs = max(
        (
            len(tool.get("times", []))
            for one in data.get("sets", {}).values()
            for tool in one.get("rows", {}).get("resolve", {}).values()
        ),
        default=0,
    )
    more = f" ({resolve_runs} for the warm repeated resolve)" if resolve_runs > cfg["runs"] else ""
    out.append(
        f"Whole-process wall time, median of {cfg['runs']} runs{more} after one warm-up, tools "
        "alternating within each round"
        + (", each trial after an untimed `sync`" if cfg.get("sync_before_trial") else "")
        + ". Byte-compilation "
        + (
            "**on** for all tools (`--compile`, `--compile-bytecode`, pip's default)."
            if cfg["compile"]
            else "**off** for all tools (pip `--no-compile`; uv and Satchel default)."
        )
    )
    out.append(f"Targets: {TARGETS}.")
    if "load_start" in cfg:
        out.append(
            f"Load average (1 min) when the run started / ended: {cfg['load_start']} / "
            f"{cfg.get('load_end', '?')} on {m.get('cores', '?')} cores; a load above the core "
            "count means other work shared the CPUs, so read ratios, not absolute times."
        )
    out += ["", "## Machine", "", "| | |", "|---|---|"]
    out += [f"| {k} | {v} |" for k, v in m.items()]
    out += [
        "",
        "## Corpus",
        "",
        "| set | wheels | size | tool for the run row |",
        "|---|---|---|---|",
    ]
    for name, s in data["sets"].items():
        tool = f"`{s['tool']}`" if s.get("tool") else "-"
        out.append(f"| {name} | {s['wheels']} | {s['bytes'] / 1e6:.1f} MB | {tool} |")

    notes: list[str] = []
    rows_shown = ROWS if "latency_ms" in cfg else {**ROWS, "resolve_first": LEGACY_FIRST}
    out += ["", "## Resolve, prefetch, install, run", ""]
    out.append(
        "| set | measure | Satchel | uv | pip | Satchel / uv | Satchel / uv, paired "
        "| Satchel / pip |"
    )
    out.append("|---|---|---|---|---|---|---|---|")
    for name, s in data["sets"].items():
        rows = s["rows"]
        for row, (title, *_cmds) in rows_shown.items():
            if row not in rows:
                continue
            r = rows[row]
            if row == "prefetch_slow":
                title = f"prefetch cold, +{cfg.get('latency_ms', '?')} ms per index request"
            sat, uv, pip = (_median(rows, row, t) for t in ("satchel", "uv", "pip"))
            cells = [_cell(r.get(t), notes) for t in ("satchel", "uv", "pip")]
            ratios = f"{_ratio(sat, uv)} | {_paired(r)} | {_ratio(sat, pip)}"
            out.append(f"| {name} | {title} | {' | '.join(cells)} | {ratios} |")
    out += ["", "Commands per measure:", ""]
    out += [
        f"- {title}: {' vs '.join(c for c in cmds if c != '-')}"
        for row, (title, *cmds) in rows_shown.items()
        if any(row in s["rows"] for s in data["sets"].values())
    ]
    out += [
        "",
        "uv has no download-only command, so its cold row also installs into a venv, while",
        "`pip download` only downloads: the cold row favours pip.",
    ]

    out += _non_empty(_issue_sections(data))
    out += ["", "## Client round trip", ""]
    out.append("| set | `satchel ping` | `python -c pass` | ratio (target <= 2.0x) |")
    out.append("|---|---|---|---|")
    for name, s in data["sets"].items():
        if "ping" in s["rows"]:
            r = s["rows"]["ping"]
            sat, py = _median(s["rows"], "ping", "satchel"), _median(s["rows"], "ping", "python")
            cells = [_cell(r.get("satchel"), notes), _cell(r.get("python"), notes)]
            out.append(f"| {name} | {' | '.join(cells)} | {_ratio(sat, py)} |")

    out += ["", "## Daemon memory", "", "| after set | peak RSS (VmHWM; target <= 100 MB) |"]
    out.append("|---|---|")
    for name, s in data["sets"].items():
        rss = s.get("daemon_peak_rss_kib")
        out.append(f"| {name} | {f'{rss / 1024:.1f} MiB' if rss else 'n/a (no daemon pid)'} |")

    set_notes = [(n, k, v) for n, s in data["sets"].items() for k, v in s.get("notes", {}).items()]
    if notes or set_notes:
        out += ["", "## Failures and notes", ""]
        out += [f"{i}. {detail}" for i, detail in enumerate(notes, 1)]
        out += [f"- {n}, {k}: {v}" for n, k, v in set_notes]
    out += ["", "## Chart", "", chart_note, ""]
    if findings.strip():
        out += ["## Findings", "", findings.strip(), ""]
    return "\n".join(out)


def _median_counts(result: dict[str, Any] | None) -> dict[str, float] | None:
    counts = (result or {}).get("counts") or []
    if not counts:
        return None
    return {k: statistics.median(c.get(k, 0) for c in counts) for k in counts[0]}


def _counts_cell(c: dict[str, float] | None) -> str:
    if c is None:
        return "- | - | - | -"
    return f"{c['pages']:.0f} | {c['metadata']:.0f} | {c['files']:.0f} | {c['bytes'] / 1e6:.1f} MB"


def _non_empty(lines: list[str]) -> list[str]:
    """Keep the sections (``## `` headings) whose table has a row; say so when none has."""
    starts = [i - 1 for i, line in enumerate(lines) if line.startswith("## ")] + [len(lines)]
    kept: list[str] = []
    for a, b in itertools.pairwise(starts):
        if sum(line.startswith("|") for line in lines[a:b]) > 2:
            kept += lines[a:b]
    return kept or [
        "",
        "Request counts, install per installed file, the local index's page latency, ping under "
        "load and memory after many resolves: not measured by this run (a harness before "
        "issue 15).",
    ]


def _issue_sections(data: dict[str, Any]) -> list[str]:
    """Request counts, install per file, local index pages, ping under load, memory."""
    cfg = data["config"]
    out = ["", "## Index requests (median per timed trial, counted by the static index)", ""]
    out.append("| set | measure | tool | pages | metadata | files | bytes |")
    out.append("|---|---|---|---|---|---|---|")
    titles = {
        "prefetch": "prefetch cold",
        "prefetch_slow": f"prefetch cold, +{cfg.get('latency_ms', '?')} ms",
        "local": "uv through the local index (Satchel: the daemon's upstream requests)",
    }
    for name, s in data["sets"].items():
        for row, title in titles.items():
            for tool, result in s["rows"].get(row, {}).items():
                counts = _median_counts(result)
                if counts is not None:
                    out.append(f"| {name} | {title} | {tool} | {_counts_cell(counts)} |")
    out += ["", "## Never-resolved resolve per pin (goal: growth no worse than linear)", ""]
    out.append("| set | pins | Satchel | uv | Satchel per pin | uv per pin |")
    out.append("|---|---|---|---|---|---|")
    for name, s in data["sets"].items():
        if "resolve_first" not in s["rows"] or "latency_ms" not in cfg:
            continue
        first = [_median(s["rows"], "resolve_first", t) for t in ("satchel", "uv")]
        per = ["-" if v is None else f"{v / s['wheels'] * 1e6:.0f} us" for v in first]
        cells = " | ".join(format_seconds(v) for v in first)
        out.append(f"| {name} | {s['wheels']} | {cells} | {' | '.join(per)} |")
    out += ["", "## Offline install per installed file (target <= 0.8x uv)", ""]
    out.append("| set | files | Satchel | uv | pip | Satchel / uv |")
    out.append("|---|---|---|---|---|---|")
    for name, s in data["sets"].items():
        files = s.get("probes", {}).get("installed_files", {})
        n = files.get("satchel") or files.get("uv")
        if not n or "install" not in s["rows"]:
            continue
        per = {t: _median(s["rows"], "install", t) for t in ("satchel", "uv", "pip")}
        cells = " | ".join("-" if v is None else f"{v / n * 1e6:.1f} us" for v in per.values())
        out.append(f"| {name} | {n} | {cells} | {_ratio(per['satchel'], per['uv'])} |")
    out += ["", "## Local index: cached page latency (target p50 <= 0.3 ms)", ""]
    out.append(
        "| set | Satchel p50 | Satchel p99 | static index p50 | static p99 | upstream requests "
        "while serving |"
    )
    out.append("|---|---|---|---|---|---|")
    for name, s in data["sets"].items():
        pages = s.get("probes", {}).get("pages")
        if not pages:
            continue
        if "error" in pages:
            out.append(f"| {name} | failed: {pages['error'][:120]} | | | | |")
            continue
        sat, st, up = pages["satchel"], pages["static"], pages["upstream_during_satchel"]
        out.append(
            f"| {name} | {sat['p50_ms']:.3f} ms | {sat['p99_ms']:.3f} ms | {st['p50_ms']:.3f} ms "
            f"| {st['p99_ms']:.3f} ms | {up.get('pages', 0)} pages, {up.get('metadata', 0)} "
            f"metadata in {pages['requests']} GETs |"
        )
    out += ["", "## Ping round trip in the daemon, idle and under load (target p99 < 10 ms)", ""]
    out.append("| set | idle p50 | idle p99 | loaded p50 | loaded p99 | resolves meanwhile |")
    out.append("|---|---|---|---|---|---|")
    for name, s in data["sets"].items():
        ping = s.get("probes", {}).get("ping_load")
        if not ping:
            continue
        if "error" in ping:
            out.append(f"| {name} | failed: {ping['error'][:120]} | | | | |")
            continue
        idle, loaded, load = ping["idle"], ping["loaded"], ping["load"]
        note = " (edits ran out)" if load.get("exhausted") else ""
        out.append(
            f"| {name} | {idle['p50_ms']:.2f} ms | {idle['p99_ms']:.2f} ms | "
            f"{loaded['p50_ms']:.2f} ms | {loaded['p99_ms']:.2f} ms | {load['resolves']}{note} |"
        )
    out += ["", "## Daemon memory after many different resolves and installs (<= 100 MB)", ""]
    out.append(
        "| set | operations (resolves + installs) | distinct results | resident before | "
        "resident after | peak | growth per operation |"
    )
    out.append("|---|---|---|---|---|---|---|")
    for name, s in data["sets"].items():
        mem = s.get("probes", {}).get("memory")
        if not mem:
            continue
        if "error" in mem:
            out.append(f"| {name} | failed: {mem['error'][:120]} | | | | | |")
            continue
        mib = [
            "-" if mem.get(k) is None else f"{mem[k] / 1024:.1f} MiB"
            for k in ("rss_before_kib", "rss_after_kib", "peak_after_kib")
        ]
        growth = mem.get("growth_kib_per_operation")
        out.append(
            f"| {name} | {mem['operations']} ({mem['resolves']} + {mem['installs']}) | "
            f"{mem['distinct_resolve_results']} | {' | '.join(mib)} | "
            f"{'-' if growth is None else f'{growth:.1f} KiB'} |"
        )
    return out


def _chart_series(data: dict[str, Any]) -> tuple[list[str], dict[str, list[float | None]]]:
    labels: list[str] = []
    series: dict[str, list[float | None]] = {
        "Satchel / uv": [],
        "Satchel / pip": [],
        "uv / pip": [],
    }
    for name, s in data["sets"].items():
        for row in ROWS:
            if row not in s["rows"]:
                continue
            sat, uv, pip = (_median(s["rows"], row, t) for t in ("satchel", "uv", "pip"))
            labels.append(f"{name}\n{row}")
            for key, (a, b) in {
                "Satchel / uv": (sat, uv),
                "Satchel / pip": (sat, pip),
                "uv / pip": (uv, pip),
            }.items():
                series[key].append(a / b if a is not None and b else None)
    return labels, series


def render_chart(data: dict[str, Any], png: Path) -> str:
    """Draw the ratio chart; return the markdown note describing what happened."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        png.unlink(missing_ok=True)  # a stale chart would contradict the table
        return "Chart skipped: matplotlib is not installed (`uv run --group bench ...`)."
    labels, series = _chart_series(data)
    if not labels:
        png.unlink(missing_ok=True)
        return "Chart skipped: no ratio to plot."
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(labels)), 4.5))
    width = 0.27
    colors = {"Satchel / uv": "#1f77b4", "Satchel / pip": "#ff7f0e", "uv / pip": "#bbbbbb"}
    for i, (key, values) in enumerate(series.items()):
        xs = [j + (i - 1) * width for j, v in enumerate(values) if v is not None]
        ys = [v for v in values if v is not None]
        if ys:  # an empty series would still get a (wrongly coloured) legend entry
            ax.bar(xs, ys, width, label=key, color=colors[key])
    if not any(v is not None for k in ("Satchel / uv", "Satchel / pip") for v in series[k]):
        ax.text(0.5, 0.92, "no Satchel figures yet (partial run)", transform=ax.transAxes,
                ha="center", fontsize=9, color="#aa0000")  # fmt: skip
    ax.axhline(1.0, color="black", linewidth=0.8)  # Satchel / uv target: at most 1.0
    ax.axhline(PIP_BAR, color=colors["Satchel / pip"], linewidth=0.8, linestyle="--")
    ax.set_yscale("log")
    ax.set_xticks(range(len(labels)), labels, fontsize=8)
    ax.set_ylabel("time ratio (lower is faster; log scale)")
    ax.set_title(
        "Median wall-time ratios (targets: Satchel / uv <= 1, solid; Satchel / pip <= 0.1, dashed)"
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)
    return f"![ratio chart]({png.name})"


FINDINGS = Path(__file__).resolve().parent / "findings.md"


def render(data: dict[str, Any], md: Path, png: Path, findings: Path = FINDINGS) -> None:
    """Write the markdown (and chart); ``findings`` is the hand-written, dated analysis
    (profiles, causes of gaps) kept beside the harness so a rerun never loses it."""
    note = render_chart(data, png)
    text = findings.read_text() if findings.is_file() else ""
    md.write_text(render_markdown(data, note, text))


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    source = (
        Path(args[0])
        if args
        else Path(__file__).resolve().parent.parent / "docs" / "benchmarks.json"
    )
    data = json.loads(source.read_text())
    render(data, source.with_suffix(".md"), source.with_suffix(".png"))
    print(f"wrote {source.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
