"""Resolutions out (``pylock.toml``, ``requirements``, ``json``) and PEP 751 locks in.

Why TOML is written by hand: a lock file is a small, fixed shape, and a writer that only emits
strings, integers, datetimes, inline tables and arrays of tables is ~40 lines, so there is no
reason to depend on tomli-w. Every output is checked by reading it back with ``tomllib`` in tests.

What a ``pylock.toml`` from Satchel says (PEP 751, lock-version 1.0): it was resolved for one
target environment, so ``environments`` holds one marker describing that environment and
``requires-python`` is the target's ``X.Y.*``; each package records ``index`` (the URL of the
configured index it came from, credential-free: URLs in the model never carry credentials), and
the one file chosen for the target under ``wheels`` or ``sdist`` with its URL, sha256, size and
upload time when the index gave them.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from pathlib import Path

import msgspec
from packaging.markers import InvalidMarker, Marker
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from satchel.daemon.errors import SatchelError
from satchel.daemon.resolver.candidates import ProjectFiles
from satchel.daemon.resolver.reqfiles import RequirementsFileError, read_toml
from satchel.daemon.resolver.resolve import Pin, Resolution
from satchel.daemon.resolver.target import Target
from satchel.daemon.storage.model import FileEntry, FileEntryMap, ProjectPage

__all__ = [
    "Edge",
    "Lock",
    "LockedPackage",
    "dumps_json",
    "dumps_pylock",
    "dumps_requirements",
    "read_pylock",
    "unsupported_message",
]


# --- writing --------------------------------------------------------------------------------


def _str(value: str) -> str:
    """A TOML basic string: escape backslash, quote and every control character."""
    out = []
    for char in value:
        if char in ('"', "\\"):
            out.append("\\" + char)
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def _datetime(value: str | None) -> str | None:
    """An ISO 8601 upload time as a TOML offset datetime (None if it cannot be read)."""
    if not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.isoformat()


def _file_table(file: FileEntry) -> str:
    if not file.hashes:
        raise SatchelError(f"{file.filename} has no hash from its index; it cannot be locked")
    fields = [f"name = {_str(file.filename)}", f"url = {_str(file.url)}"]
    if (uploaded := _datetime(file.upload_time)) is not None:
        fields.append(f"upload-time = {uploaded}")
    if file.size is not None:
        fields.append(f"size = {int(file.size)}")
    hashes = ", ".join(f"{name} = {_str(d)}" for name, d in sorted(file.hashes.items()))
    fields.append(f"hashes = {{ {hashes} }}")
    return "{ " + ", ".join(fields) + " }"


def _index_url(pin: Pin, index_urls: Mapping[str, str]) -> str:
    """The index's base URL: configured, else the page URL minus the project segment."""
    if pin.index in index_urls:
        return index_urls[pin.index].rstrip("/")
    return pin.page_url.rstrip("/").rpartition("/")[0]


def _environment_marker(target: Target) -> str:
    m = target.markers
    return (
        f"sys_platform == '{m['sys_platform']}' and platform_machine == "
        f"'{m['platform_machine']}' and implementation_name == '{m['implementation_name']}' "
        f"and python_version == '{m['python_version']}'"
    )


def dumps_pylock(
    resolution: Resolution, target: Target, index_urls: Mapping[str, str] | None = None
) -> str:
    """A PEP 751 ``pylock.toml`` for *resolution* (resolved for *target*)."""
    urls = {**resolution.index_urls, **(index_urls or {})}
    lines = [
        'lock-version = "1.0"',
        f"environments = [{_str(_environment_marker(target))}]",
        f"requires-python = {_str(f'=={target.python_version}.*')}",
        "extras = []",
        "dependency-groups = []",
        "default-groups = []",
        'created-by = "satchel"',
    ]
    for pin in resolution.pins:
        lines += ["", "[[packages]]", f"name = {_str(pin.name)}", f"version = {_str(pin.version)}"]
        if pin.file.requires_python:
            lines.append(f"requires-python = {_str(pin.file.requires_python)}")
        lines.append(f"index = {_str(_index_url(pin, urls))}")
        if pin.file.is_wheel:
            lines.append(f"wheels = [{_file_table(pin.file)}]")
        else:
            lines.append(f"sdist = {_file_table(pin.file)}")
    return "\n".join(lines) + "\n"


def dumps_requirements(resolution: Resolution, index_urls: Mapping[str, str] | None = None) -> str:
    """pip's hash-pinned format, each entry preceded by where it comes from and who wants it."""
    urls = {**resolution.index_urls, **(index_urls or {})}
    out = [f"# Resolved by satchel for Python {resolution.python_full_version}"]
    for pin in resolution.pins:
        source = f"index '{pin.index}' ({_index_url(pin, urls)})"
        out.append(f"# {pin.file.filename} from {source}; via {', '.join(pin.dependents)}")
        extras = f"[{','.join(pin.extras)}]" if pin.extras else ""
        sha = pin.file.sha256
        out.append(f"{pin.name}{extras}=={pin.version}" + (" \\" if sha else ""))
        if sha:
            out.append(f"    --hash=sha256:{sha}")
    return "\n".join(out) + "\n"


