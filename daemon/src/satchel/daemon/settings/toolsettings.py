"""Adoption: the indexes the user already gave pip and uv, turned ONCE into config.toml.

A new user should not have to re-type index URLs they configured years ago, so the first daemon
that finds no config.toml (see `satchel.daemon.requests.runtime`) adopts them, writes them to
config.toml
with their provenance (``adopted-from``) and tells the user. From then on config.toml is the index
set: a daemon never changes it because of the environment it happened to be started from (a
shell without ``PIP_EXTRA_INDEX_URL``, cron, an IDE). When pip's or uv's configuration later
disagrees with config.toml, `satchel.daemon.settings.indexset.drift` says how, and
``satchel index adopt`` takes the change.

What is read, in this order:

1. **pip**, with pip's own precedence (a later source replaces a key wholesale, as in pip):
   config files — global (``$XDG_CONFIG_DIRS/pip/pip.conf``, ``/etc/pip.conf``), user
   (``~/.pip/pip.conf``, ``$XDG_CONFIG_HOME/pip/pip.conf``), site (``$VIRTUAL_ENV/pip.conf``), then
   ``PIP_CONFIG_FILE`` (whose presence, as in pip, skips the user files) — reading ``index-url``,
   ``extra-index-url``, ``find-links`` and ``no-index`` from ``[global]``, then ``[download]``,
   then ``[install]``; then the environment (``PIP_INDEX_URL``, ``PIP_EXTRA_INDEX_URL``,
   ``PIP_FIND_LINKS``, ``PIP_NO_INDEX``): extra index URLs, then find-links (kind
   ``find-links``: a directory or a page of links), then pip's index-url (pip's built-in default
   when only extras or find-links are set, because that is what pip itself would use); but an
   extra that is pip's built-in default, beside another index-url, is the default (`_public_last`).
2. **uv**, in uv's priority: ``UV_INDEX`` (space-separated, ``name=url`` allowed), then
   ``UV_EXTRA_INDEX_URL``, then ``[[index]]`` tables of uv.toml (``$UV_CONFIG_FILE``, else
   ``$XDG_CONFIG_HOME/uv/uv.toml`` then ``/etc/uv/uv.toml``; ``explicit``, ``format = "flat"``
   honoured), then the default index (``UV_DEFAULT_INDEX``, ``UV_INDEX_URL``, or the uv.toml index
   with ``default = true``; pip's built-in default when uv is configured but names none).
3. With nothing configured anywhere: pip's built-in default index, read **at run time** from the
   installed pip (`pip_default_index`), so no registry host name is ever written in this code.
   Without any pip, nothing is adopted and every command that needs an index says so and names
   ``satchel index add`` (Satchel does not guess the public index's address).

Rules that keep the adopted set safe:

* **no-index means no index.** ``PIP_NO_INDEX`` / pip's ``no-index = true`` / ``UV_NO_INDEX`` /
  uv's ``no-index = true`` adopt no index (find-links only), never the public default.
* **The default index is marked default** (pip's index-url, uv's default index, the built-in
  default) and always consulted last, as uv does: under first-index a private extra index is
  asked before it, so a public project cannot shadow a private one of the same name.
* **Satchel's own local index is never adopted** (``eval "$(satchel env)"`` points pip and uv at
  it): a loopback URL on its port, or one carrying its token, is skipped with a note, and
  ``satchel index add`` refuses it (`is_own_local_index`). Adopting it would make every request
  recurse into the daemon itself.
* **Names are stable**: derived from the URL (``packages-example-com``, the port added when it is
  not the scheme's, the path when two indexes share a host), never from the position, because
  ``SATCHEL_INDEX_<NAME>_PASSWORD`` is matched by name: a positional ``pip-extra-1`` sent one
  host's password to another host when the order changed. uv's own index names are kept.
* Credentials in an adopted URL are never written to config.toml: they stay in the environment
  they came from, bound to that URL's origin (`satchel.daemon.settings.credentials.bind_origin`).

Duplicates (same URL) keep their first, highest-priority occurrence. Every adopted index carries a
``source`` saying where it came from (``pip: PIP_INDEX_URL``, ``pip: /etc/pip.conf [global]
extra-index-url``), which config.toml keeps as ``adopted-from`` and ``satchel index list`` shows.
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
import sys
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from satchel.daemon.settings.config import (
    IndexConfig,
    IndexKind,
    check_url,
    order_indexes,
    read_config_file,
)
from satchel.daemon.settings.credentials import redact, split_userinfo, strip_userinfo

__all__ = [
    "Adoption",
    "adopt",
    "adopt_indexes",
    "index_name_for",
    "is_own_local_index",
    "pip_default_index",
]

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
    #: A user-given name (uv's ``name=url``, uv.toml's ``name``); None: derived from the URL.
    name: str | None = None
    kind: IndexKind = "simple"
    explicit: bool = False
    default: bool = False


@dataclass(frozen=True)
class _Found:
    """What one tool's configuration says: its indexes, and whether it said ``no-index``."""

    candidates: list[_Candidate]
    no_index: str | None = None  # the source of a no-index setting, when one is in force

    @property
    def configured(self) -> bool:
        return bool(self.candidates) or self.no_index is not None


