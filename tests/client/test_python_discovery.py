"""Issue 13.2: `--python X.Y` is found as uv finds it, on the caller's side, whatever the daemon's
environment.

End to end: the real `satchel` against a real `satcheld` started apart from the client, the way
a service manager starts it (systemd: ``PATH=/usr/bin:/bin``, none of the user's variables), or
from another shell with its own ``PATH`` and Python roots. The interpreters the client must find
are this test's own Python (``sys.executable``'s real file, so its X.Y comes from
``sys.version_info``) made to appear where uv and pyenv install theirs: a uv python directory
(``UV_PYTHON_INSTALL_DIR``: ``cpython-X.Y.Z-OS-ARCH-gnu/bin/pythonX.Y``), a pyenv root
(``PYENV_ROOT``: ``versions/X.Y.Z/bin/python``) and a directory on the client's ``PATH``
(``pythonX.Y``), each a symlink. A venv created from one of them links its ``bin/python`` to
exactly that path, which tells them apart.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.client.clientenv import SATCHEL
from tests.e2e.world import World
from tests.support.daemon import DaemonProcess
from tests.support.wheels import build_wheel

XY = f"{sys.version_info[0]}.{sys.version_info[1]}"
XYZ = f"{XY}.{sys.version_info[2]}"
REAL = os.path.realpath(sys.executable)
SYSTEM = "macos" if sys.platform == "darwin" else sys.platform
ARCH = {"arm64": "aarch64", "amd64": "x86_64"}.get(platform.machine().lower(), platform.machine())

#: What a user service of systemd sees: no shell profile, so no pyenv or uv variables.
SERVICE_PATH = "/usr/bin:/bin"

#: The variables a service daemon keeps from this test's isolated environment: its locations.
KEPT = (
    "HOME",
    "XDG_RUNTIME_DIR",
    "XDG_CACHE_HOME",
    "XDG_CONFIG_HOME",
    "XDG_STATE_HOME",
    "SATCHEL_TEST_METHODS",
    "SATCHEL_LOCAL_INDEX_PORT",
)


def link(path: Path) -> Path:
    """A symlink at *path* to this test's real interpreter."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(REAL)
    return path


@dataclass
class Pythons:
    """Where the client finds this Python: a uv dir, a pyenv root, a PATH directory."""

    uv_dir: Path
    uv_python: Path
    pyenv_root: Path
    pyenv_python: Path
    path_dir: Path
    path_python: Path
    empty_dir: Path

    @classmethod
    def make(cls, root: Path) -> Pythons:
        uv_dir, pyenv_root = root / "uv-python", root / "pyenv"
        return cls(
            uv_dir=uv_dir,
            uv_python=link(uv_dir / f"cpython-{XYZ}-{SYSTEM}-{ARCH}-gnu" / "bin" / f"python{XY}"),
            pyenv_root=pyenv_root,
            pyenv_python=link(pyenv_root / "versions" / XYZ / "bin" / "python"),
            path_dir=root / "path-bin",
            path_python=link(root / "path-bin" / f"python{XY}"),
            empty_dir=root / "empty-bin",
        )


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    w = World(tmp_path_factory.mktemp("interp"))
    w.index.add(build_wheel(w.dist, "aa", "1.0"))
    try:
        yield w
    finally:
        w.close()


@pytest.fixture(scope="module")
def pythons(world: World) -> Pythons:
    found = Pythons.make(world.root / "pythons")
    found.empty_dir.mkdir()
    return found


def service_env(world: World) -> dict[str, str]:
    """A daemon's environment as systemd gives it: the locations, a minimal PATH, nothing else."""
    return {**{k: world.env.env[k] for k in KEPT}, "PATH": SERVICE_PATH}


def other_shell_env(world: World, root: Path) -> dict[str, str]:
    """A daemon started from another shell: its PATH and Python roots name *other* X.Y links."""
    other = root / "other-shell"
    if not other.exists():
        link(other / "bin" / f"python{XY}")
        link(other / "pyenv" / "versions" / XYZ / "bin" / "python")
        link(other / "uv" / f"cpython-{XYZ}-{SYSTEM}-{ARCH}-gnu" / "bin" / f"python{XY}")
    return {
        **world.env.env,
        "PATH": f"{other / 'bin'}{os.pathsep}{SERVICE_PATH}",
        "PYENV_ROOT": str(other / "pyenv"),
        "UV_PYTHON_INSTALL_DIR": str(other / "uv"),
    }


@pytest.fixture(params=["service", "other-shell"])
def daemon(request: pytest.FixtureRequest, world: World) -> Iterator[DaemonProcess]:
    """A satcheld that the client did not start (so it has not the client's environment)."""
    env = service_env(world) if request.param == "service" else other_shell_env(world, world.root)
    with DaemonProcess(env) as proc:
        yield proc


def install(world: World, venv: Path, env: dict[str, str], *args: str) -> tuple[int, str]:
    result = world.env.satchel(
        "--no-autostart", "install", *args, "--venv", str(venv), "aa", extra_env=env
    )
    return result.returncode, result.stdout + result.stderr


def created_with(venv: Path) -> str:
    """The interpreter a venv was created from: what its bin/python links to."""
    return os.readlink(venv / "bin" / "python")


