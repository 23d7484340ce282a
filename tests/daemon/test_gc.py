"""Garbage collection: what goes first, and what never goes."""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from satchel.daemon.requests import gc
from satchel.daemon.requests.watch import WatchedProject
from satchel.daemon.services.refresh import Warmer
from tests.support.index_server import IndexServer
from tests.support.warm import running_warmer
from tests.support.wheels import build_wheel, file_sha256

A, B, C, D = ("a" * 64, "b" * 64, "c" * 64, "d" * 64)
NOW = 1_000_000.0


def victims(found: gc.Plan) -> list[tuple[str, str]]:
    return [(v.sha256, v.reason) for v in found.victims]


def test_least_recently_used_go_first_until_under_the_size_cap() -> None:
    rows = [(A, 10, NOW - 1), (B, 10, NOW - 3), (C, 10, NOW - 2)]
    found = gc.plan(rows, set(), max_size=15, max_age=None, now=NOW)
    assert victims(found) == [(B, "size"), (C, "size")]
    assert (found.total_before, found.total_after, found.freed_bytes) == (30, 10, 20)


def test_files_unused_past_the_age_cap_go_even_under_the_size_cap() -> None:
    rows = [(A, 10, NOW - 100), (B, 10, NOW - 5)]
    found = gc.plan(rows, set(), max_size=1000, max_age=50, now=NOW)
    assert victims(found) == [(A, "age")]


def test_protected_files_stay_even_when_the_cap_cannot_be_met() -> None:
    rows = [(A, 10, NOW - 9), (B, 10, NOW - 8), (C, 10, NOW - 1)]
    found = gc.plan(rows, {A, B}, max_size=0, max_age=1, now=NOW)
    assert victims(found) == [(C, "size")]
    assert (found.protected, found.protected_bytes, found.total_after) == (2, 20, 20)


def test_without_caps_nothing_goes() -> None:
    rows = [(A, 10, 0.0)]
    assert gc.plan(rows, set(), max_size=None, max_age=None, now=NOW).victims == []


@given(
    sizes=st.lists(st.integers(0, 100), min_size=0, max_size=8),
    protected_mask=st.lists(st.booleans(), min_size=8, max_size=8),
    cap=st.integers(0, 400),
)
def test_a_plan_never_picks_protected_files_and_stops_once_under_the_cap(
    sizes: list[int], protected_mask: list[bool], cap: int
) -> None:
    shas = [f"{i:064x}" for i in range(len(sizes))]
    rows = [(sha, size, float(i)) for i, (sha, size) in enumerate(zip(shas, sizes, strict=True))]
    keep = {sha for sha, flag in zip(shas, protected_mask, strict=False) if flag}
    found = gc.plan(rows, keep, max_size=cap, max_age=None, now=NOW)
    chosen = {v.sha256 for v in found.victims}
    assert not chosen & keep
    assert found.total_after == sum(sizes) - found.freed_bytes
    if found.victims:  # the last one chosen was needed to get under the cap
        assert found.total_after + found.victims[-1].size > cap


async def fetch(warm: Warmer, project: str) -> str:
    loop = warm.rt.config.indexes[0]
    page = await warm.rt.catalog.fetch_page(loop, project)
    assert page is not None
    info = await warm.rt.catalog.fetch_file(loop, project, page.files[0])
    return info.sha256


async def test_files_listed_in_a_watched_lock_are_never_evicted(tmp_path: Path) -> None:
    with IndexServer(tmp_path / "index") as index:
        wheel = index.add(build_wheel(tmp_path / "dist", "alpha", "1.0"))
        index.add(build_wheel(tmp_path / "dist", "gamma", "1.0"))
        proj = tmp_path / "proj"
        proj.mkdir()
        (proj / "pylock.toml").write_text(
            f'lock-version = "1.0"\n[[packages]]\nname = "alpha"\nversion = "1.0"\n'
            f'index = "{index.url}"\nwheels = [{{ name = "{wheel.name}", '
            f'url = "{index.file_url(wheel.name)}", '
            f'hashes = {{ sha256 = "{file_sha256(wheel)}" }} }}]\n'
        )
        async with running_warmer(tmp_path / "d", index.url) as warm:
            alpha, gamma = await fetch(warm, "alpha"), await fetch(warm, "gamma")
            projects = [WatchedProject(path=str(proj), added_at=0.0)]  # never prefetched

            report = await gc.collect(warm.rt, projects, max_size=0, max_age=None)

            assert [v.sha256 for v in report.plan.victims] == [gamma]
            assert warm.rt.store.has(alpha)
            assert not warm.rt.store.has(gamma)
            assert gamma not in warm.rt.metadb.blob_rows()


async def test_a_dry_run_removes_nothing(tmp_path: Path) -> None:
    with IndexServer(tmp_path / "index") as index:
        index.add(build_wheel(tmp_path / "dist", "gamma", "1.0"))
        async with running_warmer(tmp_path / "d", index.url) as warm:
            gamma = await fetch(warm, "gamma")
            report = await gc.collect(warm.rt, [], max_size=0, max_age=None, dry_run=True)
            assert [v.sha256 for v in report.plan.victims] == [gamma]
            assert warm.rt.store.has(gamma)


async def test_unpacked_trees_go_with_their_file_and_orphans_go_too(tmp_path: Path) -> None:
    with IndexServer(tmp_path / "index") as index:
        index.add(build_wheel(tmp_path / "dist", "gamma", "1.0"))
        async with running_warmer(tmp_path / "d", index.url) as warm:
            gamma = await fetch(warm, "gamma")
            root = warm.rt.store.unpacked_dir
            for sha in (gamma, D):  # D: a tree whose file is long gone
                (root / sha / "tree").mkdir(parents=True)
                (root / sha / "tree" / "mod.py").write_bytes(b"x" * 100)
            (root / "not-a-tree").mkdir()

            report = await gc.collect(warm.rt, [], max_size=0, max_age=None)

            assert (report.trees, report.tree_bytes) == (2, 200)
            assert sorted(os.listdir(root)) == ["not-a-tree"]
