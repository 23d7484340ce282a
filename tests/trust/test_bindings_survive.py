"""Issue 12, end to end: a project's binding survives a rebuilt database and `cache prune`, and
the local index holds stored files to it as it holds pages.

The world of `test_origins`: a real `satchel` autostarting its own `satcheld`, ``internal``
(first) serving the private ``internal-tool`` 1.0.0, ``public`` (after it) an impostor
``internal-tool`` 9.9.0.
"""

from __future__ import annotations

import base64
import contextlib
import json
import sqlite3
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import trio

from satchel.daemon.indexes.dbrecovery import recover
from satchel.daemon.indexes.origins import How, Origins
from satchel.daemon.storage import provenance
from satchel.daemon.storage.metadb import MetaDB
from satchel.daemon.storage.model import FileEntry
from satchel.daemon.storage.store import METADB_NAME, BlobStore
from tests.client.clientenv import wait_gone
from tests.e2e.twoindexes import EXIT_FAILURE, World
from tests.support.wheels import build_wheel, file_sha256
from tests.trust.test_origins import local_index_get, open_world, refused

PRIVATE = "internal_tool-1.0.0-py3-none-any.whl"
IMPOSTOR = "internal_tool-9.9.0-py3-none-any.whl"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with open_world(tmp_path) as w:
        yield w


def _sha(w: World, where: str, filename: str) -> str:
    return file_sha256(w.root / "dist" / where / filename)


def _store_the_impostor_too(w: World) -> None:
    """internal-tool bound to internal, then the impostor's wheel stored by an explicit opt-out
    (as a user trying it once would): the store holds files of one project from two indexes."""
    w.ok("prefetch", "internal-tool")
    w.ok("prefetch", "--index-strategy", "unsafe-best-match", "internal-tool==9.9.0")
    assert w.blob(_sha(w, "public", IMPOSTOR)).exists()


def _damage_the_database(w: World) -> None:
    """Stop the daemon, then overwrite the database's header (what a stray write does)."""
    pid = w.env.daemon_pid()
    w.ok("--no-autostart", "stop")
    assert wait_gone(pid, 30), f"satcheld {pid} did not exit"
    path = w.cache / METADB_NAME
    with path.open("r+b") as handle:
        handle.write(b"this is not a database header")


