"""Build real wheels and sdists for tests, with nothing but the standard library.

Every test index in the suite is made of files built here, so they must be genuine: a wheel has
METADATA, WHEEL, entry_points.txt and a RECORD whose hashes match, so pip, uv and pypa/installer
accept it; an sdist carries PKG-INFO and an in-tree PEP 517 backend (`backend-path`), so it builds
offline without fetching setuptools. Zip timestamps are fixed, so the same arguments always give
the same bytes (and the same sha256).
"""

from __future__ import annotations

import base64
import hashlib
import io
import tarfile
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path

from packaging.utils import canonicalize_name

__all__ = [
    "build_sdist",
    "build_wheel",
    "file_sha256",
    "record_hash",
    "wheel_metadata",
]

_EPOCH = (2020, 1, 1, 0, 0, 0)


def record_hash(data: bytes) -> str:
    """The RECORD form of a sha256: ``sha256=<urlsafe base64, no padding>``."""
    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _dist_name(name: str) -> str:
    return canonicalize_name(name).replace("-", "_")


def _metadata(
    name: str,
    version: str,
    requires: Iterable[str],
    extras: Mapping[str, Iterable[str]],
    requires_python: str | None,
    summary: str,
    metadata_version: str = "2.1",
) -> str:
    lines = [f"Metadata-Version: {metadata_version}", f"Name: {name}", f"Version: {version}"]
    lines.append(f"Summary: {summary}")
    if requires_python:
        lines.append(f"Requires-Python: {requires_python}")
    lines.extend(f"Requires-Dist: {req}" for req in requires)
    for extra, reqs in extras.items():
        lines.append(f"Provides-Extra: {extra}")
        for req in reqs:
            marker = f'extra == "{extra}"'
            if ";" in req:
                spec, _, existing = req.partition(";")
                lines.append(f"Requires-Dist: {spec.strip()} ; ({existing.strip()}) and {marker}")
            else:
                lines.append(f"Requires-Dist: {req} ; {marker}")
    return "\n".join(lines) + "\n\n"


def _zip_write(zf: zipfile.ZipFile, arcname: str, data: bytes, *, executable: bool = False) -> None:
    info = zipfile.ZipInfo(arcname, date_time=_EPOCH)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = (0o755 if executable else 0o644) << 16
    zf.writestr(info, data)


