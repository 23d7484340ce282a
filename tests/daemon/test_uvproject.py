"""`uvproject`: a uv project's `[[tool.uv.index]]` and `[tool.uv.sources]` as uv reads them."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from satchel.daemon.resolver.reqfiles import RequirementsFileError
from satchel.daemon.settings.config import Config, IndexConfig
from satchel.daemon.settings.uvproject import apply, read_uv_project

PUBLIC = IndexConfig(name="public", url="http://127.0.0.1:1/simple/", default=True)
MINE = IndexConfig(name="mine", url="http://127.0.0.1:2/simple/")


def _read(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "pyproject.toml"
    path.write_text(text)
    project = read_uv_project(path, tomllib.loads(text))
    return apply(Config(indexes=(MINE, PUBLIC)), project)


def test_project_indexes_rank_first_and_sources_pin(tmp_path: Path) -> None:
    """Issue 12.7: as uv does, project indexes come before the user's, and a source pins."""
    config = _read(
        tmp_path,
        '[[tool.uv.index]]\nname = "private"\nurl = "http://127.0.0.1:3/team/simple/"\n'
        "explicit = true\n"
        '[tool.uv.sources]\nInternal_Tool = { index = "private" }\n',
    )
    assert [(i.name, i.explicit, i.default) for i in config.indexes] == [
        ("127-0-0-1-3-team-simple", True, False),
        ("mine", False, False),
        ("public", False, True),
    ]
    assert config.pins == {"internal-tool": "127-0-0-1-3-team-simple"}


def test_a_project_index_at_a_configured_url_reuses_that_index(tmp_path: Path) -> None:
    config = _read(
        tmp_path,
        f'[[tool.uv.index]]\nname = "x"\nurl = "{MINE.url}"\n'
        '[tool.uv.sources]\ninternal-tool = { index = "x" }\n',
    )
    assert [i.name for i in config.indexes] == ["mine", "public"]
    assert config.pins == {"internal-tool": "mine"}


def test_a_project_default_index_replaces_the_configured_default(tmp_path: Path) -> None:
    config = _read(
        tmp_path, '[[tool.uv.index]]\nname = "d"\nurl = "http://127.0.0.1:4/"\ndefault = true\n'
    )
    assert [(i.name, i.default) for i in config.indexes] == [
        ("mine", False),
        ("127-0-0-1-4", True),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[tool.uv.sources]\na = { index = "nope" }\n', "does not define"),
        ('[[tool.uv.index]]\nname = "a"\n', "has no url"),
        ('[[tool.uv.index]]\nname = "a"\nurl = "http://[::1/"\n', "Invalid IPv6 URL"),
    ],
)
def test_bad_project_index_tables_name_the_file(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(RequirementsFileError) as raised:
        _read(tmp_path, text)
    assert str(tmp_path / "pyproject.toml") in raised.value.message
    assert message in raised.value.message


def test_a_pyproject_without_uv_tables_changes_nothing(tmp_path: Path) -> None:
    assert _read(tmp_path, '[project]\nname = "a"\n') == Config(indexes=(MINE, PUBLIC))
