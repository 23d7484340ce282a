"""Issue 13.7 with 11.5: METADATA read by range requests is a claim, held to the wheel.

A hostile file host (`tests.reliability.hostile_server`) answers range requests from one wheel
and whole-file requests with another: the ranges say ``demo`` requires nothing, the wheel whose
sha256 the page lists requires ``dep``. The resolve believes the ranges; the download that
follows must catch the difference, say so, and keep the wheel's own METADATA from then on.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.reliability.hostile_server import Handler, reply
from tests.security.test_upstream import Index, hostile_index
from tests.support.index_server import byte_range
from tests.support.wheels import build_wheel


@pytest.fixture
def index(tmp_path: Path) -> Iterator[Index]:
    yield from hostile_index(tmp_path)


def _ranges_from(liar: bytes, honest: bytes) -> Callable[[Handler], None]:
    def route(handler: Handler) -> None:
        wanted = handler.headers.get("Range")
        span = byte_range(wanted, len(liar)) if wanted else None
        if not isinstance(span, tuple):
            reply(handler, 200, honest, Content_Type="application/octet-stream")
            return
        first, last = span
        reply(
            handler,
            206,
            liar[first : last + 1],
            Content_Type="application/octet-stream",
            Content_Range=f"bytes {first}-{last}/{len(liar)}",
        )

    return route


def test_range_read_metadata_that_hides_a_dependency_is_caught_when_the_wheel_arrives(
    index: Index,
) -> None:
    """issue 13.7 (with 11.5): the wheel's own METADATA must agree with the range-read one."""
    index.add("dep")
    name = index.add("demo", requires=("dep",))
    liar = build_wheel(index.rig.root / "liar", "demo", "1.0").read_bytes()
    index.server.routes[f"/files/{name}"] = _ranges_from(liar, index.wheels[name])

    result = index.rig.satchel("prefetch", "demo")
    assert result.returncode != 0, result.stdout
    assert name in result.stderr, result.stderr
    assert "read by range requests" in result.stderr, result.stderr
    assert "Requires-Dist missing from the index's: dep" in result.stderr, result.stderr
    # The wheel is stored (its sha256 is the page's) and its own METADATA is kept: resolving
    # again finds the dependency, and the prefetch completes.
    sha = hashlib.sha256(index.wheels[name]).hexdigest()
    assert (index.rig.cache / "blobs" / sha[:2] / sha[2:4] / sha).exists()
    pins = index.rig.ok("resolve", "demo").stdout
    assert "dep==1.0" in pins, pins
    index.rig.ok("prefetch", "demo")