@dataclass(frozen=True)
class Adoption:
    """What pip's and uv's configuration give, as indexes ready for config.toml."""

    indexes: tuple[IndexConfig, ...]
    #: Whether pip or uv is configured at all (an index, find-links or no-index); False when
    #: only pip's built-in default (or nothing) was found.
    configured: bool
    #: The source of a no-index setting in force, if any.
    no_index: str | None = None
    #: What was left out and why (Satchel's own local index), for the user.
    notes: tuple[str, ...] = ()
    #: Credentials found in the adopted URLs, by credential-free URL (never written anywhere).
    credentials: tuple[tuple[str, str], ...] = ()
    #: Whether pip or uv is pointed at Satchel's own local index (``satchel env``): they then
    #: use config.toml through Satchel, which is no disagreement with it.
    via_satchel: bool = False


@functools.cache
def pip_default_index() -> str | None:
    """pip's built-in default index URL, asked of a pip (None when there is none).

    The daemon's own interpreter is tried first (in-process when pip is importable), then the
    ``python3`` / ``python`` on PATH, in a subprocess so that a broken pip cannot hurt the daemon,
    then the pip wheel bundled with the daemon's interpreter (`ensurepip`): a tool install of
    Satchel carries no pip, and the URL is never written into this repository.
    """
    try:
        from pip._internal.models.index import PyPI

        return str(PyPI.simple_url)
    except Exception as exc:  # pip absent, or its internals moved: ask another pip
        _log.debug("pip not importable in the daemon (%s); asking the pip on PATH", exc)
    probes = [[python, "-c", _DEFAULT_INDEX_PROBE] for python in _pythons_on_path()]
    bundled = _bundled_pip()
    if bundled is not None:
        # -S: the daemon's own site-packages were tried in-process; appended, not prepended, so
        # a `pip` on PYTHONPATH still comes first, as it would for any pip command.
        probe = f"import sys; sys.path.append({bundled!r}); {_DEFAULT_INDEX_PROBE}"
        probes.append([sys.executable, "-S", "-c", probe])
    for command in probes:
        try:
            result = subprocess.run(
                command, capture_output=True, text=True, timeout=20, check=False
            )
        except (OSError, subprocess.SubprocessError):
            continue
        url = result.stdout.strip()
        if result.returncode == 0 and "://" in url:
            return url
    _log.warning("no pip found to read its default index from; no index adopted")
    return None


def _pythons_on_path() -> list[str]:
    return [python for python in (shutil.which("python3"), shutil.which("python")) if python]


