"""PEP 517 builds of sdists (`satchel.daemon.requests.builder`), in process, against a
loopback index.

Each test runs the daemon's real runtime (store, metadb, upstream, catalog) with one configured
index: an `IndexServer` on 127.0.0.1 serving real sdists (with an in-tree backend, so builds need
no network) and real wheels. Builds run the backend in a subprocess of this interpreter, in a
fresh venv, exactly as the daemon does.
"""

from __future__ import annotations

import contextlib
import io
import sys
import tarfile
import zipfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio

from satchel.daemon.errors import BuildError
from satchel.daemon.indexes.session import Session
from satchel.daemon.process.app import run_runtime
from satchel.daemon.requests.builder import NotBuilt, interpreter_key, sdist_metadata, wheel_for
from satchel.daemon.requests.resolution import Inputs, read_inputs, resolve_request
from satchel.daemon.requests.runtime import Runtime
from satchel.daemon.resolver.target import Target, query_interpreter
from satchel.daemon.services.daemon import runtime
from satchel.daemon.storage.model import FileEntry, ProjectPage
from satchel.protocol.methods.resolve import ResolveParams
from tests.support.daemon import HANG_GUARD, in_process_app
from tests.support.index_server import IndexServer
from tests.support.wheels import build_sdist, build_wheel, file_sha256


@dataclass
class Env:
    rt: Runtime
    index: IndexServer
    target: Target
    dist: Path

    def session(self, *, offline: bool = False) -> Session:
        return self.rt.catalog.session(offline=offline)

    async def entry(self, project: str, filename: str) -> tuple[ProjectPage, FileEntry]:
        """The page and file entry the index lists for *filename*."""
        scoped = await self.session().scoped_pages(project)
        for page in scoped.pages:
            for file in page.files:
                if file.filename == filename:
                    return page, file
        raise AssertionError(f"{filename} not listed for {project}")


@contextlib.asynccontextmanager
async def environment(tmp_path: Path) -> AsyncIterator[Env]:
    index = IndexServer(tmp_path / "index").start()
    app = in_process_app(tmp_path / "daemon")
    config = tmp_path / "daemon" / "config"
    config.mkdir(parents=True)
    (config / "config.toml").write_text(f'[[index]]\nname = "local"\nurl = "{index.url}"\n')
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run_runtime, app)
            rt = await runtime(app)
            target = await query_interpreter(sys.executable, cache_dir=rt.interpreters_dir)
            yield Env(rt, index, target, tmp_path / "dist")
            nursery.cancel_scope.cancel()
    finally:
        index.stop()


def hand_made_sdist(out: Path, name: str, version: str, backend: str) -> Path:
    """An sdist whose in-tree backend is *backend* (source of a module named ``backend``)."""
    root = f"{name}-{version}"
    members = {
        f"{root}/PKG-INFO": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\n",
        f"{root}/pyproject.toml": (
            '[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["."]\n'
        ),
        f"{root}/backend.py": backend,
    }
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{root}.tar.gz"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tf:
        for arcname, text in members.items():
            raw = text.encode()
            info = tarfile.TarInfo(arcname)
            info.size = len(raw)
            tf.addfile(info, io.BytesIO(raw))
    path.write_bytes(buffer.getvalue())
    return path


async def test_builds_a_wheel_with_build_requirements_fetched_through_the_index(
    tmp_path: Path,
) -> None:
    async with environment(tmp_path) as env:
        env.index.add(build_wheel(env.dist, "flit-helper", "2.0"))
        sdist = env.index.add(
            build_sdist(
                env.dist,
                "dyn-pkg",
                "1.0",
                requires=["dep>=1"],
                build_requires=["flit-helper>=2"],
                static_metadata=False,
            )
        )
        page, file = await env.entry("dyn-pkg", sdist.name)
        await env.rt.catalog.fetch_file(env.session().indexes[0], "dyn-pkg", file)

        built = await wheel_for(
            env.rt, env.session(), env.target, "dyn-pkg", file, file_sha256(sdist)
        )

        assert built.filename == "dyn_pkg-1.0-py3-none-any.whl"
        assert env.rt.store.has(built.wheel_sha256)
        recorded = env.rt.metadb.get_built_wheel(file_sha256(sdist), interpreter_key(env.target))
        assert recorded is not None and recorded.wheel_sha256 == built.wheel_sha256
        with zipfile.ZipFile(env.rt.store.path(built.wheel_sha256)) as zf:
            assert "dyn_pkg/__init__.py" in zf.namelist()
        # The build requirement came from the index, through the store, with its provenance.
        assert any("flit_helper-2.0" in path for path in env.index.requests)
        helper = file_sha256(env.dist / "flit_helper-2.0-py3-none-any.whl")
        assert [o.index for o in env.rt.metadb.origins(helper)] == ["local"]
        # The metadata a resolver needs is the built wheel's, with the dependency in it.
        metadata = await sdist_metadata(env.rt, env.session(offline=True), env.target, page, file)
        assert b"Requires-Dist: dep>=1" in metadata


