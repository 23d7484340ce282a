"""Removing an installed distribution through its own RECORD, and never anything else.

RECORD is written by whoever installed the distribution, which may be a hostile wheel's build
or a confused tool, so its entries are treated as claims: an entry is removed only when its
normalised path lies inside the environment *and* its directory, symlinks resolved, does too
(a symlinked directory cannot lead an uninstall out); directories are never taken on RECORD's
word; entries outside are reported, not touched. Bytecode of removed ``.py`` files goes too.
"""

# Per-file string paths and os calls on purpose (thousands of RECORD entries per removal).
# ruff: noqa: PTH106, PTH118, PTH120, PTH208

from __future__ import annotations

import csv
import io
import os
import stat
from pathlib import Path

from satchel.daemon.errors import InstallError

__all__ = ["MAX_RECORD", "Inside", "prune_empty", "removal_paths"]

#: Largest installed RECORD read (as a wheel's own RECORD in `wheelfile`): another tool may
#: have written it, or left a link to something endless in its place.
MAX_RECORD = 64 * 1024 * 1024


class Inside:
    """Is a path inside the environment, without following symlinked directories out?"""

    def __init__(self, prefix: str) -> None:
        self.prefix = os.path.normpath(prefix)
        self.real = os.path.realpath(prefix)
        self._dirs: dict[str, bool] = {}

    def __call__(self, path: str) -> bool:
        if not path.startswith(self.prefix + os.sep):
            return False
        parent = os.path.dirname(path)
        ok = self._dirs.get(parent)
        if ok is None:
            real = os.path.realpath(parent)
            ok = real == self.real or real.startswith(self.real + os.sep)
            self._dirs[parent] = ok
        return ok


def removal_paths(dist_info: Path, inside: Inside, outside: list[str]) -> list[str]:
    """The files to remove for one installed distribution, per its RECORD, plus its bytecode."""
    base = os.fspath(dist_info.parent)
    paths: list[str] = [os.fspath(dist_info)]
    di_prefix = os.fspath(dist_info) + os.sep
    record = dist_info / "RECORD"
    try:
        with record.open("rb") as f:
            data = f.read(MAX_RECORD + 1)
        if len(data) > MAX_RECORD:
            raise InstallError(f"{record} is larger than {MAX_RECORD} bytes: not a RECORD")
        rows = list(csv.reader(io.StringIO(data.decode("utf-8"))))
    except FileNotFoundError:
        return paths
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InstallError(
            f"cannot read {record} ({exc}): fix or remove it, then install again",
            details={"path": str(record)},
        ) from None
    py_dirs: dict[str, list[str]] = {}
    for row in rows:
        if not row or not row[0]:
            continue
        full = os.path.normpath(os.path.join(base, row[0]))
        if full.startswith(di_prefix):
            continue  # the dist-info directory moves as one
        if not inside(full):
            outside.append(row[0])
            continue
        try:
            if stat.S_ISDIR(os.lstat(full).st_mode):
                continue  # RECORD lists files; never take a whole directory on its word
        except FileNotFoundError:
            continue
        paths.append(full)
        if full.endswith(".py"):
            directory, name = os.path.split(full)
            py_dirs.setdefault(directory, []).append(name[:-3])
    for directory, stems in py_dirs.items():
        cache = os.path.join(directory, "__pycache__")
        try:
            cached = os.listdir(cache)
        except (FileNotFoundError, NotADirectoryError):
            continue
        wanted = set(stems)
        for entry in cached:
            if entry.endswith(".pyc") and entry.split(".", 1)[0] in wanted:
                paths.append(os.path.join(cache, entry))
    return list(dict.fromkeys(paths))  # RECORD may list the .pyc too


def prune_empty(dirs: set[str], stops: set[str], prefix: str) -> None:
    """Remove directories emptied by an uninstall, never a scheme root nor anything outside."""
    for directory in sorted(dirs, key=len, reverse=True):
        current = directory
        while current not in stops and current.startswith(prefix + "/"):
            try:
                os.rmdir(current)
            except OSError:
                break
            current = os.path.dirname(current)
