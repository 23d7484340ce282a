"""uv's ``uv.lock``, read as a `pylock.Lock`: what ``satchel install -r uv.lock`` installs.

A uv.lock is TOML: ``[[package]]`` tables with ``name``, ``version``, ``source`` and, for a
package from an index, ``source = { registry = URL }``, ``wheels = [{ url, hash = "sha256:...",
size }]`` and ``sdist = { ... }``. Unlike a PEP 751 lock it carries no per-package markers: they
live on the dependency edges (``dependencies = [{ name, marker, extra, version }]``, and per extra
under ``optional-dependencies``, per group under ``dev-dependencies``). So the lock keeps the
edges, and `pylock.Lock.applicable` walks them for a target from the roots ``uv sync`` installs:
the project and its workspace members (sources ``editable`` and ``virtual``), with their
dependencies and their ``dev`` group (uv's default group). Extras of the project itself are not
installed, as with a plain ``uv sync``.

The project and workspace members are the user's own code: skipped (noted), never looked up on an
index. Packages from git, a local path or directory, or a URL are kept as `unsupported` (no
files), refused by an install that needs them, with a message naming the package and its source.
A registry package names its index by URL; `satchel.daemon.indexes.lockorigins` maps it to a
configured
index, or refuses it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from packaging.markers import InvalidMarker, Marker
from packaging.utils import canonicalize_name

from satchel.daemon.resolver.pylock import Edge, Lock, LockedPackage, unsupported_message
from satchel.daemon.resolver.reqfiles import RequirementsFileError, read_toml
from satchel.daemon.storage.model import FileEntry

__all__ = ["read_uv_lock"]

#: The dependency group ``uv sync`` installs by default (uv's ``default-groups``).
DEFAULT_GROUP = "dev"

#: Sources that are the user's own code (the project, workspace members): skipped.
_LOCAL_SOURCES = ("editable", "virtual")


def _uv_file(table: object, where: str) -> FileEntry:
    if not isinstance(table, dict) or not isinstance(table.get("url"), str):
        raise RequirementsFileError(f"{where}: a file needs a url")
    url = str(table["url"])
    name = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
    algorithm, _, digest = str(table.get("hash", "")).partition(":")
    if algorithm != "sha256" or not re.fullmatch(r"[0-9a-fA-F]{64}", digest):
        raise RequirementsFileError(f"{where}: {name} has no sha256 hash")
    if not name or "/" in name or "\\" in name or name in (".", ".."):
        raise RequirementsFileError(f"{where}: file name {name!r} is not a plain file name")
    size = table.get("size")
    return FileEntry.of(
        filename=name,
        url=url,
        hashes={"sha256": digest.lower()},
        size=size if isinstance(size, int) else None,
    )


def _edges(values: object, where: str) -> tuple[Edge, ...]:
    if not isinstance(values, list):
        raise RequirementsFileError(f"{where}: expected a list of dependencies")
    out = []
    for value in values:
        if not isinstance(value, dict) or not isinstance(value.get("name"), str):
            raise RequirementsFileError(f"{where}: a dependency needs a name")
        marker = value.get("marker")
        if marker is not None:
            try:
                Marker(str(marker))
            except InvalidMarker as exc:
                raise RequirementsFileError(f"{where} ({value['name']}): {exc}") from exc
        extras = value.get("extra", [])
        out.append(
            Edge(
                name=canonicalize_name(value["name"]),
                version=str(value["version"]) if "version" in value else None,
                marker=str(marker) if marker is not None else None,
                extras=tuple(canonicalize_name(str(e)) for e in extras)
                if isinstance(extras, list)
                else (),
            )
        )
    return tuple(out)


def _groups(table: object, where: str) -> Iterable[tuple[str, tuple[Edge, ...]]]:
    if not isinstance(table, dict):
        return ()
    return [(canonicalize_name(k), _edges(v, f"{where} {k}")) for k, v in table.items()]


def _describe(source: dict[str, Any]) -> str:
    if "git" in source:
        return f"the git repository {str(source['git']).split('#')[0]}"
    if "url" in source:
        return f"the URL {source['url']}"
    if "directory" in source:
        return f"the local directory {source['directory']}"
    if "path" in source:
        return f"the local path {source['path']}"
    if "registry" in source:
        return f"the local registry {source['registry']}"
    return f"a source Satchel does not know ({', '.join(sorted(source))})"


def read_uv_lock(path: Path) -> Lock:
    """Read *path* (a uv.lock); errors are `RequirementsFileError` naming the file and package."""
    data = read_toml(path)
    if not isinstance(data.get("package", []), list):
        raise RequirementsFileError(f"{path}: `package` must be an array of tables")
    packages: list[LockedPackage] = []
    roots: list[Edge] = []
    skipped: list[str] = []
    for number, item in enumerate(data.get("package", []), start=1):
        where = f"{path} package[{number}]"
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise RequirementsFileError(f"{where}: a package needs a name")
        name = canonicalize_name(item["name"])
        where = f"{where} ({name})"
        version = str(item["version"]) if "version" in item else None
        source = item.get("source", {})
        if not isinstance(source, dict):
            raise RequirementsFileError(f"{where}: `source` must be a table")
        dependencies = _edges(item.get("dependencies", []), f"{where} dependencies")
        groups = dict(_groups(item.get("dev-dependencies"), f"{where} dev-dependencies"))
        if any(key in source for key in _LOCAL_SOURCES):
            kind = next(key for key in _LOCAL_SOURCES if key in source)
            skipped.append(f"{name} ({kind}, {source[kind]})")
            roots.extend(dependencies)
            roots.extend(groups.get(DEFAULT_GROUP, ()))
            continue
        optional = tuple(_groups(item.get("optional-dependencies"), f"{where} optional"))
        registry = source.get("registry")
        if not isinstance(registry, str) or urlsplit(registry).scheme not in ("http", "https"):
            packages.append(
                LockedPackage(
                    name=name,
                    version=version,
                    index=None,
                    unsupported=unsupported_message(name, _describe(source)),
                    dependencies=dependencies,
                    optional=optional,
                )
            )
            continue
        wheels = tuple(_uv_file(w, f"{where} wheels") for w in item.get("wheels", []))
        sdist = _uv_file(item["sdist"], f"{where} sdist") if "sdist" in item else None
        if not wheels and sdist is None:
            raise RequirementsFileError(f"{where}: no wheels and no sdist")
        packages.append(
            LockedPackage(
                name=name,
                version=version,
                index=registry,
                wheels=wheels,
                sdist=sdist,
                dependencies=dependencies,
                optional=optional,
            )
        )
    rp = data.get("requires-python")
    return Lock(
        path=str(path),
        requires_python=str(rp) if rp is not None else None,
        environments=(),
        packages=tuple(packages),
        roots=tuple(roots) if skipped else None,
        skipped=tuple(skipped),
    )
