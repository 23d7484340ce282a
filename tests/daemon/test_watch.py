"""What a watched project is made of: its input files, how each is read, and how it persists."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from satchel.daemon.requests.watch import (
    Record,
    WatchedProject,
    discover,
    input_state,
    is_stale,
    load_projects,
    read_script_metadata,
    read_unit,
    read_uv_lock,
    save_projects,
)
from satchel.daemon.resolver.reqfiles import RequirementsFileError
from satchel.daemon.storage.metadb import MetaDB

SHA_A = "a" * 64
SHA_B = "b" * 64

SCRIPT = """\
#!/usr/bin/env python
# /// script
# requires-python = ">=3.11"
# dependencies = [
#   "alpha>=1",
#   "beta[fast]; python_version >= '3'",
# ]
# ///
print("hi")
"""

WHEEL_URL = "http://127.0.0.1:9/files/alpha-1.0-py3-none-any.whl"

UV_LOCK = f"""\
version = 1
requires-python = ">=3.11"

[[package]]
name = "myproject"
version = "0.1.0"
source = {{ editable = "." }}
dependencies = [{{ name = "alpha" }}]

[[package]]
name = "Alpha"
version = "1.0"
source = {{ registry = "http://127.0.0.1:9/simple" }}
sdist = {{ url = "http://127.0.0.1:9/files/alpha-1.0.tar.gz", hash = "sha256:{SHA_A}", size = 10 }}
wheels = [{{ url = "{WHEEL_URL}", hash = "sha256:{SHA_B}", size = 20 }}]

