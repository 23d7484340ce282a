"""A damaged metadata database: found at start, moved aside, rebuilt from the store offline.

The database (`metadb`) is derived knowledge: index pages, core metadata, provenance and usage.
The blob store is the ground truth for what is stored, and each blob's provenance record
(`satchel.daemon.storage.provenance`) says which index served it. So a damaged database need not
cost
the user their offline installs, nor a trip to the network.

At every start, before the database is opened (`check`):

* a missing or 0-byte file beside stored blobs is damage (SQLite would silently start an empty
  database, and every stored file would look unknown), as is a header that is not SQLite's or
  a path that is not a regular file;
* ``PRAGMA quick_check`` must answer ``ok``. It reads every page but skips the index
  cross-checks of ``integrity_check``: on the dev machine, a 68 MB database (4,000 pages of 60
  files) took 35 ms against 80 ms, with the file in the page cache. Page-level damage (what bit
  rot, torn writes and stray overwrites produce) is what it finds. It runs while ``ping`` and
  ``status`` already answer; requests that need the cache wait for it.

A damaged database is moved (with its ``-wal`` and ``-shm``) into ``quarantine/`` for the user,
and `rebuild` writes a new one from the store, in a temporary file renamed into place only when
complete (a crash mid-rebuild leaves no database beside stored blobs, which the next start
rebuilds again; never a half-filled database that looks healthy):

* every blob, with its size and file name (from its record, else from its own metadata);
* every origin in its record, and per (index, project) a page listing the stored files exactly
  as that index listed them, marked as fetched at time 0, so online it is revalidated at once
  and offline it lets a resolve choose among the stored files;
* the built-wheel links (sdist, interpreter tag -> wheel) from the records;
* the core metadata (METADATA / PKG-INFO) read from each blob;
* each project's binding to its index (`satchel.daemon.indexes.origins`), which is state, not cache:
  lost, the next online answer would bind the project afresh, possibly to an impostor. A project
  whose stored files all came from one index (by URL; a record written before URLs were kept
  names the index, looked up in config.toml) is bound to it again (how: ``restored``). A project
  whose files came from several indexes, or from an index that cannot be identified, is not
  guessed: it is marked ``contested``, listed in the rebuild report, and every answer for it is
  refused until the user says which index it comes from (`satchel origins trust`, or a pin).

What is lost: pages of projects none of whose files are stored, metadata fetched without its
file, usage times (all files count as used now), the "not here" records of bindings, and daemon
state (watch history).

A damage found later, while serving (`DatabaseDamaged`), is reported with its own error code and
the advice to restart the daemon, which then finds it here.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import stat
import time
import zipfile
import zlib
from collections import defaultdict
from collections.abc import Mapping
from email.parser import BytesHeaderParser
from pathlib import Path

import msgspec
from packaging.utils import canonicalize_name

from satchel.daemon.errors import SatchelError
from satchel.daemon.indexes.catalog import metadata_from_file
from satchel.daemon.indexes.origins import Binding, How, Origins
from satchel.daemon.installing.wheelfile import open_zip
from satchel.daemon.storage import provenance
from satchel.daemon.storage.fsutil import fsync_dir
from satchel.daemon.storage.metadb import MetaDB
from satchel.daemon.storage.model import FileEntry, Origin, ProjectPage
from satchel.daemon.storage.store import METADB_NAME, BlobStore

__all__ = ["DatabaseRecovery", "backfill_provenance", "check", "rebuild", "recover"]

log = logging.getLogger(__name__)

_HEADER = b"SQLite format 3\x00"
_SIDE_FILES = ("-wal", "-shm", "-journal")
#: The core-metadata name index of files no index is known for (restored from the blob only).
UNATTRIBUTED = "(restored)"
#: `MetaDB` state key set once every blob stored before provenance records existed has one.
_BACKFILLED = "provenance-backfilled"


class DatabaseRecovery(msgspec.Struct, frozen=True, kw_only=True):
    """What `recover` found and did; `describe` is what the log and `satchel status` say."""

    problem: str
    database: str
    #: Where the damaged files were moved ("" when there was no file to keep).
    moved_to: str
    files: int = 0
    attributed: int = 0
    pages: int = 0
    built_wheels: int = 0
    core_metadata: int = 0
    #: Projects bound again to the one index their stored files came from.
    bindings: int = 0
    #: "project (index, index)" for each project whose files came from several indexes (or an
    #: unidentifiable one): refused until `satchel origins trust`.
    contested: tuple[str, ...] = ()

    def describe(self) -> str:
        kept = f"it was moved to {self.moved_to} and " if self.moved_to else "it was "
        text = (
            f"the cache database {self.database} was damaged ({self.problem}); "
            f"{kept}rebuilt from the stored files without the network: "
            f"{self.files} files ({self.attributed} with the index they came from), "
            f"{self.pages} index pages, {self.built_wheels} built wheels, "
            f"{self.core_metadata} metadata files, {self.bindings} project origins"
        )
        if self.contested:
            shown = "; ".join(self.contested[:10])
            more = f" and {len(self.contested) - 10} more" if len(self.contested) > 10 else ""
            text += (
                f". Not restored, because their stored files came from several indexes: "
                f"{shown}{more}; each is refused until you say which index it comes from "
                "(`satchel origins trust PROJECT INDEX`)"
            )
        return text


def check(path: Path, *, has_blobs: bool) -> str | None:
    """Why the database at *path* cannot be used, or None when it is sound (or absent)."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return "it is missing while the cache holds files" if has_blobs else None
    if not stat.S_ISREG(st.st_mode):
        return "it is not a regular file"
    if st.st_size == 0:
        if not has_blobs:
            return None  # a database created and never written: nothing to lose or rebuild
        return "it is empty (0 bytes) while the cache holds files"
    try:
        with path.open("rb") as handle:
            header = handle.read(len(_HEADER))
    except OSError as exc:
        return f"it cannot be read: {exc.strerror}"
    if header != _HEADER:
        return "it is not an SQLite database: its header is damaged"
    try:
        conn = sqlite3.connect(path, isolation_level=None)
    except sqlite3.Error as exc:
        return f"it cannot be opened: {exc}"
    try:
        rows = conn.execute("PRAGMA quick_check").fetchall()
    except sqlite3.DatabaseError as exc:
        return f"it cannot be read: {exc}"
    finally:
        conn.close()
    found = [str(row[0]) for row in rows]
    if found == ["ok"]:
        return None
    return "PRAGMA quick_check: " + "; ".join(found[:3])[:300]


