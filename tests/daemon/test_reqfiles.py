"""Requirements files and pyproject.toml: what users wrote, read the way pip and PEPs do."""

from __future__ import annotations

from pathlib import Path

import pytest

from satchel.daemon.resolver.reqfiles import (
    ParsedRequirement,
    RequirementsFileError,
    parse_requirements,
    read_pyproject,
)

SHA_A = "a" * 64
SHA_B = "b" * 64


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def names(items: list[ParsedRequirement]) -> list[str]:
    return [str(item.requirement) for item in items]


def test_plain_requirements_with_comments_and_markers(tmp_path: Path) -> None:
    req = write(
        tmp_path / "requirements.txt",
        "# top comment\nrequests>=2  # trailing comment\n\n"
        "colorama; sys_platform == 'win32'\nfoo[bar,baz]==1.0\n",
    )
    parsed = parse_requirements(req)
    assert names(parsed.requirements) == [
        "requests>=2",
        'colorama; sys_platform == "win32"',
        "foo[bar,baz]==1.0",
    ]
    assert parsed.requirements[1].origin == f"{req.absolute()}:4"
    assert parsed.hashes() is None


def test_nesting_is_relative_to_the_including_file(tmp_path: Path) -> None:
    write(tmp_path / "sub" / "base.txt", "-c ../constraints/pins.txt\nlib\n")
    write(tmp_path / "constraints" / "pins.txt", "lib<2\n-r more.txt\n")
    write(tmp_path / "constraints" / "more.txt", "other==1\n")
    top = write(tmp_path / "requirements.txt", "-r sub/base.txt\napp\n")
    parsed = parse_requirements(top)
    assert names(parsed.requirements) == ["lib", "app"]
    # Everything reached through -c is a constraint, even via a nested -r.
    assert names(parsed.constraints) == ["lib<2", "other==1"]


def test_include_cycle_is_an_error(tmp_path: Path) -> None:
    write(tmp_path / "b.txt", "-r a.txt\n")
    top = write(tmp_path / "a.txt", "-r b.txt\n")
    with pytest.raises(RequirementsFileError, match="cycle"):
        parse_requirements(top)


def test_hashes_on_continuation_lines_turn_on_hash_mode(tmp_path: Path) -> None:
    req = write(
        tmp_path / "r.txt",
        f"app==1.0 \\\n    --hash=sha256:{SHA_A} \\\n    --hash sha256:{SHA_B.upper()}\nlib==2.0\n",
    )
    parsed = parse_requirements(req)
    assert parsed.requirements[0].hashes == {SHA_A, SHA_B}
    assert parsed.requirements[0].origin.endswith(":1")
    assert parsed.requirements[1].origin.endswith(":4")
    assert parsed.hash_mode()
    assert parsed.hashes() == {"app": frozenset({SHA_A, SHA_B})}


def test_require_hashes_alone_turns_on_hash_mode(tmp_path: Path) -> None:
    parsed = parse_requirements(write(tmp_path / "r.txt", "--require-hashes\nlib==1\n"))
    assert parsed.hashes() == {}


def test_non_sha256_hashes_are_refused(tmp_path: Path) -> None:
    req = write(tmp_path / "r.txt", "lib==1 --hash=md5:abc\n")
    with pytest.raises(RequirementsFileError, match=r"r\.txt:1: --hash=md5:abc"):
        parse_requirements(req)


def test_index_options_are_ignored_with_a_warning_naming_the_line(tmp_path: Path) -> None:
    req = write(
        tmp_path / "r.txt",
        "--index-url http://127.0.0.1/simple\n-f ./wheels\n--no-index\nlib\n",
    )
    parsed = parse_requirements(req)
    assert names(parsed.requirements) == ["lib"]
    assert len(parsed.warnings) == 3
    assert parsed.warnings[0].startswith(f"{req.absolute()}:1: ignoring --index-url")
    assert "satchel index add" in parsed.warnings[0]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("-e ./src", "editable requirements"),
        ("--editable=git+https://127.0.0.1/x.git", "editable requirements"),
        ("pkg @ https://127.0.0.1/pkg-1.0.tar.gz", "path or URL"),
        ("./local/pkg", "path or URL"),
        ("https://127.0.0.1/pkg-1.0-py3-none-any.whl", "path or URL"),
        ("-r https://127.0.0.1/reqs.txt", "by URL is not supported"),
        ("--frobnicate", "unknown or unsupported option --frobnicate"),
        ("lib==1 --no-deps", "only --hash may follow"),
        ("lib>=>1", "invalid requirement"),
    ],
)
def test_unsupported_lines_are_refused_with_file_and_line(
    tmp_path: Path, line: str, message: str
) -> None:
    req = write(tmp_path / "r.txt", f"ok\n{line}\n")
    with pytest.raises(RequirementsFileError, match=message) as info:
        parse_requirements(req)
    assert "r.txt:2" in str(info.value)


def test_pre_flag_and_environment_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LIB_VERSION", "1.5")
    parsed = parse_requirements(write(tmp_path / "r.txt", "--pre\nlib==${LIB_VERSION}\n"))
    assert parsed.prereleases
    assert names(parsed.requirements) == ["lib==1.5"]


PYPROJECT = """
[project]
name = "my-app"
version = "0.1"
dependencies = ["requests>=2", "tomli; python_version < '3.11'"]

[project.optional-dependencies]
cli = ["click"]
Test = ["pytest"]
all = ["my-app[cli,test]", "rich"]

[dependency-groups]
lint = ["ruff"]
typing = ["mypy", {include-group = "lint"}]
dev = [{include-group = "typing"}, "hypothesis"]
"""


def test_pyproject_project_dependencies(tmp_path: Path) -> None:
    reqs = read_pyproject(write(tmp_path / "pyproject.toml", PYPROJECT))
    assert [str(r) for r in reqs] == ["requests>=2", 'tomli; python_version < "3.11"']


def test_pyproject_extras_expand_self_references(tmp_path: Path) -> None:
    reqs = read_pyproject(write(tmp_path / "pyproject.toml", PYPROJECT), extras=["ALL"])
    assert [str(r) for r in reqs][2:] == ["rich", "click", "pytest"]


def test_pyproject_dependency_groups_follow_includes(tmp_path: Path) -> None:
    path = write(tmp_path / "pyproject.toml", PYPROJECT)
    reqs = read_pyproject(path, groups=["dev"], project_dependencies=False)
    assert [str(r) for r in reqs] == ["mypy", "ruff", "hypothesis"]


def test_pyproject_unknown_group_and_extra_are_errors(tmp_path: Path) -> None:
    path = write(tmp_path / "pyproject.toml", PYPROJECT)
    with pytest.raises(RequirementsFileError, match="no dependency group 'docs'"):
        read_pyproject(path, groups=["docs"])
    with pytest.raises(RequirementsFileError, match="no optional-dependencies extra 'gui'"):
        read_pyproject(path, extras=["gui"])


def test_pyproject_group_cycle_is_an_error(tmp_path: Path) -> None:
    path = write(
        tmp_path / "pyproject.toml",
        '[dependency-groups]\na = [{include-group = "b"}]\nb = [{include-group = "a"}]\n',
    )
    with pytest.raises(RequirementsFileError, match="a -> b -> a"):
        read_pyproject(path, groups=["a"])


def test_pyproject_dynamic_dependencies_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "pyproject.toml", '[project]\nname = "x"\ndynamic = ["dependencies"]\n')
    with pytest.raises(RequirementsFileError, match="dynamic"):
        read_pyproject(path)
