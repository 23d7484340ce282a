"""`benchmarks/ping.py` runs end to end and reports both medians and their ratio."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.daemon import isolated_env

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "ping.py"


@pytest.mark.slow
def test_the_ping_benchmark_prints_medians_and_the_ratio(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(BENCHMARK), "--runs", "3"],
        env=isolated_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    # 0: within the 2.0x target, 1: over it (a loaded CI machine); anything else is a crash.
    assert result.returncode in (0, 1), result.stderr
    lines = dict(line.split(":", 1) for line in result.stdout.splitlines())
    bare = float(lines["python -c pass"].split()[0])
    ping = float(lines["satchel ping"].split()[0])
    ratio = float(lines["ratio"].split()[0].rstrip("x"))
    assert bare > 0
    assert ratio == pytest.approx(ping / bare, abs=0.01)
