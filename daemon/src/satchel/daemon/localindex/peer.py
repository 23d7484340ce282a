"""Who is on the other end of a loopback TCP connection: the peer socket's owner, from the kernel.

Why (issue 13.5): a token in the index URL ends up in every file a tool writes the URL into
(pip-compile's requirements.txt, poetry.lock, uv.lock). A Unix socket tells its server the peer's
uid (``SO_PEERCRED``); loopback TCP does not, but on Linux the kernel lists every TCP socket of
the network namespace in ``/proc/net/tcp`` with the uid that created it. The connection's peer
socket is the one whose *local* address is our accepted socket's *remote* address and whose
*remote* address is our local one: an exact 4-tuple, unique while the connection is open.

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

Cost: one read of ``/proc/net/tcp`` per connection that sends no credentials (not per request),
in a worker thread, stopping at the matching line; the file holds one ~150-byte line per TCP
socket of the namespace, so a few hundred microseconds on a workstation.
"""

from __future__ import annotations

import os
import socket
import struct
import sys
from pathlib import Path

__all__ = ["PROC_NET_TCP", "peer_is_owner", "peer_uid", "supported"]

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


def peer_is_owner(ours: tuple[str, int], peer: tuple[str, int]) -> bool:
    """Whether the peer of a loopback connection runs as this process's own (effective) uid."""
    return peer_uid(ours, peer) == os.geteuid()