def recover(cache_dir: Path, known: Mapping[str, str] | None = None) -> DatabaseRecovery | None:
    """Check the database of the cache at *cache_dir*; move it aside and rebuild when damaged.

    *known* maps configured index names to their identities (`index_identity`), for records
    written before they held the index URL.

    Blocking: the daemon runs it in a worker thread before `store.open_cache`, under its
    single-instance lock.
    """
    store = BlobStore(cache_dir)
    path = Path(cache_dir) / METADB_NAME
    problem = check(path, has_blobs=_any_file(store.blobs_dir))
    if problem is None:
        return None
    log.error("the cache database %s is damaged: %s", path, problem)
    moved = _move_aside(path, store.quarantine_dir) if _exists(path) else ""
    started = time.monotonic()
    result = rebuild(path, store, store.inventory(), known or {})
    result = msgspec.structs.replace(result, problem=problem, moved_to=str(moved))
    log.warning("%s (%.1f s)", result.describe(), time.monotonic() - started)
    return result


def _any_file(directory: Path) -> bool:
    """Whether anything is stored (stops at the first file: a healthy start walks no further)."""
    return any(filenames for _dirpath, _dirnames, filenames in os.walk(directory))


def _exists(path: Path) -> bool:
    return any(Path(f"{path}{side}").exists() for side in ("", *_SIDE_FILES))


