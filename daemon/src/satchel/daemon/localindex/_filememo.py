"""What the local index decided about stored files, kept while nothing it depends on moved.

An installer asks for every file of an install and its ``.metadata``; each of those requests
read the project's binding and the file's provenance from the metadb (a worker thread) to
decide whether the file may be served (`binding.stored_file_refusal`), and each ``.metadata``
read the metadb and, for a wheel whose metadata was never stored, opened the wheel's zip again.
Both answers depend only on the daemon's configuration and on what the metadb holds (the bytes
of a blob never change: it is named by its sha256), so they are kept for one configuration
snapshot (the same object: a reload of config.toml replaces it) and one metadb `generation`
(moved by every write that can change them: bindings, origins, blobs, core metadata), and
forgotten, all at once, as soon as either moves.

Only the answer "may be served" is kept: a refusal is decided again on every request (it is
logged each time, and it is rare).
"""

from __future__ import annotations

__all__ = ["MAX_KEPT_FILES", "MAX_KEPT_METADATA_BYTES", "FileMemo"]

#: Files kept as "may be served": an install asks for a few hundred; a lock of thousands of
#: files fits many times over. Past it everything is forgotten (and decided again).
MAX_KEPT_FILES = 100_000
#: Bytes of core metadata kept. METADATA files are 2-20 KB (a few reach ~100 KB): 8 MiB holds
#: those of one large install several times over while bounding the daemon's growth.
MAX_KEPT_METADATA_BYTES = 8 * 1024 * 1024


class FileMemo:
    """Decisions about stored files, valid for one (configuration, generation); event loop only.

    Use: ``key = memo.key(config, generation)`` before deciding; keep an answer with
    ``memo.allow(key, ...)`` / ``memo.keep_metadata(key, ...)``, which ignore it when the key
    moved meanwhile (the answer may predate a write).
    """

    def __init__(self) -> None:
        self._key: tuple[object, int] = (None, -1)
        self._allowed: set[tuple[str, str]] = set()
        self._metadata: dict[str, tuple[bytes, str]] = {}
        self._metadata_bytes = 0

    def key(self, config: object, generation: int) -> tuple[object, int]:
        """The current key; everything kept for an earlier one is forgotten."""
        if self._key[0] is not config or self._key[1] != generation:
            self._key = (config, generation)
            self._allowed.clear()
            self._metadata.clear()
            self._metadata_bytes = 0
        return self._key

    def allowed(self, key: tuple[object, int], sha: str, filename: str) -> bool:
        return key is self._key and (sha, filename) in self._allowed

    def allow(self, key: tuple[object, int], sha: str, filename: str) -> None:
        if key is not self._key:
            return
        if len(self._allowed) >= MAX_KEPT_FILES:
            self._allowed.clear()
        self._allowed.add((sha, filename))

    def metadata(self, key: tuple[object, int], sha: str) -> tuple[bytes, str] | None:
        """The metadata bytes served for *sha* and their sha256, if kept for *key*."""
        return self._metadata.get(sha) if key is self._key else None

    def keep_metadata(self, key: tuple[object, int], sha: str, data: bytes, digest: str) -> None:
        if key is not self._key or sha in self._metadata:
            return
        if self._metadata_bytes + len(data) > MAX_KEPT_METADATA_BYTES:
            self._metadata.clear()
            self._metadata_bytes = 0
        self._metadata[sha] = (data, digest)
        self._metadata_bytes += len(data)
