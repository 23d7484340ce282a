"""Validate a wheel before trusting a byte of it: names, sizes, RECORD, compression.

A wheel is hostile until proven otherwise: its member names decide where files land, its RECORD
decides what an uninstaller deletes, and its zip headers decide how much memory and disk it can
claim. `validate_wheel` checks all of that *before anything is written anywhere*; unpacking
(`satchel.daemon.installing.wheel`) runs the same checks (`copy_member`) while it writes.
"""

# Paths are plain strings and os calls on purpose: these loops run per file, 10^4 times per
# install, where pathlib objects cost several microseconds each.

from __future__ import annotations

import base64
import csv
import hashlib
import io
import os
import re
import stat
import unicodedata
import zipfile
from collections.abc import Sequence
from email.parser import HeaderParser
from pathlib import Path

from packaging.utils import (
    InvalidWheelFilename,
    canonicalize_name,
    canonicalize_version,
    parse_wheel_filename,
)

from satchel.daemon.errors import InvalidWheel
from satchel.daemon.installing._manifest import ManifestFile, WheelInfo, WheelManifest
from satchel.daemon.installing._scripts import EntryPoint, parse_entry_points

__all__ = [
    "MAX_CENTRAL_DIRECTORY",
    "MAX_COMPRESSION_RATIO",
    "MAX_MEMBER_PATH",
    "MAX_NAME_COMPONENT",
    "MAX_TOTAL_SIZE",
    "SCHEMES",
    "central_directory_problem",
    "copy_member",
    "inspect_wheel",
    "invalid_wheel",
    "open_zip",
    "validate_wheel",
]

#: The install schemes a ``.data/<scheme>/`` directory may name (the wheel spec's list).
SCHEMES = frozenset({"purelib", "platlib", "headers", "scripts", "data"})

#: No real wheel comes near this (the largest on public indexes are ~1-2 GiB of CUDA
#: libraries); a zip whose central directory claims more is a bomb or a mistake.
MAX_TOTAL_SIZE = 8 * 1024**3

#: Deflate tops out near 1032:1 on pathological input; real text compresses <= ~20:1, but
#: genuine wheels do hold files far above 100:1 (pillow 13's bundled ``libXau`` is 2 MiB
#: deflated 224:1: padded shared libraries). A high ratio only matters when it is also a lot
#: of bytes, so it is checked for members, and for the archive as a whole, above
#: `_RATIO_FLOOR`: what a bomb needs (a small download that expands to gigabytes) is refused,
#: what real wheels contain is not.
MAX_COMPRESSION_RATIO = 200
_RATIO_FLOOR = 64 * 1024 * 1024

#: Members whose RECORD entry may lack a hash: RECORD itself and its signatures (PEP 491).
_UNHASHED = ("RECORD", "RECORD.jws", "RECORD.p7s")
#: Hash algorithms accepted in RECORD; md5/sha1 are not evidence of anything any more.
_HASHES = frozenset({"sha256", "sha384", "sha512"})
#: Longest path component a member may have: NAME_MAX of every common filesystem (ext4, xfs,
#: btrfs, APFS, NTFS); a longer one fails at write time, deep inside an install (issue 11.10).
MAX_NAME_COMPONENT = 255
#: Longest member path. Real wheels stay under ~300 bytes; this leaves any environment prefix
#: room under Linux's PATH_MAX (4096) so that an accepted member can always be installed.
MAX_MEMBER_PATH = 1024
#: Largest central directory a zip may declare (as `upstream.remotezip` for range reads).
#: zipfile reads it whole and keeps ~1.3 KB per member: 16 MiB is ~350,000 members at worst
#: (~450 MiB while it is read); real wheels hold at most a few tens of thousands of files
#: (~2-4 MiB). Checked from the end record before zipfile reads a byte of it.
MAX_CENTRAL_DIRECTORY = 16 * 2**20
_EOCD = b"PK\x05\x06"
_EOCD64_LOCATOR = b"PK\x06\x07"
_EOCD64 = b"PK\x06\x06"
#: WHEEL is a handful of header lines (~100 bytes).
_MAX_WHEEL_FILE = 1024 * 1024
#: entry_points.txt of the most plugin-heavy real projects is a few hundred KiB; the cap is
#: that of core metadata (`resolver.coremetadata.MAX_METADATA_BYTES`).
_MAX_ENTRY_POINTS = 16 * 1024 * 1024
_DRIVE = re.compile(r"^[A-Za-z]:")
_CHUNK = 1024 * 1024


