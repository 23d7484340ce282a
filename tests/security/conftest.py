"""Fixtures shared by the security tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.client.clientenv import ClientEnv


@pytest.fixture
def owner(tmp_path: Path) -> Iterator[ClientEnv]:
    """The victim: a user's environment whose daemon each test starts itself (no autostart)."""
    env = ClientEnv(tmp_path)
    env.env["SATCHEL_NO_AUTOSTART"] = "1"
    yield env
    env.cleanup()
