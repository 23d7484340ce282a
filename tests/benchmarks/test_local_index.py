"""The pure parts of ``benchmarks/local_index.py``: percentiles, page parsing, the table.

Nothing is installed or timed here: the servers and timings only exist in a real run.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from benchmarks.local_index import (
    Target,
    _file_urls,
    percentile,
    render_markdown,
    summarize_latency,
)


def test_percentile_of_odd_count_is_the_middle_value() -> None:
    assert percentile([5.0, 1.0, 3.0], 0.5) == 3.0


def test_percentile_interpolates_between_closest_ranks() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert percentile(list(map(float, range(101))), 0.99) == pytest.approx(99.0)
    assert percentile([0.0, 10.0], 0.99) == pytest.approx(9.9)


def test_percentile_bounds_are_min_and_max() -> None:
    values = [4.0, 2.0, 9.0, 7.0]
    assert percentile(values, 0.0) == 2.0
    assert percentile(values, 1.0) == 9.0


def test_percentile_rejects_empty_input_and_bad_q() -> None:
    with pytest.raises(ValueError, match="no values"):
        percentile([], 0.5)
    with pytest.raises(ValueError, match="within"):
        percentile([1.0], 1.5)


def test_summarize_latency_reports_milliseconds() -> None:
    summary = summarize_latency([0.001] * 99 + [0.011])
    assert summary["p50_ms"] == pytest.approx(1.0)
    assert summary["p99_ms"] == pytest.approx(1.1)
    assert summary["n"] == 100


def test_target_moves_url_credentials_into_an_authorization_header() -> None:
    target = Target.from_url("http://satchel:tok@127.0.0.1:7340/simple/")
    assert target.url == "http://127.0.0.1:7340/simple/"
    assert target.headers == {"Authorization": "Basic c2F0Y2hlbDp0b2s="}


def test_file_urls_resolve_relative_links_and_drop_fragments() -> None:
    page = "http://127.0.0.1:1/simple/a/"
    html = b'<a href="../../files/a-1-py3-none-any.whl#sha256=ab" data-x="y">a</a>'
    doc = json.dumps({"files": [{"url": "/f/a-1.whl#sha256=cd"}]}).encode()
    assert _file_urls(page, "text/html", html) == ["http://127.0.0.1:1/files/a-1-py3-none-any.whl"]
    assert _file_urls(page, "application/vnd.pypi.simple.v1+json", doc) == [
        "http://127.0.0.1:1/f/a-1.whl"
    ]


def _data(**servers: dict[str, Any]) -> dict[str, Any]:
    return {
        "machine": {"cores": "2", "cpu": "cpu", "date": "d"},
        "config": {
            "set": "large",
            "wheels": 112,
            "bytes": 155_000_000,
            "requests": 2000,
            "threads": 8,
            "runs": 3,
            "load_start": "0.50 0.40 0.30",
            "load_end": "1.00 0.90 0.80",
        },
        "servers": servers,
        "peers": {"versions": "proxpi 1"},
    }


def test_table_has_one_row_per_server_with_ratio_to_direct() -> None:
    ok = {"latency": {"p50_ms": 0.25, "p99_ms": 1.5}, "page_type": "json"}
    text = render_markdown(
        _data(
            satchel={**ok, "throughput_mb_s": 900.0, "uv_median": 10.5},
            static={**ok, "throughput_mb_s": 1000.0, "uv_median": 10.0},
        )
    )
    assert "## Local index" in text
    assert (
        "| Satchel local index | 0.250 ms | 1.50 ms | json | 900 MB/s | 10.50 s | 1.05x |" in text
    )
    assert "| static index (floor / direct) |" in text and "| 1.00x |" in text
    assert "0.50 0.40 0.30 / 1.00 0.90 0.80" in text


def test_unavailable_server_gets_a_numbered_reason() -> None:
    text = render_markdown(
        _data(devpi={"error": "could not install: boom"}, static={"uv_median": 1.0})
    )
    assert "| devpi-server | unavailable [1] |" in text
    assert "1. devpi-server: could not install: boom" in text


def test_partial_failure_is_listed_under_the_table() -> None:
    text = render_markdown(
        _data(proxpi={"latency": {"p50_ms": 0.5, "p99_ms": 0.7}, "uv_error": "exit 2"})
    )
    assert "| proxpi | 0.500 ms | 0.700 ms |" in text
    assert "proxpi (uv): exit 2" in text