def _bundled_pip() -> str | None:
    """The pip wheel `ensurepip` ships with this interpreter (Debian's python3 without
    python3-venv has none)."""
    try:
        import ensurepip
    except ImportError:
        return None
    wheels = sorted(Path(ensurepip.__file__).with_name("_bundled").glob("pip-*.whl"))
    return str(wheels[-1]) if wheels else None


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
        parser = configparser.RawConfigParser()
        try:  # a small regular file only (`read_config_file`)
            parser.read_string(read_config_file(path).decode("utf-8"), source=str(path))
        except FileNotFoundError:
            continue
        except (configparser.Error, OSError, ValueError) as exc:
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
) -> _Found:
    settings = _pip_settings(env, root)
    no_index = settings.get("no-index")
    no_index_source = no_index.source if no_index and _truthy(no_index.value) else None
    if no_index_source is None and not any(
        key in settings for key in ("index-url", "extra-index-url", "find-links")
    ):
        return _Found([])
    found: list[_Candidate] = []
    if no_index_source is None:
        extras: list[_Candidate] = []
        if "extra-index-url" in settings:
            extra = settings["extra-index-url"]
            extras = [_Candidate(_path_or_url(url), extra.source) for url in _split(extra.value)]
        if "index-url" in settings:
            index_url = settings["index-url"]
            url = _path_or_url(index_url.value)
            found.extend(_public_last(extras, _Candidate(url, index_url.source), default_index))
        else:
            found.extend(extras)
            if (default := default_index()) is not None:
                found.append(_Candidate(default, "pip: built-in default index", default=True))
    if "find-links" in settings:
        links = settings["find-links"]
        found.extend(
            _Candidate(_path_or_url(value), links.source, kind="find-links")
            for value in _split(links.value)
        )
    return _Found(found, no_index_source)


def _public_last(
    extras: list[_Candidate], index_url: _Candidate, default_index: Callable[[], str | None]
) -> list[_Candidate]:
    """pip's extras, then its index-url as the default (asked last), as uv orders them; but
    when the extras list pip's built-in default (the public index) beside another index-url (a
    company's pip.conf), the public index is the default and asked last: first, it would let a
    same-named public project win over the private one."""
    public = (default_index() or "").rstrip("/") if extras else ""
    if not public or index_url.url.rstrip("/") == public:
        return [*extras, dataclasses.replace(index_url, default=True)]
    others = [c for c in extras if c.url.rstrip("/") != public]
    if len(others) == len(extras):
        return [*extras, dataclasses.replace(index_url, default=True)]
    first = next(c for c in extras if c.url.rstrip("/") == public)
    return [*others, index_url, dataclasses.replace(first, default=True)]


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
) -> _Found:
    found: list[_Candidate] = []
    links: list[_Candidate] = []
    default: _Candidate | None = None
    no_index = "uv: UV_NO_INDEX" if _truthy(env.get("UV_NO_INDEX", "")) else None
    for entry in _split(env.get("UV_INDEX", "")):
        name, sep, url = entry.partition("=")
        if not sep or "://" in name:
            name, url = "", entry
        found.append(_Candidate(_path_or_url(url), "uv: UV_INDEX", name or None))
    for url in _split(env.get("UV_EXTRA_INDEX_URL", "")):
        found.append(_Candidate(_path_or_url(url), "uv: UV_EXTRA_INDEX_URL"))
    for var in ("UV_DEFAULT_INDEX", "UV_INDEX_URL"):
        if env.get(var) and default is None:
            default = _Candidate(_path_or_url(env[var]), f"uv: {var}", default=True)
    for url in _split(env.get("UV_FIND_LINKS", "")):
        links.append(_Candidate(_path_or_url(url), "uv: UV_FIND_LINKS", kind="find-links"))
    for path in _uv_config_files(env, root):
        here = _uv_toml(path)
        found.extend(c for c in here.candidates if not c.default and c.kind == "simple")
        links.extend(c for c in here.candidates if c.kind == "find-links")
        if default is None:
            default = next((c for c in here.candidates if c.default), None)
        no_index = no_index or here.no_index
    if no_index is not None:
        return _Found(links, no_index)
    if not found and not links and default is None:
        return _Found([])
    if default is None and (builtin := default_index()) is not None:
        default = _Candidate(builtin, "uv: built-in default index", default=True)
    return _Found([*found, *links, *([default] if default else [])])


