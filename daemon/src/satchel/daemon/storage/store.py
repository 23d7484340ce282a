"""The blob store: every distribution file the daemon holds, addressed by its sha256.

Identity is the sha256, so a file served by two indexes is stored once (provenance lives in
`metadb`). Layout under the cache root::

    blobs/<aa>/<bb>/<sha256>   committed blobs, mode 0400, never modified in place
    tmp/                       in-flight ingests (same file system, so the final rename is atomic)
    quarantine/                blobs that `verify` found corrupt, kept for inspection

The invariant everything else relies on: a path under ``blobs/`` exists only once its bytes are
complete, fsynced and proven to hash to its name. An ingest streams into ``tmp/``, hashing as it
goes, fsyncs, compares the digest with what the index promised and only then renames into place
and fsyncs the directory (a batch of downloads: each directory once, before the batch reports
success, `fsutil.Unsynced`; a power loss before that can lose a new blob, never corrupt one). A
mismatch, an oversize body, a full disk, a cancellation or a ``kill -9`` therefore leaves at most
a file in ``tmp/``, which `sweep` deletes at the next start.

Blocking file I/O never runs on the trio event loop: incoming chunks are gathered into batches of
`WRITE_BATCH` bytes and each batch is hashed and written by one `trio.to_thread.run_sync` call
(hashlib releases the GIL on large buffers, so hashing overlaps the loop). Measured on the dev
machine (2 cores, 64 MiB arriving in 64 KiB chunks): batches in threads took 70-85 ms with a worst
loop delay of 1-9 ms; hashing and writing on the loop took 100-250 ms and blocked it for 16-39 ms
at a time (the final fsync); `trio.wrap_file` with a thread hop per chunk kept the loop free but
took 170-350 ms. A single 32 MiB chunk blocks the loop ~100 ms when handled on it, < 1 ms here.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import time
from collections.abc import AsyncGenerator, AsyncIterable, Awaitable, Callable
from pathlib import Path
from typing import BinaryIO, NoReturn

import msgspec
import trio

from satchel.daemon.errors import HashMismatch, HostileInput, NotFound
from satchel.daemon.storage.digests import Digests
from satchel.daemon.storage.fsutil import (
    TEMP_PREFIX,
    Unsynced,
    disk_full_guard,
    fsync_dir,
    sync_dir,
)
from satchel.daemon.storage.metadb import MetaDB

__all__ = [
    "BLOB_MODE",
    "METADB_NAME",
    "READ_SIZE",
    "WRITE_BATCH",
    "BlobInfo",
    "BlobStore",
    "CacheRecovery",
    "CorruptBlob",
    "VerifyProgress",
    "VerifyReport",
    "open_cache",
]

#: Bytes gathered from the network before one worker-thread hop writes and hashes them. A thread
#: hop costs ~50-100 us; at 1 MiB that is noise, while memory per concurrent download stays small.
WRITE_BATCH = 1 << 20

#: Committed blobs: read-only, and the user's alone (private indexes' files; issue 11.2).
BLOB_MODE = 0o400

#: Read size when copying or re-hashing files already on disk (one thread hop per read).
READ_SIZE = 1 << 20

_SHA256_RE = re.compile(r"[0-9a-f]{64}")

#: The metadata database lives beside the blobs it describes: wiping the cache directory wipes
#: both, and `open_cache` reconciles them if only one survived.
METADB_NAME = "metadata.sqlite"


class CacheRecovery(msgspec.Struct, frozen=True):
    """What `open_cache` repaired at start-up (logged; all zero after a clean shutdown)."""

    #: Temp files of interrupted ingests deleted from ``tmp/``.
    swept: int
    #: Committed blobs that had no metadb row (crash between commit and record).
    rows_added: int
    #: metadb rows whose blob was gone (crash between removal and forget, or a wiped dir).
    rows_dropped: int


class BlobInfo(msgspec.Struct, frozen=True):
    """A committed blob: its identity and size in bytes."""

    sha256: str
    size: int


class CorruptBlob(msgspec.Struct, frozen=True):
    """A blob whose bytes no longer hash to its name (or a stray file under ``blobs/``)."""

    #: The name it was stored under (for a stray file: its path relative to ``blobs/``).
    name: str
    #: What its bytes hash to now.
    actual_sha256: str
    #: Where it was moved, relative to the store root.
    quarantined_as: str


class VerifyProgress(msgspec.Struct, frozen=True):
    """Sent to the progress callback of `BlobStore.verify` after every blob."""

    checked: int
    total: int
    bytes_checked: int
    bytes_total: int


class VerifyReport(msgspec.Struct, frozen=True):
    """Outcome of `BlobStore.verify`: how much was re-hashed and what was quarantined."""

    checked: int
    bytes: int
    corrupt: tuple[CorruptBlob, ...] = ()

    @property
    def clean(self) -> bool:
        return not self.corrupt


def _checked_digest(value: str, label: str) -> str:
    """Lower-case *value* and insist it is a sha256 hex digest (it becomes a path component)."""
    digest = value.lower()
    if not _SHA256_RE.fullmatch(digest):
        raise HostileInput(
            f"{label}: malformed sha256 {value[:80]!r}",
            details={"file": label, "sha256": value[:80]},
        )
    return digest


class _TempWriter:
    """A temp file being filled and hashed; every method runs in a worker thread.

    Kept separate from the async loop in `BlobStore.ingest` so that the loop only decides *what*
    to do and every syscall happens off the event loop.
    """

    def __init__(self, path: Path, digests: Digests | None = None) -> None:
        self.path = path
        self.size = 0
        self._hasher = hashlib.sha256()
        #: The other digests the index promised, computed in the same pass.
        self.digests = digests
        self._fd: int | None = os.open(
            path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600
        )

    def write(self, chunks: list[bytes]) -> None:
        assert self._fd is not None
        if self.digests:
            self.digests.update(chunks)
        for chunk in chunks:
            self._hasher.update(chunk)
            view = memoryview(chunk)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
            self.size += len(chunk)

    def finish(self) -> str:
        """fsync and close; return the hex digest of everything written."""
        assert self._fd is not None
        os.fsync(self._fd)
        self.close()
        return self._hasher.hexdigest()

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    def discard(self) -> None:
        """Close and delete: the only clean-up needed for any failure before commit."""
        self.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


class BlobStore:
    """Content-addressed, crash-safe storage of distribution files under *root*.

    The daemon creates one at start-up and calls `sweep` before serving (the single-instance lock
    guarantees no other process writes here). Async methods are safe to call concurrently;
    concurrent ingests of the same content both succeed (the second rename replaces an identical
    file), but callers should deduplicate downloads with `satchel.daemon.storage.singleflight`.
    Synchronous methods that walk the tree (`sweep`, `inventory`, `usage`) are meant for
    `trio.to_thread.run_sync`; `has`, `path` and `open` are single syscalls and fine on the loop.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.blobs_dir = self.root / "blobs"
        self._blobs = os.fspath(self.blobs_dir)
        self.tmp_dir = self.root / "tmp"
        self.quarantine_dir = self.root / "quarantine"
        #: Wheels unpacked once each (``<sha256>/``) for installs: beside the blobs, on the same
        #: file system, so installs can hardlink from them. Owned by
        #: `satchel.daemon.installing.wheel`.
        self.unpacked_dir = self.root / "unpacked"
        for directory in (self.blobs_dir, self.tmp_dir, self.quarantine_dir):
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)

    # -- lookup -----------------------------------------------------------------------------

    def path(self, sha256: str) -> Path:
        """Where the blob *sha256* lives (whether or not it is present)."""
        digest = _checked_digest(sha256, "blob")
        return self.blobs_dir / digest[:2] / digest[2:4] / digest

    def has(self, sha256: str) -> bool:
        # Asked once per listed file by offline resolves: plain strings, no Path objects.
        digest = _checked_digest(sha256, "blob")
        return os.path.isfile(  # noqa: PTH113
            os.path.join(self._blobs, digest[:2], digest[2:4], digest)  # noqa: PTH118
        )

    def open(self, sha256: str) -> BinaryIO:
        """Open a committed blob for reading; `NotFound` if it is not in the store."""
        try:
            return self.path(sha256).open("rb")
        except FileNotFoundError:
            raise NotFound(
                f"blob {sha256} is not in the store", details={"sha256": sha256}
            ) from None

    # -- ingest -----------------------------------------------------------------------------

    async def ingest(
        self,
        chunks: AsyncIterable[bytes],
        *,
        expected_sha256: str | None,
        expected_size: int | None = None,
        max_size: int | None = None,
        digests: Digests | None = None,
        label: str,
        unsynced: Unsynced | None = None,
        then: Callable[[BlobInfo], None] | None = None,
    ) -> BlobInfo:
        """Stream *chunks* into the store and return the committed blob.

        *label* names the file in every error (normally its file name). When *expected_sha256*
        is given the bytes must hash to it, or `HashMismatch` names the file and both digests and
        nothing is kept; with None (a find-links file without a hash, a wheel we built) the
        computed digest is the identity. *expected_size* (PEP 700) and *max_size* (a hostile-input
        cap) abort the stream as soon as they are exceeded. *digests* are the index's other
        promises (md5, sha512, ...): computed in the same pass and checked before the commit.
        `DiskFull` on ENOSPC/EDQUOT. With *unsynced*, the directory entries of the commit are
        made durable with its batch (`Unsynced.sync`); the bytes always are before the rename.
        *then* runs with the committed blob in the worker thread that committed it, in the same
        hop (the caller's bookkeeping: its origin, a check of its metadata); what it raises is
        raised here, the blob staying committed.
        """
        expected = None if expected_sha256 is None else _checked_digest(expected_sha256, label)
        limit = _size_limit(expected_size, max_size)
        with disk_full_guard(self._where(label)):
            writer = _TempWriter(self.tmp_dir / f"{TEMP_PREFIX}{secrets.token_hex(8)}", digests)
        try:
            batch: list[bytes] = []
            pending = 0
            async for chunk in chunks:
                if not chunk:
                    continue
                received = writer.size + pending + len(chunk)
                if limit is not None and received > limit:
                    self._raise_too_big(label, received, expected_size, max_size, expected)
                batch.append(bytes(chunk))
                pending += len(chunk)
                if pending >= WRITE_BATCH:
                    await self._write(writer, batch, label)
                    batch, pending = [], 0

            # The last batch, the checks, the commit and *then* in one thread hop (most wheels
            # are one batch: one hop per file, not four).
            def seal() -> BlobInfo:
                with disk_full_guard(self._where(label)):  # new aa/bb directories need inodes
                    actual = self._seal(
                        writer, batch, label, expected, expected_size, digests, unsynced
                    )
                info = BlobInfo(actual, writer.size)
                if then is not None:
                    then(info)
                return info

            return await trio.to_thread.run_sync(seal)
        except BaseException:
            writer.discard()
            raise

    async def ingest_path(
        self, source: Path, expected_sha256: str | None, label: str, *, max_size: int | None = None
    ) -> BlobInfo:
        """Copy a local file (a ``file://`` index or find-links directory) into the store.

        The copy goes through `ingest`, so the same checks and crash-safety apply, and reads are
        done one `READ_SIZE` block per worker-thread hop, so cancellation is honoured mid-file.
        """
        try:
            handle = await trio.to_thread.run_sync(Path(source).open, "rb")
        except FileNotFoundError:
            raise NotFound(
                f"{label}: {source} does not exist", details={"file": label, "path": str(source)}
            ) from None
        try:
            async with contextlib.aclosing(_read_blocks(handle)) as blocks:
                return await self.ingest(
                    blocks, expected_sha256=expected_sha256, max_size=max_size, label=label
                )
        finally:
            handle.close()

    def _seal(
        self,
        writer: _TempWriter,
        batch: list[bytes],
        label: str,
        expected: str | None,
        expected_size: int | None,
        digests: Digests | None,
        unsynced: Unsynced | None,
    ) -> str:
        """Write the last *batch*, fsync, check every promise, commit (worker thread)."""
        if batch:
            writer.write(batch)
        actual = writer.finish()
        _check_digest(label, expected, expected_size, actual, writer.size)
        if digests:
            digests.check(label)
        self._commit(writer.path, actual, unsynced)
        return actual

    async def _write(self, writer: _TempWriter, batch: list[bytes], label: str) -> None:
        with disk_full_guard(self._where(label)):
            await trio.to_thread.run_sync(writer.write, batch)

    def _where(self, label: str) -> str:
        return f"{label} into the cache at {self.root}"

    @staticmethod
    def _raise_too_big(
        label: str,
        received: int,
        expected_size: int | None,
        max_size: int | None,
        expected: str | None,
    ) -> NoReturn:
        if max_size is not None and received > max_size:
            raise HostileInput(
                f"{label}: larger than the limit of {max_size} bytes",
                details={"file": label, "max_size": max_size},
            )
        raise HashMismatch(
            f"{label}: the index promised {expected_size} bytes, got at least {received}",
            details={"file": label, "expected_size": expected_size, "expected": expected},
        )

    def _commit(self, tmp: Path, digest: str, unsynced: Unsynced | None = None) -> None:
        """Make the fsynced temp file visible as blob *digest* (worker thread).

        Replacing an existing blob is harmless: its content hashes to the same name, and a copy
        that has rotted on disk gets healed.
        """
        dest = self.path(digest)
        self._make_dirs(dest.parent, unsynced)
        tmp.chmod(BLOB_MODE)
        tmp.replace(dest)
        sync_dir(dest.parent, unsynced)

    def _make_dirs(self, directory: Path, unsynced: Unsynced | None = None) -> None:
        """Create ``blobs/aa/bb`` durably: each new directory's parent is fsynced too."""
        for path in (directory.parent, directory):
            try:
                path.mkdir(mode=0o700)
            except FileExistsError:
                continue
            sync_dir(path.parent, unsynced)

    # -- maintenance ------------------------------------------------------------------------

    def sweep(self) -> int:
        """Delete crash debris (every file in ``tmp/``); return how many were removed.

        Call at start-up, before any ingest: all of ``tmp/`` then belongs to a dead process.
        """
        removed = 0
        for entry in os.scandir(self.tmp_dir):
            with contextlib.suppress(FileNotFoundError):
                if entry.is_dir(follow_symlinks=False):
                    _remove_tree(Path(entry.path))
                else:
                    Path(entry.path).unlink()
                removed += 1
        if removed:
            fsync_dir(self.tmp_dir)
        return removed

    def inventory(self) -> dict[str, int]:
        """sha256 -> size of every committed blob, read from the file system (worker thread)."""
        return {name: size for name, size, _path in self._walk() if _SHA256_RE.fullmatch(name)}

    def usage(self) -> tuple[int, int]:
        """(count, bytes) of committed blobs, from the file system (worker thread)."""
        count = total = 0
        for _name, size, _path in self._walk():
            count += 1
            total += size
        return count, total

    def remove(self, sha256: str) -> bool:
        """Delete one blob durably (garbage collection); False if it was not there.

        Delete the blob first, then its metadb row: a crash in between leaves a row without a
        blob, which `MetaDB.reconcile_blobs` drops at the next start.
        """
        path = self.path(sha256)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        fsync_dir(path.parent)
        return True

    async def verify(
        self,
        progress: Callable[[VerifyProgress], Awaitable[None]] | None = None,
        on_corrupt: Callable[[str], Awaitable[None]] | None = None,
    ) -> VerifyReport:
        """Re-hash every blob; move corrupt ones (and stray files) to ``quarantine/``.

        *on_corrupt* is awaited with the name of each quarantined blob, right after it was moved,
        so the caller can make metadb forget it (``metadb.forget_blob`` via a thread). Blobs
        committed or removed while verify runs are simply skipped.
        """
        entries = await trio.to_thread.run_sync(lambda: list(self._walk()))
        total_bytes = sum(size for _n, size, _p in entries)
        corrupt: list[CorruptBlob] = []
        bytes_checked = 0
        for checked, (name, size, path) in enumerate(entries, start=1):
            found = await trio.to_thread.run_sync(self._check_one, path, name)
            if found is not None:
                corrupt.append(found)
                if on_corrupt is not None and _SHA256_RE.fullmatch(name):
                    await on_corrupt(name)
            bytes_checked += size
            if progress is not None:
                await progress(VerifyProgress(checked, len(entries), bytes_checked, total_bytes))
        return VerifyReport(len(entries), bytes_checked, tuple(corrupt))

    def _check_one(self, path: Path, name: str) -> CorruptBlob | None:
        """Re-hash one file (worker thread); quarantine it when it does not match *name*.

        A file removed meanwhile (garbage collection) is simply not corrupt.
        """
        try:
            actual = _hash_blocks(path)
            if actual == name:
                return None
            moved = self._quarantine(path, name)
        except FileNotFoundError:
            return None
        return CorruptBlob(name, actual, str(moved.relative_to(self.root)))

    def _quarantine(self, path: Path, name: str) -> Path:
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        safe = name.replace("/", "_")
        dest = self.quarantine_dir / f"{safe}.{stamp}.{secrets.token_hex(3)}"
        path.replace(dest)
        fsync_dir(path.parent)
        fsync_dir(self.quarantine_dir)
        return dest

    def _walk(self) -> list[tuple[str, int, Path]]:
        """(name, size, path) of every regular file under ``blobs/``.

        A file whose name does not match its ``aa/bb`` location is reported under its relative
        path, which can never equal a digest, so `verify` quarantines it as a stray.
        """
        found: list[tuple[str, int, Path]] = []
        for dirpath, _dirnames, filenames in os.walk(self.blobs_dir):
            directory = Path(dirpath)
            rel = directory.relative_to(self.blobs_dir).parts
            for filename in filenames:
                path = directory / filename
                try:
                    stat = path.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                placed = len(rel) == 2 and rel == (filename[:2], filename[2:4])
                name = filename if placed else "/".join((*rel, filename))
                found.append((name, stat.st_size, path))
        return found