def invalid_wheel(wheel: Path | str, reason: str) -> InvalidWheel:
    name = Path(wheel).name
    return InvalidWheel(
        f"invalid wheel {name}: {reason}", details={"wheel": name, "reason": reason}
    )


def _check_member_name(wheel: Path, name: str) -> None:
    """Reject any archive name that could point outside the tree on any platform."""
    if "\x00" in name:
        raise invalid_wheel(wheel, f"member {name!r} contains a NUL byte")
    if "\\" in name:
        raise invalid_wheel(wheel, f"member {name!r} contains a backslash")
    if name.startswith("/") or _DRIVE.match(name):
        raise invalid_wheel(wheel, f"member {name!r} is an absolute path")
    parts = name.rstrip("/").split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise invalid_wheel(wheel, f"member {name!r} has an empty, '.' or '..' path component")
    shown = name if len(name) <= 100 else name[:100] + "..."
    if len(name.encode("utf-8", "surrogateescape")) > MAX_MEMBER_PATH:
        raise invalid_wheel(
            wheel, f"member {shown!r} has a path longer than {MAX_MEMBER_PATH} bytes"
        )
    if any(len(part.encode("utf-8", "surrogateescape")) > MAX_NAME_COMPONENT for part in parts):
        raise invalid_wheel(
            wheel,
            f"member {shown!r} has a path component longer than {MAX_NAME_COMPONENT} bytes",
        )


def _check_tree_shape(wheel: Path, files: Sequence[str], where: str) -> None:
    """Refuse a path that is a file and, for another member, a directory (``a`` and ``a/b``):
    they cannot both be written, and the failure would come mid-install."""
    present = set(files)
    for name in files:
        parts = name.split("/")
        for end in range(1, len(parts)):
            parent = "/".join(parts[:end])
            if parent in present:
                raise invalid_wheel(
                    wheel,
                    f"{parent!r} is both a file and a directory ({name!r} is below it){where}",
                )


def _read_small(wheel: Path, zf: zipfile.ZipFile, name: str, limit: int) -> bytes:
    """A member read whole (WHEEL, entry_points.txt), refused past *limit* from its declared
    size, which zipfile never reads beyond."""
    size = zf.getinfo(name).file_size
    if size > limit:
        raise invalid_wheel(
            wheel, f"{name.rsplit('/', 1)[-1]} is larger than the {limit} byte limit ({size})"
        )
    try:
        return zf.read(name)
    except (zipfile.BadZipFile, EOFError, zlib_error) as exc:  # its bytes are corrupt
        raise invalid_wheel(wheel, f"{name.rsplit('/', 1)[-1]} is unreadable ({exc})") from exc


def _record_digest(wheel: Path, value: str, member: str) -> tuple[str, str]:
    algo, sep, digest = value.partition("=")
    if not sep or algo not in _HASHES or not digest:
        raise invalid_wheel(wheel, f"RECORD entry for {member!r} has an unusable hash {value!r}")
    return algo, digest


def _b64(digest: bytes) -> str:
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _read_record(wheel: Path, zf: zipfile.ZipFile, record_name: str) -> dict[str, tuple[str, int]]:
    """RECORD as {path: (hash, size)}; unhashed entries only for RECORD and its signatures."""
    info = zf.getinfo(record_name)
    if info.file_size > 64 * 1024 * 1024:
        raise invalid_wheel(wheel, "RECORD is implausibly large")
    try:
        text = zf.read(info).decode("utf-8")
    except (UnicodeDecodeError, zipfile.BadZipFile, OSError, EOFError, zlib_error) as exc:
        raise invalid_wheel(wheel, f"RECORD is unreadable ({exc})") from exc
    dist_info = record_name.rsplit("/", 1)[0]
    entries: dict[str, tuple[str, int]] = {}
    try:
        _record_rows(wheel, text, dist_info, entries)
    except csv.Error as exc:  # a field over csv's 128 KiB limit, a NUL, ...
        raise invalid_wheel(wheel, f"RECORD is unreadable ({exc})") from None
    return entries


