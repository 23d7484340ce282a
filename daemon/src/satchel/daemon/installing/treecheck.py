"""Integrity of the unpacked trees environments link from: a cheap check per install, a full one
on `cache verify`.

An unpacked tree (`satchel.daemon.installing.wheel`) is hard-linked into every environment that
installs the
wheel, so its files *are* the environments' files. Two things can damage one:

* an in-place edit through an environment's link (``open(path, "w")``, ``sed -i`` without rename,
  an editor that writes in place). The tree's files are read-only, but root ignores modes, and a
  user can ``chmod`` first. The shared inode changes, and every later install would spread it;
* bit rot: the bytes change on disk with no write at all.

What is checked, and why that choice:

As an install links each file of a tree (`satchel.daemon.installing._placement`, in the same
loop, relative to the same open directory), the file's ``os.lstat`` is compared with the *stamp*
recorded when it was unpacked: (size, mtime_ns, inode); `changed_files` is the same check for a
whole tree. Any write through any
link updates the inode's mtime (the kernel does it on every ``write``/``truncate``/mmap store),
and nearly every edit changes the size; replacing the file in the tree changes the inode. ctime
would be a stronger witness (``utime`` cannot forge it) but it changes on every ``link(2)``,
i.e. on every install that hard-links the file, so it cannot be compared. Cost: one ``lstat``
per file, relative to its directory. Measured on the dev machine (2 cores, shared: load average
6-11) with a 5,002-file wheel, medians of 9 runs: 6-6.5 us per file for the check (absolute
paths: 6.5-8 us) against 40-44 us per file for the hard-link install itself, about +15%; 2-3 us
per file when the machine is quiet. Re-hashing instead would cost more than the install (and
far more for large native libraries). Folded into the linking pass (2026-12-05) the check is one
``fstatat`` beside each ``linkat`` on one directory descriptor, and the source path is walked
once per directory instead of twice per file. A changed file is never linked: the install is
rolled back, the tree unpacked again from its blob (atomically, `wheel.unpack_all` with
*again*) and the install retried.

What the stamps cannot see: bit rot (no write, so no stamp changes), a deliberate edit that
restores size and mtime with ``utime``, and a same-size edit within the clock tick of the unpack
(file times come from a coarse clock, 1-10 ms; the install that unpacked a tree links it before
any environment can be edited, so such an edit would have to race that install). Those are
what `verify_trees` (``satchel cache verify``) is for: it re-hashes every file against the
manifest's sha256 (the wheel's RECORD, verified at unpack), moves a damaged tree to
``quarantine/`` for inspection and unpacks it again from its blob when the blob is intact.

The other design considered, linking with a mode that makes edits visible, already exists (the
files are 0444/0555) and is not enough: it stops neither root nor a ``chmod``. Copy-on-write
clones (``--link-mode clone``) make edits harmless, but most file systems cannot clone.

Environments that linked a tree *before* it was damaged share the damaged inode; re-unpacking
gives later installs fresh inodes but cannot repair those (reinstall them).
"""

# Paths are plain strings and os calls on purpose: `changed_files` runs per file on every install.
# ruff: noqa: PTH118, PTH208

from __future__ import annotations

import base64
import hashlib
import os
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from satchel.daemon.installing._manifest import UnpackedWheel, WheelManifest
from satchel.daemon.storage.fsutil import fsync_dir

__all__ = [
    "TreeDamage",
    "TreeReport",
    "changed_files",
    "corrupt_files",
    "verify_trees",
]

#: What is remembered of each unpacked file: (size, mtime_ns, inode).
#: At most this many file names are kept per damaged tree (in logs and `cache verify` answers):
#: enough to see what happened, bounded however large the tree.
MAX_NAMED = 20

_READ = 1 << 20
_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_MANIFEST = msgspec.json.Decoder()


def changed_files(unpacked: UnpackedWheel) -> list[str]:
    """Members of *unpacked* whose stamp differs from unpack time (empty: the tree is intact).

    A manifest without stamps (a tree unpacked by an older Satchel) cannot be checked cheaply,
    so it counts as changed: it is unpacked again once and carries stamps from then on.
    """
    manifest = unpacked.manifest
    if len(manifest.stamps) != len(manifest.files):
        return ["(no unpack-time stamps)"]
    base = os.fspath(unpacked.tree) + "/"
    lstat = os.lstat
    changed: list[str] = []
    # Each file is looked up relative to its open directory: one path component per lstat
    # instead of the ~10 of the absolute path (~35% less time). Archive order keeps a
    # directory's files together, so each directory is opened about once.
    current: str | None = None
    fd = -1
    try:
        for item, (size, mtime_ns, inode) in zip(manifest.files, manifest.stamps, strict=True):
            parent, _, name = item.member.rpartition("/")
            try:
                if parent != current:
                    if fd >= 0:
                        os.close(fd)
                        fd = -1
                    current = parent
                    fd = os.open(base + parent, os.O_RDONLY | os.O_DIRECTORY)
                st = lstat(name, dir_fd=fd)
            except OSError:
                changed.append(item.member)
                continue
            if st.st_mtime_ns != mtime_ns or st.st_size != size or st.st_ino != inode:
                changed.append(item.member)
    finally:
        if fd >= 0:
            os.close(fd)
    return changed


