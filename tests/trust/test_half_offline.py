"""Half-offline (VPN down, public index up): the private index's cached page offers what is
stored, as a fully offline answer would.

Scenario (QA 2026-12-05): ``internal-tool`` 1.0 was prefetched from the private index; 1.1 was
published later and seen by a resolve (on the cached page, its file never downloaded). In a
train, the VPN is down and the public index up. `satchel install internal-tool` chose 1.1 from
the cached page and failed downloading it ("index offline ... [index-unreachable]"), while with
every index down the same command installs 1.0 (offline answers list only stored files): the
README's promise, installs again with no index flags, held only when nothing at all was
reachable. The unreachable index's cached page now lists only stored files, with the note.

Real `satchel` and `satcheld`, two loopback indexes (`tests.e2e.twoindexes`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.twoindexes import World, open_world
from tests.support.wheels import build_wheel


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with open_world(tmp_path) as w:
        yield w


def test_vpn_down_public_up_installs_the_stored_version(world: World, tmp_path: Path) -> None:
    w = world
    w.ok("prefetch", "internal-tool")
    w.internal.add(build_wheel(tmp_path / "dist" / "later", "internal-tool", "1.1"))
    assert "internal-tool==1.1" in w.ok("resolve", "internal-tool").stdout
    w.internal.stop()  # the VPN goes down; the public index stays up

    venv = tmp_path / "venv"
    install = w.satchel("install", "--venv", str(venv), "internal-tool", timeout=120)
    assert install.returncode == 0, install.stderr
    assert "index internal is unreachable" in install.stderr, install.stderr
    (site,) = venv.glob("lib/python*/site-packages")
    assert (site / "internal_tool-1.0.dist-info").is_dir()
    assert not any("internal-tool" in path or "internal_tool" in path for path in w.public.requests)
