"""``config.toml``: the user's indexes (in priority order), pins and settings; live-reloaded.

The file lives at ``<config dir>/satchel/config.toml``::

    [[index]]                  # one table per index, highest priority first
    name = "internal"
    url = "https://packages.example.invalid/simple/"
    explicit = true            # optional: used only for projects pinned to it
    kind = "simple"            # optional: "simple" (default) or "find-links"
    max-age = 600              # optional: treat pages as fresh this long (overrides the index)
    default = true             # optional: the default (public) index, always consulted last
    adopted-from = "pip: PIP_EXTRA_INDEX_URL"   # written by adoption: where the index came from

    [pins]                     # project -> index name: the project comes from that index only
    internal-tool = "internal"

    [settings]
    index-strategy = "first-index"    # or "unsafe-best-match"
    local-index-port = 3141           # the daemon's loopback simple index (0: ephemeral)
    cache-max-size = "20 GiB"         # garbage collection caps (bytes, or with a unit)
    cache-max-age = "90d"             # seconds, or with a unit s/m/h/d
    refresh-interval = "6h"
    builds = "on-request"             # or "background" (watched projects too), "never"

Unknown keys are an error, not a warning: a misspelt ``explict = true`` silently ignored would
send a private project's name to every index, which is exactly what the option exists to prevent.
Every error is a `ConfigError` naming the file and the line (tomllib reports syntax errors with
their line; schema errors are located by `_KeyLines`, a small scan of the source text).

A broken edit must not take the daemon's indexes away, so the live reload
(`satchel.daemon.settings.liveconfig`) keeps the last good configuration and exposes the error
(with its line) for ``satchel status``. A file that is broken
when the daemon starts has no last good configuration: the runtime then refuses every command
that needs an index (see `satchel.daemon.requests.runtime`), rather than guessing an index set.

An empty file is an error too: `render_config` always writes a header comment, so an empty
config.toml is one an editor truncated before writing it (or a mistake), never a decision to
have no index. Whether the file exists at all is what decides adoption (`config_exists`).
"""

from __future__ import annotations

import os
import re
import stat
import tomllib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import msgspec

from satchel.daemon.errors import ConfigError
from satchel.daemon.settings.credentials import redact
from satchel.daemon.storage.fsutil import atomic_write

__all__ = [
    "Config",
    "IndexConfig",
    "Settings",
    "check_index",
    "check_url",
    "config_exists",
    "load_config",
    "parse_config",
    "read_config_file",
    "render_config",
    "save_config",
]


IndexKind = Literal["simple", "find-links"]
IndexStrategy = Literal["first-index", "unsafe-best-match"]
BuildSetting = Literal["on-request", "background", "never"]

