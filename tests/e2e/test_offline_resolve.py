"""Issue 3, end to end: prefetch online, resolve offline, and where packages may come from.

The real `satchel` against its autostarted `satcheld` and two loopback indexes (see
`tests.e2e.twoindexes`): offline answers equal online ones, first-index never falls through to
a later index (dependency confusion), out-of-scope and missing projects are explained, and a
corrupted file on the index is rejected with nothing kept.
"""

from __future__ import annotations

import hashlib
import json
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.twoindexes import (
    EXIT_FAILURE,
    EXIT_OFFLINE,
    HELPER,
    INTERNAL_TOOL,
    World,
    open_world,
)
from tests.support.wheels import build_wheel, file_sha256


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with open_world(tmp_path) as w:
        yield w


@pytest.fixture
def internal_only(tmp_path: Path) -> Iterator[World]:
    """Only `internal` configured (the `public` server runs but is not an index)."""
    with open_world(tmp_path, public=False) as w:
        yield w


# -- scenario 1: prefetch, stop the index, resolve offline ----------------------------------------


def test_offline_resolve_after_prefetch_prints_the_online_pins(internal_only: World) -> None:
    w = internal_only
    online = w.ok("resolve", "internal-tool").stdout
    assert "internal-tool==1.0" in online and "helper==1.2" in online
    w.ok("prefetch", "internal-tool")
    w.internal.stop()

    offline = w.ok("resolve", "--offline", "internal-tool")

    assert offline.stdout == online
    assert f"--hash=sha256:{w.internal.sha256(INTERNAL_TOOL)}" in offline.stdout
    assert f"--hash=sha256:{w.internal.sha256(HELPER)}" in offline.stdout


def test_resolve_with_the_index_down_answers_offline_and_says_so(internal_only: World) -> None:
    w = internal_only
    online = w.ok("resolve", "internal-tool").stdout
    w.ok("prefetch", "internal-tool")
    w.internal.stop()

    result = w.ok("resolve", "internal-tool")

    assert result.stdout == online
    assert "offline" in result.stderr and "unreachable" in result.stderr
    assert result.stderr.startswith("note: ")


def test_a_prefetch_no_index_answers_and_nothing_cached_names_the_index(
    internal_only: World,
) -> None:
    """A prefetch (online) when every index is unreachable and nothing is cached: the answer is
    the unreachable index, named with why (here a closed port; on a laptop a TLS failure, a VPN
    down), never "not cached: run `satchel prefetch` while online", the command just run."""
    w = internal_only
    w.internal.stop()

    result = w.satchel("prefetch", "internal-tool")

    assert result.returncode == EXIT_OFFLINE, result.stderr
    assert "[index-unreachable]" in result.stderr
    assert "index internal" in result.stderr and "unreachable (" in result.stderr
    assert "while online" not in result.stderr


def test_every_index_down_answers_from_the_cache_of_a_later_index(world: World) -> None:
    """evil comes from `public`; with the network gone, first-index must not block it."""
    online = world.ok("resolve", "evil").stdout
    assert "from index 'public'" in online
    world.ok("prefetch", "evil")
    world.internal.stop()
    world.public.stop()

    result = world.ok("resolve", "evil")

    assert result.stdout == online
    assert "note: offline: every configured index is unreachable" in result.stderr


def test_prefetched_wheel_keeps_its_console_script(internal_only: World) -> None:
    """What is prefetched is the very file the index served (its entry points included)."""
    w = internal_only
    pins = w.pins("internal-tool")
    w.ok("prefetch", "internal-tool")
    stored = w.blob(pins["internal-tool"]["sha256"])
    assert file_sha256(stored) == w.internal.sha256(INTERNAL_TOOL)
    with zipfile.ZipFile(stored) as zf:
        entry_points = zf.read("internal_tool-1.0.dist-info/entry_points.txt").decode()
    assert "render = internal_tool:main" in entry_points


# -- scenario 2: a second index serving another internal-tool -------------------------------------


def test_first_index_takes_internal_tool_only_from_internal(world: World) -> None:
    pins = world.pins("internal-tool")

    assert set(pins) == {"internal-tool", "helper"}
    for name, filename in (("internal-tool", INTERNAL_TOOL), ("helper", HELPER)):
        assert pins[name]["index"] == "internal"
        assert pins[name]["index_url"].rstrip("/") == world.internal.url.rstrip("/")
        assert pins[name]["sha256"] == world.internal.sha256(filename)
    assert pins["internal-tool"]["version"] == "1.0"
    assert not any("/files/" in path for path in world.public.requests)
    text = world.ok("resolve", "internal-tool").stdout
    assert text.count("from index 'internal'") == 2 and "public" not in text
    assert f"--hash=sha256:{world.internal.sha256(INTERNAL_TOOL)}" in text


def test_first_index_answering_errors_does_not_fall_through(world: World) -> None:
    """An index that answers 5xx is broken, not absent: its projects are not looked up later."""
    world.internal.fail_next(100, 503)

    result = world.satchel("resolve", "internal-tool")

    assert result.returncode != 0
    assert "internal" in result.stderr
    assert "internal-tool" not in result.stdout
    assert not any("internal-tool" in path for path in world.public.requests)


def test_unreachable_internal_with_a_cached_page_still_wins(world: World) -> None:
    online = world.pins("internal-tool")
    world.internal.stop()

    result = world.ok("resolve", "--format", "json", "internal-tool")

    pins = {pin["name"]: pin for pin in json.loads(result.stdout)["pins"]}
    assert pins == online
    assert "index internal is unreachable" in result.stderr


