"""An in-memory `MetadataSource` made of real wheels and sdists, for resolver tests.

Every file is built with `tests.support.wheels`, so the metadata the resolver parses is exactly
what a PEP 658 index would serve (a wheel's METADATA, an sdist's PKG-INFO). Pages go through the
real `scope.select_pages`, so index strategy, pins and out-of-scope reporting are the daemon's.
"""

from __future__ import annotations

import hashlib
import tarfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name

from satchel.daemon.resolver.scope import ScopedPages, Strategy, select_pages
from satchel.daemon.storage.model import FileEntry, ProjectPage
from tests.support.wheels import build_sdist, build_wheel, wheel_metadata

__all__ = ["Index", "MemoryIndex"]


@dataclass(frozen=True)
class Index:
    name: str
    url: str
    explicit: bool = False


class MemoryIndex:
    """Configured indexes, their pages, and the metadata of every file on them."""

    def __init__(
        self,
        root: Path,
        indexes: Iterable[str | Index] = ("main",),
        *,
        pins: Mapping[str, str] | None = None,
        strategy: Strategy = Strategy.FIRST_INDEX,
        offline: bool = False,
    ) -> None:
        self.root = root
        self.indexes = [
            i if isinstance(i, Index) else Index(i, f"http://127.0.0.1:9/{i}/simple/")
            for i in indexes
        ]
        self.pins = dict(pins or {})
        self.strategy = strategy
        self.offline = offline
        #: index name -> project -> files; an index may be unconfigured (e.g. cached earlier)
        self.files: dict[str, dict[str, list[FileEntry]]] = {}
        self.fetched_at: dict[tuple[str, str], float] = {}
        self.metadata: dict[str, bytes] = {}
        self.metadata_calls = 0
        self.page_calls = 0

    def _url(self, index: str, filename: str) -> str:
        return f"http://127.0.0.1:9/{index}/files/{filename}"

    def _add(
        self, index: str, name: str, path: Path, metadata: bytes, **entry: object
    ) -> FileEntry:
        data = path.read_bytes()
        file = FileEntry.of(
            filename=path.name,
            url=self._url(index, path.name),
            hashes={"sha256": hashlib.sha256(data).hexdigest()},
            size=len(data),
            core_metadata={"sha256": hashlib.sha256(metadata).hexdigest()},
            **entry,  # type: ignore[arg-type]
        )
        self.metadata[file.url] = metadata
        project = canonicalize_name(name)
        self.files.setdefault(index, {}).setdefault(project, []).append(file)
        return file

    def wheel(
        self,
        name: str,
        version: str,
        *,
        index: str = "main",
        requires: Iterable[str] = (),
        extras: Mapping[str, Iterable[str]] | None = None,
        requires_python: str | None = None,
        tag: str = "py3-none-any",
        yanked: bool = False,
        data_requires_python: str | None = None,
    ) -> FileEntry:
        out = self.root / index
        path = build_wheel(
            out, name, version, requires=requires, extras=extras,
            requires_python=requires_python, tag=tag,
        )  # fmt: skip
        return self._add(
            index, name, path, wheel_metadata(path), yanked=yanked,
            requires_python=data_requires_python,
        )  # fmt: skip

    def sdist(
        self,
        name: str,
        version: str,
        *,
        index: str = "main",
        requires: Iterable[str] = (),
        static_metadata: bool = True,
    ) -> FileEntry:
        path = build_sdist(
            self.root / index, name, version, requires=requires, static_metadata=static_metadata
        )
        with tarfile.open(path) as tf:
            member = next(m for m in tf.getmembers() if m.name.endswith("/PKG-INFO"))
            extracted = tf.extractfile(member)
            assert extracted is not None
            pkg_info = extracted.read()
        return self._add(index, name, path, pkg_info)

    def page(self, index: str, project: str) -> ProjectPage:
        return ProjectPage(
            index=index,
            project=project,
            url=f"http://127.0.0.1:9/{index}/simple/{project}/",
            files=tuple(self.files[index][project]),
            fetched_at=self.fetched_at.get((index, project), 1_700_000_000.0),
        )

    # -- MetadataSource ------------------------------------------------------------------------

    def pages(self, project: str) -> ScopedPages:
        self.page_calls += 1
        available = {
            index: self.page(index, project)
            for index, projects in self.files.items()
            if project in projects
        }
        return select_pages(
            project, available, self.indexes, self.pins, self.strategy, offline=self.offline
        )

    def core_metadata(self, page: ProjectPage, file: FileEntry) -> bytes:
        self.metadata_calls += 1
        return self.metadata[file.url]
