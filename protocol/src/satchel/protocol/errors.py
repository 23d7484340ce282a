"""Protocol failures and wire error codes, in one place.

The exception hierarchy::

    ProtocolError                 base; `code` is the wire code "protocol"
    ├── LocalProtocolError        *we* tried to send something illegal in the current state
    │                             (a bug in the caller, never the peer's fault)
    └── RemoteProtocolError       the *peer* sent something illegal: the connection is unusable
        ├── FrameTooLarge         a frame header declared more than the receiving side's cap
        └── MalformedFrame        a frame that is not a valid message: empty, not UTF-8, not JSON,
                                  wrong shape or types, too deeply nested, or the stream ended
                                  in the middle of a frame

Why the split (as in h11): a daemon that catches `RemoteProtocolError` can tell the peer
`Error(id=None, code="protocol")` and hang up, while a `LocalProtocolError` is a programming error
on our side that must surface in tests. Decoding hostile bytes raises `RemoteProtocolError`
subclasses and nothing else, so a server loop needs exactly one `except`.

Wire error codes are short kebab-case strings carried in `Error.code`. Each maps to the exit
status the `satchel` client returns, so scripts can react to the *kind* of failure::

    status  meaning                       codes
    0       ok                            (no error)
    1       the request failed            internal, invalid-params, unknown-method, not-found,
                                          config-error, index-error, hash-mismatch, invalid-wheel,
                                          install-failed, build-failed, disk-full, busy, forbidden,
                                          metadata-mismatch, build-forbidden, origin-changed,
                                          database-damaged, credential-withheld, and any code
                                          this client does not know
    2       usage                         invalid-requirement (client-side: bad command line)
    3       daemon unavailable            shutting-down, unavailable (client-side: nothing answers)
    4       protocol / incompatible       protocol, incompatible
    5       offline / not cached          offline, not-cached, index-unreachable
    6       resolution impossible         resolution-impossible
    130     cancelled                     cancelled (as a shell reports SIGINT: 128 + 2)

Codes are only ever added; a client that meets an unknown code exits with status 1.
"""

from __future__ import annotations

__all__ = [
    "BUILD_FAILED",
    "BUILD_FORBIDDEN",
    "BUSY",
    "CANCELLED",
    "CONFIG_ERROR",
    "CREDENTIAL_WITHHELD",
    "DATABASE_DAMAGED",
    "DISK_FULL",
    "EXIT_CANCELLED",
    "EXIT_FAILURE",
    "EXIT_OFFLINE",
    "EXIT_OK",
    "EXIT_PROTOCOL",
    "EXIT_RESOLUTION",
    "EXIT_STATUS",
    "EXIT_UNAVAILABLE",
    "EXIT_USAGE",
    "FORBIDDEN",
    "HASH_MISMATCH",
    "INCOMPATIBLE",
    "INDEX_ERROR",
    "INDEX_UNREACHABLE",
    "INSTALL_FAILED",
    "INTERNAL",
    "INVALID_PARAMS",
    "INVALID_REQUIREMENT",
    "INVALID_WHEEL",
    "METADATA_MISMATCH",
    "NOT_CACHED",
    "NOT_FOUND",
    "OFFLINE",
    "ORIGIN_CHANGED",
    "PROTOCOL",
    "RESOLUTION_IMPOSSIBLE",
    "SHUTTING_DOWN",
    "UNAVAILABLE",
    "UNKNOWN_METHOD",
    "FrameTooLarge",
    "LocalProtocolError",
    "MalformedFrame",
    "ProtocolError",
    "RemoteProtocolError",
    "exit_status",
]

# --- wire error codes -------------------------------------------------------------------------

