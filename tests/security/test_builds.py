"""Issue 11.9, end to end: no build runs where the user asked for none, and a build that runs
never sees the daemon's credentials.

Real `satchel` (autostarting a real `satcheld` in a private environment), a real index on
127.0.0.1 that needs a password (given to the daemon as ``SATCHEL_INDEX_INTERNAL_PASSWORD``,
as a user would), real sdists whose in-tree build backend leaves a trace: importing the backend
(which every build hook does) writes the build's whole environment to a file. A backend that
ran is a file that exists; a backend that did not run is a file that does not.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.client.clientenv import ClientEnv
from tests.support.index_server import IndexServer
from tests.support.wheels import build_sdist, build_wheel

USER = "ci"
#: Secrets in the daemon's environment: none may reach a build backend.
PASSWORD = "pw-index-9d1c7e"
SECRETS = {
    "SATCHEL_INDEX_INTERNAL_USERNAME": USER,
    "SATCHEL_INDEX_INTERNAL_PASSWORD": PASSWORD,
    "DEPLOY_API_TOKEN": "tok-deploy-51f0aa",
    "AWS_SECRET_ACCESS_KEY": "aws-secret-77b2c4",
    "PIP_INDEX_URL": "https://pipuser:pip-pass-3e8d@pypi.example.invalid/simple/",
    "UV_INDEX_URL": "https://uvuser:uv-pass-0c4b@pypi.example.invalid/simple/",
    "GITHUB_TOKEN": "ghp-token-a6e5d2",
}
#: What a build legitimately needs passes through.
KEPT = {"SOURCE_DATE_EPOCH": "1577836800", "CFLAGS": "-O1", "LC_ALL": "C.UTF-8"}

#: How long a background prefetch may take to show up (a resolve and two downloads on
#: loopback take well under a second): a deadline for a condition, not a sleep.
SETTLE = 60.0

BUILD_FORBIDDEN_EXIT = 1


def _trace(path: Path) -> str:
    """Backend code: write the build's environment to *path* when the backend is imported."""
    return (
        "import json as _json, os as _os\n"
        f"with open({str(path)!r}, 'w') as _out:\n"
        "    _json.dump(dict(_os.environ), _out)\n"
    )


@dataclass
class World:
    root: Path
    env: ClientEnv
    index: IndexServer
    #: Written by the backend of each sdist when (and only when) it runs.
    traces: dict[str, Path]

    @property
    def config(self) -> Path:
        return Path(self.env.env["XDG_CONFIG_HOME"]) / "satchel" / "config.toml"

    def satchel(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return self.env.satchel(*args, timeout=timeout)

    def ok(self, *args: str) -> subprocess.CompletedProcess[str]:
        result = self.satchel(*args)
        assert result.returncode == 0, f"satchel {' '.join(args)}:\n{result.stderr}"
        return result

    def ran(self, project: str) -> bool:
        return self.traces[project].exists()

    def write_requirements(self, name: str, text: str) -> Path:
        path = self.root / name
        path.write_text(text, "utf-8")
        return path


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    index = IndexServer(tmp_path / "index", auth=(USER, PASSWORD)).start()
    env = ClientEnv(tmp_path / "client")
    env.env.update(SECRETS)
    env.env.update(KEPT)
    config = Path(env.env["XDG_CONFIG_HOME"]) / "satchel"
    config.mkdir(parents=True, exist_ok=True)
    (config / "config.toml").write_text(
        f'[[index]]\nname = "internal"\nurl = "{index.url}"\n', "utf-8"
    )
    dist = tmp_path / "dist"
    traces = {}
    # sdonly: an sdist only, static metadata (resolvable without building it).
    # dynpkg: an sdist only, dynamic metadata (resolving it needs a build).
    # mixed: 1.0 as a wheel, 2.0 only as an sdist (pip's --only-binary picks 1.0).
    for name, version, static in (("sdonly", "1.0", True), ("dynpkg", "1.0", False)):
        traces[name] = tmp_path / f"{name}-build-env.json"
        index.add(
            build_sdist(
                dist,
                name,
                version,
                static_metadata=static,
                backend_extra=_trace(traces[name]),
            )
        )
    traces["mixed"] = tmp_path / "mixed-build-env.json"
    index.add(build_wheel(dist, "mixed", "1.0"))
    index.add(build_sdist(dist, "mixed", "2.0", backend_extra=_trace(traces["mixed"])))
    world = World(tmp_path, env, index, traces)
    try:
        yield world
    finally:
        try:
            env.cleanup()
        finally:
            index.stop()


def wait_for(predicate: Callable[[], bool], timeout: float = SETTLE) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.2)


