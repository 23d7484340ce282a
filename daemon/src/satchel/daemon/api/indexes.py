"""Index methods: list, add, remove, pin and adopt indexes, by editing config.toml.

Edits go through the file, not around it: config.toml is the one source of truth the user can
read and version, and the live-reload watcher applies hand edits the same way. A command edit is
applied at once (not when the watcher notices), so ``satchel index add`` followed by ``satchel
prefetch`` uses the new index.

Decisions worth knowing:

* **Adoption is not done here.** The first daemon start writes pip's/uv's indexes to config.toml
  (`satchel.daemon.settings.indexset`); `index.list` only compares them with config.toml
  (``drift``) and
  `index.adopt` takes pip's/uv's current set on the user's word.
* **Credentials in URLs are refused.** They would be written to config.toml; netrc or
  ``SATCHEL_INDEX_<NAME>_USERNAME/_PASSWORD`` keep them out of files.
* **Satchel's own local index is refused as an upstream** (any loopback name, its port, with
  or without its token): every request would recurse into the daemon itself.
* **One default index, always last**: ``--default`` marks the public index; config.toml is
  written with it last whatever the order of the edits.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING

import msgspec
import trio
from packaging.utils import canonicalize_name

from satchel.daemon.api import RequestContext, method
from satchel.daemon.errors import ConfigError, NotFound
from satchel.daemon.indexes.origins import index_identity
from satchel.daemon.requests.runtime import Runtime
from satchel.daemon.services.daemon import runtime
from satchel.daemon.settings.config import (
    Config,
    IndexConfig,
    check_index,
    load_config,
    order_indexes,
    parse_config,
    render_config,
    save_config,
)
from satchel.daemon.settings.credentials import env_prefix, redact, split_userinfo
from satchel.daemon.settings.indexset import drift, readopt
from satchel.daemon.settings.toolsettings import adopt, pip_default_index
from satchel.protocol.methods.indexes import (
    INDEX_ADD,
    INDEX_ADOPT,
    INDEX_LIST,
    INDEX_PIN,
    INDEX_REMOVE,
    IndexAddParams,
    IndexAdoptParams,
    IndexInfo,
    IndexListParams,
    IndexListResult,
    IndexPinParams,
    IndexRemoveParams,
)

if TYPE_CHECKING:
    from satchel.daemon.services.daemon import App

__all__ = ["index_add", "index_adopt", "index_list", "index_pin", "index_remove"]

#: One edit of config.toml at a time (read, change, write must not interleave).
_edit_lock = trio.Lock()

_Change = Callable[[Config], tuple[Config, list[str]]]


def _result(
    app: App, rt: Runtime, notes: list[str] | None = None, drifts: list[str] | None = None
) -> IndexListResult:
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
                default=index.default,
                adopted=index.adopted,
                max_age=index.max_age,
                pinned=pinned.get(index.name, []),
                state=state.state if state else "unknown",
                reason=redact(state.reason) if state and state.reason else None,
                offline_since=state.offline_since if state else None,
            )
        )
    return IndexListResult(
        indexes=infos,
        adopted=any(index.adopted for index in config.indexes),
        config_path=str(rt.live.path),
        index_strategy=config.settings.index_strategy,
        pins=dict(config.pins),
        config_error=app.config_error,
        notes=[*rt.take_notes(), *(notes or [])],
        drift=drifts or [],
    )


def index_drift(app: App, rt: Runtime, environ: dict[str, str] | None) -> list[str]:
    """How pip/uv (in *environ*, else the daemon's environment) disagree with config.toml.

    Blocking (reads pip's and uv's files): run it in a worker thread.
    """
    if not rt.live.usable:
        return []
    return [*unmarked_default(rt.config), *drift(rt.config, adopt(environ, own=rt.own()))]


def unmarked_default(config: Config) -> list[str]:
    """Advice for a config.toml written before the default index was marked (issue 12.1): pip's
    built-in default listed without ``default = true`` is asked before the indexes after it."""
    builtin = pip_default_index()
    if builtin is None or any(index.default for index in config.indexes):
        return []
    key = builtin.rstrip("/")
    for index in config.indexes[:-1]:
        if split_userinfo(index.url)[0].rstrip("/") == key:
            return [
                f"{index.name} is pip's default (public) index but is not marked "
                "`default = true` in config.toml, so it is asked before the indexes listed "
                "after it: add `default = true` to it (it is then always asked last)"
            ]
    return []


@method(INDEX_LIST, IndexListParams)
async def index_list(ctx: RequestContext, params: IndexListParams) -> IndexListResult:
    """The indexes in priority order, with their source, pins, reachability and drift."""
    rt = await runtime(ctx.app, need_indexes=False)
    drifts = await trio.to_thread.run_sync(index_drift, ctx.app, rt, params.environ)
    return _result(ctx.app, rt, drifts=drifts)


async def _edit(
    ctx: RequestContext, change: _Change, bound_to_removed: list[str] | None = None
) -> IndexListResult:
    rt = await runtime(ctx.app, need_indexes=False)
    path = rt.live.path
    async with _edit_lock:
        try:
            current = await trio.to_thread.run_sync(load_config, path)
        except ConfigError as exc:
            raise ConfigError(
                f"{exc.message}\nfix config.toml first: it is not changed while broken",
                details=exc.details,
            ) from None
        new, notes = change(current)
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
    result = _result(ctx.app, rt, notes)
    if bound_to_removed:
        result = msgspec.structs.replace(result, bound_to_removed=bound_to_removed)
    return result


@method(INDEX_ADD, IndexAddParams)
async def index_add(ctx: RequestContext, params: IndexAddParams) -> IndexListResult:
    """Add an index (last but before the default index, or before another); refuses duplicates
    and URLs with credentials."""
    if params.kind not in ("simple", "find-links"):
        raise ConfigError(f"index kind must be 'simple' or 'find-links', not {params.kind!r}")
    new_index = IndexConfig(
        name=params.name,
        url=params.url,
        explicit=params.explicit,
        default=params.default,
        kind="find-links" if params.kind == "find-links" else "simple",
        max_age=params.max_age,
    )
    check_index(new_index)  # first: what follows parses the URL
    rt = await runtime(ctx.app, need_indexes=False)
    if rt.own()(params.url):
        raise ConfigError(
            f"index {params.name}: {redact(params.url)} is Satchel's own local index; as an "
            "upstream every request would come back to this daemon. Add the index pip and uv "
            "were using before `satchel env` (see `satchel index list`)"
        )
    if split_userinfo(params.url)[1] is not None:
        raise ConfigError(
            f"index {params.name}: credentials in the URL would be written to config.toml; "
            f"give the URL without them and set {env_prefix(params.name)}USERNAME and "
            f"{env_prefix(params.name)}PASSWORD, or add the host to your netrc"
        )

    def change(config: Config) -> tuple[Config, list[str]]:
        if config.index(params.name) is not None:
            raise ConfigError(f"an index named {params.name!r} already exists")
        default = next((i for i in config.indexes if i.default), None)
        if params.default and default is not None:
            raise ConfigError(
                f"{default.name} is already the default index: remove it first "
                f"(`satchel index remove {default.name}`)"
            )
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

    result = await _edit(ctx, change)
    # The user typed this URL for this name: the name-given credential may go there now.
    await trio.to_thread.run_sync(_forget_credential_origin, rt, params.name)
    return result


def _forget_credential_origin(rt: Runtime, name: str) -> None:
    if rt.upstream.credential_bindings is not None:
        rt.upstream.credential_bindings.forget(name)


@method(INDEX_REMOVE, IndexRemoveParams)
async def index_remove(ctx: RequestContext, params: IndexRemoveParams) -> IndexListResult:
    """Remove an index; refused while projects are pinned to it (unpin them first). Says how
    many projects are bound to it, and what becomes of them (`bound_to_removed`)."""
    rt = await runtime(ctx.app, need_indexes=False)
    bindings = await trio.to_thread.run_sync(rt.catalog.origins.all)
    orphaned: list[str] = []

    def change(config: Config) -> tuple[Config, list[str]]:
        removed = config.index(params.name)
        if removed is None:
            raise NotFound(f"no index named {params.name!r}")
        pinned = sorted(p for p, i in config.pins.items() if i == params.name)
        if pinned:
            raise ConfigError(
                f"index {params.name!r} is pinned by {', '.join(pinned)}: unpin them first "
                "(removing it would let those projects come from another index)"
            )
        indexes = tuple(i for i in config.indexes if i.name != params.name)
        notes = []
        gone = index_identity(removed.url)
        if all(index_identity(i.url) != gone for i in indexes):  # no other name for that URL
            orphaned[:] = sorted(b.project for b in bindings if b.url == gone)
        if orphaned:
            shown = ", ".join(orphaned[:10]) + (" ..." if len(orphaned) > 10 else "")
            count = f"{len(orphaned)} project{'s are' if len(orphaned) > 1 else ' is'}"
            notes.append(
                f"{count} bound to index {params.name} ({gone}): {shown}. They are refused "
                "(online and from the cache) until the index is back (`satchel index add "
                f"{params.name} URL`) or you accept another index for each: "
                "`satchel origins trust PROJECT INDEX`"
            )
        if not indexes:
            notes.append(
                "config.toml now lists no index: nothing is fetched until you add one "
                "(`satchel index add`) or take pip's and uv's (`satchel index adopt`)"
            )
        return msgspec.structs.replace(config, indexes=indexes), notes

    result = await _edit(ctx, change, orphaned)
    await trio.to_thread.run_sync(_forget_credential_origin, rt, params.name)
    return result


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


@method(INDEX_ADOPT, IndexAdoptParams)
async def index_adopt(ctx: RequestContext, params: IndexAdoptParams) -> IndexListResult:
    """Replace config.toml's adopted indexes with what pip and uv configure now (the caller's
    environment); indexes the user added stay, ahead of the adopted ones."""
    rt = await runtime(ctx.app, need_indexes=False)
    own = rt.own()
    environ = params.environ

    def change(config: Config) -> tuple[Config, list[str]]:
        return readopt(config, environ if environ is not None else os.environ, own)

    return await _edit(ctx, change)