def test_unreachable_internal_never_seen_serving_refuses_public(world: World) -> None:
    world.internal.stop()

    result = world.satchel("resolve", "internal-tool")

    assert result.returncode == EXIT_OFFLINE, result.stderr
    assert result.stdout == ""
    assert "index internal is unreachable" in result.stderr
    assert "never been seen serving internal-tool" in result.stderr
    assert "dependency confusion" in result.stderr
    assert "satchel index pin internal-tool" in result.stderr
    assert not any("internal-tool" in path for path in world.public.requests)


def test_refusal_probes_a_later_index_without_naming_the_project(world: World) -> None:
    """Is `public` down too? Asked with a project it serves, never with the one refused."""
    world.ok("prefetch", "evil")
    world.internal.stop()
    world.public.reset_log()

    result = world.satchel("resolve", "internal-tool")

    assert result.returncode == EXIT_OFFLINE, result.stderr
    assert "dependency confusion" in result.stderr
    assert world.public.requests == ["/simple/evil/"]


def test_unsafe_best_match_takes_the_best_version_across_indexes(world: World) -> None:
    pins = world.pins("--index-strategy", "unsafe-best-match", "internal-tool")

    assert pins["internal-tool"]["version"] == "9.0"
    assert pins["internal-tool"]["index"] == "public"
    assert pins["evil"]["index"] == "public"
    assert "helper" not in pins
    # The opt-in is per request: the next default resolve is back to internal's.
    assert world.pins("internal-tool")["internal-tool"]["index"] == "internal"


def test_unsafe_best_match_still_honours_a_pin(world: World) -> None:
    world.ok("index", "pin", "internal-tool", "internal")

    pins = world.pins("--index-strategy", "unsafe-best-match", "internal-tool")

    assert pins["internal-tool"]["version"] == "1.0"
    assert pins["internal-tool"]["index"] == "internal"
    assert set(pins) == {"internal-tool", "helper"}


def test_unsafe_best_match_prefers_the_earlier_index_for_the_same_version(world: World) -> None:
    dist = world.root / "dist" / "public-helper"
    world.public.add(build_wheel(dist, "helper", "1.2", summary="Another helper."))
    assert world.public.sha256(HELPER) != world.internal.sha256(HELPER)

    pins = world.pins("--index-strategy", "unsafe-best-match", "helper")

    assert pins["helper"]["index"] == "internal"
    assert pins["helper"]["sha256"] == world.internal.sha256(HELPER)


# -- scenarios 3 and 4: out of scope and missing, offline -----------------------------------------


def test_offline_project_cached_under_a_removed_index_names_it(world: World) -> None:
    world.ok("prefetch", "internal-tool")
    world.ok("index", "remove", "internal")

    result = world.satchel("resolve", "--offline", "internal-tool")

    assert result.returncode == EXIT_OFFLINE, result.stderr
    assert "cached from index 'internal'" in result.stderr
    assert world.internal.project_url("internal-tool").rstrip("/") in result.stderr
    assert "satchel index add internal" in result.stderr
    assert "satchel index pin internal-tool internal" in result.stderr


def test_offline_miss_says_what_is_missing(world: World) -> None:
    world.ok("prefetch", "helper")

    result = world.satchel("resolve", "--offline", "never-fetched")

    assert result.returncode == EXIT_OFFLINE, result.stderr
    assert "never-fetched is not cached" in result.stderr
    assert "satchel prefetch never-fetched" in result.stderr
    assert "[not-cached]" in result.stderr


def test_offline_miss_of_files_never_prefetched(world: World) -> None:
    """An online resolve caches pages and metadata, not files: offline, that is a miss."""
    world.ok("resolve", "internal-tool")
    world.internal.stop()

    result = world.satchel("resolve", "--offline", "internal-tool")

    assert result.returncode == EXIT_OFFLINE, result.stderr
    assert "internal-tool (needed by: your requirements) is known from index 'internal'" in (
        result.stderr
    )
    assert re.search(r"last seen \d{4}-\d\d-\d\d \d\d:\d\d UTC", result.stderr)
    assert "none of its files is in the cache" in result.stderr
    assert "satchel prefetch internal-tool" in result.stderr


# -- scenario 5: a corrupted file on the index ----------------------------------------------------


def test_corrupted_file_is_rejected_and_nothing_is_kept(world: World) -> None:
    good = world.internal.sha256(HELPER)
    data = (world.internal.root / HELPER).read_bytes()
    bad = hashlib.sha256(bytes([data[0] ^ 0xFF]) + data[1:]).hexdigest()
    world.internal.corrupt(HELPER)

    result = world.satchel("prefetch", "internal-tool")

    assert result.returncode == EXIT_FAILURE, result.stderr
    assert HELPER in result.stderr
    assert good in result.stderr and bad in result.stderr
    assert "[hash-mismatch]" in result.stderr
    assert not world.blob(good).exists() and not world.blob(bad).exists()
    assert list((world.cache / "tmp").iterdir()) == []
    assert world.verify_clean() == 1  # internal-tool's wheel, which was fine
    # Once the index serves the right bytes again, the same prefetch goes through.
    world.internal.corrupt(HELPER, False)
    world.ok("prefetch", "internal-tool")
    assert file_sha256(world.blob(good)) == good


# -- scenario 6: kill -9 of the daemon during a prefetch ------------------------------------------