def _record_rows(
    wheel: Path, text: str, dist_info: str, entries: dict[str, tuple[str, int]]
) -> None:
    for row in csv.reader(io.StringIO(text)):
        if not row:
            continue
        if len(row) != 3:
            raise invalid_wheel(wheel, f"RECORD row {row!r} does not have 3 fields")
        path, hash_value, size = row
        _check_member_name(wheel, path)
        if path in entries:
            raise invalid_wheel(wheel, f"RECORD lists {path!r} twice")
        if path.startswith(dist_info + "/") and path[len(dist_info) + 1 :] in _UNHASHED:
            entries[path] = ("", -1)
            continue
        _record_digest(wheel, hash_value, path)
        try:
            entries[path] = (hash_value, int(size))
        except ValueError:
            raise invalid_wheel(
                wheel, f"RECORD entry for {path!r} has a bad size {size!r}"
            ) from None


def inspect_wheel(
    path: Path,
    zf: zipfile.ZipFile,
    name: str | None,
    version: str | None,
    *,
    filename: str | None = None,
) -> WheelManifest:
    """Every structural check (no member content read but RECORD, WHEEL, entry_points.txt)."""
    try:
        wname, wversion, _build, _tags = parse_wheel_filename(filename or path.name)
    except InvalidWheelFilename as exc:
        raise invalid_wheel(path, f"bad file name ({exc})") from exc
    if name is not None and canonicalize_name(name) != wname:
        raise invalid_wheel(path, f"is for project {wname!r}, expected {canonicalize_name(name)!r}")
    if version is not None and canonicalize_version(version) != canonicalize_version(wversion):
        raise invalid_wheel(path, f"is version {wversion}, expected {version}")

    infos = zf.infolist()
    seen: set[str] = set()
    folded: dict[str, str] = {}
    total = 0
    compressed = 0
    dist_infos: set[str] = set()
    for info in infos:
        member = info.filename
        _check_member_name(path, member)
        if member in seen:
            raise invalid_wheel(path, f"member {member!r} appears twice in the archive")
        seen.add(member)
        key = unicodedata.normalize("NFC", member.rstrip("/")).casefold()
        if key in folded and folded[key] != member.rstrip("/"):
            raise invalid_wheel(path, f"members {folded[key]!r} and {member!r} differ only in case")
        folded[key] = member.rstrip("/")
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise invalid_wheel(path, f"member {member!r} is a symbolic link")
        if info.is_dir():
            continue
        total += info.file_size
        if total > MAX_TOTAL_SIZE:
            raise invalid_wheel(path, f"uncompressed size exceeds {MAX_TOTAL_SIZE} bytes")
        if info.file_size > _RATIO_FLOOR and info.file_size > MAX_COMPRESSION_RATIO * max(
            info.compress_size, 1
        ):
            raise invalid_wheel(
                path,
                f"member {member!r} has compression ratio above {MAX_COMPRESSION_RATIO}:1"
                " (zip bomb?)",
            )
        compressed += info.compress_size
        if total > _RATIO_FLOOR and total > MAX_COMPRESSION_RATIO * max(compressed, 1):
            raise invalid_wheel(
                path,
                f"the archive expands above {MAX_COMPRESSION_RATIO}:1 past "
                f"{_RATIO_FLOOR // 2**20} MiB (zip bomb?)",
            )
        top = member.split("/", 1)[0]
        if top.endswith(".dist-info") and "/" in member:
            dist_infos.add(top)

    if len(dist_infos) != 1:
        found = ", ".join(sorted(dist_infos)) or "none"
        raise invalid_wheel(path, f"needs exactly one .dist-info directory, found {found}")
    _check_tree_shape(path, [info.filename for info in infos if not info.is_dir()], "")
    dist_info = dist_infos.pop()
    di_name, _, di_version = dist_info[: -len(".dist-info")].rpartition("-")
    if canonicalize_name(di_name) != wname or canonicalize_version(
        di_version
    ) != canonicalize_version(wversion):
        raise invalid_wheel(path, f"{dist_info} does not match the file name {wname} {wversion}")
    data_dir = dist_info[: -len(".dist-info")] + ".data"

    record_name = f"{dist_info}/RECORD"
    if record_name not in seen:
        raise invalid_wheel(path, f"{record_name} is missing")
    wheel_name = f"{dist_info}/WHEEL"
    if wheel_name not in seen:
        raise invalid_wheel(path, f"{wheel_name} is missing")
    wheel_meta = HeaderParser().parsestr(
        _read_small(path, zf, wheel_name, _MAX_WHEEL_FILE).decode("utf-8", "replace")
    )
    wheel_version = (wheel_meta.get("Wheel-Version") or "").strip()
    if wheel_version.split(".")[0] != "1":
        raise invalid_wheel(path, f"unsupported Wheel-Version {wheel_version!r} (need 1.x)")
    root_is_purelib = (wheel_meta.get("Root-Is-Purelib") or "").strip().lower() == "true"

    record = _read_record(path, zf, record_name)
    for entry in record:
        if entry not in seen:
            raise invalid_wheel(path, f"RECORD lists {entry!r}, which is not in the archive")

    root_scheme = "purelib" if root_is_purelib else "platlib"
    files: list[ManifestFile] = []
    for info in infos:
        member = info.filename
        if info.is_dir():
            continue
        if member not in record:
            if member.startswith(dist_info + "/") and member[len(dist_info) + 1 :] in _UNHASHED:
                continue  # RECORD.jws / RECORD.p7s sign RECORD; they cannot list themselves
            raise invalid_wheel(path, f"member {member!r} is not listed in RECORD")
        hash_value, size = record[member]
        if not hash_value:  # RECORD and its signatures: never installed as-is
            continue
        if size != info.file_size:
            raise invalid_wheel(
                path, f"member {member!r} is {info.file_size} bytes, RECORD says {size}"
            )
        parts = member.split("/")
        if "__pycache__" in parts[:-1]:
            continue  # as pypa/installer: never install bytecode shipped in a wheel
        if parts[0] == data_dir:
            if len(parts) < 3 or parts[1] not in SCHEMES:
                raise invalid_wheel(path, f"member {member!r} is not under a known .data scheme")
            scheme, dest = parts[1], "/".join(parts[2:])
        else:
            scheme, dest = root_scheme, member
        mode = info.external_attr >> 16
        # As pip and pypa/installer: only a regular file with an x bit is executable; but
        # everything in .data/scripts is (as pip does), since bin/ is where it will be run.
        executable = scheme == "scripts" or bool(stat.S_ISREG(mode) and mode & 0o111)
        files.append(ManifestFile(member, scheme, dest, hash_value, size, executable))

    # Installed places: purelib and platlib are one directory in an environment.
    for scheme in SCHEMES - {"platlib"}:
        same = {scheme, "platlib"} if scheme == "purelib" else {scheme}
        _check_tree_shape(
            path, [f.path for f in files if f.scheme in same], f" once installed ({scheme})"
        )

    entry_points: tuple[EntryPoint, ...] = ()
    ep_name = f"{dist_info}/entry_points.txt"
    if ep_name in seen:
        try:
            text = _read_small(path, zf, ep_name, _MAX_ENTRY_POINTS).decode("utf-8")
            entry_points = tuple(parse_entry_points(text))
        except ValueError as exc:
            raise invalid_wheel(path, f"entry_points.txt: {exc}") from exc
        scripts = {f.path for f in files if f.scheme == "scripts"}
        for point in entry_points:
            if point.name in scripts:
                raise invalid_wheel(
                    path, f"script {point.name!r} is defined twice (entry point and .data/scripts)"
                )
    return WheelManifest(
        name=wname,
        version=str(wversion),
        filename=filename or path.name,
        dist_info=dist_info,
        root_is_purelib=root_is_purelib,
        files=tuple(files),
        entry_points=entry_points,
    )


