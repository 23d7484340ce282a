"""The blob store: only complete, verified files ever become visible under blobs/."""

from __future__ import annotations

import hashlib
import os
import signal
import stat
import subprocess
import sys
import textwrap
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio

from satchel.daemon.errors import DiskFull, HashMismatch, HostileInput, NotFound
from satchel.daemon.storage import fsutil
from satchel.daemon.storage import store as store_module
from satchel.daemon.storage.fsutil import TEMP_PREFIX, Unsynced
from satchel.daemon.storage.singleflight import SingleFlight
from satchel.daemon.storage.store import (
    METADB_NAME,
    WRITE_BATCH,
    BlobInfo,
    BlobStore,
    CacheRecovery,
    VerifyProgress,
    open_cache,
)
from tests.support.hops import count_hops
from tests.support.tmpfs import small_tmpfs
from tests.support.waiting import second_call_waits_for_the_first
from tests.support.wheels import build_wheel

REPO = Path(__file__).resolve().parents[2]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def chunks_of(data: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        await trio.lowlevel.checkpoint()
        yield data[start : start + size]


def visible_blobs(store: BlobStore) -> list[Path]:
    return [p for p in store.blobs_dir.rglob("*") if p.is_file()]


def temp_files(store: BlobStore) -> list[Path]:
    return list(store.tmp_dir.iterdir())


@pytest.fixture
def store(tmp_path: Path) -> BlobStore:
    return BlobStore(tmp_path / "cache")


async def test_a_one_batch_file_and_its_bookkeeping_take_one_thread_hop(
    store: BlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`ingest`'s *then* (a download's origin and metadata check) runs in the worker thread
    that committed the blob, with the committed blob, in the same hop (issue 15: a cold
    prefetch paid one more hop per file for it)."""
    hops = count_hops(monkeypatch)
    data = os.urandom(WRITE_BATCH // 2)
    trio_thread = threading.get_ident()
    seen: list[tuple[BlobInfo, bool, int]] = []

    def then(info: BlobInfo) -> None:
        seen.append((info, store.has(info.sha256), threading.get_ident()))

    info = await store.ingest(chunks_of(data), expected_sha256=sha(data), label="a.whl", then=then)

    assert info == BlobInfo(sha(data), len(data))
    assert len(hops) == 1
    assert len(seen) == 1
    got, committed, thread = seen[0]
    assert got == info and committed and thread != trio_thread


async def test_what_then_raises_is_raised_and_the_blob_stays_committed(
    store: BlobStore,
) -> None:
    data = b"payload" * 100

    def then(info: BlobInfo) -> None:
        raise HostileInput(f"bookkeeping refused {info.sha256}")

    with pytest.raises(HostileInput, match="bookkeeping refused"):
        await store.ingest(chunks_of(data), expected_sha256=sha(data), label="a.whl", then=then)
    assert store.has(sha(data))
    assert temp_files(store) == []


async def test_ingest_commits_a_read_only_blob_under_its_sha256(store: BlobStore) -> None:
    data = os.urandom(3 * WRITE_BATCH + 123)

    info = await store.ingest(chunks_of(data), expected_sha256=sha(data), label="a-1.0.whl")

    assert info == BlobInfo(sha(data), len(data))
    path = store.path(info.sha256)
    assert path == store.blobs_dir / info.sha256[:2] / info.sha256[2:4] / info.sha256
    assert path.read_bytes() == data
    assert stat.S_IMODE(path.stat().st_mode) == 0o400
    assert store.has(info.sha256)
    with store.open(info.sha256) as handle:
        assert handle.read() == data
    assert temp_files(store) == []


async def test_ingest_without_expected_hash_uses_the_computed_digest(store: BlobStore) -> None:
    data = b"built wheel bytes"
    info = await store.ingest(chunks_of(data), expected_sha256=None, label="built.whl")
    assert info.sha256 == sha(data)
    assert store.has(sha(data))


async def test_expected_hash_is_accepted_in_upper_case(store: BlobStore) -> None:
    data = b"case"
    info = await store.ingest(chunks_of(data), expected_sha256=sha(data).upper(), label="x.whl")
    assert info.sha256 == sha(data)


async def test_hash_mismatch_names_file_and_both_hashes_and_keeps_nothing(
    store: BlobStore,
) -> None:
    data = b"tampered content" * 1000
    promised = sha(b"original content")

    with pytest.raises(HashMismatch) as caught:
        await store.ingest(chunks_of(data), expected_sha256=promised, label="evil-1.0.whl")

    message = str(caught.value)
    assert "evil-1.0.whl" in message
    assert promised in message
    assert sha(data) in message
    assert caught.value.details == {
        "file": "evil-1.0.whl",
        "expected": promised,
        "actual": sha(data),
    }
    assert visible_blobs(store) == []
    assert temp_files(store) == []


async def test_size_differing_from_the_promise_is_a_mismatch(store: BlobStore) -> None:
    data = b"x" * 100
    with pytest.raises(HashMismatch, match="promised 50 bytes"):
        await store.ingest(
            chunks_of(data, 10), expected_sha256=sha(data), expected_size=50, label="s.whl"
        )
    with pytest.raises(HashMismatch, match="promised 200 bytes, got 100"):
        await store.ingest(
            chunks_of(data, 10), expected_sha256=sha(data), expected_size=200, label="s.whl"
        )
    assert visible_blobs(store) == [] and temp_files(store) == []


async def test_exceeding_max_size_aborts_the_stream(store: BlobStore) -> None:
    consumed = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal consumed
        while True:
            consumed += 1
            await trio.lowlevel.checkpoint()
            yield b"z" * 4096

    with pytest.raises(HostileInput, match=r"huge\.whl: larger than the limit of 65536 bytes"):
        await store.ingest(endless(), expected_sha256=None, max_size=65536, label="huge.whl")
    assert consumed == 17
    assert visible_blobs(store) == [] and temp_files(store) == []


async def test_malformed_expected_hash_is_refused_before_anything_is_written(
    store: BlobStore,
) -> None:
    with pytest.raises(HostileInput, match="malformed sha256"):
        await store.ingest(chunks_of(b"x"), expected_sha256="../../etc/passwd", label="p.whl")
    with pytest.raises(HostileInput):
        store.path("0" * 63 + "/")
    assert temp_files(store) == []


async def test_cancellation_mid_stream_leaves_no_temp_file(store: BlobStore) -> None:
    started = trio.Event()

    async def slow() -> AsyncIterator[bytes]:
        for _ in range(3):
            yield b"a" * WRITE_BATCH  # flushed: the temp file now exists
        started.set()
        await trio.sleep_forever()
        yield b""  # pragma: no cover

    async with trio.open_nursery() as nursery:

        async def run() -> None:
            await store.ingest(slow(), expected_sha256=None, label="slow.whl")

        nursery.start_soon(run)
        await started.wait()
        await trio.testing.wait_all_tasks_blocked()
        assert len(temp_files(store)) == 1
        nursery.cancel_scope.cancel()

    assert temp_files(store) == []
    assert visible_blobs(store) == []


async def test_reingesting_existing_content_keeps_one_blob(store: BlobStore) -> None:
    data = b"same bytes from two indexes"
    first = await store.ingest(chunks_of(data), expected_sha256=sha(data), label="a.whl")
    second = await store.ingest(chunks_of(data), expected_sha256=sha(data), label="a.whl")
    assert first == second
    assert visible_blobs(store) == [store.path(first.sha256)]


async def test_concurrent_requests_for_one_file_share_one_download(store: BlobStore) -> None:
    data = os.urandom(200_000)
    downloads = 0

    async def download() -> BlobInfo:
        nonlocal downloads
        downloads += 1

        async def body() -> AsyncIterator[bytes]:
            for start in range(0, len(data), 8192):
                await trio.sleep(0.001)
                yield data[start : start + 8192]

        return await store.ingest(body(), expected_sha256=sha(data), label="shared.whl")

    results: list[BlobInfo] = []
    async with trio.open_nursery() as nursery:
        flight: SingleFlight[str, BlobInfo] = SingleFlight(nursery)

        async def request() -> None:
            results.append(await flight.run(sha(data), download))

        for _ in range(2):
            nursery.start_soon(request)

    assert downloads == 1
    assert results == [BlobInfo(sha(data), len(data))] * 2
    assert visible_blobs(store) == [store.path(sha(data))]


async def test_ingest_path_copies_a_local_file(store: BlobStore, tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path / "dist", "local-pkg", "1.0")
    data = wheel.read_bytes()

    info = await store.ingest_path(wheel, sha(data), wheel.name)

    assert info == BlobInfo(sha(data), len(data))
    assert store.path(info.sha256).read_bytes() == data
    assert wheel.exists()


async def test_ingest_path_checks_the_hash(store: BlobStore, tmp_path: Path) -> None:
    source = tmp_path / "x-1.0.tar.gz"
    source.write_bytes(b"not what the page said")
    with pytest.raises(HashMismatch, match=r"x-1\.0\.tar\.gz"):
        await store.ingest_path(source, sha(b"other"), source.name)
    assert visible_blobs(store) == []


async def test_ingest_path_of_a_missing_file_is_not_found(store: BlobStore, tmp_path: Path) -> None:
    with pytest.raises(NotFound, match=r"gone\.whl"):
        await store.ingest_path(tmp_path / "gone.whl", None, "gone.whl")


def test_open_of_an_absent_blob_is_not_found(store: BlobStore) -> None:
    with pytest.raises(NotFound):
        store.open("a" * 64)
    assert not store.has("a" * 64)


async def test_sweep_removes_crash_debris_and_reports_how_many(store: BlobStore) -> None:
    data = b"kept"
    info = await store.ingest(chunks_of(data), expected_sha256=None, label="k.whl")
    (store.tmp_dir / f"{TEMP_PREFIX}dead1").write_bytes(b"partial")
    (store.tmp_dir / f"{TEMP_PREFIX}dead2").write_bytes(b"partial")
    (store.tmp_dir / "leftover-dir").mkdir()
    (store.tmp_dir / "leftover-dir" / "f").write_bytes(b"x")

    assert store.sweep() == 3
    assert temp_files(store) == []
    assert store.has(info.sha256)
    assert store.sweep() == 0


async def test_usage_and_inventory_reflect_committed_blobs(store: BlobStore) -> None:
    a = await store.ingest(chunks_of(b"a" * 10), expected_sha256=None, label="a")
    b = await store.ingest(chunks_of(b"b" * 25), expected_sha256=None, label="b")
    assert store.usage() == (2, 35)
    assert store.inventory() == {a.sha256: 10, b.sha256: 25}


async def test_remove_deletes_a_blob(store: BlobStore) -> None:
    info = await store.ingest(chunks_of(b"old"), expected_sha256=None, label="old")
    assert store.remove(info.sha256) is True
    assert not store.has(info.sha256)
    assert store.remove(info.sha256) is False


async def test_verify_quarantines_a_corrupted_blob(store: BlobStore) -> None:
    good = await store.ingest(chunks_of(b"good" * 100), expected_sha256=None, label="g")
    bad = await store.ingest(chunks_of(b"soon rotten"), expected_sha256=None, label="b")
    rotten = store.path(bad.sha256)
    rotten.chmod(0o644)
    rotten.write_bytes(b"bit rot")
    forgotten: list[str] = []
    progress: list[VerifyProgress] = []

    async def on_corrupt(name: str) -> None:
        forgotten.append(name)

    async def on_progress(update: VerifyProgress) -> None:
        progress.append(update)

    report = await store.verify(on_progress, on_corrupt)

    assert report.checked == 2 and not report.clean
    [corrupt] = report.corrupt
    assert corrupt.name == bad.sha256
    assert corrupt.actual_sha256 == sha(b"bit rot")
    assert (store.root / corrupt.quarantined_as).read_bytes() == b"bit rot"
    assert corrupt.quarantined_as.startswith("quarantine/")
    assert forgotten == [bad.sha256]
    assert not store.has(bad.sha256)
    assert store.has(good.sha256)
    assert progress[-1] == VerifyProgress(2, 2, 400 + len(b"bit rot"), 400 + len(b"bit rot"))
    assert (await store.verify()).clean


async def test_verify_quarantines_a_stray_file(store: BlobStore) -> None:
    stray = store.blobs_dir / "zz" / "notes.txt"
    stray.parent.mkdir()
    stray.write_bytes(b"not a blob")
    report = await store.verify()
    assert [c.name for c in report.corrupt] == ["zz/notes.txt"]
    assert not stray.exists()


async def test_open_cache_sweeps_debris_and_reconciles_blob_rows(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    store, db, recovery = open_cache(root)
    assert recovery == CacheRecovery(0, 0, 0)
    kept = await store.ingest(chunks_of(b"kept"), expected_sha256=None, label="kept.whl")
    db.record_blob(kept.sha256, kept.size, "kept.whl")
    # A crash after committing a blob but before recording it, one after removing a blob but
    # before forgetting it, and one mid-ingest:
    orphan = await store.ingest(chunks_of(b"orphan"), expected_sha256=None, label="o.whl")
    db.record_blob("f" * 64, 5, "removed.whl")
    (store.tmp_dir / f"{TEMP_PREFIX}partial").write_bytes(b"half")
    db.close()

    store, db, recovery = open_cache(root)

    assert recovery == CacheRecovery(swept=1, rows_added=1, rows_dropped=1)
    assert db.blob_rows() == {kept.sha256: kept.size, orphan.sha256: orphan.size}
    assert (root / METADB_NAME).is_file()


# -- disk full -----------------------------------------------------------------------------


async def test_disk_full_raises_diskfull_and_keeps_the_store_consistent(tmp_path: Path) -> None:
    with small_tmpfs(tmp_path / "small", "1m") as root:
        store = BlobStore(root)
        fits = await store.ingest(chunks_of(b"f" * 100_000), expected_sha256=None, label="fits")
        too_big = os.urandom(2 * 1024 * 1024)

        with pytest.raises(DiskFull) as caught:
            await store.ingest(chunks_of(too_big), expected_sha256=sha(too_big), label="big.whl")

        assert "big.whl" in str(caught.value)
        assert "no space left" in str(caught.value)
        assert temp_files(store) == []
        assert store.inventory() == {fits.sha256: 100_000}
        assert (await store.verify()).clean
        # The space is free again: a file that fits still goes in.
        again = await store.ingest(chunks_of(b"g" * 1000), expected_sha256=None, label="g")
        assert store.has(again.sha256)


# -- kill -9 -------------------------------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import sys, trio
    from pathlib import Path
    from satchel.daemon.storage.store import BlobStore, WRITE_BATCH

    async def body():
        for i in range(64):
            yield bytes([i % 251]) * WRITE_BATCH
            if i == 1:  # chunks 0 and 1 have been written when this runs
                print("streaming", flush=True)
                sys.stdin.read()  # held here until killed: the parent never writes

    async def main():
        store = BlobStore(Path(sys.argv[1]))
        info = await store.ingest(body(), expected_sha256=sys.argv[2], label="slow.whl")
        print("committed", info.sha256, flush=True)

    trio.run(main)
    """
)


