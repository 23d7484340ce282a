"""Timing helpers shared by the benchmarks: whole processes, alternated, medians.

Why whole processes: what a user feels is process start + imports + work + exit; timing a
function inside a warm interpreter hides exactly the costs Satchel's client is designed around.
Why alternate: machine noise drifts over seconds (other jobs, CPU frequency, page cache), so
running A, B, A, B, ... exposes both to the same drift and keeps their *ratio* honest.
"""

from __future__ import annotations

import compileall
import os
import statistics
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path


def time_process(argv: Sequence[str], env: Mapping[str, str] | None = None) -> float:
    """Wall-clock seconds for one run of `argv`; raises if it fails (a failing run is no datum)."""
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv)} exited {done.returncode}: {done.stderr.decode(errors='replace')}"
        )
    return elapsed


def alternate(
    cases: Mapping[str, Sequence[str]],
    runs: int,
    env: Mapping[str, str] | None = None,
    warmup: int = 3,
) -> dict[str, list[float]]:
    """Run every case `runs` times, interleaved, after `warmup` untimed rounds; all samples."""
    for _ in range(warmup):
        for argv in cases.values():
            time_process(argv, env)
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(runs):
        for name, argv in cases.items():
            samples[name].append(time_process(argv, env))
    return samples


def median_ms(samples: Sequence[float]) -> float:
    return statistics.median(samples) * 1000


def ensure_bytecode(*package_dirs: Path) -> None:
    """Compile `.pyc` files next to the sources (editable workspace installs have none).

    uv compiles bytecode for what it installs into site-packages, but workspace members are
    installed editable: their sources stay in the checkout and, with PYTHONDONTWRITEBYTECODE=1,
    the interpreter never caches them, re-compiling every module on every run. A benchmark must
    measure the installed state a user gets (`uv tool install --compile-bytecode`), so compile.
    """
    for directory in package_dirs:
        compileall.compile_dir(str(directory), quiet=1)
    ensure_startup_bytecode()


#: Prints the file of every module an interpreter start has loaded (site, its .pth files).
_LOADED_AT_START = (
    "import sys\n"
    "for m in list(sys.modules.values()):\n"
    "    f = getattr(m, '__file__', None)\n"
    "    if f and f.endswith('.py'): print(f)\n"
)


def ensure_startup_bytecode(python: str | None = None) -> None:
    """Compile what the environment's ``site-packages`` makes every interpreter start load.

    The development environment holds setuptools (pip-tools needs it), whose
    ``distutils-precedence.pth`` imports ``_distutils_hack`` at every start; uv installs without
    bytecode and PYTHONDONTWRITEBYTECODE=1 keeps the interpreter from caching it, so each
    `satchel` (and `python -c pass`) recompiled it: ~2 ms that neither an installed client
    (`uv tool install --compile-bytecode`, no setuptools) nor uv pays. Only modules under a
    ``site-packages`` directory are compiled: the standard library has its own bytecode.
    """
    import sys

    done = subprocess.run(
        [python or sys.executable, "-c", _LOADED_AT_START],
        capture_output=True,
        text=True,
        check=True,
    )
    for line in done.stdout.splitlines():
        if "site-packages" in Path(line).parts:
            compileall.compile_file(line, quiet=1)


def machine() -> str:
    """One line describing where the numbers came from."""
    uname = os.uname()
    return f"{uname.sysname} {uname.release} {uname.machine}, {os.cpu_count()} CPUs"
