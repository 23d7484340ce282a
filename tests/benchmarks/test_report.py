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
        "| small | resolve offline, warm | 20 ms | 10 ms | 400 ms | 2.00x | 0.05x |"
    )


def test_ping_ratio_is_against_the_bare_interpreter() -> None:
    md = render_markdown(_data(), "")
    assert _line(md, "| medium | 12 ms") == "| medium | 12 ms | 8.0 ms | 1.50x |"


def test_complete_run_is_not_marked_partial() -> None:
    assert "Partial run" not in render_markdown(_data(), "")


def test_unimplemented_satchel_row_reads_na_and_marks_the_run_partial() -> None:
    md = render_markdown(_data(_tool("n/a", detail="not implemented: unknown command")), "")
    row = _line(md, "| small | install")
    assert "n/a (not implemented)" in row
    assert row.endswith("| - | - |")
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
