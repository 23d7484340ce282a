"""The index set as a persisted decision: adopt once, write it down, then only report drift.

`satchel.daemon.settings.toolsettings` reads what pip and uv are configured with; this module
decides what that
reading may change:

* **First start** (no config.toml, and none was ever in use: the state directory records it):
  `adopt_once` adopts, writes the result to config.toml
  (credential-free, each index with its ``adopted-from`` provenance, the default index marked
  ``default = true`` and written last) and returns a note that the first command shows. When
  pip/uv say ``no-index``, config.toml is written with no index (that is the decision). When
  nothing can be adopted (no pip/uv configuration and no pip to read its built-in default
  from), nothing is written: every command that needs an index then says so
  (`NO_INDEX_MESSAGE`), and the next start tries again.
* **Every later start** reads config.toml only. The environment the daemon was started from
  never changes the index set; `drift` (shown by ``satchel status`` and ``satchel index list``)
  says when pip's or uv's configuration disagrees, and ``satchel index adopt`` (`readopt`)
  takes the change on the user's word.
* **Satchel's own local index** is never adopted (`OwnIndex`).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
import trio

from satchel.daemon.errors import ConfigError
from satchel.daemon.settings.config import (
    Config,
    IndexConfig,
    config_exists,
    order_indexes,
    save_config,
)
from satchel.daemon.settings.credentials import (
    bind_origin,
    env_prefix,
    redact,
    split_userinfo,
    strip_userinfo,
)
from satchel.daemon.settings.toolsettings import Adoption, adopt, is_own_local_index

__all__ = [
    "NO_INDEX_MESSAGE",
    "DriftCache",
    "OwnIndex",
    "adopt_once",
    "adoption_environ",
    "drift",
    "readopt",
]

log = logging.getLogger(__name__)

NO_INDEX_MESSAGE = (
    "no index configured: there is no config.toml, and nothing could be adopted from pip's or "
    "uv's configuration (they name no index, or only Satchel's own local index, and no pip was "
    "found to read pip's default index from). Run `satchel index add NAME URL` for each index "
    "you use (`--default` for the public one: it is then always asked last), or configure pip "
    "or uv and run `satchel index adopt`"
)

#: The environment variables (and prefixes) adoption reads: the client sends only these with
#: ``satchel index adopt`` / ``index list``, never its whole environment.
ADOPTION_VARS = ("HOME", "XDG_CONFIG_HOME", "XDG_CONFIG_DIRS", "VIRTUAL_ENV", "NETRC")
ADOPTION_PREFIXES = ("PIP_", "UV_")


def adoption_environ(environ: Mapping[str, str]) -> dict[str, str]:
    """The part of *environ* adoption reads (see `ADOPTION_VARS`)."""
    return {
        key: value
        for key, value in environ.items()
        if key in ADOPTION_VARS or key.startswith(ADOPTION_PREFIXES)
    }


@dataclass(frozen=True)
class OwnIndex:
    """How to recognise Satchel's own local index: its ports (configured, bound) and token."""

    ports: frozenset[int] = frozenset()
    token: str | None = None

    def __call__(self, url: str) -> bool:
        return is_own_local_index(url, self.ports, self.token)

    def matches(self, url: str, port: int | None = None) -> bool:
        """`__call__`, with *port* (config.toml's ``local-index-port``) as one of its ports."""
        ports = self.ports if port is None else self.ports | {port}
        return is_own_local_index(url, ports, self.token)


@dataclass
class Adopted:
    """What `adopt_once` did: the notes for the user (empty when config.toml already existed)."""

    notes: list[str] = field(default_factory=list)
    #: True when nothing could be adopted and config.toml was not written.
    nothing: bool = False


def _bind_credentials(adoption: Adoption) -> None:
    for _clean, url in adoption.credentials:
        bind_origin(url)


