"""Which indexes the daemon uses: config.toml's, or else those the user already gave pip and uv.

A new user should not have to re-type index URLs they configured years ago, so when config.toml
lists no index, Satchel adopts, in this order:

1. **pip**, with pip's own precedence (a later source replaces a key wholesale, as in pip):
   config files — global (``$XDG_CONFIG_DIRS/pip/pip.conf``, ``/etc/pip.conf``), user
   (``~/.pip/pip.conf``, ``$XDG_CONFIG_HOME/pip/pip.conf``), site (``$VIRTUAL_ENV/pip.conf``), then
   ``PIP_CONFIG_FILE`` (whose presence, as in pip, skips the user files) — reading ``index-url``,
   ``extra-index-url``, ``find-links`` and ``no-index`` from ``[global]``, then ``[download]``,
   then ``[install]``; then the environment (``PIP_INDEX_URL``, ``PIP_EXTRA_INDEX_URL``,
   ``PIP_FIND_LINKS``, ``PIP_NO_INDEX``): extra index URLs, then find-links (kind
   ``find-links``: a directory or a page of links), then pip's index-url (pip's built-in default
   when only extras or find-links are set, because that is what pip itself would use).
2. **uv**, in uv's priority: ``UV_INDEX`` (space-separated, ``name=url`` allowed), then
   ``UV_EXTRA_INDEX_URL``, then ``[[index]]`` tables of uv.toml (``$UV_CONFIG_FILE``, else
   ``$XDG_CONFIG_HOME/uv/uv.toml`` then ``/etc/uv/uv.toml``; ``explicit``, ``format = "flat"``
   honoured), then the default index (``UV_DEFAULT_INDEX``, ``UV_INDEX_URL``, or the uv.toml index
   with ``default = true``; pip's built-in default when uv is configured but names none).
3. With nothing configured anywhere: pip's built-in default index, read **at run time** from the
   installed pip (`pip_default_index`), so no registry host name is ever written in this code.

The index-url / default index is marked ``default`` and always consulted last, as uv does with
``--extra-index-url`` over ``--index-url``: under first-index, a private extra index is asked
before the public default, so a public project cannot shadow a private one of the same name.
Duplicates (same URL) keep their first, highest-priority occurrence. Every adopted index carries a
``source`` saying where it came from (``pip: PIP_INDEX_URL``, ``pip: /etc/pip.conf [global]
extra-index-url``), which ``satchel index list`` shows.
"""

from __future__ import annotations

import configparser
import dataclasses
import functools
import logging
import os
import re
import shutil
import subprocess
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from satchel.daemon.config import Config, IndexConfig, IndexKind, order_indexes
from satchel.daemon.credentials import redact

__all__ = ["adopt_indexes", "effective_indexes", "pip_default_index"]

_log = logging.getLogger(__name__)

_PIP_KEYS = ("index-url", "extra-index-url", "find-links", "no-index")
_PIP_SECTIONS = ("global", "download", "install")
_DEFAULT_INDEX_PROBE = "from pip._internal.models.index import PyPI; print(PyPI.simple_url)"


@dataclass(frozen=True)
class _Value:
    value: str
    source: str


@dataclass(frozen=True)
class _Candidate:
    url: str
    source: str
    name: str
    kind: IndexKind = "simple"
    explicit: bool = False
    default: bool = False


@functools.cache
def pip_default_index() -> str | None:
    """pip's built-in default index URL, asked of an installed pip (None when there is none).

    The daemon's own interpreter is tried first (in-process when pip is importable), then the
    ``python3`` / ``python`` on PATH, in a subprocess so that a broken pip cannot hurt the daemon.
    """
    try:
        from pip._internal.models.index import PyPI

        return str(PyPI.simple_url)
    except Exception as exc:  # pip absent, or its internals moved: ask another pip
        _log.debug("pip not importable in the daemon (%s); asking the pip on PATH", exc)
    for python in (shutil.which("python3"), shutil.which("python")):
        if not python:
            continue
        try:
            result = subprocess.run(
                [python, "-c", _DEFAULT_INDEX_PROBE],
                capture_output=True,
                text=True,
                timeout=20,
                check=False,
            )
        except (OSError, subprocess.SubprocessError):
            continue
        url = result.stdout.strip()
        if result.returncode == 0 and "://" in url:
            return url
    _log.warning("no pip found to read its default index from; no index adopted")
    return None


def _split(value: str) -> list[str]:
    return value.split()


