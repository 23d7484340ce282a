"""The hashes an index states for a file: which of them can be checked, and checking them.

An index may give a file several digests (PEP 503 fragments carry one, PEP 691 ``hashes`` any
number: ``md5``, ``sha512``, ``blake2b``, ...). Satchel's identity for a file is its sha256,
computed on download, but every digest the index promised is a claim about the bytes, and a claim
that is not checked is a hole: a link with a wrong ``#md5=`` must not install. So, as pip does,
every algorithm `hashlib.algorithms_guaranteed` offers is checked, all in the same streaming pass
as the sha256 (`Digests.update` runs in the store's worker thread, beside its own hasher).

A file whose index gives digests of which *none* can be checked is refused (`require_checkable`):
the index meant the file to be verified and Satchel cannot. A file with no digest at all is
still accepted and stored under the sha256 computed on download, as pip and uv accept it without
``--require-hashes``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from satchel.daemon.errors import HashMismatch, UpstreamError

__all__ = ["Digests", "checkable", "require_checkable"]

#: Read size when re-hashing a stored file.
_READ = 1 << 20

_GUARANTEED = frozenset(hashlib.algorithms_guaranteed)

#: Extendable-output functions: their digest length is whatever the index wrote.
_VARIABLE = frozenset({"shake_128", "shake_256"})


def checkable(hashes: Mapping[str, str]) -> dict[str, str]:
    """The digests of *hashes* whose algorithm hashlib guarantees on every platform."""
    return {name: digest for name, digest in hashes.items() if name in _GUARANTEED}


def require_checkable(hashes: Mapping[str, str], label: str) -> dict[str, str]:
    """`checkable(hashes)`; `UpstreamError` naming *label* and the algorithms when the index
    gave digests and none of them can be checked."""
    found = checkable(hashes)
    if hashes and not found:
        offered = ", ".join(sorted(hashes))
        raise UpstreamError(
            f"{label}: the index gives only {offered} digest(s), none of which Satchel can "
            f"check (it checks {', '.join(sorted(_GUARANTEED - _VARIABLE))}); refusing the file",
            details={"file": label, "algorithms": sorted(hashes)},
        )
    return found


class Digests:
    """Running hashes for the digests an index promised; `check` compares them at the end."""

    def __init__(self, expected: Mapping[str, str]) -> None:
        self.expected = dict(expected)
        self._hashers: dict[str, Any] = {name: hashlib.new(name) for name in self.expected}

    def __bool__(self) -> bool:
        return bool(self._hashers)

    def update(self, chunks: Iterable[bytes]) -> None:
        for chunk in chunks:
            for hasher in self._hashers.values():
                hasher.update(chunk)

    def check(self, label: str) -> None:
        """`HashMismatch` naming *label*, the algorithm, the promised and the computed digest."""
        for name, hasher in self._hashers.items():
            want = self.expected[name]
            got = hasher.hexdigest(len(want) // 2) if name in _VARIABLE else hasher.hexdigest()
            if got != want:
                raise HashMismatch(
                    f"{label}: {name} mismatch: the index promised {want}, got {got}",
                    details={"file": label, "algorithm": name, "expected": want, "actual": got},
                )

    def check_file(self, path: Path, label: str) -> None:
        """Hash the file at *path* and `check` it (blocking: run it in a worker thread)."""
        with path.open("rb") as handle:
            while block := handle.read(_READ):
                self.update((block,))
        self.check(label)
