"""`satchel.protocol.locations` (stdlib, used by the client) agrees with platformdirs."""

from __future__ import annotations

import os
import socket
import warnings
from pathlib import Path

import platformdirs
import pytest

from satchel.protocol import locations


def _platformdirs() -> platformdirs.PlatformDirs:
    return platformdirs.PlatformDirs("satchel", appauthor=False)


def _agree() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when it falls back
        expected_runtime = _platformdirs().user_runtime_dir
        expected_state = _platformdirs().user_state_dir
    assert locations.runtime_dir() == expected_runtime
    assert locations.state_dir() == expected_state


@pytest.fixture
def xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in ("XDG_RUNTIME_DIR", "XDG_STATE_HOME", "SATCHEL_SOCKET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return tmp_path


def test_agrees_with_a_valid_xdg_runtime_dir(xdg: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (xdg / "run").mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(xdg / "run"))
    monkeypatch.setenv("XDG_STATE_HOME", str(xdg / "state"))
    _agree()
    assert locations.socket_path() == str(xdg / "run" / "satchel" / "satchel.sock")


def test_agrees_with_a_missing_xdg_runtime_dir(xdg: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(xdg / "not-yet"))
    _agree()


def test_agrees_when_xdg_runtime_dir_has_a_loose_mode(
    xdg: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (xdg / "run").mkdir()
    (xdg / "run").chmod(0o755)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(xdg / "run"))
    _agree()
    assert locations.runtime_base() != str(xdg / "run")


def test_agrees_when_xdg_runtime_dir_is_a_symlink(
    xdg: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (xdg / "real").mkdir(mode=0o700)
    (xdg / "run").symlink_to(xdg / "real")
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(xdg / "run"))
    _agree()


def test_agrees_when_xdg_runtime_dir_is_below_a_world_writable_dir(
    xdg: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (xdg / "open").mkdir()
    (xdg / "open").chmod(0o777)
    (xdg / "open" / "run").mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(xdg / "open" / "run"))
    _agree()
    assert locations.runtime_base() != str(xdg / "open" / "run")


def test_agrees_without_any_xdg_variable(xdg: Path) -> None:
    _agree()


def test_relative_xdg_values_are_ignored_like_platformdirs(
    xdg: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", "relative/run")
    monkeypatch.setenv("XDG_STATE_HOME", "relative/state")
    _agree()


def test_satchel_socket_overrides(xdg: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SATCHEL_SOCKET", str(xdg / "custom.sock"))
    assert locations.socket_path() == str(xdg / "custom.sock")


def test_unix_address_reaches_a_socket_beyond_sun_path(tmp_path: Path) -> None:
    deep = tmp_path / ("x" * 80) / ("y" * 40)
    deep.mkdir(parents=True)
    path = str(deep / "s.sock")
    assert len(path) > locations.MAX_SUN_PATH
    cwd = os.getcwd()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        with locations.UnixAddress(path) as address:
            server.bind(address)
        server.listen()
        with (
            socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client,
            locations.UnixAddress(path) as address,
        ):
            client.connect(address)
    assert os.path.exists(path)
    assert os.getcwd() == cwd


def test_unix_address_passes_short_paths_through(tmp_path: Path) -> None:
    with locations.UnixAddress("/tmp/short.sock") as address:
        assert address == "/tmp/short.sock"


def test_an_overlong_socket_name_is_a_clear_error(tmp_path: Path) -> None:
    path = str(tmp_path / ("n" * 120))
    with pytest.raises(locations.SocketPathTooLong, match="at most"), locations.UnixAddress(path):
        pass
