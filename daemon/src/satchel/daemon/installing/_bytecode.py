"""Byte-compile installed files in the *target* interpreter, and take bytecode back out.

Bytecode is specific to the interpreter that will import it, so it is compiled by that
interpreter (one subprocess per install, like ``uv pip install --compile-bytecode``), never by the
daemon's own. The subprocess compiles exactly the files just installed, with one process pool
across all of them. The .pyc files it writes are recorded in RECORD without a hash, as pip does
(they are derived and regenerated freely).
"""

# Per-file string paths and os calls on purpose (thousands of files per install).
# ruff: noqa: PTH106, PTH108, PTH110, PTH208

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path

from satchel.daemon.errors import InstallError
from satchel.daemon.installing.childenv import scrubbed_environ

__all__ = ["compile_files", "remove_bytecode"]

_COMPILE_SCRIPT = """
import compileall, functools, os, sys
files = sys.stdin.read().splitlines()
compile_one = functools.partial(compileall.compile_file, quiet=2)
workers = min(os.cpu_count() or 1, 8)
if workers > 1 and len(files) > 200:
    from concurrent.futures import ProcessPoolExecutor
    with ProcessPoolExecutor(workers) as pool:
        for _ in pool.map(compile_one, files, chunksize=64):
            pass
else:
    for path in files:
        compile_one(path)
print(sys.implementation.cache_tag)
"""


def compile_files(interpreter: Path, py_files: list[str]) -> list[str]:
    """Byte-compile in the target interpreter; return the .pyc paths that now exist.

    One interpreter process with one worker pool over exactly the files just installed
    (``compileall.compile_dir`` per package would start a pool per package). Files that do not
    compile (Python 2 leftovers in old wheels) are skipped, as pip and uv do.
    """
    if not py_files:
        return []
    result = subprocess.run(
        [os.fspath(interpreter), "-I", "-c", _COMPILE_SCRIPT],
        input="\n".join(py_files),
        capture_output=True,
        text=True,
        check=False,
        # The interpreter runs the .pth files just installed (code from an index): it sees an
        # allow-listed environment, no credential of the daemon (`childenv`).
        env=scrubbed_environ(),
    )
    tag = result.stdout.strip()
    if result.returncode != 0 or not tag:
        raise InstallError(f"byte-compiling failed: {result.stderr.strip()[-500:]}")
    compiled: list[str] = []
    for py in py_files:
        directory, name = os.path.split(py)
        pyc = f"{directory}/__pycache__/{name[:-3]}.{tag}.pyc"
        if os.path.exists(pyc):
            compiled.append(pyc)
    return compiled


def remove_bytecode(py_files: list[str]) -> None:
    """After a rollback: bytecode compiled into directories that existed before the install."""
    stems: dict[str, set[str]] = {}
    for py in py_files:
        directory, _, name = py.rpartition("/")
        stems.setdefault(directory + "/__pycache__", set()).add(name[:-3])
    for cache, names in stems.items():
        try:
            entries = os.listdir(cache)
        except (FileNotFoundError, NotADirectoryError):
            continue  # the directory was ours and went with the rollback
        for entry in entries:
            if entry.endswith(".pyc") and entry.split(".", 1)[0] in names:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(f"{cache}/{entry}")
        with contextlib.suppress(OSError):
            os.rmdir(cache)  # only succeeds when nothing else lives there