def assert_forbidden(
    result: subprocess.CompletedProcess[str], project: str, sdist: str, by: str
) -> None:
    assert result.returncode == BUILD_FORBIDDEN_EXIT, result.stderr
    message = result.stderr
    assert project in message and sdist in message and by in message, message
    assert "internal error" not in message


# -- --only-binary / --no-binary in requirements files and on the command line ----------------


def test_only_binary_all_in_a_requirements_file_runs_no_backend(world: World) -> None:
    """issue 11.9: `--only-binary :all:` in requirements.txt is honoured: the sdist's build
    backend never runs, and the error names the project, the sdist and the file's line."""
    reqs = world.write_requirements("requirements.txt", "--only-binary :all:\nsdonly\n")
    venv = world.root / "venv"
    result = world.satchel("install", "--venv", str(venv), "-r", str(reqs))
    assert_forbidden(result, "sdonly", "sdonly-1.0.tar.gz", f"--only-binary :all: ({reqs}:1)")
    assert not world.ran("sdonly")
    result = world.satchel("resolve", "-r", str(reqs))
    assert_forbidden(result, "sdonly", "sdonly-1.0.tar.gz", "--only-binary :all:")
    assert not world.ran("sdonly")


def test_only_binary_picks_the_version_that_has_a_wheel_as_pip_does(world: World) -> None:
    """issue 11.9: with `--only-binary=:all:` an sdist is no candidate, so `mixed` resolves to
    1.0 (a wheel) rather than 2.0 (an sdist only), and nothing is built."""
    reqs = world.write_requirements("requirements.txt", "--only-binary=:all:\nmixed\n")
    assert "mixed==1.0" in world.ok("resolve", "-r", str(reqs)).stdout
    assert "mixed==2.0" in world.ok("resolve", "mixed").stdout  # the control: 2.0 is newest
    venv = world.root / "venv"
    world.ok("install", "--venv", str(venv), "-r", str(reqs))
    assert not world.ran("mixed")


def test_only_binary_names_are_canonicalized_and_none_resets(world: World) -> None:
    """issue 11.9: pip's syntax on the command line: `--only-binary Mixed_,sdonly`-style names
    are canonicalised; `:none:` empties the list again; `--no-binary` keeps working."""
    result = world.satchel("resolve", "--only-binary", "SDOnly,other", "sdonly")
    assert_forbidden(result, "sdonly", "sdonly-1.0.tar.gz", "--only-binary SDOnly,other")
    assert "mixed==1.0" in world.ok("resolve", "--only-binary", "MIXED", "mixed").stdout
    reset = world.ok("resolve", "--only-binary", ":all:", "--only-binary", ":none:", "mixed")
    assert "mixed==2.0" in reset.stdout
    # --no-binary mixed: the wheel of 1.0 is no candidate, so 1.0 could only come as an sdist.
    reqs = world.write_requirements("nb.txt", "--no-binary mixed\nmixed<2\n")
    result = world.satchel("resolve", "-r", str(reqs))
    assert result.returncode != 0, result.stdout
    assert not world.ran("mixed")


# -- --no-build on every command that may build --------------------------------------------


@pytest.mark.parametrize("command", ["resolve", "install", "prefetch", "run"])
def test_no_build_forbids_every_build(world: World, command: str) -> None:
    """issue 11.9: `--no-build` on resolve, install, prefetch and run: an sdist whose metadata
    is dynamic (resolving it would run its backend) is refused, naming project, sdist and flag;
    the backend never ran."""
    args = {
        "resolve": ["resolve", "--no-build", "dynpkg"],
        "install": ["install", "--no-build", "--venv", str(world.root / "venv"), "dynpkg"],
        "prefetch": ["prefetch", "--no-build", "dynpkg"],
        "run": ["run", "--no-build", "--from", "dynpkg", "dynpkg-cmd"],
    }[command]
    result = world.satchel(*args)
    assert_forbidden(result, "dynpkg", "dynpkg-1.0.tar.gz", "--no-build")
    assert not world.ran("dynpkg")
    # The same sdist with a static PKG-INFO resolves without a build, but installs with none.
    if command == "install":
        result = world.satchel(
            "install", "--no-build", "--venv", str(world.root / "venv"), "sdonly"
        )
        assert_forbidden(result, "sdonly", "sdonly-1.0.tar.gz", "--no-build")
        assert not world.ran("sdonly")
        assert not (world.root / "venv" / "lib").exists() or not list(
            (world.root / "venv").glob("lib/python*/site-packages/sdonly*")
        )


