"""Unpack a wheel once into the cache, validated as it is written (`wheelfile`).

A wheel is hostile until proven otherwise: its member names decide where files land, its RECORD
decides what an uninstaller deletes, and its zip headers decide how much memory and disk it can
claim. `validate_wheel` checks all of that *before anything is written anywhere*; `unpack` does the
same checks and then extracts in a single pass (hashing while writing into a private temporary
directory that nobody else can see), so a mismatch discards the directory and nothing becomes
visible.

Unpacked trees live at ``<root>/<sha256>/`` and are keyed by the wheel's own sha256 (its identity
in the store), which makes them immutable: a tree, once renamed into place, never changes. Each
holds::

    <root>/<sha256>/manifest.json   what an install needs (files per scheme, hashes, entry points)
    <root>/<sha256>/tree/...        the wheel's members, files read-only

so an install never re-opens the zip or re-parses RECORD. The tree and manifest appear together
with one ``rename``; concurrent unpackers of the same wheel race on that rename and the loser
discards its copy. Before the rename the filesystem is flushed (``syncfs`` where available, else a
per-file ``fsync``) because environments hard-link these files: a torn file after a power cut
would be copied into every environment.

Files in the tree are made read-only and the user's alone (`TREE_FILE_MODE` 0400, or
`TREE_EXEC_MODE` 0500 when executable; directories 0700), so that an in-place edit of a
hard-linked file in an environment fails instead of silently editing every other environment
sharing the inode (root ignores modes; see `satchel.daemon.installing.linking`), and no other local
user can
read what a private index served (issue 11.2). A hard link shares the mode: in an environment,
such a file is readable (and, when executable, runnable) by its owner, the user, only.
Because root, or a ``chmod``, can still edit one, the manifest records each file's (size, mtime,
inode) at unpack time and the installer checks them as it links each file
(`satchel.daemon.installing._placement`): a changed tree is unpacked again from its blob
(`unpack_all` with *again*) and swapped in atomically (`satchel.daemon.installing.treecheck`
explains the choice).
"""

# Paths are plain strings and os calls on purpose: these loops run per file, 10^4 times per
# install, where pathlib objects cost several microseconds each.
# ruff: noqa: PTH103, PTH104, PTH208

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import secrets
import shutil
import threading
import zipfile
from collections.abc import Collection, Sequence
from pathlib import Path

import msgspec

from satchel.daemon.errors import InvalidWheel
from satchel.daemon.installing._manifest import (
    ManifestFile,
    Stamp,
    UnpackedWheel,
    WheelManifest,
    stamp_of,
)
from satchel.daemon.installing.treecheck import changed_files
from satchel.daemon.installing.wheelfile import copy_member, inspect_wheel, invalid_wheel, open_zip
from satchel.daemon.storage.fsutil import (
    TEMP_PREFIX,
    disk_full_guard,
    fsync_dir,
    fsync_tree,
    syncfs,
)

__all__ = [
    "TREE_EXEC_MODE",
    "TREE_FILE_MODE",
    "load_unpacked",
    "remove_unpacked",
    "sweep_temporaries",
    "unpack",
    "unpack_all",
]

#: Unpacked members: read-only, owner only (module docstring).
TREE_FILE_MODE = 0o400
TREE_EXEC_MODE = 0o500

log = logging.getLogger(__name__)

#: Held while a damaged tree is swapped for a fresh one, so two installs that both found it
#: damaged replace it once (the second sees the first's fresh tree and uses it).
_replacing = threading.Lock()

_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(WheelManifest)


