"""Offline scopes are kept between requests only while the metadb, the configuration and the
stored files they were computed from stand (issue 15: a third of a warm resolve recomputed them).
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from satchel.daemon.indexes.session import Session
from satchel.daemon.requests.runtime import Runtime
from satchel.daemon.storage._soon import FlushingLock
from satchel.daemon.storage.model import FileEntry
from tests.support.index_server import IndexServer
from tests.support.warm import running_warmer
from tests.support.wheels import build_wheel


async def fetch(rt: Runtime, version: str) -> FileEntry:
    """Store alpha *version* online, as a prefetch would; return its file."""
    session = rt.catalog.session()
    (page,) = (await session.scoped_pages("alpha")).pages
    (file,) = [f for f in page.files if f.filename == f"alpha-{version}-py3-none-any.whl"]
    index = session.index(page.index)
    assert index is not None
    await rt.catalog.fetch_file(index, "alpha", file)
    return file


def stored_versions(session: Session) -> list[str]:
    scoped = session.offline_pages_sync("alpha")
    return sorted(f.filename for page in scoped.pages for f in page.files)


async def test_a_kept_scope_is_reused_until_the_store_or_the_metadb_changes(
    tmp_path: Path,
) -> None:
    """issue 15: reused while true; a blob deleted behind the daemon's back, or a new file
    stored, is seen by the very next offline request."""
    dist = tmp_path / "dist"
    build_wheel(dist, "alpha", "1.0")
    build_wheel(dist, "alpha", "2.0")
    with IndexServer(dist) as index:
        async with running_warmer(tmp_path / "d", index.url) as warm:
            rt = warm.rt
            one = await fetch(rt, "1.0")

            first = rt.catalog.session(offline=True).offline_pages_sync("alpha")
            again = rt.catalog.session(offline=True).offline_pages_sync("alpha")
            assert again is first
            assert first.unstored == ("2.0",)

            assert one.sha256 is not None
            rt.store.path(one.sha256).unlink()  # behind the daemon's back
            gone = rt.catalog.session(offline=True)
            assert stored_versions(gone) == []

            await fetch(rt, "2.0")
            assert stored_versions(rt.catalog.session(offline=True)) == [
                "alpha-2.0-py3-none-any.whl"
            ]


async def test_an_offline_scope_never_takes_the_metadb_lock_on_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whoever takes the metadb's lock writes what other requests queued (`storage._soon`):
    the event loop must never be the one (its reads of bindings and pages run in a thread)."""
    dist = tmp_path / "dist"
    build_wheel(dist, "alpha", "1.0")
    with IndexServer(dist) as index:
        async with running_warmer(tmp_path / "d", index.url) as warm:
            rt = warm.rt
            await fetch(rt, "1.0")
            loop_thread = threading.current_thread()
            taken_on: list[threading.Thread] = []
            real_enter = FlushingLock.__enter__

            def enter(self: FlushingLock) -> FlushingLock:
                taken_on.append(threading.current_thread())
                return real_enter(self)

            monkeypatch.setattr(FlushingLock, "__enter__", enter)
            scoped = await rt.catalog.session(offline=True).scoped_pages("alpha")
            monkeypatch.undo()
            assert [f.filename for p in scoped.pages for f in p.files] == [
                "alpha-1.0-py3-none-any.whl"
            ]
            assert taken_on, "the offline scope read nothing from the metadb"
            assert loop_thread not in taken_on
