"""The timing loop: failures degrade to n/a or failed, the run goes on, rounds alternate.

Real processes (small ``python -c`` programs), no timing assertions.
"""

from __future__ import annotations

import sys
from pathlib import Path

from benchmarks.harness import Trial
from benchmarks.run import Bench


def _py(code: str) -> list[str]:
    return [sys.executable, "-c", code]


UNKNOWN = (
    "import sys; print(\"satchel: error: unknown command 'resolve'\", file=sys.stderr); sys.exit(2)"
)


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


def test_a_requirements_file_alone_runs_only_its_set_and_never_overwrites_the_published_run(
    tmp_path: Path,
) -> None:
    from benchmarks.run import REPO, WORK_RESULTS, parse_args

    args = parse_args(["--requirements", str(tmp_path / "mine.txt")])
    assert args.sets == ""
    assert args.output == WORK_RESULTS / "benchmarks.json"
    quick = parse_args(["--quick"])
    assert (quick.sets, quick.runs, quick.output.parent) == ("small", 3, WORK_RESULTS)
    full = parse_args([])
    assert full.sets == "small,medium,large"
    assert full.output == REPO / "docs" / "benchmarks.json"
    assert full.latency_ms == 20.0


def test_every_trial_gets_its_own_counted_tag(tmp_path: Path) -> None:
    bench = Bench(tmp_path, "http://127.0.0.1:9/simple/", runs=1, compile_bytecode=False)
    tags = {bench.tag("uv") for _ in range(3)}
    assert len(tags) == 3
    assert all(url.endswith(f"/{tag}/simple/") for tag, url in tags)
    assert bench.index_url.endswith("/uvwarm/simple/")
