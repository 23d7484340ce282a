"""Adoption of the user's pip and uv index configuration, in a temporary HOME and /etc.

Names are derived from the URL (host, port when not the scheme's, path when two share a host),
never from the position: ``SATCHEL_INDEX_<NAME>_PASSWORD`` is matched by name (issue 12.9).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from satchel.daemon.settings.config import Config, IndexConfig
from satchel.daemon.settings.indexset import drift
from satchel.daemon.settings.toolsettings import (
    adopt,
    adopt_indexes,
    index_name_for,
    is_own_local_index,
    pip_default_index,
)

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


def test_nothing_configured_adopts_pips_builtin_default_marked_default(env: _Env) -> None:
    """Issue 12.1: without `default = true` it was written ahead of the user's next index."""
    assert env.adopt() == [
        ("default-example-invalid", DEFAULT, "simple", "pip: built-in default index")
    ]
    found = adopt_indexes(env.vars, default_index=lambda: DEFAULT, system_root=env.root)
    assert found[0].default is True


def test_no_pip_and_nothing_configured_adopts_nothing(env: _Env) -> None:
    """Issue 13.3: without a pip to ask, Satchel does not guess the public index's address."""
    assert adopt_indexes(env.vars, default_index=lambda: None, system_root=env.root) == ()


def test_pip_extra_indexes_come_before_the_index_url(env: _Env) -> None:
    """The index-url is the default index, consulted last (as uv does with extra indexes), so
    under first-index a private extra index cannot be shadowed by the public default."""
    env.vars["PIP_INDEX_URL"] = "http://127.0.0.1:1/simple/"
    env.vars["PIP_EXTRA_INDEX_URL"] = "http://127.0.0.1:2/simple/  http://127.0.0.1:3/simple/"
    assert env.adopt() == [
        ("127-0-0-1-2", "http://127.0.0.1:2/simple/", "simple", "pip: PIP_EXTRA_INDEX_URL"),
        ("127-0-0-1-3", "http://127.0.0.1:3/simple/", "simple", "pip: PIP_EXTRA_INDEX_URL"),
        ("127-0-0-1-1", "http://127.0.0.1:1/simple/", "simple", "pip: PIP_INDEX_URL"),
    ]


def test_the_adopted_default_index_is_marked_default(env: _Env) -> None:
    env.vars["PIP_INDEX_URL"] = "http://127.0.0.1:1/simple/"
    env.vars["PIP_EXTRA_INDEX_URL"] = "http://127.0.0.1:2/simple/"
    found = adopt_indexes(env.vars, default_index=lambda: DEFAULT, system_root=env.root)
    assert [(i.name, i.default) for i in found] == [("127-0-0-1-2", False), ("127-0-0-1-1", True)]


def test_extra_index_only_puts_pips_builtin_default_last(env: _Env) -> None:
    env.vars["PIP_EXTRA_INDEX_URL"] = "http://127.0.0.1:2/simple/"
    assert [name for name, *_ in env.adopt()] == ["127-0-0-1-2", "default-example-invalid"]


def test_user_pip_conf_overrides_global_and_install_overrides_global_section(env: _Env) -> None:
    env.write("/etc/pip.conf", "[global]\nindex-url = http://127.0.0.1:1/global/\n")
    user = env.write(
        ".config/pip/pip.conf",
        "[global]\nindex-url = http://127.0.0.1:2/user/\n"
        "[install]\nindex-url = http://127.0.0.1:3/install/\n",
    )
    assert env.adopt() == [
        (
            "127-0-0-1-3",
            "http://127.0.0.1:3/install/",
            "simple",
            f"pip: {user} [install] index-url",
        )
    ]


def test_global_pip_conf_is_read_from_etc(env: _Env) -> None:
    path = env.write("/etc/xdg/pip/pip.conf", "[global]\nextra-index-url = file:///srv/extra\n")
    assert env.adopt()[0] == (
        "file-extra",
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
        ("file-wheels", wheels.as_uri(), "find-links", "pip: PIP_FIND_LINKS"),
        (
            "127-0-0-1-5",
            "http://127.0.0.1:5/links.html",
            "find-links",
            "pip: PIP_FIND_LINKS",
        ),
    ]


def test_no_index_keeps_only_find_links(env: _Env, tmp_path: Path) -> None:
    env.vars["PIP_NO_INDEX"] = "1"
    env.vars["PIP_FIND_LINKS"] = str(tmp_path)
    assert [kind for _, _, kind, _ in env.adopt()] == ["find-links"]


