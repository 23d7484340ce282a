"""`index.list/add/remove/pin`: through the real dispatcher and runtime, and end to end."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio

from satchel.client.main import main as client_main
from satchel.daemon.api import RequestContext, dispatch, load_methods
from satchel.daemon.process.app import run_runtime
from satchel.daemon.services.daemon import App, runtime
from satchel.daemon.settings.config import load_config
from satchel.protocol.messages import Error, Message, Request, Result
from tests.support.daemon import DaemonProcess, in_process_app, isolated_env
from tests.support.index_server import IndexServer
from tests.support.wheels import build_wheel

ONE_INDEX = '[[index]]\nname = "first"\nurl = "http://127.0.0.1:9/simple/"\n'


@contextlib.asynccontextmanager
async def running_app(tmp_path: Path, config: str | None = ONE_INDEX) -> AsyncIterator[App]:
    load_methods()
    app = in_process_app(tmp_path)
    app.paths.config_dir.mkdir(parents=True, exist_ok=True)
    if config is not None:
        (app.paths.config_dir / "config.toml").write_text(config)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_runtime, app)
        await runtime(app)
        yield app
        nursery.cancel_scope.cancel()


async def call(app: App, method: str, params: dict[str, Any] | None = None) -> Any:
    async def send(message: Message) -> None:
        pass

    reply = await dispatch(RequestContext(app, 1, method, send), Request(1, method, params or {}))
    if isinstance(reply, Error):
        return reply
    assert isinstance(reply, Result)
    return reply.value


def names(result: Any) -> list[str]:
    return [index.name for index in result.indexes]


async def test_list_shows_config_indexes_with_source(tmp_path: Path) -> None:
    async with running_app(tmp_path) as app:
        result = await call(app, "index.list")
    assert names(result) == ["first"]
    assert result.indexes[0].source == "config.toml"
    assert result.indexes[0].state == "unknown"
    assert result.adopted is False
    assert result.index_strategy == "first-index"


async def test_add_writes_config_and_applies_at_once(tmp_path: Path) -> None:
    async with running_app(tmp_path) as app:
        await call(app, "index.add", {"name": "last", "url": "file:///srv/simple/"})
        result = await call(
            app,
            "index.add",
            {"name": "top", "url": "http://127.0.0.1:8/simple/", "before": "first"},
        )
        rt = await runtime(app)
        assert [i.name for i in rt.config.indexes] == ["top", "first", "last"]
    assert names(result) == ["top", "first", "last"]
    on_disk = load_config(app.paths.config_dir / "config.toml")
    assert [i.name for i in on_disk.indexes] == ["top", "first", "last"]


async def test_add_refuses_credentials_in_the_url(tmp_path: Path) -> None:
    async with running_app(tmp_path) as app:
        error = await call(
            app, "index.add", {"name": "corp", "url": "https://u:tok-123456@127.0.0.1/simple/"}
        )
    assert isinstance(error, Error)
    assert error.code == "config-error"
    assert "SATCHEL_INDEX_CORP_PASSWORD" in error.message
    assert "tok-123456" not in error.message
    assert "tok-123456" not in (app.paths.config_dir / "config.toml").read_text()


async def test_add_refuses_a_duplicate_name_and_a_bad_name(tmp_path: Path) -> None:
    async with running_app(tmp_path) as app:
        duplicate = await call(app, "index.add", {"name": "first", "url": "file:///x/"})
        bad = await call(app, "index.add", {"name": "no spaces", "url": "file:///x/"})
    assert isinstance(duplicate, Error) and "already exists" in duplicate.message
    assert isinstance(bad, Error) and bad.code == "config-error"


async def test_pinned_index_cannot_be_removed_until_unpinned(tmp_path: Path) -> None:
    async with running_app(tmp_path) as app:
        pinned = await call(app, "index.pin", {"project": "Internal_Tool", "index": "first"})
        assert pinned.pins == {"internal-tool": "first"}
        assert pinned.indexes[0].pinned == ["internal-tool"]
        refused = await call(app, "index.remove", {"name": "first"})
        assert isinstance(refused, Error) and "pinned by internal-tool" in refused.message
        await call(app, "index.pin", {"project": "internal-tool", "index": None})
        result = await call(app, "index.remove", {"name": "first"})
    assert "first" not in names(result)
    # Changed by issue 12.3: a config.toml without indexes is a decision, not a cue to adopt.
    assert result.adopted is False
    assert "now lists no index" in result.notes[0]
    assert "satchel index adopt" in result.notes[0]


async def test_unknown_names_are_not_found(tmp_path: Path) -> None:
    async with running_app(tmp_path) as app:
        removed = await call(app, "index.remove", {"name": "nope"})
        pinned = await call(app, "index.pin", {"project": "x", "index": "nope"})
    assert isinstance(removed, Error) and removed.code == "not-found"
    assert isinstance(pinned, Error) and pinned.code == "not-found"


async def test_broken_config_is_not_edited(tmp_path: Path) -> None:
    async with running_app(tmp_path) as app:
        path = app.paths.config_dir / "config.toml"
        path.write_text(ONE_INDEX + "oops\n")
        error = await call(app, "index.add", {"name": "b", "url": "file:///x/"})
    assert isinstance(error, Error) and error.code == "config-error"
    assert "config.toml:4" in error.message and "fix config.toml first" in error.message
    assert path.read_text() == ONE_INDEX + "oops\n"


async def test_first_start_writes_adopted_indexes_without_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Changed by issue 12.3: adoption happens once, at the first start, into config.toml (it
    used to happen on every start and be written out by the first edit)."""
    for var in list(os.environ):
        if var.startswith(("PIP_", "UV_")):
            monkeypatch.delenv(var)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("UV_NO_CONFIG", "1")
    monkeypatch.setenv("PIP_INDEX_URL", "http://bob:adopted-s3cret@127.0.0.1:7/simple/")
    async with running_app(tmp_path, config=None) as app:
        path = app.paths.config_dir / "config.toml"
        written = path.read_text()
        before = await call(app, "index.list")
        assert before.adopted is True
        assert [(i.name, i.source, i.default) for i in before.indexes] == [
            ("127-0-0-1-7", "pip: PIP_INDEX_URL", True)
        ]
        assert "adopted-s3cret" not in before.indexes[0].url
        assert any("first start: adopted" in note for note in before.notes)
        assert any("SATCHEL_INDEX_127_0_0_1_7_USERNAME" in note for note in before.notes)
        again = await call(app, "index.list")
        assert not any("first start" in note for note in again.notes)  # shown once
        after = await call(app, "index.add", {"name": "internal", "url": "file:///srv/simple/"})
    # Added indexes rank above the default index (pip's index-url), never below it.
    assert names(after) == ["internal", "127-0-0-1-7"]
    assert "adopted-s3cret" not in written
    assert 'url = "http://127.0.0.1:7/simple/"' in written
    assert 'adopted-from = "pip: PIP_INDEX_URL"' in written
    assert "default = true" in written
    assert oct(path.stat().st_mode & 0o777) == "0o600"


