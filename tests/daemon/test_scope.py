"""Index strategy: a project comes from exactly the indexes the configuration allows."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given
from hypothesis import strategies as st

from satchel.daemon.resolver.scope import Reason, Strategy, describe_out_of_scope, select_pages
from satchel.daemon.storage.model import FileEntry, ProjectPage


@dataclass(frozen=True)
class Index:
    name: str
    url: str
    explicit: bool = False


def page(
    index: str, project: str = "internal-tool", *versions: str, at: float = 0.0
) -> ProjectPage:
    files = tuple(
        FileEntry(
            filename=f"{project.replace('-', '_')}-{v}-py3-none-any.whl",
            url=f"http://127.0.0.1/{index}/{project}-{v}.whl",
        )
        for v in versions
    )
    return ProjectPage(
        index=index, project=project, url=f"http://127.0.0.1/{index}/{project}/", files=files,
        fetched_at=at,
    )  # fmt: skip


PRIVATE = Index("private", "http://127.0.0.1:1/simple/")
PUBLIC = Index("public", "http://127.0.0.1:2/simple/")
VENDOR = Index("vendor", "http://127.0.0.1:3/simple/", explicit=True)


def test_first_index_uses_only_the_first_index_that_has_the_project() -> None:
    pages = {"private": page("private", "internal-tool", "1.0"), "public": page("public")}
    scoped = select_pages("internal-tool", pages, [PRIVATE, PUBLIC], {})
    assert [p.index for p in scoped.pages] == ["private"]
    assert [(o.index, o.reason) for o in scoped.out_of_scope] == [("public", Reason.SHADOWED)]


def test_first_index_falls_through_to_a_later_index_when_earlier_ones_lack_it() -> None:
    scoped = select_pages("numpy", {"public": page("public", "numpy")}, [PRIVATE, PUBLIC], {})
    assert [p.index for p in scoped.pages] == ["public"]
    assert scoped.out_of_scope == ()


def test_unsafe_best_match_unions_non_explicit_indexes_in_priority_order() -> None:
    pages = {"public": page("public"), "private": page("private"), "vendor": page("vendor")}
    scoped = select_pages(
        "internal-tool", pages, [PRIVATE, PUBLIC, VENDOR], {}, Strategy.UNSAFE_BEST_MATCH
    )
    assert [p.index for p in scoped.pages] == ["private", "public"]
    assert [o.reason for o in scoped.out_of_scope] == [Reason.EXPLICIT_UNPINNED]


def test_a_pin_forces_its_index_even_when_an_earlier_index_has_the_project() -> None:
    pages = {"private": page("private"), "public": page("public")}
    scoped = select_pages("internal-tool", pages, [PRIVATE, PUBLIC], {"internal-tool": "public"})
    assert [p.index for p in scoped.pages] == ["public"]
    assert scoped.out_of_scope[0].reason is Reason.PINNED_ELSEWHERE
    assert scoped.pinned_to == "public"


def test_a_pin_to_an_index_without_the_project_yields_nothing_not_a_fallback() -> None:
    pages = {"private": page("private")}
    scoped = select_pages("internal-tool", pages, [PRIVATE, PUBLIC], {"internal-tool": "public"})
    assert scoped.pages == ()


def test_explicit_index_serves_pinned_projects() -> None:
    pages = {"vendor": page("vendor")}
    scoped = select_pages("internal-tool", pages, [PUBLIC, VENDOR], {"internal-tool": "vendor"})
    assert [p.index for p in scoped.pages] == ["vendor"]


def test_explicit_index_is_ignored_without_a_pin_and_says_how_to_pin() -> None:
    scoped = select_pages("internal-tool", {"vendor": page("vendor", "internal-tool", "2.0")},
                          [PUBLIC, VENDOR], {})  # fmt: skip
    assert scoped.pages == ()
    (hint,) = describe_out_of_scope(scoped)
    assert "explicit index 'vendor' (http://127.0.0.1:3/simple/)" in hint
    assert "satchel index pin internal-tool vendor" in hint
    assert "2.0" in hint


def test_page_from_an_unconfigured_index_is_out_of_scope_with_its_url() -> None:
    pages = {"old-private": page("old-private", "internal-tool", "1.0", at=1700000000.0)}
    scoped = select_pages("internal-tool", pages, [PUBLIC], {})
    assert scoped.pages == ()
    assert scoped.last_seen == 1700000000.0
    (hint,) = describe_out_of_scope(scoped)
    assert "cached from index 'old-private' (http://127.0.0.1/old-private/internal-tool/)" in hint
    assert "not in scope" in hint
    assert "satchel index pin internal-tool old-private" in hint


def test_a_pin_to_an_unconfigured_index_is_explained() -> None:
    scoped = select_pages("internal-tool", {}, [PUBLIC], {"internal-tool": "gone"})
    (hint,) = describe_out_of_scope(scoped)
    assert "pinned to index 'gone', which is not configured" in hint


def test_shadowed_pages_are_not_advertised_in_hints() -> None:
    pages = {"private": page("private"), "public": page("public")}
    scoped = select_pages("internal-tool", pages, [PRIVATE, PUBLIC], {})
    assert describe_out_of_scope(scoped) == []


NAMES = ["a", "b", "c", "d"]


@st.composite
def configurations(draw: st.DrawFn) -> tuple[list[Index], dict[str, ProjectPage], dict[str, str]]:
    configured = draw(st.lists(st.sampled_from(NAMES), unique=True))
    indexes = [Index(n, f"http://127.0.0.1/{n}/", draw(st.booleans())) for n in configured]
    holders = draw(st.lists(st.sampled_from([*NAMES, "gone"]), unique=True))
    pins = {"p": draw(st.sampled_from([*NAMES, "gone"]))} if draw(st.booleans()) else {}
    return indexes, {n: page(n, "p") for n in holders}, pins


@given(configurations(), st.sampled_from(list(Strategy)))
def test_scope_invariants(
    config: tuple[list[Index], dict[str, ProjectPage], dict[str, str]], strategy: Strategy
) -> None:
    indexes, available, pins = config
    scoped = select_pages("p", available, indexes, pins, strategy)
    used = [p.index for p in scoped.pages]
    by_name = {i.name: i for i in indexes}
    # Every page is either used or reported, never both, never lost.
    assert set(used) | {o.index for o in scoped.out_of_scope} == set(available)
    assert not set(used) & {o.index for o in scoped.out_of_scope}
    # Only configured indexes are used, and only in priority order.
    assert all(name in by_name for name in used)
    assert used == [i.name for i in indexes if i.name in used]
    if "p" in pins:
        assert used in ([], [pins["p"]])
    else:
        assert not any(by_name[name].explicit for name in used)
        if strategy is Strategy.FIRST_INDEX:
            assert len(used) <= 1