def _extract(path: Path, zf: zipfile.ZipFile, manifest: WheelManifest, tree: Path) -> WheelManifest:
    """Write every member under *tree*, hash-checked, read-only; the manifest in sha256."""
    made: set[str] = set()
    files: list[ManifestFile] = []
    stamps: list[Stamp] = []
    base = os.fspath(tree) + "/"
    for item in manifest.files:
        parent = item.member.rpartition("/")[0]
        if parent and parent not in made:
            os.makedirs(base + parent, mode=0o700, exist_ok=True)
            made.add(parent)
        mode = TREE_EXEC_MODE if item.executable else TREE_FILE_MODE
        fd = os.open(base + item.member, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            digest = copy_member(path, zf, item, fd)
            os.fchmod(fd, mode)  # changes ctime, not mtime: the stamp below stays valid
            stamps.append(stamp_of(os.fstat(fd)))
        finally:
            os.close(fd)
        files.append(item if digest == item.hash else msgspec.structs.replace(item, hash=digest))
    return msgspec.structs.replace(manifest, files=tuple(files), stamps=tuple(stamps))


def load_unpacked(root: Path, sha256: str) -> UnpackedWheel | None:
    """The already-unpacked tree for *sha256*, or None when it is not (yet) there."""
    directory = root / sha256
    try:
        raw = (directory / "manifest.json").read_bytes()
    except FileNotFoundError:
        return None
    return UnpackedWheel(sha256=sha256, directory=directory, manifest=_DECODER.decode(raw))


def unpack(wheel_path: Path, sha256: str, root: Path) -> UnpackedWheel:
    """Validate *wheel_path* and unpack it once into ``<root>/<sha256>/``; return the tree.

    Idempotent and safe under concurrency: an existing tree is reused; two unpackers of the
    same wheel each build a private temporary directory and the first ``rename`` wins.
    The caller vouches that *sha256* is the wheel's digest (the store names blobs by it).
    """
    return unpack_all([(wheel_path, sha256)], root)[0]


def unpack_all(
    wheels: Sequence[tuple[Path, str]],
    root: Path,
    *,
    filenames: Sequence[str] | None = None,
    again: Collection[str] = (),
) -> list[UnpackedWheel]:
    """`unpack` for a whole install set, with one filesystem flush for all of them.

    Flushing is what unpacking costs (measured on ext4, 122-file wheels: ~5 ms to extract,
    ~90 ms with an fsync per file, 10-50 ms with one ``syncfs`` per wheel, depending on what
    else is dirty), so the trees are all staged first, flushed once, then renamed into place.
    Any invalid wheel fails the whole call before anything is published. *filenames* gives each
    wheel's real file name when the paths do not carry it (the store names blobs by sha256).

    An existing tree is reused as it is: the installer checks each file's stamp as it links it
    (`satchel.daemon.installing._placement`). The trees it found changed are named in *again*
    (sha256s): each is staged afresh like a missing one and swapped in under `_replacing`: the
    damaged tree is renamed aside (then deleted) and the fresh one renamed into place, so a
    reader sees the damaged tree, no tree (and unpacks its own), or the fresh one; never a mix.
    """
    names = list(filenames) if filenames is not None else [path.name for path, _sha in wheels]
    if len(names) != len(wheels):
        raise ValueError("filenames must name every wheel")
    for _path, sha256 in wheels:
        if not re.fullmatch(r"[0-9a-f]{64}", sha256):
            raise ValueError(f"not a sha256 hex digest: {sha256!r}")
    results: dict[str, UnpackedWheel] = {}
    staged: list[tuple[Path, str, Path, WheelManifest]] = []
    damaged: set[str] = set()
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        for (wheel_path, sha256), filename in zip(wheels, names, strict=True):
            existing = load_unpacked(root, sha256)
            if existing is not None:
                if sha256 not in again:
                    results[sha256] = existing
                    continue
                damaged.add(sha256)
            tmp = root / f"{TEMP_PREFIX}{sha256}.{secrets.token_hex(6)}"
            staged.append((wheel_path, sha256, tmp, _stage(wheel_path, tmp, filename)))
        if staged and not syncfs(root):
            for _wheel, _sha, tmp, _manifest in staged:
                fsync_tree(tmp)
        for wheel_path, sha256, tmp, manifest in staged:
            if sha256 in damaged:
                results[sha256] = _replace(root, sha256, tmp, manifest)
                continue
            try:
                os.rename(tmp, root / sha256)
            except OSError as exc:
                if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                    raise
                # Someone else won the race: their tree is identical by construction.
                winner = load_unpacked(root, sha256)
                if winner is None:  # pragma: no cover - the winner's rename was just observed
                    raise invalid_wheel(
                        wheel_path, "unpacked tree vanished during a concurrent unpack"
                    ) from exc
                results[sha256] = winner
            else:
                results[sha256] = UnpackedWheel(sha256, root / sha256, manifest)
        if staged:
            fsync_dir(root)
    finally:
        for _wheel, _sha, tmp, _manifest in staged:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return [results[sha256] for _path, sha256 in wheels]


def _replace(root: Path, sha256: str, tmp: Path, manifest: WheelManifest) -> UnpackedWheel:
    """Swap the damaged tree ``<root>/<sha256>`` for the staged *tmp* (see `unpack_all`)."""
    with _replacing:
        current = load_unpacked(root, sha256)
        if current is not None and not changed_files(current):
            return current  # another install replaced it meanwhile; *tmp* is discarded
        if current is not None:
            remove_unpacked(root, sha256)
        try:
            os.rename(tmp, root / sha256)
        except OSError as exc:
            # An unpacker that found no tree (between our removal and rename) won the race.
            winner = load_unpacked(root, sha256)
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY) or winner is None:
                raise
            return winner
        return UnpackedWheel(sha256, root / sha256, manifest)


def _stage(wheel_path: Path, tmp: Path, filename: str) -> WheelManifest:
    """Validate and extract into the private directory *tmp* (removed again on failure)."""
    try:
        with disk_full_guard(tmp), open_zip(wheel_path) as zf:
            manifest = inspect_wheel(wheel_path, zf, None, None, filename=filename)
            tree = tmp / "tree"
            os.makedirs(tree, mode=0o700)
            manifest = _extract(wheel_path, zf, manifest, tree)
            fd = os.open(tmp / "manifest.json", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(_ENCODER.encode(manifest))
            return manifest
    except InvalidWheel as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        reason = exc.details.get("reason")
        if filename == wheel_path.name or not isinstance(reason, str):
            raise
        # The store names blobs by sha256: say which file the user asked for, keep the blob.
        named = invalid_wheel(filename, reason)
        named.details["blob"] = wheel_path.name
        raise named from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def remove_unpacked(root: Path, sha256: str) -> None:
    """Delete an unpacked tree (garbage collection); environments keep their hard links."""
    doomed = root / f"{TEMP_PREFIX}gc-{sha256}.{secrets.token_hex(6)}"
    with contextlib.suppress(FileNotFoundError):
        os.rename(root / sha256, doomed)  # one atomic step: readers see all or nothing
        shutil.rmtree(doomed, ignore_errors=True)


def sweep_temporaries(root: Path) -> int:
    """Delete what unpackers killed mid-way left in *root*; returns how many were removed.

    Call only at daemon start-up, while holding the daemon's single-instance lock and before
    any unpack runs: a live unpacker's staging directory looks exactly like a dead one's.
    """
    removed = 0
    try:
        entries = os.listdir(root)
    except FileNotFoundError:
        return 0
    for entry in entries:
        if entry.startswith(TEMP_PREFIX):
            shutil.rmtree(root / entry, ignore_errors=True)
            removed += 1
    return removed