def _file_status(w: World, path: str) -> int:
    """The status of a local-index file request (the body of a wheel is not text)."""
    url = urlsplit(w.ok("index-url").stdout.strip())
    headers = {}
    if url.password is not None:  # elsewhere than Linux the URL carries the token
        token = base64.b64encode(f"{url.username}:{url.password}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    request = urllib.request.Request(f"http://{url.hostname}:{url.port}{path}", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def _origins(w: World) -> dict[str, dict[str, Any]]:
    listing = json.loads(w.ok("origins", "list", "--json").stdout)["origins"]
    return {item["project"]: item for item in listing}


# -- issue 12 gap 1: bindings restored when the database is rebuilt ----------------------------


def test_a_rebuilt_database_restores_the_binding_from_provenance(world: World) -> None:
    """issue 12 (gap 1): after damage the database is rebuilt and internal-tool is bound to
    internal again, so a 404 from internal is refused, never answered by the impostor."""
    w = world
    w.ok("prefetch", "internal-tool")
    _damage_the_database(w)

    bound = _origins(w)  # waits for the start (and its rebuild) to finish
    status = w.ok("status").stdout
    assert "was damaged" in status and "project origins" in status
    assert bound["internal-tool"]["index"] == "internal"
    assert bound["internal-tool"]["url"] == w.internal.url
    assert bound["internal-tool"]["how"] == "restored"
    assert bound["helper"]["index"] == "internal"

    w.internal.override("/simple/internal-tool/", 404, b"no such project\n", "text/plain")
    details = refused(w, "resolve", "--format", "json", "internal-tool")
    assert details["reason"] == "not-found"
    assert details["bound"]["index"] == "internal" and details["offered"]["index"] == "public"
    assert not any(IMPOSTOR in path for path in w.public.requests)


def test_a_project_served_by_two_indexes_is_contested_after_a_rebuild(world: World) -> None:
    """issue 12 (gap 1): files of internal-tool came from internal and public; the rebuild does
    not guess. The report names the conflict, every answer (online and offline) is refused
    until `satchel origins trust`, which settles it."""
    w = world
    _store_the_impostor_too(w)
    _damage_the_database(w)

    assert _origins(w)["internal-tool"]["how"] == "contested"
    listed = w.ok("origins", "list").stdout
    assert "internal-tool  contested: served by internal (" in listed
    assert "refused until `satchel origins trust internal-tool INDEX`" in listed
    status = w.ok("status").stdout
    assert "Not restored, because their stored files came from several indexes" in status
    assert "internal-tool (internal (" in status and "public (" in status

    details = refused(w, "resolve", "--format", "json", "internal-tool")
    assert details["reason"] == "contested"
    assert details["accept"] == "satchel origins trust internal-tool internal"
    message = w.satchel("resolve", "internal-tool").stderr
    assert "rebuilt after damage" in message and "satchel origins trust internal-tool" in message
    offline = w.satchel("resolve", "--offline", "internal-tool")
    assert offline.returncode == EXIT_FAILURE and "[origin-changed]" in offline.stderr
    status_code, body = local_index_get(w, "/simple/internal-tool/")
    assert status_code == 403 and "satchel origins trust internal-tool" in body
    status_code, body = local_index_get(w, f"/files/{_sha(w, 'public', IMPOSTOR)}/{IMPOSTOR}")
    assert status_code == 403 and "contested" in body

    w.ok("origins", "trust", "internal-tool", "internal")
    assert w.pins("internal-tool")["internal-tool"]["version"] == "1.0.0"


def test_cache_prune_keeps_the_bindings(world: World) -> None:
    """issue 12 (gap 1): bindings are state, not cache: pruning every file keeps them."""
    w = world
    w.ok("prefetch", "internal-tool")
    pruned = json.loads(w.ok("cache", "prune", "--max-size", "0", "--json").stdout)
    assert not w.blob(_sha(w, "internal", PRIVATE)).exists(), pruned

    assert _origins(w)["internal-tool"]["index"] == "internal"
    w.internal.override("/simple/internal-tool/", 410, b"gone\n", "text/plain")
    assert refused(w, "resolve", "--format", "json", "internal-tool")["reason"] == "not-found"


# -- issue 12 gap 2: stored files through the local index obey the binding ---------------------


def test_the_local_index_refuses_a_stored_impostor_file(world: World) -> None:
    """issue 12 (gap 2): internal-tool is bound to internal; the impostor's wheel is in the
    store (an earlier opt-out). Asked for by its sha256 URL, it is refused with 403 naming both
    indexes; the private wheel and its metadata are served."""
    w = world
    _store_the_impostor_too(w)

    impostor = _sha(w, "public", IMPOSTOR)
    status_code, body = local_index_get(w, f"/files/{impostor}/{IMPOSTOR}")
    assert status_code == 403, body
    assert "came from index 'public'" in body and "bound to index 'internal'" in body
    assert w.internal.url in body and w.public.url in body
    assert "satchel origins trust internal-tool public" in body
    status_code, _ = local_index_get(w, f"/files/{impostor}/{IMPOSTOR}.metadata")
    assert status_code == 403
    # Nor under another project's name (the file name in the URL is the client's to choose):
    # evil is public's, but these bytes were never served as evil.
    assert _file_status(w, f"/files/{impostor}/evil-1.0-py3-none-any.whl") == 403

    private = _sha(w, "internal", PRIVATE)
    assert _file_status(w, f"/files/{private}/{PRIVATE}") == 200
    status_code, body = local_index_get(w, f"/files/{private}/{PRIVATE}.metadata")
    assert status_code == 200 and "Version: 1.0.0" in body

    # The user's word moves the binding, for files as for pages.
    w.ok("origins", "trust", "internal-tool", "public")
    assert _file_status(w, f"/files/{impostor}/{IMPOSTOR}") == 200
    assert _file_status(w, f"/files/{private}/{PRIVATE}") == 403


def test_the_rebuild_rule_for_records_without_an_index_url(tmp_path: Path) -> None:
    """issue 12 (gap 1), the rule itself: a record written before records kept the index URL is
    bound through config.toml's name -> URL; one whose index name config.toml no longer knows,
    or a project served by two URLs, is contested; a file with no record binds nothing."""
    cache = tmp_path / "cache"
    store = BlobStore(cache)
    dist = tmp_path / "dist"
    private = "http://127.0.0.1:1/simple/"
    files = {
        name: _ingest(store, build_wheel(dist / name, name, "1.0"))
        for name in ("old-one", "gone-index", "two-urls", "no-record")
    }

    def served(project: str, index: str, url: str = "", where: str = "a") -> None:
        wheel = f"{project.replace('-', '_')}-1.0-py3-none-any.whl"
        entry = FileEntry(filename=wheel, url=f"http://127.0.0.1:1/{where}/{wheel}")
        provenance.add_source(cache, files[project], index, project, entry, index_url=url)

    served("old-one", "internal")  # an older record: the name only
    served("gone-index", "renamed-away")
    served("two-urls", "internal", private)
    served("two-urls", "public", "http://127.0.0.1:2/simple/", where="b")
    (cache / METADB_NAME).write_bytes(b"")

    result = recover(cache, {"internal": private})

    assert result is not None
    assert result.bindings == 1
    assert result.contested == (
        "gone-index (renamed-away (URL unknown))",
        f"two-urls (internal ({private}), public (http://127.0.0.1:2/simple/))",
    )
    db = MetaDB(cache / METADB_NAME)
    try:
        bound = {b.project: b for b in Origins(db).all()}
    finally:
        db.close()
    assert (bound["old-one"].url, bound["old-one"].how) == (private, How.RESTORED)
    assert bound["two-urls"].how is How.CONTESTED and bound["two-urls"].url == ""
    assert "no-record" not in bound
    assert "refused until you say which index" in result.describe()


def _ingest(store: BlobStore, path: Path) -> str:
    data = path.read_bytes()

    async def chunks() -> AsyncIterator[bytes]:
        yield data

    async def go() -> str:
        info = await store.ingest(chunks(), expected_sha256=None, label=path.name)
        return info.sha256

    return trio.run(go)


def _bindings_made_durable(w: World) -> int:
    """How many first-use bindings the daemon's last `Origins.make_durable` covered."""
    with contextlib.closing(sqlite3.connect(w.cache / METADB_NAME)) as conn:
        row = conn.execute("SELECT value FROM state WHERE key = 'bindings-durable'").fetchone()
    return int(row[0]) if row else 0


def test_an_answer_goes_out_once_the_first_use_binding_it_made_is_durable(world: World) -> None:
    """Issue 12 with issue 15's cut: a first use is committed without a WAL sync of its own, and
    the answer that made it (here a resolve, which stores no file) waits for the one sync that
    makes it durable; the project stays bound to internal across a restart."""
    world.ok("resolve", "internal-tool")
    assert _bindings_made_durable(world) >= 1
    pid = world.env.daemon_pid()
    world.ok("--no-autostart", "stop")
    assert wait_gone(pid, 30), f"satcheld {pid} did not exit"
    binding = Origins(MetaDB(world.cache / METADB_NAME)).get("internal-tool")
    assert binding is not None and (binding.index, binding.how) == ("internal", How.FIRST_USE)
