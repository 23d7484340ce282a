"""The local index with the real installers: pip and uv install through Satchel, online and offline.

A real `satcheld` (subprocess) is configured with one loopback upstream (`IndexServer`) holding a
small dependency tree of real wheels. pip and uv are pointed at Satchel exactly as
docs/local-index.md tells a user to: pip with the exports printed by `satchel env`, `uv pip` with
the ``[pip]`` table of the user's uv.toml. Then the upstream goes away, and both must still
install from the cache; uv's own offline mode must work with the Satchel URL and no other flag.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.client.clientenv import SATCHEL
from tests.support.daemon import DaemonProcess, isolated_env
from tests.support.index_server import IndexServer
from tests.support.wheels import build_wheel

UV = shutil.which("uv")
needs_uv = pytest.mark.skipif(UV is None, reason="uv is not on PATH")

#: The project set: app needs lib-b and lib-c>=1.1 (so lib-c 1.0 is listed but never chosen);
#: lib-b needs lib-c too; tool-d is an unrelated project that must never be installed.
REQUIREMENT = "app-a"
INSTALLED = {"app-a": "1.0", "lib-b": "2.0", "lib-c": "1.1"}


@dataclass
class Setup:
    tmp: Path
    index: IndexServer
    daemon: DaemonProcess
    env: dict[str, str]
    _installer: dict[str, str] | None = None

    def satchel(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [SATCHEL, "--no-autostart", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    def installer_env(self) -> dict[str, str]:
        """The environment after ``eval "$(satchel env --shell bash)"``, asked once (a user
        evaluates it once per shell, and the client refuses a daemon of another build, which
        a source edit during the test would make it)."""
        if self._installer is not None:
            return dict(self._installer)
        result = self.satchel("env", "--shell", "bash")
        assert result.returncode == 0, result.stderr
        env = dict(self.env)
        for line in result.stdout.splitlines():
            name, _, value = line.removeprefix("export ").partition("=")
            env[name] = value.strip("'")
        env.pop("PIP_CONFIG_FILE", None)
        env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
        # uv: the user's uv.toml, `[pip]` table (only `uv pip` reads it; see the docs).
        uv_toml = Path(env["XDG_CONFIG_HOME"]) / "uv" / "uv.toml"
        uv_toml.parent.mkdir(parents=True, exist_ok=True)
        uv_toml.write_text(f'[pip]\nindex-url = "{env["PIP_INDEX_URL"]}"\n')
        self._installer = env
        return dict(env)

    def venv(self, name: str) -> Path:
        path = self.tmp / name
        subprocess.run(
            [sys.executable, "-m", "venv", "--without-pip", str(path)], check=True, timeout=60
        )
        return path / "bin" / "python"


def installed(python: Path) -> dict[str, str]:
    code = (
        "import importlib.metadata as m, json;"
        "print(json.dumps({d.metadata['Name']: d.version for d in m.distributions()}))"
    )
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True)
    return {k: v for k, v in json.loads(out.stdout).items() if k not in ("pip", "setuptools")}


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    dist = tmp_path / "dist"
    with IndexServer(tmp_path / "index") as index:
        index.add(build_wheel(dist, "app-a", "1.0", requires=["lib-b", "lib-c>=1.1"]))
        index.add(build_wheel(dist, "lib-b", "2.0", requires=["lib-c"]))
        index.add(build_wheel(dist, "lib-c", "1.0"))
        index.add(build_wheel(dist, "lib-c", "1.1"))
        index.add(build_wheel(dist, "tool-d", "3.0"))
        env = isolated_env(tmp_path)
        config = Path(env["XDG_CONFIG_HOME"]) / "satchel" / "config.toml"
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(
            f'[[index]]\nname = "up"\nurl = "{index.url}"\n\n[settings]\nlocal-index-port = 0\n'
        )
        with DaemonProcess(env) as daemon:
            setup = Setup(tmp_path, index, daemon, env)
            setup.installer_env()
            yield setup


def pip_install(setup: Setup, python: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--no-cache-dir",
            REQUIREMENT,
        ],
        env=setup.installer_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def uv_install(
    setup: Setup, python: Path, cache: Path, *extra: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    assert UV is not None
    env = dict(env or setup.installer_env())
    env["UV_CACHE_DIR"] = str(cache)
    env.pop("UV_NO_CACHE", None)
    env.pop("UV_OFFLINE", None)
    return subprocess.run(
        [UV, "pip", "install", "--python", str(python), *extra, REQUIREMENT],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="peer identification: Linux")
def test_index_url_prints_a_url_without_a_secret(setup: Setup) -> None:
    """issue 13.5: the daemon identifies its own user's connections, so the URL tools are given
    carries no token."""
    result = setup.satchel("index-url")
    assert result.returncode == 0, result.stderr
    url = result.stdout.strip()
    assert url.startswith("http://127.0.0.1:") and url.endswith("/simple/")
    assert "@" not in url
    assert setup.satchel("index-url", "--no-token").stdout.strip() == url


def test_pip_installs_online_then_with_the_upstream_stopped(setup: Setup) -> None:
    first = pip_install(setup, setup.venv("online"))
    assert first.returncode == 0, first.stdout + first.stderr
    assert installed(setup.tmp / "online" / "bin" / "python") == INSTALLED
    setup.index.stop()
    second = pip_install(setup, setup.venv("offline"))
    assert second.returncode == 0, second.stdout + second.stderr
    assert installed(setup.tmp / "offline" / "bin" / "python") == INSTALLED


@needs_uv
def test_uv_installs_online_then_with_the_upstream_stopped(setup: Setup) -> None:
    first = uv_install(setup, setup.venv("online"), setup.tmp / "uv-cache-1")
    assert first.returncode == 0, first.stderr
    assert installed(setup.tmp / "online" / "bin" / "python") == INSTALLED
    setup.index.stop()
    # A fresh uv cache: everything has to come through Satchel, from its store.
    second = uv_install(setup, setup.venv("offline"), setup.tmp / "uv-cache-2")
    assert second.returncode == 0, second.stderr
    assert installed(setup.tmp / "offline" / "bin" / "python") == INSTALLED


@needs_uv
def test_uv_offline_mode_with_the_satchel_url_needs_no_other_flag(setup: Setup) -> None:
    cache = setup.tmp / "uv-cache"
    env = setup.installer_env()
    first = uv_install(setup, setup.venv("online"), cache, env=env)
    assert first.returncode == 0, first.stderr
    setup.index.stop()
    setup.daemon.stop()
    # The seed scenario through uv: the same URL (from `satchel env`), uv's --offline, nothing
    # else; uv answers from its own cache, keyed by that URL, with nothing listening.
    again = uv_install(setup, setup.venv("offline"), cache, "--offline", env=env)
    assert again.returncode == 0, again.stderr
    assert installed(setup.tmp / "offline" / "bin" / "python") == INSTALLED


def test_satchel_env_exports_for_each_shell(setup: Setup) -> None:
    url = setup.satchel("index-url").stdout.strip()
    bash = setup.satchel("env", "--shell", "bash").stdout
    assert f"export PIP_INDEX_URL='{url}'" in bash
    assert f"export PDM_PYPI_URL='{url}'" in bash
    assert "UV_" not in bash  # uv would write the URL into uv.lock (docs/local-index.md)
    fish = setup.satchel("env", "--shell", "fish").stdout
    assert f"set -gx POETRY_PYPI_MIRROR_URL '{url}';" in fish
    powershell = setup.satchel("env", "--shell", "powershell").stdout
    assert f"$Env:PIP_INDEX_URL = '{url}'" in powershell
    assert os.environ.get("SHELL") is None or setup.satchel("env").returncode == 0


def test_index_url_explains_a_taken_port_and_the_daemon_keeps_serving(tmp_path: Path) -> None:
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    port = blocker.getsockname()[1]
    env = isolated_env(tmp_path)
    config = Path(env["XDG_CONFIG_HOME"]) / "satchel" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(
        '[[index]]\nname = "up"\nurl = "http://127.0.0.1:9/simple/"\n\n'
        f"[settings]\nlocal-index-port = {port}\n"
    )
    try:
        with DaemonProcess(env) as daemon:
            setup = Setup(tmp_path, None, daemon, env)  # type: ignore[arg-type]
            result = setup.satchel("index-url")
            assert result.returncode == 1
            assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
            assert setup.satchel("ping").returncode == 0
            assert f"127.0.0.1:{port}" in daemon.stderr()
    finally:
        blocker.close()
