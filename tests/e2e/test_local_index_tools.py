"""Issue 13.5: pip, pip-tools, uv, poetry and pdm use the local index and write no secret.

A real `satcheld` serves its local index in front of a loopback upstream (`IndexServer`) holding
app-a -> lib-b -> lib-c. Each test drives one real tool the way docs/local-index.md tells a user
to, in a fresh work tree that holds everything the tool may write (project, HOME, caches, config,
virtual environments), then reads every file in it: none may contain the daemon's token (plain,
or as basic-auth) or a URL with credentials in it; the files a project commits (lock and
requirements files, pyproject.toml) may not name Satchel's loopback URL either.

A tool that is not installed is skipped with the reason (`uv sync` installs them: the ``tools``
dependency group).
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.client.clientenv import SATCHEL
from tests.support.daemon import DaemonProcess, call, isolated_env
from tests.support.index_server import IndexServer
from tests.support.wheels import build_wheel

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"),
    reason="the token-free URL needs peer identification (Linux)",
)

BIN = Path(sys.executable).parent
INSTALLED = {"app-a": "1.0", "lib-b": "2.0", "lib-c": "1.1"}
#: userinfo in a loopback URL: ``http://user:secret@127.0.0.1`` (a credential written into a
#: file; the tools' own code holds examples for other hosts).
URL_WITH_CREDENTIALS = re.compile(rb"https?://[^/\s\"'@]+:[^/\s\"'@]+@(127\.0\.0\.1|localhost)")


def tool(name: str) -> str:
    path = BIN / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (the `tools` dependency group installs it)")
    return found


@dataclass
class World:
    tmp: Path
    index: IndexServer
    daemon: DaemonProcess
    #: The local index URL `satchel env` gives, and the daemon's token.
    url: str
    token: str
    #: Everything a tool may write: the project, HOME, caches, config.
    work: Path
    env: dict[str, str]
    #: The names `satchel env` exported.
    exported: frozenset[str]

    def run(self, *argv: str, cwd: Path | None = None, **extra: str) -> str:
        env = dict(self.env, **extra)
        result = subprocess.run(
            argv,
            cwd=cwd or self.project,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert result.returncode == 0, f"{argv}: {result.stdout}\n{result.stderr}"
        return result.stdout + result.stderr

    @property
    def project(self) -> Path:
        return self.work / "project"

    def assert_no_secret_written(self) -> list[Path]:
        """Every file under the work tree is free of the token and of URL credentials;
        returns the files read (so a test can check it looked at what it meant to)."""
        secrets = {
            self.token.encode(),
            base64.b64encode(f"satchel:{self.token}".encode()),
            base64.b64encode(f":{self.token}".encode()).rstrip(b"="),
        }
        seen = []
        for path in sorted(self.work.rglob("*")):
            if not path.is_file() or path.is_symlink():
                continue
            data = path.read_bytes()
            seen.append(path)
            for secret in secrets:
                assert secret not in data, f"{path} holds the local index token"
            match = URL_WITH_CREDENTIALS.search(data)
            assert match is None, f"{path} holds a URL with credentials: {match.group()!r}"
        return seen

    def assert_committed_files_clean(self, *names: str) -> None:
        """The project's own files name neither Satchel's URL nor its port."""
        port = self.url.split(":")[2].split("/")[0]
        for name in names:
            text = (self.project / name).read_text()
            assert self.url not in text and f"127.0.0.1:{port}" not in text, (name, text)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    dist = tmp_path / "dist"
    with IndexServer(tmp_path / "index") as index:
        index.add(build_wheel(dist, "app-a", "1.0", requires=["lib-b", "lib-c>=1.1"]))
        index.add(build_wheel(dist, "lib-b", "2.0", requires=["lib-c"]))
        index.add(build_wheel(dist, "lib-c", "1.0"))
        index.add(build_wheel(dist, "lib-c", "1.1"))
        daemon_env = isolated_env(tmp_path / "satchel")
        config = Path(daemon_env["XDG_CONFIG_HOME"]) / "satchel" / "config.toml"
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(
            f'[[index]]\nname = "up"\nurl = "{index.url}"\n\n[settings]\nlocal-index-port = 0\n'
        )
        with DaemonProcess(daemon_env) as daemon:
            exports = subprocess.run(
                [SATCHEL, "--no-autostart", "env", "--shell", "bash"],
                env=daemon_env,
                capture_output=True,
                text=True,
                timeout=30,
                check=True,
            ).stdout
            info = call(daemon.socket, "localindex.info")
            token = Path(info["token_file"]).read_text().strip()
            work = tmp_path / "work"
            env = {
                "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
                "HOME": str(work / "home"),
                "XDG_CACHE_HOME": str(work / "cache"),
                "XDG_CONFIG_HOME": str(work / "config"),
                "XDG_DATA_HOME": str(work / "data"),
                "XDG_STATE_HOME": str(work / "state"),
                "PIP_DISABLE_PIP_VERSION_CHECK": "1",
                # This machine's pip.conf stays out; pip's HTTP cache is in the work tree.
                "PIP_CONFIG_FILE": os.devnull,
                "PIP_CACHE_DIR": str(work / "cache" / "pip"),
                # No keyring daemon here: tools must not wait on one.
                "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring",
                "PDM_CHECK_UPDATE": "false",
                "POETRY_VIRTUALENVS_IN_PROJECT": "true",
                "UV_PYTHON_DOWNLOADS": "never",
                "UV_PYTHON": sys.executable,
            }
            # `eval "$(satchel env)"`, as the user does.
            exported = set()
            for line in exports.splitlines():
                name, _, value = line.removeprefix("export ").partition("=")
                env[name] = value.strip("'")
                exported.add(name)
            for directory in ("home", "cache", "config", "data", "state", "project"):
                (work / directory).mkdir(parents=True)
            yield World(tmp_path, index, daemon, info["url"], token, work, env, frozenset(exported))


def installed(python: Path) -> dict[str, str]:
    code = (
        "import importlib.metadata as m, json;"
        "print(json.dumps({d.metadata['Name']: d.version for d in m.distributions()}))"
    )
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True)
    import json

    found: dict[str, str] = json.loads(out.stdout)
    return {name: found[name] for name in INSTALLED if name in found}


def pyproject(world: World, extra: str = "") -> None:
    (world.project / "pyproject.toml").write_text(
        '[project]\nname = "demo"\nversion = "0.1.0"\nrequires-python = ">=3.11"\n'
        f'dependencies = ["app-a"]\n{extra}'
    )


def test_the_url_tools_get_has_no_token(world: World) -> None:
    """issue 13.5: `satchel env` exports a URL without credentials."""
    assert world.url.startswith("http://127.0.0.1:") and "@" not in world.url
    assert world.env["PIP_INDEX_URL"] == world.url
    assert world.token not in " ".join(world.env.values())


def test_pip_installs_and_writes_no_secret(world: World) -> None:
    """issue 13.5, pip: ``PIP_INDEX_URL`` from `satchel env`; pip's cache (which stores
    responses by URL) and the environment it installs into hold no secret."""
    venv = world.project / ".venv"
    world.run(sys.executable, "-m", "venv", str(venv))  # with its own pip, as a user has it
    world.run(str(venv / "bin" / "pip"), "install", "app-a")
    assert installed(venv / "bin" / "python") == INSTALLED
    written = world.assert_no_secret_written()
    assert any("pip" in path.parts for path in written)  # pip's own cache was read too


def test_pip_compile_writes_no_secret_and_no_loopback_url(world: World) -> None:
    """issue 13.5, pip-tools: pip-compile resolves through ``PIP_INDEX_URL``; by default it
    copies the index URL into requirements.txt (token-free now), and with
    ``--no-emit-index-url``, as documented, not even that."""
    pip_compile = tool("pip-compile")
    (world.project / "requirements.in").write_text("app-a\n")
    world.run(pip_compile, "--quiet", "-o", "default.txt", "requirements.in")
    default = (world.project / "default.txt").read_text()
    assert "lib-c==1.1" in default
    assert f"--index-url {world.url}" in default  # pip-compile's default: the URL, no secret
    world.run(pip_compile, "--quiet", "--no-emit-index-url", "requirements.in")
    assert "lib-c==1.1" in (world.project / "requirements.txt").read_text()
    world.assert_committed_files_clean("requirements.txt", "requirements.in")
    world.assert_no_secret_written()


def test_uv_pip_uses_the_index_from_uv_toml_and_uv_lock_keeps_the_projects_index(
    world: World,
) -> None:
    """issue 13.5, uv: `satchel env` sets no uv variable; the user's uv.toml ``[pip]`` table
    points ``uv pip`` at Satchel, and a project's ``uv lock``/``uv sync`` in that same shell
    keep the project's own index in uv.lock (before the fix, uv.lock was rewritten to
    Satchel's loopback URL)."""
    uv = tool("uv")
    uv_toml = world.work / "config" / "uv" / "uv.toml"
    uv_toml.parent.mkdir(parents=True)
    uv_toml.write_text(f'[pip]\nindex-url = "{world.url}"\n')
    # uv pip: through Satchel (the project's index is not configured for it).
    venv = world.work / "pip-venv"
    world.run(uv, "venv", str(venv))
    world.run(uv, "pip", "install", "--python", str(venv / "bin" / "python"), "app-a")
    assert installed(venv / "bin" / "python") == INSTALLED
    (world.project / "requirements.in").write_text("app-a\n")
    world.run(uv, "pip", "compile", "-o", "requirements.txt", "requirements.in")
    assert "lib-c==1.1" in (world.project / "requirements.txt").read_text()
    # A project whose own index is the upstream: locked, then locked and synced again in the
    # shell that evaluated `satchel env`.
    pyproject(world, f'[[tool.uv.index]]\nname = "company"\nurl = "{world.index.url}"\n'
              "default = true\n")  # fmt: skip
    bare = {k: v for k, v in world.env.items() if k not in world.exported}
    subprocess.run([uv, "lock"], cwd=world.project, env=bare, check=True, capture_output=True)
    before = (world.project / "uv.lock").read_text()
    assert f'registry = "{world.index.url}' in before
    world.run(uv, "lock")
    world.run(uv, "sync")
    assert (world.project / "uv.lock").read_text() == before
    world.assert_committed_files_clean("uv.lock", "pyproject.toml", "requirements.txt")
    world.assert_no_secret_written()


