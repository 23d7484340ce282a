"""What an index told us about a project, in the form every part of the daemon shares.

`upstream` produces these from PEP 691 JSON or PEP 503 HTML, `metadb` persists them, the resolver
and the local index read them. They are frozen msgspec Structs so they can be stored and compared
cheaply, and so that a page read back from the database is exactly the page that was parsed.

URLs held here never contain credentials: the index's credentials are attached at request time by
the upstream client, so nothing written to disk or shown to a user can leak them.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

__all__ = ["FileEntry", "Origin", "ProjectPage", "share_repeated"]


class FileEntry(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One distribution file listed on a project page (PEP 503/691/592/658/700/714)."""

    #: Validated basename (no separators, no ``..``; parsed with packaging.utils).
    filename: str
    #: Absolute, credential-free URL of the file.
    url: str
    #: Hash name -> lowercase hex digest, as the index stated them.
    hashes: dict[str, str] = {}
    requires_python: str | None = None
    yanked: bool = False
    yanked_reason: str | None = None
    size: int | None = None
    upload_time: str | None = None
    #: PEP 658/714 core metadata: None = not offered; a dict (maybe empty) = offered, its hashes.
    core_metadata: dict[str, str] | None = None

    @property
    def sha256(self) -> str | None:
        return self.hashes.get("sha256")

    @property
    def is_wheel(self) -> bool:
        return self.filename.endswith(".whl")


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
