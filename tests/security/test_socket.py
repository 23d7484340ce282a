"""Issue 11.3: the client talks only to the user's own daemon, never to whoever listens.

Setting: no per-user runtime directory (no ``XDG_RUNTIME_DIR``, no ``/run/user/<uid>``), as under
containers, ``su``, cron or ssh without logind, so the socket falls back to
``<tempdir>/runtime-<uid>/satchel/satchel.sock``, where any local user can create the directories
first. The attacker is a real second uid (``satchel-intruder``) running a fake daemon that speaks
the protocol and answers ``localindex.info`` with its own index URL; the victim runs the real
``satchel`` and ``satcheld``. The attacker counts connections and bytes received: the client must
refuse before sending anything, with a message naming the path, and `satchel env` must never
print the attacker's URL.
"""

from __future__ import annotations

import os
import select
import socket
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from satchel.protocol import CLOSED, NEED_DATA, Connection
from satchel.protocol.buildid import build_id
from satchel.protocol.codec import DictCodec
from satchel.protocol.version import PROTOCOL_MAJOR, PROTOCOL_MINOR, __version__
from tests.client.clientenv import ClientEnv
from tests.security.otheruser import Child, Intruder, intruder, start_as_intruder
from tests.support.daemon import DaemonProcess

ATTACKER_URL = "http://satchel:stolen@127.0.0.1:9/simple/"


@pytest.fixture
def victim(tmp_path: Path) -> Iterator[tuple[ClientEnv, Path]]:
    """A client environment without a runtime directory, whose temp dir is a fresh shared one
    (world-writable and sticky, like /tmp): returns it and the fallback socket directory."""
    if Path(f"/run/user/{os.geteuid()}").is_dir():
        pytest.skip("/run/user/<uid> exists here: the temp-dir fallback is not used")
    shared = Path(tempfile.mkdtemp(prefix="st-shared-", dir="/tmp"))
    shared.chmod(0o1777)
    client = ClientEnv(tmp_path)
    del client.env["XDG_RUNTIME_DIR"]
    client.env["TMPDIR"] = str(shared)
    socket_dir = shared / f"runtime-{os.geteuid()}" / "satchel"
    client.socket = socket_dir / "satchel.sock"
    yield client, socket_dir
    client.cleanup()
    for root, dirs, files in os.walk(shared, topdown=False):
        for name in files:
            os.unlink(os.path.join(root, name))
        for name in dirs:
            path = os.path.join(root, name)
            os.unlink(path) if os.path.islink(path) else os.rmdir(path)
    shared.rmdir()


def fake_daemon(listener: socket.socket) -> Callable[[Child], str]:
    """The attacker's server: a convincing daemon (Welcome, then its URL for every request);
    returns the work function for `start_as_intruder`, reporting ``connections bytes``."""

    def work(child: Child) -> str:
        listener.listen(8)
        child.ready()
        connections = received = 0
        while True:
            ready, _, _ = select.select([listener, child.stop_fd], [], [])
            if child.stop_fd in ready:
                return f"{connections} {received}"
            conn, _ = listener.accept()
            connections += 1
            protocol = Connection("server", DictCodec())
            with conn:
                while data := conn.recv(65536):
                    received += len(data)
                    protocol.receive_data(data)
                    while (event := protocol.next_event()) not in (NEED_DATA, CLOSED):
                        conn.sendall(protocol.send(_answer(event)))

    return work


def _answer(event: dict[str, object]) -> dict[str, object]:
    if event["type"] == "hello":
        return {
            "type": "welcome",
            "major": PROTOCOL_MAJOR,
            "minor": PROTOCOL_MINOR,
            "daemon_version": __version__,
            "build_id": build_id(),
            "pid": os.getpid(),
            "features": [],
        }
    value = {"state": "serving", "url": ATTACKER_URL, "base_url": ATTACKER_URL, "pid": 1}
    return {"type": "result", "id": event["id"], "value": value}


def _attacker_listens_at(user: Intruder, socket_dir: Path) -> socket.socket:
    """As the intruder: create the fallback directories first (0777) and bind the socket."""
    made = socket_dir.parent
    made.mkdir(mode=0o777)
    os.chown(made, user.uid, user.gid)
    socket_dir.mkdir(mode=0o777)
    os.chown(socket_dir, user.uid, user.gid)
    for directory in (made, socket_dir):
        directory.chmod(0o777)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(socket_dir / "satchel.sock"))
    os.chown(socket_dir / "satchel.sock", user.uid, user.gid)
    return listener


