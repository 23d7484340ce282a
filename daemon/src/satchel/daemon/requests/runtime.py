"""What a request works with: the cache, the metadata database, the upstream client, the catalog
and the configuration, as one `Runtime`.

`satchel.daemon.services.startup` builds it once per daemon run (opening the cache, adopting the
index set, loading config.toml) and keeps it for the daemon's life; request handlers reach it with
`satchel.daemon.services.daemon.runtime`. Everything below this layer is handed the parts it
needs, never the `Runtime` itself.

The index set is config.toml's, never the environment the daemon was started from.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from satchel.daemon.errors import ConfigError
from satchel.daemon.indexes.catalog import Catalog
from satchel.daemon.indexes.session import Session
from satchel.daemon.installing.installer import Scheme
from satchel.daemon.resolver.candidates import MetadataCache
from satchel.daemon.resolver.target import Target
from satchel.daemon.settings.config import Config
from satchel.daemon.settings.credentials import redact
from satchel.daemon.settings.indexset import NO_INDEX_MESSAGE, DriftCache, OwnIndex
from satchel.daemon.settings.liveconfig import LiveConfig
from satchel.daemon.settings.ownindex import configured_port
from satchel.daemon.storage.metadb import MetaDB
from satchel.daemon.storage.store import BlobStore
from satchel.daemon.upstream.client import Upstream

__all__ = ["BuildRequirements", "Runtime"]

log = logging.getLogger(__name__)


#: Puts an sdist's build requirements into its build environment: ``(runtime, session, target,
#: scheme, requirements, sdist filename, where they were declared)``. Providing them resolves
#: and installs, above building in this layer, so the builder is handed it
#: (`satchel.daemon.requests.buildenv.provide`, set at start-up).
BuildRequirements = Callable[
    ["Runtime", Session, Target, Scheme, Sequence[str], str, str], Awaitable[None]
]


@dataclass
class Runtime:
    """What requests beyond ping/status need; reached through
    `satchel.daemon.services.daemon.runtime`."""

    store: BlobStore
    metadb: MetaDB
    upstream: Upstream
    live: LiveConfig
    catalog: Catalog = field(init=False)
    #: Parsed metadata shared by every resolve (see `candidates.MetadataCache`).
    metadata_cache: MetadataCache = field(default_factory=MetadataCache)
    #: config.toml's configuration (the last good one).
    config: Config = field(default_factory=Config)
    #: Where interpreter descriptions are cached on disk.
    interpreters_dir: Path = Path()
    #: For the next command to show, once (what the first start adopted).
    notes: list[str] = field(default_factory=list)
    #: Satchel's own local index, as adoption and `index add` must recognise it.
    own_index: OwnIndex = field(default_factory=OwnIndex)
    #: True when there is no config.toml and nothing could be adopted (see `NO_INDEX_MESSAGE`).
    no_index_set: bool = False
    #: What `status` shows of pip's/uv's disagreement with config.toml (cached: a hot path).
    drift: DriftCache = field(default_factory=DriftCache)
    #: The port the local index is bound to now (None: not serving); set by the local index
    #: when it starts (`satchel.daemon.localindex.serve_local_index`).
    bound_port: Callable[[], int | None] = lambda: None
    #: How the builder gets build requirements installed (see `BuildRequirements`).
    build_requirements: BuildRequirements | None = None

    def refresh_config(self) -> None:
        """Take the current config.toml (the live reload's last good configuration)."""
        self.config = self.live.config
        for index in self.config.indexes:
            flag = ", default" if index.default else ""
            log.info("index %s: %s (%s%s)", index.name, redact(index.url), index.source, flag)
        if self.live.usable and not self.config.indexes:
            log.warning("config.toml lists no index: only the cache can answer")

    def take_notes(self) -> list[str]:
        notes, self.notes = self.notes, []
        return notes

    def check_usable(self) -> None:
        """Refuse work that needs an index set while there is none to trust (see the module
        docstring): a config.toml broken since start, or nothing configured and nothing adopted.
        """
        if self.live.usable:
            return
        if self.live.error is not None:
            error = self.live.error
            raise ConfigError(
                f"{error.message}\nno index set is in use until config.toml is fixed (Satchel "
                "does not fall back to pip's or uv's indexes)",
                details=error.details,
            )
        if self.no_index_set:
            raise ConfigError(NO_INDEX_MESSAGE)

    def own(self) -> OwnIndex:
        """`own_index` with the port the local index is bound to right now, and the configured
        one. The default port (remembered, or the user's) is in `own_index` from the start, and
        a port probed past it at the first start is the bound one: no file is read here."""
        bound = self.bound_port()
        wanted = configured_port(self.config)
        ports = self.own_index.ports | {port for port in (bound, wanted) if port}
        return OwnIndex(frozenset(ports), self.own_index.token)
