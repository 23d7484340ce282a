"""config.toml: parsing, errors that point at a line, writing, and live reload."""

from __future__ import annotations

import contextlib
import os
import resource
from pathlib import Path

import pytest
import trio

from satchel.daemon.errors import ConfigError
from satchel.daemon.settings import liveconfig
from satchel.daemon.settings.config import (
    Config,
    IndexConfig,
    Settings,
    check_index,
    load_config,
    parse_config,
    save_config,
)
from satchel.daemon.settings.liveconfig import LiveConfig, watch_config

GOOD = """\
[[index]]
name = "internal"
url = "http://127.0.0.1:9/simple/"
explicit = true
max-age = "10m"

[[index]]
name = "mirror"
url = "file:///srv/mirror/simple/"

[pins]
Internal_Tool = "internal"

[settings]
index-strategy = "unsafe-best-match"
cache-max-size = "2 GiB"
"""


def test_indexes_pins_and_settings_are_parsed_in_order() -> None:
    config = parse_config(GOOD)
    assert [index.name for index in config.indexes] == ["internal", "mirror"]
    assert config.indexes[0].explicit is True
    assert config.indexes[0].max_age == 600
    assert config.indexes[1] == IndexConfig(name="mirror", url="file:///srv/mirror/simple/")
    assert config.pins == {"internal-tool": "internal"}
    assert config.settings.index_strategy == "unsafe-best-match"
    assert config.settings.cache_max_size == 2 * 2**30


def test_missing_file_is_an_empty_configuration(tmp_path: Path) -> None:
    assert load_config(tmp_path / "config.toml") == Config()


def test_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[[index]]\nname = "a"\nurl = "http://127.0.0.1/simple/\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert f"{path}:3:" in str(info.value)
    assert info.value.details["line"] == 3


def test_unknown_index_key_names_its_line() -> None:
    text = '[[index]]\nname = "a"\nurl = "http://127.0.0.1/simple/"\n\n[[index]]\nname = "b"\n'
    text += 'url = "http://127.0.0.1/b/"\nexplict = true\n'
    with pytest.raises(ConfigError, match=r"config\.toml:8: unknown index key 'explict'"):
        parse_config(text)


def test_unknown_setting_is_an_error_with_its_line() -> None:
    with pytest.raises(ConfigError, match=r":3: unknown setting 'colour'"):
        parse_config('[settings]\nindex-strategy = "first-index"\ncolour = "blue"\n')


def test_bad_value_names_key_and_line() -> None:
    with pytest.raises(ConfigError, match=r":2: setting 'index-strategy': expected one of"):
        parse_config('[settings]\nindex-strategy = "best"\n')


def test_index_without_url_points_at_its_table() -> None:
    text = '[[index]]\nname = "a"\nurl = "http://127.0.0.1/a/"\n[[index]]\nname = "b"\n'
    with pytest.raises(ConfigError, match=r":4: index #2 has no 'url'"):
        parse_config(text)


def test_pin_to_unknown_index_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r":2: pin 'x': no index named 'nowhere'"):
        parse_config('[pins]\nx = "nowhere"\n')


def test_duplicate_index_names_are_refused() -> None:
    entry = '[[index]]\nname = "a"\nurl = "http://127.0.0.1/a/"\n'
    with pytest.raises(ConfigError, match="duplicate index name 'a'"):
        parse_config(entry + entry)


def test_non_http_or_file_url_is_refused() -> None:
    with pytest.raises(ConfigError, match=r":3: index 'url': expected an http"):
        parse_config('[[index]]\nname = "a"\nurl = "ftp://127.0.0.1/a/"\n')


def test_error_messages_redact_credentials() -> None:
    text = '[[index]]\nname = "a"\nurl = "http://bob:hunter22@127.0.0.1/a/"\nbogus = 1\n'
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    assert "hunter22" not in str(info.value)


def test_save_then_load_round_trips_preserving_order(tmp_path: Path) -> None:
    config = Config(
        indexes=(
            IndexConfig(name="z-last-alphabetically", url='http://127.0.0.1/"q"/', explicit=True),
            IndexConfig(name="a", url="file:///tmp/links/", kind="find-links", max_age=5),
        ),
        pins={"internal-tool": "z-last-alphabetically"},
        settings=Settings(local_index_port=0, refresh_interval=3600),
    )
    path = tmp_path / "satchel" / "config.toml"
    save_config(path, config)
    assert load_config(path) == config
    assert path.stat().st_mode & 0o777 == 0o600


class _Signal:
    """Collects callback values and lets a test wait for the next one."""

    def __init__(self) -> None:
        self.values: list[object] = []
        self._event = trio.Event()

    def __call__(self, value: object) -> None:
        self.values.append(value)
        self._event.set()

    async def next(self) -> object:
        with trio.fail_after(60):  # a hang guard, not a measurement
            await self._event.wait()
        self._event = trio.Event()
        return self.values[-1]


