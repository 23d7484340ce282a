"""The resolver, over an in-memory index of real wheels: what gets pinned, and why not."""

from __future__ import annotations

import functools
from pathlib import Path

import msgspec
import pytest
import trio
from packaging.requirements import Requirement

from satchel.daemon.errors import NotCached, NotFound, ResolutionImpossible
from satchel.daemon.resolver.candidates import MetadataCache, SdistNeedsBuild, parse_core_metadata
from satchel.daemon.resolver.resolve import Resolution, resolve
from satchel.daemon.resolver.scope import ScopedPages, Strategy
from satchel.daemon.resolver.target import Target, synthetic_target
from satchel.daemon.storage.model import FileEntry, ProjectPage
from tests.support.memindex import Index, MemoryIndex

LINUX = synthetic_target("3.11.4", ["manylinux_2_28_x86_64"])
WINDOWS = synthetic_target("3.11.4", ["win_amd64"])


@pytest.fixture
def index(tmp_path: Path) -> MemoryIndex:
    return MemoryIndex(tmp_path)


def run(
    index: MemoryIndex, *reqs: str, target: Target = LINUX, constraints: tuple[str, ...] = (),
    **kwargs: object,
) -> Resolution:  # fmt: skip
    return resolve(
        [Requirement(r) for r in reqs],
        [Requirement(c) for c in constraints],
        target,
        index,
        **kwargs,  # type: ignore[arg-type]
    )


def pinned(resolution: Resolution) -> dict[str, str]:
    return {pin.name: pin.version for pin in resolution.pins}


def test_a_chain_is_pinned_with_who_required_what(index: MemoryIndex) -> None:
    index.wheel("app", "1.0", requires=["lib>=1"])
    index.wheel("lib", "1.0", requires=["base"])
    index.wheel("lib", "2.0", requires=["base"])
    index.wheel("base", "0.5")
    result = run(index, "app")
    assert pinned(result) == {"app": "1.0", "base": "0.5", "lib": "2.0"}
    assert [p.name for p in result.pins] == ["app", "base", "lib"]
    by_name = {p.name: p for p in result.pins}
    assert by_name["app"].requested and by_name["app"].dependents == ("(requested)",)
    assert not by_name["lib"].requested and by_name["lib"].dependents == ("app 1.0",)
    assert by_name["base"].index == "main"
    assert by_name["base"].file.filename == "base-0.5-py3-none-any.whl"


def test_extras_pull_their_dependencies_only_when_asked(index: MemoryIndex) -> None:
    index.wheel("tool", "1.0", requires=["core"], extras={"cli": ["click>=8"]})
    index.wheel("core", "1.0")
    index.wheel("click", "8.1")
    assert pinned(run(index, "tool")) == {"tool": "1.0", "core": "1.0"}
    result = run(index, "tool[cli]")
    assert pinned(result) == {"tool": "1.0", "core": "1.0", "click": "8.1"}
    assert {p.name: p.extras for p in result.pins}["tool"] == ("cli",)
    assert {p.name: p.dependents for p in result.pins}["click"] == ("tool 1.0",)


def test_markers_are_evaluated_for_the_target(index: MemoryIndex) -> None:
    index.wheel("app", "1.0", requires=['winlib; sys_platform == "win32"', "lib"])
    index.wheel("winlib", "1.0")
    index.wheel("lib", "1.0")
    linux = run(index, "app")
    assert pinned(linux) == {"app": "1.0", "lib": "1.0"}
    assert [(s.requirement, s.required_by) for s in linux.skipped] == [
        ('winlib; sys_platform == "win32"', "app 1.0")
    ]
    assert pinned(run(index, "app", target=WINDOWS)) == {
        "app": "1.0",
        "lib": "1.0",
        "winlib": "1.0",
    }


def test_metadata_requires_python_backtracks_to_a_compatible_version(index: MemoryIndex) -> None:
    index.wheel("lib", "1.0", requires_python=">=3.8")
    index.wheel("lib", "2.0", requires_python=">=3.12")
    assert pinned(run(index, "lib")) == {"lib": "1.0"}


def test_file_requires_python_filters_without_fetching_metadata(index: MemoryIndex) -> None:
    index.wheel("lib", "1.0")
    index.wheel("lib", "2.0", data_requires_python=">=3.12")
    assert pinned(run(index, "lib")) == {"lib": "1.0"}
    assert index.metadata_calls == 1


