"""Core metadata just fetched and stored, kept until the next read of the same file takes it.

The look-ahead fetches a likely candidate's metadata and stores it in the metadb; moments later
the resolver reads the same file's metadata, which was one more worker-thread hop to read back
what had just been written (issue 15: one per project of a cold prefetch). `JustStored` hands
those bytes over in memory instead, once: a read takes its entry, so every later read goes to
the metadb as before, and the metadb stays the only cache. Bounded by entries and bytes (the
oldest go first; a large file is not kept at all). Thread-safe; every write of metadata that
may be read through it goes through it (`store`, `replace`), so what it hands over is what the
metadb holds.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable

__all__ = ["MAX_BYTES", "MAX_ENTRIES", "JustStored"]

#: Entries kept at most: a dependency level's worth of look-ahead (the look-ahead runs up to
#: `_lookahead.WARM_CONCURRENCY` fetches at once); a guess the resolver never reads ages out.
MAX_ENTRIES = 128
#: Bytes kept at most, all entries together; a metadata file is typically 2-10 KiB.
MAX_BYTES = 2 * 2**20
#: A file larger than this is not kept (read back from the metadb, as before).
MAX_ENTRY_BYTES = 64 * 2**10


class JustStored:
    """Metadata bytes by the catalog's metadata key (sha256, else index and filename)."""

    def __init__(self) -> None:
        #: Held across a write and what it does to the entries (worker threads only).
        self._writing = threading.Lock()
        #: Held for the entries alone: `take` runs on the event loop and never waits on a write.
        self._lock = threading.Lock()
        self._entries: dict[str, bytes] = {}
        self._bytes = 0

    def store(self, key: str, data: bytes, write: Callable[[], None]) -> None:
        """*write* *data* under *key* (to the metadb), and keep it for the next read of *key*.

        The write and the keeping happen together (as `replace`'s write and forgetting do), so a
        replacement of the same file's metadata is never undone by a stale entry. Worker thread.
        """
        with self._writing:
            write()
            self._keep(key, data)

    def keep(self, key: str, data: bytes) -> None:
        """Keep *data* for the next read of *key*, its metadb write already queued for the next
        transaction (`MetaDB.put_core_metadata_soon`): on the event loop, which never waits
        for a write under way. A replacement (`replace`) comes after the wheel was stored, and
        so after this file's metadata was queued; whoever writes first writes that first."""
        self._keep(key, data)

    def _keep(self, key: str, data: bytes) -> None:
        with self._lock:
            self._drop(key)
            if len(data) > MAX_ENTRY_BYTES:
                return
            while self._entries and (
                len(self._entries) >= MAX_ENTRIES or self._bytes + len(data) > MAX_BYTES
            ):
                self._drop(next(iter(self._entries)))
            self._entries[key] = data
            self._bytes += len(data)

    def take(self, key: str) -> bytes | None:
        """The bytes kept for *key*, if any, which are kept no longer."""
        with self._lock:
            data = self._entries.pop(key, None)
            if data is not None:
                self._bytes -= len(data)
            return data

    def replace(self, keys: Iterable[str], write: Callable[[], None]) -> None:
        """*write* other metadata for the file known by *keys*: keep nothing for them. Worker
        thread."""
        with self._writing:
            write()
            with self._lock:
                for key in keys:
                    self._drop(key)

    def __len__(self) -> int:
        return len(self._entries)

    def _drop(self, key: str) -> None:
        data = self._entries.pop(key, None)
        if data is not None:
            self._bytes -= len(data)