async def test_live_reload_picks_up_edits(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[[index]]\nname = "a"\nurl = "http://127.0.0.1/a/"\n')
    changes = _Signal()
    async with trio.open_nursery() as nursery:
        live: LiveConfig = await nursery.start(watch_config, path, changes)
        assert [i.name for i in live.config.indexes] == ["a"]
        save_config(path, Config(indexes=(IndexConfig(name="b", url="http://127.0.0.1/b/"),)))
        new = await changes.next()
        nursery.cancel_scope.cancel()
    assert isinstance(new, Config)
    assert [i.name for i in new.indexes] == ["b"]
    assert live.config == new
    assert live.error is None


async def test_a_watch_the_os_refuses_is_retried_and_no_edit_is_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Out of descriptors (a flood of idle clients at start-up, issue 11.7), the OS refuses the
    watch: the daemon keeps its configuration and watches again later (it once died of it), and
    an edit made while there was no watch is picked up by the next one."""
    monkeypatch.setattr(liveconfig, "WATCH_RETRY_FIRST", 0.05)
    path = tmp_path / "config.toml"
    path.write_text('[[index]]\nname = "a"\nurl = "http://127.0.0.1/a/"\n')
    changes = _Signal()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    hoard: list[int] = []
    async with trio.open_nursery() as nursery:
        live = LiveConfig(path)
        # Every descriptor taken: the watch cannot get its inotify one.
        resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + 8, hard))
        try:
            with contextlib.suppress(OSError):
                while True:
                    hoard.append(os.open(os.devnull, os.O_RDONLY))
            await nursery.start(live.watch, changes)
            with trio.fail_after(60):  # a hang guard
                while "cannot watch" not in caplog.text:  # noqa: ASYNC110 (a log line)
                    await trio.sleep(0.01)
        finally:
            for fd in hoard:
                os.close(fd)
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        save_config(path, Config(indexes=(IndexConfig(name="b", url="http://127.0.0.1/b/"),)))
        new = await changes.next()
        nursery.cancel_scope.cancel()
    assert isinstance(new, Config)
    assert [i.name for i in new.indexes] == ["b"]
    assert "Too many open files" in caplog.text


async def test_broken_edit_keeps_last_good_config_and_reports_the_line(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[[index]]\nname = "a"\nurl = "http://127.0.0.1/a/"\n')
    changes, errors = _Signal(), _Signal()
    async with trio.open_nursery() as nursery:
        live: LiveConfig = await nursery.start(
            lambda task_status: watch_config(
                path, changes, on_error=errors, task_status=task_status
            )
        )
        path.write_text('[[index]]\nname = "a"\nurl = "http://127.0.0.1/a/"\nexplicit = maybe\n')
        error = await errors.next()
        assert error is live.error
        assert ":4:" in str(error)
        assert [i.name for i in live.config.indexes] == ["a"]
        path.write_text('[[index]]\nname = "c"\nurl = "http://127.0.0.1/c/"\n')
        await changes.next()
        nursery.cancel_scope.cancel()
    assert live.error is None
    assert [i.name for i in live.config.indexes] == ["c"]


async def test_fixing_a_broken_edit_back_to_the_same_config_clears_the_error(
    tmp_path: Path,
) -> None:
    good = '[[index]]\nname = "a"\nurl = "http://127.0.0.1/a/"\n'
    path = tmp_path / "config.toml"
    path.write_text(good)
    changes, errors = _Signal(), _Signal()
    async with trio.open_nursery() as nursery:
        live: LiveConfig = await nursery.start(
            lambda task_status: watch_config(
                path, changes, on_error=errors, task_status=task_status
            )
        )
        path.write_text(good + "[[[\n")
        await errors.next()
        path.write_text(good)
        restored = await changes.next()
        nursery.cancel_scope.cancel()
    assert live.error is None
    assert restored == live.config


def test_check_index_refuses_bad_names_and_urls() -> None:
    check_index(IndexConfig(name="ok.name-1", url="file:///srv/simple/"))
    with pytest.raises(ConfigError, match="index name 'bad name'"):
        check_index(IndexConfig(name="bad name", url="http://127.0.0.1/"))
    with pytest.raises(ConfigError, match="index url"):
        check_index(IndexConfig(name="a", url="127.0.0.1/simple"))


def test_the_default_index_is_consulted_last_wherever_it_is_listed() -> None:
    config = parse_config(
        '[[index]]\nname = "public"\nurl = "http://127.0.0.1:1/simple/"\ndefault = true\n'
        '[[index]]\nname = "internal"\nurl = "http://127.0.0.1:2/simple/"\n'
    )
    assert [(i.name, i.default) for i in config.indexes] == [
        ("internal", False),
        ("public", True),
    ]


def test_only_one_index_may_be_the_default() -> None:
    text = (
        '[[index]]\nname = "a"\nurl = "http://127.0.0.1:1/simple/"\ndefault = true\n'
        '[[index]]\nname = "b"\nurl = "http://127.0.0.1:2/simple/"\ndefault = true\n'
    )
    with pytest.raises(ConfigError, match=r"config.toml:8: only one index may be the default"):
        parse_config(text)


def test_the_default_flag_round_trips(tmp_path: Path) -> None:
    config = parse_config('[[index]]\nname = "d"\nurl = "http://127.0.0.1:1/"\ndefault = true\n')
    save_config(tmp_path / "config.toml", config)
    assert load_config(tmp_path / "config.toml") == config
