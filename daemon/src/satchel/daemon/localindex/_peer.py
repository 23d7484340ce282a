"""Who is on the other end of a loopback TCP connection: the peer socket's owner, from the kernel.

Why (issue 13.5): a token in the index URL ends up in every file a tool writes the URL into
(pip-compile's requirements.txt, poetry.lock, uv.lock). A Unix socket tells its server the peer's
uid (``SO_PEERCRED``); loopback TCP does not, but on Linux the kernel knows the uid that created
every TCP socket of the network namespace. The connection's peer socket is the one whose *local*
address is our accepted socket's *remote* address and whose *remote* address is our local one:
an exact 4-tuple, unique while the connection is open.

Two ways to ask, the first preferred:

* ``NETLINK_SOCK_DIAG`` (what ``ss`` uses), an exact lookup of that 4-tuple: one request and
  one answer, ~20 µs, whatever the number of sockets. The answer is checked to be that exact
  4-tuple, established, before its uid is believed.
* ``/proc/net/tcp``, scanned to the matching line, when netlink is not available (a sandbox
  that forbids it) or finds nothing (the ``tcp_diag`` module missing): the kernel formats the
  whole table on read, ~4 ms per lookup with 600 sockets (measured), so only a fallback.

Why this is sound:

* The uid column is the socket's owner (``sock_i_uid``: the fsuid of the process that created
  it), set by the kernel; no process can claim another uid for its socket. A socket of ours used
  by another user's process means one of our processes handed it over, which it could do with
  the token as well.
* It fails closed: no matching line (not Linux, no ``/proc``, the peer already gone: a
  ``TIME_WAIT`` entry has uid 0), a line that does not parse, or any read error answers False,
  and the request then needs the token as before.
* Our own accepted socket has the same 4-tuple reversed and is owned by us: matching the wrong
  direction would accept everyone, so the match is on (local == peer, remote == ours) only
  (`tests/security/test_local_index_peer.py` connects as a second user and is refused).

Cost: one lookup per connection that sends no credentials (not per request), in a worker
thread.
"""

from __future__ import annotations

import os
import socket
import struct
import sys
from pathlib import Path

__all__ = ["PROC_NET_TCP", "lookup_uid", "peer_is_owner", "peer_uid", "supported"]

PROC_NET_TCP = Path("/proc/net/tcp")
#: Lines read at most before giving up (fails closed): a bound against a pathological table.
#: One line per TCP socket in the namespace; a busy server has tens of thousands.
MAX_LINES = 1_000_000
_ESTABLISHED = "01"


def supported() -> bool:
    """Whether this OS lets the daemon identify loopback peers (Linux, with /proc mounted)."""
    return sys.platform.startswith("linux") and PROC_NET_TCP.exists()


def _hex_address(host: str, port: int) -> str:
    """An IPv4 address as /proc/net/tcp prints it: the raw 32-bit word in host order, then the
    port, both upper-case hex (``0100007F:1F90`` for 127.0.0.1:8080 on little-endian)."""
    (word,) = struct.unpack("=I", socket.inet_aton(host))
    return f"{word:08X}:{port:04X}"


def peer_uid(
    ours: tuple[str, int], peer: tuple[str, int], table: Path = PROC_NET_TCP
) -> int | None:
    """The uid owning the established socket at *peer* connected to *ours*, or None.

    Blocking (reads /proc): call it from a worker thread.
    """
    try:
        want_local, want_remote = _hex_address(*peer), _hex_address(*ours)
    except (OSError, struct.error, TypeError, ValueError):
        return None  # not an IPv4 address: nothing to look up
    try:
        with table.open("r", encoding="ascii", errors="replace") as lines:
            next(lines, None)  # the header
            for count, line in enumerate(lines):
                if count >= MAX_LINES:
                    return None
                fields = line.split()
                # sl local rem st queues tr retrnsmt uid ...
                if len(fields) < 8 or fields[1] != want_local or fields[2] != want_remote:
                    continue
                if fields[3] != _ESTABLISHED or not fields[7].isdigit():
                    return None
                return int(fields[7])
    except OSError:
        return None
    return None


