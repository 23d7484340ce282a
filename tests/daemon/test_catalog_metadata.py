"""`catalog.metadata_from_file`: what a stored file says about itself, or its silence means."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from satchel.daemon.errors import UpstreamError
from satchel.daemon.indexes.catalog import metadata_from_file
from satchel.daemon.resolver.candidates import SdistNeedsBuild
from tests.support.wheels import build_sdist, build_wheel, corrupt_member


def test_an_sdist_without_pkg_info_needs_building(tmp_path: Path) -> None:
    sdist = tmp_path / "bare-1.0.tar.gz"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tf:
        raw = b"[build-system]\nrequires = []\n"
        info = tarfile.TarInfo("bare-1.0/pyproject.toml")
        info.size = len(raw)
        tf.addfile(info, io.BytesIO(raw))
    sdist.write_bytes(buffer.getvalue())

    with pytest.raises(SdistNeedsBuild, match="without PKG-INFO"):
        metadata_from_file(sdist, sdist.name)


def test_a_zip_sdist_without_pkg_info_needs_building(tmp_path: Path) -> None:
    sdist = tmp_path / "bare-1.0.zip"
    with zipfile.ZipFile(sdist, "w") as zf:
        zf.writestr("bare-1.0/setup.py", "")

    with pytest.raises(SdistNeedsBuild):
        metadata_from_file(sdist, sdist.name)


def test_an_sdist_with_pkg_info_is_read(tmp_path: Path) -> None:
    sdist = build_sdist(tmp_path, "full", "1.0", requires=["dep>=1"])

    assert b"Requires-Dist: dep>=1" in metadata_from_file(sdist, sdist.name)


def test_a_wheel_without_metadata_is_an_index_error(tmp_path: Path) -> None:
    good = build_wheel(tmp_path, "broken", "1.0")
    bad = tmp_path / "out" / good.name
    bad.parent.mkdir()
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(bad, "w") as out:
        for item in src.infolist():
            if not item.filename.endswith("/METADATA"):
                out.writestr(item, src.read(item))

    with pytest.raises(UpstreamError) as caught:
        metadata_from_file(bad, bad.name)
    assert not isinstance(caught.value, SdistNeedsBuild)


def test_a_wheel_whose_metadata_bytes_are_corrupt_is_an_index_error(tmp_path: Path) -> None:
    """A wheel (hash-checked, so as its index served it) whose METADATA member's compressed
    bytes are corrupt: an index error naming the file, as an unreadable archive is, not
    zlib's own error (before: it escaped as an internal error from a resolve, and ended a
    database rebuild that met the stored wheel)."""
    wheel = tmp_path / "bad-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("bad-1.0.dist-info/METADATA", b"Metadata-Version: 2.1\nName: bad\n\n" * 500)
    corrupt_member(wheel, "bad-1.0.dist-info/METADATA")
    with pytest.raises(UpstreamError, match=r"bad-1\.0-py3-none-any\.whl: unreadable archive"):
        metadata_from_file(wheel, wheel.name)