#: Index names appear in commands, env variable names and status output: keep them plain.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)?\s*$", re.IGNORECASE)
_DURATION = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")
_SIZE_UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}
_SIZE_UNITS.update({"kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40})
_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


class IndexConfig(msgspec.Struct, frozen=True, kw_only=True):
    """One index; ``url`` is as configured (it may carry userinfo: `redact` it for display)."""

    name: str
    url: str
    explicit: bool = False
    #: The default index (pip's index-url, uv's default index): always consulted last, after
    #: every other index, as uv does. This is what keeps an index you add for private packages
    #: from being shadowed by a public index that serves a project of the same name.
    default: bool = False
    kind: IndexKind = "simple"
    #: Cache policy override: pages are fresh for this many seconds whatever the index says.
    max_age: int | None = None
    #: Where the index came from: "config.toml" (added by the user), or how it was adopted
    #: ("pip: PIP_INDEX_URL"), written to the file as ``adopted-from``.
    source: str = "config.toml"

    @property
    def adopted(self) -> bool:
        return self.source != "config.toml"


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    index_strategy: IndexStrategy = "first-index"
    local_index_port: int | None = None
    cache_max_size: int | None = None
    cache_max_age: int | None = None
    refresh_interval: int | None = None
    #: Which commands may build sdists: "on-request", "background" or "never" (`buildpolicy`).
    builds: BuildSetting = "on-request"


class Config(msgspec.Struct, frozen=True, kw_only=True):
    indexes: tuple[IndexConfig, ...] = ()
    pins: dict[str, str] = {}
    settings: Settings = Settings()

    def index(self, name: str) -> IndexConfig | None:
        return next((index for index in self.indexes if index.name == name), None)


class _KeyLines:
    """Line numbers of tables and keys in a TOML text, for pointing schema errors at a line.

    Handles what people write in this file (``[table]``, ``[[index]]``, ``key = value``); anything
    fancier falls back to the enclosing table's line, which is still near the problem.
    """

    _HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\-\"' ]+?)\s*\]\]?\s*(#.*)?$")
    _KEY = re.compile(r"^\s*(\"[^\"]*\"|'[^']*'|[A-Za-z0-9_\-]+)\s*=")

    def __init__(self, text: str) -> None:
        self.lines: dict[tuple[str | int, ...], int] = {}
        table: tuple[str | int, ...] = ()
        counts: dict[str, int] = {}
        for number, line in enumerate(text.splitlines(), start=1):
            header = self._HEADER.match(line)
            if header:
                name = header.group(2).strip().strip("\"'")
                if header.group(1) == "[[":
                    counts[name] = counts.get(name, -1) + 1
                    table = (name, counts[name])
                else:
                    table = (name,)
                self.lines.setdefault(table, number)
                continue
            key = self._KEY.match(line)
            if key:
                self.lines.setdefault((*table, key.group(1).strip("\"'")), number)

    def line(self, *path: str | int) -> int:
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return 1


def _parse_size(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and (match := _SIZE.match(value)):
        unit = (match.group(2) or "b").lower()
        return int(float(match.group(1)) * _SIZE_UNITS[unit])
    raise ValueError("expected a size in bytes or a string like '20 GiB'")


def _parse_duration(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and (match := _DURATION.match(value)):
        return int(match.group(1)) * _DURATION_UNITS[match.group(2)]
    raise ValueError("expected seconds or a string like '6h' (units s, m, h, d)")


def _parse_port(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 65535:
        return value
    raise ValueError("expected a port number between 0 and 65535")


_SETTINGS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "index-strategy": (
        "index_strategy",
        lambda v: _choice(v, ("first-index", "unsafe-best-match")),
    ),
    "local-index-port": ("local_index_port", _parse_port),
    "cache-max-size": ("cache_max_size", _parse_size),
    "cache-max-age": ("cache_max_age", _parse_duration),
    "refresh-interval": ("refresh_interval", _parse_duration),
    "builds": ("builds", lambda v: _choice(v, ("on-request", "background", "never"))),
}


def _choice(value: Any, choices: tuple[str, ...]) -> str:
    if value in choices:
        return str(value)
    raise ValueError("expected one of " + ", ".join(repr(c) for c in choices))


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise ValueError("expected true or false")


#: Characters no index URL may contain: whitespace and controls (a pasted URL with a space or a
#: newline is a mistake, and httpx would reject it only at the first request).
_URL_BAD_CHARS = re.compile(r"[\s\x00-\x1f\x7f]")


def _url(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("expected a URL string")
    url = value.strip()
    check_url(url)
    return url


def check_url(url: str) -> None:
    """Raise `ValueError` naming what is wrong with index URL *url* (scheme, host, port, spaces)."""
    scheme = url.split(":", 1)[0].lower() if "://" in url else ""
    if scheme not in ("http", "https", "file"):
        raise ValueError("expected an http://, https:// or file:// URL")
    if _URL_BAD_CHARS.search(url):
        raise ValueError("a URL must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port  # raises for a port out of range or not a number
        host = parts.hostname
    except ValueError as exc:
        raise ValueError(f"not a valid URL ({exc})") from None
    if scheme == "file":
        if not parts.path:
            raise ValueError("a file:// URL needs a path")
        return
    if not host:
        raise ValueError(f"a {scheme}:// URL needs a host name")
    if port == 0:
        raise ValueError("port 0 is not a port an index can listen on")


_INDEX_KEYS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "name": ("name", lambda v: _name(v)),
    "url": ("url", _url),
    "explicit": ("explicit", _bool),
    "default": ("default", _bool),
    "kind": ("kind", lambda v: _choice(v, ("simple", "find-links"))),
    "max-age": ("max_age", _parse_duration),
    "adopted-from": ("source", lambda v: _provenance(v)),
}


def _provenance(value: Any) -> str:
    if isinstance(value, str) and value.strip() and not re.search(r"[\x00-\x1f\x7f]", value):
        return value
    raise ValueError("expected a one-line description of where the index was adopted from")


def _name(value: Any) -> str:
    if isinstance(value, str) and _NAME.match(value):
        return value
    raise ValueError("expected a name of letters, digits, '.', '_' or '-' (at most 64)")


def check_index(index: IndexConfig) -> None:
    """Validate one index built outside a file (``satchel index add``): a `ConfigError` if bad."""
    for key, value in (("name", index.name), ("url", index.url.strip())):
        try:
            _INDEX_KEYS[key][1](value)
        except ValueError as exc:
            raise ConfigError(redact(f"index {key} {value!r}: {exc}")) from None
    if index.max_age is not None and index.max_age < 0:
        raise ConfigError("index max-age must not be negative")


#: Whether a URL is Satchel's own local index, given the port config.toml asks for (None: the
#: default one): `satchel.daemon.settings.indexset.OwnIndex.matches`.
OwnCheck = Callable[[str, "int | None"], bool]


def parse_config(
    text: str, path: Path | str = "config.toml", *, own: OwnCheck | None = None
) -> Config:
    """Parse and validate config *text*; errors are `ConfigError` naming *path* and the line.

    With *own*, an index whose URL is Satchel's own local index (typed in by hand: `index add`
    and adoption refuse it already) is an error too: as an upstream every request would come
    back to the daemon itself."""
    if not text.strip():
        raise _error(
            path,
            None,
            "the file is empty (truncated while being written?); satchel writes a header comment "
            "in every config.toml it writes. Restore your indexes, or delete the file and run "
            "`satchel index adopt` to adopt pip's and uv's again",
        )
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = getattr(exc, "lineno", None) or _line_from_message(str(exc))
        raise _error(path, line, f"invalid TOML: {exc}") from exc
    lines = _KeyLines(text)

    def fail(message: str, *key: str | int) -> ConfigError:
        return _error(path, lines.line(*key), message)

    for key in data:
        if key not in ("index", "pins", "settings"):
            raise fail(f"unknown key {key!r} (expected index, pins, settings)", key)

    raw_indexes = data.get("index", [])
    if not isinstance(raw_indexes, list):
        raise fail("'index' must be an array of tables: write [[index]]", "index")
    indexes: list[IndexConfig] = []
    for position, table in enumerate(raw_indexes):
        if not isinstance(table, dict):
            raise fail("each index must be a table", "index", position)
        fields: dict[str, Any] = {}
        for key, value in table.items():
            if key not in _INDEX_KEYS:
                allowed = ", ".join(_INDEX_KEYS)
                raise fail(
                    f"unknown index key {key!r} (expected {allowed})", "index", position, key
                )
            attr, convert = _INDEX_KEYS[key]
            try:
                fields[attr] = convert(value)
            except ValueError as exc:
                raise fail(f"index {key!r}: {exc}", "index", position, key) from None
        for required in ("name", "url"):
            if required not in fields:
                raise fail(f"index #{position + 1} has no {required!r}", "index", position)
        if any(index.name == fields["name"] for index in indexes):
            raise fail(f"duplicate index name {fields['name']!r}", "index", position, "name")
        indexes.append(IndexConfig(**fields))
    defaults = [index for index in indexes if index.default]
    if len(defaults) > 1:
        position = indexes.index(defaults[1])
        raise fail("only one index may be the default", "index", position, "default")

    pins_table = data.get("pins", {})
    if not isinstance(pins_table, dict):
        raise fail("'pins' must be a table: write [pins]", "pins")
    pins: dict[str, str] = {}
    spelled: dict[str, str] = {}
    names = {index.name for index in indexes}
    for project, index_name in pins_table.items():
        if not isinstance(index_name, str):
            raise fail(f"pin {project!r}: expected an index name", "pins", project)
        if index_name not in names:
            raise fail(f"pin {project!r}: no index named {index_name!r}", "pins", project)
        canonical = _canonical(project)
        if canonical in spelled:
            # TOML sees two keys; Satchel one project: the last pin must not win in silence.
            raise fail(
                f"pins {spelled[canonical]!r} and {project!r} name the same project "
                f"({canonical}: '-', '_', '.' and case do not count); keep one",
                "pins",
                project,
            )
        spelled[canonical] = project
        pins[canonical] = index_name

    settings_table = data.get("settings", {})
    if not isinstance(settings_table, dict):
        raise fail("'settings' must be a table: write [settings]", "settings")
    settings: dict[str, Any] = {}
    for key, value in settings_table.items():
        if key not in _SETTINGS:
            allowed = ", ".join(_SETTINGS)
            raise fail(f"unknown setting {key!r} (expected {allowed})", "settings", key)
        attr, convert = _SETTINGS[key]
        try:
            settings[attr] = convert(value)
        except ValueError as exc:
            raise fail(f"setting {key!r}: {exc}", "settings", key) from None
    parsed = Settings(**settings)
    if own is not None:
        for position, index in enumerate(indexes):
            if own(index.url, parsed.local_index_port):
                raise fail(
                    f"index {index.name!r}: {redact(index.url)} is Satchel's own local index; "
                    "as an upstream every request would come back to this daemon. Remove it "
                    f"(`satchel index remove {index.name}`, or edit the file) and add the index "
                    "pip and uv were using before `satchel env` (`satchel index add NAME URL`)",
                    "index",
                    position,
                    "url",
                )
    return Config(indexes=order_indexes(indexes), pins=pins, settings=parsed)


def order_indexes(indexes: Iterable[IndexConfig]) -> tuple[IndexConfig, ...]:
    """Priority order: as listed, except that the default index always comes last."""
    listed = tuple(indexes)
    return (*(i for i in listed if not i.default), *(i for i in listed if i.default))


def _canonical(project: str) -> str:
    return re.sub(r"[-_.]+", "-", project).lower()


def _line_from_message(message: str) -> int | None:
    match = re.search(r"line (\d+)", message)
    return int(match.group(1)) if match else None


def _error(path: Path | str, line: int | None, message: str) -> ConfigError:
    where = f"{path}:{line}" if line else str(path)
    return ConfigError(redact(f"{where}: {message}"), details={"path": str(path), "line": line})


def config_exists(path: Path) -> bool:
    """Whether config.toml exists: a missing file is the one case where indexes are adopted."""
    return path.exists() or path.is_symlink()


#: config.toml is a few KiB; the cap bounds what a link to the wrong file (a log) costs.
MAX_CONFIG_BYTES = 2**20


def read_config_file(path: Path) -> bytes:
    """*path*'s bytes, read only from a regular file and at most `MAX_CONFIG_BYTES` (config.toml,
    and the pip.conf and uv.toml files adopted and watched for drift): the live reload runs on
    the event loop, where a FIFO would block the whole daemon, ``/dev/zero`` grow it without
    bound, and a check before the open could be raced. Raises `FileNotFoundError` for a missing
    file, `ValueError` naming the cause for one that is not a small regular file."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError(f"{path}: not a regular file (a directory, a FIFO or a device)")
        data = handle.read(MAX_CONFIG_BYTES + 1)
    if len(data) > MAX_CONFIG_BYTES:
        raise ValueError(f"{path}: larger than {MAX_CONFIG_BYTES // 2**10} KiB")
    return data


def _read_text(path: Path) -> str:
    """config.toml's UTF-8 text (`read_config_file`); raises `FileNotFoundError` for a missing
    file, `ConfigError` for one that is not a small regular file."""
    try:
        data = read_config_file(path)
    except ValueError as exc:
        too_large = " (not a config.toml?)" if "larger than" in str(exc) else ""
        raise ConfigError(f"{exc}{too_large}", details={"path": str(path)}) from None
    return data.decode("utf-8")


def load_config(path: Path, *, own: OwnCheck | None = None) -> Config:
    """Read *path*; a missing file is an empty configuration (the runtime then adopts once).
    *own*: see `parse_config`."""
    try:
        text = _read_text(path)
    except FileNotFoundError:
        if path.is_symlink():  # a link whose file went away is no decision for "no index"
            raise ConfigError(
                f"{path}: a symlink to {path.resolve()}, which does not exist",
                details={"path": str(path), "line": None},
            ) from None
        return Config()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}", details={"path": str(path)}) from exc
    return parse_config(text, path, own=own)


# -- writing ------------------------------------------------------------------------------------


#: Written at the top of every config.toml Satchel writes (see the module docstring: an empty
#: file is therefore always a truncation or a mistake, never Satchel's own output).
_HEADER = """\
# Satchel's indexes (highest priority first; the default index is always asked last), pins and
# settings. Edited by `satchel index ...`; hand edits are applied live. See docs/indexes.md.
"""


def _toml_string(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    escaped = re.sub(r"[\x00-\x1f\x7f]", lambda m: f"\\u{ord(m.group()):04x}", escaped)
    return f'"{escaped}"'


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_\-]+", key) else _toml_string(key)


def render_config(config: Config) -> str:
    """The TOML text of *config*: a header, indexes in order, pins, then non-default settings."""
    out: list[str] = [_HEADER]
    if not config.indexes:
        out += ["# No index: add one with `satchel index add NAME URL`.", ""]
    for index in order_indexes(config.indexes):
        out.append("[[index]]")
        out.append(f"name = {_toml_string(index.name)}")
        out.append(f"url = {_toml_string(index.url)}")
        if index.explicit:
            out.append("explicit = true")
        if index.default:
            out.append("default = true")
        if index.kind != "simple":
            out.append(f"kind = {_toml_string(index.kind)}")
        if index.max_age is not None:
            out.append(f"max-age = {index.max_age}")
        if index.adopted:
            out.append(f"adopted-from = {_toml_string(index.source)}")
        out.append("")
    if config.pins:
        out.append("[pins]")
        out.extend(f"{_toml_key(p)} = {_toml_string(i)}" for p, i in config.pins.items())
        out.append("")
    settings: list[str] = []
    defaults = Settings()
    for key, (attr, _) in _SETTINGS.items():
        value = getattr(config.settings, attr)
        if value is None or value == getattr(defaults, attr):
            continue
        settings.append(f"{key} = {_toml_string(value) if isinstance(value, str) else value}")
    if settings:
        out.append("[settings]")
        out.extend(settings)
        out.append("")
    return "\n".join(out)


def save_config(path: Path, config: Config) -> None:
    """Write *config* to *path* atomically (0600: an index URL may carry a token). A *path*
    that is a symlink (a dotfiles repository) is written where it points, and stays a link."""
    target = Path(os.path.realpath(path)) if path.is_symlink() else path  # a loop: no raise
    atomic_write(target, render_config(config).encode("utf-8"), mode=0o600)
