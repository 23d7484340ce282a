"""The metadata database: what the indexes told us and where every stored file came from.

SQLite (stdlib `sqlite3`) in WAL mode, one file beside the blob store. It holds:

- ``pages`` and ``page_files``: each parsed `ProjectPage` per (index, project), so a page read
  back is exactly the page parsed (the row format: `satchel.daemon.storage._pagerows`);
- ``core_metadata`` / ``core_metadata_names``: PEP 658 metadata files, keyed by the distribution
  file's sha256, and reachable by (index, filename) when the index gave no hash;
- ``origins``: provenance, sha256 -> every (index, project, filename, url) that served it, with
  first/last seen. A file served by two indexes is one blob with two origins;
- ``blobs``: one row per committed blob (size, filename, added_at, last_used) for `cache info` and
  least-recently-used garbage collection;
- ``built_wheels``: (sdist sha256, interpreter tag) -> the wheel built from it;
- ``state``: a small key/value table for daemon state (last prefetch per watched project, ...);
- ``project_origins`` / ``project_absent``: which index each project is bound to, and which
  indexes said "not here" for it (code in `satchel.daemon.indexes.origins`).

Threading: the API is synchronous and every method is one short transaction behind a lock, on one
connection shared by all threads. Call it from trio through ``trio.to_thread.run_sync`` so a slow
fsync never stalls the event loop; never hold a result cursor across calls.

Crash safety: WAL keeps the file consistent through ``kill -9`` at any instant. Commits that
reference blobs (blob rows, origins, built wheels) are made durable (``synchronous=FULL``; a
batch of downloads: by its last commit), after `BlobStore.ingest` has committed the blob.
Page and metadata writes use ``synchronous=NORMAL``: losing the last few on power loss only costs
a refetch. `reconcile_blobs` repairs the one window left (crash between blob commit and row
write, or between blob removal and row deletion) at start-up.

Schema evolution: ``PRAGMA user_version`` is the number of migrations applied
(`satchel.daemon.storage._schema`).
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import msgspec

from satchel.daemon.errors import DiskFull, SatchelError
from satchel.daemon.storage._cachestats import CacheStats, IndexStats, cache_stats
from satchel.daemon.storage._pagerows import read_page, write_page
from satchel.daemon.storage._schema import MIGRATIONS, SCHEMA_VERSION
from satchel.daemon.storage._soon import MAX_PAGE_FILES, FlushingLock, SoonWrites, write_cmd
from satchel.daemon.storage.model import Origin, ProjectPage

__all__ = [
    "BuiltWheel",
    "CacheStats",
    "IndexStats",
    "MetaDB",
    "OriginSeen",
    "PageKey",
]

#: A writer waits this long for a lock held by another process (e.g. `sqlite3` opened by a user)
#: before failing; inside the daemon the Python lock already serialises access.
_BUSY_TIMEOUT_S = 5.0


class PageKey(msgspec.Struct, frozen=True):
    """A stored page's identity and age, for background revalidation."""

    index: str
    project: str
    fetched_at: float


class OriginSeen(msgspec.Struct, frozen=True):
    """An origin with when it first and last served the file."""

    origin: Origin
    first_seen: float
    last_seen: float


class BuiltWheel(msgspec.Struct, frozen=True):
    """A wheel Satchel built from an sdist for one interpreter tag."""

    sdist_sha256: str
    interpreter_tag: str
    wheel_sha256: str
    filename: str
    built_at: float


