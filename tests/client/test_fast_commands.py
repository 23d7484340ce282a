"""The benchmarked commands (`resolve`, `install`, `run`, `prefetch`) start like `satchel ping`.

Through the real console script: usage errors and `--help` without a daemon, the global options
reaching the fast path, and, against a warm private daemon with a loopback index, the modules a
successful `satchel resolve --offline` and `satchel run --offline` load (`python -X importtime`
lists every module imported, whatever imports it).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.client.clientenv import ClientEnv, importtime
from tests.e2e.world import World
from tests.support.wheels import build_wheel

#: Besides the daemon's stack: the stdlib modules that cost milliseconds each at start-up.
FORBIDDEN = (
    "trio",
    "httpx",
    "packaging",
    "watchfiles",
    "platformdirs",
    "satchel.daemon",
    "msgspec",
    "argparse",
    "re",
    "pathlib",
    "typing",
    "shutil",
    "json",
    "socket",
    "enum",
    "subprocess",
)

TOOL = """\
import sys


def main():
    print("tool " + " ".join(sys.argv[1:]))
    return 0
"""


def forbidden_in(modules: set[str]) -> set[str]:
    return {m for m in modules if any(m == f or m.startswith(f + ".") for f in FORBIDDEN)}


@pytest.fixture
def client(tmp_path: Path) -> Iterator[ClientEnv]:
    env = ClientEnv(tmp_path)
    yield env
    env.cleanup()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A warm daemon whose cache holds `internal-tool` (console script `tool`) and `helper`."""
    w = World(tmp_path_factory.mktemp("fast"))
    try:
        w.index.add(
            build_wheel(
                w.dist,
                "internal-tool",
                "1.0",
                requires=["helper>=1"],
                files={"internal_tool/__init__.py": TOOL},
                console_scripts={"tool": "internal_tool:main"},
            )
        )
        w.index.add(build_wheel(w.dist, "helper", "1.2"))
        w.ok("prefetch", "internal-tool")
        yield w
    finally:
        w.close()


# -- without a daemon -------------------------------------------------------------------------


def test_an_unknown_option_prints_the_usage_line_and_one_error_line(client: ClientEnv) -> None:
    result = client.satchel("--no-autostart", "resolve", "--bogus", "pkg")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "usage: satchel resolve [OPTIONS] [REQ ...]",
        "satchel resolve: error: unknown option '--bogus'",
    ]


def test_a_bad_choice_is_a_usage_error(client: ClientEnv) -> None:
    result = client.satchel("--no-autostart", "install", "--venv", "v", "--link-mode", "x", "p")
    assert result.returncode == 2
    assert "invalid choice 'x'" in result.stderr


def test_help_is_argparses_complete_text(client: ClientEnv) -> None:
    result = client.satchel("--no-autostart", "install", "--help")
    assert result.returncode == 0
    assert result.stdout.startswith("usage: satchel install [-h]")
    assert "--link-mode {auto,clone,hardlink,copy}" in result.stdout


def test_help_after_runs_command_belongs_to_the_tool(client: ClientEnv) -> None:
    # Not help: the client goes on to ask the daemon (none runs, autostart is off: exit 3).
    result = client.satchel("--no-autostart", "run", "tool", "--help")
    assert result.returncode == 3, result.stdout + result.stderr
    assert "satcheld is not running" in result.stderr


def test_global_options_reach_the_fast_path(client: ClientEnv, tmp_path: Path) -> None:
    socket = str(tmp_path / "elsewhere.sock")
    result = client.satchel("--no-autostart", "--socket", socket, "resolve", "--offline", "p")
    assert result.returncode == 3
    assert socket in result.stderr


# -- against a warm daemon --------------------------------------------------------------------


def test_warm_offline_resolve_loads_none_of_the_heavy_modules(world: World) -> None:
    result, modules = importtime(world.env, "resolve", "--offline", "internal-tool")
    assert result.returncode == 0, result.stderr
    assert "internal-tool==1.0" in result.stdout
    assert "satchel.client.args" in modules
    assert forbidden_in(modules) == set()


def test_warm_offline_run_loads_none_of_the_heavy_modules(world: World) -> None:
    world.ok("run", "--from", "internal-tool", "tool")  # the tool environment exists from now
    result, modules = importtime(
        world.env, "run", "--offline", "--from", "internal-tool", "tool", "--x", "--", "y"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "tool --x -- y\n"
    assert "satchel.client.args" in modules
    assert forbidden_in(modules) == set()


def test_the_check_sees_a_heavy_module_when_one_is_loaded(world: World) -> None:
    # `--format json` imports json on purpose: the same check must notice it.
    result, modules = importtime(world.env, "resolve", "--offline", "--format", "json", "helper")
    assert result.returncode == 0, result.stderr
    assert "json" in forbidden_in(modules)


def test_warm_offline_install_loads_none_of_the_heavy_modules(world: World, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    world.ok("install", "--venv", str(venv), "internal-tool")  # creates it; now a warm no-op
    result, modules = importtime(
        world.env, "install", "--offline", "--venv", str(venv), "internal-tool"
    )
    assert result.returncode == 0, result.stderr
    assert "kept 2" in result.stdout
    assert "satchel.client.progress" in modules
    # Without --python the client sends its own interpreter: the discovery (issue 13.2) is not
    # even imported.
    assert "satchel.client.interpreters" not in modules
    assert forbidden_in(modules) == set()


def test_warm_install_with_a_python_path_loads_none_of_the_heavy_modules(
    world: World, tmp_path: Path
) -> None:
    venv = tmp_path / "venv"
    args = ("install", "--offline", "--python", sys.executable, "--venv", str(venv), "helper")
    world.ok(*args)
    result, modules = importtime(world.env, *args)
    assert result.returncode == 0, result.stderr
    assert "kept 1" in result.stdout
    assert forbidden_in(modules) == set()


def test_warm_prefetch_loads_none_of_the_heavy_modules(world: World) -> None:
    result, modules = importtime(world.env, "prefetch", "internal-tool")
    assert result.returncode == 0, result.stderr
    assert "0 downloaded" in result.stdout
    assert forbidden_in(modules) == set()