def test_requires_python_conflict_is_explained(index: MemoryIndex) -> None:
    index.wheel("lib", "2.0", requires_python=">=3.12")
    with pytest.raises(ResolutionImpossible) as info:
        run(index, "lib")
    assert "lib 2.0 requires Python>=3.12, but the target is Python 3.11.4" in str(info.value)


def test_yanked_files_are_used_only_for_exact_pins(index: MemoryIndex) -> None:
    index.wheel("lib", "1.0")
    index.wheel("lib", "1.1", yanked=True)
    assert pinned(run(index, "lib")) == {"lib": "1.0"}
    assert pinned(run(index, "lib==1.1")) == {"lib": "1.1"}
    with pytest.raises(ResolutionImpossible, match=r"lib 1\.1 is yanked"):
        run(index, "lib>1.0")


def test_pre_releases_follow_pips_rule(index: MemoryIndex) -> None:
    index.wheel("lib", "1.0")
    index.wheel("lib", "2.0b1")
    index.wheel("beta-only", "0.1a1")
    assert pinned(run(index, "lib")) == {"lib": "1.0"}
    assert pinned(run(index, "lib>=2.0b1")) == {"lib": "2.0b1"}
    assert pinned(run(index, "lib", prereleases=True)) == {"lib": "2.0b1"}
    assert pinned(run(index, "beta-only")) == {"beta-only": "0.1a1"}


def test_best_ranked_compatible_wheel_wins(index: MemoryIndex) -> None:
    index.wheel("fast", "1.0")
    native = index.wheel("fast", "1.0", tag="cp311-cp311-manylinux_2_17_x86_64")
    index.wheel("fast", "1.0", tag="cp311-cp311-win_amd64")
    (pin,) = run(index, "fast").pins
    assert pin.file == native
    (win,) = run(index, "fast", target=WINDOWS).pins
    assert win.file.filename.endswith("win_amd64.whl")


def test_a_version_with_no_wheel_for_the_target_is_skipped(index: MemoryIndex) -> None:
    index.wheel("fast", "1.0")
    index.wheel("fast", "2.0", tag="cp311-cp311-win_amd64")
    assert pinned(run(index, "fast")) == {"fast": "1.0"}
    with pytest.raises(ResolutionImpossible, match=r"fast 2\.0 has no file for this target"):
        run(index, "fast>=2")


def test_first_index_never_mixes_indexes(tmp_path: Path) -> None:
    index = MemoryIndex(tmp_path, ["private", "public"])
    index.wheel("internal-tool", "1.0", index="private", requires=["dep"])
    index.wheel("internal-tool", "9.0", index="public")
    index.wheel("dep", "1.0", index="public")
    result = run(index, "internal-tool")
    assert {p.name: (p.version, p.index) for p in result.pins} == {
        "internal-tool": ("1.0", "private"),
        "dep": ("1.0", "public"),
    }
    with pytest.raises(ResolutionImpossible, match=r"versions in scope \(index 'private'\): 1.0"):
        run(index, "internal-tool>=9")


def test_a_pin_overrides_the_index_order(tmp_path: Path) -> None:
    index = MemoryIndex(tmp_path, ["private", "public"], pins={"internal-tool": "public"})
    index.wheel("internal-tool", "1.0", index="private")
    index.wheel("internal-tool", "9.0", index="public")
    (pin,) = run(index, "internal-tool").pins
    assert (pin.version, pin.index) == ("9.0", "public")


def test_unsafe_best_match_is_opt_in(tmp_path: Path) -> None:
    index = MemoryIndex(tmp_path, ["private", "public"], strategy=Strategy.UNSAFE_BEST_MATCH)
    index.wheel("internal-tool", "1.0", index="private")
    index.wheel("internal-tool", "9.0", index="public")
    (pin,) = run(index, "internal-tool").pins
    assert (pin.version, pin.index) == ("9.0", "public")


def test_same_version_on_two_indexes_prefers_the_earlier_index(tmp_path: Path) -> None:
    index = MemoryIndex(tmp_path, ["private", "public"], strategy=Strategy.UNSAFE_BEST_MATCH)
    index.wheel("lib", "1.0", index="public")
    index.wheel("lib", "1.0", index="private")
    (pin,) = run(index, "lib").pins
    assert pin.index == "private"


