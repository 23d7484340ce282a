"""Build wheels from sdists (PEP 517), while online, so they install offline later.

An sdist is only useful offline once it has been turned into a wheel for the interpreter that
will use it, so every build happens while the indexes are reachable (`satchel prefetch`, or an
online install or run) and its result is kept:

    extract     the sdist from the store into a temp dir (tar ``data`` filter, zip paths checked)
    isolate     a fresh venv (`venv.create_venv`) with the target's interpreter
    provide     ``[build-system] requires``, then ``get_requires_for_build_wheel``: resolved through
                the request's own session (same index scope, provenance, store) and installed
                with Satchel's own installer, so build dependencies are cached like any others
    build       ``build_wheel`` through ``pyproject-hooks`` in a subprocess, in a worker thread,
                with a deadline, output captured to a log whose tail names the failure, in a
                scrubbed environment (`childenv.scrubbed_environ`: an allow-list, no credentials)
    keep        validate the wheel (RECORD, names, tags), ingest it into the blob store under its
                computed sha256, record (sdist sha256, interpreter key) -> wheel in the metadb

The key is `interpreter_key`: the target's best tag plus its exact Python release. A wheel built
by one Python is only reused by the same release on the same platform (pure-Python wheels could be
shared more widely, but a build may also have chosen code paths by version; being strict costs a
rebuild, being lax a broken install). Offline, an sdist without a wheel for this key is never
built: the answer is `NotBuilt`, which says which interpreter and how to fix it while online.

Nothing is built where the user forbade it (``--no-build``, ``--only-binary``, config.toml's
``builds``, background prefetches): `buildpolicy.BuildPolicy.check` raises `BuildForbidden`.

Builds of one (sdist, key) are serialised and re-checked after waiting, so two requests needing
the same wheel build it once. A build that needs itself (through build requirements) is refused.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import tomllib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import trio
from packaging.utils import (
    InvalidWheelFilename,
    canonicalize_name,
    parse_wheel_filename,
)
from pyproject_hooks import BuildBackendHookCaller

from satchel.daemon.errors import BuildError, NotCached, SatchelError
from satchel.daemon.indexes.catalog import metadata_from_file
from satchel.daemon.indexes.session import Session
from satchel.daemon.installing.childenv import scrubbed_environ
from satchel.daemon.installing.installer import Scheme
from satchel.daemon.installing.venv import create_venv
from satchel.daemon.installing.wheelfile import validate_wheel
from satchel.daemon.requests.runtime import Runtime
from satchel.daemon.requests.sdistarchive import extract_sdist
from satchel.daemon.resolver.target import Target
from satchel.daemon.storage import provenance
from satchel.daemon.storage.metadb import BuiltWheel
from satchel.daemon.storage.model import FileEntry, ProjectPage

__all__ = [
    "BUILD_TIMEOUT",
    "NotBuilt",
    "build_sdists",
    "build_wheel",
    "cached_wheel",
    "interpreter_key",
    "not_built",
    "sdist_metadata",
    "wheel_for",
]

log = logging.getLogger(__name__)

#: Seconds one build may take (both hooks together) before it is killed.
BUILD_TIMEOUT = 600.0
#: Lines of build output quoted in a `BuildError`.
OUTPUT_TAIL = 25
#: What PEP 517 says a project without ``[build-system]`` builds with.
_LEGACY_REQUIRES = ("setuptools>=40.8.0",)
_LEGACY_BACKEND = "setuptools.build_meta:__legacy__"
#: Prefix of the temp directories builds run in (the system's temp dir cleans up after a crash).
_TMP = "satchel-build-"

#: sha256 of the sdists being built by this task chain (a cycle would wait on itself forever).
_building: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar(
    "satchel_building", default=()
)
_locks: dict[tuple[str, str], trio.Lock] = {}


class NotBuilt(NotCached):
    """Offline (or for an imagined target), and no wheel was ever built from this sdist for it."""


def interpreter_key(target: Target) -> str:
    """What a built wheel is keyed by besides the sdist: best tag and exact Python release."""
    return f"{target.tags[0]}-py{target.python_full_version}"


def _describe(target: Target) -> str:
    where = target.executable or "an imagined target"
    return f"{where} (Python {target.python_full_version}, {target.tags[0]})"


def not_built(project: str, file: FileEntry, target: Target) -> NotBuilt:
    """The error for an sdist that has no wheel built for *target*, with the command to fix it."""
    version = _sdist_version(file.filename)
    spec = f"{project}=={version}" if version else project
    python = target.executable or f"{target.python_version}"
    return NotBuilt(
        f"{project}: only the sdist {file.filename} fits, and it was never built for the "
        f"interpreter {_describe(target)}; while online, run "
        f"`satchel prefetch {spec} --python {python}` to build it for that interpreter",
        details={"project": project, "file": file.filename, "interpreter": python},
    )


def _sdist_version(filename: str) -> str | None:
    for suffix in (".tar.gz", ".zip"):
        if filename.endswith(suffix):
            _name, sep, version = filename[: -len(suffix)].rpartition("-")
            return version if sep else None
    return None


# -- the cache of built wheels ---------------------------------------------------------------


def _lookup(rt: Runtime, sdist_sha256: str, key: str) -> BuiltWheel | None:
    found = rt.metadb.get_built_wheel(sdist_sha256, key)
    if found is None or not rt.store.has(found.wheel_sha256):
        return None
    return found


async def cached_wheel(rt: Runtime, sdist_sha256: str, target: Target) -> BuiltWheel | None:
    """The wheel built from the sdist *sdist_sha256* for *target*, if one is stored."""
    return await trio.to_thread.run_sync(_lookup, rt, sdist_sha256, interpreter_key(target))


async def wheel_for(
    rt: Runtime,
    session: Session,
    target: Target,
    project: str,
    file: FileEntry,
    sdist_sha256: str,
    *,
    build_seconds: float = BUILD_TIMEOUT,
) -> BuiltWheel:
    """The wheel for *target* built from *file* (stored as *sdist_sha256*): cached or built now.

    Offline, or for a synthetic target, a missing build is `NotBuilt`; online the sdist (already
    in the store) is built, and the result stored and recorded before it is returned.
    """
    key = interpreter_key(target)
    found = await trio.to_thread.run_sync(_lookup, rt, sdist_sha256, key)
    if found is not None:
        return found
    session.builds.check(project, file.filename)  # what the user forbade, before anything
    if session.offline or target.synthetic or target.executable is None:
        raise not_built(project, file, target)
    if sdist_sha256 in _building.get():
        raise BuildError(
            f"{file.filename} needs itself to build (a cycle in build requirements: "
            f"{' -> '.join(_building.get())})",
            details={"file": file.filename},
        )
    lock = _locks.setdefault((sdist_sha256, key), trio.Lock())
    async with lock:
        found = await trio.to_thread.run_sync(_lookup, rt, sdist_sha256, key)
        if found is not None:
            return found
        token = _building.set((*_building.get(), sdist_sha256))
        try:
            return await _build_and_keep(
                rt, session, target, project, file, sdist_sha256, build_seconds
            )
        finally:
            _building.reset(token)


async def _build_and_keep(
    rt: Runtime,
    session: Session,
    target: Target,
    project: str,
    file: FileEntry,
    sdist_sha256: str,
    build_seconds: float,
) -> BuiltWheel:
    started = time.perf_counter()
    tmp = Path(await trio.to_thread.run_sync(functools.partial(tempfile.mkdtemp, prefix=_TMP)))
    try:
        wheel_path = await build_wheel(
            rt,
            session,
            target,
            rt.store.path(sdist_sha256),
            file.filename,
            tmp,
            build_seconds=build_seconds,
        )
        info = await trio.to_thread.run_sync(
            functools.partial(_validate, wheel_path, project, _sdist_version(file.filename), target)
        )
        blob = await rt.store.ingest_path(wheel_path, None, wheel_path.name)
        metadata = await trio.to_thread.run_sync(metadata_from_file, wheel_path, wheel_path.name)
    finally:
        # A build env holds thousands of files: never remove it on the event loop.
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(functools.partial(shutil.rmtree, tmp, ignore_errors=True))
    key = interpreter_key(target)

    def record() -> None:
        # The provenance record first: it is what rebuilds these rows if the metadb is lost.
        provenance.add_built(rt.store.root, blob.sha256, info, sdist_sha256, key)
        rt.metadb.record_blob(blob.sha256, blob.size, info)
        rt.metadb.put_core_metadata(blob.sha256, metadata, index="(built)", filename=info)
        rt.metadb.put_built_wheel(sdist_sha256, key, blob.sha256, info)

    await trio.to_thread.run_sync(record)
    log.info(
        "built %s from %s for %s in %.1f s",
        info,
        file.filename,
        key,
        time.perf_counter() - started,
    )
    return BuiltWheel(sdist_sha256, key, blob.sha256, info, time.time())


def _validate(path: Path, project: str, version: str | None, target: Target) -> str:
    """Check the built wheel completely; its file name on success."""
    try:
        validate_wheel(path, expected_name=project, expected_version=version)
        _name, _version, _build, tags = parse_wheel_filename(path.name)
    except (SatchelError, InvalidWheelFilename) as exc:
        raise BuildError(f"the wheel built from {project} is unusable: {exc}") from exc
    if not {str(tag) for tag in tags} & set(target.tags):
        raise BuildError(
            f"the backend built {path.name}, which does not fit the interpreter "
            f"{_describe(target)} it was built for"
        )
    return path.name


async def sdist_metadata(
    rt: Runtime, session: Session, target: Target, page: ProjectPage, file: FileEntry
) -> bytes:
    """METADATA of the wheel built from the sdist *file* for *target* (building it if online).

    What a resolver uses when an sdist's own PKG-INFO cannot be trusted (dynamic, pre-PEP 643).
    """
    project = canonicalize_name(page.project)
    sha = file.sha256
    if sha is None:  # the index gave no hash: the bytes themselves say which sdist this is
        if session.offline:
            raise not_built(project, file, target)
        index = session.index(page.index)
        if index is None:
            raise not_built(project, file, target)
        sha = (await session.catalog.fetch_file(index, project, file)).sha256
    elif not rt.store.has(sha):
        found = await cached_wheel(rt, sha, target)
        if found is None:
            index = session.index(page.index)
            if session.offline or index is None:
                raise not_built(project, file, target)
            await session.catalog.fetch_file(index, project, file)
    built = await wheel_for(rt, session, target, project, file, sha)

    def read() -> bytes:
        stored = rt.metadb.get_core_metadata(built.wheel_sha256)
        if stored is not None:
            return stored
        return metadata_from_file(rt.store.path(built.wheel_sha256), built.filename)

    return await trio.to_thread.run_sync(read)


# -- one build --------------------------------------------------------------------------------


class _Runner:
    """pyproject-hooks' subprocess runner: output to a log, a deadline, killable from trio."""

    def __init__(self, env_dir: Path, log_path: Path, deadline: float) -> None:
        self.env_dir = env_dir
        self.log_path = log_path
        self.deadline = deadline
        self.stop = threading.Event()

    def environ(self, extra: Mapping[str, str] | None) -> dict[str, str]:
        # An allow-list, never the daemon's whole environment: no credentials reach a backend.
        env = scrubbed_environ()
        bin_dir = self.env_dir / "bin"
        env["PATH"] = os.pathsep.join([str(bin_dir), env.get("PATH", os.defpath)])
        env["VIRTUAL_ENV"] = str(self.env_dir)
        env["PYTHONNOUSERSITE"] = "1"
        env.update(extra or {})
        return env

    def __call__(
        self,
        cmd: Sequence[str],
        cwd: str | None = None,
        extra_environ: Mapping[str, str] | None = None,
    ) -> None:
        with self.log_path.open("ab") as out:
            proc = subprocess.Popen(
                list(cmd),
                cwd=cwd,
                env=self.environ(extra_environ),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            while True:
                try:
                    code = proc.wait(0.1)
                    break
                except subprocess.TimeoutExpired:
                    late = time.monotonic() > self.deadline
                    if late or self.stop.is_set():
                        with contextlib.suppress(ProcessLookupError):
                            os.killpg(proc.pid, signal.SIGKILL)
                        proc.wait()
                        raise _Stopped("timed out" if late else "cancelled") from None
        if code != 0:
            raise subprocess.CalledProcessError(code, list(cmd))


class _Stopped(Exception):
    pass


def _tail(log_path: Path) -> str:
    try:
        lines = log_path.read_text("utf-8", "replace").splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-OUTPUT_TAIL:])


