"""Cache methods: `cache.info` (what is stored, per index), `cache.verify` (re-hash it all) and
`cache.prune` (garbage collection under size and age caps; never what watched projects need).

Sizes are bytes, times Unix times. A file served by several indexes is stored once: it counts
once in the totals and once under each index that served it, so per-index rows may add up to
more than the totals.
"""

from __future__ import annotations

import msgspec

__all__ = [
    "CACHE_INFO",
    "CACHE_PRUNE",
    "CACHE_VERIFY",
    "CacheInfoParams",
    "CacheInfoResult",
    "CachePruneParams",
    "CachePruneResult",
    "CacheVerifyParams",
    "CacheVerifyResult",
    "CorruptFile",
    "CorruptTree",
    "IndexUsage",
    "PrunedFile",
]

CACHE_INFO = "cache.info"
CACHE_VERIFY = "cache.verify"
CACHE_PRUNE = "cache.prune"


class CacheInfoParams(msgspec.Struct, frozen=True):
    """`cache.info` takes nothing."""


class IndexUsage(msgspec.Struct, frozen=True, kw_only=True):
    """What the cache holds from one index."""

    index: str
    #: Project pages stored for this index.
    projects: int
    #: Stored files this index served (shared files count under every index that served them).
    files: int
    bytes: int


class CacheInfoResult(msgspec.Struct, frozen=True, kw_only=True):
    cache_dir: str
    #: Distribution files stored (each once, whatever number of indexes served it).
    files: int
    bytes: int
    #: Project pages stored (one per index and project).
    pages: int
    #: PEP 658 metadata files stored.
    core_metadata: int
    #: Wheels built from sdists.
    built_wheels: int
    #: Files no index served (wheels built here, files added from a local path).
    unattributed_files: int
    #: Files moved aside by `cache.verify` because their bytes did not match their hash.
    quarantined: int
    #: Size of the metadata database (with its write-ahead log).
    database_bytes: int
    indexes: list[IndexUsage]


class CacheVerifyParams(msgspec.Struct, frozen=True):
    """`cache.verify` takes nothing; it streams `Progress` (unit "bytes") while it re-hashes."""


class CorruptFile(msgspec.Struct, frozen=True, kw_only=True):
    """A stored file whose bytes no longer match its sha256; it has been quarantined."""

    #: The sha256 it was stored under (for a stray file: its path inside the blob directory).
    sha256: str
    #: What its bytes hash to now.
    actual_sha256: str
    #: The file name it was stored as, when known.
    filename: str | None = None
    #: Indexes that served it (where it can be fetched again).
    indexes: list[str] = []
    #: Where it was moved.
    quarantined_as: str


class CorruptTree(msgspec.Struct, frozen=True, kw_only=True):
    """An unpacked wheel (what installs link from) whose files no longer match its RECORD."""

    #: The sha256 of the wheel it was unpacked from.
    sha256: str
    filename: str | None = None
    #: The damaged files (the first few), or why the tree could not be checked.
    files: list[str] = []
    #: Where the damaged tree was moved.
    quarantined_as: str
    #: Unpacked again from the stored wheel (False: the wheel is gone; the next install of it
    #: downloads it again).
    repaired: bool


class CacheVerifyResult(msgspec.Struct, frozen=True, kw_only=True):
    #: Files re-hashed and their total size.
    checked: int
    bytes: int
    corrupt: list[CorruptFile]
    quarantine_dir: str
    #: Unpacked trees re-hashed against their RECORD, and their total size.
    trees_checked: int = 0
    tree_bytes: int = 0
    corrupt_trees: list[CorruptTree] = []


class CachePruneParams(msgspec.Struct, frozen=True, kw_only=True):
    """Caps for this run; None takes the configured ``cache-max-size`` / ``cache-max-age``."""

    max_size: int | None = None
    #: Seconds since a file was last used.
    max_age: int | None = None
    #: Only say what would be removed.
    dry_run: bool = False


class PrunedFile(msgspec.Struct, frozen=True, kw_only=True):
    sha256: str
    filename: str
    size: int
    last_used: float
    #: "age" (unused for longer than the age cap) or "size" (least recently used, over the cap).
    reason: str


class CachePruneResult(msgspec.Struct, frozen=True, kw_only=True):
    dry_run: bool
    #: The files removed (or, in a dry run, that would be), least recently used first.
    removed: list[PrunedFile]
    freed_bytes: int
    #: Stored files kept because a watched project or a lock needs them, and their size.
    protected: int
    protected_bytes: int
    #: Stored bytes before and after.
    total_before: int
    total_after: int
    #: Unpacked wheel trees removed with their files.
    trees: int = 0
    tree_bytes: int = 0
    #: The caps applied (None: no cap of that kind).
    max_size: int | None = None
    max_age: int | None = None