@pytest.mark.parametrize(
    ("where", "text"),
    [
        ("env", ""),
        (".config/pip/pip.conf", "[global]\nno-index = true\n"),
        (".config/uv/uv.toml", "no-index = true\n"),
        ("uvenv", ""),
    ],
)
def test_no_index_alone_adopts_no_index_not_the_public_default(
    env: _Env, where: str, text: str
) -> None:
    """Issue 12.6: `no-index` alone used to adopt pip's built-in default anyway."""
    if where == "env":
        env.vars["PIP_NO_INDEX"] = "1"
    elif where == "uvenv":
        env.vars["UV_NO_INDEX"] = "true"
    else:
        env.write(where, text)
    result = adopt(env.vars, default_index=lambda: DEFAULT, system_root=env.root)
    assert result.indexes == ()
    assert result.no_index is not None
    assert result.configured


def test_satchels_own_local_index_is_never_adopted(env: _Env) -> None:
    """Issue 12.4: `eval "$(satchel env)"` made the next daemon adopt itself as upstream."""
    token = "t" * 43
    own = 7340
    for url in (
        f"http://satchel:{token}@127.0.0.1:{own}/simple/",
        f"http://127.0.0.1:{own}/simple/",
        f"http://localhost:{own}/simple/",
        f"http://[::1]:{own}/simple/",
        f"http://satchel:{token}@127.0.0.1:9/simple/",  # its token on another port: still ours
    ):
        env.vars["PIP_INDEX_URL"] = url
        env.vars["UV_DEFAULT_INDEX"] = url
        result = adopt(
            env.vars,
            default_index=lambda: DEFAULT,
            system_root=env.root,
            own=lambda u: is_own_local_index(u, [own], token),
        )
        assert result.indexes == (), url
        assert "Satchel's own local index" in result.notes[0]
        assert token not in " ".join(result.notes)


def test_names_do_not_depend_on_the_order_of_the_environment(env: _Env) -> None:
    """Issue 12.9: positional names sent one host's password to another host."""
    a, b = "http://127.0.0.1:2/team/simple/", "http://127.0.0.1:2/other/simple/"
    env.vars["PIP_EXTRA_INDEX_URL"] = f"{a} {b}"
    first = {i.url: i.name for i in adopt_indexes(env.vars, default_index=lambda: None)}
    env.vars["PIP_EXTRA_INDEX_URL"] = f"{b} {a}"
    second = {i.url: i.name for i in adopt_indexes(env.vars, default_index=lambda: None)}
    assert first == second == {a: "127-0-0-1-2-team", b: "127-0-0-1-2-other"}
    assert index_name_for("https://packages.example.com/simple/") == "packages-example-com"
    assert index_name_for("https://packages.example.com:8443/simple/") == (
        "packages-example-com-8443"
    )


def test_drift_names_what_pip_adds_and_what_it_no_longer_lists(env: _Env) -> None:
    """Issue 12.3: the environment never changes the index set; drift only reports."""
    adopted = IndexConfig(
        name="private", url="http://127.0.0.1:2/simple/", source="pip: PIP_EXTRA_INDEX_URL"
    )
    mine = IndexConfig(name="mine", url="http://127.0.0.1:9/simple/")
    config = Config(indexes=(mine, adopted))
    env.vars["PIP_INDEX_URL"] = "http://127.0.0.1:1/simple/"
    lines = drift(config, adopt(env.vars, default_index=lambda: DEFAULT, system_root=env.root))
    assert len(lines) == 1
    assert "http://127.0.0.1:1/simple/ (pip: PIP_INDEX_URL) is not in config.toml" in lines[0]
    assert "config.toml's private (adopted from pip: PIP_EXTRA_INDEX_URL)" in lines[0]
    assert "satchel index adopt" in lines[0]
    del env.vars["PIP_INDEX_URL"]  # nothing configured (cron, an IDE): not a disagreement
    assert drift(config, adopt(env.vars, default_index=lambda: DEFAULT, system_root=env.root)) == []


