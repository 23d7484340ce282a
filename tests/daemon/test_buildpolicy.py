"""`buildpolicy`: pip's --only-binary/--no-binary semantics, and the build environment (11.9)."""

from __future__ import annotations

import pytest

from satchel.daemon.errors import ConfigError
from satchel.daemon.installing.childenv import scrubbed_environ
from satchel.daemon.resolver.buildpolicy import BuildPolicy, Formats
from satchel.daemon.settings.config import parse_config, render_config


def test_formats_follow_pips_rules() -> None:
    """issue 11.9: `:all:` resets the other list, `:none:` empties this one, names are
    canonicalised, and a later statement about a project overrides an earlier one."""
    formats = Formats().update("--only-binary", ":all:", "r.txt:1")
    assert not formats.sdist_allowed("anything")
    formats = formats.update("--no-binary", "My_Pkg", "r.txt:2")
    assert formats.sdist_allowed("my-pkg") and not formats.wheel_allowed("my-pkg")
    assert not formats.sdist_allowed("other")
    formats = formats.update("--only-binary", ":none:", "cli")
    assert formats.sdist_allowed("other")
    formats = Formats().update("--no-binary", ":all:", "").update("--only-binary", "a,B.c", "")
    assert formats.wheel_allowed("b-c") and not formats.sdist_allowed("b-c")
    assert not formats.wheel_allowed("z")


def test_policy_names_what_forbids_a_build() -> None:
    """issue 11.9: the reason names the flag or setting."""
    only = Formats().update("--only-binary", "x", "req.txt:3")
    assert BuildPolicy(only).why_not("x") == "--only-binary x (req.txt:3)"
    assert BuildPolicy(only).why_not("y") is None
    assert BuildPolicy.of(Formats(), no_build=True, setting="on-request").why_not("y") == (
        "--no-build"
    )
    never = BuildPolicy.of(Formats(), no_build=False, setting="never")
    assert never.why_not("y") is not None and "never" in never.why_not("y")  # type: ignore[operator]
    background = BuildPolicy.of(Formats(), no_build=False, setting="on-request", background=True)
    assert background.why_not("y") is not None and background.sdist_allowed("y")
    allowed = BuildPolicy.of(Formats(), no_build=False, setting="background", background=True)
    assert allowed.why_not("y") is None


def test_scrubbed_environ_is_an_allow_list() -> None:
    """issue 11.9: credentials never pass, whatever their name; compiler knobs do."""
    base = {
        "PATH": "/usr/bin",
        "LC_CTYPE": "C",
        "CFLAGS": "-O2",
        "SATCHEL_INDEX_CORP_PASSWORD": "p",
        "PIP_INDEX_URL": "https://u:p@h/simple/",
        "NETRC": "/home/u/.netrc",
        "PYTHONPATH": "/x",
        "SOME_TOKEN": "t",
    }
    assert scrubbed_environ(base) == {"PATH": "/usr/bin", "LC_CTYPE": "C", "CFLAGS": "-O2"}


def test_the_builds_setting_is_validated_and_survives_a_rewrite() -> None:
    """issue 11.9: config.toml `[settings] builds` takes three values; anything else is a
    config error naming the line; `satchel index add` (which rewrites the file) keeps it."""
    config = parse_config('[settings]\nbuilds = "never"\n')
    assert config.settings.builds == "never"
    assert parse_config(render_config(config)).settings.builds == "never"
    assert parse_config("[settings]\n").settings.builds == "on-request"
    with pytest.raises(ConfigError, match=r"config.toml:2: setting 'builds'"):
        parse_config('[settings]\nbuilds = "sometimes"\n')
