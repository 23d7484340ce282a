"""Page and metadata writes queued for the metadb's next transaction (`MetaDB.put_page_soon`,
`put_core_metadata_soon`, issue 15): every read and write sees them, a durable commit makes
them durable, a replacement made later is never undone by them, and what does not fit is
refused (the caller writes it at once, as before)."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import msgspec
import pytest

from satchel.daemon.storage import _soon
from satchel.daemon.storage.metadb import MetaDB
from satchel.daemon.storage.model import FileEntry
from tests.daemon.test_metadb import SHA_A, SHA_B, page


@pytest.fixture
def db(tmp_path: Path) -> MetaDB:
    return MetaDB(tmp_path / "meta.sqlite")


def test_a_queued_page_is_what_every_read_finds(db: MetaDB) -> None:
    queued = page()
    assert db.put_page_soon(queued)
    assert db.has_page("internal", "internal-tool")
    assert db.get_page("internal", "internal-tool") == queued
    assert db.pages_for_project("internal-tool") == [queued]


def test_a_queued_page_moves_the_generation_at_once(db: MetaDB) -> None:
    """Whoever derives from the database (the local index's rendered pages) sees it moved
    before the write is made, so it reads again, and its read makes the write first."""
    before = db.generation
    assert db.put_page_soon(page())
    assert db.generation > before
    seen = db.generation
    assert db.get_page("internal", "internal-tool") is not None
    assert db.generation >= seen


def test_queued_metadata_is_found_by_sha256_and_by_name(db: MetaDB) -> None:
    assert db.put_core_metadata_soon(SHA_B, b"Metadata-Version: 2.1\n", index="i", filename="f")
    assert db.put_core_metadata_soon(None, b"no hash\n", index="i", filename="g")
    assert db.get_core_metadata(SHA_B) == b"Metadata-Version: 2.1\n"
    assert db.get_core_metadata(index="i", filename="f") == b"Metadata-Version: 2.1\n"
    assert db.get_core_metadata(index="i", filename="g") == b"no hash\n"


def test_a_replacement_written_later_is_not_undone_by_a_queued_write(db: MetaDB) -> None:
    """The wheel's own METADATA replaces what was read ahead of it (issue 11.5): the queued
    index version is written first, whatever thread writes next."""
    assert db.put_core_metadata_soon(SHA_A, b"the index's\n", index="i", filename="w.whl")
    db.put_core_metadata(SHA_A, b"the wheel's own\n", index="i", filename="w.whl")
    assert db.get_core_metadata(SHA_A) == b"the wheel's own\n"
    assert db.get_core_metadata(index="i", filename="w.whl") == b"the wheel's own\n"


def test_a_durable_commit_makes_queued_writes_durable_with_it(tmp_path: Path) -> None:
    """A prefetch's settle (`mark_used(durable=True)`) commits what waits first: a database
    opened afresh after it finds them (the process that queued them is gone)."""
    path = tmp_path / "meta.sqlite"
    first = MetaDB(path)
    assert first.put_page_soon(page())
    assert first.put_core_metadata_soon(SHA_B, b"meta\n", index="internal", filename="x.whl")
    first.mark_used([SHA_A], durable=True)
    second = MetaDB(path)
    assert second.get_page("internal", "internal-tool") == page()
    assert second.get_core_metadata(SHA_B) == b"meta\n"


def test_closing_the_database_writes_what_waits(tmp_path: Path) -> None:
    path = tmp_path / "meta.sqlite"
    first = MetaDB(path)
    assert first.put_page_soon(page())
    first.close()
    assert MetaDB(path).get_page("internal", "internal-tool") == page()


def test_what_does_not_fit_is_refused_for_the_caller_to_write_at_once(db: MetaDB) -> None:
    big = page(
        files=tuple(
            FileEntry.of(filename=f"t-1.{n}.tar.gz", url=f"http://127.0.0.1:8000/t-1.{n}.tar.gz")
            for n in range(_soon.MAX_PAGE_FILES + 1)
        )
    )
    assert not db.put_page_soon(big)
    for n in range(_soon.MAX_WAITING):
        assert db.put_page_soon(page(project=f"p{n}"))
    assert not db.put_page_soon(page(project="one-too-many"))
    assert not db.put_core_metadata_soon(SHA_A, b"m", index="i", filename="f")
    assert db.has_page("internal", f"p{_soon.MAX_WAITING - 1}")  # written: room again
    assert not db.has_page("internal", "one-too-many")
    assert db.put_core_metadata_soon(SHA_A, b"m", index="i", filename="f")


def test_a_queued_write_that_fails_is_logged_and_lost_and_the_reader_goes_on(
    db: MetaDB, caplog: pytest.LogCaptureFixture
) -> None:
    """Only cache waits: a write that fails costs a fetch later, never the caller's read."""
    bad = msgspec.structs.replace(page(), project="broken")

    def fails(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO no_such_table VALUES (1)")

    assert db.put_page_soon(bad)
    assert db._soon.add(fails)
    with caplog.at_level(logging.WARNING):
        assert db.get_page("internal", "internal-tool") is None
    assert "2 cached page or metadata write(s) lost" in caplog.text
    assert not db.has_page("internal", "broken")  # rolled back with the failed one
    db.put_page(page())
    assert db.get_page("internal", "internal-tool") == page()


def test_a_queued_page_no_sqlite_integer_holds_fails_no_other_caller(
    db: MetaDB, caplog: pytest.LogCaptureFixture
) -> None:
    """An index's ``Cache-Control: max-age`` of 20 digits is parsed as is; writing it raises
    `OverflowError` (not a `sqlite3.Error`). Queued, it is logged and lost like any failed
    queued write: the binding, read or answer that takes the lock next goes on."""
    huge = msgspec.structs.replace(page(), project="huge-max-age", max_age=10**20)
    assert db.put_page_soon(huge)
    with caplog.at_level(logging.WARNING):
        assert db.get_page("internal", "internal-tool") is None
    assert "1 cached page or metadata write(s) lost" in caplog.text
    assert not db.has_page("internal", "huge-max-age")
    db.put_page(page())
    assert db.get_page("internal", "internal-tool") == page()


def test_a_write_queued_while_a_transaction_is_open_waits_for_the_next_taker_of_the_lock(
    db: MetaDB,
) -> None:
    """The event loop queues at any moment, also while a worker thread holds the lock with a
    transaction open (a settle: `Origins.durable_with`). A read or write nested in that
    transaction writes nothing queued: a queued write that fails must neither fail it nor
    roll it back, and one that works is written by the next taker of the lock."""

    def fails(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO no_such_table VALUES (1)")

    with db._write() as conn:
        conn.execute("INSERT INTO state VALUES ('mine', x'01', 0)")
        assert db._soon.add(fails)
        assert db.get_state("mine") == b"\x01"  # nested: flushes nothing
    assert db.get_state("mine") == b"\x01"  # committed
    assert db.put_page_soon(page())
    with db._write():
        assert db.has_page("internal", "internal-tool")  # written when the lock was taken
