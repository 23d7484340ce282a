"""`dbrecovery`: the start-up check of the metadata database and its rebuild from the store.

Real SQLite files damaged on disk, real wheels and sdists in a real blob store, provenance records
written by the same functions the catalog and the builder use. The end-to-end behaviour (a real
daemon, status, offline installs) is in tests/security/test_storage.py.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from satchel.daemon.api import RequestContext, dispatch, method
from satchel.daemon.indexes.dbrecovery import UNATTRIBUTED, check, recover
from satchel.daemon.storage import provenance
from satchel.daemon.storage.metadb import MetaDB
from satchel.daemon.storage.model import FileEntry, Origin
from satchel.daemon.storage.store import METADB_NAME, BlobStore
from satchel.protocol.messages import Error, Message, Request
from tests.support.daemon import in_process_app
from tests.support.wheels import build_sdist, build_wheel, corrupt_member

PAGE = 4096


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


def _ingest(store: BlobStore, path: Path) -> str:
    data = path.read_bytes()

    async def go() -> str:
        info = await store.ingest(_chunks(data), expected_sha256=None, label=path.name)
        return info.sha256

    return trio.run(go)


def _filled_db(path: Path, rows: int = 400) -> None:
    db = MetaDB(path)
    with db.batch():
        for i in range(rows):
            db.record_blob(f"{i:064x}", i, f"file-{i}.whl")
    db.close()


def test_check_accepts_a_sound_database_and_a_fresh_cache(tmp_path: Path) -> None:
    """issue 11.16: nothing to do for an intact database, nor for no database and no files."""
    path = tmp_path / METADB_NAME
    assert check(path, has_blobs=False) is None
    _filled_db(path)
    assert check(path, has_blobs=True) is None
    empty = tmp_path / "empty.sqlite"
    empty.write_bytes(b"")
    assert check(empty, has_blobs=False) is None


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        ("missing", "it is missing while the cache holds files"),
        ("zero", "it is empty (0 bytes) while the cache holds files"),
        ("header", "it is not an SQLite database: its header is damaged"),
        ("directory", "it is not a regular file"),
        ("pages", "database disk image is malformed"),
    ],
)
def test_check_names_each_kind_of_damage(tmp_path: Path, damage: str, reason: str) -> None:
    """issue 11.16: 0 bytes, a foreign header, a directory, and pages overwritten mid-file
    (0xff is no valid b-tree page type, so the damage is certain, not probable)."""
    path = tmp_path / METADB_NAME
    _filled_db(path)
    if damage == "missing":
        path.unlink()
    elif damage == "zero":
        path.write_bytes(b"")
    elif damage == "header":
        with path.open("r+b") as handle:
            handle.write(b"not sqlite at all")
    elif damage == "directory":
        path.unlink()
        path.mkdir()
    else:
        with path.open("r+b") as handle:
            handle.seek(PAGE)
            handle.write(b"\xff" * (path.stat().st_size - PAGE))

    found = check(path, has_blobs=True)

    assert found is not None
    assert reason in found


def test_rebuild_restores_files_origins_pages_built_wheels_and_metadata(tmp_path: Path) -> None:
    """issue 11.16: from the blobs and their provenance records alone: each file with its
    name and index, a page per (index, project) listing the entries as the index gave them,
    the sdist -> built wheel link, and core metadata; a file without a record keeps its name
    (from its own dist-info) but no index."""
    cache = tmp_path / "cache"
    store = BlobStore(cache)
    dist = tmp_path / "dist"
    wheel = build_wheel(dist, "alpha", "1.0", requires_python=">=3.8")
    sdist = build_sdist(dist, "beta", "2.0")
    built = build_wheel(dist / "built", "beta", "2.0", tag="cp311-cp311-linux_x86_64")
    orphan = build_wheel(dist, "gamma-pkg", "3.0", tag="py2.py3-none-any")
    shas = {p.name: _ingest(store, p) for p in (wheel, sdist, built, orphan)}
    alpha_entry = FileEntry.of(
        filename=wheel.name,
        url="http://127.0.0.1:1/files/" + wheel.name,
        hashes={"sha256": shas[wheel.name]},
        requires_python=">=3.8",
        yanked=True,
        yanked_reason="broken",
    )
    provenance.add_source(cache, shas[wheel.name], "internal", "alpha", alpha_entry)
    provenance.add_source(cache, shas[wheel.name], "mirror", "alpha", alpha_entry)
    beta_entry = FileEntry(filename=sdist.name, url="http://127.0.0.1:1/files/" + sdist.name)
    provenance.add_source(cache, shas[sdist.name], "internal", "beta", beta_entry)
    provenance.add_built(cache, shas[built.name], built.name, shas[sdist.name], "cp311-linux")
    (cache / METADB_NAME).write_bytes(b"")

    result = recover(cache)

    assert result is not None
    assert (result.files, result.attributed, result.pages, result.built_wheels) == (4, 2, 3, 1)
    assert result.core_metadata == 4
    assert result.moved_to.startswith(str(cache / "quarantine"))
    db = MetaDB(cache / METADB_NAME)
    assert db.blob_filenames(shas.values()) == {
        shas[wheel.name]: wheel.name,
        shas[sdist.name]: sdist.name,
        shas[built.name]: built.name,
        shas[orphan.name]: "gamma_pkg-3.0-py2.py3-none-any.whl",
    }
    assert db.origins(shas[wheel.name]) == [
        Origin(index=i, project="alpha", filename=wheel.name, url=alpha_entry.url)
        for i in ("internal", "mirror")
    ]
    assert db.origins(shas[orphan.name]) == []
    page = db.get_page("internal", "alpha")
    assert page is not None
    (entry,) = page.files
    assert (entry.requires_python, entry.yanked, entry.yanked_reason) == (">=3.8", True, "broken")
    assert entry.size == wheel.stat().st_size
    assert page.fetched_at == 0.0  # revalidated as soon as the index answers
    (beta,) = db.get_page("internal", "beta").files  # type: ignore[union-attr]
    assert beta.sha256 == shas[sdist.name]  # the index gave no hash: the store's identity
    link = db.get_built_wheel(shas[sdist.name], "cp311-linux")
    assert link is not None
    assert (link.wheel_sha256, link.filename) == (shas[built.name], built.name)
    metadata = db.get_core_metadata(shas[orphan.name])
    assert metadata is not None
    assert b"Name: gamma-pkg" in metadata
    assert db.get_core_metadata(index=UNATTRIBUTED, filename=orphan.name.replace("-pkg", "_pkg"))
    db.close()
    assert check(cache / METADB_NAME, has_blobs=True) is None


def test_a_rebuild_interrupted_before_its_rename_is_done_again(tmp_path: Path) -> None:
    """issue 11.16: the rebuilt database appears only complete; a crash after the damaged one
    was moved aside leaves no database beside the files, which the next start rebuilds."""
    cache = tmp_path / "cache"
    store = BlobStore(cache)
    wheel = build_wheel(tmp_path / "dist", "alpha", "1.0")
    sha = _ingest(store, wheel)
    entry = FileEntry(filename=wheel.name, url="http://127.0.0.1:1/" + wheel.name)
    provenance.add_source(cache, sha, "internal", "alpha", entry)
    (store.tmp_dir / f"rebuild-{METADB_NAME}").write_bytes(b"half a rebuild")

    result = recover(cache)

    assert result is not None
    assert result.problem == "it is missing while the cache holds files"
    assert result.moved_to == ""
    assert "it was rebuilt from the stored files" in result.describe()
    assert recover(cache) is None


#: Where the test method below reads (set by the test that calls it).
_damaged_paths: list[Path] = []


@method("test.read-damaged", dict)
async def _read_damaged(ctx: RequestContext, params: dict[str, object]) -> int:
    """A handler that reads a database the way MetaDB does (a real query on a real file)."""
    conn = sqlite3.connect(_damaged_paths[-1])
    try:
        return int(conn.execute("SELECT sum(size) FROM blobs").fetchone()[0])
    finally:
        conn.close()


def test_damage_found_while_serving_is_database_damaged_not_internal(tmp_path: Path) -> None:
    """issue 11.16: SQLite's "malformed" error inside a request becomes `database-damaged`,
    telling the user to restart (which rebuilds), not "internal error"."""
    path = tmp_path / "damaged.sqlite"
    _filled_db(path, rows=2000)
    with path.open("r+b") as handle:
        handle.seek(2 * PAGE)
        handle.write(b"\xff" * (path.stat().st_size - 2 * PAGE))

    _damaged_paths.append(path)

    async def main() -> Message:
        async def send(message: Message) -> None:
            pass

        app = in_process_app(tmp_path / "app")
        request = Request(1, "test.read-damaged", {})
        return await dispatch(RequestContext(app, 1, request.method, send), request)

    reply = trio.run(main)

    assert isinstance(reply, Error)
    assert reply.code == "database-damaged"
    assert "database disk image is malformed" in reply.message
    assert "restart the daemon (`satchel stop`)" in reply.message


def test_a_blob_with_no_record_is_named_only_within_the_central_directory_cap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A blob with no provenance record is named from its dist-info, read as every wheel is:
    a central directory above `MAX_CENTRAL_DIRECTORY` is not read (a stored hostile wheel
    declaring hundreds of MB would otherwise be parsed whole during a rebuild); it stays
    unnamed. Here the cap is lowered under a real wheel's central directory."""
    from satchel.daemon.indexes import dbrecovery
    from satchel.daemon.installing import wheelfile

    wheel = build_wheel(tmp_path / "dist", "demo", "1.0")
    assert dbrecovery._filename_from_blob(wheel) == wheel.name
    monkeypatch.setattr(wheelfile, "MAX_CENTRAL_DIRECTORY", 16)
    assert dbrecovery._filename_from_blob(wheel) == ""


