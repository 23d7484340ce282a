"""The build id: which exact code a client or daemon runs.

An autostarted daemon outlives the client that started it; after an upgrade or an edit in a
development checkout, the next client must notice that the daemon runs other code and restart it.
Both sides compute `build_id()` and exchange it in `Hello`/`Welcome`.

It is ``"<version>+<crc32>"`` where the CRC covers (relative path, size, mtime_ns) of every
``*.py`` file under the ``protocol``, ``client`` and ``daemon`` directories of every entry of the
``satchel`` namespace path (several directories in an editable workspace, one in a wheel install).
Why stat data and not content hashes: it must be cheap enough for every client start (a stat per
file, no reads, zlib instead of hashlib), and any real edit or reinstall changes size or mtime.

This is the only module of `satchel.protocol` that touches the filesystem, and only with stat
calls (`os.scandir`). The result is computed once per process.
"""

from __future__ import annotations

import os
import sys
import zlib

from satchel.protocol.version import __version__

__all__ = ["build_id"]

#: The satchel sub-packages whose code must match between client and daemon.
_PARTS = ("protocol", "client", "daemon")

_cached: str | None = None


def _walk(root: str, rel: str, crc: int) -> int:
    """Fold every *.py file below `root` (reported relative as `rel`) into `crc`, sorted."""
    try:
        with os.scandir(root) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError:
        return crc
    for entry in entries:
        name = entry.name
        if name == "__pycache__" or name.startswith("."):
            continue
        path = f"{rel}/{name}"
        try:
            if entry.is_dir(follow_symlinks=False):
                crc = _walk(entry.path, path, crc)
            elif name.endswith(".py"):
                st = entry.stat()
                crc = zlib.crc32(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\n".encode(), crc)
        except OSError:
            continue  # vanished while we looked: the id reflects what could be seen
    return crc


def compute_build_id() -> str:
    """Compute the build id now (uncached); `build_id()` is what callers normally want."""
    namespace = sys.modules.get("satchel")
    roots: list[str] = list(getattr(namespace, "__path__", ()))
    crc = 0
    for root in sorted(roots):
        for part in _PARTS:
            crc = _walk(os.path.join(root, part), part, crc)  # noqa: PTH118 (os.path is cheaper)
    return f"{__version__}+{crc:08x}"


def build_id() -> str:
    """Return this installation's build id, computed on first call."""
    global _cached
    if _cached is None:
        _cached = compute_build_id()
    return _cached
