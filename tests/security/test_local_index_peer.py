"""Issue 13.5: the local index admits its own user without a token, and nobody else.

Tools are given a URL without credentials (so none writes a secret into a lock or requirements
file); the daemon instead asks the kernel who owns the other end of each loopback connection
(`satchel.daemon.localindex._peer`). These tests hold that check to its promise with real sockets
and a real second uid (``satchel-intruder``): the owner is let in, another user is not, a web page
(which runs as the owner) is not, and the lookup never matches the daemon's own end of the
connection.
"""

from __future__ import annotations

import os
import select
import socket
import sys
import urllib.error
import urllib.request

import pytest

from satchel.daemon.localindex._peer import _netlink_uid, lookup_uid, peer_is_owner, peer_uid
from tests.client.clientenv import ClientEnv
from tests.security.otheruser import Child, as_intruder, intruder, start_as_intruder
from tests.support.daemon import DaemonProcess, call

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="peer identification reads Linux's /proc/net/tcp"
)


def _get(url: str, **headers: str) -> int:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_the_peer_of_an_own_connection_is_the_owner_and_not_our_end() -> None:
    """issue 13.5: the lookup finds the connecting socket (local = the peer's address), owned by
    us; asking with the addresses swapped finds the *server's* end, which must not be confused
    with the peer (it is ours too, so the test checks the exact entry, by its port)."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname())
        accepted, peer = server.accept()
        with client, accepted:
            ours = accepted.getsockname()
            assert peer == client.getsockname()
            # Both ways of asking: the /proc table and the netlink exact lookup.
            assert peer_uid(ours, peer) == os.geteuid()
            assert _netlink_uid(ours, peer) == os.geteuid()
            assert peer_is_owner(ours, peer)
            # A peer address no socket has: nothing matches, and that is a refusal.
            assert peer_uid(ours, ("127.0.0.1", 1)) is None
            assert _netlink_uid(ours, ("127.0.0.1", 1)) is None
            assert lookup_uid(ours, ("127.0.0.1", 1)) is None
            assert not peer_is_owner(ours, ("127.0.0.1", 1))


def test_another_users_connection_is_not_the_owner() -> None:
    """issue 13.5: a connection opened by another uid is attributed to that uid."""
    user = intruder()
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]

        def work(child: Child) -> str:
            conn = socket.create_connection(("127.0.0.1", port))
            child.ready()
            select.select([child.stop_fd], [], [])
            conn.close()
            return "done"

        attacker = start_as_intruder(user, work)
        attacker.wait_ready()
        accepted, peer = server.accept()
        with accepted:
            ours = accepted.getsockname()
            uids = (peer_uid(ours, peer), _netlink_uid(ours, peer), lookup_uid(ours, peer))
            owner = peer_is_owner(ours, peer)
        assert attacker.finish() == "done"
    # Matching the 4-tuple the wrong way round would find our own end (our uid) instead.
    assert uids == (user.uid, user.uid, user.uid)
    assert not owner


def test_daemon_admits_its_user_without_a_token_and_refuses_others_and_browsers(
    owner: ClientEnv,
) -> None:
    """issue 13.5: against a real daemon: the owner's token-less request is answered; another
    uid's is 401 (with the token it would pass); a token-less request carrying a browser's
    Fetch Metadata or Origin header is 403, because a web page runs as the owner too."""
    user = intruder()
    with DaemonProcess(owner.env):
        info = call(str(owner.socket), "localindex.info")
        assert info["state"] == "serving", info
        url = info["url"]
        assert info["peer_auth"] is True
        assert url == info["base_url"] and "@" not in url
        assert _get(url) == 200
        assert _get(url, **{"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors"}) == 403
        assert _get(url, Origin="http://example.invalid") == 403
        stranger = as_intruder(user, lambda: str(_get(url)))
    assert stranger == "401"