def test_poetry_locks_and_installs_through_the_mirror_and_writes_no_secret(world: World) -> None:
    """issue 13.5, poetry: ``POETRY_PYPI_MIRROR_URL`` from `satchel env`, read by the
    poetry-plugin-pypi-mirror plugin: PyPI's packages come through Satchel, and neither
    pyproject.toml nor poetry.lock names it."""
    poetry = tool("poetry")
    if "pypi-mirror" not in world.run(poetry, "self", "show", "plugins"):
        pytest.skip("poetry-plugin-pypi-mirror is not installed beside poetry")
    pyproject(world, "[tool.poetry]\npackage-mode = false\n")
    world.run(poetry, "lock")
    world.run(poetry, "install")
    lock = (world.project / "poetry.lock").read_text()
    assert 'name = "lib-c"\nversion = "1.1"' in lock
    assert "[package.source]" not in lock
    assert installed(world.project / ".venv" / "bin" / "python") == INSTALLED
    world.assert_committed_files_clean("poetry.lock", "pyproject.toml")
    world.assert_no_secret_written()


def test_pdm_locks_and_installs_and_writes_no_secret(world: World) -> None:
    """issue 13.5, pdm: ``PDM_PYPI_URL`` from `satchel env` is its default source; pdm.lock
    records file names and hashes, never the index URL."""
    pdm = tool("pdm")
    pyproject(world, "[tool.pdm]\ndistribution = false\n")
    world.run(pdm, "lock")
    world.run(pdm, "install")
    lock = (world.project / "pdm.lock").read_text()
    assert 'name = "lib-c"\nversion = "1.1"' in lock
    assert installed(world.project / ".venv" / "bin" / "python") == INSTALLED
    world.assert_committed_files_clean("pdm.lock", "pyproject.toml")
    world.assert_no_secret_written()