def test_conflict_names_both_sides_and_the_chain(index: MemoryIndex) -> None:
    index.wheel("app", "3.1", requires=["internal-tool", "dep-a>=2"])
    index.wheel("internal-tool", "1.0", requires=["dep-a<2"])
    index.wheel("dep-a", "1.0")
    index.wheel("dep-a", "2.0")
    with pytest.raises(ResolutionImpossible) as info:
        run(index, "app")
    message = str(info.value)
    assert "cannot satisfy dep-a:" in message
    assert "internal-tool 1.0 requires dep-a<2" in message
    assert "app 3.1 requires dep-a>=2" in message
    assert "via app 3.1 (requested) -> internal-tool 1.0" in message


def test_offline_miss_says_where_it_is_cached_and_how_to_allow_it(tmp_path: Path) -> None:
    index = MemoryIndex(tmp_path, ["public"], offline=True)
    index.wheel("internal-tool", "1.0", index="old-private")
    with pytest.raises(NotCached) as info:
        run(index, "internal-tool")
    message = str(info.value)
    assert "internal-tool is not cached in the index scope (last seen 2023-11-14" in message
    assert "cached from index 'old-private'" in message
    assert "satchel index pin internal-tool old-private" in message


def test_online_miss_is_not_found_and_names_who_needed_it(index: MemoryIndex) -> None:
    index.wheel("app", "1.0", requires=["ghost"])
    with pytest.raises(NotFound) as info:
        run(index, "app")
    assert "no index in scope has a project named ghost (needed by: app 1.0)" in str(info.value)


def test_installed_version_is_kept_when_it_satisfies(index: MemoryIndex) -> None:
    index.wheel("lib", "1.0")
    index.wheel("lib", "2.0")
    kept = run(index, "lib", installed={"lib": "1.0"})
    assert pinned(kept) == {"lib": "1.0"} and kept.pins[0].installed
    assert pinned(run(index, "lib", installed={"lib": "1.0"}, prefer_installed=False)) == {
        "lib": "2.0"
    }
    upgraded = run(index, "lib>=2", installed={"lib": "1.0"})
    assert pinned(upgraded) == {"lib": "2.0"} and not upgraded.pins[0].installed


def test_constraints_narrow_but_do_not_add(index: MemoryIndex) -> None:
    index.wheel("lib", "1.0")
    index.wheel("lib", "2.0")
    index.wheel("other", "1.0")
    assert pinned(run(index, "lib", constraints=("lib<2", "other==1.0"))) == {"lib": "1.0"}


def test_sdist_with_static_metadata_is_used_when_no_wheel_fits(index: MemoryIndex) -> None:
    index.sdist("legacy", "1.0", requires=["lib"])
    index.wheel("lib", "1.0")
    result = run(index, "legacy")
    assert pinned(result) == {"legacy": "1.0", "lib": "1.0"}
    assert {p.name: p.file.filename for p in result.pins}["legacy"] == "legacy-1.0.tar.gz"
    with pytest.raises(ResolutionImpossible):
        run(index, "legacy", allow_sdists=False)


def test_a_wheel_beats_the_sdist_of_the_same_version(index: MemoryIndex) -> None:
    index.sdist("both", "1.0")
    index.wheel("both", "1.0")
    (pin,) = run(index, "both").pins
    assert pin.file.is_wheel


def test_sdist_with_dynamic_dependencies_must_be_built(index: MemoryIndex) -> None:
    index.sdist("dyn", "1.0", static_metadata=False)
    with pytest.raises(SdistNeedsBuild, match=r"dyn-1\.0\.tar\.gz .* must be built"):
        run(index, "dyn")


def test_hash_checking_picks_the_listed_file(index: MemoryIndex) -> None:
    pure = index.wheel("fast", "1.0")
    index.wheel("fast", "1.0", tag="cp311-cp311-manylinux_2_17_x86_64")
    (pin,) = run(index, "fast==1.0", hashes={"fast": [pure.sha256]}).pins
    assert pin.file == pure


