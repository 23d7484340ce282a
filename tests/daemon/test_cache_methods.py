"""`cache.info` / `cache.verify`: through the real dispatcher, and end to end with the client."""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio

from satchel.client.commands import cache as cache_command
from satchel.client.main import main as client_main
from satchel.daemon.api import RequestContext, dispatch
from satchel.daemon.api import cache as cache_methods
from satchel.daemon.process.app import run_runtime
from satchel.daemon.services.daemon import App, runtime
from satchel.daemon.services.paths import Paths
from satchel.daemon.services.state import ExitRecorder
from satchel.daemon.storage.metadb import MetaDB
from satchel.daemon.storage.model import Origin
from satchel.daemon.storage.store import BlobStore, open_cache
from satchel.protocol.messages import Message, Progress, Request, Result
from tests.support.daemon import DaemonProcess, isolated_env


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def body(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def add_file(store: BlobStore, db: MetaDB, data: bytes, filename: str, *indexes: str) -> str:
    info = await store.ingest(body(data), expected_sha256=sha(data), label=filename)
    db.record_blob(info.sha256, info.size, filename)
    for index in indexes:
        db.add_origin(
            info.sha256,
            Origin(index=index, project="pkg", filename=filename, url=f"http://127.0.0.1/{index}"),
        )
    return info.sha256


@contextlib.asynccontextmanager
async def running_app(tmp_path: Path) -> AsyncIterator[App]:
    """An App whose runtime (cache, config, upstream) runs as in a daemon; one loopback index
    is configured so that nothing is adopted from this machine's pip or uv settings."""
    app = make_app(tmp_path)
    (tmp_path / "config").mkdir(parents=True, exist_ok=True)
    (tmp_path / "config" / "config.toml").write_text(
        '[[index]]\nname = "local"\nurl = "http://127.0.0.1:9/simple/"\n'
    )
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_runtime, app)
        await runtime(app)
        yield app
        nursery.cancel_scope.cancel()


def make_app(tmp_path: Path) -> App:
    paths = Paths(
        runtime_dir=tmp_path / "run",
        socket=tmp_path / "run" / "s.sock",
        socket_is_default=True,
        cache_dir=tmp_path / "cache",
        config_dir=tmp_path / "config",
        state_dir=tmp_path / "state",
        log_dir=tmp_path / "log",
    )
    return App(
        paths,
        activation="manual",
        idle_timeout=None,
        version="0",
        build_id="test",
        exit_recorder=ExitRecorder(tmp_path / "state"),
    )


