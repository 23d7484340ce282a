"""Input files the daemon reads are bounded and must be regular files (issue 11.13).

``satchel resolve -r /dev/zero`` once had the daemon read without end (23.5 GB, then the OOM
killer). With a real daemon: every kind of input file (requirements, constraints,
pyproject.toml, pylock.toml, uv.lock through `watch add`) given as ``/dev/zero``, a FIFO nobody
writes to, a directory, or a regular file over the 16 MiB limit is refused with a message naming
the file and the cause, quickly (a FIFO would otherwise block forever), and the daemon's peak
resident memory stays small.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.reliability.harness import Rig, memory_mib, rig_for

#: The daemon's cap (satchel.daemon.resolver.reqfiles.MAX_INPUT_BYTES).
LIMIT = 16 * 2**20
#: Peak resident memory the daemon may reach while refusing all of them.
PEAK_LIMIT_MIB = 150


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    yield from rig_for(tmp_path)


def _make(kind: str, directory: Path, name: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    if kind == "dev-zero":
        path.symlink_to("/dev/zero")
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        path.mkdir()
    elif kind == "good":
        path.write_text("\n")
    else:  # too large: valid text, one byte over the limit
        line = b"# padding of a huge but otherwise harmless input file\n"
        with path.open("wb") as handle:
            handle.write(line * (LIMIT // len(line)) + b"#" * (LIMIT % len(line) + 1))
    return path


KINDS = {
    "dev-zero": "not a regular file",
    "fifo": "not a regular file",
    "directory": "a directory",
    "too-large": "larger than the 16 MiB input limit",
}
FILES = {
    "requirements": ("requirements.txt", ("-r",)),
    "constraints": ("constraints.txt", ("-c",)),
    "pyproject": ("pyproject.toml", ("-r",)),
    "pylock": ("pylock.toml", ("-r",)),
}


@pytest.mark.parametrize("kind", list(KINDS))
def test_hostile_input_files_are_refused_naming_the_file(rig: Rig, kind: str) -> None:
    """issue 11.13: /dev/zero, a FIFO, a directory, a 16 MiB + 1 file, as every input."""
    pid = rig.daemon_pid()
    outcomes = []
    for role, (name, flag) in FILES.items():
        path = _make(kind, rig.root / f"{kind}-{role}", name)
        extra = (
            ["-r", str(_make("good", rig.root / "ok", "req.txt"))] if role == "constraints" else []
        )
        result = rig.satchel("resolve", *extra, *flag, str(path), timeout=60)
        outcomes.append(f"{role}: exit {result.returncode}: {result.stderr.strip()}")
        assert result.returncode == 2, result.stderr
        assert str(path) in result.stderr, result.stderr
        assert KINDS[kind] in result.stderr, result.stderr
        assert "internal" not in result.stderr
    peak = memory_mib(pid)
    print(f"\n{kind}: daemon peak {peak:.0f} MiB\n  " + "\n  ".join(outcomes))
    assert peak < PEAK_LIMIT_MIB
    assert rig.daemon_pid() == pid, "the daemon was replaced"


def test_watch_add_of_a_fifo_lock_is_refused(rig: Rig) -> None:
    """issue 11.13: a watched ``uv.lock`` is read bounded and checked the same way (a FIFO
    inside a watched directory is not an input at all: only regular files are discovered)."""
    project = rig.root / "project"
    project.mkdir()
    os.mkfifo(project / "uv.lock")
    result = rig.satchel("watch", "add", str(project / "uv.lock"), timeout=60)
    print(f"\nwatch add of a FIFO uv.lock: exit {result.returncode}: {result.stderr.strip()}")
    deadline = time.monotonic() + 60  # a hang guard, not a measurement
    while "not a regular file" not in (listed := rig.ok("watch", "list").stdout):
        if time.monotonic() > deadline:
            break  # the assertion below says what is missing
        time.sleep(0.1)  # polling the daemon's watch list: there is no event to wait on
    print(listed)
    assert "uv.lock" in listed and "not a regular file" in listed
    rig.ok("ping")