def _truthy(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


def _path_or_url(value: str, base: Path | None = None) -> str:
    """A find-links / index value as a URL: paths become ``file://`` URLs."""
    if re.match(r"^[A-Za-z][A-Za-z0-9+.\-]*://", value):
        return value
    path = Path(value).expanduser()
    if not path.is_absolute() and base is not None:
        path = base / path
    return path.absolute().as_uri()


def _pip_config_files(env: Mapping[str, str], root: Path) -> list[tuple[str, Path]]:
    """(variant, path) in pip's load order; later files override earlier ones."""
    home = Path(env.get("HOME", "~")).expanduser()
    xdg_home = Path(env["XDG_CONFIG_HOME"]) if env.get("XDG_CONFIG_HOME") else home / ".config"
    xdg_dirs = [d for d in env.get("XDG_CONFIG_DIRS", "/etc/xdg").split(":") if d]
    files: list[tuple[str, Path]] = []
    for directory in xdg_dirs:
        files.append(("global", _under(root, Path(directory) / "pip" / "pip.conf")))
    files.append(("global", _under(root, Path("/etc/pip.conf"))))
    config_file = env.get("PIP_CONFIG_FILE")
    if not (config_file and Path(config_file).exists()):
        files.append(("user", home / ".pip" / "pip.conf"))
        files.append(("user", xdg_home / "pip" / "pip.conf"))
    if env.get("VIRTUAL_ENV"):
        files.append(("site", Path(env["VIRTUAL_ENV"]) / "pip.conf"))
    if config_file and config_file != os.devnull:
        files.append(("env", Path(config_file)))
    return files


def _under(root: Path, path: Path) -> Path:
    """*path* (absolute) re-rooted under *root*: tests point system files at a temp tree."""
    return root / path.relative_to("/") if root != Path("/") else path


def _pip_settings(env: Mapping[str, str], root: Path) -> dict[str, _Value]:
    settings: dict[str, _Value] = {}
    for _variant, path in _pip_config_files(env, root):
        if not path.is_file():
            continue
        parser = configparser.RawConfigParser()
        try:
            parser.read(path, encoding="utf-8")
        except (configparser.Error, OSError, UnicodeDecodeError) as exc:
            _log.warning("ignoring unreadable pip config %s: %s", path, redact(exc))
            continue
        for section in _PIP_SECTIONS:
            if not parser.has_section(section):
                continue
            for key in _PIP_KEYS:
                for spelling in (key, key.replace("-", "_")):
                    if parser.has_option(section, spelling):
                        value = parser.get(section, spelling)
                        settings[key] = _Value(value, f"pip: {path} [{section}] {key}")
    for key in _PIP_KEYS:
        var = "PIP_" + key.upper().replace("-", "_")
        if env.get(var):
            settings[key] = _Value(env[var], f"pip: {var}")
    return settings


def _pip_candidates(
    env: Mapping[str, str], root: Path, default_index: Callable[[], str | None]
) -> list[_Candidate]:
    settings = _pip_settings(env, root)
    if not any(key in settings for key in ("index-url", "extra-index-url", "find-links")):
        return []
    found: list[_Candidate] = []
    no_index = "no-index" in settings and _truthy(settings["no-index"].value)
    if not no_index:
        if "index-url" in settings:
            index_url = settings["index-url"]
            url = _path_or_url(index_url.value)
            found.append(_Candidate(url, index_url.source, "pip-index", default=True))
        elif (default := default_index()) is not None:
            found.append(
                _Candidate(default, "pip: built-in default index", "default", default=True)
            )
        if "extra-index-url" in settings:
            extra = settings["extra-index-url"]
            for number, url in enumerate(_split(extra.value), start=1):
                found.append(_Candidate(_path_or_url(url), extra.source, f"pip-extra-{number}"))
    if "find-links" in settings:
        links = settings["find-links"]
        for number, value in enumerate(_split(links.value), start=1):
            name = f"pip-find-links-{number}"
            found.append(_Candidate(_path_or_url(value), links.source, name, "find-links"))
    return found


def _uv_config_files(env: Mapping[str, str], root: Path) -> list[Path]:
    if env.get("UV_CONFIG_FILE"):
        return [Path(env["UV_CONFIG_FILE"])]
    if _truthy(env.get("UV_NO_CONFIG", "")):
        return []
    home = Path(env.get("HOME", "~")).expanduser()
    xdg_home = Path(env["XDG_CONFIG_HOME"]) if env.get("XDG_CONFIG_HOME") else home / ".config"
    files = [xdg_home / "uv" / "uv.toml"]
    xdg_dirs = [d for d in env.get("XDG_CONFIG_DIRS", "/etc/xdg").split(":") if d]
    files.extend(_under(root, Path(d) / "uv" / "uv.toml") for d in xdg_dirs)
    files.append(_under(root, Path("/etc/uv/uv.toml")))
    return files


def _uv_candidates(
    env: Mapping[str, str], root: Path, default_index: Callable[[], str | None]
) -> list[_Candidate]:
    found: list[_Candidate] = []
    default: _Candidate | None = None
    for number, entry in enumerate(_split(env.get("UV_INDEX", "")), start=1):
        name, sep, url = entry.partition("=")
        if not sep or "://" in name:
            name, url = f"uv-index-{number}", entry
        found.append(_Candidate(_path_or_url(url), "uv: UV_INDEX", name))
    for number, url in enumerate(_split(env.get("UV_EXTRA_INDEX_URL", "")), start=1):
        found.append(_Candidate(_path_or_url(url), "uv: UV_EXTRA_INDEX_URL", f"uv-extra-{number}"))
    for var in ("UV_DEFAULT_INDEX", "UV_INDEX_URL"):
        if env.get(var) and default is None:
            url = _path_or_url(env[var])
            default = _Candidate(url, f"uv: {var}", "uv-default", default=True)
    for path in _uv_config_files(env, root):
        found_here, default_here = _uv_toml(path)
        found.extend(found_here)
        if default is None:
            default = default_here
    if not found and default is None:
        return []
    if default is None and (builtin := default_index()) is not None:
        default = _Candidate(builtin, "uv: built-in default index", "default", default=True)
    return [*found, default] if default is not None else found


def _uv_toml(path: Path) -> tuple[list[_Candidate], _Candidate | None]:
    try:
        data: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return [], None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        _log.warning("ignoring unreadable uv config %s: %s", path, redact(exc))
        return [], None
    found: list[_Candidate] = []
    default: _Candidate | None = None
    for number, table in enumerate(data.get("index") or [], start=1):
        if not isinstance(table, dict) or not isinstance(table.get("url"), str):
            continue
        raw_name = table.get("name")
        name = raw_name if isinstance(raw_name, str) else f"uv-index-{number}"
        kind: IndexKind = "find-links" if table.get("format") == "flat" else "simple"
        candidate = _Candidate(
            _path_or_url(table["url"], path.parent),
            f"uv: {path} [[index]] {name}",
            name,
            kind,
            table.get("explicit") is True,
        )
        if table.get("default") is True:
            default = dataclasses.replace(candidate, default=True)
        else:
            found.append(candidate)
    if isinstance(data.get("index-url"), str) and default is None:
        default = _Candidate(data["index-url"], f"uv: {path} index-url", "uv-default", default=True)
    for number, url in enumerate(_strings(data.get("extra-index-url")), start=1):
        found.append(_Candidate(url, f"uv: {path} extra-index-url", f"uv-extra-{number}"))
    for number, value in enumerate(_strings(data.get("find-links")), start=1):
        url = _path_or_url(value, path.parent)
        found.append(
            _Candidate(url, f"uv: {path} find-links", f"uv-find-links-{number}", "find-links")
        )
    return found, default


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def _safe_name(name: str, taken: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9._-]", "-", name).strip("-._")[:60] or "index"
    if not base[0].isalnum():
        base = "i" + base
    candidate, counter = base, 2
    while candidate in taken:
        candidate, counter = f"{base}-{counter}", counter + 1
    taken.add(candidate)
    return candidate


def _finish(candidates: Iterable[_Candidate]) -> tuple[IndexConfig, ...]:
    seen_urls: set[str] = set()
    names: set[str] = set()
    result: list[IndexConfig] = []
    has_default = False
    for candidate in candidates:
        key = candidate.url.rstrip("/")
        # One default index: when pip and uv both name one, pip's (adopted first) wins and
        # uv's is dropped rather than promoted above the user's own pip index.
        if key in seen_urls or (candidate.default and has_default):
            continue
        seen_urls.add(key)
        default = candidate.default
        has_default = has_default or default
        result.append(
            IndexConfig(
                name=_safe_name(candidate.name, names),
                url=candidate.url,
                explicit=candidate.explicit,
                default=default,
                kind=candidate.kind,
                source=candidate.source,
            )
        )
    return order_indexes(result)


def adopt_indexes(
    environ: Mapping[str, str] | None = None,
    *,
    default_index: Callable[[], str | None] = pip_default_index,
    system_root: Path = Path("/"),
) -> tuple[IndexConfig, ...]:
    """The indexes pip and uv are configured with (see the module docstring), highest first.

    *system_root* re-roots the system-wide files (``/etc/...``) for tests.
    """
    env = os.environ if environ is None else environ
    pip = _pip_candidates(env, system_root, default_index)
    uv = _uv_candidates(env, system_root, default_index)
    if pip or uv:
        return _finish([*pip, *uv])
    default = default_index()
    if default is None:
        return ()
    return _finish([_Candidate(default, "pip: built-in default index", "default")])


def effective_indexes(
    config: Config,
    environ: Mapping[str, str] | None = None,
    *,
    default_index: Callable[[], str | None] = pip_default_index,
) -> tuple[IndexConfig, ...]:
    """config.toml's indexes when it lists any, else the adopted ones."""
    if config.indexes:
        return config.indexes
    return adopt_indexes(environ, default_index=default_index)
