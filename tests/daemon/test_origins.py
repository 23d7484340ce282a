"""Project origins: a project stays bound to the index that first served it (issue 12).

`judge` is pure (what a scoped answer means for a stored binding); `Origins` stores bindings in
the real metadb; `degrades` decides when a fresh page may not replace the stored one.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from satchel.daemon.indexes.catalog import degrades
from satchel.daemon.indexes.origins import Binding, How, Origins, Verdict, index_identity, judge
from satchel.daemon.resolver.scope import ScopedPages, Strategy, select_pages
from satchel.daemon.storage._schema import SCHEMA_VERSION
from satchel.daemon.storage.metadb import MetaDB
from satchel.daemon.storage.model import FileEntry, ProjectPage
from tests.support.waiting import second_call_waits_for_the_first


@dataclass(frozen=True)
class Index:
    name: str
    url: str
    explicit: bool = False


PRIVATE = Index("private", "http://127.0.0.1:1/simple/")
PUBLIC = Index("public", "http://127.0.0.1:2/simple/")


def page(index: str, *versions: str, project: str = "internal-tool") -> ProjectPage:
    files = tuple(
        FileEntry(
            filename=f"{project.replace('-', '_')}-{v}-py3-none-any.whl",
            url=f"http://127.0.0.1/{index}/{project}-{v}.whl",
        )
        for v in versions
    )
    return ProjectPage(
        index=index, project=project, url=f"http://127.0.0.1/{index}/{project}/", files=files
    )


def bound_to(index: Index, *absent: Index, how: How = How.FIRST_USE) -> Binding:
    return Binding(
        project="internal-tool",
        url=index_identity(index.url),
        index=index.name,
        how=how,
        bound_at=1.0,
        absent=tuple(index_identity(i.url) for i in absent),
    )


def scoped(
    indexes: list[Index], *pages: ProjectPage, pins: dict[str, str] | None = None
) -> ScopedPages:
    return select_pages(
        "internal-tool", {p.index: p for p in pages}, indexes, pins or {}, Strategy.FIRST_INDEX
    )


def first_use(*pages: ProjectPage, missing: tuple[str, ...] = (), online: bool = True) -> Verdict:
    """What [PRIVATE, PUBLIC] serving *pages* means for a project never seen before."""
    indexes = [PRIVATE, PUBLIC]
    return judge(
        scoped(indexes, *pages), None, indexes, Strategy.FIRST_INDEX, missing=missing, online=online
    )


@pytest.mark.parametrize(
    ("url", "identity"),
    [
        ("http://127.0.0.1:1/simple", "http://127.0.0.1:1/simple/"),
        ("HTTPS://User:Secret@Packages.Example.COM:443/simple//", "https://packages.example.com/simple/"),
        ("https://packages.example.com:8443/simple/?token=x#f", "https://packages.example.com:8443/simple/"),
        ("http://[::1]:80/simple/", "http://[::1]/simple/"),
    ],
)  # fmt: skip
def test_an_index_is_identified_by_its_url_without_credentials(url: str, identity: str) -> None:
    assert index_identity(url) == identity


def test_first_use_binds_and_records_the_indexes_that_said_not_here() -> None:
    verdict = first_use(page("public", "2.0"), missing=("private",))
    assert verdict.refuse is None
    assert verdict.bind is not None
    assert (verdict.bind.url, verdict.bind.index, verdict.bind.how) == (
        "http://127.0.0.1:2/simple/",
        "public",
        How.FIRST_USE,
    )
    assert verdict.absent == ("http://127.0.0.1:1/simple/",)


def test_offline_answers_are_checked_but_never_bind() -> None:
    indexes = [PRIVATE, PUBLIC]
    verdict = first_use(page("public", "2.0"), online=False)
    assert verdict.bind is None and verdict.refuse is None
    refused = judge(
        scoped(indexes, page("public", "9.9.0")),
        bound_to(PRIVATE),
        indexes,
        Strategy.FIRST_INDEX,
        online=False,
    )
    assert refused.refuse is not None


def test_the_same_index_under_a_new_name_keeps_its_binding() -> None:
    renamed = Index("corp", PRIVATE.url.rstrip("/"))
    verdict = judge(
        scoped([renamed, PUBLIC], page("corp", "1.0.0")),
        bound_to(PRIVATE),
        [renamed, PUBLIC],
        Strategy.FIRST_INDEX,
        online=True,
    )
    assert verdict.refuse is None and verdict.bind is None


@pytest.mark.parametrize(
    ("indexes", "missing", "reason", "why"),
    [
        ([PRIVATE, PUBLIC], ["private"], "not-found", "now answers 'not found'"),
        ([PUBLIC], [], "not-configured", "no longer configured"),
        ([Index("private", PRIVATE.url, True), PUBLIC], [], "explicit-unpinned", "explicit"),
        ([PUBLIC, PRIVATE], [], "shadowed", "now behind index 'public'"),
    ],
)  # fmt: skip
def test_another_index_is_refused_naming_both_and_the_way_out(
    indexes: list[Index], missing: list[str], reason: str, why: str
) -> None:
    stored = [page("private", "1.0.0")]
    verdict = judge(
        scoped(indexes, page("public", "9.9.0")),
        bound_to(PRIVATE),
        indexes,
        Strategy.FIRST_INDEX,
        missing=missing,
        online=True,
        cached=stored,
    )
    error = verdict.refuse
    assert error is not None and verdict.bind is None
    assert error.code == "origin-changed"
    assert error.details["reason"] == reason
    assert error.details["bound"]["versions"] == ["1.0.0"]
    assert error.details["offered"]["versions"] == ["9.9.0"]
    assert why in error.message
    assert "satchel origins trust internal-tool public" in error.message
    assert "satchel index pin internal-tool public" in error.message
    assert "unsafe-best-match" in error.message


def test_unsafe_best_match_neither_checks_nor_binds() -> None:
    indexes = [PRIVATE, PUBLIC]
    unsafe = Strategy.UNSAFE_BEST_MATCH
    answer = select_pages("internal-tool", {"public": page("public", "9.9.0")}, indexes, {}, unsafe)
    verdict = judge(answer, bound_to(PRIVATE), indexes, Strategy.UNSAFE_BEST_MATCH, online=True)
    assert verdict.refuse is None and verdict.bind is None


def test_a_pin_is_the_users_word_and_moves_the_binding() -> None:
    indexes = [PRIVATE, PUBLIC]
    answer = scoped(indexes, page("public", "9.9.0"), pins={"internal-tool": "public"})
    verdict = judge(answer, bound_to(PRIVATE), indexes, Strategy.FIRST_INDEX, online=True)
    assert verdict.refuse is None
    assert verdict.bind is not None and verdict.bind.how is How.PIN
    assert verdict.bind.url == "http://127.0.0.1:2/simple/"


def test_bindings_are_stored_and_a_first_use_never_overwrites_one(tmp_path: Path) -> None:
    db = MetaDB(tmp_path / "meta.db")
    origins = Origins(db)
    origins.apply(first_use(page("public", "2.0"), missing=("private",)), "internal-tool")
    stored = origins.get("internal-tool")
    assert stored is not None
    assert (stored.index, stored.absent) == ("public", ("http://127.0.0.1:1/simple/",))

    origins.apply(first_use(page("private", "1.0")), "internal-tool")  # a racing request
    assert origins.get("internal-tool") == stored

    trusted = origins.trust("internal-tool", PRIVATE)
    assert origins.get("internal-tool") == trusted
    assert trusted.how is How.TRUST
    assert [b.project for b in origins.all()] == ["internal-tool"]
    assert origins.forget("internal-tool") and origins.get("internal-tool") is None
    assert not origins.forget("internal-tool")


def test_trusting_an_index_clears_its_not_here_record(tmp_path: Path) -> None:
    origins = Origins(MetaDB(tmp_path / "meta.db"))
    origins.apply(first_use(page("public", "2.0"), missing=("private",)), "internal-tool")
    trusted = origins.trust("internal-tool", PRIVATE)
    stored = origins.get("internal-tool")
    assert stored is not None and stored.url == trusted.url and stored.absent == ()


def test_a_database_from_before_origins_is_migrated_in_place(tmp_path: Path) -> None:
    path = tmp_path / "meta.db"
    MetaDB(path).close()
    with sqlite3.connect(path) as raw:
        raw.execute("DROP TABLE project_origins")
        raw.execute("DROP TABLE project_absent")
        raw.execute("DROP TABLE page_files")  # added by a later migration
        raw.execute("PRAGMA user_version = 1")
    db = MetaDB(path)
    assert db.schema_version() == SCHEMA_VERSION
    assert Origins(db).get("internal-tool") is None


def test_a_page_listing_none_of_the_stored_files_degrades_it() -> None:
    stored = page("private", "1.0", "1.1")
    assert degrades(stored, page("private"))  # a portal: no file links at all
    assert degrades(stored, page("private", "6.6.6"))  # nothing in common
    assert not degrades(stored, page("private", "1.1", "1.2"))  # an index moving on
    assert not degrades(page("private"), page("private"))  # nothing stored to lose


def _durable_mark(db: MetaDB) -> bytes | None:
    return db.get_state("bindings-durable")


def test_a_first_use_is_committed_at_once_and_owed_durable_until_the_answer(
    tmp_path: Path,
) -> None:
    """issue 15: a first use is committed (every reader sees it) without a WAL sync of its
    own; `make_durable`, which every answer waits for, syncs once for all owed so far."""
    db = MetaDB(tmp_path / "meta.db")
    origins = Origins(db)
    assert not origins.owed()
    origins.apply(first_use(page("public", "2.0")), "internal-tool")
    origins.apply(first_use(page("public", "1.0")), "other-tool")
    assert origins.get("internal-tool") is not None and origins.owed()
    origins.make_durable()
    assert not origins.owed() and _durable_mark(db) == b"2"
    origins.make_durable()  # nothing owed: no commit at all
    assert _durable_mark(db) == b"2"


def test_the_users_word_is_durable_at_once(tmp_path: Path) -> None:
    db = MetaDB(tmp_path / "meta.db")
    origins = Origins(db)
    origins.trust("internal-tool", PRIVATE)
    origins.apply(Verdict(bind=bound_to(PUBLIC, how=How.PIN)), "internal-tool")
    assert not origins.owed() and _durable_mark(db) is None


def _wal_size(db: MetaDB) -> int:
    return db.path.with_name(db.path.name + "-wal").stat().st_size


def test_a_durable_commit_of_the_caller_covers_the_bindings_before_it(tmp_path: Path) -> None:
    """A prefetch's settle is a durable commit: its answer needs no second sync. Even when
    it changes no row (the files it marks used have no row: gone since), it writes, so that
    it syncs: SQLite syncs nothing for a commit without a change, and the binding would be
    taken for durable while it is not."""
    db = MetaDB(tmp_path / "meta.db")
    origins = Origins(db)
    origins.apply(first_use(page("public", "2.0")), "internal-tool")
    before = _wal_size(db)
    origins.durable_with(lambda: db.mark_used(["a" * 64], durable=True))
    assert not origins.owed() and _durable_mark(db) == b"1"
    assert _wal_size(db) > before  # the durable commit wrote, and so synced
    origins.make_durable()  # nothing owed: no second commit
    assert _durable_mark(db) == b"1"


def test_make_durable_returns_only_once_a_sync_under_way_covered_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two answers at once: the second must not go out while the first is still syncing the
    binding both rely on."""
    db = MetaDB(tmp_path / "meta.db")
    origins = Origins(db)
    origins.apply(first_use(page("public", "2.0")), "internal-tool")
    syncing, release = threading.Event(), threading.Event()
    real = db._write

    @contextlib.contextmanager
    def slow(**kwargs: bool) -> Iterator[sqlite3.Connection]:
        with real(**kwargs) as conn:
            yield conn
            syncing.set()
            release.wait(30)

    monkeypatch.setattr(db, "_write", slow)
    second_call_waits_for_the_first(
        origins.make_durable,
        syncing,
        release,
        "answered while the binding was not durable yet",
        owner=origins,
    )
    assert not origins.owed()
