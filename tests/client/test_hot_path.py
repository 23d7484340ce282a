"""`satchel ping` stays lean: the modules it loads are measured in a real subprocess.

Start-up time is the product (docs/client.md): the hot commands must not load the daemon's stack
(trio, httpx, packaging, watchfiles, platformdirs, satchel.daemon), msgspec, argparse, or the
stdlib modules that cost milliseconds each (socket, json, typing, subprocess, enum, re).
`python -X importtime` lists every module imported, whatever imports it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.client.clientenv import ClientEnv, importtime

FORBIDDEN = (
    "trio",
    "httpx",
    "packaging",
    "watchfiles",
    "platformdirs",
    "msgspec",
    "satchel.daemon",
    "argparse",
    "socket",
    "json",
    "typing",
    "subprocess",
    "enum",
    "re",
)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[ClientEnv]:
    env = ClientEnv(tmp_path)
    yield env
    env.cleanup()


def imported_modules(client: ClientEnv, *args: str) -> set[str]:
    result, modules = importtime(client, *args, timeout=30)
    assert result.returncode == 0, result.stderr
    client._remember_pid(result.stdout)
    return modules


def forbidden_in(modules: set[str]) -> set[str]:
    return {m for m in modules if any(m == f or m.startswith(f + ".") for f in FORBIDDEN)}


def test_importtime_output_is_parsed_so_the_check_can_fail(client: ClientEnv) -> None:
    # `service` uses argparse and subprocess: the same check must see them.
    modules = imported_modules(client, "service", "status")
    assert {"argparse", "subprocess"} <= forbidden_in(modules)


def test_a_warm_ping_loads_none_of_the_heavy_modules(client: ClientEnv) -> None:
    assert client.satchel("ping").returncode == 0  # autostart first: measure the warm path
    modules = imported_modules(client, "ping")
    assert "satchel.client.session" in modules
    assert forbidden_in(modules) == set()


def test_an_autostarting_ping_loads_none_of_the_daemons_modules(client: ClientEnv) -> None:
    modules = imported_modules(client, "ping")
    assert "satchel.client.autostart" in modules
    assert forbidden_in(modules) == set()


def test_status_and_stop_load_none_of_the_heavy_modules(client: ClientEnv) -> None:
    assert client.satchel("ping").returncode == 0
    assert forbidden_in(imported_modules(client, "status")) == set()
    assert forbidden_in(imported_modules(client, "stop")) == set()


def test_help_and_version_load_none_of_the_heavy_modules(client: ClientEnv) -> None:
    assert forbidden_in(imported_modules(client, "--help")) == set()
    assert forbidden_in(imported_modules(client, "--version")) == set()


def test_an_offline_resolve_without_python_loads_no_interpreter_lookup_nor_progress(
    client: ClientEnv, tmp_path: Path
) -> None:
    # The benchmarked command: without --python the client sends its own interpreter, so the
    # lookup module (uv's discovery order, pyenv, PATH) is not imported at all.
    assert client.satchel("ping").returncode == 0
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("nothing-is-cached-here\n")
    result, modules = importtime(
        client, "resolve", "--offline", "-r", str(requirements), timeout=30
    )
    assert "satchel.client.commands.resolve" in modules, result.stderr[-2000:]
    assert "satchel.client.interpreters" not in modules
    assert "satchel.client.progress" not in modules  # no progress event, no traffic to show
    assert forbidden_in(modules) == set()
