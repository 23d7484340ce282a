"""A uv project's own indexes and pins: ``[[tool.uv.index]]`` and ``[tool.uv.sources]``.

uv resolves a project with the indexes its pyproject.toml declares, ahead of the user's own, and
takes a project pinned in ``[tool.uv.sources]`` (``internal-tool = { index = "private" }``) only
from that index; an index with ``explicit = true`` serves pinned projects only. A private
project declared this way must resolve to the same package in Satchel (``resolve -r
pyproject.toml``, ``watch add``) as in uv, never to a public project of the same name.

`read_uv_project` reads those tables (blocking, bounded by the caller's read of the file);
`apply` turns them into the configuration one request runs under: the daemon's config.toml with

* each project index added ahead of config.toml's indexes (as uv ranks project indexes above
  user configuration), named after its URL (``127-0-0-1-8080-simple``: stored pages are kept
  per index name, and two projects may give one name to different URLs); when config.toml
  already has an index at that URL, that index is used under its config.toml name (its
  credentials, cache and state are the same);
* ``default = true`` on a project index making it the request's default index instead of
  config.toml's (uv replaces its default index the same way: config.toml's default is not
  consulted for that request);
* each ``{ index = "..." }`` source a pin of that project to that index.

Nothing is written to config.toml: the project's indexes apply to requests for that project
only. Other kinds of sources (git, path, url, workspace) name no index and are left to uv.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import msgspec
from packaging.utils import canonicalize_name

from satchel.daemon.resolver.reqfiles import RequirementsFileError
from satchel.daemon.settings.config import Config, IndexConfig, IndexKind, check_url, order_indexes
from satchel.daemon.settings.credentials import split_userinfo
from satchel.daemon.settings.toolsettings import index_name_for

__all__ = ["ProjectIndexes", "apply", "read_uv_project"]


@dataclass(frozen=True)
class ProjectIndexes:
    """What a pyproject.toml says about indexes (empty when it says nothing)."""

    path: str
    indexes: tuple[IndexConfig, ...] = ()
    #: project (canonical) -> the uv index name it is pinned to.
    sources: dict[str, str] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not self.indexes and not self.sources


def _table(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise RequirementsFileError(f"{where} must be a table")
    return value


def read_uv_project(path: Path, data: dict[str, Any]) -> ProjectIndexes:
    """The ``[tool.uv]`` indexes and index sources of the pyproject.toml *data* read at *path*."""
    tool = data.get("tool", {})
    uv = tool.get("uv", {}) if isinstance(tool, dict) else {}
    if not isinstance(uv, dict):
        return ProjectIndexes(str(path))
    raw = uv.get("index", [])
    if not isinstance(raw, list):
        raise RequirementsFileError(f"{path}: [tool.uv] index must be an array of tables")
    indexes: list[IndexConfig] = []
    for number, item in enumerate(raw, start=1):
        where = f"{path}: [[tool.uv.index]] #{number}"
        table = _table(item, where)
        name, url = table.get("name"), table.get("url")
        if not isinstance(url, str):
            raise RequirementsFileError(f"{where} has no url")
        if "://" not in url:  # a path, relative to the project
            url = (path.parent / url).resolve().as_uri()
        try:
            check_url(url)
        except ValueError as exc:
            raise RequirementsFileError(f"{where}: url: {exc}") from None
        kind: IndexKind = "find-links" if table.get("format") == "flat" else "simple"
        indexes.append(
            IndexConfig(
                name=name if isinstance(name, str) and name else f"uv-project-{number}",
                url=url,
                explicit=table.get("explicit") is True,
                default=table.get("default") is True,
                kind=kind,
                source=f"uv project: {path} [[tool.uv.index]]",
            )
        )
    names = {index.name for index in indexes}
    sources: dict[str, str] = {}
    raw_sources = uv.get("sources", {})
    for project, spec in _table(raw_sources, f"{path}: [tool.uv.sources]").items():
        for entry in spec if isinstance(spec, list) else [spec]:
            if isinstance(entry, dict) and isinstance(entry.get("index"), str):
                if entry["index"] not in names:
                    raise RequirementsFileError(
                        f"{path}: [tool.uv.sources] {project} names index "
                        f"{entry['index']!r}, which [[tool.uv.index]] does not define"
                    )
                sources.setdefault(canonicalize_name(project), entry["index"])
    return ProjectIndexes(str(path), tuple(indexes), sources)


def _name_for(url: str) -> str:
    """``127-0-0-1-8080-team-simple``: the host (and port) and the path of *url*."""
    path = re.sub(r"[^a-z0-9]+", "-", urlsplit(url).path.lower()).strip("-")
    return f"{index_name_for(url)}-{path}"[:64].rstrip("-._") if path else index_name_for(url)


def _key(url: str) -> str:
    return split_userinfo(url)[0].rstrip("/")


def apply(config: Config, project: ProjectIndexes) -> Config:
    """The configuration a request for *project* runs under (see the module docstring)."""
    if project.empty:
        return config
    by_url = {_key(index.url): index for index in config.indexes}
    taken = {index.name for index in config.indexes}
    renamed: dict[str, str] = {}
    added: list[IndexConfig] = []
    for index in project.indexes:
        existing = by_url.get(_key(index.url))
        if existing is not None:
            renamed[index.name] = existing.name
            continue
        # Named by URL, not by the project's name for it: pages and origins are stored per
        # index name, and two projects may give one name to different URLs.
        name = _name_for(index.url)
        while name in taken:
            name = f"{name}-project"
        taken.add(name)
        renamed[index.name] = name
        added.append(msgspec.structs.replace(index, name=name))
    mine = list(config.indexes)
    if any(index.default for index in added):
        # The project's default replaces config.toml's for this request, as in uv.
        mine = [index for index in mine if not index.default]
    pins = dict(config.pins)
    for name, index_name in project.sources.items():
        pins[name] = renamed[index_name]
    return msgspec.structs.replace(config, indexes=order_indexes([*added, *mine]), pins=pins)