def central_directory_problem(path: Path) -> str | None:
    """Why *path*'s central directory is too large to read (`MAX_CENTRAL_DIRECTORY`), from the
    size its end record declares (zip64 too); None when it is not, or when there is no end
    record (zipfile then says the archive is unreadable)."""
    with path.open("rb") as f:
        end = f.seek(0, os.SEEK_END)
        tail_start = max(0, end - 22 - 0xFFFF)  # the end record, then a comment of <= 64 KiB
        f.seek(tail_start)
        tail = f.read()
        # Found as zipfile finds it: the last 22 bytes when they start with the signature and
        # declare no comment (whatever else they hold: fields may spell the signature again),
        # else the signature's last occurrence.
        at = len(tail) - 22
        if at < 0 or tail[at : at + 4] != _EOCD or tail[-2:] != b"\0\0":
            at = tail.rfind(_EOCD)
        if at < 0 or len(tail) - at < 22:
            return None
        size = int.from_bytes(tail[at + 12 : at + 16], "little")
        # zipfile reads a zip64 end record where it sits, just before the locator.
        locator = tail_start + at - 20
        if locator >= 56:
            f.seek(locator - 56)
            record = f.read(76)
            if record[:4] == _EOCD64 and record[56:60] == _EOCD64_LOCATOR:
                size = int.from_bytes(record[40:48], "little")  # zipfile uses this one
    if size > MAX_CENTRAL_DIRECTORY:
        return (
            f"its central directory is {size} bytes, above the {MAX_CENTRAL_DIRECTORY} byte limit"
        )
    return None