def _move_aside(path: Path, quarantine_dir: Path) -> Path:
    """Move the database and its side files into a new directory under *quarantine_dir*."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    dest = quarantine_dir / f"{path.name}.damaged-{stamp}"
    suffix = 0
    while dest.exists():
        suffix += 1
        dest = quarantine_dir / f"{path.name}.damaged-{stamp}-{suffix}"
    dest.mkdir(mode=0o700, parents=True)
    for side in ("", *_SIDE_FILES):
        with contextlib.suppress(FileNotFoundError):
            Path(f"{path}{side}").rename(dest / f"{path.name}{side}")
    fsync_dir(dest)
    fsync_dir(path.parent)
    return dest


def rebuild(
    path: Path, store: BlobStore, present: dict[str, int], known: Mapping[str, str] | None = None
) -> DatabaseRecovery:
    """Write a new database at *path* from the blobs *present* and their records (*known*: see
    `recover`)."""
    tmp = store.tmp_dir / f"rebuild-{path.name}"
    for side in ("", *_SIDE_FILES):
        with contextlib.suppress(FileNotFoundError):
            Path(f"{tmp}{side}").unlink()
    db = MetaDB(tmp)
    counts = {"attributed": 0, "built": 0, "metadata": 0}
    pages: dict[tuple[str, str], list[FileEntry]] = defaultdict(list)
    #: project -> {index identity, or "" when unknown: index name}
    served: dict[str, dict[str, str]] = defaultdict(dict)
    try:
        with db.batch():
            for sha, size in sorted(present.items()):
                _restore_blob(db, store, sha, size, pages, counts, served, known or {})
            for (index, project), entries in sorted(pages.items()):
                db.put_page(ProjectPage(index=index, project=project, url="", files=tuple(entries)))
            bindings = _bindings(served)
            Origins(db).restore(bindings)
    finally:
        db.close()
    Path(tmp).replace(path)  # closed cleanly: the WAL was checkpointed into the file
    fsync_dir(path.parent)
    return DatabaseRecovery(
        problem="",
        database=str(path),
        moved_to="",
        files=len(present),
        attributed=counts["attributed"],
        pages=len(pages),
        built_wheels=counts["built"],
        core_metadata=counts["metadata"],
        bindings=sum(1 for b in bindings if b.how is How.RESTORED),
        contested=tuple(f"{b.project} ({b.index})" for b in bindings if b.how is How.CONTESTED),
    )


def _bindings(served: Mapping[str, Mapping[str, str]]) -> list[Binding]:
    """Per project, the binding its stored files' origins support (see the module docstring).

    *served*: project -> {index identity (or "?name" when unidentifiable) -> index name}."""
    now = time.time()
    out = []
    for project, origins in sorted(served.items()):
        if len(origins) == 1 and not next(iter(origins)).startswith("?"):
            url, name = next(iter(origins.items()))
            how, label = How.RESTORED, name
        else:
            url = ""
            how = How.CONTESTED
            label = ", ".join(
                f"{name} ({key})" if not key.startswith("?") else f"{name} (URL unknown)"
                for key, name in sorted(origins.items(), key=lambda item: item[1])
            )
        out.append(Binding(project=project, url=url, index=label, how=how, bound_at=now))
    return out


def _restore_blob(
    db: MetaDB,
    store: BlobStore,
    sha: str,
    size: int,
    pages: dict[tuple[str, str], list[FileEntry]],
    counts: dict[str, int],
    served: dict[str, dict[str, str]],
    known: Mapping[str, str],
) -> None:
    record = provenance.read(store.root, sha)
    filename = record.filename if record is not None else _filename_from_blob(store.path(sha))
    db.record_blob(sha, size, filename)
    index_name = UNATTRIBUTED
    if record is not None:
        if record.sources:
            counts["attributed"] += 1
            index_name = record.sources[0].index
        for source in record.sources:
            entry = source.entry
            origin = Origin(
                index=source.index, project=source.project, filename=entry.filename, url=entry.url
            )
            db.add_origin(sha, origin)
            identity = source.index_url or known.get(source.index) or f"?{source.index}"
            served[canonicalize_name(source.project)][identity] = source.index
            pages[(source.index, canonicalize_name(source.project))].append(
                msgspec.structs.replace(entry, sha256=sha, size=size)
            )
        for built in record.built:
            db.put_built_wheel(built.sdist_sha256, built.interpreter_tag, sha, filename)
            counts["built"] += 1
    if filename:
        try:
            data = metadata_from_file(store.path(sha), filename)
        except (SatchelError, OSError) as exc:
            log.info("rebuild: no core metadata from %s (%s): %s", filename, sha, exc)
        else:
            db.put_core_metadata(sha, data, index=index_name, filename=filename)
            counts["metadata"] += 1


def _filename_from_blob(path: Path) -> str:
    """A file name for a blob with no record: a wheel's from its dist-info, else ""."""
    try:
        with open_zip(path) as zf:  # its central directory within the wheel cap, as any wheel's
            names = [
                n for n in zf.namelist() if n.count("/") == 1 and n.endswith(".dist-info/WHEEL")
            ]
            if len(names) != 1:
                return ""
            dist_info = names[0].split("/")[0][: -len(".dist-info")]
            with zf.open(names[0]) as member:  # its start only: it may inflate to GiBs
                wheel = BytesHeaderParser().parsebytes(member.read(1 << 16))
    except (SatchelError, OSError, zipfile.BadZipFile, KeyError, zlib.error, EOFError):
        return ""  # corrupt, even if stored as its index served it: no name, not the rebuild's end
    name, _, version = dist_info.rpartition("-")
    tags = [t.strip().split("-") for t in wheel.get_all("Tag", []) if t.count("-") == 2]
    if not name or not tags:
        return ""

    def joined(position: int) -> str:
        return ".".join(dict.fromkeys(tag[position] for tag in tags))

    build = (wheel.get("Build") or "").strip()
    stem = "-".join(
        part for part in (canonicalize_name(name).replace("-", "_"), version, build) if part
    )
    return f"{stem}-{joined(0)}-{joined(1)}-{joined(2)}.whl"


