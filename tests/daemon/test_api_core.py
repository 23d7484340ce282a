"""`satchel.daemon.api.core`: what `status` says of the local index while the daemon starts."""

from __future__ import annotations

from pathlib import Path

from satchel.daemon.api.core import _local_index
from tests.support.daemon import in_process_app


def test_the_local_index_is_starting_until_the_runtime_is_ready(tmp_path: Path) -> None:
    """Before the cache and index services are up, the local index has no state of its own: it
    is starting, not "stopped" (which `status` said for the first moment after a start)."""
    app = in_process_app(tmp_path)
    assert _local_index(app) == "starting"
    app.services.runtime_ready.set()  # ready, with no runtime: the services failed to start
    assert _local_index(app) == "stopped (the cache and index services did not start)"