def corrupt_files(tree: str, manifest: WheelManifest) -> list[str]:
    """Members under *tree* whose bytes no longer match the manifest's sha256 (full re-hash)."""
    base = tree + "/"
    corrupt: list[str] = []
    for item in manifest.files:
        algo, _, expected = item.hash.partition("=")
        hasher = hashlib.new(algo if algo in ("sha256", "sha384", "sha512") else "sha256")
        size = 0
        try:
            with open(base + item.member, "rb") as stream:
                while block := stream.read(_READ):
                    size += len(block)
                    hasher.update(block)
        except OSError:
            corrupt.append(item.member)
            continue
        digest = base64.urlsafe_b64encode(hasher.digest()).rstrip(b"=").decode("ascii")
        if size != item.size or digest != expected:
            corrupt.append(item.member)
    return corrupt


class TreeDamage(msgspec.Struct, frozen=True, kw_only=True):
    """An unpacked tree `verify_trees` found damaged, and what was done about it."""

    sha256: str
    #: The wheel's file name, when its manifest could still be read.
    filename: str | None
    #: Damaged members (at most `MAX_NAMED`), or why the tree could not be checked at all.
    files: tuple[str, ...]
    #: Where the damaged tree was moved, relative to the store root.
    quarantined_as: str
    #: True when it was unpacked again from its (verified) blob.
    repaired: bool


@dataclass
class TreeReport:
    """What `verify_trees` checked (trees, bytes of their files) and found damaged."""

    checked: int = 0
    bytes: int = 0
    damaged: list[TreeDamage] = field(default_factory=list)


def verify_trees(
    root: Path,
    quarantine_dir: Path,
    store_root: Path,
    repair: Callable[[str, str], bool],
    progress: Callable[[int, int], None] | None = None,
) -> TreeReport:
    """Re-hash every tree under *root* (blocking: run it in a worker thread).

    A damaged tree (a file whose bytes differ from its RECORD hash, a missing file, an unreadable
    manifest) is moved into *quarantine_dir* in one rename, so no install can link from it
    any more, and ``repair(sha256, filename)`` is called to unpack it again from its blob
    (it returns False when the blob is gone). *progress* gets (trees checked, trees total).
    """
    decoder = msgspec.json.Decoder(WheelManifest)
    report = TreeReport()
    try:
        names = sorted(n for n in os.listdir(root) if _SHA256_RE.fullmatch(n))
    except FileNotFoundError:
        names = []
    for position, sha256 in enumerate(names, start=1):
        directory = os.path.join(root, sha256)
        filename: str | None = None
        try:
            manifest = decoder.decode(Path(directory, "manifest.json").read_bytes())
        except FileNotFoundError:
            continue  # removed meanwhile (garbage collection)
        except (OSError, msgspec.DecodeError) as exc:
            bad = [f"(manifest unreadable: {exc})"[:200]]
        else:
            filename = manifest.filename
            report.checked += 1
            report.bytes += sum(f.size for f in manifest.files)
            bad = corrupt_files(os.path.join(directory, "tree"), manifest)
        if bad:
            moved = _quarantine(Path(directory), quarantine_dir, sha256)
            if moved is not None:
                repaired = filename is not None and repair(sha256, filename)
                report.damaged.append(
                    TreeDamage(
                        sha256=sha256,
                        filename=filename,
                        files=tuple(bad[:MAX_NAMED]),
                        quarantined_as=str(moved.relative_to(store_root)),
                        repaired=repaired,
                    )
                )
        if progress is not None:
            progress(position, len(names))
    return report


def _quarantine(directory: Path, quarantine_dir: Path, sha256: str) -> Path | None:
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    dest = quarantine_dir / f"tree-{sha256}.{stamp}.{secrets.token_hex(3)}"
    try:
        directory.rename(dest)
    except FileNotFoundError:
        return None
    fsync_dir(directory.parent)
    fsync_dir(quarantine_dir)
    return dest
