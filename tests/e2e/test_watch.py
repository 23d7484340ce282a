"""Issue 6, end to end: watched projects stay warm by themselves; `ready`, `cache prune`.

Real `satchel` (autostarting a real `satcheld`) in a private environment, a real index on
127.0.0.1 serving real wheels, real watchfiles: the only thing a test does between editing a
watched file and finding the new package in the store is wait.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.client.clientenv import ClientEnv
from tests.support.daemon import call
from tests.support.index_server import IndexServer
from tests.support.wheels import build_wheel, file_sha256

EXIT_OFFLINE = 5

#: How long a background prefetch may take to show up: a hang guard, not a measurement (a
#: resolve and a download on loopback take well under a second; watchfiles' debounce adds 0.3 s).
SETTLE = 60.0


@dataclass
class World:
    root: Path
    env: ClientEnv
    index: IndexServer
    project: Path

    @property
    def cache(self) -> Path:
        return Path(self.env.env["XDG_CACHE_HOME"]) / "satchel"

    def satchel(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.env.satchel(*args, timeout=60)

    def ok(self, *args: str) -> subprocess.CompletedProcess[str]:
        result = self.satchel(*args)
        assert result.returncode == 0, f"satchel {' '.join(args)}:\n{result.stdout}{result.stderr}"
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(*args, "--json").stdout)

    def publish(self, name: str, version: str = "1.0") -> str:
        """Put a wheel on the index; return its sha256."""
        wheel = build_wheel(self.root / "dist", name, version)
        self.index.add(wheel)
        return file_sha256(wheel)

    def stored(self, sha256: str) -> bool:
        return any(True for _ in (self.cache).rglob(sha256))


def wait_for(predicate: Callable[[], bool], timeout: float = SETTLE) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.05)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    env = ClientEnv(tmp_path / "env")
    with IndexServer(tmp_path / "index") as index:
        config = Path(env.env["XDG_CONFIG_HOME"]) / "satchel" / "config.toml"
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(f'[[index]]\nname = "loop"\nurl = "{index.url}"\n')
        project = tmp_path / "project"
        project.mkdir()
        try:
            yield World(tmp_path, env, index, project)
        finally:
            env.cleanup()


def last_prefetch(world: World) -> dict[str, Any] | None:
    projects = world.json("watch", "list")["projects"]
    return projects[0]["last_prefetch"] if projects else None


def test_editing_a_watched_requirements_file_prefetches_the_new_package(world: World) -> None:
    alpha = world.publish("alpha")
    beta = world.publish("beta")
    (world.project / "requirements.txt").write_text("alpha\n")
    world.ok("watch", "add", str(world.project))
    wait_for(lambda: world.stored(alpha))
    assert not world.stored(beta)

    (world.project / "requirements.txt").write_text("alpha\nbeta\n")

    wait_for(lambda: world.stored(beta))


def test_ready_flips_from_not_ready_to_ready(world: World) -> None:
    (world.project / "requirements.txt").write_text("alpha\n")
    world.ok("watch", "add", str(world.project))
    wait_for(lambda: last_prefetch(world) is not None)

    before = world.satchel("ready")
    assert before.returncode == EXIT_OFFLINE, before.stderr
    assert "NOT ready: 0/1 projects" in before.stdout
    assert "alpha" in before.stdout

    world.publish("alpha")
    filled = world.satchel("prefetch", "--watched")
    assert filled.returncode == 0, filled.stdout + filled.stderr

    after = world.satchel("ready")
    assert after.returncode == 0, after.stdout
    assert after.stdout.startswith("ready: 1/1 projects, 1 files, ")


def test_prune_under_a_small_cap_keeps_what_watched_projects_need(world: World) -> None:
    alpha = world.publish("alpha")
    others = [world.publish("gamma"), world.publish("delta")]
    (world.project / "requirements.txt").write_text("alpha\n")
    world.ok("watch", "add", str(world.project))
    world.ok("prefetch", "gamma", "delta")
    wait_for(lambda: world.stored(alpha))

    dry = world.json("cache", "prune", "--max-size", "1", "--dry-run")
    assert sorted(item["sha256"] for item in dry["removed"]) == sorted(others)
    assert dry["protected"] == 1
    assert all(world.stored(sha) for sha in [alpha, *others])

    done = world.json("cache", "prune", "--max-size", "1")
    assert sorted(item["sha256"] for item in done["removed"]) == sorted(others)
    assert world.stored(alpha)
    assert not any(world.stored(sha) for sha in others)
    assert world.satchel("ready").returncode == 0


def test_the_watched_set_survives_a_daemon_restart(world: World) -> None:
    world.publish("alpha")
    (world.project / "requirements.txt").write_text("alpha\n")
    world.ok("watch", "add", str(world.project))
    wait_for(lambda: (last_prefetch(world) or {}).get("ok") is True)
    world.ok("stop")

    projects = world.json("watch", "list")["projects"]  # autostarts a new daemon

    assert [p["path"] for p in projects] == [str(world.project.resolve())]
    assert projects[0]["last_prefetch"]["files"] == 1


def test_removing_a_project_stops_watching_it(world: World) -> None:
    (world.project / "requirements.txt").write_text("alpha\n")
    world.ok("watch", "add", str(world.project))
    world.ok("watch", "remove", str(world.project))
    assert world.json("watch", "list")["projects"] == []
    result = world.satchel("watch", "remove", str(world.project))
    assert result.returncode != 0
    assert "is not watched" in result.stderr


def test_an_edit_made_while_the_daemon_was_stopped_is_prefetched_at_its_next_start(
    world: World,
) -> None:
    world.publish("alpha")
    beta = world.publish("beta")
    requirements = world.project / "requirements.txt"
    requirements.write_text("alpha\n")
    world.ok("watch", "add", str(world.project))
    wait_for(lambda: (last_prefetch(world) or {}).get("ok") is True)
    world.ok("stop")

    requirements.write_text("alpha\nbeta\n")
    world.ok("ping")  # autostarts a daemon; nothing asks it to prefetch

    wait_for(lambda: world.stored(beta))


def test_a_background_prefetch_is_a_job_that_status_shows(world: World) -> None:
    world.publish("alpha")
    (world.project / "requirements.txt").write_text("alpha\n")
    world.index.gate.clear()  # the index holds its answers: the prefetch is caught running
    world.ok("watch", "add", str(world.project))

    def watch_jobs() -> list[dict[str, Any]]:
        jobs = call(str(world.env.socket), "status")["jobs"]
        return [job for job in jobs if job["method"] == "watch"]

    try:
        wait_for(lambda: bool(watch_jobs()))
        (job,) = watch_jobs()  # still there: it waits on the index
    finally:
        world.index.gate.set()
    assert job["description"] == f"prefetching {world.project.resolve()}"
    wait_for(lambda: not watch_jobs())  # and gone once it ends