def test_attacker_owned_socket_directory_is_refused_before_connecting(
    victim: tuple[ClientEnv, Path],
) -> None:
    """issue 11.3: another user created the fallback socket directory and listens in it."""
    user = intruder()
    client, socket_dir = victim
    listener = _attacker_listens_at(user, socket_dir)
    attacker = start_as_intruder(user, fake_daemon(listener))
    listener.close()
    attacker.wait_ready()
    results = [client.satchel(*argv) for argv in (["env"], ["index-url"], ["ping"])]
    results.append(client.satchel("--no-autostart", "env"))
    connections, received = attacker.finish().split()
    for result in results:
        assert result.returncode != 0, result.stdout
        assert ATTACKER_URL not in result.stdout
        assert "stolen" not in result.stdout + result.stderr
        assert "refusing to use the socket" in result.stderr, result.stderr
        assert str(socket_dir) in result.stderr
        assert f"belongs to uid {user.uid}" in result.stderr
    assert (connections, received) == ("0", "0")
    # The victim's autostart did not start a daemon into the attacker's directory either.
    assert not client.state_dir.joinpath("satcheld.log").exists() or (
        "serving" not in client.state_dir.joinpath("satcheld.log").read_text()
    )


def test_listener_of_another_uid_is_refused_before_anything_is_sent(
    victim: tuple[ClientEnv, Path],
) -> None:
    """issue 11.3: the directory is ours and private, yet another uid's process listens there
    (what a swap between check and connect would give): the peer credentials decide."""
    user = intruder()
    client, socket_dir = victim
    socket_dir.parent.mkdir(mode=0o700)
    socket_dir.mkdir(mode=0o700)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(client.socket))  # bound by us; listen() in the intruder's process
    attacker = start_as_intruder(user, fake_daemon(listener))
    listener.close()
    attacker.wait_ready()
    argvs = (["--no-autostart", "env"], ["--no-autostart", "index-url"], ["ping"])
    results = [client.satchel(*argv) for argv in argvs]
    connections, received = attacker.finish().split()
    for result in results:
        assert result.returncode != 0, result.stdout
        assert ATTACKER_URL not in result.stdout
        assert "refusing to use the socket" in result.stderr, result.stderr
        assert str(client.socket) in result.stderr
        assert f"runs as uid {user.uid}" in result.stderr
    assert int(connections) == len(results)
    assert received == "0"


def test_daemon_refuses_a_socket_directory_another_user_made(
    victim: tuple[ClientEnv, Path],
) -> None:
    """issue 11.3 (daemon side): satcheld will not serve from a directory it does not own or
    that others may write, and says which and how to fix it."""
    user = intruder()
    client, socket_dir = victim
    socket_dir.parent.mkdir(mode=0o700)
    socket_dir.mkdir()
    socket_dir.chmod(0o777)
    daemon = DaemonProcess(client.env, socket=str(client.socket))
    with pytest.raises(Exception, match="0777"):
        daemon.start()
    assert daemon.wait() == 1
    os.chown(socket_dir, user.uid, user.gid)
    socket_dir.chmod(0o700)
    daemon = DaemonProcess(client.env, socket=str(client.socket))
    with pytest.raises(Exception, match=f"owned by uid {user.uid}"):
        daemon.start()
    assert daemon.wait() == 1


def test_attacker_symlink_as_the_fallback_runtime_directory_is_refused(
    victim: tuple[ClientEnv, Path],
) -> None:
    """issue 11.3: another user made ``<tempdir>/runtime-<uid>`` a *symlink* to a directory of
    theirs (0777), with ``satchel/`` and a listening socket in it: the client refuses before
    sending a byte (autostart included), and a daemon started by hand refuses to serve there."""
    user = intruder()
    client, socket_dir = victim
    lair = socket_dir.parent.parent / "lair"
    listener = _attacker_listens_at(user, lair / "satchel")
    socket_dir.parent.symlink_to(lair)
    os.lchown(socket_dir.parent, user.uid, user.gid)
    attacker = start_as_intruder(user, fake_daemon(listener))
    listener.close()
    attacker.wait_ready()
    results = [client.satchel(*argv) for argv in (["env"], ["ping"], ["--no-autostart", "env"])]
    connections, received = attacker.finish().split()
    daemon = DaemonProcess(client.env, socket=str(client.socket))
    with pytest.raises(Exception, match=f"uid {user.uid}"):
        daemon.start()
    assert daemon.wait() == 1
    for result in results:
        assert result.returncode != 0, result.stdout
        assert ATTACKER_URL not in result.stdout
        assert "refusing to use the socket" in result.stderr, result.stderr
        assert f"uid {user.uid}" in result.stderr, result.stderr
    assert (connections, received) == ("0", "0")
    assert sorted(os.listdir(lair / "satchel")) == ["satchel.sock"]
