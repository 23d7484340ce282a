"""Suite-wide rules: tests never leave loopback unless explicitly asked to."""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests that need the public package index run only with SATCHEL_TEST_NETWORK=1."""
    if os.environ.get("SATCHEL_TEST_NETWORK") == "1":
        return
    skip = pytest.mark.skip(reason="needs the public index; set SATCHEL_TEST_NETWORK=1 to run")
    for item in items:
        if "network" in item.keywords:
            item.add_marker(skip)
