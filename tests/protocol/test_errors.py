"""Error hierarchy and the wire-code -> exit-status table."""

from __future__ import annotations

import pytest

from satchel.protocol import errors
from satchel.protocol.errors import (
    FrameTooLarge,
    LocalProtocolError,
    MalformedFrame,
    ProtocolError,
    RemoteProtocolError,
    exit_status,
)

FAILURE_CODES = [
    "internal",
    "invalid-params",
    "unknown-method",
    "not-found",
    "config-error",
    "index-error",
    "hash-mismatch",
    "metadata-mismatch",
    "invalid-wheel",
    "install-failed",
    "build-failed",
    "build-forbidden",
    "disk-full",
    "busy",
    "forbidden",
    "origin-changed",
    "database-damaged",
    "credential-withheld",
]


def test_hierarchy() -> None:
    assert issubclass(LocalProtocolError, ProtocolError)
    assert issubclass(RemoteProtocolError, ProtocolError)
    assert issubclass(FrameTooLarge, RemoteProtocolError)
    assert issubclass(MalformedFrame, RemoteProtocolError)
    assert not issubclass(LocalProtocolError, RemoteProtocolError)
    assert ProtocolError("x").code == "protocol"


@pytest.mark.parametrize("code", FAILURE_CODES)
def test_request_failures_exit_1(code: str) -> None:
    assert exit_status(code) == 1


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("shutting-down", 3),
        ("unavailable", 3),
        ("protocol", 4),
        ("incompatible", 4),
        ("offline", 5),
        ("not-cached", 5),
        ("index-unreachable", 5),
        ("resolution-impossible", 6),
        ("cancelled", 130),
    ],
)
def test_special_codes_have_their_own_status(code: str, status: int) -> None:
    assert exit_status(code) == status


def test_unknown_codes_are_plain_failures() -> None:
    assert exit_status("added-in-protocol-1.9") == 1


def test_every_code_constant_is_listed() -> None:
    constants = {
        value
        for name, value in vars(errors).items()
        if name.isupper() and isinstance(value, str) and not name.startswith("EXIT")
    }
    assert constants == set(FAILURE_CODES) | set(errors.EXIT_STATUS)


def test_every_daemon_error_carries_a_known_code() -> None:
    """The daemon's error classes (satchel.daemon.errors) only use codes defined here."""
    daemon_errors = pytest.importorskip("satchel.daemon.errors")
    known = set(FAILURE_CODES) | set(errors.EXIT_STATUS)
    classes = [daemon_errors.SatchelError, *daemon_errors.SatchelError.__subclasses__()]
    while classes:
        cls = classes.pop()
        assert cls.code in known, cls
        classes.extend(cls.__subclasses__())
