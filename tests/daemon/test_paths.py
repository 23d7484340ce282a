"""Locations and the ownership rules of the socket directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from satchel.daemon.services.paths import Paths, StartupError, ensure_private_dir
from satchel.protocol import locations
from tests.support.daemon import DaemonProcess, call, isolated_env


def _run_daemon(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "satchel.daemon.process.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_paths_follow_the_xdg_variables(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("RUNTIME_DIR", "CACHE_HOME", "CONFIG_HOME", "STATE_HOME"):
        (tmp_path / name).mkdir(mode=0o700)
        monkeypatch.setenv(f"XDG_{name}", str(tmp_path / name))
    monkeypatch.delenv("SATCHEL_SOCKET", raising=False)
    paths = Paths.from_env()
    assert paths.socket == tmp_path / "RUNTIME_DIR" / "satchel" / "satchel.sock"
    assert paths.cache_dir == tmp_path / "CACHE_HOME" / "satchel"
    assert paths.config_dir == tmp_path / "CONFIG_HOME" / "satchel"
    assert paths.state_dir == tmp_path / "STATE_HOME" / "satchel"
    assert paths.lock_file == tmp_path / "STATE_HOME" / "satchel" / "satcheld.lock"
    assert paths.socket_is_default


def test_satchel_socket_overrides_the_socket_path(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SATCHEL_SOCKET", str(tmp_path / "elsewhere.sock"))
    paths = Paths.from_env()
    assert paths.socket == tmp_path / "elsewhere.sock"
    assert not paths.socket_is_default
    assert Paths.from_env(tmp_path / "arg.sock").socket == tmp_path / "arg.sock"


def test_missing_private_dir_is_created_0700_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        ensure_private_dir(tmp_path / "a" / "satchel")
    finally:
        os.umask(old)
    assert (tmp_path / "a" / "satchel").stat().st_mode & 0o777 == 0o700


def test_a_missing_xdg_runtime_dir_is_created_private_so_that_later_clients_find_the_socket(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Scenario (review 2026-12-05): ``XDG_RUNTIME_DIR`` names a directory that does not exist
    (an ssh or su session, a container, a .bashrc that sets it). The daemon the first command
    autostarted created it, for its socket directory, with the umask's mode (0755); every later
    client takes ``XDG_RUNTIME_DIR`` only when it is private (0700, as the XDG spec requires of
    it) and looked for the socket under ``/run/user/UID`` or ``/tmp/runtime-UID`` instead:
    `satchel stop` answered "satcheld is not running" (exit 0) while it ran, and every other
    command autostarted a second daemon, which the lock refused. Missing parents of the socket
    directory are created 0700, as the XDG spec says of missing base directories."""
    runtime = tmp_path / "run" / "user"
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    monkeypatch.delenv("SATCHEL_SOCKET", raising=False)
    first = locations.socket_path()  # what the first, autostarting, client passes
    old = os.umask(0o022)
    try:
        ensure_private_dir(Path(first).parent)
    finally:
        os.umask(old)

    assert locations.socket_path() == first
    assert runtime.stat().st_mode & 0o777 == 0o700
    assert (tmp_path / "run").stat().st_mode & 0o777 == 0o700


def test_private_dir_with_loose_mode_is_refused_with_the_fix(tmp_path: Path) -> None:
    target = tmp_path / "satchel"
    target.mkdir(mode=0o755)
    target.chmod(0o755)
    with pytest.raises(StartupError) as excinfo:
        ensure_private_dir(target)
    message = str(excinfo.value)
    assert str(target) in message
    assert "0755" in message
    assert f"chmod 700 {target}" in message


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to chown")
def test_private_dir_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "satchel"
    target.mkdir(mode=0o700)
    os.chown(target, 65534, 65534)
    with pytest.raises(StartupError) as excinfo:
        ensure_private_dir(target)
    assert "owned by uid 65534" in str(excinfo.value)
    assert str(target) in str(excinfo.value)


def test_private_dir_below_a_dir_others_can_write_is_refused(tmp_path: Path) -> None:
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared").chmod(0o777)
    with pytest.raises(StartupError) as excinfo:
        ensure_private_dir(tmp_path / "shared" / "satchel")
    assert f"{tmp_path / 'shared'} (parent of the socket directory" in str(excinfo.value)
    assert "0777" in str(excinfo.value)


def test_private_dir_below_a_sticky_shared_dir_is_accepted(tmp_path: Path) -> None:
    (tmp_path / "tmp").mkdir()
    (tmp_path / "tmp").chmod(0o1777)
    ensure_private_dir(tmp_path / "tmp" / "satchel")
    assert (tmp_path / "tmp" / "satchel").stat().st_mode & 0o777 == 0o700


def test_symlink_instead_of_private_dir_is_refused(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir(mode=0o700)
    (tmp_path / "satchel").symlink_to(tmp_path / "real")
    with pytest.raises(StartupError, match="symlink"):
        ensure_private_dir(tmp_path / "satchel")


def test_daemon_refuses_a_socket_dir_with_the_wrong_mode(tmp_path: Path) -> None:
    env = isolated_env(tmp_path)
    sock_dir = Path(env["XDG_RUNTIME_DIR"]) / "satchel"
    sock_dir.mkdir()
    sock_dir.chmod(0o777)
    result = _run_daemon(env)
    assert result.returncode == 1
    assert f"{sock_dir} has mode 0777" in result.stderr
    assert "chmod 700" in result.stderr
    assert not (sock_dir / "satchel.sock").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to chown")
def test_daemon_refuses_a_socket_dir_owned_by_another_user(tmp_path: Path) -> None:
    env = isolated_env(tmp_path)
    sock_dir = Path(env["XDG_RUNTIME_DIR"]) / "satchel"
    sock_dir.mkdir(mode=0o700)
    os.chown(sock_dir, 65534, 65534)
    result = _run_daemon(env)
    assert result.returncode == 1
    assert f"{sock_dir} is owned by uid 65534" in result.stderr


def test_daemon_serves_on_a_socket_path_longer_than_sun_path(tmp_path: Path) -> None:
    env = isolated_env(tmp_path)
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True, mode=0o700)
    deep.chmod(0o700)
    long_socket = str(deep / "satchel.sock")
    assert len(long_socket.encode()) > 108
    with DaemonProcess(env, socket=long_socket) as daemon:
        assert call(long_socket, "ping") == {"pid": daemon.pid}
        assert os.stat(long_socket).st_mode & 0o777 == 0o600
    assert not os.path.exists(long_socket)


def test_a_regular_file_at_the_socket_path_is_never_replaced(tmp_path: Path) -> None:
    env = isolated_env(tmp_path)
    sock_dir = Path(env["XDG_RUNTIME_DIR"]) / "satchel"
    sock_dir.mkdir(mode=0o700)
    (sock_dir / "satchel.sock").write_text("precious")
    result = _run_daemon(env)
    assert result.returncode == 1
    assert "is not a socket" in result.stderr
    assert (sock_dir / "satchel.sock").read_text() == "precious"