def _build_system(root: Path, filename: str) -> tuple[list[str], str, list[str] | None]:
    """``requires``, ``build-backend`` and ``backend-path`` (PEP 517/518 defaults)."""
    pyproject = root / "pyproject.toml"
    system: dict[str, Any] = {}
    if pyproject.is_file():
        try:
            system = tomllib.loads(pyproject.read_text("utf-8")).get("build-system", {})
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise BuildError(f"{filename}: unreadable pyproject.toml ({exc})") from exc
    requires = system.get("requires", list(_LEGACY_REQUIRES))
    backend = system.get("build-backend", _LEGACY_BACKEND)
    backend_path = system.get("backend-path")
    if not isinstance(requires, list) or not all(isinstance(r, str) for r in requires):
        raise BuildError(f"{filename}: [build-system] requires is not a list of strings")
    if not isinstance(backend, str):
        raise BuildError(f"{filename}: [build-system] build-backend is not a string")
    if backend_path is not None and (
        not isinstance(backend_path, list) or not all(isinstance(p, str) for p in backend_path)
    ):
        raise BuildError(f"{filename}: [build-system] backend-path is not a list of strings")
    return requires, backend, backend_path


async def _in_thread(fn: Any, runner: _Runner) -> Any:
    """Run a hook call in a worker thread; cancellation kills the backend's subprocess."""
    try:
        return await trio.to_thread.run_sync(fn, abandon_on_cancel=True)
    except trio.Cancelled:
        runner.stop.set()
        raise