def test_hash_checking_requires_every_dependency_listed(index: MemoryIndex) -> None:
    app = index.wheel("app", "1.0", requires=["lib"])
    index.wheel("lib", "1.0")
    with pytest.raises(ResolutionImpossible, match="hash-checking mode: lib has no --hash"):
        run(index, "app", hashes={"app": [app.sha256]})


def test_a_shared_cache_makes_a_later_resolve_fetch_no_metadata(index: MemoryIndex) -> None:
    index.wheel("app", "1.0", requires=["lib"])
    index.wheel("lib", "1.0")
    cache = MetadataCache()
    run(index, "app", cache=cache)
    assert index.metadata_calls == 2
    second = run(index, "lib", "app", cache=cache)
    assert index.metadata_calls == 2
    assert second.stats["metadata_fetched"] == 0
    assert pinned(second) == {"app": "1.0", "lib": "1.0"}


def test_the_same_request_again_is_answered_from_the_result_cache(index: MemoryIndex) -> None:
    index.wheel("app", "1.0", requires=["lib"])
    index.wheel("lib", "1.0")
    cache = MetadataCache()
    first = run(index, "app", cache=cache)
    second = run(index, "app", cache=cache)
    assert second.stats["cached"] == 1
    assert second.pins == first.pins


def test_the_result_cache_is_bounded_by_the_pins_it_holds_oldest_first(
    index: MemoryIndex,
) -> None:
    """issue 15: however many distinct resolves, cached results hold at most
    `max_result_pins` pins; the oldest go first and the newest stay answerable."""
    for i in range(40):
        index.wheel(f"p{i}", "1.0")
    cache = MetadataCache(max_result_pins=30)
    sets = [[f"p{(start + k) % 40}" for k in range(5)] for start in range(40)]
    for reqs in sets:  # 40 distinct sets of 5 pins: 240 pins counted, 30 kept
        run(index, *reqs, cache=cache)
        assert cache.result_pins <= 30
    assert len(cache.results) == 5  # each counts its 5 pins and itself
    assert cache.result_pins == sum(len(r.pins) + 1 for r, _ in cache.results.values())
    assert run(index, *sets[-1], cache=cache).stats["cached"] == 1
    assert "cached" not in run(index, *sets[0], cache=cache).stats


def test_a_result_larger_than_the_bound_is_not_cached(index: MemoryIndex) -> None:
    for i in range(10):
        index.wheel(f"p{i}", "1.0")
    cache = MetadataCache(max_result_pins=5)
    run(index, *(f"p{i}" for i in range(10)), cache=cache)
    assert cache.results == {} and cache.result_pins == 0


def test_a_changed_page_invalidates_the_result_cache(index: MemoryIndex) -> None:
    index.wheel("app", "1.0", requires=["lib"])
    index.wheel("lib", "1.0")
    cache = MetadataCache()
    run(index, "app", cache=cache)
    index.wheel("lib", "1.1")
    index.fetched_at[("main", "lib")] = 1_800_000_000.0
    again = run(index, "app", cache=cache)
    assert "cached" not in again.stats
    assert pinned(again) == {"app": "1.0", "lib": "1.1"}


def test_inconsistent_metadata_is_refused(index: MemoryIndex) -> None:
    file = index.wheel("lib", "1.0")
    impostor = index.wheel("other", "1.0")
    index.metadata[file.url] = index.metadata[impostor.url]
    with pytest.raises(ResolutionImpossible, match=r"declares other 1\.0 in its metadata"):
        run(index, "lib")


def test_explicit_index_needs_a_pin(tmp_path: Path) -> None:
    vendor = Index("vendor", "http://127.0.0.1:9/vendor/simple/", explicit=True)
    index = MemoryIndex(tmp_path, ["main", vendor])
    index.wheel("blob", "1.0", index="vendor")
    with pytest.raises(NotFound, match="pin it with `satchel index pin blob vendor`"):
        run(index, "blob")
    index.pins["blob"] = "vendor"
    assert pinned(run(index, "blob")) == {"blob": "1.0"}


def test_a_project_whose_files_are_all_unreadable_is_not_called_missing(
    index: MemoryIndex,
) -> None:
    index.wheel("odd", "1.0")
    (entry,) = index.files["main"]["odd"]
    index.files["main"]["odd"] = [msgspec.structs.replace(entry, filename="odd.whl")]
    with pytest.raises(ResolutionImpossible, match="listed on index 'main', but none of its 1"):
        run(index, "odd")


