"""Core metadata read out of a stored distribution: a wheel's METADATA, an sdist's PKG-INFO."""

from __future__ import annotations

import tarfile
import zipfile
from pathlib import Path

from satchel.daemon.candidates import SdistNeedsBuild
from satchel.daemon.errors import UpstreamError

__all__ = ["MAX_METADATA_BYTES", "metadata_from_file"]

#: Upper bound for METADATA/PKG-INFO read out of a stored file: real ones are a few KiB, the
#: largest seen in the wild are under 1 MiB; more is an archive trying to exhaust memory.
MAX_METADATA_BYTES = 16 * 2**20


def metadata_from_file(path: Path, filename: str) -> bytes:
    """METADATA of a wheel, or PKG-INFO of an sdist, read from the stored file (blocking).

    An sdist without PKG-INFO (old or hand-made archives) is not broken, merely silent about
    its metadata until built: `SdistNeedsBuild`, so a resolver builds it as it would one whose
    PKG-INFO declares its dependencies dynamic. A wheel without METADATA is unusable.
    """
    oversize = False
    try:
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
            with tarfile.open(path, "r:gz") as tf:
                for member in tf:
                    parts = member.name.split("/")
                    if len(parts) == 2 and parts[1] == "PKG-INFO" and member.isfile():
                        if member.size > MAX_METADATA_BYTES:
                            oversize = True
                            break
                        handle = tf.extractfile(member)
                        if handle is not None:
                            return handle.read()
    except (OSError, zipfile.BadZipFile, tarfile.TarError, EOFError) as exc:
        raise UpstreamError(f"{filename}: unreadable archive ({exc})") from None
    if not oversize and filename.endswith((".zip", ".tar.gz")):
        raise SdistNeedsBuild(
            f"{filename} is an sdist without PKG-INFO, so its dependencies are only known "
            "after building it"
        )
    raise UpstreamError(f"{filename}: no usable core metadata inside the file")
