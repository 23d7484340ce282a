"""Issue 3, end to end: what to resolve (requirements files, pyproject.toml, pylock.toml) and
for which machine (``--platform``, ``--python-version``).
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.twoindexes import EXIT_RESOLUTION, HELPER, INTERNAL_TOOL, World, open_world
from tests.support.wheels import build_wheel


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with open_world(tmp_path) as w:
        yield w


# -- scenario 7: requirements files, pyproject.toml, pylock.toml ----------------------------------


def test_requirements_file_with_nesting_and_hashes(world: World) -> None:
    nested = world.root / "reqs" / "nested"
    nested.mkdir(parents=True)
    (nested / "base.txt").write_text(
        f"helper==1.2 \\\n    --hash=sha256:{world.internal.sha256(HELPER)}\n"
    )
    top = world.root / "reqs" / "requirements.txt"
    top.write_text(
        "-r nested/base.txt\n"
        f"internal-tool==1.0 --hash=sha256:{world.internal.sha256(INTERNAL_TOOL)}\n"
    )

    pins = world.pins("-r", str(top))

    assert {name: pin["version"] for name, pin in pins.items()} == {
        "internal-tool": "1.0",
        "helper": "1.2",
    }


def test_requirements_file_with_a_wrong_hash_is_refused(world: World) -> None:
    top = world.root / "requirements.txt"
    top.write_text(f"helper==1.2 --hash=sha256:{'0' * 64}\n")

    result = world.satchel("resolve", "-r", str(top))

    assert result.returncode == EXIT_RESOLUTION, result.stderr
    assert "helper==1.2" in result.stderr


def test_pyproject_optional_dependencies_and_groups(world: World) -> None:
    dist = world.root / "dist" / "extra"
    world.internal.add(build_wheel(dist, "extra-thing", "1.0"))
    world.internal.add(build_wheel(dist, "dev-thing", "1.0"))
    project = world.root / "app"
    project.mkdir()
    (project / "pyproject.toml").write_text(
        '[project]\nname = "app"\nversion = "0"\ndependencies = ["internal-tool"]\n'
        '[project.optional-dependencies]\nfancy = ["extra-thing"]\n'
        '[dependency-groups]\ndev = ["dev-thing"]\n'
    )
    pyproject = str(project / "pyproject.toml")

    plain = world.pins("-r", pyproject)
    full = world.pins("-r", pyproject, "--extra", "fancy", "--group", "dev")

    assert set(plain) == {"internal-tool", "helper"}
    assert set(full) == {"internal-tool", "helper", "extra-thing", "dev-thing"}


def test_pylock_records_the_index_and_prefetch_fetches_exactly_its_files(world: World) -> None:
    lock = world.root / "pylock.toml"
    result = world.ok("resolve", "internal-tool", "--format", "pylock", "-o", str(lock))
    assert "pylock.toml" in result.stderr

    data = tomllib.loads(lock.read_text())
    packages = {package["name"]: package for package in data["packages"]}
    assert set(packages) == {"internal-tool", "helper"}
    wanted = set()
    for package in packages.values():
        assert package["index"].rstrip("/") == world.internal.url.rstrip("/")
        for wheel in package["wheels"]:
            wanted.add(wheel["name"])
            assert wheel["hashes"]["sha256"] == world.internal.sha256(wheel["name"])
    assert wanted == {INTERNAL_TOOL, HELPER}
    world.internal.reset_log()
    world.public.reset_log()

    summary = json.loads(world.ok("prefetch", "-r", str(lock), "--json").stdout)

    fetched = {
        path.rsplit("/", 1)[1]
        for path in world.internal.requests
        if path.startswith("/files/") and not path.endswith(".metadata")
    }
    assert fetched == wanted
    assert world.public.requests == []
    assert summary["files"] == summary["downloaded"] == len(wanted)
    for name in wanted:
        assert world.blob(world.internal.sha256(name)).exists()


# -- scenario 8: resolving for another machine ----------------------------------------------------


@pytest.mark.parametrize(
    ("platform", "expected"),
    [
        ("macosx_11_0_arm64", "plat_thing-1.0-cp311-cp311-macosx_11_0_arm64.whl"),
        ("win_amd64", "plat_thing-1.0-py3-none-any.whl"),
    ],
)
def test_platform_and_python_version_pick_that_machine_s_wheel(
    world: World, platform: str, expected: str
) -> None:
    dist = world.root / "dist" / "plat"
    for tag in ("cp311-cp311-macosx_11_0_arm64", "cp311-cp311-win32", "py3-none-any"):
        world.internal.add(build_wheel(dist, "plat-thing", "1.0", tag=tag))

    pins = world.pins("--platform", platform, "--python-version", "3.11", "plat-thing")

    assert pins["plat-thing"]["filename"] == expected
    assert pins["plat-thing"]["sha256"] == world.internal.sha256(expected)


def test_inputs_are_read_and_the_interpreter_found_together_the_inputs_error_first(
    world: World,
) -> None:
    # Reading the inputs and locating the interpreter run at once (two worker-thread hops, one
    # wait); when both are wrong the answer is still the one a reading in order gives.
    missing = world.root / "nowhere" / "requirements.txt"
    not_python = world.root / "not-python"
    not_python.write_text("")

    both = world.satchel("resolve", "-r", str(missing), "--python", str(not_python))
    interpreter_only = world.satchel("resolve", "helper", "--python", str(not_python))

    assert both.returncode != 0
    assert str(missing) in both.stderr, both.stderr
    assert str(not_python) not in both.stderr
    assert interpreter_only.returncode != 0
    assert str(not_python) in interpreter_only.stderr, interpreter_only.stderr


def test_an_offline_resolve_answers_an_edited_file_afresh_not_from_the_result_cache(
    world: World,
) -> None:
    # A repeated offline resolve is answered from the result cache in the hop that reads its
    # inputs; the files are read every time, so an edit in place (even one of the same size)
    # is a new question. Issue 15, warm repeated resolve.
    world.internal.add(build_wheel(world.root / "dist" / "old-helper", "helper", "1.1"))
    world.ok("prefetch", "internal-tool")  # helper 1.2
    world.ok("prefetch", "helper==1.1")
    reqs = world.root / "requirements.txt"
    constraints = world.root / "constraints.txt"
    reqs.write_text("internal-tool\n")
    constraints.write_text("helper<1.2\n")
    args = ("--offline", "-r", str(reqs), "-c", str(constraints))

    first = world.pins(*args)["helper"]["version"]
    again = world.pins(*args)["helper"]["version"]
    constraints.write_text("helper>1.1\n")  # the same size: only the content says it changed
    loosened = world.pins(*args)["helper"]["version"]
    reqs.write_text("internal-tool\nhelper==1.1\n")
    constraints.write_text("")
    pinned = world.pins(*args)["helper"]["version"]
    reqs.write_text("internal-tool\n")
    unpinned = world.pins(*args)["helper"]["version"]

    assert (first, again, loosened, pinned, unpinned) == ("1.1", "1.1", "1.2", "1.1", "1.2")
