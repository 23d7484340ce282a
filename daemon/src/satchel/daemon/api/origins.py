"""Origin methods: list the remembered project origins, trust a new one, forget one."""

from __future__ import annotations

import trio
from packaging.utils import canonicalize_name

from satchel.daemon.api import RequestContext, method
from satchel.daemon.errors import NotFound
from satchel.daemon.indexes.origins import Binding, index_identity
from satchel.daemon.requests.runtime import Runtime
from satchel.daemon.services.daemon import runtime
from satchel.protocol.methods.origins import (
    ORIGINS_FORGET,
    ORIGINS_LIST,
    ORIGINS_TRUST,
    OriginInfo,
    OriginsForgetParams,
    OriginsListParams,
    OriginsListResult,
    OriginsTrustParams,
)

__all__ = ["origins_forget", "origins_list", "origins_trust"]


def _info(rt: Runtime, binding: Binding) -> OriginInfo:
    current = next(
        (i.name for i in rt.catalog.config().indexes if index_identity(i.url) == binding.url),
        None,
    )
    return OriginInfo(
        project=binding.project,
        index=current,
        bound_name=binding.index,
        url=binding.url,
        how=str(binding.how),
        bound_at=binding.bound_at,
        absent=list(binding.absent),
    )


async def _listing(rt: Runtime, project: str | None, notes: list[str]) -> OriginsListResult:
    origins = rt.catalog.origins
    if project is None:
        bindings = await trio.to_thread.run_sync(origins.all)
    else:
        one = await trio.to_thread.run_sync(origins.get, canonicalize_name(project))
        bindings = [one] if one is not None else []
    return OriginsListResult(origins=[_info(rt, b) for b in bindings], notes=notes)


@method(ORIGINS_LIST, OriginsListParams)
async def origins_list(ctx: RequestContext, params: OriginsListParams) -> OriginsListResult:
    """Every remembered binding (or one project's), with the configured index it names now."""
    return await _listing(await runtime(ctx.app), params.project, [])


@method(ORIGINS_TRUST, OriginsTrustParams)
async def origins_trust(ctx: RequestContext, params: OriginsTrustParams) -> OriginsListResult:
    """Bind a project to a configured index: the user's word that the change is intended."""
    rt = await runtime(ctx.app)
    project = canonicalize_name(params.project)
    index = rt.catalog.config().index(params.index)
    if index is None:
        raise NotFound(
            f"no index named {params.index!r}: `satchel index list` shows the configured ones",
            details={"index": params.index},
        )
    before = await trio.to_thread.run_sync(rt.catalog.origins.get, project)
    await trio.to_thread.run_sync(rt.catalog.origins.trust, project, index)
    was = f" (was {before.index}: {before.url})" if before is not None else ""
    note = f"{project} may now come from index {index.name} only{was}"
    return await _listing(rt, project, [note])


@method(ORIGINS_FORGET, OriginsForgetParams)
async def origins_forget(ctx: RequestContext, params: OriginsForgetParams) -> OriginsListResult:
    """Drop a binding: the next index in scope that serves the project is trusted again."""
    rt = await runtime(ctx.app)
    project = canonicalize_name(params.project)
    if not await trio.to_thread.run_sync(rt.catalog.origins.forget, project):
        raise NotFound(f"{project} has no remembered origin", details={"project": project})
    note = f"{project}: origin forgotten; the next index that serves it will be remembered"
    return await _listing(rt, None, [note])
