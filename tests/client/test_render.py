"""`satchel status` output: readable, complete, tolerant of fields it does not know."""

from __future__ import annotations

import time
from typing import Any

from satchel.client.render import format_duration, format_status


def status(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "pid": 4242,
        "version": "0.1.0",
        "build_id": "0.1.0+0badc0de",
        "protocol": "1.0",
        "started_at": time.time() - 3725,
        "uptime": 3725.0,
        "socket": "/run/user/1000/satchel/satchel.sock",
        "cache_dir": "/c/satchel",
        "config_dir": "/cfg/satchel",
        "state_dir": "/st/satchel",
        "log_file": "/st/satchel/satcheld.log",
        "activation": "autostart",
        "idle_timeout": 900.0,
        "jobs": [],
        "previous_exit": None,
        "config_error": None,
    }
    base.update(overrides)
    return base


def lines(text: str) -> dict[str, str]:
    return {k.strip(): v.strip() for k, _, v in (x.partition(":") for x in text.splitlines())}


def test_durations_read_like_a_person_would_say_them() -> None:
    assert format_duration(4.25) == "4.2s"
    assert format_duration(3725) == "1h 2m 5s"
    assert format_duration(2 * 86400 + 60) == "2d 1m"


def test_status_shows_identity_paths_activation_and_uptime() -> None:
    shown = lines(format_status(status()))
    assert shown["pid"] == "4242"
    assert shown["activation"] == "autostart"
    assert shown["uptime"] == "1h 2m 5s"
    assert shown["idle timeout"] == "after 15m"
    assert shown["socket"] == "/run/user/1000/satchel/satchel.sock"
    assert shown["cache dir"] == "/c/satchel"
    assert shown["jobs"] == "none"
    assert shown["config error"] == "none"


def test_status_lists_the_first_fields_in_reading_order() -> None:
    text = format_status(status())
    assert text.splitlines()[0].startswith("pid:")
    assert text.index("socket:") < text.index("jobs:") < text.index("previous exit:")


def test_previous_exit_says_whether_it_was_clean_and_why() -> None:
    record = {"pid": 77, "reason": "killed: no exit recorded", "at": time.time(), "clean": False}
    shown = lines(format_status(status(previous_exit=record)))
    assert shown["previous exit"].startswith("pid 77 ended at ")
    assert "(unclean)" in shown["previous exit"]
    assert shown["previous exit"].endswith("killed: no exit recorded")


def test_running_jobs_are_listed_one_per_line() -> None:
    jobs = [
        {"id": 3, "method": "prefetch", "started_at": time.time() - 5, "description": "numpy"},
        {"id": 4, "method": "resolve", "started_at": time.time()},
    ]
    text = format_status(status(jobs=jobs))
    assert "#3 prefetch (numpy), running 5." in text
    assert "#4 resolve, running" in text


def test_a_service_managed_daemon_logs_to_stderr_and_never_idles_out() -> None:
    shown = lines(format_status(status(log_file=None, idle_timeout=None, activation="systemd")))
    assert shown["log file"] == "stderr (service manager)"
    assert shown["idle timeout"] == "never (stays up)"


def test_fields_added_by_a_newer_daemon_are_shown_not_dropped() -> None:
    text = format_status(status(watched_projects=["/src/a", "/src/b"], store={"blobs": 12}))
    assert "watched projects: /src/a, /src/b" in text
    assert "blobs: 12" in text


def test_status_shows_one_line_per_index_with_its_state() -> None:
    text = format_status(
        {
            "indexes": [
                {"name": "internal", "url": "http://127.0.0.1:1/simple/", "state": "online"},
                {
                    "name": "default",
                    "url": "http://127.0.0.1:2/simple/",
                    "state": "offline",
                    "reason": "connection refused",
                    "offline_since": None,
                },
            ]
        }
    )
    lines = text.splitlines()
    assert lines[0] == "indexes:"
    assert lines[1].strip() == "internal  http://127.0.0.1:1/simple/  online"
    assert lines[2].strip() == "default  http://127.0.0.1:2/simple/  offline (connection refused)"
