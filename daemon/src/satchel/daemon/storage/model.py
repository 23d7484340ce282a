"""What an index told us about a project, in the form every part of the daemon shares.

`upstream` produces these from PEP 691 JSON or PEP 503 HTML, `metadb` persists them, the resolver
and the local index read them. They are frozen msgspec Structs so they can be stored and compared
cheaply, and so that a page read back from the database is exactly the page that was parsed.

URLs held here never contain credentials: the index's credentials are attached at request time by
the upstream client, so nothing written to disk or shown to a user can leak them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import msgspec

__all__ = ["FileEntry", "FileEntryMap", "Origin", "ProjectPage", "share_repeated"]


class FileEntry(msgspec.Struct, frozen=True, kw_only=True, gc=False, array_like=True):
    """One distribution file listed on a project page (PEP 503/691/592/658/700/714).

    Compact, because a page may list 90,000 of them (issue 11.6): the sha256 digests are plain
    fields (the dicts an index states them in cost ~370 bytes a file), other algorithms are kept
    only when stated; encoded as an array (`array_like`), so stored rows carry no field names.
    New fields go last, with a default: rows stored before still decode. Build one from an
    index's hash dicts with `FileEntry.of`; `hashes` and `core_metadata` give them back.
    """

    #: Validated basename (no separators, no ``..``; parsed with packaging.utils).
    filename: str
    #: Absolute, credential-free URL of the file.
    url: str
    #: The file's sha256 as the index stated it (lowercase hex), if it did.
    sha256: str | None = None
    #: Other hash name -> lowercase hex digest the index stated; None when it stated no other.
    other_hashes: dict[str, str] | None = None
    requires_python: str | None = None
    yanked: bool = False
    yanked_reason: str | None = None
    size: int | None = None
    upload_time: str | None = None
    #: PEP 658/714 core metadata: None = not offered; "" = offered with no sha256; else its
    #: sha256 (lowercase hex).
    metadata_sha256: str | None = None
    #: Other hashes of the core metadata file (name -> hex), when the index stated any.
    metadata_other_hashes: dict[str, str] | None = None

    @classmethod
    def of(
        cls,
        *,
        filename: str,
        url: str,
        hashes: Mapping[str, str] | None = None,
        core_metadata: Mapping[str, str] | None = None,
        requires_python: str | None = None,
        yanked: bool = False,
        yanked_reason: str | None = None,
        size: int | None = None,
        upload_time: str | None = None,
    ) -> FileEntry:
        """The entry of a file whose *hashes* (and *core_metadata*'s: None when not offered)
        are given as an index states them, hash name -> hex digest."""
        sha, others = _split_hashes(hashes or {})
        if core_metadata is None:
            meta_sha, meta_others = None, None
        else:
            meta_sha, meta_others = _split_hashes(core_metadata)
            meta_sha = meta_sha or ""
        return cls(
            filename=filename,
            url=url,
            sha256=sha,
            other_hashes=others,
            requires_python=requires_python,
            yanked=yanked,
            yanked_reason=yanked_reason,
            size=size,
            upload_time=upload_time,
            metadata_sha256=meta_sha,
            metadata_other_hashes=meta_others,
        )

    @property
    def hashes(self) -> dict[str, str]:
        """Hash name -> lowercase hex digest, every one the index stated (a new dict)."""
        return _join_hashes(self.sha256, self.other_hashes)

    @property
    def core_metadata(self) -> dict[str, str] | None:
        """PEP 658/714: None = not offered; else its hashes as `hashes` (maybe empty)."""
        if self.metadata_sha256 is None:
            return None
        return _join_hashes(self.metadata_sha256 or None, self.metadata_other_hashes)

    @property
    def is_wheel(self) -> bool:
        return self.filename.endswith(".whl")


class FileEntryMap(msgspec.Struct, frozen=True, kw_only=True):
    """A `FileEntry` as a map, its hashes in dicts: the layout of rows stored before it became
    compact (issue 11.6; read, never written), and of ``satchel resolve --format json``."""

    filename: str
    url: str
    hashes: dict[str, str] = {}
    requires_python: str | None = None
    yanked: bool = False
    yanked_reason: str | None = None
    size: int | None = None
    upload_time: str | None = None
    core_metadata: dict[str, str] | None = None

    @classmethod
    def of(cls, file: FileEntry) -> FileEntryMap:
        return cls(
            filename=file.filename,
            url=file.url,
            hashes=file.hashes,
            requires_python=file.requires_python,
            yanked=file.yanked,
            yanked_reason=file.yanked_reason,
            size=file.size,
            upload_time=file.upload_time,
            core_metadata=file.core_metadata,
        )

    def entry(self) -> FileEntry:
        return FileEntry.of(**msgspec.structs.asdict(self))


def _split_hashes(hashes: Mapping[str, str]) -> tuple[str | None, dict[str, str] | None]:
    others = {name: digest for name, digest in hashes.items() if name != "sha256"}
    return hashes.get("sha256"), others or None


def _join_hashes(sha256: str | None, others: dict[str, str] | None) -> dict[str, str]:
    joined = {"sha256": sha256} if sha256 is not None else {}
    if others:
        joined.update(others)
    return joined


def share_repeated(files: Iterable[FileEntry], seen: dict[object, object]) -> list[FileEntry]:
    """*files*, each holding the one object *seen* keeps for a value other files repeat.

    Why: a decoder makes a new object for every value it reads. A page's entries repeat their
    ``requires_python``, ``upload_time`` (one per release), ``yanked_reason`` and ``size`` values
    (an int above 256 is an object of its own): for a page of 90,000 files, ~17 MiB of copies
    held at once while the daemon resolves from it (issue 11.6). *seen* is the caller's, one per
    page (it holds one object per distinct value, and goes with the page's decoding).
    """
    out: list[FileEntry] = []
    for file in files:
        python = seen.setdefault(file.requires_python, file.requires_python)
        uploaded = seen.setdefault(file.upload_time, file.upload_time)
        reason = seen.setdefault(file.yanked_reason, file.yanked_reason)
        size = seen.setdefault(file.size, file.size)
        if (
            python is not file.requires_python
            or uploaded is not file.upload_time
            or reason is not file.yanked_reason
            or size is not file.size
        ):
            file = msgspec.structs.replace(
                file,
                requires_python=python,
                upload_time=uploaded,
                yanked_reason=reason,
                size=size,
            )
        out.append(file)
    return out


class ProjectPage(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A parsed project page from one index, with what is needed to revalidate it."""

    #: Name of the configured index that served it.
    index: str
    #: Normalised project name (PEP 503).
    project: str
    #: Credential-free URL the page was fetched from.
    url: str
    files: tuple[FileEntry, ...] = ()
    #: PEP 700 ``versions`` when the index provided it.
    versions: tuple[str, ...] = ()
    #: PEP 629 ``meta.api-version`` (or the HTML meta tag), "1.0" when absent.
    api_version: str = "1.0"
    #: Unix time of the last successful fetch or revalidation.
    fetched_at: float = 0.0
    etag: str | None = None
    last_modified: str | None = None
    #: ``Cache-Control: max-age`` in seconds, when the index sent one.
    max_age: int | None = None


class Origin(msgspec.Struct, frozen=True, kw_only=True):
    """Provenance: one (index, project, filename, url) that served a given sha256."""

    index: str
    project: str
    filename: str
    url: str