def build_wheel(
    out_dir: Path,
    name: str,
    version: str,
    *,
    requires: Iterable[str] = (),
    extras: Mapping[str, Iterable[str]] | None = None,
    requires_python: str | None = None,
    files: Mapping[str, bytes | str] | None = None,
    console_scripts: Mapping[str, str] | None = None,
    gui_scripts: Mapping[str, str] | None = None,
    data: Mapping[str, Mapping[str, bytes | str]] | None = None,
    tag: str = "py3-none-any",
    summary: str = "A test package.",
    record: bool = True,
) -> Path:
    """Write ``<name>-<version>-<tag>.whl`` into *out_dir* and return its path.

    *files* are paths relative to the wheel root (purelib); by default a module
    ``<name>/__init__.py`` defining ``__version__``. *data* maps a scheme (``scripts``,
    ``data``, ``headers``, ``purelib``, ``platlib``) to files under ``<dist>.data/<scheme>/``.
    ``record=False`` omits RECORD (a broken wheel, for validation tests).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    dist = _dist_name(name)
    if files is None:
        files = {f"{dist}/__init__.py": f'__version__ = "{version}"\n'}
    dist_info = f"{dist}-{version}.dist-info"
    entries: list[tuple[str, bytes, bool]] = []
    for path, content in files.items():
        raw = content.encode() if isinstance(content, str) else content
        entries.append((path, raw, False))
    for scheme, scheme_files in (data or {}).items():
        for path, content in scheme_files.items():
            raw = content.encode() if isinstance(content, str) else content
            entries.append((f"{dist}-{version}.data/{scheme}/{path}", raw, scheme == "scripts"))
    metadata = _metadata(name, version, requires, extras or {}, requires_python, summary)
    entries.append((f"{dist_info}/METADATA", metadata.encode(), False))
    wheel = f"Wheel-Version: 1.0\nGenerator: satchel-tests\nRoot-Is-Purelib: true\nTag: {tag}\n\n"
    entries.append((f"{dist_info}/WHEEL", wheel.encode(), False))
    sections = {"console_scripts": console_scripts, "gui_scripts": gui_scripts}
    entry_text = ""
    for section, scripts in sections.items():
        if scripts:
            entry_text += f"[{section}]\n"
            entry_text += "".join(f"{key} = {value}\n" for key, value in scripts.items())
            entry_text += "\n"
    if entry_text:
        entries.append((f"{dist_info}/entry_points.txt", entry_text.encode(), False))
    wheel_path = out_dir / f"{dist}-{version}-{tag}.whl"
    with zipfile.ZipFile(wheel_path, "w") as zf:
        lines = []
        for arcname, raw, executable in entries:
            _zip_write(zf, arcname, raw, executable=executable)
            lines.append(f"{arcname},{record_hash(raw)},{len(raw)}")
        if record:
            lines.append(f"{dist_info}/RECORD,,")
            _zip_write(zf, f"{dist_info}/RECORD", ("\n".join(lines) + "\n").encode())
    return wheel_path


def wheel_metadata(wheel: Path) -> bytes:
    """The METADATA bytes of *wheel*, as stored: what a PEP 658 ``.metadata`` file serves."""
    with zipfile.ZipFile(wheel) as zf:
        for member in zf.namelist():
            parts = member.split("/")
            if len(parts) == 2 and parts[0].endswith(".dist-info") and parts[1] == "METADATA":
                return zf.read(member)
    raise ValueError(f"{wheel.name} has no .dist-info/METADATA")


_IN_TREE_BACKEND = '''\
"""A tiny PEP 517 backend shipped inside test sdists, so they build with no network."""
import base64, hashlib, os, pathlib, zipfile

_NAME = {dist!r}
_VERSION = {version!r}
_METADATA = {metadata!r}


def _rec(data):
    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def get_requires_for_build_wheel(config_settings=None):
    return []


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    name = f"{{_NAME}}-{{_VERSION}}-py3-none-any.whl"
    info = f"{{_NAME}}-{{_VERSION}}.dist-info"
    entries = []
    src = pathlib.Path("src")
    for path in sorted(src.rglob("*")):
        if path.is_file():
            entries.append((path.relative_to(src).as_posix(), path.read_bytes()))
    entries.append((f"{{info}}/METADATA", _METADATA.encode()))
    wheel = b"Wheel-Version: 1.0\\nGenerator: in-tree\\nRoot-Is-Purelib: true\\n"
    wheel += b"Tag: py3-none-any\\n\\n"
    entries.append((f"{{info}}/WHEEL", wheel))
    record = []
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w") as zf:
        for arcname, data in entries:
            zf.writestr(arcname, data)
            record.append(f"{{arcname}},{{_rec(data)}},{{len(data)}}")
        record.append(f"{{info}}/RECORD,,")
        zf.writestr(f"{{info}}/RECORD", "\\n".join(record) + "\\n")
    return name


def build_sdist(sdist_directory, config_settings=None):
    raise NotImplementedError("test sdists are built by tests.support.wheels")
'''


def build_sdist(
    out_dir: Path,
    name: str,
    version: str,
    *,
    requires: Iterable[str] = (),
    requires_python: str | None = None,
    files: Mapping[str, bytes | str] | None = None,
    build_requires: Iterable[str] = (),
    static_metadata: bool = True,
    backend_extra: str = "",
) -> Path:
    """Write ``<dist>-<version>.tar.gz`` with an in-tree PEP 517 backend and return its path.

    With *static_metadata* the PKG-INFO is Metadata-Version 2.2 with no ``Dynamic`` fields (PEP
    643), so a resolver may trust it without building. *backend_extra* is Python appended to the
    backend module: it runs whenever a build hook is called (tests that watch what a build does).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    dist = _dist_name(name)
    if files is None:
        files = {f"{dist}/__init__.py": f'__version__ = "{version}"\n'}
    metadata = _metadata(name, version, requires, {}, requires_python, "A test sdist.", "2.2")
    pkg_info = (
        metadata if static_metadata else metadata.replace("\n\n", "\nDynamic: Requires-Dist\n\n", 1)
    )
    build_reqs = ", ".join(f'"{req}"' for req in build_requires)
    pyproject = (
        f"[build-system]\nrequires = [{build_reqs}]\n"
        'build-backend = "backend"\nbackend-path = ["."]\n'
    )
    backend = _IN_TREE_BACKEND.format(dist=dist, version=version, metadata=metadata)
    backend += f"\n{backend_extra}\n" if backend_extra else ""
    root_dir = f"{dist}-{version}"
    members: dict[str, bytes] = {
        f"{root_dir}/PKG-INFO": pkg_info.encode(),
        f"{root_dir}/pyproject.toml": pyproject.encode(),
        f"{root_dir}/backend.py": backend.encode(),
    }
    for path, content in files.items():
        members[f"{root_dir}/src/{path}"] = (
            content.encode() if isinstance(content, str) else content
        )
    sdist_path = out_dir / f"{root_dir}.tar.gz"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", format=tarfile.PAX_FORMAT) as tf:
        for arcname, raw in members.items():
            info = tarfile.TarInfo(arcname)
            info.size = len(raw)
            info.mtime = 1577836800
            info.mode = 0o644
            tf.addfile(info, io.BytesIO(raw))
    sdist_path.write_bytes(buffer.getvalue())
    return sdist_path


def corrupt_member(archive: Path, member: str, length: int = 32) -> None:
    """Flip *length* bytes of *member*'s compressed data in *archive* (its local header and the
    central directory stay intact): reading it fails in zlib, as a corrupted download that
    still matched its index's hash would (the index served it so)."""
    data = bytearray(archive.read_bytes())
    name = member.encode()
    start = data.index(name) + len(name) + 8  # past the local header's name: its data
    data[start : start + length] = bytes(b ^ 0xFF for b in data[start : start + length])
    archive.write_bytes(data)