def test_config_builds_never_forbids_builds_and_says_where(world: World) -> None:
    """issue 11.9: `builds = "never"` in config.toml [settings] forbids every build; the error
    names the setting."""
    text = world.config.read_text("utf-8") + '\n[settings]\nbuilds = "never"\n'
    world.config.write_text(text, "utf-8")
    result = world.satchel("install", "--venv", str(world.root / "venv"), "sdonly")
    assert_forbidden(result, "sdonly", "sdonly-1.0.tar.gz", 'builds = "never" in config.toml')
    assert not world.ran("sdonly")


# -- background prefetches ------------------------------------------------------------------


def _watched(world: World) -> dict[str, Any]:
    listing = json.loads(world.ok("watch", "list", "--json").stdout)
    projects: list[dict[str, Any]] = listing["projects"]
    return projects[0] if projects else {}


def test_watch_add_builds_nothing_in_the_background_by_default(world: World) -> None:
    """issue 11.9: `watch add` prefetches in the background, where (by default) nothing is
    built: the sdist is stored, its backend does not run, the watched project says why and how
    to build; `satchel prefetch --watched`, a command the user ran, builds it."""
    project = world.root / "proj"
    project.mkdir()
    (project / "requirements.txt").write_text("sdonly\n", "utf-8")
    world.ok("watch", "add", str(project))
    wait_for(lambda: _watched(world).get("last_prefetch") is not None)
    info = _watched(world)
    assert not world.ran("sdonly")
    assert not info["last_prefetch"]["ok"]
    assert any("background builds being off" in line for line in info["missing"]), info
    world.ok("prefetch", "--watched")
    assert world.ran("sdonly")


def test_builds_background_lets_watched_projects_build(world: World) -> None:
    """issue 11.9: with `builds = "background"` a watched project's sdist is built by the
    background prefetch itself."""
    text = world.config.read_text("utf-8") + '\n[settings]\nbuilds = "background"\n'
    world.config.write_text(text, "utf-8")
    project = world.root / "proj"
    project.mkdir()
    (project / "requirements.txt").write_text("sdonly\n", "utf-8")
    world.ok("watch", "add", str(project))
    wait_for(lambda: (_watched(world).get("last_prefetch") or {}).get("ok") is True)
    assert world.ran("sdonly")


# -- what a build sees ------------------------------------------------------------------------


def test_a_build_sees_no_credential_of_the_daemon(world: World) -> None:
    """issue 11.9: the build backend's environment is an allow-list: the index password the
    daemon itself uses (and every *_TOKEN, PIP_*/UV_* URL, cloud key) is absent, while what a
    compiler needs (SOURCE_DATE_EPOCH, CFLAGS, LC_*) passes."""
    venv = world.root / "venv"
    world.ok("install", "--venv", str(venv), "sdonly")  # the password works: the index needs it
    assert world.ran("sdonly")
    raw = world.traces["sdonly"].read_text("utf-8")
    seen: dict[str, str] = json.loads(raw)
    for name, value in SECRETS.items():
        assert name not in seen, name
        if name != "SATCHEL_INDEX_INTERNAL_USERNAME":  # "ci" is too short to grep for
            assert value not in raw, name
    for name, value in KEPT.items():
        assert seen.get(name) == value, name
    assert seen["PATH"].split(os.pathsep)[0].endswith("/bin")  # the build env's own bin first


def test_code_an_installed_wheel_runs_in_the_daemons_children_sees_no_credential(
    world: World,
) -> None:
    """issue 11.9 (the same leak by another door): a wheel's ``.pth`` file runs whenever the
    environment's interpreter starts, and the daemon starts it to byte-compile (`--compile`) and
    to describe the environment (a later install into it). Those children get the same
    allow-listed environment as a build: no credential."""
    trace = world.root / "pth-env.json"
    line = f"import json, os; open({str(trace)!r}, 'w').write(json.dumps(dict(os.environ)))\n"
    dist = world.root / "dist"
    world.index.add(
        build_wheel(dist, "pthpkg", "1.0", files={"pthpkg.pth": line, "pthpkg/__init__.py": ""})
    )
    world.index.add(build_wheel(dist, "other", "1.0"))
    venv = world.root / "venv"
    world.ok("install", "--compile", "--venv", str(venv), "pthpkg")
    assert trace.exists()  # the .pth ran when the daemon byte-compiled
    seen_at_compile = trace.read_text("utf-8")
    trace.unlink()
    world.ok("install", "--venv", str(venv), "other")
    assert trace.exists()  # ... and when it asked the environment's interpreter about itself
    for raw in (seen_at_compile, trace.read_text("utf-8")):
        seen = json.loads(raw)
        for name, value in SECRETS.items():
            assert name not in seen, name
            if name != "SATCHEL_INDEX_INTERNAL_USERNAME":
                assert value not in raw, name
