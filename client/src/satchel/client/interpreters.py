# ruff: noqa: PTH100, PTH110, PTH111, PTH112, PTH113, PTH117, PTH118, PTH208
"""Turn ``--python`` into an absolute interpreter path, on the caller's side.

The daemon may be a service started by systemd or launchd with a minimal ``PATH`` and none of the
user's shell variables, so ``--python 3.12`` is resolved here, in the user's own environment,
and the daemon receives a path: a service daemon behaves exactly like an autostarted one.

What ``--python`` may be (uv's request forms, as far as they name one interpreter):

- ``X``, ``X.Y``, ``X.Y.Z``, ``pythonX.Y``... (major 3): a version request, found as uv finds it
  with its default ``python-preference = managed`` (crates/uv-python/src/discovery.rs):

  1. uv-managed installs, newest first: ``$UV_PYTHON_INSTALL_DIR``, else
     ``$XDG_DATA_HOME/uv/python``, else ``~/.local/share/uv/python`` (what ``uv python dir``
     prints), each ``cpython-X.Y.Z-OS-ARCH-LIBC/bin/pythonX.Y`` of this OS and machine;
  2. the caller's ``PATH``, directory by directory, and in each ``pythonX.Y``, then ``python3``,
     then ``python`` (the first that is the requested version wins, not the newest);
  3. pyenv installs, newest first: ``$PYENV_ROOT`` (else ``~/.pyenv``)
     ``/versions/X.Y.Z/bin/python``. uv itself knows pyenv only through its shims on ``PATH``;
     the versions directory is searched last for a caller whose ``PATH`` has no shims (a
     non-interactive shell, an IDE).

  Every candidate is asked for its version (one short subprocess each, only for a version
  request), and what is sent is the interpreter's own ``sys.executable``: a pyenv shim on
  ``PATH`` picks its Python by the caller's working directory and variables, which the daemon
  does not share. A free-threaded build is never chosen for a plain version, a pre-release only
  when no release matches (as uv does).
- a path (contains ``/`` or starts with ``~``), or an existing file or directory: made absolute;
  the daemon checks it (a venv directory, an executable interpreter) and names what is wrong;
- any other bare name (``pypy3``): looked up on the caller's ``PATH``.

Start-up cost: this module imports only ``os`` and ``sys`` (``os.path``, not ``pathlib``, which
costs ~2.6 ms: hence the file-wide ``noqa``); ``subprocess`` is imported only
when a version request must ask a candidate, so commands without ``--python X.Y`` pay nothing.
"""

from __future__ import annotations

import os
import sys

from satchel.client.session import RemoteError
from satchel.protocol import errors

__all__ = ["InterpreterNotFound", "find_version", "resolve_python"]

#: A candidate that takes longer than this to print its version is hung or broken, not slow
#: (a cold interpreter start on a loaded machine takes well under a second).
_QUERY_TIMEOUT = 10.0

#: Printed by a candidate: its version, whether it is a final release, whether it is a
#: free-threaded build, and its own executable. `-I -S`: no user site, no .pth files.
_QUERY = (
    "import sys, sysconfig\n"
    "print('%d.%d.%d' % sys.version_info[:3])\n"
    "print(int(sys.version_info.releaselevel == 'final'))\n"
    "print(int(bool(sysconfig.get_config_var('Py_GIL_DISABLED'))))\n"
    "print(sys.executable)\n"
)

#: `os.uname().machine` spellings -> the architecture in uv's install directory names.
_ARCH_ALIASES = {"arm64": "aarch64", "amd64": "x86_64", "i386": "x86", "i686": "x86"}


class InterpreterNotFound(RemoteError):
    """No interpreter matches ``--python``: the ``not-found`` answer the daemon gave for this
    before the lookup moved to the client (same code, message style and exit status)."""

    def __init__(self, message: str, python: str) -> None:
        super().__init__(errors.NOT_FOUND, message, {"python": python})


def resolve_python(value: str | None) -> str:
    """The absolute interpreter (or venv) path for ``--python value``; this one when absent."""
    if value is None:
        return sys.executable
    version = _version_request(value)
    if version is not None:
        return find_version(version, value)
    if os.sep in value or value.startswith("~") or os.path.exists(value):
        return os.path.abspath(os.path.expanduser(value))
    found = _which(value)
    if found is None:
        raise InterpreterNotFound(
            f"no interpreter {value!r} on PATH (asked for --python {value})", value
        )
    return found


def _version_request(value: str) -> tuple[int, ...] | None:
    """``(3,)``, ``(3, 12)`` or ``(3, 12, 1)`` for a version request, else None."""
    text = value.removeprefix("python")
    parts = text.split(".")
    if not 1 <= len(parts) <= 3 or not all(
        p.isascii() and p.isdigit() and len(p) <= 4 for p in parts
    ):
        return None
    version = tuple(int(p) for p in parts)
    return version if version[0] == 3 else None


