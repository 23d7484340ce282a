"""How a project page is kept in the metadata database: its header and validators in ``pages``,
its files in ``page_files``, `PAGE_BATCH` per row.

The page itself is msgspec JSON without its files; its validators (fetched_at, etag,
last_modified, max_age) are columns, so a 304 revalidation updates a few bytes instead of
re-encoding the page. Its files are msgpack rows of `PAGE_BATCH`, so that a page of 90,000 files
is never one 50 MB value: encoding or decoding that held the GIL for 50-200 ms at a time, and
SQLite copied it whole (issue 11.6). Pages stored before then keep their files in ``pages``;
rows stored before `FileEntry` became compact hold maps (`FileEntryMap`): both are still read.
Repeated values of a page's files are shared as they are decoded (`model.share_repeated`).
"""

from __future__ import annotations

import sqlite3
from typing import Any

import msgspec

from satchel.daemon.storage.memory import tuple_held_if_huge
from satchel.daemon.storage.model import FileEntry, FileEntryMap, ProjectPage, share_repeated

__all__ = ["PAGE_BATCH", "read_page", "write_page"]

_PUT_PAGE = "INSERT OR REPLACE INTO pages VALUES (?, ?, ?, ?, ?, ?, ?)"
_PAGE_FILES = "SELECT files FROM page_files WHERE idx = ? AND project = ? ORDER BY seq"
#: Files per ``page_files`` row: ~120 KB, encoded or decoded in under a millisecond, so a
#: thread storing or reading a huge page lets the event loop run between rows (issue 11.6).
PAGE_BATCH = 250

_page_encoder = msgspec.json.Encoder()
_page_decoder = msgspec.json.Decoder(ProjectPage)
_files_encoder = msgspec.msgpack.Encoder()
_files_decoder = msgspec.msgpack.Decoder(list[FileEntry])


_stored_files_decoder = msgspec.msgpack.Decoder(list[FileEntryMap])


def _decode_page(data: bytes) -> ProjectPage:
    try:
        return _page_decoder.decode(data)
    except msgspec.ValidationError:  # its files in the layout of before
        fields = msgspec.json.decode(data)
        stored = msgspec.convert(fields.pop("files"), list[FileEntryMap])
        page = msgspec.convert(fields, ProjectPage)
        return msgspec.structs.replace(page, files=tuple(file.entry() for file in stored))


def _decode_files(batch: bytes) -> list[FileEntry]:
    try:
        return _files_decoder.decode(batch)
    except msgspec.ValidationError:  # a row of the layout of before
        return [stored.entry() for stored in _stored_files_decoder.decode(batch)]


def write_page(conn: sqlite3.Connection, page: ProjectPage) -> None:
    """Store (or replace) the page of (page.index, page.project), inside a write transaction."""
    key = (page.index, page.project)
    conn.execute(
        _PUT_PAGE,
        (
            *key,
            _page_encoder.encode(msgspec.structs.replace(page, files=())),
            page.fetched_at,
            page.etag,
            page.last_modified,
            page.max_age,
        ),
    )
    conn.execute("DELETE FROM page_files WHERE idx = ? AND project = ?", key)
    for seq, start in enumerate(range(0, len(page.files), PAGE_BATCH)):
        files = _files_encoder.encode(page.files[start : start + PAGE_BATCH])
        conn.execute("INSERT INTO page_files VALUES (?, ?, ?, ?)", (*key, seq, files))


def read_page(conn: sqlite3.Connection, row: Any) -> ProjectPage:
    """The stored page of *row* (idx, project, page, fetched_at, etag, last_modified, max_age)
    with its validator columns, which a 304 may have updated, and its files, read `PAGE_BATCH`
    at a time."""
    index, project, data, fetched_at, etag, last_modified, max_age = row
    page = _decode_page(data)
    files: list[FileEntry] = list(page.files)
    seen: dict[object, object] = {}
    for (batch,) in conn.execute(_PAGE_FILES, (index, project)):
        files.extend(share_repeated(_decode_files(batch), seen))
    return msgspec.structs.replace(
        page,
        files=tuple_held_if_huge(files),  # a huge page is freed off the event loop (11.6)
        fetched_at=fetched_at,
        etag=etag,
        last_modified=last_modified,
        max_age=max_age,
    )