async def build_wheel(
    rt: Runtime,
    session: Session,
    target: Target,
    sdist: Path,
    filename: str,
    workdir: Path,
    *,
    build_seconds: float = BUILD_TIMEOUT,
) -> Path:
    """Build a wheel from the sdist at *sdist* in *workdir* for *target*; the wheel's path.

    Build requirements are resolved and fetched through *session* and installed into a fresh
    venv of the target's interpreter. Raises `BuildError` naming the sdist, with the tail of the
    backend's output.
    """
    if target.executable is None:
        raise BuildError(f"{filename}: cannot build for an imagined target")
    deadline = time.monotonic() + build_seconds
    source = await trio.to_thread.run_sync(extract_sdist, sdist, filename, workdir / "src")
    requires, backend, backend_path = await trio.to_thread.run_sync(_build_system, source, filename)
    env_dir = workdir / "env"
    scheme = await trio.to_thread.run_sync(create_venv, env_dir, target.executable)
    await _provide(rt, session, target, scheme, requires, filename, "[build-system] requires")
    log_path = workdir / "build.log"
    runner = _Runner(env_dir, log_path, deadline)
    hooks = BuildBackendHookCaller(
        str(source),
        backend,
        backend_path=backend_path,
        runner=runner,
        python_executable=str(scheme.interpreter),
    )
    out_dir = workdir / "dist"
    out_dir.mkdir()
    try:
        extra = _strings(await _in_thread(hooks.get_requires_for_build_wheel, runner), filename)
        await _provide(rt, session, target, scheme, extra, filename, "get_requires_for_build_wheel")
        name = await _in_thread(functools.partial(hooks.build_wheel, str(out_dir)), runner)
    except _Stopped as exc:
        reason = f"the build {exc} (limit {build_seconds:.0f} s)"
        raise _failure(filename, reason, log_path) from None
    except SatchelError:
        raise
    except Exception as exc:  # the backend's failure, whatever it raised
        raise _failure(
            filename, f"the build backend {backend} failed ({exc!r})", log_path
        ) from None
    wheel = out_dir / str(name)
    if Path(str(name)).name != str(name) or not wheel.is_file():
        raise _failure(
            filename, f"the backend reported a wheel {name!r} it did not write", log_path
        )
    return wheel