def test_contradicting_requests_are_explained(index: MemoryIndex) -> None:
    index.wheel("lib", "0.5")
    index.wheel("lib", "3.0")
    with pytest.raises(ResolutionImpossible) as info:
        run(index, "lib<1", "lib>2")
    assert "cannot satisfy lib: you requested lib<1, but you requested lib>2" in str(info.value)


def test_compressed_tag_sets_are_understood(index: MemoryIndex) -> None:
    index.wheel("six", "1.16", tag="py2.py3-none-any")
    assert pinned(run(index, "six")) == {"six": "1.16"}


def test_pre_pep_643_sdist_metadata_is_not_trusted() -> None:
    pkg_info = b"Metadata-Version: 2.1\nName: old\nVersion: 1.0\nRequires-Dist: lib\n\n"
    with pytest.raises(SdistNeedsBuild, match=r"Metadata-Version 2\.1"):
        parse_core_metadata(pkg_info, sdist=True, where="old-1.0.tar.gz")
    assert parse_core_metadata(pkg_info, sdist=False, where="wheel").requires_dist[0].name == "lib"


def test_offline_page_without_cached_files_says_to_prefetch(tmp_path: Path) -> None:
    index = MemoryIndex(tmp_path, offline=True)
    index.wheel("lib", "1.0")
    index.files["main"]["lib"] = []  # the offline source lists only files present in the store
    with pytest.raises(NotCached) as info:
        run(index, "lib")
    assert "none of its files is in the cache; run `satchel prefetch lib`" in str(info.value)


def test_offline_mismatch_says_versions_are_the_cached_ones(tmp_path: Path) -> None:
    index = MemoryIndex(tmp_path, offline=True)
    index.wheel("lib", "1.0")
    with pytest.raises(ResolutionImpossible, match=r"versions cached in scope \(index 'main'\)"):
        run(index, "lib>=2")


def test_backtracks_to_an_older_parent_to_avoid_a_conflict(index: MemoryIndex) -> None:
    index.wheel("app", "1.0", requires=["dep<2"])
    index.wheel("app", "2.0", requires=["dep<1.5"])
    index.wheel("dep", "1.0")
    index.wheel("dep", "1.8")
    result = run(index, "app", "dep>=1.6")
    assert pinned(result) == {"app": "1.0", "dep": "1.8"}
    assert result.stats["backtracks"] >= 1


async def test_runs_in_a_worker_thread_calling_back_into_trio(index: MemoryIndex) -> None:
    """The daemon's shape: resolve in a thread, the source hops back to the event loop."""
    index.wheel("app", "1.0", requires=["lib"])
    index.wheel("lib", "1.0")
    hops: list[str] = []

    async def page(project: str) -> ScopedPages:
        hops.append(project)
        await trio.lowlevel.checkpoint()
        return index.pages(project)

    class TrioSource:
        def pages(self, project: str) -> ScopedPages:
            return trio.from_thread.run(page, project)

        def core_metadata(self, page: ProjectPage, file: FileEntry) -> bytes:
            return trio.from_thread.run(trio.to_thread.run_sync, index.core_metadata, page, file)

    result = await trio.to_thread.run_sync(
        functools.partial(resolve, [Requirement("app")], [], LINUX, TrioSource())
    )
    assert pinned(result) == {"app": "1.0", "lib": "1.0"}
    assert hops == ["app", "lib"]


def test_metadata_the_look_ahead_parsed_is_parsed_once_for_the_resolver_too() -> None:
    """issue 15: the look-ahead and the resolver read the same bytes; one parse serves both."""
    data = b"Metadata-Version: 2.1\nName: shared\nVersion: 1.0\nRequires-Dist: lib>=2\n"
    ahead = parse_core_metadata(data, sdist=False, where="shared-1.0.whl", ahead=True)
    assert parse_core_metadata(bytes(data), sdist=False, where="shared-1.0.whl") is ahead
    again = parse_core_metadata(data, sdist=False, where="shared-1.0.whl")  # taken: parsed anew
    assert again is not ahead
    assert again == ahead
