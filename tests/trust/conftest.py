"""Fixtures shared by the trust tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.trust.laptop import Laptop


@pytest.fixture
def laptop(tmp_path: Path) -> Iterator[Laptop]:
    """A new user's machine: a private and a public index, no config.toml yet."""
    machine = Laptop(tmp_path)
    try:
        yield machine
    finally:
        machine.close()


@pytest.fixture
def locked_laptop(tmp_path: Path) -> Iterator[Laptop]:
    """The same machine, its private index behind a password (user ``ci``, password
    ``private-pw-42``: tests assert it never shows)."""
    machine = Laptop(tmp_path, private_auth=("ci", "private-pw-42"))
    try:
        yield machine
    finally:
        machine.close()