def _uv_toml(path: Path) -> _Found:
    try:  # a small regular file only: a FIFO's read would block forever (`read_config_file`)
        data: dict[str, Any] = tomllib.loads(read_config_file(path).decode("utf-8"))
    except FileNotFoundError:
        return _Found([])
    except (OSError, ValueError) as exc:  # TOMLDecodeError and UnicodeDecodeError included
        _log.warning("ignoring unreadable uv config %s: %s", path, redact(exc))
        return _Found([])
    found: list[_Candidate] = []
    default: _Candidate | None = None
    for number, table in enumerate(data.get("index") or [], start=1):
        if not isinstance(table, dict) or not isinstance(table.get("url"), str):
            continue
        raw_name = table.get("name")
        name = raw_name if isinstance(raw_name, str) else None
        kind: IndexKind = "find-links" if table.get("format") == "flat" else "simple"
        candidate = _Candidate(
            _path_or_url(table["url"], path.parent),
            f"uv: {path} [[index]] {name or f'#{number}'}",
            name,
            kind,
            table.get("explicit") is True,
        )
        if table.get("default") is True:
            default = dataclasses.replace(candidate, default=True)
        else:
            found.append(candidate)
    if isinstance(data.get("index-url"), str) and default is None:
        default = _Candidate(data["index-url"], f"uv: {path} index-url", default=True)
    for url in _strings(data.get("extra-index-url")):
        found.append(_Candidate(url, f"uv: {path} extra-index-url"))
    for value in _strings(data.get("find-links")):
        url = _path_or_url(value, path.parent)
        found.append(_Candidate(url, f"uv: {path} find-links", kind="find-links"))
    no_index = f"uv: {path} no-index" if data.get("no-index") is True else None
    return _Found([*found, *([default] if default else [])], no_index)


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


#: Loopback host names Satchel's local index is reachable under.
_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1", "ip6-localhost"})


def is_own_local_index(url: str, ports: Iterable[int], token: str | None) -> bool:
    """Whether *url* is Satchel's own local index: a loopback host on one of *ports* (its
    configured and its bound port), or any URL carrying its *token* (with or without a user)."""
    try:
        parts = urlsplit(url)
        host, port = (parts.hostname or "").lower(), parts.port
    except ValueError:
        return False
    if token and (parts.password == token or parts.username == token or token in parts.path):
        return True
    if host not in _LOOPBACK and not host.startswith("127."):
        return False
    return (port or (443 if parts.scheme == "https" else 80)) in set(ports)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def index_name_for(url: str) -> str:
    """A stable name for the index at *url*: its host (``packages-example-com``), with the port
    when it is not the scheme's (``127-0-0-1-8080``); for file:// its last path component."""
    parts = urlsplit(url)
    if parts.scheme == "file":
        tail = [p for p in parts.path.split("/") if p and p != "simple"][-1:] or ["local"]
        return _fit("file-" + _slug(tail[0]))
    host = _slug(parts.hostname or "") or "index"
    try:
        port = parts.port
    except ValueError:
        port = None
    default_port = {"http": 80, "https": 443}.get(parts.scheme)
    return _fit(host if port in (None, default_port) else f"{host}-{port}")


def _path_name(url: str) -> str:
    """The path of *url* as a name suffix (``/team/simple/`` -> ``team``)."""
    path = [p for p in urlsplit(url).path.split("/") if p and p != "simple"]
    return _slug("-".join(path)) or "root"


def _fit(name: str) -> str:
    name = name[:60].strip("-._") or "index"
    return name if name[0].isalnum() else "i" + name


def _names(candidates: list[_Candidate]) -> list[str]:
    """Stable, distinct names: the user's, else from the host, then the path, then a counter
    in URL order (deterministic: the same URLs always give the same names)."""
    names = [c.name and _fit(re.sub(r"[^A-Za-z0-9._-]", "-", c.name)) for c in candidates]
    derived = [index_name_for(c.url) for c in candidates]
    taken = {n for n in names if n}
    result: list[str] = []
    for position, candidate in enumerate(candidates):
        given = names[position]
        if given:
            result.append(given)
            continue
        base = derived[position]
        if derived.count(base) > 1 or base in taken:
            base = _fit(f"{base}-{_path_name(candidate.url)}")
        name, counter = base, 2
        while name in taken:
            name, counter = f"{base}-{counter}", counter + 1
        taken.add(name)
        result.append(name)
    return result


