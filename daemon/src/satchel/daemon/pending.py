"""Installs in progress, remembered across a crash, so the daemon can finish them at start-up.

An install is a transaction journalled inside the environment (`installer`): killed half-way,
the environment holds a journal that the next install into it replays, restoring the exact old
state. Until that next install, though, the user would see a half-applied environment. So
before committing an install the daemon writes a marker naming the environment's scheme into
its state directory (durably), and removes it once the transaction is over. At start-up every
marker left by a killed daemon is an environment to repair, which `recover_pending` does before
the daemon takes any request.

Markers are small JSON files named by a digest of the environment's prefix, so concurrent
installs into different environments never share one, and one environment has at most one
(installs into it are serialised).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from satchel.daemon.fsutil import atomic_write
from satchel.daemon.installer import Scheme, recover

__all__ = ["marked", "pending_dir", "recover_pending"]

log = logging.getLogger(__name__)

_FIELDS = ("purelib", "platlib", "scripts", "data", "headers", "interpreter")


def pending_dir(cache_root: Path) -> Path:
    """Where markers live: in the cache directory, whose consistency the daemon guards."""
    return cache_root / "installing"


def _marker(directory: Path, scheme: Scheme) -> Path:
    digest = hashlib.sha256(os.fsencode(scheme.data)).hexdigest()[:32]
    return directory / f"{digest}.json"


@contextlib.contextmanager
def marked(directory: Path, scheme: Scheme) -> Iterator[None]:
    """Mark *scheme*'s environment as being installed into for the duration of the block
    (blocking: run it in a worker thread together with the install)."""
    marker = _marker(directory, scheme)
    atomic_write(marker, json.dumps({f: str(getattr(scheme, f)) for f in _FIELDS}).encode())
    try:
        yield
    finally:
        # Reached on success and on an in-process rollback alike: both leave the environment
        # consistent. Only a killed process leaves the marker behind.
        with contextlib.suppress(FileNotFoundError):
            marker.unlink()


def recover_pending(directory: Path) -> list[str]:
    """Repair every environment a killed daemon was installing into; their prefixes.

    Call at start-up, before any install can run. An unreadable marker is dropped with a
    warning (there is nothing it could tell us); an environment that no longer exists has
    nothing to repair.
    """
    repaired: list[str] = []
    try:
        markers = sorted(directory.iterdir())
    except FileNotFoundError:
        return repaired
    for marker in markers:
        if marker.suffix != ".json":
            continue
        try:
            fields = json.loads(marker.read_bytes())
            scheme = Scheme(**{f: Path(fields[f]) for f in _FIELDS})
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring unreadable install marker %s: %s", marker, exc)
        else:
            if scheme.data.is_dir() and recover(scheme):
                log.info("repaired the environment %s after an interrupted install", scheme.data)
                repaired.append(str(scheme.data))
        with contextlib.suppress(FileNotFoundError):
            marker.unlink()
    return repaired
