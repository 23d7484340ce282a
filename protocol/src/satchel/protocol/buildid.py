"""The build id: which exact code a client or daemon runs.

An autostarted daemon outlives the client that started it; after an upgrade or an edit in a
development checkout, the next client must notice that the daemon runs other code and restart it.
Both sides compute `build_id()` and exchange it in `Hello`/`Welcome`.

It is ``"<version>+<16 hex digits>"``, a hash of one of two descriptions of the code:

* **An installed wheel** (the three parts ``protocol``, ``client`` and ``daemon`` under one
  ``satchel`` directory, each with its ``satchel_<part>-<version>.dist-info/RECORD`` beside it):
  the RECORD lines of the parts' ``*.py`` files, which carry each file's sha256 as the installer
  wrote it. Three small reads instead of a stat of every file: an install or upgrade rewrites
  RECORD, and the code of an installed wheel changes only that way (a hand edit inside
  ``site-packages`` is not noticed; reinstall).
* **Anything else** (an editable workspace, where the parts live in several directories, or an
  install without RECORD): (relative path, size, mtime_ns) of every ``*.py`` file under the
  parts, so any edit in a development checkout changes it. A stat per file, no reads.

The hash is the joined text read as one integer, its remainders by two primes just below 2**30:
it needs no module (``zlib`` cost the client's start ~0.2 ms), and since neither prime divides a
power of 256, any change confined to one byte always changes it.

This is the only module of `satchel.protocol` that touches the filesystem: stat calls
(`os.scandir`) and reads of the RECORD files. The result is computed once per process.
"""

from __future__ import annotations

import os
import sys

from satchel.protocol.version import __version__

__all__ = ["build_id"]

#: The satchel sub-packages whose code must match between client and daemon.
_PARTS = ("protocol", "client", "daemon")
#: The two largest primes below 2**30: each fits one digit of CPython's integers, whose remainder
#: by a one-digit number is a fast loop (by a 61-bit prime it took 4x as long).
_PRIMES = (1073741789, 1073741783)
#: A RECORD larger than this is not one of ours (ours are ~20 KB): the walk decides instead.
_MAX_RECORD = 1 << 20

#: How the walk opens a directory: read-only, failing on anything but a directory, and not
#: inherited by a child process.
_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC

_cached: str | None = None


def _walk(name: str, parent: int | None, rel: str, out: list[str]) -> None:
    """Append a line for every *.py file in the directory `name` (relative to the open directory
    `parent`, or absolute when None), reported relative as `rel`, sorted.

    The directory is opened once and scanned and stat'ed through its descriptor, so the kernel
    resolves one name per file instead of the file's whole path (~0.1 ms less of the ~0.7 ms
    walk of a development checkout, which a client does while the daemon answers).
    """
    try:
        fd = os.open(name, _DIRECTORY, dir_fd=parent)
    except OSError:
        return
    try:
        with os.scandir(fd) as it:
            entries = sorted(it, key=lambda e: e.name)
        for entry in entries:
            entry_name = entry.name
            if entry_name == "__pycache__" or entry_name.startswith("."):
                continue
            path = f"{rel}/{entry_name}"
            try:
                if entry.is_dir(follow_symlinks=False):
                    _walk(entry_name, fd, path, out)
                elif entry_name.endswith(".py"):
                    st = entry.stat()
                    out.append(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\n")
            except OSError:
                continue  # vanished while we looked: the id reflects what could be seen
    except OSError:
        return
    finally:
        os.close(fd)


def _recorded(root: str) -> list[bytes] | None:
    """The RECORD lines of the parts' *.py files when all three parts are installed wheels under
    *root*, sorted; None otherwise."""
    site = os.path.dirname(root)  # noqa: PTH120 (os.path is cheaper)
    lines: list[bytes] = []
    for part in _PARTS:
        if not os.path.isdir(os.path.join(root, part)):  # noqa: PTH112, PTH118
            return None
        info = f"satchel_{part}-{__version__}.dist-info"
        try:
            with open(os.path.join(site, info, "RECORD"), "rb") as handle:  # noqa: PTH118
                data = handle.read(_MAX_RECORD + 1)
        except OSError:
            return None
        if len(data) > _MAX_RECORD:
            return None
        prefix = f"satchel/{part}/".encode()
        lines += [line for line in data.splitlines() if line.startswith(prefix) and b".py," in line]
    if not lines:
        return None
    lines.sort()
    return [b"record", *lines]


def compute_build_id() -> str:
    """Compute the build id now (uncached); `build_id()` is what callers normally want."""
    namespace = sys.modules.get("satchel")
    roots = sorted(getattr(namespace, "__path__", ()))
    recorded = _recorded(roots[0]) if len(roots) == 1 else None
    if recorded is not None:
        text = b"\n".join(recorded)
    else:
        lines: list[str] = []
        for root in roots:
            for part in _PARTS:
                _walk(os.path.join(root, part), None, part, lines)  # noqa: PTH118 (os.path)
        text = "".join(lines).encode()
    number = int.from_bytes(text, "little")
    return f"{__version__}+" + "".join(f"{number % prime:08x}" for prime in _PRIMES)


def build_id() -> str:
    """Return this installation's build id, computed on first call."""
    global _cached
    if _cached is None:
        _cached = compute_build_id()
    return _cached
