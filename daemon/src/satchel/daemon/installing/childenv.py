"""The environment of every child process that may run code from an index.

A build backend is code from an index; so is whatever an installed wheel's ``.pth`` files run when
an environment's interpreter starts (asked to describe itself, or to byte-compile). None of them
may learn the daemon's credentials (``SATCHEL_INDEX_*_PASSWORD``, ``*_TOKEN``, ``PIP_*``/``UV_*``
with their index URLs, cloud keys) or how to reach another index: they get `scrubbed_environ`,
an allow-list of what compilers and locales need.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

__all__ = ["BUILD_ENV_ALLOWED", "scrubbed_environ"]

#: The only variables of the daemon's environment a build backend inherits: where programs and
#: temp files are, the locale, reproducible-build time, and the usual compiler and linker knobs
#: (a C extension builds as it would from a shell, an interpreter linked against a shared
#: libpython starts). Everything else, and every credential whatever its name, stays in the
#: daemon.
BUILD_ENV_ALLOWED = frozenset(
    {
        "PATH", "HOME", "USER", "LOGNAME", "SHELL", "TERM", "TZ", "LANG", "LANGUAGE",
        "TMPDIR", "TEMP", "TMP", "SOURCE_DATE_EPOCH",
        "CC", "CXX", "CPP", "LD", "AR", "RANLIB", "CFLAGS", "CXXFLAGS", "CPPFLAGS", "LDFLAGS",
        "LDSHARED", "ARCHFLAGS", "MACOSX_DEPLOYMENT_TARGET", "PKG_CONFIG_PATH", "MAKEFLAGS",
        "CMAKE_GENERATOR", "CARGO_HOME", "RUSTUP_HOME",
        "LD_LIBRARY_PATH", "DYLD_LIBRARY_PATH", "LIBRARY_PATH", "CPATH", "C_INCLUDE_PATH",
    }
)  # fmt: skip
#: Locale variables (LC_ALL, LC_CTYPE, ...) pass too.
_ALLOWED_PREFIXES = ("LC_",)


def scrubbed_environ(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The allow-listed part of *base* (default: this process's environment) for a build."""
    source = os.environ if base is None else base
    return {
        key: value
        for key, value in source.items()
        if key in BUILD_ENV_ALLOWED or key.startswith(_ALLOWED_PREFIXES)
    }
