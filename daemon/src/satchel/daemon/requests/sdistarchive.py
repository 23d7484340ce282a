"""Unpack an sdist for a build: every member inside the build's directory, and bounded in size.

An sdist is an archive written by whoever uploaded it. Tar members go through the ``data``
filter (no ``..``, no absolute links, no devices; checked by hand on Pythons without it), zip
names are checked, and the unpacked size is bounded as a wheel's is (`wheelfile`): a gzip bomb
is refused at the member that makes it one, before that member is written.
"""

from __future__ import annotations

import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

from satchel.daemon.errors import BuildError
from satchel.daemon.installing.wheelfile import (
    MAX_COMPRESSION_RATIO,
    MAX_TOTAL_SIZE,
    central_directory_problem,
)
from satchel.daemon.resolver.coremetadata import MAX_SDIST_MEMBERS, BoundedTarInfo

__all__ = ["extract_sdist"]

#: Past this many unpacked bytes, unpacking to more than `MAX_COMPRESSION_RATIO` times the
#: archive's own size is a bomb (real sdists compress ~3-10:1); nothing unpacks past
#: `MAX_TOTAL_SIZE` at all. The same floor as a wheel's.
_RATIO_FLOOR = 64 * 1024 * 1024


def extract_sdist(sdist: Path, filename: str, into: Path) -> Path:
    """Unpack the sdist safely into *into*; its source tree (the one top-level directory)."""
    count = _size_budget(filename, sdist.stat().st_size)
    try:
        if filename.endswith(".zip"):
            problem = central_directory_problem(sdist)
            if problem is not None:
                raise BuildError(f"{filename}: {problem}")
            with zipfile.ZipFile(sdist) as zf:
                for info in zf.infolist():  # zipfile never reads past a declared size
                    name = info.filename
                    parts = Path(name).parts
                    if name.startswith(("/", "\\")) or ".." in parts:
                        raise BuildError(f"{filename}: unsafe path {name!r} in the archive")
                    count(name, info.file_size)
                zf.extractall(into)  # noqa: S202 - every member name checked above
        else:
            with tarfile.open(sdist, "r:*", tarinfo=BoundedTarInfo) as tf:
                if not hasattr(tarfile, "data_filter"):  # Python < 3.11.4: check by hand
                    for member in tf.getmembers():
                        _check_member(member, filename)
                        count(member.name, member.size if member.isfile() else 0)
                    tf.extractall(into)  # noqa: S202 - every member checked above
                else:
                    data_filter = tarfile.data_filter

                    def bounded(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo | None:
                        # Called for each member before it is written: a bomb stops here.
                        count(member.name, member.size if member.isfile() else 0)
                        return data_filter(member, dest)

                    tf.extractall(into, filter=bounded)  # noqa: S202 - the data filter, bounded
    except (OSError, tarfile.TarError, zipfile.BadZipFile, EOFError) as exc:
        raise BuildError(f"{filename}: cannot unpack the sdist ({exc})") from exc
    entries = list(into.iterdir())
    root = entries[0] if len(entries) == 1 and entries[0].is_dir() else into
    if not (root / "pyproject.toml").is_file() and not (root / "setup.py").is_file():
        raise BuildError(f"{filename}: neither pyproject.toml nor setup.py in the sdist")
    return root


def _size_budget(filename: str, archive_size: int) -> Callable[[str, int], None]:
    """A counter of unpacked members and bytes that raises `BuildError` at the member that makes
    the sdist a bomb (see `_RATIO_FLOOR`, `MAX_SDIST_MEMBERS`), before that member is written."""
    total = members = 0

    def count(name: str, size: int) -> None:
        nonlocal total, members
        total += size
        members += 1
        if members > MAX_SDIST_MEMBERS:
            raise BuildError(
                f"{filename}: more than {MAX_SDIST_MEMBERS} members (at {name!r})",
                details={"file": filename, "member": name},
            )
        if total > MAX_TOTAL_SIZE or (
            total > _RATIO_FLOOR and total > MAX_COMPRESSION_RATIO * max(archive_size, 1)
        ):
            raise BuildError(
                f"{filename}: unpacks to more than {MAX_COMPRESSION_RATIO} times its "
                f"{archive_size} bytes at member {name!r} (zip bomb?)",
                details={"file": filename, "member": name},
            )

    return count


def _check_member(member: tarfile.TarInfo, filename: str) -> None:
    """What the ``data`` filter refuses: escaping paths, links out, devices."""
    parts = Path(member.name).parts
    if member.name.startswith("/") or ".." in parts:
        raise BuildError(f"{filename}: unsafe path {member.name!r} in the archive")
    if member.islnk() or member.issym():
        target = Path(member.linkname)
        if target.is_absolute() or ".." in target.parts:
            raise BuildError(f"{filename}: link {member.name!r} points outside the archive")
    elif not (member.isfile() or member.isdir()):
        raise BuildError(f"{filename}: special file {member.name!r} in the archive")
