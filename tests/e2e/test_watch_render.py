"""How `satchel watch list`, `ready` and `cache prune` put the daemon's answers into words."""

from __future__ import annotations

import argparse

import pytest

from satchel.client.commands.cache import format_prune, parse_duration, parse_size
from satchel.client.commands.ready import format_ready
from satchel.client.commands.watch import format_project


def test_sizes_and_durations_take_the_units_config_toml_takes() -> None:
    assert parse_size("1") == 1
    assert parse_size("500MB") == 500 * 10**6
    assert parse_size("1.5 GiB") == int(1.5 * 2**30)
    assert parse_duration("90d") == 90 * 86400
    assert parse_duration("12h") == 12 * 3600
    with pytest.raises(argparse.ArgumentTypeError, match="not a size"):
        parse_size("lots")


def test_ready_summarises_in_one_line_and_lists_exact_gaps() -> None:
    value = {
        "ready": False,
        "files": 3,
        "bytes": 2048,
        "entries": [
            {"kind": "project", "name": "/p/a", "ready": True, "gaps": []},
            {"kind": "project", "name": "/p/b", "ready": False, "gaps": ["alpha (alpha-1.whl)"]},
            {"kind": "tool", "name": "cowsay", "ready": True, "gaps": []},
        ],
    }
    lines = format_ready(value).splitlines()
    assert lines[0] == "NOT ready: 1/2 projects, 1/1 tools, 3 files, 2.0 KiB"
    assert lines[1:3] == ["project /p/b:", "  missing: alpha (alpha-1.whl)"]


def test_ready_with_nothing_watched_says_how_to_watch() -> None:
    text = format_ready({"ready": True, "files": 0, "bytes": 0, "entries": []})
    assert "satchel watch add" in text


def test_a_watched_project_shows_its_last_prefetch_and_what_is_missing() -> None:
    project = {
        "path": "/p/a",
        "sources": ["/p/a/requirements.txt"],
        "target": "/p/a/.venv/bin/python",
        "last_prefetch": {"at": 100.0, "ok": False, "message": "1 problem(s)", "bytes": 0},
        "missing": ["requirements.txt: no such project alpha"],
        "pending": False,
    }
    text = format_project(project, now=220.0)
    assert "inputs:   requirements.txt" in text
    assert "prefetch: FAILED 2m ago: 1 problem(s)" in text
    assert "missing:  requirements.txt: no such project alpha" in text


def test_prune_lists_each_file_and_what_it_freed() -> None:
    value = {
        "dry_run": True,
        "removed": [
            {"sha256": "a" * 64, "filename": "g-1.whl", "size": 1500, "reason": "size"},
        ],
        "freed_bytes": 1500,
        "total_after": 10,
        "protected": 1,
        "protected_bytes": 10,
        "max_size": 1,
        "max_age": None,
    }
    text = format_prune(value)
    assert "  g-1.whl  1.5 kB  (least recently used)" in text
    assert text.splitlines()[-1].startswith("would free 1.5 kB in 1 files;")