class MetaDB:
    """The metadata database at *path* (created and migrated on open).

    Every method is synchronous, short and thread-safe; from trio use
    ``await trio.to_thread.run_sync(db.method, ...)``.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        #: Page and metadata writes waiting for the next transaction (`put_page_soon`).
        self._soon = SoonWrites()
        #: Reentrant so that writes inside `batch` join its transaction; whoever takes it
        #: first writes what `_soon` holds.
        self._lock = FlushingLock(self._flush)
        #: Bumped after every write transaction that may change what a page shows (pages,
        #: origins and bindings, blobs, core metadata; not a 304's validators nor last-used
        #: times): whoever derives something from the database (the local index's rendered
        #: pages, the offline scopes of `satchel.daemon.indexes._offlinescope`) reads it before
        #: reading, and derives again when it moved. Bumped after the commit, so a reader that
        #: read before it sees the old value; a read without the lock sees the old or the new
        #: value, and either only makes a reader derive once more.
        self.generation = 0
        try:
            self._conn = sqlite3.connect(
                self.path,
                timeout=_BUSY_TIMEOUT_S,
                isolation_level=None,  # transactions are explicit (BEGIN IMMEDIATE)
                check_same_thread=False,  # shared by worker threads, serialised by self._lock
            )
            # 0600 before the -wal and -shm files exist: SQLite gives them the database file's
            # mode, and all three hold private index URLs and pages (issue 11.2).
            self.path.chmod(0o600)
        except (sqlite3.Error, OSError) as exc:
            raise SatchelError(f"cannot open the cache database {self.path}: {exc}") from exc
        try:
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute("PRAGMA synchronous = NORMAL")
            self._conn.execute("PRAGMA foreign_keys = ON")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            raise SatchelError(
                f"the cache database {self.path} is unreadable ({exc}); move it aside and "
                "restart the daemon to rebuild it (downloaded files are kept)",
                details={"path": str(self.path)},
            ) from exc

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # -- plumbing ---------------------------------------------------------------------------

    def _migrate(self) -> None:
        with self._lock:
            version = self._conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise SatchelError(
                    f"the cache database {self.path} has schema version {version}, newer than "
                    f"this satchel understands ({SCHEMA_VERSION}); upgrade satchel",
                    details={"path": str(self.path), "version": version},
                )
            for target in range(version + 1, SCHEMA_VERSION + 1):
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    for statement in MIGRATIONS[target - 1]:
                        self._conn.execute(statement)
                    self._conn.execute(f"PRAGMA user_version = {int(target)}")
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
                self._conn.execute("COMMIT")

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Run the writes inside as one durable transaction (a rebuild: one fsync, not 10^4).

        Other threads wait for the whole batch; use it only where nothing else runs yet.
        """
        with self._write(durable=True):
            yield

    @contextlib.contextmanager
    def _write(self, *, durable: bool = False, shown: bool = True) -> Iterator[sqlite3.Connection]:
        """One write transaction; *durable* commits with ``synchronous=FULL``; *shown*: it may
        change what a page shows (then `generation` moves)."""
        with self._lock:
            if self._conn.in_transaction:  # inside `batch` (we hold the lock): join it
                yield self._conn
                return
            if durable:
                self._conn.execute("PRAGMA synchronous = FULL")
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    yield self._conn
                    self._conn.execute("COMMIT")
                except BaseException as exc:
                    if self._conn.in_transaction:
                        self._conn.execute("ROLLBACK")
                    if isinstance(exc, sqlite3.OperationalError) and "full" in str(exc):
                        raise DiskFull(
                            f"no space left on device while writing the cache database {self.path}",
                            details={"path": str(self.path)},
                        ) from exc
                    raise
            finally:
                if shown:  # after the commit: a reader that saw the old value derives again
                    self.generation += 1
                if durable:
                    self._conn.execute("PRAGMA synchronous = NORMAL")

    def _flush(self) -> None:
        """Write what waits in `_soon` (the lock held; a failure is logged and drops it)."""
        if self._soon.write_all(self._conn):
            self.generation += 1

    def _soon_or_now(self, write: Callable[[sqlite3.Connection], None]) -> bool:
        """Queue a cache *write* for the next transaction; False when it must be made now."""
        if not self._soon.add(write):
            return False
        self.generation += 1  # what a page shows may change: derive again (and so flush)
        return True

    def _read(self, sql: str, params: Sequence[object] = ()) -> list[Any]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def schema_version(self) -> int:
        return int(self._read("PRAGMA user_version")[0][0])

    # -- project pages ----------------------------------------------------------------------

    def put_page(self, page: ProjectPage) -> None:
        """Store (or replace) the page of (page.index, page.project)."""
        with self._write() as conn:
            write_page(conn, page)

    def put_page_soon(self, page: ProjectPage) -> bool:
        """`put_page` in the next transaction, whoever makes it (`_soon`; any thread, no I/O);
        False when it was not queued (too many files, or no room): call `put_page`."""
        if len(page.files) > MAX_PAGE_FILES:
            return False
        return self._soon_or_now(lambda conn: write_page(conn, page))

    def get_page(self, index: str, project: str) -> ProjectPage | None:
        with self._lock:
            rows = self._conn.execute(
                "SELECT idx, project, page, fetched_at, etag, last_modified, max_age FROM pages "
                "WHERE idx = ? AND project = ?",
                (index, project),
            ).fetchall()
            return self._decode_page(rows[0]) if rows else None

    def has_page(self, index: str, project: str) -> bool:
        """Whether a page of (index, project) is stored (without reading it)."""
        query = "SELECT 1 FROM pages WHERE idx = ? AND project = ?"
        return bool(self._read(query, (index, project)))

    def pages_for_project(self, project: str, skip: Iterable[str] = ()) -> list[ProjectPage]:
        """Every index's page for *project*, ordered by index name (callers apply priority),
        except those of the indexes in *skip* (pages the caller holds already: a big page is
        not decoded twice)."""
        skipped = set(skip)
        pages: list[ProjectPage] = []
        for (index,) in self._read(
            "SELECT idx FROM pages WHERE project = ? ORDER BY idx", (project,)
        ):
            page = self.get_page(index, project) if index not in skipped else None
            if page is not None:
                pages.append(page)
        return pages

    def pages_for_projects(self, projects: Iterable[str]) -> dict[str, list[ProjectPage]]:
        """`pages_for_project` for many projects in one call (one thread hop for a resolve)."""
        found: dict[str, list[ProjectPage]] = {}
        with self._lock:
            for project in dict.fromkeys(projects):
                rows = self._conn.execute(
                    "SELECT idx, project, page, fetched_at, etag, last_modified, max_age "
                    "FROM pages WHERE project = ? ORDER BY idx",
                    (project,),
                ).fetchall()
                found[project] = [self._decode_page(row) for row in rows]
        return found

    def _decode_page(self, row: Any) -> ProjectPage:
        """The stored page of *row* (`_pagerows.read_page`; call with the lock held)."""
        return read_page(self._conn, row)

    def page_keys(self, index: str | None = None) -> list[PageKey]:
        """(index, project, fetched_at) of stored pages, oldest first: what to revalidate."""
        if index is None:
            rows = self._read("SELECT idx, project, fetched_at FROM pages ORDER BY fetched_at")
        else:
            rows = self._read(
                "SELECT idx, project, fetched_at FROM pages WHERE idx = ? ORDER BY fetched_at",
                (index,),
            )
        return [PageKey(str(i), str(p), float(f)) for i, p, f in rows]

    def touch_page(
        self,
        index: str,
        project: str,
        fetched_at: float,
        etag: str | None,
        last_modified: str | None,
        max_age: int | None,
    ) -> bool:
        """Record a successful revalidation (304); False when no such page is stored.

        Not *shown*: validators and times change, never the files or versions listed."""
        with self._write(shown=False) as conn:
            cursor = conn.execute(
                "UPDATE pages SET fetched_at = ?, etag = ?, last_modified = ?, max_age = ? "
                "WHERE idx = ? AND project = ?",
                (fetched_at, etag, last_modified, max_age, index, project),
            )
            return cursor.rowcount > 0

    def delete_page(self, index: str, project: str) -> None:
        with self._write() as conn:
            conn.execute("DELETE FROM pages WHERE idx = ? AND project = ?", (index, project))
            conn.execute("DELETE FROM page_files WHERE idx = ? AND project = ?", (index, project))

    # -- core metadata (PEP 658) ------------------------------------------------------------

    def put_core_metadata(
        self, sha256: str | None, data: bytes, *, index: str, filename: str
    ) -> None:
        """Store the metadata file of a distribution, by its sha256 and by (index, filename).

        With *sha256* None (the index gave no hash) it is stored under (index, filename) only.
        """
        key = sha256.lower() if sha256 is not None else _name_key(index, filename)
        with self._write() as conn:
            write_cmd(conn, key, data, index, filename, time.time())

    def put_core_metadata_soon(
        self, sha256: str | None, data: bytes, *, index: str, filename: str
    ) -> bool:
        """`put_core_metadata` in the next transaction (as `put_page_soon`)."""
        key, now = sha256.lower() if sha256 is not None else _name_key(index, filename), time.time()
        return self._soon_or_now(lambda conn: write_cmd(conn, key, data, index, filename, now))

    def get_core_metadata(
        self,
        sha256: str | None = None,
        *,
        index: str | None = None,
        filename: str | None = None,
    ) -> bytes | None:
        """Metadata by the file's sha256, else by (index, filename); None when not stored."""
        if sha256 is not None:
            rows = self._read("SELECT data FROM core_metadata WHERE key = ?", (sha256.lower(),))
            if rows:
                return bytes(rows[0][0])
        if index is not None and filename is not None:
            rows = self._read(
                "SELECT m.data FROM core_metadata_names n JOIN core_metadata m ON m.key = n.key "
                "WHERE n.idx = ? AND n.filename = ?",
                (index, filename),
            )
            if rows:
                return bytes(rows[0][0])
        return None

    def core_metadata_many(self, sha256s: Iterable[str]) -> dict[str, bytes]:
        """Metadata of many distribution files by sha256 (those stored), in one call."""
        found: dict[str, bytes] = {}
        with self._lock:
            for sha in {sha.lower() for sha in sha256s}:
                row = self._conn.execute(
                    "SELECT data FROM core_metadata WHERE key = ?", (sha,)
                ).fetchone()
                if row is not None:
                    found[sha] = bytes(row[0])
        return found

    # -- provenance -------------------------------------------------------------------------

    def add_origin(self, sha256: str, origin: Origin, *, at: float | None = None) -> None:
        """Remember that *origin* served the file *sha256* (updates last_seen if known)."""
        now = time.time() if at is None else at
        with self._write(durable=True) as conn:
            _upsert_origin(conn, sha256.lower(), origin, now)

    def origins(self, sha256: str) -> list[Origin]:
        """Every origin of *sha256*, first seen first."""
        return [seen.origin for seen in self.origins_seen(sha256)]

    def origins_seen(self, sha256: str) -> list[OriginSeen]:
        rows = self._read(
            "SELECT idx, project, filename, url, first_seen, last_seen FROM origins "
            "WHERE sha256 = ? ORDER BY first_seen, idx",
            (sha256.lower(),),
        )
        return [
            OriginSeen(
                Origin(index=str(i), project=str(p), filename=str(f), url=str(u)),
                float(first),
                float(last),
            )
            for i, p, f, u, first, last in rows
        ]

    # -- blobs ------------------------------------------------------------------------------

    def record_blob(
        self,
        sha256: str,
        size: int,
        filename: str,
        *,
        origin: Origin | None = None,
        at: float | None = None,
        durable: bool = True,
    ) -> None:
        """Register a blob *after* `BlobStore.ingest` committed it (keeps added_at if known).

        With *origin*, the provenance is recorded in the same durable transaction: a finished
        download costs one fsync, and a blob row never exists without the origin that came
        with it. Not *durable*: a later durable commit of the batch (`mark_used`) makes it so.
        """
        now = time.time() if at is None else at
        sha = sha256.lower()
        with self._write(durable=durable) as conn:
            conn.execute(
                "INSERT INTO blobs VALUES (?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET "
                "size = excluded.size, last_used = max(last_used, excluded.last_used)",
                (sha, size, filename, now, now),
            )
            if origin is not None:
                _upsert_origin(conn, sha, origin, now)

    def mark_used(
        self, sha256s: Iterable[str], at: float | None = None, *, durable: bool = False
    ) -> None:
        """Bump last_used of blobs an install, resolve or local-index request just used;
        *durable* makes every earlier commit durable too (one WAL sync for a batch)."""
        now = time.time() if at is None else at
        with self._write(shown=False, durable=durable) as conn:  # last-used: on no page
            conn.executemany(
                "UPDATE blobs SET last_used = max(last_used, ?) WHERE sha256 = ?",
                [(now, sha.lower()) for sha in sha256s],
            )

    def forget_blob(self, sha256: str) -> None:
        """Drop the blob row (after removal or quarantine). Origins stay: they say where to
        fetch the file again."""
        with self._write(durable=True) as conn:
            conn.execute("DELETE FROM blobs WHERE sha256 = ?", (sha256.lower(),))

    def blob_rows(self) -> dict[str, int]:
        """sha256 -> size of every recorded blob."""
        rows = self._read("SELECT sha256, size FROM blobs")
        return {str(sha): int(size) for sha, size in rows}

    def blob_filenames(self, sha256s: Iterable[str]) -> dict[str, str]:
        """sha256 -> recorded file name, for the given blobs that have a row."""
        wanted = [sha.lower() for sha in sha256s]
        found: dict[str, str] = {}
        with self._lock:
            for sha in wanted:
                row = self._conn.execute(
                    "SELECT filename FROM blobs WHERE sha256 = ?", (sha,)
                ).fetchone()
                if row is not None:
                    found[sha] = str(row[0])
        return found

    def lru_blobs(self, limit: int) -> list[tuple[str, int, float]]:
        """(sha256, size, last_used) of the least recently used blobs, for garbage collection."""
        rows = self._read(
            "SELECT sha256, size, last_used FROM blobs ORDER BY last_used, sha256 LIMIT ?",
            (limit,),
        )
        return [(str(s), int(n), float(t)) for s, n, t in rows]

    def reconcile_blobs(self, present: dict[str, int]) -> tuple[int, int]:
        """Make the blob rows match *present* (`BlobStore.inventory`); return (added, dropped).

        Run at start-up: a crash between committing a blob and writing its row leaves an
        unrecorded blob (recorded now, named after its first origin), and one between removing
        a blob and deleting its row leaves a row without a blob (dropped now).
        """
        recorded = self.blob_rows()
        missing = [sha for sha in present if sha not in recorded]
        stale = [sha for sha in recorded if sha not in present]
        if not missing and not stale:
            return 0, 0
        now = time.time()
        with self._write(durable=True) as conn:
            for sha in missing:
                row = conn.execute(
                    "SELECT filename FROM origins WHERE sha256 = ? ORDER BY first_seen LIMIT 1",
                    (sha,),
                ).fetchone()
                conn.execute(
                    "INSERT OR IGNORE INTO blobs VALUES (?, ?, ?, ?, ?)",
                    (sha, present[sha], row[0] if row else "", now, now),
                )
            conn.executemany("DELETE FROM blobs WHERE sha256 = ?", [(sha,) for sha in stale])
        return len(missing), len(stale)

    # -- built wheels -----------------------------------------------------------------------

    def put_built_wheel(
        self, sdist_sha256: str, interpreter_tag: str, wheel_sha256: str, filename: str
    ) -> None:
        """Remember the wheel built from an sdist (after the wheel blob is committed)."""
        with self._write(durable=True) as conn:
            conn.execute(
                "INSERT OR REPLACE INTO built_wheels VALUES (?, ?, ?, ?, ?)",
                (
                    sdist_sha256.lower(),
                    interpreter_tag,
                    wheel_sha256.lower(),
                    filename,
                    time.time(),
                ),
            )

    def get_built_wheel(self, sdist_sha256: str, interpreter_tag: str) -> BuiltWheel | None:
        rows = self._read(
            "SELECT sdist_sha256, interpreter_tag, wheel_sha256, filename, built_at "
            "FROM built_wheels WHERE sdist_sha256 = ? AND interpreter_tag = ?",
            (sdist_sha256.lower(), interpreter_tag),
        )
        if not rows:
            return None
        sdist, tag, wheel, filename, built_at = rows[0]
        return BuiltWheel(str(sdist), str(tag), str(wheel), str(filename), float(built_at))

    def built_wheels_from(self, sdist_sha256s: Iterable[str]) -> list[BuiltWheel]:
        """Every wheel built from any of *sdist_sha256s* (for any interpreter)."""
        out: list[BuiltWheel] = []
        with self._lock:
            for sha in {s.lower() for s in sdist_sha256s}:
                rows = self._conn.execute(
                    "SELECT sdist_sha256, interpreter_tag, wheel_sha256, filename, built_at "
                    "FROM built_wheels WHERE sdist_sha256 = ?",
                    (sha,),
                ).fetchall()
                out.extend(
                    BuiltWheel(str(s), str(t), str(w), str(f), float(b)) for s, t, w, f, b in rows
                )
        return out

    # -- daemon state -----------------------------------------------------------------------

    def put_state(self, key: str, value: bytes) -> None:
        with self._write() as conn:
            conn.execute("INSERT OR REPLACE INTO state VALUES (?, ?, ?)", (key, value, time.time()))

    def get_state(self, key: str) -> bytes | None:
        rows = self._read("SELECT value FROM state WHERE key = ?", (key,))
        return bytes(rows[0][0]) if rows else None

    def delete_state(self, key: str) -> None:
        with self._write() as conn:
            conn.execute("DELETE FROM state WHERE key = ?", (key,))

    # -- statistics -------------------------------------------------------------------------

    def stats(self) -> CacheStats:
        """Counts and sizes for `satchel cache info`, totals without double counting."""
        with self._lock:
            return cache_stats(self._conn)


def _upsert_origin(conn: sqlite3.Connection, sha256: str, origin: Origin, now: float) -> None:
    conn.execute(
        "INSERT INTO origins VALUES (?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT DO UPDATE SET last_seen = max(last_seen, excluded.last_seen)",
        (sha256, origin.index, origin.project, origin.filename, origin.url, now, now),
    )


def _name_key(index: str, filename: str) -> str:
    # Cannot collide with a sha256 key: contains a NUL, which no index or file name may contain.
    return f"name\0{index}\0{filename}"