def _strings(value: object, filename: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise BuildError(f"{filename}: get_requires_for_build_wheel did not return a list")
    return value


def _failure(filename: str, reason: str, log_path: Path) -> BuildError:
    tail = _tail(log_path)
    message = f"building {filename} failed: {reason}"
    if tail:
        message += f"\nlast lines of its output:\n{tail}"
    return BuildError(message, details={"file": filename, "output": tail})


async def _provide(
    rt: Runtime,
    session: Session,
    target: Target,
    scheme: Scheme,
    requirements: Sequence[str],
    filename: str,
    where: str,
) -> None:
    """Have the runtime's provider (`Runtime.build_requirements`) put *requirements* in the
    build environment."""
    if not requirements:
        return
    if rt.build_requirements is None:
        raise BuildError(
            f"{filename}: cannot provide its build requirements ({where}: "
            f"{', '.join(requirements)}): this runtime has no build-requirement provider",
            details={"file": filename, "requirements": list(requirements)},
        )
    await rt.build_requirements(rt, session, target, scheme, requirements, filename, where)


async def build_sdists(
    rt: Runtime,
    session: Session,
    target: Target,
    pinned: Sequence[tuple[str, FileEntry]],
    stored: Mapping[str, str],
    *,
    progress: Callable[[int, int | None, str, str], Awaitable[None]] | None = None,
) -> list[tuple[FileEntry, BuiltWheel]]:
    """A wheel for every sdist among *pinned* ((project, file) pairs), so each installs offline
    on *target*: reused when built before, built now otherwise (one at a time: builds are CPU-
    and memory-heavy). *stored* maps file URLs to the sha256 they were stored under.

    An imagined target (``--platform``) has no interpreter to build with: its sdists are named
    in the session's notes instead. The first failing build raises.
    """
    sdists = [(project, file) for project, file in pinned if not file.is_wheel]
    if not sdists:
        return []
    if target.synthetic:
        session.notes.append(
            "not built (an imagined target has no interpreter to build with): "
            + ", ".join(file.filename for _project, file in sdists)
        )
        return []
    built = []
    for number, (project, file) in enumerate(sdists, start=1):
        if progress is not None:
            await progress(number - 1, len(sdists), "builds", f"building {file.filename}")
        sha = stored.get(file.url) or file.sha256 or ""
        built.append((file, await wheel_for(rt, session, target, project, file, sha)))
    return built