def open_zip(path: Path) -> zipfile.ZipFile:
    try:
        problem = central_directory_problem(path)
        if problem is not None:
            raise invalid_wheel(path, problem)
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise invalid_wheel(path, f"not a readable zip archive ({exc})") from exc


def copy_member(path: Path, zf: zipfile.ZipFile, item: ManifestFile, sink: int | None) -> str:
    """Stream one member (to *sink* if given), verifying its RECORD hash and size.

    Returns the member's ``sha256=`` RECORD hash: the installed RECORD always uses sha256 (as
    pypa/installer and pip write it), even when the wheel's RECORD used sha384/sha512.
    """
    algo, expected = _record_digest(path, item.hash, item.member)
    hasher = hashlib.new(algo)
    sha256 = hasher if algo == "sha256" else hashlib.sha256()
    size = 0
    try:
        with zf.open(item.member) as stream:
            while chunk := stream.read(_CHUNK):
                size += len(chunk)
                if size > item.size:
                    break
                hasher.update(chunk)
                if sha256 is not hasher:
                    sha256.update(chunk)
                if sink is not None:
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(sink, view) :]
    except (zipfile.BadZipFile, EOFError, zlib_error) as exc:
        raise invalid_wheel(path, f"member {item.member!r} is corrupt ({exc})") from exc
    if size != item.size or _b64(hasher.digest()) != expected:
        raise invalid_wheel(path, f"member {item.member!r} does not match its RECORD hash and size")
    return item.hash if sha256 is hasher else "sha256=" + _b64(sha256.digest())


try:
    import zlib

    zlib_error: type[Exception] = zlib.error
except ImportError:  # pragma: no cover - zlib is always built on supported platforms
    zlib_error = OSError


def validate_wheel(
    path: Path, *, expected_name: str | None = None, expected_version: str | None = None
) -> WheelInfo:
    """Check *path* completely (structure, names, RECORD hashes and sizes) without writing."""
    with open_zip(path) as zf:
        manifest = inspect_wheel(path, zf, expected_name, expected_version)
        for item in manifest.files:
            copy_member(path, zf, item, None)
    return WheelInfo(path=path, manifest=manifest)
