"""The environment a resolution is for: markers, wheel tags, install scheme.

A resolve is only meaningful for one target interpreter: its PEP 508 marker values decide which
dependencies apply, its ranked wheel tags decide which files fit, its ``sysconfig`` scheme decides
where an install puts files. The daemon is a different process (often a different interpreter)
from the one the user works with, so it runs the target interpreter once with a small script and
keeps the answer.

Why the script borrows the daemon's ``packaging``: a bare ``python -m venv --without-pip`` venv
has no ``packaging``, and re-implementing ``packaging.tags`` would drift from what pip and uv
rank. The directory that holds the daemon's ``packaging`` is passed in argv and put first on
``sys.path`` (first, so an old ``packaging`` in the target's site-packages cannot shadow it).

Why ``-I`` but not ``-S``: ``-I`` ignores ``PYTHON*`` variables, the user site and the current
directory; ``-S`` would also skip ``site``, but in a venv it is ``site`` that switches
``sys.prefix`` to the venv, so with ``-S`` the scheme paths would point into the base
interpreter (checked on CPython 3.11). The cost is that the target's ``.pth`` files run, as they
do for every program started with that interpreter.

The one exception is the daemon's own interpreter, the default target of every command (the
client sends its ``sys.executable``, which is the daemon's when it autostarted it): that one is
described in this process (`_describe_self`), the same script's steps without the interpreter
start, which cost 30-70 ms of a cold prefetch (issue 15). Only when nothing would make the
child's answer differ: the path as given is ``sys.executable``, its binary is still the one this
process started from (an upgrade in place is asked like any other interpreter), and no
``PYTHONHOME`` (which ``-I`` would ignore) moved this process's prefix.

Caching: a query costs one interpreter start (~20-40 ms). Answers are cached in memory, and on
disk when the caller passes a directory, keyed by the interpreter's path as given *and* the
``(realpath, mtime_ns, size)`` of the binary it points to: a venv's ``bin/python`` is a symlink
to the base interpreter, so the realpath alone would merge every venv of one Python (their
prefixes and scheme paths differ); the stat part notices an upgraded interpreter.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
import sysconfig
from collections.abc import Iterable
from pathlib import Path

import msgspec
import packaging
import trio
from packaging import markers as _markers
from packaging import tags as _tags

from satchel.daemon.errors import InvalidParams, NotFound
from satchel.daemon.installing.childenv import scrubbed_environ
from satchel.daemon.storage.fsutil import atomic_write

__all__ = [
    "Target",
    "clear_memory_cache",
    "find_interpreter",
    "known_target",
    "locate_interpreter",
    "query_interpreter",
    "synthetic_target",
]

#: Bump when the script's output changes, so stale disk-cache entries are ignored.
_SCHEMA = 1

#: A query that takes longer than this is a hung interpreter (or a broken one), not a slow one.
_QUERY_TIMEOUT = 30.0


class Target(msgspec.Struct, frozen=True, kw_only=True):
    """What a resolver and an installer need to know about one interpreter (or an imagined one)."""

    #: ``X.Y`` (the ``python_version`` marker).
    python_version: str
    #: ``X.Y.Z`` (the ``python_full_version`` marker); what ``requires-python`` is checked against.
    python_full_version: str
    #: ``sys.implementation.name``, e.g. ``cpython``.
    implementation_name: str
    #: Every PEP 508 marker variable (without ``extra``).
    markers: dict[str, str]
    #: Supported wheel tags, best first, exactly in ``packaging.tags.sys_tags()`` order.
    tags: tuple[str, ...]
    #: ``sysconfig`` install scheme: purelib, platlib, scripts, data, include (empty if synthetic).
    paths: dict[str, str] = {}
    executable: str | None = None
    sys_prefix: str | None = None
    base_prefix: str | None = None
    #: True for ``--platform``/``--python-version`` targets: nothing can be installed into them.
    synthetic: bool = False

    @property
    def is_venv(self) -> bool:
        return self.sys_prefix is not None and self.sys_prefix != self.base_prefix

    @property
    def key(self) -> str:
        """A stable digest of what resolution depends on: equal keys resolve identically.

        Install paths and the executable are left out on purpose: a venv resolves exactly like
        the interpreter it was made from, so its resolves (and the daemon's result cache) are
        shared with that interpreter's.
        """
        relevant = (
            self.python_version,
            self.python_full_version,
            self.implementation_name,
            sorted(self.markers.items()),
            self.tags,
            self.synthetic,
        )
        return hashlib.sha256(msgspec.json.encode(relevant)).hexdigest()[:32]

    def for_venv(self, venv: Path, paths: dict[str, str], executable: str) -> Target:
        """This interpreter as seen from a venv made from it: same markers and tags (so no
        subprocess is needed to describe a venv Satchel just created), the venv's own paths."""
        return msgspec.structs.replace(
            self, paths=paths, executable=executable, sys_prefix=str(venv)
        )

    def tag_ranks(self) -> dict[str, int]:
        """Tag string -> rank (0 is best); what a resolver sorts wheels by."""
        return {tag: rank for rank, tag in enumerate(self.tags)}


# The script runs under the *target* interpreter, which may be any CPython >= 3.8: keep it plain.
_SCRIPT = r"""
import json, os, sys, sysconfig
sys.path.insert(0, sys.argv[1])
from packaging import markers, tags
env = markers.default_environment()
names = ("purelib", "platlib", "scripts", "data", "include")
scheme = sysconfig.get_paths()
print(json.dumps({
    "schema": int(sys.argv[2]),
    "markers": dict(env),
    "tags": [str(t) for t in tags.sys_tags()],
    "paths": {n: scheme[n] for n in names if n in scheme},
    "executable": sys.executable,
    "sys_prefix": sys.prefix,
    "base_prefix": getattr(sys, "base_prefix", sys.prefix),
}))
"""

#: Where the daemon's own ``packaging`` lives; the target's script imports it from there.
_PACKAGING_PARENT = str(Path(packaging.__file__).resolve().parent.parent)

_memory: dict[tuple[str, str, int, int], Target] = {}


def clear_memory_cache() -> None:
    """Forget every in-memory answer (tests; or after the user says an interpreter changed)."""
    _memory.clear()


def find_interpreter(python: str | Path) -> Path:
    """Turn ``--python`` into an interpreter path.

    ``X.Y`` (or ``pythonX.Y``, or any bare command name) is looked up on ``PATH``; a directory is
    a venv (``bin/python`` or ``Scripts/python.exe``); anything else must be an executable file.

    The ``satchel`` client resolves ``X.Y`` and bare names itself, in the caller's environment
    (`satchel.client.interpreters`: uv-managed installs, the caller's ``PATH``, pyenv), and
    sends a path: the daemon's own ``PATH`` (a service's is minimal) decides only for a request
    written by another program.
    """
    text = str(python)
    if re.fullmatch(r"(python)?3(\.\d+)?", text):
        name = text if text.startswith("python") else f"python{text}"
        found = shutil.which(name)
        if found is None:
            raise NotFound(f"no {name} on PATH (asked for --python {text})")
        return Path(found).absolute()
    if os.sep not in text and not text.startswith("~"):  # a bare name: a command on PATH
        found = shutil.which(text)
        if found is None:
            raise NotFound(f"no interpreter {text!r} on PATH (asked for --python {text})")
        return Path(found).absolute()
    path = Path(text).expanduser().absolute()
    if path.is_dir():
        for candidate in (path / "bin" / "python", path / "Scripts" / "python.exe"):
            if candidate.exists():
                return candidate
        raise NotFound(f"{path} is a directory but not a virtual environment (no bin/python)")
    if not path.exists():
        raise NotFound(f"no interpreter at {path}")
    if not path.is_file() or not os.access(path, os.X_OK):
        raise InvalidParams(
            f"--python {text}: {path} is not an executable file, so not an interpreter",
            details={"python": text},
        )
    return path


def _locate(python: str | Path) -> tuple[Path, tuple[str, str, int, int]]:
    """`find_interpreter` and its cache key in one worker-thread hop (asked on every request)."""
    interpreter = find_interpreter(python)
    return interpreter, _cache_key(interpreter)


def _cache_key(interpreter: Path) -> tuple[str, str, int, int]:
    real = interpreter.resolve()
    st = real.stat()
    return (str(interpreter), str(real), st.st_mtime_ns, st.st_size)


def _disk_path(cache_dir: Path, key: tuple[str, str, int, int]) -> Path:
    digest = hashlib.sha256(repr((_SCHEMA, *key)).encode()).hexdigest()[:40]
    return cache_dir / f"{digest}.json"


def _from_answer(answer: dict[str, object]) -> Target:
    markers = answer["markers"]
    if not isinstance(markers, dict):
        raise TypeError("markers is not a mapping")
    return Target(
        python_version=str(markers["python_version"]),
        python_full_version=str(markers["python_full_version"]),
        implementation_name=str(markers["implementation_name"]),
        markers={str(k): str(v) for k, v in markers.items()},
        tags=tuple(str(t) for t in answer["tags"]),  # type: ignore[attr-defined]
        paths={str(k): str(v) for k, v in answer["paths"].items()},  # type: ignore[attr-defined]
        executable=str(answer["executable"]),
        sys_prefix=str(answer["sys_prefix"]),
        base_prefix=str(answer["base_prefix"]),
    )


def _self_key() -> tuple[str, str, int, int] | None:
    try:
        return _cache_key(Path(sys.executable))
    except OSError:  # no binary to stat (embedded, deleted): never described in process
        return None


#: The cache key of this process's own interpreter binary as it was when the daemon started
#: (this module is imported at start-up): once the binary on disk differs (Python upgraded in
#: place while the daemon runs), what this process knows describes the old interpreter, and
#: the new one is asked like any other.
_SELF_KEY = _self_key()


def _is_self(interpreter: Path, key: tuple[str, str, int, int]) -> bool:
    """Whether *interpreter* (whose binary has the cache key *key* now) would describe itself
    as this process can (`_describe_self`)."""
    return (
        str(interpreter) == sys.executable and key == _SELF_KEY and "PYTHONHOME" not in os.environ
    )


def _describe_self() -> Target:
    """What `_SCRIPT` answers when run by this process's own interpreter, without running it."""
    scheme = sysconfig.get_paths()
    names = ("purelib", "platlib", "scripts", "data", "include")
    return _from_answer(
        {
            "markers": dict(_markers.default_environment()),
            "tags": [str(t) for t in _tags.sys_tags()],
            "paths": {n: scheme[n] for n in names if n in scheme},
            "executable": sys.executable,
            "sys_prefix": sys.prefix,
            "base_prefix": getattr(sys, "base_prefix", sys.prefix),
        }
    )


def _read_disk(path: Path) -> Target | None:
    try:
        return msgspec.json.decode(path.read_bytes(), type=Target)
    except (OSError, msgspec.DecodeError, msgspec.ValidationError):
        return None  # absent or from an older schema: just ask the interpreter again


def locate_interpreter(python: str | Path) -> tuple[Path, tuple[str, str, int, int]]:
    """`find_interpreter` and its cache key (blocking: a worker thread's); hand the answer to
    `query_interpreter` as *located* to spare it a worker-thread hop of its own."""
    return _locate(python)


def known_target(located: tuple[Path, tuple[str, str, int, int]]) -> Target | None:
    """The target `query_interpreter` has in memory for *located* (`locate_interpreter`'s
    answer), or None; any thread."""
    return _memory.get(located[1])


async def query_interpreter(
    python: str | Path,
    *,
    cache_dir: Path | None = None,
    located: tuple[Path, tuple[str, str, int, int]] | None = None,
) -> Target:
    """Describe the interpreter *python* (see `find_interpreter`), asking it at most once.
    *located*: `locate_interpreter`'s answer for *python*, when the caller has it already."""
    if located is None:
        located = await trio.to_thread.run_sync(_locate, python)
    interpreter, key = located
    cached = _memory.get(key)
    if cached is not None:
        return cached
    if _is_self(interpreter, key):
        _memory[key] = target = await trio.to_thread.run_sync(_describe_self)
        return target
    disk = _disk_path(cache_dir, key) if cache_dir is not None else None
    if disk is not None:
        cached = await trio.to_thread.run_sync(_read_disk, disk)
        if cached is not None:
            _memory[key] = cached
            return cached
    target = await _ask(interpreter, python)
    _memory[key] = target
    if disk is not None:
        await trio.to_thread.run_sync(atomic_write, disk, msgspec.json.encode(target))
    return target


async def _ask(interpreter: Path, python: str | Path) -> Target:
    """Run `_SCRIPT` under *interpreter* (``--python`` *python*) and read its answer."""
    argv = [str(interpreter), "-I", "-c", _SCRIPT, _PACKAGING_PARENT, str(_SCHEMA)]
    # Whatever --python names is the user's input: a file that is no interpreter, or one that
    # cannot describe itself, is `InvalidParams` naming it, never an internal error.
    details = {"python": str(python)}
    try:
        with trio.move_on_after(_QUERY_TIMEOUT) as scope:
            done = await trio.run_process(
                argv,
                capture_stdout=True,
                capture_stderr=True,
                check=False,
                # A venv's interpreter runs the .pth files of what is installed in it: code from
                # an index, which sees no credential of the daemon.
                env=scrubbed_environ(),
            )
    except OSError as exc:
        raise InvalidParams(
            f"--python {python}: {interpreter} is not an interpreter Satchel can run "
            f"({exc.strerror or exc})",
            details=details,
        ) from exc
    if scope.cancelled_caught:
        raise InvalidParams(
            f"--python {python}: {interpreter} did not answer within {_QUERY_TIMEOUT:.0f} s",
            details=details,
        )
    if done.returncode != 0:
        tail = done.stderr.decode(errors="replace").strip().splitlines()[-3:]
        raise InvalidParams(
            f"--python {python}: {interpreter} is not a Python interpreter Satchel can use "
            f"(it failed to describe itself, exit {done.returncode}): " + " | ".join(tail),
            details=details,
        )
    try:
        answer = json.loads(done.stdout)
        target = _from_answer(answer)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InvalidParams(
            f"--python {python}: {interpreter} gave an unreadable description of itself: {exc}",
            details=details,
        ) from exc
    return target


# --- synthetic targets ------------------------------------------------------------------------

#: (platform-tag regex, os_name, sys_platform, platform_system); the machine comes from the tag.
_PLATFORM_FAMILIES: tuple[tuple[str, str, str, str], ...] = (
    (r"macosx_(\d+)_(\d+)_(\w+)", "posix", "darwin", "Darwin"),
    (r"win_(amd64|arm64)|(win32)", "nt", "win32", "Windows"),
    (r"manylinux_(\d+)_(\d+)_(\w+)|manylinux(2014|2010|1)_(\w+)", "posix", "linux", "Linux"),
    (r"musllinux_(\d+)_(\d+)_(\w+)", "posix", "linux", "Linux"),
    (r"linux_(\w+)", "posix", "linux", "Linux"),
)

_LEGACY_MANYLINUX = {"manylinux2014": (2, 17), "manylinux2010": (2, 12), "manylinux1": (2, 5)}


def _machine(platform: str) -> tuple[str, str, str, str]:
    """(os_name, sys_platform, platform_system, platform_machine) for one platform tag."""
    for pattern, os_name, sys_platform, system in _PLATFORM_FAMILIES:
        match = re.fullmatch(pattern, platform)
        if match is None:
            continue
        arch = [g for g in match.groups() if g is not None][-1]
        if sys_platform == "win32":
            arch = {"amd64": "AMD64", "arm64": "ARM64", "win32": "x86"}[arch]
        elif arch == "universal2":
            arch = "arm64"
        return os_name, sys_platform, system, arch
    raise ValueError(
        f"unsupported platform tag {platform!r}: expected macosx_X_Y_ARCH, win_amd64, win_arm64, "
        "win32, manylinux_X_Y_ARCH, manylinux2014_ARCH, musllinux_X_Y_ARCH or linux_ARCH"
    )


def _expand_platform(platform: str) -> list[str]:
    """The platform tags a machine reporting *platform* also accepts, best first.

    A newer macOS runs wheels built for older ones (``packaging.tags.mac_platforms``); a glibc
    2.Y system runs manylinux wheels for every older glibc down to 2.17 (2.5 for i686) and the
    legacy aliases; musl 1.Y runs musllinux 1.0..1.Y. ``linux_ARCH`` comes last, as pip ranks it.
    """
    if match := re.fullmatch(r"macosx_(\d+)_(\d+)_(\w+)", platform):
        major, minor, arch = int(match[1]), int(match[2]), match[3]
        return list(_tags.mac_platforms((major, minor), arch))
    legacy = re.fullmatch(r"(manylinux2014|manylinux2010|manylinux1)_(\w+)", platform)
    if legacy:
        glibc = _LEGACY_MANYLINUX[legacy[1]]
        platform = f"manylinux_{glibc[0]}_{glibc[1]}_{legacy[2]}"
    if match := re.fullmatch(r"manylinux_(\d+)_(\d+)_(\w+)", platform):
        major, minor, arch = int(match[1]), int(match[2]), match[3]
        floor = 5 if arch in ("i686", "x86_64") else 17
        out: list[str] = []
        for glibc_minor in range(minor, floor - 1, -1):
            out.append(f"manylinux_{major}_{glibc_minor}_{arch}")
            for alias, version in _LEGACY_MANYLINUX.items():
                if version == (major, glibc_minor):
                    out.append(f"{alias}_{arch}")
        return [*out, f"linux_{arch}"]
    if match := re.fullmatch(r"musllinux_(\d+)_(\d+)_(\w+)", platform):
        major, minor, arch = int(match[1]), int(match[2]), match[3]
        musl = [f"musllinux_{major}_{m}_{arch}" for m in range(minor, -1, -1)]
        return [*musl, f"linux_{arch}"]
    return [platform]


def synthetic_target(
    python_version: str, platforms: Iterable[str], implementation: str = "cp"
) -> Target:
    """An imagined CPython on another machine, for ``--python-version`` / ``--platform``.

    Tags: ``cpython_tags`` + ``compatible_tags`` for the given platforms (each expanded to the
    older platform tags that machine also accepts, see `_expand_platform`), in packaging's order.

    Markers, derived from the first platform tag (all must name the same OS and machine):
    ``os_name``/``sys_platform``/``platform_system`` from the tag family (macosx -> posix/darwin/
    Darwin, win -> nt/win32/Windows, manylinux/musllinux/linux -> posix/linux/Linux),
    ``platform_machine`` from the tag's architecture (Windows spelling AMD64/ARM64/x86;
    universal2 counts as arm64), implementation CPython. Limits: ``python_full_version`` is
    ``X.Y.0`` unless a full ``X.Y.Z`` is given, and ``platform_release``/``platform_version`` are
    empty, so markers comparing those (rare) evaluate as on an unknown release.
    """
    if implementation != "cp":
        raise ValueError(f"synthetic targets support CPython ('cp') only, not {implementation!r}")
    parts = python_version.split(".")
    if len(parts) not in (2, 3) or not all(p.isdigit() for p in parts) or parts[0] != "3":
        raise ValueError(f"--python-version must look like 3.Y or 3.Y.Z, not {python_version!r}")
    major, minor = int(parts[0]), int(parts[1])
    full = python_version if len(parts) == 3 else f"{major}.{minor}.0"
    given = list(platforms)
    if not given:
        raise ValueError("a synthetic target needs at least one --platform tag")
    machines = {_machine(p) for p in given}
    if len(machines) != 1:
        raise ValueError(f"platform tags {given} describe different machines; give one machine")
    os_name, sys_platform, system, machine = machines.pop()
    expanded: list[str] = []
    for platform in given:
        expanded.extend(p for p in _expand_platform(platform) if p not in expanded)
    version = (major, minor)
    interpreter = f"cp{major}{minor}"
    tag_list = [
        *_tags.cpython_tags(version, abis=[interpreter], platforms=expanded),
        *_tags.compatible_tags(version, interpreter=interpreter, platforms=expanded),
    ]
    markers = {
        "implementation_name": "cpython",
        "implementation_version": full,
        "os_name": os_name,
        "platform_machine": machine,
        "platform_release": "",
        "platform_system": system,
        "platform_version": "",
        "python_full_version": full,
        "platform_python_implementation": "CPython",
        "python_version": f"{major}.{minor}",
        "sys_platform": sys_platform,
    }
    return Target(
        python_version=f"{major}.{minor}",
        python_full_version=full,
        implementation_name="cpython",
        markers=markers,
        tags=tuple(dict.fromkeys(str(t) for t in tag_list)),
        synthetic=True,
    )
