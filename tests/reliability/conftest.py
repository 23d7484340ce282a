"""Fixtures of the reliability suite (this directory is owned by issue 7 alone)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.reliability.harness import Rig, rig_for


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    """A private daemon environment configured with one loopback index (`Rig`)."""
    yield from rig_for(tmp_path)