async def test_a_second_request_reuses_the_build(tmp_path: Path) -> None:
    async with environment(tmp_path) as env:
        sdist = env.index.add(build_sdist(env.dist, "once", "1.0", static_metadata=False))
        _page, file = await env.entry("once", sdist.name)
        await env.rt.catalog.fetch_file(env.session().indexes[0], "once", file)
        sha = file_sha256(sdist)

        async with trio.open_nursery() as nursery:
            for _ in range(2):
                nursery.start_soon(wheel_for, env.rt, env.session(), env.target, "once", file, sha)
        first = env.rt.metadb.get_built_wheel(sha, interpreter_key(env.target))
        again = await wheel_for(env.rt, env.session(offline=True), env.target, "once", file, sha)

        assert first is not None
        assert again.built_at == first.built_at  # built once, not three times


async def test_online_resolve_learns_dynamic_dependencies_by_building(tmp_path: Path) -> None:
    async with environment(tmp_path) as env:
        env.index.add(build_wheel(env.dist, "dep", "1.5"))
        env.index.add(
            build_sdist(env.dist, "dyn-pkg", "1.0", requires=["dep>=1"], static_metadata=False)
        )
        params = ResolveParams(requirements=["dyn-pkg"])
        inputs: Inputs = await read_inputs(params)

        outcome = await resolve_request(env.rt, params, inputs, env.target)

        assert {(p.name, p.version) for p in outcome.resolution.pins} == {
            ("dyn-pkg", "1.0"),
            ("dep", "1.5"),
        }


async def test_offline_an_sdist_never_built_fails_naming_the_interpreter_and_the_fix(
    tmp_path: Path,
) -> None:
    async with environment(tmp_path) as env:
        sdist = env.index.add(build_sdist(env.dist, "dyn-pkg", "1.0", static_metadata=False))
        page, file = await env.entry("dyn-pkg", sdist.name)
        await env.rt.catalog.fetch_file(env.session().indexes[0], "dyn-pkg", file)

        with pytest.raises(NotBuilt) as caught:
            await sdist_metadata(env.rt, env.session(offline=True), env.target, page, file)

        message = str(caught.value)
        assert "never built for the interpreter" in message
        assert env.target.python_full_version in message
        assert f"satchel prefetch dyn-pkg==1.0 --python {env.target.executable}" in message
        key = interpreter_key(env.target)
        assert env.rt.metadb.get_built_wheel(file_sha256(sdist), key) is None


async def test_a_failing_backend_is_a_build_error_with_the_tail_of_its_output(
    tmp_path: Path,
) -> None:
    backend = (
        "import sys\n"
        "def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):\n"
        "    print('compiler exploded: marker-4711', file=sys.stderr)\n"
        "    raise SystemExit(3)\n"
    )
    async with environment(tmp_path) as env:
        sdist = env.index.add(hand_made_sdist(env.dist, "broken", "1.0", backend))
        _page, file = await env.entry("broken", sdist.name)
        await env.rt.catalog.fetch_file(env.session().indexes[0], "broken", file)

        with pytest.raises(BuildError) as caught:
            await wheel_for(env.rt, env.session(), env.target, "broken", file, file_sha256(sdist))

        assert "building broken-1.0.tar.gz failed" in str(caught.value)
        assert "marker-4711" in str(caught.value)
        key = interpreter_key(env.target)
        assert env.rt.metadb.get_built_wheel(file_sha256(sdist), key) is None


