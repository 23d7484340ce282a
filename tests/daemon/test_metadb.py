"""The metadata database: pages, core metadata, provenance, blobs, built wheels, state."""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path

import msgspec
import pytest
import trio

from satchel.daemon.errors import DiskFull, SatchelError
from satchel.daemon.storage import metadb
from satchel.daemon.storage._schema import MIGRATIONS, SCHEMA_VERSION
from satchel.daemon.storage.metadb import BuiltWheel, CacheStats, IndexStats, MetaDB, PageKey
from satchel.daemon.storage.model import FileEntry, FileEntryMap, Origin, ProjectPage
from tests.support.tmpfs import small_tmpfs

SHA_A = "a" * 64
SHA_B = "b" * 64
SHA_C = "c" * 64


def page(index: str = "internal", project: str = "internal-tool", **kw: object) -> ProjectPage:
    files = (
        FileEntry.of(
            filename="internal_tool-1.0-py3-none-any.whl",
            url=f"http://127.0.0.1:8000/{index}/internal_tool-1.0-py3-none-any.whl",
            hashes={"sha256": SHA_A},
            requires_python=">=3.9",
            size=1234,
            upload_time="2024-01-01T00:00:00Z",
            core_metadata={"sha256": SHA_B},
        ),
        FileEntry.of(
            filename="internal_tool-0.9.tar.gz",
            url=f"http://127.0.0.1:8000/{index}/internal_tool-0.9.tar.gz",
            yanked=True,
            yanked_reason="broken",
        ),
    )
    fields: dict[str, object] = {
        "index": index,
        "project": project,
        "url": f"http://127.0.0.1:8000/{index}/{project}/",
        "files": files,
        "versions": ("0.9", "1.0"),
        "api_version": "1.1",
        "fetched_at": 1000.5,
        "etag": '"v1"',
        "last_modified": "Mon, 01 Jan 2024 00:00:00 GMT",
        "max_age": 600,
    }
    fields.update(kw)
    return ProjectPage(**fields)  # type: ignore[arg-type]


def origin(index: str, filename: str = "internal_tool-1.0-py3-none-any.whl") -> Origin:
    return Origin(
        index=index,
        project="internal-tool",
        filename=filename,
        url=f"http://127.0.0.1:8000/{index}/{filename}",
    )


@pytest.fixture
def db(tmp_path: Path) -> MetaDB:
    return MetaDB(tmp_path / "meta.sqlite")


# -- schema -------------------------------------------------------------------------------


def test_a_new_file_is_migrated_to_the_current_schema_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "meta.sqlite"
    db = MetaDB(path)
    assert db.schema_version() == SCHEMA_VERSION == len(MIGRATIONS)
    db.close()
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        tables = {row[0] for row in raw.execute("SELECT name FROM sqlite_master")}
    assert {"pages", "core_metadata", "origins", "blobs", "built_wheels", "state"} <= tables


def test_an_existing_empty_file_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "meta.sqlite"
    path.touch()
    db = MetaDB(path)
    assert db.schema_version() == SCHEMA_VERSION
    db.put_state("k", b"v")
    assert db.get_state("k") == b"v"


def test_reopening_does_not_migrate_again_and_keeps_data(tmp_path: Path) -> None:
    path = tmp_path / "meta.sqlite"
    first = MetaDB(path)
    first.put_page(page())
    first.close()
    second = MetaDB(path)
    assert second.get_page("internal", "internal-tool") == page()


def test_pending_migrations_are_applied_in_order_on_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "meta.sqlite"
    MetaDB(path).close()
    extra = ("CREATE TABLE later (x INTEGER)", "INSERT INTO later VALUES (42)")
    monkeypatch.setattr(metadb, "MIGRATIONS", (*MIGRATIONS, extra))
    monkeypatch.setattr(metadb, "SCHEMA_VERSION", SCHEMA_VERSION + 1)

    db = MetaDB(path)

    assert db.schema_version() == SCHEMA_VERSION + 1
    assert db._read("SELECT x FROM later") == [(42,)]


def test_a_failing_migration_leaves_the_previous_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "meta.sqlite"
    MetaDB(path).close()
    broken = ("CREATE TABLE half (x INTEGER)", "THIS IS NOT SQL")
    monkeypatch.setattr(metadb, "MIGRATIONS", (*MIGRATIONS, broken))
    monkeypatch.setattr(metadb, "SCHEMA_VERSION", SCHEMA_VERSION + 1)

    with pytest.raises(SatchelError):
        MetaDB(path)

    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        assert raw.execute("SELECT name FROM sqlite_master WHERE name = 'half'").fetchall() == []


def test_a_newer_schema_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "meta.sqlite"
    with sqlite3.connect(path) as raw:
        raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(SatchelError, match="newer than this satchel understands"):
        MetaDB(path)