def test_a_blob_with_no_record_is_named_without_inflating_its_wheel_file(tmp_path: Path) -> None:
    """A stored hostile wheel whose ``WHEEL`` member inflates to 48 MiB (48 KiB compressed),
    met by a rebuild with no provenance record for it: it is named from the start of its
    ``WHEEL`` file only (64 KiB), never inflated whole in memory (before: read whole, then cut;
    a member declaring GiBs was as many GiBs of the daemon's memory)."""
    import tracemalloc
    import zipfile

    from satchel.daemon.indexes import dbrecovery

    wheel = tmp_path / "bomb-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("bomb/__init__.py", "")
        with zf.open("bomb-1.0.dist-info/WHEEL", "w", force_zip64=True) as member:
            member.write(b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n\n")
            for _ in range(48):
                member.write(bytes(2**20))
    tracemalloc.start()
    try:
        assert dbrecovery._filename_from_blob(wheel) == wheel.name
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * 2**20, peak


def test_a_blob_with_no_record_and_a_corrupt_wheel_file_stays_unnamed(tmp_path: Path) -> None:
    """A stored wheel (hash-checked, so as its index served it) whose ``WHEEL`` member's
    compressed bytes are corrupt, met by a rebuild with no provenance record for it: it stays
    unnamed, as a blob that is no zip does (before: zlib's error ended the whole rebuild)."""
    import zipfile

    from satchel.daemon.indexes import dbrecovery

    wheel = tmp_path / "bad-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("bad-1.0.dist-info/WHEEL", b"Wheel-Version: 1.0\nTag: py3-none-any\n\n" * 500)
    corrupt_member(wheel, "bad-1.0.dist-info/WHEEL")
    assert dbrecovery._filename_from_blob(wheel) == ""