def test_uv_environment_in_uv_priority_order(env: _Env) -> None:
    env.vars["UV_INDEX"] = "internal=http://127.0.0.1:1/simple/ http://127.0.0.1:2/simple/"
    env.vars["UV_EXTRA_INDEX_URL"] = "http://127.0.0.1:3/simple/"
    env.vars["UV_DEFAULT_INDEX"] = "http://127.0.0.1:4/simple/"
    assert [(name, source) for name, _, _, source in env.adopt()] == [
        ("internal", "uv: UV_INDEX"),
        ("127-0-0-1-2", "uv: UV_INDEX"),
        ("127-0-0-1-3", "uv: UV_EXTRA_INDEX_URL"),
        ("127-0-0-1-4", "uv: UV_DEFAULT_INDEX"),
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
    assert [name for name, *_ in env.adopt()] == ["corp", "default-example-invalid"]


@pytest.mark.parametrize("name", [".config/uv/uv.toml", ".config/pip/pip.conf"])
def test_a_fifo_in_place_of_a_tool_config_is_skipped_not_read(env: _Env, name: str) -> None:
    """uv.toml or pip.conf replaced by a FIFO (or any file that is not a regular one): skipped,
    as a missing file is. Reading it would hold the thread forever (the drift report reads
    these files on every `status`); before, uv.toml's was read and never returned."""
    fifo = env.home / name
    fifo.parent.mkdir(parents=True)
    os.mkfifo(fifo)
    assert [name for name, *_ in env.adopt()] == ["default-example-invalid"]


def test_a_tool_config_over_a_mib_is_not_read(env: _Env) -> None:
    """A uv.toml that is really something else, linked or grown past 1 MiB (a log), is ignored
    with a warning, as config.toml is refused: it is not read whole on every drift report."""
    env.write(
        ".config/uv/uv.toml",
        '[[index]]\nname = "corp"\nurl = "http://127.0.0.1:7/simple/"\n' + "#" * 2**20 + "\n",
    )
    assert [name for name, *_ in env.adopt()] == ["default-example-invalid"]


def test_pip_comes_before_uv_and_duplicates_are_dropped(env: _Env) -> None:
    env.vars["PIP_INDEX_URL"] = "http://127.0.0.1:1/simple/"
    env.vars["UV_INDEX"] = "http://127.0.0.1:1/simple http://127.0.0.1:2/simple/"
    assert [name for name, *_ in env.adopt()] == ["127-0-0-1-2", "127-0-0-1-1"]


def test_broken_pip_conf_is_ignored_with_a_warning(
    env: _Env, caplog: pytest.LogCaptureFixture
) -> None:
    env.write(".config/pip/pip.conf", "index-url = no section header\n")
    assert [name for name, *_ in env.adopt()] == ["default-example-invalid"]
    assert "ignoring unreadable pip config" in caplog.text


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


def test_an_invalid_url_in_pips_configuration_is_skipped_with_a_note(env: _Env) -> None:
    """Issue 11.10: an adopted URL gets the same validation as config.toml's."""
    env.vars["PIP_EXTRA_INDEX_URL"] = "http://[::1/simple/ http://127.0.0.1:2/simple/"
    result = adopt(env.vars, default_index=lambda: DEFAULT, system_root=env.root)
    assert [i.name for i in result.indexes] == ["127-0-0-1-2", "default-example-invalid"]
    assert "not a valid index URL" in result.notes[0]


def test_pips_default_index_is_read_from_the_pip_wheel_python_bundles(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 13.3: a tool install of Satchel has no pip, nor need a python3 on PATH have one;
    the pip wheel `ensurepip` bundles with the daemon's interpreter still says pip's default
    index (read at run time: no registry's host name is written into the repository)."""
    from satchel.daemon.settings import toolsettings as indexes

    if indexes._bundled_pip() is None:
        pytest.skip("this interpreter bundles no pip wheel (ensurepip removed)")
    monkeypatch.setitem(sys.modules, "pip._internal.models.index", None)  # no pip in-process
    monkeypatch.setattr(indexes, "_pythons_on_path", list)  # and none on PATH
    monkeypatch.delenv("PYTHONPATH", raising=False)
    indexes.pip_default_index.cache_clear()
    try:
        url = indexes.pip_default_index()
    finally:
        indexes.pip_default_index.cache_clear()
    assert url is not None and url.startswith("https://") and url.rstrip("/").endswith("/simple")


def test_pips_builtin_default_as_an_extra_index_is_asked_last(env: _Env) -> None:
    """A company's pip.conf (index-url private, extra-index-url the public index): pip orders
    neither, and taking the extras first made the public index the first one asked, so a
    same-named public project (dependency confusion) was taken over the private one."""
    env.write(
        ".config/pip/pip.conf",
        f"[global]\nindex-url = http://127.0.0.1:1/private/\nextra-index-url = {DEFAULT}\n",
    )
    env.vars["PIP_EXTRA_INDEX_URL"] = f"http://127.0.0.1:2/simple/ {DEFAULT}"
    found = adopt_indexes(env.vars, default_index=lambda: DEFAULT, system_root=env.root)
    assert [(i.url, i.default) for i in found] == [
        ("http://127.0.0.1:2/simple/", False),
        ("http://127.0.0.1:1/private/", False),
        (DEFAULT, True),
    ]


def test_pips_builtin_default_as_its_index_url_stays_the_default(env: _Env) -> None:
    env.vars["PIP_INDEX_URL"] = DEFAULT
    env.vars["PIP_EXTRA_INDEX_URL"] = "http://127.0.0.1:2/simple/"
    found = adopt_indexes(env.vars, default_index=lambda: DEFAULT, system_root=env.root)
    assert [(i.url, i.default) for i in found] == [
        ("http://127.0.0.1:2/simple/", False),
        (DEFAULT, True),
    ]
