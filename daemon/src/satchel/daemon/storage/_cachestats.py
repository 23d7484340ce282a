"""What the cache holds, counted for `satchel cache info`: totals and the per-index breakdown.

Read by `MetaDB.stats` under the database's lock; one job, kept out of `metadb` (which owns
the connection, its transactions and the rows' writes).
"""

from __future__ import annotations

import sqlite3

import msgspec

__all__ = ["CacheStats", "IndexStats", "cache_stats"]


class IndexStats(msgspec.Struct, frozen=True):
    """What the cache holds from one index. A blob served by two indexes counts in both."""

    index: str
    projects: int
    blobs: int
    bytes: int


class CacheStats(msgspec.Struct, frozen=True):
    """Totals (each blob counted once) and the per-index breakdown for `satchel cache info`."""

    blobs: int
    bytes: int
    pages: int
    core_metadata: int
    built_wheels: int
    #: Blobs with no recorded origin (built wheels, files added from a local path).
    unattributed_blobs: int
    indexes: tuple[IndexStats, ...]


def cache_stats(conn: sqlite3.Connection) -> CacheStats:
    """Counts and sizes, totals without double counting (the caller holds the lock)."""
    blobs, size = conn.execute("SELECT count(*), coalesce(sum(size), 0) FROM blobs").fetchone()
    pages = conn.execute("SELECT count(*) FROM pages").fetchone()[0]
    core = conn.execute("SELECT count(*) FROM core_metadata").fetchone()[0]
    built = conn.execute("SELECT count(*) FROM built_wheels").fetchone()[0]
    unattributed = conn.execute(
        "SELECT count(*) FROM blobs b WHERE NOT EXISTS "
        "(SELECT 1 FROM origins o WHERE o.sha256 = b.sha256)"
    ).fetchone()[0]
    per_blob = {
        str(index): (int(count), int(total))
        for index, count, total in conn.execute(
            "SELECT o.idx, count(*), sum(b.size) FROM blobs b JOIN "
            "(SELECT DISTINCT sha256, idx FROM origins) o ON o.sha256 = b.sha256 "
            "GROUP BY o.idx"
        )
    }
    per_page = {
        str(index): int(count)
        for index, count in conn.execute("SELECT idx, count(*) FROM pages GROUP BY idx")
    }
    indexes = tuple(
        IndexStats(index, per_page.get(index, 0), *per_blob.get(index, (0, 0)))
        for index in sorted(per_blob.keys() | per_page.keys())
    )
    return CacheStats(blobs, size, pages, core, built, unattributed, indexes)
