"""`indexes._juststored.JustStored`: metadata just stored, handed once to the next read of the
same file, bounded, and never older than what the metadb holds (issue 15)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from satchel.daemon.indexes._juststored import MAX_BYTES, MAX_ENTRIES, MAX_ENTRY_BYTES, JustStored


def test_what_was_stored_is_taken_once() -> None:
    kept = JustStored()
    written: list[str] = []
    kept.store("a", b"Name: a\n", lambda: written.append("a"))
    assert written == ["a"]
    assert kept.take("a") == b"Name: a\n"
    assert kept.take("a") is None, "a second read goes to the metadb"


def test_a_replacement_leaves_nothing_to_take() -> None:
    kept = JustStored()
    kept.store("sha", b"used", lambda: None)
    kept.store("idx\0file.whl", b"used", lambda: None)
    written: list[str] = []
    kept.replace(("sha", "idx\0file.whl"), lambda: written.append("own"))
    assert written == ["own"]
    assert kept.take("sha") is None and kept.take("idx\0file.whl") is None


def test_the_oldest_go_first_past_the_entry_bound() -> None:
    kept = JustStored()
    for n in range(MAX_ENTRIES + 5):
        kept.store(str(n), b"x", lambda: None)
    assert len(kept) == MAX_ENTRIES
    assert kept.take("0") is None
    assert kept.take(str(MAX_ENTRIES + 4)) == b"x"


def test_the_bytes_kept_are_bounded_and_a_large_file_is_not_kept() -> None:
    kept = JustStored()
    big = b"x" * MAX_ENTRY_BYTES
    for n in range(MAX_BYTES // MAX_ENTRY_BYTES + 3):
        kept.store(str(n), big, lambda: None)
    assert len(kept) * len(big) <= MAX_BYTES
    kept.store("huge", big + b"x", lambda: None)
    assert kept.take("huge") is None


@contextlib.contextmanager
def a_write_under_way(kept: JustStored) -> Iterator[None]:
    """While a worker thread's `store` of "b" is inside its (metadb) write, held there."""
    writing, release = threading.Event(), threading.Event()

    def slow_write() -> None:
        writing.set()
        release.wait()

    writer = threading.Thread(target=kept.store, args=("b", b"other", slow_write))
    writer.start()
    try:
        assert writing.wait(60)
        yield
    finally:
        release.set()
        writer.join()


def test_a_read_waits_for_no_write() -> None:
    """`take` runs on the event loop: a write under way (a metadb write waiting for a durable
    commit) must not hold it."""
    kept = JustStored()
    kept.store("a", b"data", lambda: None)
    with a_write_under_way(kept):
        assert kept.take("a") == b"data"
    assert kept.take("b") == b"other"


def test_metadata_whose_write_is_queued_is_kept_without_waiting_for_a_write() -> None:
    """`keep` runs on the event loop (issue 15: the metadb write is only queued): a write under
    way in a worker thread must not hold it."""
    kept = JustStored()
    with a_write_under_way(kept):
        kept.keep("a", b"data")
        assert kept.take("a") == b"data"