def _written(adoption: Adoption) -> tuple[tuple[IndexConfig, ...], list[str]]:
    """The adopted indexes as config.toml gets them (no userinfo), and notes on credentials."""
    notes = []
    written = []
    for index in adoption.indexes:
        clean, creds = split_userinfo(index.url)
        if creds is not None:
            notes.append(
                f"{index.name}: the credentials in its URL ({redact(index.source)}) are not "
                "written to config.toml; this daemon uses them for that host only while it "
                f"runs. Set {env_prefix(index.name)}USERNAME/_PASSWORD or add the host to "
                "your netrc so that a daemon started elsewhere has them too"
            )
        written.append(msgspec.structs.replace(index, url=clean))
    return order_indexes(written), notes


def describe(indexes: tuple[IndexConfig, ...]) -> str:
    parts = []
    for index in indexes:
        flag = ", default: asked last" if index.default else ""
        parts.append(
            f"{index.name} {redact(split_userinfo(index.url)[0])} ({redact(index.source)}{flag})"
        )
    return "; ".join(parts)


def adopt_once(
    path: Path,
    own: OwnIndex,
    environ: Mapping[str, str] | None = None,
    *,
    decided: bool = False,
) -> Adopted:
    """Adopt pip's and uv's indexes into config.toml at *path* if, and only if, it is missing
    and never was in use (*decided*: a config.toml was in use before; a missing one is then an
    error, `satchel.daemon.settings.liveconfig.LiveConfig`'s, never a new adoption).

    Blocking (reads pip/uv files, may ask pip for its default): run it in a worker thread.
    Credentials in adopted URLs are bound to their origins for this daemon's lifetime even when
    config.toml exists (the user's environment still holds them; the file never does).
    """
    env = os.environ if environ is None else environ
    if decided or config_exists(path):
        _bind_credentials(adopt(env, own=own))
        return Adopted()
    adoption = adopt(env, own=own)
    _bind_credentials(adoption)
    notes = list(adoption.notes)
    if not adoption.indexes and adoption.no_index is None:
        notes.append(NO_INDEX_MESSAGE)
        log.warning("%s", NO_INDEX_MESSAGE)
        return Adopted(notes, nothing=True)
    indexes, more = _written(adoption)
    save_config(path, Config(indexes=indexes))
    if indexes:
        head = f"first start: adopted pip's/uv's indexes into {path}: {describe(indexes)}"
    else:
        head = f"first start: {adoption.no_index} is set, so {path} was written with no index"
    notes = [head, *notes, *more]
    notes.append(
        "from now on that file is the index set, whatever the environment a daemon starts "
        "in; `satchel index list` shows it, `satchel index adopt` takes later pip/uv changes"
    )
    for note in notes:
        log.info("%s", note)
    return Adopted(notes)


def readopt(current: Config, environ: Mapping[str, str], own: OwnIndex) -> tuple[Config, list[str]]:
    """``satchel index adopt``: *current* with its adopted indexes replaced by pip's and uv's
    current ones (from the client's *environ*); indexes the user added are kept, and keep their
    priority over adopted ones."""
    adoption = adopt(environ, own=own)
    if adoption.via_satchel:
        # pip (or uv) here uses config.toml through Satchel (`drift` sees no disagreement):
        # what remains of its configuration is not a new index set, and taking it for one
        # dropped every adopted index.
        raise ConfigError(
            "nothing to adopt: pip or uv here points at Satchel's own local index (`satchel "
            "env` set it), so it uses config.toml through Satchel; config.toml is unchanged. "
            "Run `satchel index adopt` in a shell without `satchel env`'s variables"
        )
    _bind_credentials(adoption)
    fresh, notes = _written(adoption)
    notes = [*adoption.notes, *notes]
    if not adoption.configured and not fresh:
        raise ConfigError(
            "nothing to adopt: pip and uv configure no index here, and no pip was found to "
            "read its default index from"
        )
    mine = [index for index in current.indexes if not index.adopted]
    urls = {split_userinfo(index.url)[0].rstrip("/") for index in mine}
    names = {index.name for index in mine}
    has_default = any(index.default for index in mine)
    adopted = []
    for index in fresh:
        if index.url.rstrip("/") in urls or (index.default and has_default):
            continue
        if index.name in names:
            index = msgspec.structs.replace(index, name=f"{index.name}-adopted")
        adopted.append(index)
    indexes = order_indexes([*mine, *adopted])
    kept = {index.name for index in indexes}
    lost = sorted(p for p, i in current.pins.items() if i not in kept)
    if lost:
        raise ConfigError(
            "adopting would remove an index that "
            + ", ".join(lost)
            + " are pinned to: pin them to another index (or unpin them) first"
        )
    gone = [i.name for i in current.indexes if i.adopted and i.name not in kept]
    notes.insert(0, f"adopted: {describe(tuple(adopted)) or 'no index'}")
    if gone:
        notes.append("no longer adopted: " + ", ".join(gone))
    return msgspec.structs.replace(current, indexes=indexes), notes


