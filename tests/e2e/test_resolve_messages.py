"""Resolve failures and warnings that say what happened, with the exit status that fits.

Against the real `satchel`, its autostarted `satcheld` and the loopback indexes of
`tests.e2e.twoindexes` (``internal-tool`` 1.0 and ``helper`` 1.2 on ``internal``):

* offline, a version listed on the cached page whose file was never downloaded is "not cached"
  (exit 5, with the version, when it was last seen and the prefetch that fixes it), not
  "nothing matches";
* a wrong ``--hash`` says the version's files exist but none has an allowed hash;
* an extra the project does not provide is resolved with a note, as pip warns;
* a malformed requirement is a usage error (exit 2).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.twoindexes import EXIT_OFFLINE, EXIT_RESOLUTION, HELPER, World, open_world
from tests.support.wheels import build_wheel

EXIT_USAGE = 2


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with open_world(tmp_path, public=False) as w:
        yield w


def test_a_malformed_requirement_is_a_usage_error(world: World) -> None:
    result = world.satchel("resolve", "foo>>1")

    assert result.returncode == EXIT_USAGE, result.stderr
    assert "foo>>1" in result.stderr


def test_a_malformed_line_in_a_requirements_file_is_a_usage_error(world: World) -> None:
    requirements = world.root / "requirements.txt"
    requirements.write_text("helper>=>1\n")

    result = world.satchel("resolve", "-r", str(requirements))

    assert result.returncode == EXIT_USAGE, result.stderr
    assert "requirements.txt" in result.stderr


def test_an_extra_the_project_does_not_provide_is_noted(world: World) -> None:
    result = world.ok("resolve", "internal-tool[nope]")

    assert "internal-tool[nope]==1.0" in result.stdout
    assert "note: internal-tool 1.0 does not provide the extra 'nope'" in result.stderr


def test_a_wrong_hash_names_the_allowed_and_the_actual_hashes(world: World) -> None:
    wrong = "0" * 64
    requirements = world.root / "requirements.txt"
    requirements.write_text(f"helper==1.2 --hash=sha256:{wrong}\n")

    result = world.satchel("resolve", "-r", str(requirements))

    assert result.returncode == EXIT_RESOLUTION, result.stderr
    assert "files of helper 1.2 exist, but none has an allowed hash" in result.stderr
    assert f"allowed: sha256:{wrong}" in result.stderr
    assert f"{HELPER} sha256:{world.internal.sha256(HELPER)}" in result.stderr


def test_offline_a_newer_version_seen_but_not_downloaded_is_not_cached(world: World) -> None:
    world.ok("prefetch", "internal-tool")
    world.internal.add(
        build_wheel(world.root / "dist" / "v2", "internal-tool", "2.0", requires=["helper>=1"])
    )
    world.ok("resolve", "internal-tool<2")  # the page listing 2.0 is cached; 2.0's file is not
    world.internal.stop()

    result = world.satchel("resolve", "--offline", "internal-tool>=2")

    assert result.returncode == EXIT_OFFLINE, result.stderr
    assert "[not-cached]" in result.stderr
    assert "internal-tool 2.0" in result.stderr
    assert "not downloaded" in result.stderr
    assert re.search(r"last seen \d{4}-\d\d-\d\d \d\d:\d\d UTC", result.stderr), result.stderr
    assert "satchel prefetch 'internal-tool>=2'" in result.stderr


def test_offline_nothing_matching_at_all_is_still_resolution_impossible(world: World) -> None:
    world.ok("prefetch", "internal-tool")
    world.internal.stop()

    result = world.satchel("resolve", "--offline", "internal-tool>=5")

    assert result.returncode == EXIT_RESOLUTION, result.stderr
    assert "versions cached in scope" in result.stderr
