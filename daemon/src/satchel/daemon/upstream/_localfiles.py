"""Indexes on the local disk: ``file://`` simple indexes, find-links directories and files.

Split out of `satchel.daemon.upstream.client` because reading a directory is a different job from
talking HTTP: no breaker, no credentials, no redirects, but the same promises, so that a local
index behaves like a remote one. A ``file://`` simple index reads ``<dir>/<project>/index.html``
(or ``<dir>/<project>.html``) and revalidates by mtime and size; a find-links directory is
listed and filtered per project; the same caps (`HostileInput` past them) and file name
validation apply; an unreadable path is `NotFound`, naming it. (Not to be confused with
`satchel.daemon.localindex`, the HTTP index the daemon serves.)

Blocking reads run in a worker thread (`trio.to_thread`) so a slow disk never stalls the daemon.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit
from urllib.request import url2pathname

import msgspec
import trio

from satchel.daemon.errors import HostileInput, InvalidWheel, NotFound, UpstreamError
from satchel.daemon.resolver.coremetadata import metadata_from_file
from satchel.daemon.settings.config import IndexConfig
from satchel.daemon.storage.model import FileEntry, ProjectPage
from satchel.daemon.upstream._downloads import FileDownload
from satchel.daemon.upstream.simple import HTMLPageParser, file_project, validate_filename

__all__ = [
    "file_index_page",
    "is_local",
    "local_download",
    "local_links_page",
    "local_path",
    "read_local",
    "scan_directory",
    "wheel_metadata",
]

#: Read step for local files: a disk gives large reads cheaply.
_CHUNK = 1024 * 1024


def is_local(url: str) -> bool:
    return urlsplit(url).scheme == "file"


def local_path(url: str) -> Path:
    return Path(url2pathname(unquote(urlsplit(url).path)))


def _file_url(path: Path) -> str:
    return "file://" + quote(str(path.resolve()))


async def file_index_page(
    index: IndexConfig,
    project: str,
    page_url: str,
    cached: ProjectPage | None,
    *,
    cap: int,
    clock: Callable[[], float],
) -> ProjectPage:
    """*project*'s page in a ``file://`` simple index; *cached* is reused while the file is
    unchanged (the etag is its mtime and size)."""
    what = f"index {index.name}: project {project}"
    directory = local_path(page_url)
    candidates = [directory / "index.html", directory.with_suffix(".html")]
    path = next((c for c in candidates if c.is_file()), None)
    if path is None:
        raise NotFound(f"{what}: not found on the index ({directory} has no index.html)")
    stat = path.stat()
    etag = f'"file-{stat.st_mtime_ns}-{stat.st_size}"'
    if cached is not None and cached.etag == etag:
        return msgspec.structs.replace(cached, fetched_at=clock())
    page = await trio.to_thread.run_sync(_read_page, path, cap, what, index.name, project, page_url)
    return msgspec.structs.replace(page, fetched_at=clock(), etag=etag)


async def local_links_page(index: IndexConfig, url: str, cap: int, what: str) -> ProjectPage:
    """A find-links page on disk: every link on it, for any project."""
    return await trio.to_thread.run_sync(
        _read_page, local_path(url), cap, what, index.name, None, url
    )


def _read_page(
    path: Path, cap: int, what: str, index: str, project: str | None, url: str
) -> ProjectPage:
    """Read and parse a page file, both in the calling worker thread: a large page is seconds
    of parsing, which must not hold the event loop (issue 11.6)."""
    parser = HTMLPageParser(index=index, project=project, url=url)
    parser.feed_bytes(read_local(path, cap, what))
    return parser.result()


def local_download(file: FileEntry, cap: int, what: str) -> FileDownload:
    """Stream a ``file://`` distribution; its size is checked against *cap* up front and the
    bytes actually read are counted too (the file may grow)."""
    path = local_path(file.url)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise NotFound(f"{what}: {exc.strerror}") from None
    if size > cap:
        raise HostileInput(f"{what}: {size} bytes is over the {cap} byte limit")
    return FileDownload(file.url, file.filename, size, _local_chunks(path, cap, what))


def read_local(path: Path, cap: int, what: str) -> bytes:
    """The whole of *path*, at most *cap* bytes (blocking: run it in a thread)."""
    try:
        with path.open("rb") as handle:
            data = handle.read(cap + 1)
    except OSError as exc:
        raise NotFound(f"{what}: cannot read {path}: {exc.strerror}") from None
    if len(data) > cap:
        raise HostileInput(f"{what}: larger than the {cap} byte limit")
    return data


async def _local_chunks(path: Path, cap: int, what: str) -> AsyncIterator[bytes]:
    total = 0
    async with await trio.open_file(path, "rb") as handle:
        while chunk := await handle.read(_CHUNK):
            total += len(chunk)
            if total > cap:
                raise HostileInput(f"{what}: larger than the {cap} byte limit")
            yield chunk


def wheel_metadata(path: Path, what: str) -> bytes:
    """A local wheel's METADATA, read through the zip directory (blocking: run it in a thread),
    within the caps of a stored wheel's (`metadata_from_file`: the central directory's size,
    METADATA's): a ``file://`` index may be a mirror that others write."""
    try:
        return metadata_from_file(path, path.name)
    except (InvalidWheel, HostileInput) as exc:
        raise HostileInput(f"{what}: {exc.message}") from None
    except UpstreamError as exc:
        raise UpstreamError(f"{what}: {exc.message}") from None


def scan_directory(directory: Path, project: str) -> tuple[FileEntry, ...]:
    """*project*'s distributions in a find-links directory; an odd entry is just not offered
    (blocking: run it in a thread)."""
    entries: list[FileEntry] = []
    for path in sorted(directory.iterdir()):
        name = path.name
        if file_project(name) != project:
            continue
        try:
            validate_filename(name, project)
            size = path.stat().st_size
        except Exception:  # noqa: S112 (an unreadable or odd entry is just not offered)
            continue
        entries.append(FileEntry(filename=name, url=_file_url(path), size=size))
    return tuple(entries)
