"""Index methods: list, add, remove and pin indexes, by editing config.toml.

Edits go through the file, not around it: config.toml is the one source of truth the user can
read and version, and the live-reload watcher applies hand edits the same way. A command edit is
applied at once (not when the watcher notices), so ``satchel index add`` followed by ``satchel
prefetch`` uses the new index.

Two decisions worth knowing:

* **Adopted indexes are written out on the first edit.** While config.toml lists no index, the
  daemon uses those adopted from pip/uv; the first `index.add` (or remove/pin) would otherwise
  make them vanish silently. So they are written to config.toml first (credential-free: a token
  in ``PIP_INDEX_URL`` stays in the environment, never in a file) and the answer says so.
* **Credentials in URLs are refused.** They would be written to config.toml; netrc or
  ``SATCHEL_INDEX_<NAME>_USERNAME/_PASSWORD`` keep them out of files.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import msgspec
import trio
from packaging.utils import canonicalize_name

from satchel.daemon.config import (
    Config,
    IndexConfig,
    check_index,
    load_config,
    order_indexes,
    parse_config,
    render_config,
    save_config,
)
from satchel.daemon.credentials import env_prefix, redact, split_userinfo
from satchel.daemon.errors import ConfigError, NotFound
from satchel.daemon.indexes import effective_indexes
from satchel.daemon.methods import RequestContext, method
from satchel.daemon.runtime import Runtime, runtime
from satchel.protocol.methods.indexes import (
    INDEX_ADD,
    INDEX_LIST,
    INDEX_PIN,
    INDEX_REMOVE,
    IndexAddParams,
    IndexInfo,
    IndexListParams,
    IndexListResult,
    IndexPinParams,
    IndexRemoveParams,
)

if TYPE_CHECKING:
    from satchel.daemon.app import App

__all__ = ["index_add", "index_list", "index_pin", "index_remove"]

#: One edit of config.toml at a time (read, change, write must not interleave).
_edit_lock = trio.Lock()

_Change = Callable[[Config], tuple[Config, list[str]]]


def _result(app: App, rt: Runtime, notes: list[str] | None = None) -> IndexListResult:
    config = rt.config
    states = rt.upstream.index_states()
    pinned: dict[str, list[str]] = {}
    for project, index_name in sorted(config.pins.items()):
        pinned.setdefault(index_name, []).append(project)
    infos = []
    for index in config.indexes:
        state = states.get(index.name)
        infos.append(
            IndexInfo(
                name=index.name,
                url=redact(split_userinfo(index.url)[0]),
                kind=index.kind,
                explicit=index.explicit,
                source=redact(index.source),
                max_age=index.max_age,
                pinned=pinned.get(index.name, []),
                state=state.state if state else "unknown",
                reason=redact(state.reason) if state and state.reason else None,
                offline_since=state.offline_since if state else None,
            )
        )
    return IndexListResult(
        indexes=infos,
        adopted=not rt.live.config.indexes and bool(config.indexes),
        config_path=str(rt.live.path),
        index_strategy=config.settings.index_strategy,
        pins=dict(config.pins),
        config_error=app.config_error,
        notes=notes or [],
    )


@method(INDEX_LIST, IndexListParams)
async def index_list(ctx: RequestContext, params: IndexListParams) -> IndexListResult:
    """The effective indexes in priority order, with their source, pins and reachability."""
    return _result(ctx.app, await runtime(ctx.app))


async def _edit(ctx: RequestContext, change: _Change) -> IndexListResult:
    rt = await runtime(ctx.app)
    path = rt.live.path
    async with _edit_lock:
        try:
            current = await trio.to_thread.run_sync(load_config, path)
        except ConfigError as exc:
            raise ConfigError(
                f"{exc.message}\nfix config.toml first: it is not changed while broken",
                details=exc.details,
            ) from None
        notes: list[str] = []
        if not current.indexes:
            current, notes = await trio.to_thread.run_sync(_write_out_adopted, current)
        new, more = change(current)
        notes += more
        parse_config(render_config(new), path)  # what is written must read back
        await trio.to_thread.run_sync(save_config, path, new)
        old = {index.name: index for index in rt.config.indexes}
        rt.live.reload()
        await trio.to_thread.run_sync(rt.refresh_config)
        for index in rt.config.indexes:
            if old.get(index.name) != index:
                rt.upstream.reset(index.name)
        if rt.live.error is None:
            ctx.app.config_error = None
    return _result(ctx.app, rt, notes)


def _write_out_adopted(current: Config) -> tuple[Config, list[str]]:
    adopted = effective_indexes(current)
    if not adopted:
        return current, []
    written = []
    notes = []
    for index in adopted:
        clean, creds = split_userinfo(index.url)
        if creds is not None:
            notes.append(
                f"index {index.name} ({index.source}) had credentials in its URL; they were "
                f"not written: set {env_prefix(index.name)}USERNAME/_PASSWORD or use netrc"
            )
        written.append(msgspec.structs.replace(index, url=clean, source="config.toml"))
    names = ", ".join(f"{i.name} ({redact(i.source)})" for i in adopted)
    notes.insert(
        0,
        f"config.toml listed no index, so the adopted ones were written to it first: {names}",
    )
    return msgspec.structs.replace(current, indexes=tuple(written)), notes


@method(INDEX_ADD, IndexAddParams)
async def index_add(ctx: RequestContext, params: IndexAddParams) -> IndexListResult:
    """Add an index (last but before the default index, or before another); refuses duplicates
    and URLs with credentials."""
    if split_userinfo(params.url)[1] is not None:
        raise ConfigError(
            f"index {params.name}: credentials in the URL would be written to config.toml; "
            f"give the URL without them and set {env_prefix(params.name)}USERNAME and "
            f"{env_prefix(params.name)}PASSWORD, or add the host to your netrc"
        )
    if params.kind not in ("simple", "find-links"):
        raise ConfigError(f"index kind must be 'simple' or 'find-links', not {params.kind!r}")
    new_index = IndexConfig(
        name=params.name,
        url=params.url,
        explicit=params.explicit,
        kind="find-links" if params.kind == "find-links" else "simple",
        max_age=params.max_age,
    )
    check_index(new_index)

    def change(config: Config) -> tuple[Config, list[str]]:
        if config.index(params.name) is not None:
            raise ConfigError(f"an index named {params.name!r} already exists")
        indexes = list(config.indexes)
        if params.before is None:
            # Before the default index (always last), so a private index is never shadowed.
            indexes.append(new_index)
            indexes = list(order_indexes(indexes))
        else:
            names = [index.name for index in indexes]
            if params.before not in names:
                raise NotFound(f"no index named {params.before!r} to insert before")
            indexes.insert(names.index(params.before), new_index)
        return msgspec.structs.replace(config, indexes=tuple(indexes)), []

    return await _edit(ctx, change)


@method(INDEX_REMOVE, IndexRemoveParams)
async def index_remove(ctx: RequestContext, params: IndexRemoveParams) -> IndexListResult:
    """Remove an index; refused while projects are pinned to it (unpin them first)."""

    def change(config: Config) -> tuple[Config, list[str]]:
        if config.index(params.name) is None:
            raise NotFound(f"no index named {params.name!r}")
        pinned = sorted(p for p, i in config.pins.items() if i == params.name)
        if pinned:
            raise ConfigError(
                f"index {params.name!r} is pinned by {', '.join(pinned)}: unpin them first "
                "(removing it would let those projects come from another index)"
            )
        indexes = tuple(i for i in config.indexes if i.name != params.name)
        notes = []
        if not indexes:
            notes.append(
                "config.toml now lists no index, so the indexes configured for pip and uv "
                "are adopted again (see the list below)"
            )
        return msgspec.structs.replace(config, indexes=indexes), notes

    return await _edit(ctx, change)


@method(INDEX_PIN, IndexPinParams)
async def index_pin(ctx: RequestContext, params: IndexPinParams) -> IndexListResult:
    """Pin a project to one index (it may only come from there), or unpin it (index None)."""
    project = canonicalize_name(params.project)

    def change(config: Config) -> tuple[Config, list[str]]:
        pins = dict(config.pins)
        if params.index is None:
            if pins.pop(project, None) is None:
                raise NotFound(f"{project} is not pinned")
        else:
            if config.index(params.index) is None:
                raise NotFound(f"no index named {params.index!r}")
            pins[project] = params.index
        return msgspec.structs.replace(config, pins=pins), []

    return await _edit(ctx, change)
