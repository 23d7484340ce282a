"""Cache writes that wait for the metadata database's next transaction (`MetaDB.put_page_soon`,
`MetaDB.put_core_metadata_soon`).

A cold prefetch stored each project's page and core metadata in a worker-thread hop and a
transaction of their own, right before or after another hop that touched the database anyway
(the project's binding, the download's commit): two hops and two transactions per project out
of six (issue 15). Queued here instead, on the event loop, they are written by whoever takes
the database's lock next, in one transaction before its own: every read and every write sees
them, so nothing reads the database without what was queued, and a durable commit (a binding,
the end of a prefetch) makes them durable with it.

Only cache is queued (what a crash may lose at the cost of fetching it again, as a page or
metadata write committed with ``synchronous=NORMAL`` always could), bounded by `MAX_WAITING`
writes, and only small pages (`MAX_PAGE_FILES` files): a caller that finds no room writes in a
hop of its own, as before.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable
from types import TracebackType

__all__ = ["MAX_PAGE_FILES", "MAX_WAITING", "FlushingLock", "SoonWrites", "write_cmd"]

log = logging.getLogger("satchel.daemon.storage.metadb")

#: Writes waiting at most: a burst of look-ahead fetches (16 at a time per index) and the
#: resolver's own; more go to the database in a hop of their own.
MAX_WAITING = 64
#: A page with more files than this is written at once (its rows are what `_pagerows` splits
#: into batches of 250, and a queued page stays in memory until written).
MAX_PAGE_FILES = 250

Write = Callable[[sqlite3.Connection], None]


class SoonWrites:
    """The queued writes, in order. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._writes: list[Write] = []

    def add(self, write: Write) -> bool:
        """Queue *write*; False (not queued) when `MAX_WAITING` wait already."""
        with self._lock:
            if len(self._writes) >= MAX_WAITING:
                return False
            self._writes.append(write)
            return True

    def take(self) -> list[Write]:
        """Every queued write, oldest first; the queue is empty after."""
        if not self._writes:  # the usual case, without the lock
            return []
        with self._lock:
            writes, self._writes = self._writes, []
            return writes

    def write_all(self, conn: sqlite3.Connection) -> int:
        """Make every queued write on *conn* (its lock just taken, no transaction open), in one
        transaction of their own. Cache only: a failure is logged and loses them (fetched
        again when needed), whatever it is: it must not fail the unrelated caller that took
        the lock (a page whose ``max_age`` no SQLite integer holds raises `OverflowError`, not
        `sqlite3.Error`). How many there were."""
        writes = self.take()
        if not writes:
            return 0
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                for write in writes:
                    write(conn)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except Exception as exc:  # cache only: logged, never the caller's error
            log.warning("%d cached page or metadata write(s) lost: %s", len(writes), exc)
        return len(writes)


class FlushingLock:
    """A reentrant lock that runs *flush* each time it is taken by a thread not holding it: the
    metadb's lock, so whoever takes it next writes what waits before anything else. Taken
    again by its holder (a read or write inside an open transaction: `MetaDB.batch`,
    `Origins.durable_with`), it flushes nothing: what was queued meanwhile never joins, nor
    fails, nor is rolled back with, a transaction of someone else's."""

    def __init__(self, flush: Callable[[], None]) -> None:
        self._lock = threading.RLock()
        self._flush = flush
        #: How many times the holder took it (changed only by the holder).
        self._depth = 0

    def __enter__(self) -> FlushingLock:
        self._lock.acquire()
        self._depth += 1
        if self._depth == 1:
            try:
                self._flush()
            except BaseException:
                self._depth -= 1
                self._lock.release()
                raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._depth -= 1
        self._lock.release()


def write_cmd(
    conn: sqlite3.Connection,
    key: str,
    data: bytes,
    index: str,
    filename: str,
    now: float,
) -> None:
    """Store a distribution's core metadata file under *key* and (index, filename), inside a
    write transaction (`MetaDB.put_core_metadata`, now or soon)."""
    conn.execute("INSERT OR REPLACE INTO core_metadata VALUES (?, ?, ?)", (key, data, now))
    conn.execute(
        "INSERT OR REPLACE INTO core_metadata_names VALUES (?, ?, ?)", (index, filename, key)
    )
