"""Exit records: written on exit, crash detected at the next start, reported once."""

from __future__ import annotations

import json
import os
from pathlib import Path

from satchel.daemon.services.state import CRASHED, ExitRecorder


def test_clean_exit_is_reported_once_by_the_next_run(tmp_path: Path) -> None:
    first = ExitRecorder(tmp_path)
    first.start(100.0)
    first.record_exit("sigterm", "received SIGTERM")
    assert not (tmp_path / "running.json").exists()

    second = ExitRecorder(tmp_path)
    second.start(200.0)
    previous = second.take_previous()
    assert previous is not None
    assert (previous.reason, previous.message, previous.pid) == (
        "sigterm",
        "received SIGTERM",
        os.getpid(),
    )
    assert previous.clean and previous.exit_code == 0
    assert second.take_previous() is None
    assert ExitRecorder(tmp_path).take_previous() is None  # the file is gone too


def test_a_run_without_exit_record_is_reported_as_a_crash(tmp_path: Path) -> None:
    (tmp_path / "running.json").write_text(json.dumps({"pid": 4242, "started_at": 1.0}))
    recorder = ExitRecorder(tmp_path)
    recorder.start(2.0)
    previous = recorder.take_previous()
    assert previous is not None
    assert previous.reason == CRASHED
    assert previous.message == "crashed (no clean exit recorded)"
    assert previous.pid == 4242
    assert not previous.clean
    assert previous.exit_code is None
    # And this run is now the one marked running.
    assert json.loads((tmp_path / "running.json").read_text())["pid"] == os.getpid()


def test_a_crash_replaces_an_older_unreported_record(tmp_path: Path) -> None:
    first = ExitRecorder(tmp_path)
    first.start(1.0)
    first.record_exit("idle-timeout")
    second = ExitRecorder(tmp_path)
    second.start(2.0)  # never records its exit: killed
    third = ExitRecorder(tmp_path)
    third.start(3.0)
    previous = third.take_previous()
    assert previous is not None and previous.reason == CRASHED


def test_unreadable_records_are_ignored(tmp_path: Path) -> None:
    (tmp_path / "last-exit.json").write_text("{not json")
    (tmp_path / "running.json").write_text("[]")
    recorder = ExitRecorder(tmp_path)
    recorder.start(1.0)
    assert recorder.take_previous() is None
