"""Core metadata read out of stored distribution files, and compared with what an index said.

Split out of `satchel.daemon.indexes.catalog`:
reading an archive's METADATA/PKG-INFO under a size cap,
and deciding whether a wheel's own METADATA agrees with the PEP 658 file its index served (issue
11.5), are jobs of their own, with no network and no state.
"""

from __future__ import annotations

import tarfile
import zipfile
import zlib
from pathlib import Path

from satchel.daemon.errors import HostileInput, SatchelError, UpstreamError
from satchel.daemon.installing.wheelfile import central_directory_problem, invalid_wheel
from satchel.daemon.resolver.candidates import SdistNeedsBuild, parse_core_metadata

__all__ = [
    "MAX_METADATA_BYTES",
    "MAX_SDIST_MEMBERS",
    "MAX_TAR_HEADER",
    "BoundedTarInfo",
    "TarHeaderRefused",
    "metadata_differences",
    "metadata_from_file",
]

#: Upper bound for METADATA/PKG-INFO read out of a stored file: real ones are a few KiB, the
#: largest seen in the wild are under 1 MiB; more is an archive trying to exhaust memory.
MAX_METADATA_BYTES = 16 * 2**20
#: Most members an sdist may have: the largest real ones hold a few tens of thousands of
#: files; empty members escape every byte count yet cost memory to walk (a header object each)
#: and an inode each to unpack (`requests.sdistarchive`).
MAX_SDIST_MEMBERS = 200_000
#: Walking a tar.gz to its PKG-INFO inflates every member before it: past `_RATIO_FLOOR`
#: bytes, more than `_MAX_RATIO` times the file's size is a bomb (the bound of wheels and of
#: unpacking sdists, `installing.wheelfile.MAX_COMPRESSION_RATIO`).
_MAX_RATIO = 200
_RATIO_FLOOR = 64 * 2**20
#: Largest extended header of a tar (a GNU long name or link, a pax or Solaris header): real
#: ones hold a long path, a timestamp, a few attributes (a few hundred bytes). tarfile reads
#: one whole into memory before the member it describes, and no member's size counts it.
MAX_TAR_HEADER = 2**20
_EXTENDED = frozenset(
    {
        tarfile.GNUTYPE_LONGNAME,
        tarfile.GNUTYPE_LONGLINK,
        tarfile.XHDTYPE,
        tarfile.XGLTYPE,
        tarfile.SOLARIS_XHDTYPE,
    }
)


class TarHeaderRefused(tarfile.TarError):
    """An extended header over `MAX_TAR_HEADER`, or a sparse member (`BoundedTarInfo`). A
    `tarfile.TarError`, not a ``HeaderError``: tarfile takes a bad header past the first for
    the end of the archive."""


class BoundedTarInfo(tarfile.TarInfo):
    """``tarinfo=`` for `tarfile.open` of an sdist: refuses an extended header larger than
    `MAX_TAR_HEADER`, and GNU sparse members (no sdist holds one; their maps are read whole
    too), before tarfile reads them."""

    def _proc_member(self, archive: tarfile.TarFile) -> tarfile.TarInfo:
        if self.type in _EXTENDED and self.size > MAX_TAR_HEADER:
            raise TarHeaderRefused(
                f"an extended tar header of {self.size} bytes ({self.name!r}), above the "
                f"{MAX_TAR_HEADER} byte limit"
            )
        if self.type == tarfile.GNUTYPE_SPARSE:
            raise TarHeaderRefused(f"a sparse member {self.name!r}: no sdist holds one")
        processed: tarfile.TarInfo = super()._proc_member(archive)  # type: ignore[misc]
        return processed

    def _proc_gnusparse_10(self, *_args: object) -> None:  # a pax-described sparse member
        raise TarHeaderRefused(f"a sparse member {self.name!r}: no sdist holds one")


