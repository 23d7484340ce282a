"""Issue 13.4: the local index's port is per user, stable for that user, and a taken port is
reported naming the setting that changes it.

A fixed port gave the local index to whichever user of a shared host started first. Each uid
now has its own first candidate (`user_port`); a daemon whose candidate is held (here by a
socket standing in for another user's daemon) takes the next free one, and the port it bound is
remembered, so the URL survives restarts.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from satchel.daemon.settings.ownindex import PORT_BASE, PORT_FILE, PORT_SPAN, user_port
from tests.client.clientenv import ClientEnv


def test_every_uid_of_a_span_gets_its_own_unprivileged_port_below_the_ephemeral_range() -> None:
    ports = [user_port(uid) for uid in range(1000, 1000 + PORT_SPAN)]
    assert len(set(ports)) == len(ports)
    assert all(PORT_BASE <= port < 32768 for port in ports)
    assert user_port() == user_port(os.getuid())


@pytest.fixture
def client(tmp_path: Path) -> Iterator[ClientEnv]:
    env = ClientEnv(tmp_path)
    env.env.pop("SATCHEL_LOCAL_INDEX_PORT")  # the default, as a user's daemon has it
    yield env
    env.cleanup()


def _port(client: ClientEnv) -> int:
    result = client.satchel("index-url", "--no-token")
    assert result.returncode == 0, result.stderr
    return int(result.stdout.strip().rsplit(":", 1)[1].split("/")[0])


def _hold(port: int) -> socket.socket:
    """A listener on *port*: another user's daemon, as far as a bind can tell."""
    holder = socket.socket()
    holder.bind(("127.0.0.1", port))
    holder.listen()
    return holder


def _free_from(first: int) -> int:
    for port in range(first, first + 64):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    pytest.skip(f"no free port near {first}")


def test_a_first_start_takes_the_users_port_and_keeps_it_across_restarts(
    client: ClientEnv,
) -> None:
    expected = _free_from(user_port())
    assert _port(client) == expected
    remembered = client.state_dir / PORT_FILE
    assert remembered.read_text().strip() == str(expected)
    assert remembered.stat().st_mode & 0o077 == 0
    assert client.satchel("stop").returncode == 0
    assert _port(client) == expected


def test_a_port_held_by_another_user_at_first_start_moves_this_user_to_the_next_one(
    client: ClientEnv,
) -> None:
    taken = _free_from(user_port())
    with _hold(taken):
        port = _port(client)
    assert port != taken
    assert user_port() <= port


def test_a_remembered_port_taken_later_is_an_error_naming_the_setting(client: ClientEnv) -> None:
    port = _port(client)
    assert client.satchel("stop").returncode == 0
    with _hold(port):
        result = client.satchel("index-url")
    assert result.returncode != 0
    assert f"127.0.0.1:{port}" in result.stderr
    assert "local-index-port" in result.stderr