def dumps_json(resolution: Resolution) -> bytes:
    """*resolution* as JSON; each pin's file is a map (`FileEntryMap`), whatever the layout
    the daemon keeps it in."""
    document = msgspec.to_builtins(resolution)
    for shown, pin in zip(document["pins"], resolution.pins, strict=True):
        shown["file"] = msgspec.to_builtins(FileEntryMap.of(pin.file))
    return msgspec.json.encode(document)


# --- reading --------------------------------------------------------------------------------


class Edge(msgspec.Struct, frozen=True, kw_only=True):
    """A dependency edge of a uv.lock: which package (and version, when the lock holds several),
    under which marker, with which extras."""

    name: str
    version: str | None = None
    marker: str | None = None
    extras: tuple[str, ...] = ()

    def holds(self, target: Target) -> bool:
        return self.marker is None or Marker(self.marker).evaluate({**target.markers, "extra": ""})


class LockedPackage(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    version: str | None
    #: Base URL of the index the lock says the files came from (None: not recorded; the
    #: configuration and the recorded origins decide, `satchel.daemon.indexes.lockorigins`).
    index: str | None
    marker: str | None = None
    requires_python: str | None = None
    wheels: tuple[FileEntry, ...] = ()
    sdist: FileEntry | None = None
    #: Why the package cannot come from Satchel (a git, path or URL source), for a message;
    #: such a package has no files.
    unsupported: str | None = None
    #: uv.lock only: the package's dependencies, and those of each of its extras.
    dependencies: tuple[Edge, ...] = ()
    optional: tuple[tuple[str, tuple[Edge, ...]], ...] = ()

    def applies_to(self, target: Target) -> bool:
        """Whether the package's marker and requires-python hold on *target*."""
        if self.marker and not Marker(self.marker).evaluate({**target.markers, "extra": ""}):
            return False
        if self.requires_python:
            return SpecifierSet(self.requires_python).contains(
                Version(target.python_full_version), prereleases=True
            )
        return True

    def best_file(self, target: Target) -> FileEntry | None:
        """The best-ranked wheel for *target*, else the sdist (None: nothing fits)."""
        page = ProjectPage(index="lock", project=self.name, url="", files=(*self.wheels,))
        files = ProjectFiles(
            self.name, [page], target.tag_ranks(), Version(target.python_full_version),
            allow_sdists=False,
        )  # fmt: skip
        for v in files.versions:
            choice = files.choose(v, allow_yanked=True)
            if choice is not None:
                return choice.file
        return self.sdist

    def files(self) -> tuple[FileEntry, ...]:
        return (*self.wheels, *([self.sdist] if self.sdist else []))


class Lock(msgspec.Struct, frozen=True, kw_only=True):
    path: str
    requires_python: str | None
    environments: tuple[str, ...]
    packages: tuple[LockedPackage, ...]
    #: uv.lock only: the dependency edges out of the project and its workspace members (their
    #: dependencies and ``dev`` group, what ``uv sync`` installs). None: a PEP 751 lock, whose
    #: packages carry their own markers.
    roots: tuple[Edge, ...] | None = None
    #: What the lock lists that is not installed from it (the project itself, editables), for
    #: notes.
    skipped: tuple[str, ...] = ()

    def files(self) -> list[FileEntry]:
        """Every file the lock lists (what ``prefetch`` of a lock fetches)."""
        return [f for p in self.packages for f in p.files()]

    def applicable(self, target: Target) -> list[LockedPackage]:
        """The packages *target* needs: those whose marker holds (PEP 751), or for a uv.lock,
        those reachable from its roots through edges whose markers hold on *target*."""
        if self.roots is None:
            return [p for p in self.packages if p.applies_to(target)]
        by_name: dict[str, list[LockedPackage]] = {}
        for package in self.packages:
            by_name.setdefault(package.name, []).append(package)
        chosen: dict[tuple[str, str | None], LockedPackage] = {}
        seen: set[tuple[str, str | None, str]] = set()
        queue = list(self.roots)
        while queue:
            edge = queue.pop()
            if not edge.holds(target):
                continue
            name = canonicalize_name(edge.name)
            for package in by_name.get(name, []):
                if edge.version is not None and package.version != edge.version:
                    continue
                key = (name, package.version)
                for extra in ("", *edge.extras):
                    if (*key, extra) in seen:
                        continue
                    seen.add((*key, extra))
                    chosen[key] = package
                    if not extra:
                        queue.extend(package.dependencies)
                    else:
                        queue.extend(dict(package.optional).get(extra, ()))
        return [p for p in self.packages if (p.name, p.version) in chosen]


def _source_of(item: dict[str, object]) -> str | None:
    """What a non-index source of a PEP 751 package is, for messages (None: wheels or sdist)."""
    vcs, directory, archive = item.get("vcs"), item.get("directory"), item.get("archive")
    if isinstance(vcs, dict):
        return f"the {vcs.get('type', 'vcs')} repository {vcs.get('url') or vcs.get('path')}"
    if isinstance(directory, dict):
        return f"the local directory {directory.get('path')}"
    if isinstance(archive, dict):
        return f"the archive {archive.get('url') or archive.get('path')}"
    for key in ("vcs", "directory", "archive"):
        if key in item:
            return f"a {key} source"
    return None


def unsupported_message(name: str, source: str) -> str:
    return (
        f"{name} comes from {source}, not from an index: Satchel caches and installs index "
        "files only; install it with pip or uv"
    )


def _locked_file(table: object, where: str, *, requires_python: str | None) -> FileEntry:
    if not isinstance(table, dict):
        raise RequirementsFileError(f"{where}: expected a table, got {table!r}")
    url = table.get("url")
    name = table.get("name") or (url.rsplit("/", 1)[-1] if isinstance(url, str) else None)
    hashes = table.get("hashes")
    if not isinstance(url, str) or not isinstance(name, str):
        raise RequirementsFileError(f"{where}: a file needs a url (Satchel fetches by URL)")
    if not isinstance(hashes, dict) or not hashes:
        raise RequirementsFileError(f"{where}: {name} has no hashes")
    if "/" in name or "\\" in name or name in (".", ".."):
        raise RequirementsFileError(f"{where}: file name {name!r} is not a plain file name")
    uploaded = table.get("upload-time")
    size = table.get("size")
    return FileEntry.of(
        filename=name,
        url=url,
        hashes={str(k): str(v).lower() for k, v in hashes.items()},
        size=size if isinstance(size, int) else None,
        upload_time=uploaded.isoformat() if isinstance(uploaded, dt.datetime) else None,
        requires_python=requires_python,
    )


def read_pylock(path: Path) -> Lock:
    """Read a PEP 751 lock file (as pip, uv and Satchel write them).

    Packages from wheels and sdists are installable; ``index`` is optional (uv and pip often omit
    it). An editable ``directory`` package (the project itself, as ``uv export`` writes it) is
    skipped; a VCS, non-editable directory or archive package is kept as `unsupported`, and
    refused by whoever would need it on a target.
    """
    data = read_toml(path)
    skipped: list[str] = []
    unsupported: list[LockedPackage] = []
    version = str(data.get("lock-version", ""))
    if not re.fullmatch(r"1(\.\d+)?", version):
        raise RequirementsFileError(f"{path}: unsupported lock-version {version!r} (want 1.x)")
    packages = []
    for number, item in enumerate(data.get("packages", []), start=1):
        where = f"{path} packages[{number}]"
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise RequirementsFileError(f"{where}: a package needs a name")
        marker, rp = item.get("marker"), item.get("requires-python")
        try:
            if marker is not None:
                Marker(str(marker))
            if rp is not None:
                SpecifierSet(str(rp))
        except (InvalidMarker, InvalidSpecifier) as exc:
            raise RequirementsFileError(f"{where}: {exc}") from exc
        source = _source_of(item)
        if source is not None:
            directory = item.get("directory")
            if isinstance(directory, dict) and directory.get("editable") is True:
                # The project itself or a workspace member, as uv export writes it: the user's
                # own code, installed editable by pip or uv, never from an index.
                skipped.append(f"{item['name']} (editable, {source})")
                continue
            unsupported.append(
                LockedPackage(
                    name=canonicalize_name(item["name"]),
                    version=str(item["version"]) if "version" in item else None,
                    index=None,
                    marker=str(marker) if marker is not None else None,
                    unsupported=unsupported_message(str(item["name"]), source),
                )
            )
            continue
        wheels = tuple(
            _locked_file(w, f"{where}.wheels", requires_python=rp) for w in item.get("wheels", [])
        )
        sdist = item.get("sdist")
        packages.append(
            LockedPackage(
                name=canonicalize_name(item["name"]),
                version=str(item["version"]) if "version" in item else None,
                index=str(item["index"]) if "index" in item else None,
                marker=str(marker) if marker is not None else None,
                requires_python=str(rp) if rp is not None else None,
                wheels=wheels,
                sdist=(
                    _locked_file(sdist, f"{where}.sdist", requires_python=rp)
                    if sdist is not None
                    else None
                ),
            )
        )
        if not wheels and sdist is None:
            raise RequirementsFileError(f"{where} ({item['name']}): no wheels and no sdist")
    return Lock(
        path=str(path),
        requires_python=data.get("requires-python"),
        environments=tuple(str(e) for e in data.get("environments", [])),
        packages=(*packages, *unsupported),
        skipped=tuple(skipped),
    )