def _finish(candidates: Iterable[_Candidate]) -> tuple[IndexConfig, ...]:
    seen_urls: set[str] = set()
    kept: list[_Candidate] = []
    has_default = False
    for candidate in candidates:
        key = candidate.url.rstrip("/")
        # One default index: when pip and uv both name one, pip's (adopted first) wins and
        # uv's is dropped rather than promoted above the user's own pip index.
        if key in seen_urls or (candidate.default and has_default):
            continue
        seen_urls.add(key)
        has_default = has_default or candidate.default
        kept.append(candidate)
    # Names are derived from credential-free URLs, in URL order, so that they do not depend on
    # the order the environment listed them in.
    clean = [dataclasses.replace(c, url=split_userinfo(c.url)[0]) for c in kept]
    by_url = sorted(range(len(clean)), key=lambda i: clean[i].url)
    names = dict(zip(by_url, _names([clean[i] for i in by_url]), strict=True))
    result = [
        IndexConfig(
            name=names[i],
            url=candidate.url,
            explicit=candidate.explicit,
            default=candidate.default,
            kind=candidate.kind,
            source=candidate.source,
        )
        for i, candidate in enumerate(kept)
    ]
    return order_indexes(result)


def adopt(
    environ: Mapping[str, str] | None = None,
    *,
    default_index: Callable[[], str | None] = pip_default_index,
    system_root: Path = Path("/"),
    own: Callable[[str], bool] = lambda _url: False,
) -> Adoption:
    """What pip and uv are configured with (see the module docstring), highest priority first.

    *own* tells Satchel's own local index apart (never adopted); *system_root* re-roots the
    system-wide files (``/etc/...``) for tests.
    """
    env = os.environ if environ is None else environ
    # Asked at most once per adoption: pip's, uv's and the fallback's readings each may need it,
    # and without an importable pip every ask is up to three subprocesses.
    default_index = functools.cache(default_index)
    pip = _pip_candidates(env, system_root, default_index)
    uv = _uv_candidates(env, system_root, default_index)
    configured = pip.configured or uv.configured
    no_index = pip.no_index or uv.no_index
    candidates = [*pip.candidates, *uv.candidates]
    if not configured and (default := default_index()) is not None:
        candidates = [_Candidate(default, "pip: built-in default index", default=True)]
    notes: list[str] = []
    kept: list[_Candidate] = []
    via_satchel = False
    for candidate in candidates:
        try:
            check_url(candidate.url)
        except ValueError as exc:
            notes.append(f"{candidate.source}: not adopted, not a valid index URL: {exc}")
            continue
        if own(candidate.url):
            via_satchel = True
            notes.append(
                f"{redact(strip_userinfo(candidate.url))} ({candidate.source}) is Satchel's own "
                "local index (set by `satchel env`): not adopted as an upstream"
            )
        else:
            kept.append(candidate)
    if no_index is not None:
        notes.append(f"{no_index} is set: no index adopted (only find-links, if any)")
    credentials = tuple(
        (clean, candidate.url)
        for candidate in kept
        if (clean := split_userinfo(candidate.url)[0]) != candidate.url
    )
    return Adoption(
        _finish(kept), configured, no_index, tuple(notes), credentials, via_satchel=via_satchel
    )


def adopt_indexes(
    environ: Mapping[str, str] | None = None,
    *,
    default_index: Callable[[], str | None] = pip_default_index,
    system_root: Path = Path("/"),
) -> tuple[IndexConfig, ...]:
    """The indexes `adopt` finds (URLs as configured, credentials included), highest first."""
    return adopt(environ, default_index=default_index, system_root=system_root).indexes