INTERNAL = "internal"  # a bug or unexpected failure in the daemon (traceback in its log only)
INVALID_PARAMS = "invalid-params"  # the request's params do not match the method's schema
UNKNOWN_METHOD = "unknown-method"  # no such method (an older daemon, or a typo)
NOT_FOUND = "not-found"  # a named index, project, tool or path is absent
CONFIG_ERROR = "config-error"  # config.toml unreadable or invalid (details name file and line)
INDEX_ERROR = "index-error"  # an index answered, but not usably (or hostile input)
HASH_MISMATCH = "hash-mismatch"  # downloaded bytes differ from what the index promised
INVALID_WHEEL = "invalid-wheel"  # a wheel failed validation before anything was written
#: A wheel's own METADATA disagrees with the PEP 658 metadata its index served (and the
#: resolution used): the cache now holds the wheel's own, so resolving again is correct.
METADATA_MISMATCH = "metadata-mismatch"
INSTALL_FAILED = "install-failed"  # an install failed; the environment is unchanged
BUILD_FAILED = "build-failed"  # a PEP 517 build of an sdist failed
#: A build is needed but the user forbade it (--no-build, --only-binary, config.toml `builds`).
BUILD_FORBIDDEN = "build-forbidden"
DISK_FULL = "disk-full"  # ENOSPC/EDQUOT; the store stays consistent
BUSY = "busy"  # a resource is held by another request (or too many connections)
FORBIDDEN = "forbidden"  # the peer may not use this daemon (another uid)
SHUTTING_DOWN = "shutting-down"  # the daemon is draining and accepts no new work
UNAVAILABLE = "unavailable"  # client-side only: no daemon answers and none could be started
PROTOCOL = "protocol"  # a peer broke the protocol (see ProtocolError); connection-level
INCOMPATIBLE = "incompatible"  # protocol major versions differ (client-side, from Incompatible)
OFFLINE = "offline"  # the request needs the network and the daemon is offline
NOT_CACHED = "not-cached"  # offline and the store lacks what is needed
INDEX_UNREACHABLE = "index-unreachable"  # an index does not answer at all
RESOLUTION_IMPOSSIBLE = "resolution-impossible"  # requirements conflict (explained in message)
CANCELLED = "cancelled"  # the request was cancelled (Cancel message or client disconnect)
#: A requirement, requirements file, pyproject.toml or lock given as input is malformed or
#: unreadable: the user's input is wrong, like a bad command line (exit status 2).
INVALID_REQUIREMENT = "invalid-requirement"
#: A project bound to one index (it came from there first) would now come from another: refused
#: until the user accepts the change (a pin, `satchel origins trust`). A refusal, not offline: 1.
ORIGIN_CHANGED = "origin-changed"
#: The daemon's metadata database is damaged (found while serving); restarting the daemon moves
#: it aside and rebuilds it from the stored files.
DATABASE_DAMAGED = "database-damaged"
#: A credential given by index name (SATCHEL_INDEX_<NAME>_PASSWORD) is withheld: the index's URL
#: now points at another origin than the one it was first used for (re-add the index to confirm).
CREDENTIAL_WITHHELD = "credential-withheld"

# --- client exit statuses ---------------------------------------------------------------------

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3
EXIT_PROTOCOL = 4
EXIT_OFFLINE = 5
EXIT_RESOLUTION = 6
EXIT_CANCELLED = 130

#: Code -> exit status for every code that does not mean plain failure (status 1).
EXIT_STATUS: dict[str, int] = {
    SHUTTING_DOWN: EXIT_UNAVAILABLE,
    UNAVAILABLE: EXIT_UNAVAILABLE,
    PROTOCOL: EXIT_PROTOCOL,
    INCOMPATIBLE: EXIT_PROTOCOL,
    OFFLINE: EXIT_OFFLINE,
    NOT_CACHED: EXIT_OFFLINE,
    INDEX_UNREACHABLE: EXIT_OFFLINE,
    RESOLUTION_IMPOSSIBLE: EXIT_RESOLUTION,
    CANCELLED: EXIT_CANCELLED,
    INVALID_REQUIREMENT: EXIT_USAGE,
}


def exit_status(code: str) -> int:
    """Return the client exit status for wire error `code` (1 for failures and unknown codes)."""
    return EXIT_STATUS.get(code, EXIT_FAILURE)


# --- exceptions -------------------------------------------------------------------------------


class ProtocolError(Exception):
    """Base of every protocol failure; the connection cannot be used after one."""

    code = PROTOCOL


class LocalProtocolError(ProtocolError):
    """We tried to send something the protocol forbids in the current state."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something the protocol forbids; tell it (if possible) and hang up."""


class FrameTooLarge(RemoteProtocolError):
    """A frame header declared a body larger than the receiving side accepts."""


class MalformedFrame(RemoteProtocolError):
    """A frame (or the byte stream) that does not hold a valid message."""