#: `status` is a hot path (a load test sends it thousands of times a second): pip's and uv's
#: configuration is re-read for it at most this often, and never by two requests at once.
DRIFT_TTL = 30.0


class DriftCache:
    """The last `drift` computed for `status`, reused for `DRIFT_TTL` seconds per configuration.

    While one request recomputes it in a worker thread, the others get the previous value
    rather than queueing threads of their own.
    """

    def __init__(self) -> None:
        self.value: list[str] = []
        self._at = -math.inf
        self._config: Config | None = None
        self._busy = False

    async def get(self, config: Config, compute: Callable[[], list[str]]) -> list[str]:
        now = trio.current_time()
        fresh = self._config is config and now - self._at < DRIFT_TTL
        if fresh or self._busy:
            return self.value
        self._busy = True
        try:
            self.value = await trio.to_thread.run_sync(compute)
            self._at, self._config = now, config
        finally:
            self._busy = False
        return self.value


def drift(config: Config, adoption: Adoption) -> list[str]:
    """How pip's and uv's configuration (*adoption*) disagrees with config.toml, for the user.

    Nothing when pip and uv are not configured at all (a shell without their settings: cron, an
    IDE, a reboot), nor when they point at Satchel itself (``satchel env``) alone: neither is a
    disagreement. Pointed at Satchel and at other indexes too, the others are named: the tool
    asks them itself (uv first), past Satchel's scope and remembered origins. Compared by
    credential-free URL.
    """
    if adoption.via_satchel and adoption.indexes:
        named = "; ".join(
            f"{redact(strip_userinfo(i.url))} ({redact(i.source)})" for i in adoption.indexes
        )
        return [
            "pip or uv here is pointed at Satchel's local index and also at: "
            f"{named}. The tool asks those itself, beside Satchel (uv before it), past its "
            "scope and remembered origins: a project Satchel refuses may come from them. "
            "Remove them from pip's/uv's configuration (`satchel env` overrides pip's extra "
            "indexes; uv's are set in uv.toml or UV_INDEX/UV_EXTRA_INDEX_URL)"
        ]
    if not adoption.configured or adoption.via_satchel:
        return []
    mine = {strip_userinfo(i.url).rstrip("/"): i for i in config.indexes}
    theirs = {strip_userinfo(i.url).rstrip("/"): i for i in adoption.indexes}
    lines = [
        f"{redact(strip_userinfo(i.url))} ({redact(i.source)}) is not in config.toml"
        for key, i in theirs.items()
        if key not in mine
    ]
    lines += [
        f"config.toml's {i.name} (adopted from {redact(i.source)}) is no longer configured there"
        for key, i in mine.items()
        if i.adopted and key not in theirs
    ]
    if adoption.no_index and config.indexes:
        lines.append(f"{adoption.no_index} is set, but config.toml lists indexes")
    if not lines:
        return []
    return [
        "pip/uv configuration differs from config.toml (which Satchel uses): "
        + "; ".join(lines)
        + ". Run `satchel index adopt` to replace the adopted indexes with pip's and uv's "
        "current ones (indexes you added yourself are kept), or ignore this"
    ]
