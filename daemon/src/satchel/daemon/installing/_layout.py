"""An environment's layout: where each wheel scheme lands, the names in it that are not a
wheel's to take, and the lock that serialises installs into it.

The environment is written by the wheels installed into it, so the names Satchel and the venv
itself own are refused as install destinations (`reserved_destination`): the lock, the trash
directories, ``pyvenv.cfg``, and in the scripts directory the interpreter's and the activate
scripts' names. A wheel may neither replace the venv's ``python`` by an entry point nor plant
anything Satchel would later act on.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "LOCK_NAME",
    "SCHEME_FIELDS",
    "Scheme",
    "env_lock",
    "reserved_candidates",
    "reserved_destination",
]

LOCK_NAME = ".satchel.lock"
#: Every name at the environment's root that starts with this is Satchel's (the lock, the trash
#: directories, and whatever a later version adds): no wheel may put a file there.
_OWN_PREFIX = ".satchel"
#: Names in the scripts directory that the venv itself owns (the interpreter and its aliases,
#: ``python3.11``, ``pypy3``, ``pythonw``; the activate scripts of every shell).
_VENV_SCRIPTS = re.compile(
    r"(?:python|pypy)[0-9.]*w?|activate(?:\..*)?|Activate\.ps1|deactivate(?:\..*)?",
    re.IGNORECASE,
)
SCHEME_FIELDS = ("purelib", "platlib", "scripts", "data", "headers", "interpreter")


@dataclass(frozen=True)
class Scheme:
    """Where each wheel scheme lands in one environment, and the interpreter for launchers.

    *data* is the environment's prefix (``sys.prefix``): the lock, the trash and the "inside the
    environment" boundary are all relative to it. *headers* is the root under which each
    distribution's headers go into ``<headers>/<project>/`` (as pip does for a venv).
    """

    purelib: Path
    platlib: Path
    scripts: Path
    data: Path
    headers: Path
    interpreter: Path

    def directory(self, scheme: str) -> str:
        path: Path = getattr(self, scheme)
        return os.fspath(path)

    def fields(self) -> dict[str, str]:
        """Every path as a string (what a journal records to rebuild the scheme)."""
        return {name: os.fspath(getattr(self, name)) for name in SCHEME_FIELDS}


def reserved_destination(scheme: Scheme, path: str) -> str | None:
    """Why *path* (normalised, absolute) may not be written by a wheel, or None when it may.

    A wheel's ``.data/data/`` files land under the environment's root, its ``.data/scripts/``
    files and entry points in the scripts directory: neither may take, or put anything under,
    a name of Satchel's or the venv's.
    """
    prefix = os.path.normpath(scheme.data) + "/"
    if path.startswith(prefix):
        first = path[len(prefix) :].split("/", 1)[0]
        if first.startswith(_OWN_PREFIX):
            return f"{first!r} at the environment's root is reserved for Satchel's own files"
        if first == "pyvenv.cfg":
            return "'pyvenv.cfg' is the venv's own configuration"
    scripts = os.path.normpath(scheme.scripts) + "/"
    if path.startswith(scripts):
        name = path[len(scripts) :]
        if "/" not in name and _VENV_SCRIPTS.fullmatch(name):
            return f"{name!r} in the scripts directory belongs to the venv itself"
    return None


def reserved_candidates(scheme: Scheme) -> tuple[str, ...]:
    """Prefixes that every path `reserved_destination` refuses starts with (a cheap filter:
    one ``startswith`` per file of an install)."""
    prefix = os.path.normpath(scheme.data) + "/"
    return (prefix + _OWN_PREFIX, prefix + "pyvenv.cfg", os.path.normpath(scheme.scripts) + "/")


@contextlib.contextmanager
def env_lock(scheme: Scheme) -> Iterator[None]:
    """Hold the environment's install lock (blocking: callers run in a worker thread)."""
    scheme.data.mkdir(parents=True, exist_ok=True)
    # O_NOFOLLOW: the lock is never a symlink we would create a file through.
    fd = os.open(scheme.data / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the flock
