"""Versions: of the package, of the wire protocol, and how two peers agree on one.

Rules (see docs/protocol.md): peers must share the protocol *major*; a *minor* bump only adds
optional fields, messages or methods, so two peers speak the smaller of their minors. Features
are opt-in capability names; a feature is usable when both sides list it.
"""

from __future__ import annotations

__all__ = ["PROTOCOL_MAJOR", "PROTOCOL_MINOR", "__version__", "negotiate", "protocol_string"]

__version__ = "0.1.0"

#: Bumped only for a change an older peer cannot ignore (removing or retyping a field).
PROTOCOL_MAJOR = 1
#: Bumped when fields, messages or methods are added (older peers ignore them).
PROTOCOL_MINOR = 0


def protocol_string(major: int = PROTOCOL_MAJOR, minor: int = PROTOCOL_MINOR) -> str:
    """Render a protocol version the way `Incompatible` and `status` show it: "1.0"."""
    return f"{major}.{minor}"


def negotiate(
    peer_major: int,
    peer_minor: int,
    peer_features: tuple[str, ...] | list[str] = (),
    *,
    major: int = PROTOCOL_MAJOR,
    minor: int = PROTOCOL_MINOR,
    features: tuple[str, ...] | list[str] = (),
) -> tuple[int, int, tuple[str, ...]] | None:
    """Agree on (major, minor, features) with a peer, or return None when impossible.

    Our side defaults to this package's protocol version. Features keep our order, so the
    result is deterministic whatever order the peer lists them in.
    """
    if peer_major != major:
        return None
    peer = set(peer_features)
    return major, min(minor, peer_minor), tuple(f for f in features if f in peer)
