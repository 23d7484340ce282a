"""Issue 4, end to end: the seed scenario, `satchel run` offline, and `satchel tool`.

The private index serves ``internal-tool`` 1.0 (console script ``render``, which prints its version
with ``--version`` and exits with the status given by ``--exit N``) depending on ``helper>=1``.
After `satchel prefetch internal-tool`, the index is stopped: nothing is reachable, no index flag
is given, and the tool must still run, with its output and exit status passed straight through
(the client ``exec``s it). Each test gets its own daemon and index (the scenario stops the index).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.world import World
from tests.support.wheels import build_wheel

RENDER = """\
import sys


def main():
    args = sys.argv[1:]
    if args == ["--version"]:
        print("render 1.0")
        return 0
    if args[:1] == ["--exit"]:
        print(f"render failing with {args[1]}", file=sys.stderr)
        return int(args[1])
    print("usage: render --version | --exit N", file=sys.stderr)
    return 2
"""


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path)
    w.index.add(
        build_wheel(
            w.dist,
            "internal-tool",
            "1.0",
            requires=["helper>=1"],
            files={"internal_tool/__init__.py": RENDER},
            console_scripts={"render": "internal_tool:main"},
        )
    )
    w.index.add(build_wheel(w.dist, "helper", "1.2"))
    try:
        yield w
    finally:
        w.close()


def tools(world: World) -> list[dict[str, Any]]:
    value: list[dict[str, Any]] = world.json("tool", "list")["tools"]
    return value


def test_the_seed_scenario_runs_with_every_index_unreachable(world: World) -> None:
    world.ok("prefetch", "internal-tool")
    world.index.stop()

    result = world.satchel("run", "--from", "internal-tool", "render", "--version")

    assert result.returncode == 0, result.stderr
    assert result.stdout == "render 1.0\n"


def test_exit_status_and_streams_pass_through(world: World) -> None:
    world.ok("prefetch", "internal-tool")
    world.index.stop()

    result = world.satchel("run", "--from", "internal-tool", "render", "--exit", "7")

    assert result.returncode == 7
    assert "render failing with 7" in result.stderr
    assert result.stdout == ""


def test_a_second_run_reuses_the_environment_without_asking_any_index(world: World) -> None:
    world.ok("prefetch", "internal-tool")
    world.index.stop()
    world.ok("run", "--from", "internal-tool", "render", "--version")
    first = tools(world)
    world.index.start()  # reachable again: the second run still must not need it
    world.index.reset_log()

    again = world.ok("run", "--from", "internal-tool", "render", "--version")

    assert again.stdout == "render 1.0\n"
    assert world.index.requests == []
    second = tools(world)
    assert [t["key"] for t in second] == [t["key"] for t in first]  # one environment, reused
    assert second[0]["commands"] == ["render"]
    assert set(second[0]["pins"]) == {"helper==1.2", "internal-tool==1.0"}
    assert second[0]["last_used"] > first[0]["last_used"]


def test_run_without_from_takes_the_command_as_the_requirement(world: World) -> None:
    world.index.add(
        build_wheel(
            world.dist,
            "render",
            "3.0",
            files={"render_pkg/__init__.py": 'def main():\n    print("render 3.0")\n'},
            console_scripts={"render": "render_pkg:main"},
        )
    )

    result = world.ok("run", "render")

    assert result.stdout == "render 3.0\n"


def test_run_offline_with_nothing_cached_says_what_is_missing(world: World) -> None:
    world.index.stop()

    result = world.satchel("run", "--offline", "--from", "internal-tool", "render", "--version")

    assert result.returncode != 0
    assert "internal-tool" in result.stderr
    assert "satchel prefetch" in result.stderr


def test_tool_list_remove_and_prune(world: World) -> None:
    world.ok("run", "--from", "internal-tool", "render", "--version")
    [tool] = tools(world)
    environment = Path(str(tool["environment"]))
    assert environment.is_dir()

    kept = world.ok("tool", "prune")  # nothing superseded, nothing old: nothing goes
    assert len(tools(world)) == 1, kept.stdout
    removed = world.ok("tool", "remove", "render")
    assert f"removed internal-tool [{tool['key']}]" in removed.stdout
    assert tools(world) == []
    assert not environment.exists()
    assert "no cached tools" in world.ok("tool", "list").stdout

    world.ok("run", "--from", "internal-tool", "render", "--version")
    pruned = world.ok("tool", "prune", "--older-than", "0")
    assert "removed internal-tool" in pruned.stdout
    assert tools(world) == []
    missing = world.satchel("tool", "remove", "render")
    assert missing.returncode != 0
    assert "no cached tool matches render" in missing.stderr
    assert json.loads(world.ok("tool", "list", "--json").stdout) == {"tools": []}