def metadata_from_file(path: Path, filename: str) -> bytes:
    """METADATA of a wheel, or PKG-INFO of an sdist, read from the stored file (blocking).

    An sdist without PKG-INFO (old or hand-made archives) is not broken, merely silent about
    its metadata until built: `SdistNeedsBuild`, so a resolver builds it as it would one whose
    PKG-INFO declares its dependencies dynamic. A wheel without METADATA is unusable.
    """
    oversize = False
    try:
        if filename.endswith((".whl", ".zip")):
            problem = central_directory_problem(path)
            if problem is not None and filename.endswith(".whl"):
                raise invalid_wheel(filename, problem)
            if problem is not None:
                raise HostileInput(f"{filename}: {problem}")
        if filename.endswith(".whl"):
            with zipfile.ZipFile(path) as zf:
                for info in zf.infolist():
                    parts = info.filename.split("/")
                    if (
                        len(parts) == 2
                        and parts[0].endswith(".dist-info")
                        and parts[1] == "METADATA"
                    ):
                        if info.file_size > MAX_METADATA_BYTES:
                            oversize = True
                            break
                        return zf.read(info)
        elif filename.endswith(".zip"):
            with zipfile.ZipFile(path) as zf:
                for info in zf.infolist():
                    parts = info.filename.split("/")
                    if len(parts) == 2 and parts[1] == "PKG-INFO":
                        if info.file_size > MAX_METADATA_BYTES:
                            oversize = True
                            break
                        return zf.read(info)
        elif filename.endswith(".tar.gz"):
            budget = max(_RATIO_FLOOR, _MAX_RATIO * path.stat().st_size)
            walked = 0
            with tarfile.open(path, "r:gz", tarinfo=BoundedTarInfo) as tf:
                for count, member in enumerate(tf, 1):
                    walked += member.size
                    if walked > budget:  # passing a member inflates it: a gzip bomb is CPU
                        raise HostileInput(
                            f"{filename}: expands above {_MAX_RATIO}:1 before its PKG-INFO"
                            " (zip bomb?)"
                        )
                    # tarfile keeps every header it passes (its `members` list, not in the
                    # stubs); none is needed again here.
                    tf.members.clear()  # type: ignore[attr-defined]
                    if count > MAX_SDIST_MEMBERS:
                        raise HostileInput(
                            f"{filename}: more than {MAX_SDIST_MEMBERS} members before its PKG-INFO"
                        )
                    parts = member.name.split("/")
                    if len(parts) == 2 and parts[1] == "PKG-INFO" and member.isfile():
                        if member.size > MAX_METADATA_BYTES:
                            oversize = True
                            break
                        handle = tf.extractfile(member)
                        if handle is not None:
                            return handle.read()
    except TarHeaderRefused as exc:
        raise HostileInput(f"{filename}: {exc}") from None
    except (OSError, zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error) as exc:
        raise UpstreamError(f"{filename}: unreadable archive ({exc})") from None
    if oversize:
        raise HostileInput(
            f"{filename}: its core metadata is larger than the {MAX_METADATA_BYTES} byte limit"
        )
    if filename.endswith((".zip", ".tar.gz")):
        raise SdistNeedsBuild(
            f"{filename} is an sdist without PKG-INFO, so its dependencies are only known "
            "after building it"
        )
    raise UpstreamError(f"{filename}: no usable core metadata inside the file")


def metadata_differences(used: bytes, own: bytes, filename: str) -> list[str]:
    """What resolving reads (name, version, Requires-Dist, Requires-Python) that differs
    between the metadata *used* and the wheel's *own*; empty when only the form differs."""
    where = f"the core metadata of {filename}"
    try:
        before = parse_core_metadata(used, sdist=False, where=where)
    except SatchelError:
        return ["the index's metadata is unreadable"]
    after = parse_core_metadata(own, sdist=False, where=f"the METADATA in {filename}")
    out: list[str] = []
    if (before.name, before.version) != (after.name, after.version):
        out.append(
            f"the index says {before.name} {before.version}, the wheel {after.name} {after.version}"
        )
    was = {str(r) for r in before.requires_dist}
    now = {str(r) for r in after.requires_dist}
    if now - was:
        out.append(f"Requires-Dist missing from the index's: {', '.join(sorted(now - was))}")
    if was - now:
        out.append(f"Requires-Dist not in the wheel's: {', '.join(sorted(was - now))}")
    if str(before.requires_python or "") != str(after.requires_python or ""):
        out.append(
            f"Requires-Python {before.requires_python or '(none)'} in the index's, "
            f"{after.requires_python or '(none)'} in the wheel's"
        )
    return out