def slow_payload() -> bytes:
    return b"".join(bytes([i % 251]) * WRITE_BATCH for i in range(64))


async def test_kill_9_mid_ingest_leaves_nothing_visible_and_a_rerun_completes(
    tmp_path: Path,
) -> None:
    root = tmp_path / "cache"
    payload = slow_payload()
    store = BlobStore(root)
    child = await trio.lowlevel.open_process(
        [sys.executable, "-c", CHILD, str(root), sha(payload)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=REPO,
    )
    try:
        assert child.stdout is not None
        output = b""
        with trio.fail_after(120):  # a hang guard, not a measurement (a loaded machine)
            while b"streaming\n" not in output:
                received = await child.stdout.receive_some()
                assert received, f"the child exited early: {output!r}"
                output += received
        # "streaming" is printed when the ingest asks for a third chunk: two are on disk, and
        # the child waits there for the kill.
        [partial] = temp_files(store)
        assert partial.stat().st_size == 2 * WRITE_BATCH
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        await child.wait()
    assert child.returncode == -signal.SIGKILL

    assert visible_blobs(store) == []
    assert len(temp_files(store)) == 1
    assert store.sweep() == 1

    info = await store.ingest(
        chunks_of(payload, WRITE_BATCH), expected_sha256=sha(payload), label="slow.whl"
    )
    assert info == BlobInfo(sha(payload), len(payload))
    assert (await store.verify()).clean


# -- event loop stays responsive -----------------------------------------------------------


async def test_ingest_hashes_and_writes_off_the_event_loop(
    store: BlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every hash, write and fsync of an ingest runs in a worker thread, never on the loop's.

    Checked by where the work runs, not by how long a loop step took: a duration bound fails
    on a loaded machine for reasons that have nothing to do with the code.
    """
    data = os.urandom(4 * WRITE_BATCH)
    loop_thread = threading.current_thread()
    threads: list[tuple[str, threading.Thread]] = []
    for name in ("write", "finish"):
        original = getattr(store_module._TempWriter, name)

        def recorded(self: object, *args: object, _name: str = name, _f: Any = original) -> Any:
            threads.append((_name, threading.current_thread()))
            return _f(self, *args)

        monkeypatch.setattr(store_module._TempWriter, name, recorded)

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(data), WRITE_BATCH // 2):
            yield data[start : start + WRITE_BATCH // 2]

    info = await store.ingest(chunks(), expected_sha256=sha(data), label="big.whl")

    assert info == BlobInfo(sha(data), len(data))
    assert {name for name, _thread in threads} == {"write", "finish"}
    assert all(thread is not loop_thread for _name, thread in threads), threads


def test_a_batch_leaves_its_directories_to_one_sync_and_each_is_synced_once(
    tmp_path: Path,
) -> None:
    """issue 15: a batch of downloads makes its directory entries durable together."""
    unsynced = Unsynced()
    store = BlobStore(tmp_path / "cache")
    for payload in (b"one", b"two"):
        tmp = store.tmp_dir / f"staged-{payload.decode()}"
        tmp.write_bytes(payload)
        store._commit(tmp, hashlib.sha256(payload).hexdigest(), unsynced)
    # blobs/aa and blobs/aa/bb of each, and blobs/ itself (twice asked, once synced)
    assert unsynced.sync() == 5
    assert unsynced.sync() == 0


def test_a_sync_returns_only_once_every_directory_added_before_it_is_durable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two prefetches settle at once: the second must not answer while the first is still
    making the second's directories durable (it took them all)."""
    unsynced = Unsynced()
    unsynced.add(tmp_path)
    first_syncing, release = threading.Event(), threading.Event()
    real = fsutil.fsync_dir

    def slow(directory: Path) -> None:
        first_syncing.set()
        release.wait(30)
        real(directory)

    monkeypatch.setattr(fsutil, "fsync_dir", slow)
    second_call_waits_for_the_first(
        unsynced.sync,
        first_syncing,
        release,
        "answered while the directories were not durable yet",
        owner=unsynced,
    )