class Caller:
    """Dispatches requests as the server does, collecting the streamed events."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.events: list[Message] = []

    async def __call__(self, method: str) -> Any:
        async def send(message: Message) -> None:
            self.events.append(message)

        reply = await dispatch(RequestContext(self.app, 1, method, send), Request(1, method, {}))
        assert isinstance(reply, Result), reply
        return reply.value


async def test_cache_info_counts_files_once_and_under_each_index(tmp_path: Path) -> None:
    async with running_app(tmp_path) as app:
        store, db = await cache_methods.cache_services(app)
        await add_file(store, db, b"A" * 1000, "a-1.0-py3-none-any.whl", "internal", "mirror")
        await add_file(store, db, b"B" * 500, "b-1.0-py3-none-any.whl", "mirror")
        await add_file(store, db, b"C" * 20, "built-1.0-cp311-cp311-linux_x86_64.whl")

        info = await Caller(app)("cache.info")

        assert info.cache_dir == str(tmp_path / "cache")
        assert (info.files, info.bytes, info.unattributed_files) == (3, 1520, 1)
        assert [(i.index, i.files, i.bytes) for i in info.indexes] == [
            ("internal", 1, 1000),
            ("mirror", 2, 1500),
        ]
        assert info.database_bytes > 0
        assert info.quarantined == 0


async def test_cache_methods_use_the_runtime_store_opened_once_at_start(tmp_path: Path) -> None:
    async with running_app(tmp_path) as app:
        store, db = await cache_methods.cache_services(app)
        rt = await runtime(app)
        assert (store, db) == (rt.store, rt.metadb)


async def test_cache_verify_quarantines_corrupt_files_and_forgets_them(tmp_path: Path) -> None:
    async with running_app(tmp_path) as app:
        store, db = await cache_methods.cache_services(app)
        good = await add_file(store, db, b"good" * 100, "good-1.0.whl", "internal")
        bad = await add_file(store, db, b"bad" * 100, "bad-1.0.whl", "internal", "mirror")
        store.path(bad).chmod(0o644)
        store.path(bad).write_bytes(b"flipped bits")
        caller = Caller(app)

        result = await caller("cache.verify")

        assert result.checked == 2
        [corrupt] = result.corrupt
        assert (corrupt.sha256, corrupt.filename, corrupt.indexes) == (
            bad,
            "bad-1.0.whl",
            ["internal", "mirror"],
        )
        assert corrupt.actual_sha256 == sha(b"flipped bits")
        assert await trio.Path(corrupt.quarantined_as).read_bytes() == b"flipped bits"
        assert db.blob_rows() == {good: 400}
        assert [o.index for o in db.origins(bad)] == ["internal", "mirror"]  # where to refetch
        progress = [e for e in caller.events if isinstance(e, Progress)]
        assert progress and progress[-1].done == progress[-1].total == 400 + len(b"flipped bits")
        assert (await caller("cache.info")).quarantined == 1
        assert (await caller("cache.verify")).corrupt == []


# -- end to end: client command against a real daemon ---------------------------------------


def run_command(
    daemon: DaemonProcess, action: str, *, as_json: bool, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str]:
    """`satchel --no-autostart --socket S cache ACTION [--json]` through the client's main."""
    argv = ["--no-autostart", "--socket", daemon.socket, "cache", action]
    status = client_main([*argv, "--json"] if as_json else argv)
    return status, capsys.readouterr().out


def seed_cache(cache_dir: Path) -> tuple[str, str]:
    """Put two files in the daemon's cache before it starts (as an earlier run would have)."""

    async def seed() -> tuple[str, str]:
        store, db, _ = open_cache(cache_dir)
        first = await add_file(store, db, b"1" * 2000, "one-1.0-py3-none-any.whl", "internal")
        second = await add_file(store, db, b"2" * 3000, "two-1.0-py3-none-any.whl", "mirror")
        db.close()
        return first, second

    return trio.run(seed)


def test_satchel_cache_info_and_verify_end_to_end(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache_dir = tmp_path / "cache" / "satchel"
    _, second = seed_cache(cache_dir)
    rotten = BlobStore(cache_dir).path(second)
    rotten.chmod(0o644)
    rotten.write_bytes(b"rotten")

    with DaemonProcess(isolated_env(tmp_path)) as daemon:
        status, out = run_command(daemon, "info", as_json=True, capsys=capsys)
        assert status == 0
        info = json.loads(out)
        assert (info["files"], info["bytes"]) == (2, 5000)
        assert [i["index"] for i in info["indexes"]] == ["internal", "mirror"]

        status, out = run_command(daemon, "info", as_json=False, capsys=capsys)
        assert status == 0
        assert "files:          2 (5.0 kB)" in out
        assert "internal" in out and "mirror" in out

        status, out = run_command(daemon, "verify", as_json=False, capsys=capsys)
        assert status == 1
        assert "two-1.0-py3-none-any.whl" in out
        assert f"sha256 {second}" in out and "from mirror" in out

        status, out = run_command(daemon, "verify", as_json=False, capsys=capsys)
        assert status == 0
        assert out.startswith("verified 1 files (2.0 kB): all intact")


def test_format_size_uses_si_units() -> None:
    assert [cache_command.format_size(n) for n in (0, 999, 1000, 1_234_567, 10**13)] == [
        "0 B",
        "999 B",
        "1.0 kB",
        "1.2 MB",
        "10.0 TB",
    ]
