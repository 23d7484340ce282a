"""Version negotiation: same major, smaller minor, common features."""

from __future__ import annotations

from satchel.protocol import PROTOCOL_MAJOR, PROTOCOL_MINOR, __version__, negotiate
from satchel.protocol.version import protocol_string


def test_versions() -> None:
    assert __version__ == "0.1.0"
    assert (PROTOCOL_MAJOR, PROTOCOL_MINOR) == (1, 0)
    assert protocol_string() == "1.0"
    assert protocol_string(2, 5) == "2.5"


def test_same_major_negotiates_the_smaller_minor() -> None:
    assert negotiate(1, 7, major=1, minor=3) == (1, 3, ())
    assert negotiate(1, 2, major=1, minor=3) == (1, 2, ())


def test_different_major_is_incompatible() -> None:
    assert negotiate(2, 0, major=1, minor=0) is None
    assert negotiate(0, 9, major=1, minor=0) is None


def test_features_are_the_intersection_in_our_order() -> None:
    result = negotiate(1, 0, ["c", "a", "z"], major=1, minor=0, features=("a", "b", "c"))
    assert result == (1, 0, ("a", "c"))


def test_defaults_are_this_package_protocol() -> None:
    assert negotiate(PROTOCOL_MAJOR, PROTOCOL_MINOR) == (PROTOCOL_MAJOR, PROTOCOL_MINOR, ())
