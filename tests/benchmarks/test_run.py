"""The harness's timing loop: failures degrade to n/a or failed, the run goes on, rounds alternate.

Real processes (small ``python -c`` programs), no timing assertions.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from benchmarks.run import Bench, SatchelInstance, Trial, classify, tool_env
from satchel.daemon.config import load_config


def _py(code: str) -> list[str]:
    return [sys.executable, "-c", code]


UNKNOWN = (
    "import sys; print(\"satchel: error: unknown command 'resolve'\", file=sys.stderr); sys.exit(2)"
)


def test_unknown_command_is_classified_as_not_implemented() -> None:
    status, detail = classify("usage: satchel ...\nsatchel: error: unknown command 'resolve'\n")
    assert status == "n/a"
    assert "unknown command 'resolve'" in detail


def test_missing_daemon_module_is_classified_as_not_implemented() -> None:
    assert classify("ModuleNotFoundError: No module named 'satchel.daemon.main'")[0] == "n/a"


def test_other_failures_keep_their_last_line() -> None:
    assert classify("Traceback ...\nOSError: [Errno 28] No space left\n") == (
        "failed",
        "OSError: [Errno 28] No space left",
    )


def test_tool_env_drops_user_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple/")
    monkeypatch.setenv("UV_INDEX_URL", "http://127.0.0.1:9/simple/")
    monkeypatch.setenv("XDG_CONFIG_HOME", "/nonexistent")
    env = tool_env()
    assert "PIP_INDEX_URL" not in env
    assert "UV_INDEX_URL" not in env
    assert "XDG_CONFIG_HOME" not in env
    assert env["PIP_CONFIG_FILE"]


def test_measure_records_every_timed_run_and_degrades_the_unimplemented_tool(
    tmp_path: Path,
) -> None:
    bench = Bench(tmp_path, "http://127.0.0.1:9/simple/", runs=3, compile_bytecode=False)
    log = tmp_path / "order.log"
    results = bench.measure(
        {
            "a": lambda _t: Trial([_py(f"open({str(log)!r}, 'a').write('a')")], bench.env),
            "b": lambda _t: Trial([_py(f"open({str(log)!r}, 'a').write('b')")], bench.env),
            "satchel": lambda _t: Trial([_py(UNKNOWN)], bench.env),
        }
    )
    assert (results["a"].status, len(results["a"].times)) == ("ok", 3)
    assert (results["b"].status, len(results["b"].times)) == ("ok", 3)
    assert results["satchel"].status == "n/a"
    assert results["satchel"].median is None
    # one warm-up round plus three timed rounds, the starting tool rotating every round
    assert log.read_text() == "ab" + "ba" + "ab" + "ba"


def test_a_command_failing_midway_marks_the_tool_failed(tmp_path: Path) -> None:
    bench = Bench(tmp_path, "http://127.0.0.1:9/simple/", runs=2, compile_bytecode=False)
    results = bench.measure(
        {"pip": lambda _t: Trial([_py("pass"), _py("raise SystemExit('disk full')")], bench.env)}
    )
    assert (results["pip"].status, results["pip"].detail) == ("failed", "disk full")


def test_trials_get_fresh_directories_and_clean_up_untimed(tmp_path: Path) -> None:
    bench = Bench(tmp_path, "http://127.0.0.1:9/simple/", runs=2, compile_bytecode=False)
    made: list[Path] = []
    cleaned: list[int] = []

    def contender(_t: str) -> Trial:
        made.append(bench.fresh("x"))
        return Trial([_py("pass")], bench.env, cleanup=lambda: cleaned.append(1))

    bench.measure({"x": contender})
    assert len(set(made)) == 3
    assert all(p.is_dir() for p in made)
    assert len(cleaned) == 3


def test_each_satchel_instance_is_configured_with_only_the_loopback_index(tmp_path: Path) -> None:
    """Checked with the daemon's own parser: the file must mean what the harness thinks it means."""
    inst = SatchelInstance(tmp_path / "s")
    inst.write_config("http://127.0.0.1:9/simple/")
    config = load_config(tmp_path / "s" / "f" / "satchel" / "config.toml")
    assert [(i.name, i.url) for i in config.indexes] == [("bench", "http://127.0.0.1:9/simple/")]
    assert config.settings.local_index_port == 0