[[package]]
name = "from-git"
version = "2.0"
source = {{ git = "https://example.invalid/repo.git?rev=abc" }}
"""


def names(paths: list[Path]) -> list[str]:
    return [str(p.relative_to(p.parents[1])) for p in paths]


def test_a_directory_means_its_input_files_and_requirements_subdirectory(tmp_path: Path) -> None:
    project = tmp_path / "proj"
    (project / "requirements").mkdir(parents=True)
    (project / "sub").mkdir()
    for name in ("requirements.txt", "requirements-dev.txt", "pyproject.toml", "uv.lock"):
        (project / name).write_text("")
    (project / "pylock.toml").write_text("")
    (project / "script.py").write_text(SCRIPT)
    (project / "module.py").write_text("import os\n")  # no metadata block: not an input
    (project / "notes.txt").write_text("")
    (project / "sub" / "requirements.txt").write_text("")  # not recursive
    (project / "requirements" / "test.txt").write_text("")
    (project / "requirements" / "tool.py").write_text(SCRIPT)  # only .txt in requirements/

    assert names(discover(project)) == [
        "proj/pylock.toml",
        "proj/pyproject.toml",
        "proj/requirements-dev.txt",
        "proj/requirements.txt",
        "proj/script.py",
        "proj/uv.lock",
        "requirements/test.txt",
    ]


def test_a_watched_file_is_its_own_input_whatever_its_name(tmp_path: Path) -> None:
    deps = tmp_path / "deps.in"
    deps.write_text("alpha\n")
    assert discover(deps) == [deps]
    assert [str(r.requirement) for r in read_unit(deps).inputs.requirements.requirements] == [
        "alpha"
    ]


def test_pyproject_takes_every_extra_and_every_dependency_group(tmp_path: Path) -> None:
    path = tmp_path / "pyproject.toml"
    path.write_text(
        '[project]\nname = "me"\nversion = "1"\ndependencies = ["alpha"]\n'
        '[project.optional-dependencies]\nfast = ["beta"]\nall = ["me[fast]", "gamma"]\n'
        '[dependency-groups]\ntest = ["delta", {include-group = "lint"}]\nlint = ["epsilon"]\n'
    )
    reqs = read_unit(path).inputs.requirements.requirements
    assert sorted(str(r.requirement) for r in reqs) == [
        "alpha",
        "beta",
        "delta",
        "epsilon",
        "epsilon",
        "gamma",
    ]


def test_pyproject_with_dynamic_dependencies_still_yields_its_groups(tmp_path: Path) -> None:
    path = tmp_path / "pyproject.toml"
    path.write_text(
        '[project]\nname = "me"\nversion = "1"\ndynamic = ["dependencies"]\n'
        '[dependency-groups]\ndev = ["alpha"]\n'
    )
    reqs = read_unit(path).inputs.requirements.requirements
    assert [str(r.requirement) for r in reqs] == ["alpha"]


def test_script_metadata_gives_the_dependencies(tmp_path: Path) -> None:
    path = tmp_path / "tool.py"
    path.write_text(SCRIPT)
    found = read_script_metadata(path)
    assert found is not None
    assert [str(r) for r in found] == ["alpha>=1", 'beta[fast]; python_version >= "3"']


def test_a_script_without_a_block_has_no_metadata(tmp_path: Path) -> None:
    path = tmp_path / "plain.py"
    path.write_text("# /// not closed\nprint(1)\n")
    assert read_script_metadata(path) is None


def test_a_script_block_that_is_not_toml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.py"
    path.write_text("# /// script\n# dependencies = [\n# ///\n")
    with pytest.raises(RequirementsFileError, match=r"bad\.py: the script metadata"):
        read_script_metadata(path)


def test_a_direct_reference_in_a_script_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "direct.py"
    path.write_text(
        '# /// script\n# dependencies = ["alpha @ https://example.invalid/a.whl"]\n# ///\n'
    )
    with pytest.raises(RequirementsFileError, match="direct reference"):
        read_unit(path)


def test_uv_lock_keeps_registry_packages_with_their_files_and_index(tmp_path: Path) -> None:
    path = tmp_path / "uv.lock"
    path.write_text(UV_LOCK)
    lock = read_uv_lock(path)
    assert [(p.name, p.unsupported is None) for p in lock.packages] == [
        ("alpha", True),
        ("from-git", False),  # kept, without files, to be refused where it is needed
    ]
    assert lock.skipped == ("myproject (editable, .)",)
    alpha = lock.packages[0]
    assert alpha.index == "http://127.0.0.1:9/simple"
    assert alpha.version == "1.0"
    assert [w.filename for w in alpha.wheels] == ["alpha-1.0-py3-none-any.whl"]
    assert alpha.wheels[0].sha256 == SHA_B
    assert alpha.wheels[0].size == 20
    assert alpha.sdist is not None and alpha.sdist.sha256 == SHA_A


def test_uv_lock_file_without_a_sha256_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "uv.lock"
    path.write_text(
        '[[package]]\nname = "a"\nversion = "1"\nsource = { registry = "http://127.0.0.1:9/" }\n'
        'sdist = { url = "http://127.0.0.1:9/a-1.tar.gz", hash = "md5:00" }\n'
    )
    with pytest.raises(RequirementsFileError, match=r"a-1\.tar\.gz has no sha256"):
        read_uv_lock(path)


def test_the_watched_set_round_trips_through_the_metadb(tmp_path: Path) -> None:
    db = MetaDB(tmp_path / "meta.sqlite")
    try:
        assert load_projects(db) == []
        record = Record(at=1.0, ok=True, message="2 files", files=2, needed=[SHA_A, SHA_B])
        projects = [
            WatchedProject(path="/p/one", added_at=1.0, last=record),
            WatchedProject(path="/p/two", python="3.12", added_at=2.0),
        ]
        save_projects(db, projects)
        assert load_projects(db) == projects
    finally:
        db.close()


def test_an_unreadable_stored_set_starts_empty(tmp_path: Path) -> None:
    db = MetaDB(tmp_path / "meta.sqlite")
    try:
        db.put_state("watch.projects", b"{not json")
        assert load_projects(db) == []
    finally:
        db.close()


def test_a_project_is_stale_until_a_good_prefetch_saw_its_current_inputs(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("alpha\n")
    project = WatchedProject(path=str(tmp_path), added_at=0.0)
    assert is_stale(project)  # never prefetched
    project.last = Record(at=1.0, ok=False, message="x", sources=input_state(tmp_path))
    assert is_stale(project)  # failed
    project.last = Record(at=1.0, ok=True, message="x", sources=input_state(tmp_path))
    assert not is_stale(project)
    (tmp_path / "requirements-dev.txt").write_text("beta\n")
    assert is_stale(project)  # a new input file


def test_an_edited_input_makes_the_project_stale(tmp_path: Path) -> None:
    path = tmp_path / "requirements.txt"
    path.write_text("alpha\n")
    project = WatchedProject(path=str(tmp_path), added_at=0.0)
    project.last = Record(at=1.0, ok=True, message="x", sources=input_state(tmp_path))
    path.write_text("alpha\nbeta\n")
    os.utime(path, ns=(0, path.stat().st_mtime_ns + 1_000_000))
    assert is_stale(project)