#: NETLINK_SOCK_DIAG, SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST, NLMSG_ERROR (linux/netlink.h,
#: linux/sock_diag.h): spelled out because the socket module does not define them.
_NETLINK_SOCK_DIAG = 4
_SOCK_DIAG_BY_FAMILY = 20
_NLM_F_REQUEST = 1
_NLMSG_ERROR = 2
_TCP_ESTABLISHED = 1
#: INET_DIAG_NOCOOKIE: "any socket with this 4-tuple".
_NO_COOKIE = 0xFFFFFFFF
#: Largest answer read: one nlmsghdr + inet_diag_msg (88 bytes) plus attributes we did not ask
#: for; an error answer echoes the request (16 + 4 + 72).
_ANSWER_BYTES = 8192
#: A hang guard only: the kernel answers a sock_diag request synchronously.
_NETLINK_TIMEOUT = 5.0


def _sockid(peer: tuple[str, int], ours: tuple[str, int]) -> bytes:
    """``struct inet_diag_sockid`` for the socket at *peer* connected to *ours* (48 bytes:
    ports big-endian, addresses in network order, interface 0, no cookie)."""
    return (
        struct.pack("!HH", peer[1], ours[1])
        + socket.inet_aton(peer[0]).ljust(16, b"\0")
        + socket.inet_aton(ours[0]).ljust(16, b"\0")
        + struct.pack("=III", 0, _NO_COOKIE, _NO_COOKIE)
    )


def _netlink_uid(ours: tuple[str, int], peer: tuple[str, int]) -> int | None:
    """The uid from an exact sock_diag lookup; None when not found. Raises OSError when
    netlink cannot be used at all."""
    sockid = _sockid(peer, ours)
    request = struct.pack("=BBBBI", socket.AF_INET, socket.IPPROTO_TCP, 0, 0, 0xFFFFFFFF) + sockid
    header = struct.pack("=IHHII", 16 + len(request), _SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST, 1, 0)
    with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_SOCK_DIAG) as nl:
        nl.settimeout(_NETLINK_TIMEOUT)
        nl.sendto(header + request, (0, 0))
        answer = nl.recv(_ANSWER_BYTES)
    if len(answer) < 16:
        return None
    _length, kind = struct.unpack_from("=IH", answer)
    if kind == _NLMSG_ERROR or kind != _SOCK_DIAG_BY_FAMILY or len(answer) < 16 + 72:
        return None
    # struct inet_diag_msg: family, state, timer, retrans, sockid (48), expires, rqueue,
    # wqueue, uid, inode. The cookie the kernel fills in is not compared.
    family, state = answer[16], answer[17]
    if family != socket.AF_INET or state != _TCP_ESTABLISHED:
        return None
    if answer[20 : 20 + 40] != sockid[:40]:
        return None  # not the socket asked about (a listener, say): believe nothing
    (uid,) = struct.unpack_from("=I", answer, 16 + 4 + 48 + 12)
    return int(uid)


def lookup_uid(ours: tuple[str, int], peer: tuple[str, int]) -> int | None:
    """The uid of the peer socket: netlink first, ``/proc/net/tcp`` when it cannot say."""
    try:
        uid = _netlink_uid(ours, peer)
    except (OSError, AttributeError, struct.error, ValueError):
        uid = None  # no AF_NETLINK here, or forbidden: the table
    return uid if uid is not None else peer_uid(ours, peer)


def peer_is_owner(ours: tuple[str, int], peer: tuple[str, int]) -> bool:
    """Whether the peer of a loopback connection runs as this process's own (effective) uid."""
    return lookup_uid(ours, peer) == os.geteuid()
