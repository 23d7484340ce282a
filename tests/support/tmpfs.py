"""A small tmpfs for disk-full tests (needs root and mount permission; skips the test otherwise).

Why a real file system instead of monkeypatching `os.write`: ENOSPC then arrives wherever the
kernel decides (write, fsync, mkdir, SQLite's own I/O), which is what the code must survive.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

__all__ = ["small_tmpfs"]


@contextlib.contextmanager
def small_tmpfs(directory: Path, size: str) -> Iterator[Path]:
    """Mount a tmpfs of *size* (e.g. ``"1m"``) on *directory* for the duration of the block."""
    directory.mkdir(parents=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(directory)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield directory
    finally:
        subprocess.run(["umount", "-l", str(directory)], check=False)