def test_a_file_that_is_not_a_database_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "meta.sqlite"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(SatchelError, match=r"meta\.sqlite") as caught:
        MetaDB(path)
    assert "move it aside" in str(caught.value)


# -- pages --------------------------------------------------------------------------------


def test_a_page_round_trips_exactly(db: MetaDB) -> None:
    db.put_page(page())
    assert db.get_page("internal", "internal-tool") == page()
    assert db.get_page("internal", "other") is None
    assert db.get_page("other", "internal-tool") is None


def test_a_big_page_read_back_holds_one_object_per_repeated_value(db: MetaDB) -> None:
    """issue 11.6: 1,000 files stated with the same requires-python, upload time and size
    come back equal to what was stored, and sharing those values (not 1,000 copies of each)."""
    files = tuple(
        FileEntry.of(
            filename=f"big-{i}.0-py3-none-any.whl",
            url=f"https://files.example/big-{i}.0-py3-none-any.whl",
            hashes={"sha256": f"{i:064x}"},
            requires_python=">=3.8",
            upload_time="2024-01-01T00:00:00Z",
            size=123456,
        )
        for i in range(1_000)
    )
    db.put_page(ProjectPage(index="pypi", project="big", url="https://x/simple/big/", files=files))
    page = db.get_page("pypi", "big")
    assert page is not None and page.files == files
    assert len({id(f.requires_python) for f in page.files}) == 1
    assert len({id(f.upload_time) for f in page.files}) == 1
    assert len({id(f.size) for f in page.files}) == 1
    assert len({id(f.sha256) for f in page.files}) == 1_000  # digests are never merged


def test_pages_stored_in_the_layouts_of_before_read_back_whole(tmp_path: Path) -> None:
    """Rows written before `FileEntry` became compact (issue 11.6) hold maps with hash dicts,
    and pages older still hold their files in the ``pages`` column: both read back with every
    hash and the core metadata offer they stated, no migration needed."""
    db = MetaDB(tmp_path / "meta.sqlite")
    stated = page()
    legacy = [msgspec.structs.asdict(FileEntryMap.of(file)) for file in stated.files]
    legacy[0]["hashes"] = {"sha256": SHA_A, "md5": "0" * 32}
    head = msgspec.json.encode({**msgspec.to_builtins(stated), "files": []})
    older = msgspec.json.encode(
        {**msgspec.to_builtins(stated), "project": "older", "files": legacy}
    )
    with sqlite3.connect(tmp_path / "meta.sqlite") as conn:
        for project, data in (("internal-tool", head), ("older", older)):
            conn.execute(
                "INSERT INTO pages VALUES (?, ?, ?, ?, ?, ?, ?)",
                ("internal", project, data, stated.fetched_at, stated.etag, None, None),
            )
        conn.execute(
            "INSERT INTO page_files VALUES (?, ?, ?, ?)",
            ("internal", "internal-tool", 0, msgspec.msgpack.encode(legacy)),
        )
    for project in ("internal-tool", "older"):
        read = db.get_page("internal", project)
        assert read is not None and len(read.files) == 2
        first, second = read.files
        assert first.hashes == {"sha256": SHA_A, "md5": "0" * 32}
        assert first.core_metadata == {"sha256": SHA_B} and first.metadata_sha256 == SHA_B
        assert (first.requires_python, first.size) == (">=3.9", 1234)
        assert second.core_metadata is None and second.yanked_reason == "broken"


def test_put_page_replaces_the_previous_page(db: MetaDB) -> None:
    db.put_page(page())
    newer = page(files=(), versions=(), etag='"v2"', fetched_at=2000.0)
    db.put_page(newer)
    assert db.get_page("internal", "internal-tool") == newer


def test_touch_page_updates_validators_without_changing_files(db: MetaDB) -> None:
    db.put_page(page())
    assert db.touch_page("internal", "internal-tool", 5000.0, '"v9"', None, None) is True
    touched = db.get_page("internal", "internal-tool")
    assert touched == page(fetched_at=5000.0, etag='"v9"', last_modified=None, max_age=None)
    assert db.touch_page("internal", "absent", 1.0, None, None, None) is False


def test_pages_for_project_returns_every_index(db: MetaDB) -> None:
    db.put_page(page("internal"))
    db.put_page(page("public"))
    db.put_page(page("public", "unrelated"))
    assert [p.index for p in db.pages_for_project("internal-tool")] == ["internal", "public"]


def test_pages_for_many_projects_in_one_call(db: MetaDB) -> None:
    db.put_page(page("internal", "a"))
    db.put_page(page("public", "a"))
    db.put_page(page("public", "b"))
    found = db.pages_for_projects(["a", "b", "missing", "a"])
    assert {k: [p.index for p in v] for k, v in found.items()} == {
        "a": ["internal", "public"],
        "b": ["public"],
        "missing": [],
    }
    assert found["a"][0] == page("internal", "a")