def find_version(version: tuple[int, ...], asked: str) -> str:
    """The first interpreter of *version*, searched as the module docstring says."""
    managed = _uv_python_dir()
    path_dirs = _path_dirs()
    pyenv = os.path.join(os.environ.get("PYENV_ROOT") or _home(".pyenv"), "versions")
    candidates = [
        *_managed_candidates(managed, version),
        *_path_candidates(path_dirs, version),
        *_pyenv_candidates(pyenv, version),
    ]
    prerelease = None
    for candidate in candidates:
        found = _ask(candidate, version)
        if found is not None and found[1]:
            return found[0]
        if found is not None and prerelease is None:
            prerelease = found[0]
    if prerelease is not None:  # as uv: a pre-release only when no release matches
        return prerelease
    wanted = ".".join(map(str, version))
    raise InterpreterNotFound(
        f"no Python {wanted} found (asked for --python {asked}); looked in uv-managed installs "
        f"in {managed}, on PATH ({os.pathsep.join(path_dirs) or 'empty'}) for "
        f"{', '.join(_path_names(version))}, and in pyenv installs in {pyenv}; install one "
        f"(`uv python install {wanted}`) or give the interpreter's path",
        asked,
    )


def _home(*parts: str) -> str:
    return os.path.join(os.path.expanduser("~"), *parts)


def _uv_python_dir() -> str:
    """Where uv installs Pythons (`uv python dir`)."""
    explicit = os.environ.get("UV_PYTHON_INSTALL_DIR")
    if explicit:
        return os.path.abspath(os.path.expanduser(explicit))
    data = os.environ.get("XDG_DATA_HOME")
    if data and os.path.isabs(data):
        return os.path.join(data, "uv", "python")
    return _home(".local", "share", "uv", "python")


def _path_dirs() -> list[str]:
    """The caller's PATH, each directory once (a repeated or symlinked one is searched once)."""
    seen: set[str] = set()
    out = []
    for entry in os.environ.get("PATH", "").split(os.pathsep):
        if not entry or not os.path.isdir(entry):
            continue
        real = os.path.realpath(entry)
        if real not in seen:
            seen.add(real)
            out.append(entry)
    return out


def _matches(found: tuple[int, ...], version: tuple[int, ...]) -> bool:
    return found[: len(version)] == version


def _release(text: str) -> tuple[int, ...] | None:
    """``(3, 12, 1)`` for ``"3.12.1"``; None for anything else (``3.13.0+freethreaded``)."""
    parts = text.split(".")
    if len(parts) != 3 or not all(p.isascii() and p.isdigit() for p in parts):
        return None
    return tuple(int(p) for p in parts)


def _listdir(directory: str) -> list[str]:
    try:
        return os.listdir(directory)
    except OSError:  # absent or unreadable: nothing installed there
        return []


def _managed_candidates(root: str, version: tuple[int, ...]) -> list[str]:
    """uv's ``cpython-X.Y.Z-OS-ARCH-LIBC`` installs for this machine, newest first."""
    system = "macos" if sys.platform == "darwin" else sys.platform
    machine = os.uname().machine.lower()
    arch = _ARCH_ALIASES.get(machine, machine)
    found: list[tuple[tuple[int, ...], str]] = []
    for name in _listdir(root):
        parts = name.split("-")
        if len(parts) < 4 or parts[0] != "cpython" or parts[2] != system:
            continue
        if _ARCH_ALIASES.get(parts[3], parts[3]) != arch:
            continue
        release = _release(parts[1])
        if release is None or not _matches(release, version):
            continue
        found.append((release, os.path.join(root, name, "bin", f"python{release[0]}.{release[1]}")))
    return [path for _, path in sorted(found, reverse=True)]


def _path_names(version: tuple[int, ...]) -> list[str]:
    specific = [f"python{version[0]}.{version[1]}"] if len(version) >= 2 else []
    return [*specific, f"python{version[0]}", "python"]


def _path_candidates(dirs: list[str], version: tuple[int, ...]) -> list[str]:
    """In PATH order, and in each directory the most specific name first (as uv searches)."""
    names = _path_names(version)
    return [os.path.join(d, n) for d in dirs for n in names]


def _pyenv_candidates(versions: str, version: tuple[int, ...]) -> list[str]:
    """pyenv's ``versions/X.Y.Z/bin/python``, newest first."""
    found = []
    for name in _listdir(versions):
        release = _release(name)
        if release is not None and _matches(release, version):
            found.append((release, os.path.join(versions, name, "bin", "python")))
    return [path for _, path in sorted(found, reverse=True)]


def _which(name: str) -> str | None:
    for directory in _path_dirs():
        path = os.path.join(directory, name)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return os.path.abspath(path)
    return None


def _ask(candidate: str, version: tuple[int, ...]) -> tuple[str, bool] | None:
    """(*candidate*'s own executable, whether it is a final release) if it runs and is a
    *version* with the GIL (a free-threaded build is asked for as ``3.13t``, as in uv)."""
    if not (os.path.isfile(candidate) and os.access(candidate, os.X_OK)):
        return None
    import subprocess

    try:
        done = subprocess.run(
            [candidate, "-I", "-S", "-c", _QUERY],
            capture_output=True,
            text=True,
            timeout=_QUERY_TIMEOUT,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None  # not runnable here: uv skips such a candidate too
    lines = done.stdout.splitlines()
    if done.returncode != 0 or len(lines) != 4:
        return None
    release = _release(lines[0])
    if release is None or not _matches(release, version) or lines[2] != "0":
        return None
    executable = lines[3]
    # An interpreter that cannot name itself (embedded, odd argv[0]) is used by the path we found.
    if not os.path.isabs(executable):
        executable = os.path.abspath(candidate)
    return executable, lines[1] == "1"
