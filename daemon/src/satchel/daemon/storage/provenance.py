"""Where each stored file came from, beside the file itself: what survives a lost database.

Identity is the sha256, trust is the index: a blob is only usable offline while Satchel knows
which index served it (and under which project and name), and that knowledge normally lives in
the metadata database (`metadb` origins and pages). If the database is destroyed, the blobs alone
would say *what* they are but not *whose* they are, and taking a project from an index other than
the one it came from is how dependency confusion happens. So each blob gets a small sidecar
record, written (atomically, durably) before the database row that mentions it::

    <cache>/provenance/<aa>/<sha256>.json

holding the file name and every (index name and URL, project, page entry) that served it, and
for a wheel Satchel built, the sdist and interpreter tag it was built from.
`satchel.daemon.indexes.dbrecovery` rebuilds the database from the blobs and these records, without
the
network (and each project's binding to its index: the URL is what it is bound to). A blob without
a record (stored by an older Satchel and never seen since, or added from a local path) is
restored under the name its own metadata gives, with no index: it is kept, but no index page
lists it.

Sidecars are written when an origin is first seen (downloads, and stored files a resolve
attributes to an index for the first time), not on every use; the database's origins are copied
to records once (`dbrecovery.backfill_provenance`) for blobs stored before records existed.
Garbage collection removes a blob's record with the blob.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import threading
from collections.abc import Iterable
from pathlib import Path

import msgspec

from satchel.daemon.storage.fsutil import (
    TEMP_PREFIX,
    Unsynced,
    disk_full_guard,
    replace_durably,
    sync_dir,
)
from satchel.daemon.storage.model import FileEntry

__all__ = [
    "DIRNAME",
    "MAX_RECORD_BYTES",
    "Built",
    "Provenance",
    "Source",
    "add_built",
    "add_source",
    "missing",
    "path_for",
    "read",
    "remove",
]

log = logging.getLogger(__name__)

DIRNAME = "provenance"

#: A record holds a handful of origins of a few hundred bytes each; anything this large was not
#: written by Satchel and is ignored rather than read into memory.
MAX_RECORD_BYTES = 1 << 20

_SHA256_RE = re.compile(r"[0-9a-f]{64}")


class Source(msgspec.Struct, frozen=True, kw_only=True):
    """One index that served the file: the page entry exactly as that index listed it."""

    index: str
    project: str
    entry: FileEntry
    #: The index's identity (`satchel.daemon.indexes.origins.index_identity`: its URL without
    #: credentials) when it served the file: names can be reused for another host, and a
    #: rebuild restores project bindings by URL. "" in records written before it was kept.
    index_url: str = ""


class Built(msgspec.Struct, frozen=True, kw_only=True):
    """A wheel Satchel built: from which sdist, for which interpreter."""

    sdist_sha256: str
    interpreter_tag: str


class Provenance(msgspec.Struct, frozen=True, kw_only=True):
    filename: str
    sources: tuple[Source, ...] = ()
    built: tuple[Built, ...] = ()


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Provenance)
#: Records are read-modify-written; one daemon process owns the cache (instance lock).
_lock = threading.Lock()


def path_for(cache_root: Path, sha256: str) -> Path:
    return Path(cache_root) / DIRNAME / sha256[:2] / f"{sha256}.json"


def read(cache_root: Path, sha256: str) -> Provenance | None:
    """The record of *sha256*, or None when there is none (or it is unreadable: logged)."""
    path = path_for(cache_root, sha256)
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_RECORD_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.warning("cannot read the provenance record %s: %s", path, exc)
        return None
    if len(data) > MAX_RECORD_BYTES:
        log.warning("ignoring the provenance record %s: larger than %d bytes", path, len(data))
        return None
    try:
        return _decoder.decode(data)
    except msgspec.DecodeError as exc:
        log.warning("ignoring the unreadable provenance record %s: %s", path, exc)
        return None


def add_source(
    cache_root: Path,
    sha256: str,
    index: str,
    project: str,
    entry: FileEntry,
    *,
    index_url: str = "",
    unsynced: Unsynced | None = None,
) -> None:
    """Remember that *index* (at *index_url*) served *sha256* as *entry* of *project* (no-op
    when known). *unsynced*: the record's directory entries are made durable with its batch."""
    source = Source(index=index, project=project, entry=entry, index_url=index_url)
    with _lock:
        found = read(cache_root, sha256)
        if found is None:
            _write(
                cache_root,
                sha256,
                Provenance(filename=entry.filename, sources=(source,)),
                unsynced,
            )
            return
        if any(
            s.index == index and s.entry.url == entry.url and s.index_url == index_url
            for s in found.sources
        ):
            return
        updated = msgspec.structs.replace(found, sources=(*found.sources, source))
        _write(cache_root, sha256, updated, unsynced)


def add_built(
    cache_root: Path, sha256: str, filename: str, sdist_sha256: str, interpreter_tag: str
) -> None:
    """Remember that the wheel *sha256* was built from *sdist_sha256* for *interpreter_tag*."""
    built = Built(sdist_sha256=sdist_sha256, interpreter_tag=interpreter_tag)
    with _lock:
        found = read(cache_root, sha256) or Provenance(filename=filename)
        if built in found.built:
            return
        _write(cache_root, sha256, msgspec.structs.replace(found, built=(*found.built, built)))


def missing(cache_root: Path, sha256s: Iterable[str]) -> list[str]:
    """Which of *sha256s* have no record yet."""
    return [sha for sha in sha256s if not path_for(cache_root, sha).exists()]


def remove(cache_root: Path, sha256: str) -> None:
    """Forget *sha256*'s record (garbage collection removed the blob)."""
    path_for(cache_root, sha256).unlink(missing_ok=True)


def _write(
    cache_root: Path, sha256: str, record: Provenance, unsynced: Unsynced | None = None
) -> None:
    """Write *record* durably: staged in the store's ``tmp/`` (swept at every start, so a crash
    leaves no debris here), fsynced, renamed into place, directory fsynced (*unsynced*: with
    its batch)."""
    if not _SHA256_RE.fullmatch(sha256):
        raise ValueError(f"not a sha256 hex digest: {sha256!r}")
    path = path_for(cache_root, sha256)
    for directory in (path.parent.parent, path.parent):
        try:
            directory.mkdir(mode=0o700)
        except FileExistsError:
            continue
        sync_dir(directory.parent, unsynced)  # the new directory must survive with the record
    tmp = Path(cache_root) / "tmp" / f"{TEMP_PREFIX}provenance-{secrets.token_hex(8)}"
    with disk_full_guard(path):
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                view = memoryview(_encoder.encode(record))
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            replace_durably(tmp, path, unsynced)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