def test_page_keys_list_oldest_first(db: MetaDB) -> None:
    db.put_page(page("internal", "b", fetched_at=20.0))
    db.put_page(page("internal", "a", fetched_at=10.0))
    db.put_page(page("public", "c", fetched_at=5.0))
    assert db.page_keys() == [
        PageKey("public", "c", 5.0),
        PageKey("internal", "a", 10.0),
        PageKey("internal", "b", 20.0),
    ]
    assert [k.project for k in db.page_keys("internal")] == ["a", "b"]
    db.delete_page("internal", "a")
    assert [k.project for k in db.page_keys("internal")] == ["b"]


# -- core metadata ------------------------------------------------------------------------


def test_core_metadata_by_sha256_and_by_index_and_filename(db: MetaDB) -> None:
    data = b"Metadata-Version: 2.1\nName: internal-tool\nVersion: 1.0\n"
    db.put_core_metadata(SHA_A, data, index="internal", filename="internal_tool-1.0.whl")
    assert db.get_core_metadata(SHA_A) == data
    assert db.get_core_metadata(SHA_A.upper()) == data
    assert db.get_core_metadata(index="internal", filename="internal_tool-1.0.whl") == data
    assert db.get_core_metadata(index="public", filename="internal_tool-1.0.whl") is None
    assert db.get_core_metadata(SHA_C) is None


def test_core_metadata_of_many_files_in_one_call(db: MetaDB) -> None:
    db.put_core_metadata(SHA_A, b"MA", index="i", filename="a.whl")
    db.put_core_metadata(SHA_B, b"MB", index="i", filename="b.whl")
    assert db.core_metadata_many([SHA_A, SHA_B.upper(), SHA_C]) == {SHA_A: b"MA", SHA_B: b"MB"}


def test_core_metadata_without_a_hash_is_found_by_name_only(db: MetaDB) -> None:
    db.put_core_metadata(None, b"M1", index="links", filename="x-1.0.whl")
    assert db.get_core_metadata(index="links", filename="x-1.0.whl") == b"M1"
    assert db.get_core_metadata(SHA_A, index="links", filename="x-1.0.whl") == b"M1"
    assert db.get_core_metadata(SHA_A) is None


# -- provenance ---------------------------------------------------------------------------


def test_one_file_served_by_two_indexes_keeps_both_origins(db: MetaDB) -> None:
    db.add_origin(SHA_A, origin("internal"), at=100.0)
    db.add_origin(SHA_A, origin("mirror"), at=200.0)
    db.add_origin(SHA_A, origin("internal"), at=300.0)

    assert db.origins(SHA_A) == [origin("internal"), origin("mirror")]
    seen = db.origins_seen(SHA_A)
    assert [(s.origin.index, s.first_seen, s.last_seen) for s in seen] == [
        ("internal", 100.0, 300.0),
        ("mirror", 200.0, 200.0),
    ]
    assert db.origins(SHA_B) == []


# -- blobs --------------------------------------------------------------------------------


def test_a_blob_and_its_origin_are_recorded_together(db: MetaDB) -> None:
    db.record_blob(SHA_A, 10, "a.whl", origin=origin("internal", "a.whl"), at=100.0)
    db.record_blob(SHA_A, 10, "a.whl", origin=origin("mirror", "a.whl"), at=200.0)
    assert db.blob_rows() == {SHA_A: 10}
    assert [o.index for o in db.origins(SHA_A)] == ["internal", "mirror"]


def test_blob_rows_track_use_and_are_forgotten(db: MetaDB) -> None:
    db.record_blob(SHA_A, 10, "a.whl", at=100.0)
    db.record_blob(SHA_B, 20, "b.whl", at=50.0)
    db.mark_used([SHA_A], at=40.0)  # never moves last_used backwards
    db.mark_used([SHA_B], at=300.0)
    assert db.lru_blobs(10) == [(SHA_A, 10, 100.0), (SHA_B, 20, 300.0)]
    db.record_blob(SHA_A, 10, "a.whl", at=400.0)
    assert db.lru_blobs(1) == [(SHA_B, 20, 300.0)]
    assert db.blob_filenames([SHA_B, SHA_C]) == {SHA_B: "b.whl"}
    db.forget_blob(SHA_B)
    assert db.blob_rows() == {SHA_A: 10}


def test_reconcile_blobs_adds_unrecorded_and_drops_missing(db: MetaDB) -> None:
    db.record_blob(SHA_A, 10, "a.whl")
    db.record_blob(SHA_B, 20, "gone.whl")
    db.add_origin(SHA_C, origin("internal", "c-1.0.whl"))

    assert db.reconcile_blobs({SHA_A: 10, SHA_C: 30}) == (1, 1)

    assert db.blob_rows() == {SHA_A: 10, SHA_C: 30}
    assert db.reconcile_blobs({SHA_A: 10, SHA_C: 30}) == (0, 0)
    assert db.stats().indexes == (IndexStats("internal", 0, 1, 30),)


