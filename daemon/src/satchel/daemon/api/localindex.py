"""Local index methods: `localindex.info`, for `satchel index-url` and `satchel env`."""

from __future__ import annotations

from satchel.daemon.api import RequestContext, method
from satchel.daemon.localindex import local_index_state
from satchel.daemon.services.daemon import runtime
from satchel.daemon.settings.ownindex import TOKEN_FILE
from satchel.protocol.methods.localindex import (
    LOCALINDEX_INFO,
    LocalIndexInfoParams,
    LocalIndexInfoResult,
)

__all__ = ["localindex_info"]


@method(LOCALINDEX_INFO, LocalIndexInfoParams)
async def localindex_info(
    ctx: RequestContext, params: LocalIndexInfoParams
) -> LocalIndexInfoResult:
    """The URL for tools when serving (the token in it only where peers cannot be identified);
    otherwise the state and why."""
    app = ctx.app
    await runtime(app)  # the index starts with the runtime; its failure is reported there
    state = local_index_state(app)
    base = state.base_url
    url = None
    if base is not None and state.peer_auth:
        url = base
    elif base is not None and state.token is not None:
        url = base.replace("http://", f"http://satchel:{state.token}@", 1)
    return LocalIndexInfoResult(
        state=state.state,
        url=url,
        base_url=base,
        host=state.host,
        port=state.port,
        error=state.error,
        token_file=str(app.paths.state_dir / TOKEN_FILE),
        since=state.since,
        peer_auth=state.peer_auth,
    )
