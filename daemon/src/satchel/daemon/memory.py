"""Keep glibc's malloc from multiplying the daemon's resident memory across worker threads.

Why: the daemon runs blocking work in trio worker threads (up to 40 at once while uv pulls a
large set through the local index), and glibc gives each new thread its own malloc arena, up to
8 per core. Memory freed in an arena mostly stays mapped in it, so every arena keeps a few MB
of its busiest moment: with the benchmark's large set (112 wheels) the daemon held ~30 MB in
eight thread arenas after serving it, against ~25 MB of live Python objects. Two arenas
measured 72 MB peak instead of 80 MB, resident memory flat afterwards, and no slower installs or
local-index serving (benchmarks/findings.md, "Daemon memory").

`limit_malloc_arenas` sets that cap with ``mallopt(M_ARENA_MAX)``, in-process, so it holds
however the daemon is started (autostart, a service manager, by hand) without an environment
variable in every launcher. ``MALLOC_ARENA_MAX`` in the environment still wins: glibc has read
it at start-up, and a user who set it meant it.
"""

from __future__ import annotations

import logging
import os

__all__ = ["ARENA_MAX", "ARENA_MAX_ENV", "limit_malloc_arenas"]

log = logging.getLogger(__name__)

#: Malloc arenas the daemon allows (the main one and one shared by every worker thread).
ARENA_MAX = 2
#: The variable glibc reads at start-up for the same setting; when set, it is left alone.
ARENA_MAX_ENV = "MALLOC_ARENA_MAX"
#: ``M_ARENA_MAX`` from glibc's ``<malloc.h>``.
_M_ARENA_MAX = -8


def limit_malloc_arenas(limit: int = ARENA_MAX) -> bool:
    """Cap glibc's malloc arenas at *limit*; return whether the cap was applied.

    Call it before any worker thread starts: glibc reads the setting lazily, but fixes its
    limit for good once eight arenas exist. Not applied off glibc (macOS's allocator has no
    arenas of this kind), or when ``MALLOC_ARENA_MAX`` is set (glibc honoured it already).
    """
    if ARENA_MAX_ENV in os.environ:
        return False
    try:
        if not (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc"):
            return False
    except (ValueError, OSError):  # not a glibc system: the name is unknown there
        return False
    import ctypes  # only here: the cap is the daemon's one use of it on Linux

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    applied = bool(mallopt(_M_ARENA_MAX, limit))
    log.debug("malloc arenas capped at %d: %s", limit, applied)
    return applied
