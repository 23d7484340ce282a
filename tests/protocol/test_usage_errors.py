"""Input the daemon cannot read is a usage error, like a bad command line."""

from __future__ import annotations

from satchel.protocol.errors import EXIT_USAGE, INVALID_REQUIREMENT, exit_status


def test_an_invalid_requirement_exits_with_the_usage_status() -> None:
    assert exit_status(INVALID_REQUIREMENT) == EXIT_USAGE == 2