# -- built wheels and state ---------------------------------------------------------------


def test_built_wheels_are_keyed_by_sdist_and_interpreter_tag(db: MetaDB) -> None:
    db.put_built_wheel(SHA_A, "cp311", SHA_B, "x-1.0-py3-none-any.whl")
    built = db.get_built_wheel(SHA_A, "cp311")
    assert isinstance(built, BuiltWheel)
    assert (built.wheel_sha256, built.filename) == (SHA_B, "x-1.0-py3-none-any.whl")
    assert db.get_built_wheel(SHA_A, "cp312") is None


def test_state_values_round_trip(db: MetaDB) -> None:
    assert db.get_state("watch:/p") is None
    db.put_state("watch:/p", b'{"last": 1}')
    db.put_state("watch:/p", b'{"last": 2}')
    assert db.get_state("watch:/p") == b'{"last": 2}'
    db.delete_state("watch:/p")
    assert db.get_state("watch:/p") is None


# -- statistics ---------------------------------------------------------------------------


def test_stats_count_each_blob_once_in_totals_and_per_index(db: MetaDB) -> None:
    db.put_page(page("internal"))
    db.put_page(page("mirror"))
    db.put_page(page("mirror", "other"))
    db.record_blob(SHA_A, 100, "a.whl")
    db.add_origin(SHA_A, origin("internal"))
    db.add_origin(SHA_A, origin("mirror"))
    db.add_origin(SHA_A, origin("mirror", "renamed.whl"))  # same index twice: counted once
    db.record_blob(SHA_B, 50, "b.whl")
    db.add_origin(SHA_B, origin("mirror", "b.whl"))
    db.record_blob(SHA_C, 7, "built.whl")  # no origin: a wheel we built
    db.put_core_metadata(SHA_A, b"m", index="internal", filename="a.whl")
    db.put_built_wheel(SHA_B, "cp311", SHA_C, "built.whl")

    assert db.stats() == CacheStats(
        blobs=3,
        bytes=157,
        pages=3,
        core_metadata=1,
        built_wheels=1,
        unattributed_blobs=1,
        indexes=(IndexStats("internal", 1, 1, 100), IndexStats("mirror", 2, 2, 150)),
    )


def test_stats_of_an_empty_database(db: MetaDB) -> None:
    assert db.stats() == CacheStats(0, 0, 0, 0, 0, 0, ())


def test_a_full_disk_is_diskfull_and_the_database_stays_usable(tmp_path: Path) -> None:
    with small_tmpfs(tmp_path / "small", "512k") as root:
        db = MetaDB(root / "meta.sqlite")
        db.record_blob(SHA_A, 1, "a.whl")
        huge = os.urandom(2 * 1024 * 1024)

        with pytest.raises(DiskFull, match="no space left"):
            db.put_state("huge", huge)

        assert db.get_state("huge") is None
        assert db.blob_rows() == {SHA_A: 1}
        db.record_blob(SHA_B, 2, "b.whl")
        db.close()
        assert MetaDB(root / "meta.sqlite").blob_rows() == {SHA_A: 1, SHA_B: 2}


# -- concurrency --------------------------------------------------------------------------


def test_concurrent_writers_and_readers_from_threads(db: MetaDB) -> None:
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(20):
                sha = f"{n:02x}{i:02x}".ljust(64, "0")
                db.record_blob(sha, i, f"f{n}-{i}.whl")
                db.add_origin(sha, origin(f"index{n % 3}", f"f{n}-{i}.whl"))
                db.put_page(page(f"index{n % 3}", f"p{n}-{i}"))
                assert db.get_page(f"index{n % 3}", f"p{n}-{i}") is not None
                db.stats()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    stats = db.stats()
    assert (stats.blobs, stats.pages) == (120, 120)


async def test_calls_through_trio_worker_threads(db: MetaDB) -> None:
    async def record(n: int) -> None:
        await trio.to_thread.run_sync(db.record_blob, f"{n:064x}", n, f"{n}.whl")

    async with trio.open_nursery() as nursery:
        for n in range(10):
            nursery.start_soon(record, n)
    assert len(await trio.to_thread.run_sync(db.blob_rows)) == 10


def test_a_failed_transaction_is_rolled_back(db: MetaDB) -> None:
    db.record_blob(SHA_A, 1, "a.whl")
    with pytest.raises(RuntimeError), db._write() as conn:
        conn.execute("DELETE FROM blobs")
        raise RuntimeError("abort")
    assert db.blob_rows() == {SHA_A: 1}