# -- end to end ---------------------------------------------------------------------------------


def satchel(daemon: DaemonProcess, capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    status = client_main(["--no-autostart", "--socket", daemon.socket, "index", *argv])
    out = capsys.readouterr().out
    assert status == 0, out
    return json.loads(out) if "--json" in argv else out


def test_satchel_index_commands_end_to_end(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = isolated_env(tmp_path)
    config_dir = Path(env["XDG_CONFIG_HOME"]) / "satchel"
    config_dir.mkdir(parents=True)
    (config_dir / "config.toml").write_text(ONE_INDEX)
    links = tmp_path / "links"
    build_wheel(links, "demo", "1.0")
    with IndexServer(tmp_path / "index") as index, DaemonProcess(env) as daemon:
        added = satchel(daemon, capsys, "add", "internal", index.url, "--before", "first", "--json")
        assert [i["name"] for i in added["indexes"]] == ["internal", "first"]
        satchel(daemon, capsys, "add", "wheels", str(links), "--find-links")
        satchel(daemon, capsys, "pin", "demo", "internal")
        listing = satchel(daemon, capsys, "list")
        assert "1. internal  " + index.url in listing
        assert "3. wheels  " + links.as_uri() + "  [find-links]" in listing
        assert "pinned: demo" in listing
        assert "from config.toml" in listing
    assert "internal" in (config_dir / "config.toml").read_text()


async def test_add_default_is_written_last_and_there_is_only_one(tmp_path: Path) -> None:
    """Issue 12.1: the default (public) index is marked and always ranked last."""
    async with running_app(tmp_path) as app:
        public = {"name": "pub", "url": "http://127.0.0.1:8/simple/", "default": True}
        added = await call(app, "index.add", public)
        assert [(i.name, i.default) for i in added.indexes] == [("first", False), ("pub", True)]
        later = await call(app, "index.add", {"name": "two", "url": "http://127.0.0.1:7/simple/"})
        assert names(later) == ["first", "two", "pub"]
        again = await call(
            app, "index.add", {"name": "pub2", "url": "http://127.0.0.1:6/simple/", "default": True}
        )
        text = (app.paths.config_dir / "config.toml").read_text()
    assert isinstance(again, Error) and "pub is already the default index" in again.message
    assert text.index('name = "two"') < text.index('name = "pub"')


async def test_an_unmarked_builtin_default_ahead_of_other_indexes_is_pointed_out(
    tmp_path: Path,
) -> None:
    """Issue 12.1: a config.toml written by an older Satchel lists pip's built-in default
    without `default = true`, ahead of the private index; `index list` says how to fix it."""
    from satchel.daemon.settings.toolsettings import pip_default_index

    builtin = pip_default_index()
    assert builtin is not None
    old = f'[[index]]\nname = "default"\nurl = "{builtin}"\n\n' + ONE_INDEX
    async with running_app(tmp_path, config=old) as app:
        listing = await call(app, "index.list")
    assert any("not marked `default = true`" in line for line in listing.drift)