def open_cache(cache_dir: Path) -> tuple[BlobStore, MetaDB, CacheRecovery]:
    """Open the store and metadb under *cache_dir* and repair what a crash left behind.

    The daemon's start-up sequence for the cache (blocking: run it with
    ``trio.to_thread.run_sync`` before serving, while no ingest can be running): sweep the temp
    debris, then make the metadb's blob rows match the blobs actually present.
    """
    store = BlobStore(cache_dir)
    metadb = MetaDB(Path(cache_dir) / METADB_NAME)
    swept = store.sweep()
    added, dropped = metadb.reconcile_blobs(store.inventory())
    return store, metadb, CacheRecovery(swept, added, dropped)


def _check_digest(
    label: str, expected: str | None, expected_size: int | None, actual: str, size: int
) -> None:
    """Raise `HashMismatch` naming the file and both values unless the bytes are as promised."""
    if expected_size is not None and size != expected_size:
        raise HashMismatch(
            f"{label}: the index promised {expected_size} bytes, got {size}",
            details={"file": label, "expected_size": expected_size, "size": size},
        )
    if expected is not None and actual != expected:
        raise HashMismatch(
            f"{label}: sha256 mismatch: the index promised {expected}, "
            f"the downloaded bytes hash to {actual}",
            details={"file": label, "expected": expected, "actual": actual},
        )


def _size_limit(expected_size: int | None, max_size: int | None) -> int | None:
    limits = [n for n in (expected_size, max_size) if n is not None]
    return min(limits) if limits else None


async def _read_blocks(handle: BinaryIO) -> AsyncGenerator[bytes, None]:
    while block := await trio.to_thread.run_sync(handle.read, READ_SIZE):
        yield block


def _hash_blocks(path: Path) -> str:
    hasher = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(READ_SIZE):
            hasher.update(block)
    return hasher.hexdigest()


def _remove_tree(path: Path) -> None:
    for dirpath, dirnames, filenames in os.walk(path, topdown=False):
        for filename in filenames:
            with contextlib.suppress(FileNotFoundError):
                (Path(dirpath) / filename).unlink()
        for dirname in dirnames:
            with contextlib.suppress(FileNotFoundError):
                (Path(dirpath) / dirname).rmdir()
    with contextlib.suppress(FileNotFoundError):
        path.rmdir()
