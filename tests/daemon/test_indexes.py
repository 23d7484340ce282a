"""Adoption of the user's pip and uv index configuration, in a temporary HOME and /etc."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from satchel.daemon.config import Config, IndexConfig
from satchel.daemon.indexes import adopt_indexes, effective_indexes, pip_default_index

DEFAULT = "https://default.example.invalid/simple/"


class _Env:
    """A fake user: HOME, XDG dirs and a system root, all under tmp_path."""

    def __init__(self, tmp_path: Path) -> None:
        self.home = tmp_path / "home"
        self.root = tmp_path / "root"
        self.home.mkdir()
        self.root.mkdir()
        self.vars: dict[str, str] = {"HOME": str(self.home)}

    def write(self, path: str, text: str) -> Path:
        target = self.root / path.lstrip("/") if path.startswith("/") else self.home / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        return target

    def adopt(self) -> list[tuple[str, str, str, str]]:
        found = adopt_indexes(self.vars, default_index=lambda: DEFAULT, system_root=self.root)
        return [(i.name, i.url, i.kind, i.source) for i in found]


@pytest.fixture
def env(tmp_path: Path) -> _Env:
    return _Env(tmp_path)


def test_nothing_configured_adopts_pips_builtin_default(env: _Env) -> None:
    assert env.adopt() == [("default", DEFAULT, "simple", "pip: built-in default index")]


def test_pip_extra_indexes_come_before_the_index_url(env: _Env) -> None:
    """The index-url is the default index, consulted last (as uv does with extra indexes), so
    under first-index a private extra index cannot be shadowed by the public default."""
    env.vars["PIP_INDEX_URL"] = "http://127.0.0.1:1/simple/"
    env.vars["PIP_EXTRA_INDEX_URL"] = "http://127.0.0.1:2/simple/  http://127.0.0.1:3/simple/"
    assert env.adopt() == [
        ("pip-extra-1", "http://127.0.0.1:2/simple/", "simple", "pip: PIP_EXTRA_INDEX_URL"),
        ("pip-extra-2", "http://127.0.0.1:3/simple/", "simple", "pip: PIP_EXTRA_INDEX_URL"),
        ("pip-index", "http://127.0.0.1:1/simple/", "simple", "pip: PIP_INDEX_URL"),
    ]


def test_the_adopted_default_index_is_marked_default(env: _Env) -> None:
    env.vars["PIP_INDEX_URL"] = "http://127.0.0.1:1/simple/"
    env.vars["PIP_EXTRA_INDEX_URL"] = "http://127.0.0.1:2/simple/"
    found = adopt_indexes(env.vars, default_index=lambda: DEFAULT, system_root=env.root)
    assert [(i.name, i.default) for i in found] == [("pip-extra-1", False), ("pip-index", True)]


def test_extra_index_only_puts_pips_builtin_default_last(env: _Env) -> None:
    env.vars["PIP_EXTRA_INDEX_URL"] = "http://127.0.0.1:2/simple/"
    assert [name for name, *_ in env.adopt()] == ["pip-extra-1", "default"]


def test_user_pip_conf_overrides_global_and_install_overrides_global_section(env: _Env) -> None:
    env.write("/etc/pip.conf", "[global]\nindex-url = http://127.0.0.1:1/global/\n")
    user = env.write(
        ".config/pip/pip.conf",
        "[global]\nindex-url = http://127.0.0.1:2/user/\n"
        "[install]\nindex-url = http://127.0.0.1:3/install/\n",
    )
    assert env.adopt() == [
        ("pip-index", "http://127.0.0.1:3/install/", "simple", f"pip: {user} [install] index-url")
    ]


def test_global_pip_conf_is_read_from_etc(env: _Env) -> None:
    path = env.write("/etc/xdg/pip/pip.conf", "[global]\nextra-index-url = file:///srv/extra\n")
    assert env.adopt()[0] == (
        "pip-extra-1",
        "file:///srv/extra",
        "simple",
        f"pip: {env.root}/etc/xdg/pip/pip.conf [global] extra-index-url",
    )
    assert path.exists()


def test_pip_config_file_variable_skips_user_config(env: _Env, tmp_path: Path) -> None:
    env.write(".config/pip/pip.conf", "[global]\nindex-url = http://127.0.0.1:2/user/\n")
    special = tmp_path / "special.conf"
    special.write_text("[global]\nextra-index-url = http://127.0.0.1:4/special/\n")
    env.vars["PIP_CONFIG_FILE"] = str(special)
    assert [url for _, url, *_ in env.adopt()] == ["http://127.0.0.1:4/special/", DEFAULT]


def test_find_links_become_find_links_indexes(env: _Env, tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    env.vars["PIP_FIND_LINKS"] = f"{wheels} http://127.0.0.1:5/links.html"
    assert env.adopt()[:-1] == [
        ("pip-find-links-1", wheels.as_uri(), "find-links", "pip: PIP_FIND_LINKS"),
        (
            "pip-find-links-2",
            "http://127.0.0.1:5/links.html",
            "find-links",
            "pip: PIP_FIND_LINKS",
        ),
    ]


def test_no_index_keeps_only_find_links(env: _Env, tmp_path: Path) -> None:
    env.vars["PIP_NO_INDEX"] = "1"
    env.vars["PIP_FIND_LINKS"] = str(tmp_path)
    assert [kind for _, _, kind, _ in env.adopt()] == ["find-links"]


def test_uv_environment_in_uv_priority_order(env: _Env) -> None:
    env.vars["UV_INDEX"] = "internal=http://127.0.0.1:1/simple/ http://127.0.0.1:2/simple/"
    env.vars["UV_EXTRA_INDEX_URL"] = "http://127.0.0.1:3/simple/"
    env.vars["UV_DEFAULT_INDEX"] = "http://127.0.0.1:4/simple/"
    assert [(name, source) for name, _, _, source in env.adopt()] == [
        ("internal", "uv: UV_INDEX"),
        ("uv-index-2", "uv: UV_INDEX"),
        ("uv-extra-1", "uv: UV_EXTRA_INDEX_URL"),
        ("uv-default", "uv: UV_DEFAULT_INDEX"),
    ]


def test_uv_toml_indexes_with_default_explicit_and_flat(env: _Env) -> None:
    env.write(
        ".config/uv/uv.toml",
        '[[index]]\nname = "main"\nurl = "http://127.0.0.1:1/simple/"\ndefault = true\n'
        '[[index]]\nname = "private"\nurl = "http://127.0.0.1:2/simple/"\nexplicit = true\n'
        '[[index]]\nname = "flat"\nurl = "http://127.0.0.1:3/links/"\nformat = "flat"\n',
    )
    found = adopt_indexes(env.vars, default_index=lambda: DEFAULT, system_root=env.root)
    assert [(i.name, i.kind, i.explicit) for i in found] == [
        ("private", "simple", True),
        ("flat", "find-links", False),
        ("main", "simple", False),
    ]
    assert found[0].source.endswith("uv.toml [[index]] private")


def test_system_uv_toml_is_read(env: _Env) -> None:
    env.write("/etc/uv/uv.toml", '[[index]]\nname = "corp"\nurl = "http://127.0.0.1:7/simple/"\n')
    assert [name for name, *_ in env.adopt()] == ["corp", "default"]


def test_pip_comes_before_uv_and_duplicates_are_dropped(env: _Env) -> None:
    env.vars["PIP_INDEX_URL"] = "http://127.0.0.1:1/simple/"
    env.vars["UV_INDEX"] = "http://127.0.0.1:1/simple http://127.0.0.1:2/simple/"
    assert [name for name, *_ in env.adopt()] == ["uv-index-2", "pip-index"]


def test_broken_pip_conf_is_ignored_with_a_warning(
    env: _Env, caplog: pytest.LogCaptureFixture
) -> None:
    env.write(".config/pip/pip.conf", "index-url = no section header\n")
    assert [name for name, *_ in env.adopt()] == ["default"]
    assert "ignoring unreadable pip config" in caplog.text


def test_effective_indexes_prefer_config_toml(env: _Env) -> None:
    mine = IndexConfig(name="mine", url="http://127.0.0.1:9/simple/")
    env.vars["PIP_INDEX_URL"] = "http://127.0.0.1:1/simple/"
    assert effective_indexes(Config(indexes=(mine,)), env.vars) == (mine,)
    adopted = effective_indexes(Config(), env.vars, default_index=lambda: DEFAULT)
    assert [i.name for i in adopted] == ["pip-index"]


def test_pip_default_index_is_read_from_the_installed_pip() -> None:
    url = pip_default_index()
    assert url is not None
    assert urlsplit(url).scheme == "https"


def test_this_machines_pip_configuration_is_adopted() -> None:
    """Whatever `pip config list` reports here must show up, in pip's order (not hard-coded)."""
    listing = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    values: dict[str, str] = {}
    for line in listing.splitlines():
        match = re.match(r"^(:env:|global|install|download)\.([a-z-]+)='(.*)'$", line)
        if match and match.group(2) in ("index-url", "extra-index-url", "find-links"):
            values[match.group(2)] = match.group(3)
    adopted = [index.url for index in adopt_indexes()]
    expected = [values["index-url"]] if "index-url" in values else []
    expected += values.get("extra-index-url", "").split()
    expected += [
        v if "://" in v else Path(v).absolute().as_uri()
        for v in values.get("find-links", "").split()
    ]
    if not expected:
        expected = [url for url in [pip_default_index()] if url]
    assert [url for url in adopted if url in expected] == expected