def backfill_provenance(store: BlobStore, metadb: MetaDB) -> int:
    """Write the provenance record of every blob stored before records existed (once).

    Each origin the database knows becomes a source, with the page entry the index listed when
    its page is still stored (else a minimal entry: name, URL, hash). Returns how many records
    were written; later starts cost one state lookup.
    """
    if metadb.get_state(_BACKFILLED) is not None:
        return 0
    present = store.inventory()
    written = 0
    page_files: dict[tuple[str, str], dict[str, FileEntry]] = {}
    for sha in provenance.missing(store.root, present):
        for seen in metadb.origins_seen(sha):
            origin = seen.origin
            key = (origin.index, origin.project)
            if key not in page_files:
                page = metadb.get_page(*key)
                page_files[key] = {f.url: f for f in page.files} if page is not None else {}
            entry = page_files[key].get(origin.url) or FileEntry.of(
                filename=origin.filename, url=origin.url, hashes={"sha256": sha}
            )
            provenance.add_source(store.root, sha, origin.index, origin.project, entry)
            written += 1
    for built in metadb.built_wheels_from(metadb.blob_rows()):
        if built.wheel_sha256 in present:
            provenance.add_built(
                store.root,
                built.wheel_sha256,
                built.filename,
                built.sdist_sha256,
                built.interpreter_tag,
            )
    metadb.put_state(_BACKFILLED, b"1")
    if written:
        log.info("wrote %d provenance records for files stored before they existed", written)
    return written
