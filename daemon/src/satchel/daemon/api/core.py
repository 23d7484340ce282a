"""Core methods: `ping`, `status`, `stop` — the daemon talking about itself."""

from __future__ import annotations

from typing import TYPE_CHECKING

from satchel.daemon.api import RequestContext, method
from satchel.daemon.localindex import local_index_state
from satchel.daemon.services.state import STOP_REQUEST
from satchel.daemon.settings.credentials import strip_userinfo
from satchel.protocol.methods.core import (
    ExitRecord,
    IndexState,
    Job,
    PingParams,
    PingResult,
    StatusParams,
    StatusResult,
    StopParams,
    StopResult,
)

if TYPE_CHECKING:
    from satchel.daemon.services.daemon import App

__all__ = ["ping", "status", "stop"]


@method("ping", PingParams)
async def ping(ctx: RequestContext, params: PingParams) -> PingResult:
    """The cheapest round trip: proves the daemon is alive and answering."""
    return PingResult(pid=ctx.app.pid)


@method("status", StatusParams)
async def status(ctx: RequestContext, params: StatusParams) -> StatusResult:
    """Everything `satchel status` shows; the previous exit record appears in one answer only."""
    app = ctx.app
    previous = app.exit_recorder.take_previous()
    exit_record = None
    if previous is not None:
        exit_record = ExitRecord(
            pid=previous.pid,
            reason=previous.reason if previous.clean else previous.message,
            at=previous.exited_at,
            clean=previous.clean,
            exit_code=previous.exit_code,
        )
    jobs = [
        Job(
            id=job.id,
            method=job.method,
            started_at=job.started_at,
            description=job.description
            or f"request {job.request_id}" + (f" from pid {job.peer_pid}" if job.peer_pid else ""),
        )
        for job in app.jobs.values()
        if not (job.method == "status" and job.request_id == ctx.request_id)
    ]
    jobs += [
        Job(id=job.id, method=job.method, started_at=job.started_at, description=job.description)
        for job in app.background_jobs.values()
    ]
    paths = app.paths
    return StatusResult(
        pid=app.pid,
        version=app.version,
        build_id=app.build_id,
        protocol=ctx.protocol,
        started_at=app.started_at,
        uptime=app.uptime,
        socket=str(paths.socket),
        cache_dir=str(paths.cache_dir),
        config_dir=str(paths.config_dir),
        state_dir=str(paths.state_dir),
        log_file=app.log_file,
        activation=app.activation,
        idle_timeout=app.idle_timeout,
        jobs=jobs,
        previous_exit=exit_record,
        config_error=app.config_error,
        indexes=_index_states(app),
        local_index=_local_index(app),
        index_notes=await _index_notes(app),
        services=_services(app),
        repaired=app.services.repaired,
    )


async def _index_notes(app: App) -> list[str]:
    """No index set, or pip/uv disagreeing with config.toml (see `satchel.daemon.api.indexes`),
    then the stored pages kept against their index's answer (`Catalog.kept`)."""
    from satchel.daemon.api.indexes import index_drift
    from satchel.daemon.settings.indexset import NO_INDEX_MESSAGE

    rt = app.services.runtime
    if rt is None:
        return []
    if rt.no_index_set and not rt.live.usable:
        return [NO_INDEX_MESSAGE]
    drift = await rt.drift.get(rt.config, lambda: index_drift(app, rt, None))
    # Pages kept against their index's last answer (a captive portal?): pip and uv, reading
    # the local index, get the stored page and cannot show the note a command shows.
    kept = list(rt.catalog.kept.values())
    if len(kept) > _KEPT_SHOWN:
        kept[_KEPT_SHOWN:] = [f"... and {len(kept) - _KEPT_SHOWN} more pages kept so (the log)"]
    return [*drift, *kept]


#: Kept pages named one by one: a portal answers for every project asked, and one line per
#: project of a large lock would bury the rest of the status.
_KEPT_SHOWN = 5


def _services(app: App) -> str:
    services = app.services
    if not services.runtime_ready.is_set():
        return "starting"
    if services.runtime is None:
        return f"failed: {services.runtime_error or 'stopped'}"
    return "ready"


def _local_index(app: App) -> str:
    if not app.services.runtime_ready.is_set():
        return "starting"  # it binds as the runtime starts; no state of its own yet
    if app.services.runtime is None:
        return "stopped (the cache and index services did not start)"
    state = local_index_state(app)
    if state.state == "serving":
        return f"serving {state.base_url}"
    if state.state == "error":
        return f"error: {state.error}"
    return state.state


def _index_states(app: App) -> list[IndexState]:
    """The configured indexes and their circuit-breaker state; empty while starting up."""
    rt = app.services.runtime
    if rt is None:
        return []
    states = rt.upstream.index_states()
    out = []
    for index in rt.config.indexes:
        known = states.get(index.name)
        out.append(
            IndexState(
                name=index.name,
                url=strip_userinfo(index.url),
                state=known.state if known is not None else "unknown",
                reason=known.reason if known is not None else None,
                offline_since=known.offline_since if known is not None else None,
            )
        )
    return out


@method("stop", StopParams)
async def stop(ctx: RequestContext, params: StopParams) -> StopResult:
    """Answer, then shut down gracefully: the drain waits for in-flight requests, this one
    included, so the caller always gets its reply before the socket goes away."""
    app = ctx.app
    if params.drain_timeout is not None:
        app.drain_timeout = max(0.0, params.drain_timeout)
    app.request_shutdown(STOP_REQUEST, "stopped by `satchel stop`")
    return StopResult(pid=app.pid)
