"""What an install needs from a wheel, computed once when it is unpacked: the `WheelManifest`.

An unpacked wheel (`satchel.daemon.installing.wheel`) keeps its manifest beside its tree, so an
install never re-opens the zip or re-parses RECORD; the stamps let `treecheck` see a tree edited
after it was unpacked.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import msgspec

from satchel.daemon.installing._scripts import EntryPoint

__all__ = ["ManifestFile", "Stamp", "UnpackedWheel", "WheelInfo", "WheelManifest", "stamp_of"]

#: (size, mtime_ns, inode) of an unpacked file: what a later edit through a hard link changes.
Stamp = tuple[int, int, int]


def stamp_of(st: os.stat_result) -> Stamp:
    return (st.st_size, st.st_mtime_ns, st.st_ino)


class ManifestFile(msgspec.Struct, array_like=True, frozen=True):
    """One file of an unpacked wheel: where it is in the tree and where it goes.

    *member* is the path under ``tree/`` (the archive name); *scheme* and *path* place it in an
    environment; *hash* is the RECORD form (``sha256=...``), verified during unpack.
    """

    member: str
    scheme: str
    path: str
    hash: str
    size: int
    executable: bool


class WheelManifest(msgspec.Struct, frozen=True):
    """Everything an install needs from a wheel, precomputed once at unpack time."""

    name: str  # canonical project name
    version: str
    filename: str
    dist_info: str  # e.g. "foo_bar-1.0.dist-info"
    root_is_purelib: bool
    files: tuple[ManifestFile, ...]
    entry_points: tuple[EntryPoint, ...]
    #: (size, mtime_ns, inode) of each of `files` right after unpacking, in the same order:
    #: what `treecheck.changed_files` compares before the tree is linked again.
    stamps: tuple[Stamp, ...] = ()


@dataclass(frozen=True)
class WheelInfo:
    """The result of validating a wheel: the manifest, before anything is extracted."""

    path: Path
    manifest: WheelManifest


@dataclass(frozen=True)
class UnpackedWheel:
    """A validated wheel unpacked into the cache: ``tree`` holds its members."""

    sha256: str
    directory: Path
    manifest: WheelManifest

    @property
    def tree(self) -> Path:
        return self.directory / "tree"
