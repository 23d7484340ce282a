"""Rendering benchmark results: medians, ratios, missing rows, partial-run marking, the chart."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from benchmarks.report import describe_machine, format_seconds, render, render_markdown, scrub


def _tool(status: str, median: float | None = None, detail: str = "") -> dict[str, Any]:
    times = [median] if median is not None else []
    return {"status": status, "times": times, "detail": detail, "median": median}


def _data(satchel_install: dict[str, Any] | None = None) -> dict[str, Any]:
    rows = {
        "ping": {"satchel": _tool("ok", 0.012), "python": _tool("ok", 0.008)},
        "resolve": {
            "satchel": _tool("ok", 0.020),
            "uv": _tool("ok", 0.010),
            "pip": _tool("ok", 0.400),
        },
        "install": {
            "satchel": satchel_install or _tool("ok", 0.100),
            "uv": _tool("ok", 0.200),
            "pip": _tool("ok", 2.000),
        },
    }
    return {
        "machine": {"cpu": "Test CPU", "cores": "2"},
        "config": {"runs": 5, "compile": False, "quick": False, "sets": ["small"]},
        "sets": {
            name: {
                "wheels": 7,
                "bytes": 600_000,
                "rows": copy.deepcopy(rows),
                "tool": None,
                "daemon_peak_rss_kib": 51200,
                "notes": {},
            }
            for name in ("small", "medium", "large")
        },
    }


def _line(md: str, *needles: str) -> str:
    return next(ln for ln in md.splitlines() if all(n in ln for n in needles))


def test_seconds_are_shown_in_ms_below_one_second() -> None:
    assert (format_seconds(0.0123), format_seconds(0.0042), format_seconds(2.5)) == (
        "12 ms",
        "4.2 ms",
        "2.50 s",
    )


def test_row_shows_medians_and_both_ratios() -> None:
    md = render_markdown(_data(), "")
    assert _line(md, "| small | resolve") == (
        "| small | resolve offline, warm | 20 ms | 10 ms | 400 ms | 2.00x | 2.00x | 0.05x |"
    )


def test_ping_ratio_is_against_the_bare_interpreter() -> None:
    md = render_markdown(_data(), "")
    assert _line(md, "| medium | 12 ms") == "| medium | 12 ms | 8.0 ms | 1.50x |"


def test_the_header_says_whether_each_trial_started_after_a_sync() -> None:
    data = _data()
    assert "untimed `sync`" not in render_markdown(data, "")
    data["config"]["sync_before_trial"] = True
    assert "tools alternating within each round, each trial after an untimed `sync`." in (
        render_markdown(data, "")
    )


def test_complete_run_is_not_marked_partial() -> None:
    assert "Partial run" not in render_markdown(_data(), "")


def test_unimplemented_satchel_row_reads_na_and_marks_the_run_partial() -> None:
    md = render_markdown(_data(_tool("n/a", detail="not implemented: unknown command")), "")
    row = _line(md, "| small | install")
    assert "n/a (not implemented)" in row
    assert row.endswith("| - | - | - |")
    assert "Satchel has no figure yet for: install" in _line(md, "Partial run")


def test_a_failure_is_footnoted_with_its_detail() -> None:
    md = render_markdown(_data(_tool("failed", detail="ENOSPC while unpacking")), "")
    assert "failed [1]" in _line(md, "| small | install")
    assert "1. ENOSPC while unpacking" in md


def test_missing_sets_are_named_in_the_partial_marker() -> None:
    data = _data()
    del data["sets"]["large"]
    assert "sets not run: large" in _line(render_markdown(data, ""), "Partial run")


def test_daemon_memory_is_reported_in_mib() -> None:
    assert "| large | 50.0 MiB |" in render_markdown(_data(), "")


def test_scrub_replaces_machine_paths_everywhere() -> None:
    value = {"a": ["/work/x/sb-1/t/venv failed", {"b": "/home/u/.cache"}]}
    scrub(value, {"/work/x/sb-1": "<work>", "/home/u": "~"})
    assert value == {"a": ["<work>/t/venv failed", {"b": "~/.cache"}]}


def test_machine_description_names_no_path() -> None:
    machine = describe_machine()
    assert {"cpu", "cores", "memory", "python", "uv", "pip", "date", "kernel"} <= set(machine)
    assert not any("/" in v and " from " in v for v in machine.values())
    assert "/" not in machine["pip"]


def test_render_writes_markdown_and_a_png_chart(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    md, png = tmp_path / "b.md", tmp_path / "b.png"
    render(_data(), md, png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "![ratio chart](b.png)" in md.read_text()


def test_hand_written_findings_are_appended(tmp_path: Path) -> None:
    findings = tmp_path / "findings.md"
    findings.write_text("Resolve: the client's argparse import is 5 ms of the gap.\n")
    md = tmp_path / "b.md"
    render(_data(), md, tmp_path / "b.png", findings)
    text = md.read_text()
    assert "## Findings" in text
    assert "argparse import is 5 ms" in text


def _with_issue_rows() -> dict[str, Any]:
    data = _data()
    data["config"]["latency_ms"] = 20.0
    small = data["sets"]["small"]
    counts = {"pages": 23, "metadata": 7, "files": 7, "other": 0, "bytes": 600_000}
    small["rows"]["prefetch_slow"] = {
        "satchel": {**_tool("ok", 0.300), "counts": [counts, {**counts, "pages": 25}, counts]},
        "uv": {**_tool("ok", 0.400), "counts": [{**counts, "pages": 7}]},
    }
    small["probes"] = {
        "installed_files": {"satchel": 200, "uv": 200},
        "pages": {
            "satchel": {"p50_ms": 0.45, "p99_ms": 2.0},
            "static": {"p50_ms": 0.16, "p99_ms": 0.3},
            "upstream_during_satchel": {"pages": 0, "metadata": 0},
            "requests": 1000,
        },
        "ping_load": {
            "idle": {"p50_ms": 0.3, "p99_ms": 1.2},
            "loaded": {"p50_ms": 0.5, "p99_ms": 12.5},
            "load": {"resolves": 40, "failures": 0, "exhausted": False},
        },
        "memory": {
            "operations": 250, "resolves": 125, "installs": 125, "distinct_resolve_results": 60,
            "rss_before_kib": 51200, "rss_after_kib": 102400, "peak_after_kib": 110000,
            "growth_kib_per_operation": 204.8,
        },
    }  # fmt: skip
    return data


def test_slow_network_column_and_request_counts_side_by_side() -> None:
    md = render_markdown(_with_issue_rows(), "")
    assert _line(md, "| small | prefetch cold, +20.0 ms per index request") == (
        "| small | prefetch cold, +20.0 ms per index request | 300 ms | 400 ms | - | 0.75x | 0.75x "
        "| - |"
    )
    assert _line(md, "| small | prefetch cold, +20.0 ms | satchel") == (
        "| small | prefetch cold, +20.0 ms | satchel | 23 | 7 | 7 | 0.6 MB |"
    )
    assert "| small | prefetch cold, +20.0 ms | uv | 7 | 7 | 7 | 0.6 MB |" in md


def test_install_per_file_pages_ping_under_load_and_memory_rows() -> None:
    md = render_markdown(_with_issue_rows(), "")
    assert _line(md, "| small | 200 |") == (
        "| small | 200 | 500.0 us | 1000.0 us | 10000.0 us | 0.50x |"
    )
    assert "| small | 0.450 ms | 2.000 ms | 0.160 ms | 0.300 ms |" in md
    assert "| small | 0.30 ms | 1.20 ms | 0.50 ms | 12.50 ms | 40 |" in md
    assert _line(md, "| small | 250 (125 + 125)") == (
        "| small | 250 (125 + 125) | 60 | 50.0 MiB | 100.0 MiB | 107.4 MiB | 204.8 KiB |"
    )


def test_the_pip_bar_is_ten_times_faster() -> None:
    assert ">= 10x faster than pip" in render_markdown(_data(), "")


def test_the_paired_ratio_is_the_median_of_each_rounds_ratio() -> None:
    data = _data()
    data["sets"]["small"]["rows"]["resolve"] = {
        "satchel": {"status": "ok", "times": [0.02, 0.04, 0.03], "detail": "", "median": 0.03},
        "uv": {"status": "ok", "times": [0.01, 0.04, 0.06], "detail": "", "median": 0.04},
    }
    row = _line(render_markdown(data, ""), "| small | resolve offline, warm")
    assert "| 0.75x | 1.00x |" in row  # medians 30/40; rounds 2.0, 1.0, 0.5 -> 1.0