@pytest.mark.parametrize("source", ["uv", "pyenv"])
def test_python_x_y_creates_the_venv_with_the_clients_interpreter(
    world: World, pythons: Pythons, daemon: DaemonProcess, source: str, tmp_path: Path
) -> None:
    """issue 13.2: `install --python X.Y --venv NEW` finds X.Y in the uv python dir or the pyenv
    root the *client's* environment names, though the daemon (a systemd-like service, or one
    started from another shell) has neither, and creates NEW with that interpreter."""
    client = {
        "PATH": str(pythons.empty_dir),  # no pythonX.Y on the caller's PATH
        "UV_PYTHON_INSTALL_DIR": str(pythons.uv_dir if source == "uv" else tmp_path / "none"),
        "PYENV_ROOT": str(pythons.pyenv_root if source == "pyenv" else tmp_path / "none"),
    }
    venv = tmp_path / "new"
    code, output = install(world, venv, client, "--python", XY)
    assert code == 0, output
    expected = pythons.uv_python if source == "uv" else pythons.pyenv_python
    assert created_with(venv) == str(expected)
    assert f"home = {expected.parent}" in (venv / "pyvenv.cfg").read_text("utf-8")
    assert list(venv.glob(f"lib/python{XY}/site-packages/aa-1.0.dist-info")), output


def test_the_order_is_uv_managed_then_path_then_pyenv(
    world: World, pythons: Pythons, tmp_path: Path
) -> None:
    """issue 13.2: uv's default preference (managed installs first, then PATH), then pyenv's
    versions directory; each source is used only when the ones before it have no X.Y."""
    none = str(tmp_path / "none")
    everything = {
        "PATH": str(pythons.path_dir),
        "UV_PYTHON_INSTALL_DIR": str(pythons.uv_dir),
        "PYENV_ROOT": str(pythons.pyenv_root),
    }
    steps = [
        (everything, pythons.uv_python),
        ({**everything, "UV_PYTHON_INSTALL_DIR": none}, pythons.path_python),
        (
            {**everything, "UV_PYTHON_INSTALL_DIR": none, "PATH": str(pythons.empty_dir)},
            pythons.pyenv_python,
        ),
    ]
    with DaemonProcess(service_env(world)):
        for number, (env, expected) in enumerate(steps):
            venv = tmp_path / f"venv{number}"
            code, output = install(world, venv, env, "--python", XY)
            assert code == 0, output
            assert created_with(venv) == str(expected), env


def test_python_x_y_found_nowhere_names_every_place_it_looked(
    world: World, pythons: Pythons, tmp_path: Path
) -> None:
    """issue 13.2: an X.Y that is nowhere is a not-found error on the client's side (no daemon
    runs, autostart is off) naming the uv dir, the PATH and the pyenv root it searched."""
    env = {
        "PATH": str(pythons.path_dir),
        "UV_PYTHON_INSTALL_DIR": str(pythons.uv_dir),
        "PYENV_ROOT": str(pythons.pyenv_root),
    }
    venv = tmp_path / "never"
    missing = f"{sys.version_info[0]}.{sys.version_info[1] + 40}"
    code, output = install(world, venv, env, "--python", missing)
    assert code == 1, output
    assert f"no Python {missing} found" in output
    assert "[not-found]" in output
    for place in (pythons.uv_dir, pythons.path_dir, pythons.pyenv_root / "versions"):
        assert str(place) in output, (place, output)
    assert "Traceback" not in output
    assert not venv.exists()


def test_a_relative_venv_given_as_python_is_the_callers(
    world: World, pythons: Pythons, tmp_path: Path
) -> None:
    """issue 13.2: a path given to --python is made absolute in the caller's working directory
    (the daemon's is another), for install as for resolve."""
    base = tmp_path / "base"
    with DaemonProcess(service_env(world)):
        code, output = install(world, base, {"PATH": str(pythons.path_dir)}, "--python", XY)
        assert code == 0, output
        argv = ["--python", "base/bin/python", "--venv", "second", "aa"]
        result = subprocess.run(
            [SATCHEL, "--no-autostart", "install", *argv],
            env=world.env.env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert (tmp_path / "second" / "pyvenv.cfg").is_file()
        assert list((tmp_path / "second").glob("lib/python*/site-packages/aa-1.0.dist-info"))


def test_a_candidate_that_is_no_python_is_skipped(
    world: World, pythons: Pythons, tmp_path: Path
) -> None:
    """issue 13.2: as in uv, a `python3.Y` on PATH that cannot describe itself (a script, a
    broken install) is passed over for the next candidate, not sent to the daemon."""
    broken = tmp_path / "broken-bin"
    broken.mkdir()
    for name in (f"python{XY}", "python3", "python"):
        script = broken / name
        script.write_text("#!/bin/sh\necho 'not python' >&2\nexit 1\n", "utf-8")
        script.chmod(0o755)
    env = {
        "PATH": f"{broken}{os.pathsep}{pythons.path_dir}",
        "UV_PYTHON_INSTALL_DIR": str(tmp_path / "none"),
    }
    venv = tmp_path / "venv"
    with DaemonProcess(service_env(world)):
        code, output = install(world, venv, env, "--python", XY)
    assert code == 0, output
    assert created_with(venv) == str(pythons.path_python)