async def test_a_hung_backend_is_killed_at_the_deadline(tmp_path: Path) -> None:
    backend = (
        "import time\n"
        "def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):\n"
        "    print('still thinking', flush=True)\n"
        "    time.sleep(600)  # outlasts every guard here; bounded, should a failure leave it\n"
    )
    async with environment(tmp_path) as env:
        sdist = env.index.add(hand_made_sdist(env.dist, "slow", "1.0", backend))
        _page, file = await env.entry("slow", sdist.name)
        await env.rt.catalog.fetch_file(env.session().indexes[0], "slow", file)

        # Only the 1.5 s deadline can end it within the guard (fail_after: a hang guard).
        with trio.fail_after(HANG_GUARD), pytest.raises(BuildError) as caught:
            await wheel_for(
                env.rt,
                env.session(),
                env.target,
                "slow",
                file,
                file_sha256(sdist),
                build_seconds=1.5,
            )

        assert "timed out" in str(caught.value)
        assert "still thinking" in str(caught.value)


async def test_a_wheel_for_another_project_is_refused(tmp_path: Path) -> None:
    backend = (
        "import zipfile, os\n"
        "def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):\n"
        "    name = 'other-1.0-py3-none-any.whl'\n"
        "    zipfile.ZipFile(os.path.join(wheel_directory, name), 'w').close()\n"
        "    return name\n"
    )
    async with environment(tmp_path) as env:
        sdist = env.index.add(hand_made_sdist(env.dist, "liar", "1.0", backend))
        _page, file = await env.entry("liar", sdist.name)
        await env.rt.catalog.fetch_file(env.session().indexes[0], "liar", file)

        with pytest.raises(BuildError, match="unusable"):
            await wheel_for(env.rt, env.session(), env.target, "liar", file, file_sha256(sdist))


async def test_an_sdist_escaping_its_directory_is_refused_before_anything_runs(
    tmp_path: Path,
) -> None:
    async with environment(tmp_path) as env:
        env.dist.mkdir(parents=True)
        sdist = env.dist / "escape-1.0.tar.gz"
        with tarfile.open(sdist, "w:gz") as tf:
            for name, data in (("escape-1.0/setup.py", b""), ("../escaped.txt", b"gotcha")):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
        env.index.add(sdist)
        _page, file = await env.entry("escape", sdist.name)
        await env.rt.catalog.fetch_file(env.session().indexes[0], "escape", file)

        with pytest.raises(BuildError, match="cannot unpack"):
            await wheel_for(env.rt, env.session(), env.target, "escape", file, file_sha256(sdist))

        key = interpreter_key(env.target)
        assert env.rt.metadb.get_built_wheel(file_sha256(sdist), key) is None


async def test_a_cancelled_build_kills_the_backend(tmp_path: Path) -> None:
    pid_file = tmp_path / "backend.pid"
    backend = (
        "import os, time\n"
        "def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):\n"
        f"    open({str(pid_file)!r}, 'w').write(str(os.getpid()))\n"
        "    time.sleep(600)  # outlasts every guard here; bounded, should a failure leave it\n"
    )
    async with environment(tmp_path) as env:
        sdist = env.index.add(hand_made_sdist(env.dist, "stuck", "1.0", backend))
        _page, file = await env.entry("stuck", sdist.name)
        await env.rt.catalog.fetch_file(env.session().indexes[0], "stuck", file)

        # The backend outlasts the guard: the cancellation comes back only by ending it
        # (fail_after: a hang guard, not a measurement).
        with trio.fail_after(HANG_GUARD):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(
                    wheel_for, env.rt, env.session(), env.target, "stuck", file, file_sha256(sdist)
                )
                await eventually(lambda: pid_file.exists() and bool(pid_file.read_text()))
                nursery.cancel_scope.cancel()

        pid = int(await trio.to_thread.run_sync(pid_file.read_text))
        await eventually(lambda: not _alive(pid))


async def eventually(check: Callable[[], bool], seconds: float = HANG_GUARD) -> None:
    """Wait until *check* (blocking, run in a thread) holds, or fail after *seconds* (a hang
    guard, not a measurement)."""
    for _ in range(int(seconds / 0.05)):
        if await trio.to_thread.run_sync(check):
            return
        await trio.sleep(0.05)
    raise AssertionError(f"still not true after {seconds} s")


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
