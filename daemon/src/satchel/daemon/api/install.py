"""`install` (into a venv), `run` (prepare a tool environment) and `tool.*` (manage them)."""

from __future__ import annotations

import time
from pathlib import Path

import trio

from satchel.daemon.api import RequestContext, method
from satchel.daemon.errors import DiskFull, InvalidParams
from satchel.daemon.requests.environments import (
    describe,
    discard_new_environment,
    install_into,
    prepare_environment,
)
from satchel.daemon.requests.resolution import read_inputs, read_lock
from satchel.daemon.requests.tools import list_tools, prepare_tool, remove_tools
from satchel.daemon.services.daemon import runtime
from satchel.protocol.methods.install import (
    INSTALL,
    RUN,
    TOOL_LIST,
    TOOL_PRUNE,
    TOOL_REMOVE,
    InstallParams,
    InstallResult,
    RunParams,
    RunResult,
    ToolListParams,
    ToolListResult,
    ToolRemoveParams,
    ToolRemoveResult,
)

__all__ = ["install", "run", "tool_list", "tool_prune", "tool_remove"]


@method(INSTALL, InstallParams)
async def install(ctx: RequestContext, params: InstallParams) -> InstallResult:
    started = time.perf_counter()
    rt = await runtime(ctx.app)
    if params.platforms or params.python_version:
        raise InvalidParams(
            "install: --platform/--python-version describe another machine; an install goes "
            "into a real environment (choose its interpreter with --python)"
        )
    venv = Path(params.venv)
    target, created = await prepare_environment(rt, venv, params.python)
    try:
        inputs = await read_inputs(params)
        locks = list(inputs.locks)
        if params.lock:
            locks.insert(0, await trio.to_thread.run_sync(read_lock, Path(params.lock)))
        if locks and inputs.requirements.requirements:
            raise InvalidParams(
                "install: a lock (--lock, or -r pylock.toml / uv.lock) installs exactly what it "
                "lists; give other requirements in an install of their own"
            )
        done = await install_into(
            rt,
            params,
            inputs,
            venv,
            target=target,
            locks=locks,
            link_mode=params.link_mode,
            compile_bytecode=params.compile,
            progress=ctx.progress,
        )
    except DiskFull:
        # A venv this request made on a disk too full to install into is not left behind
        # (other failures keep it: it is the environment asked for, and their advice names it).
        if created:
            await discard_new_environment(venv, target)
        raise
    installed, removed = describe(done.report)
    return InstallResult(
        venv=str(venv),
        created=created,
        installed=installed,
        removed=removed,
        kept=done.kept,
        files=done.report.files,
        link_modes=list(done.report.link_modes),
        offline=done.session.offline,
        offline_reason=done.session.offline_reason,
        notes=done.session.notes,
        elapsed=time.perf_counter() - started,
    )


@method(RUN, RunParams)
async def run(ctx: RequestContext, params: RunParams) -> RunResult:
    return await prepare_tool(await runtime(ctx.app), params)


@method(TOOL_LIST, ToolListParams)
async def tool_list(ctx: RequestContext, params: ToolListParams) -> ToolListResult:
    return ToolListResult(tools=await list_tools(await runtime(ctx.app)))


@method(TOOL_REMOVE, ToolRemoveParams)
async def tool_remove(ctx: RequestContext, params: ToolRemoveParams) -> ToolRemoveResult:
    removed = await remove_tools(await runtime(ctx.app), params.names)
    return ToolRemoveResult(removed=removed, freed=sum(t.size for t in removed))


@method(TOOL_PRUNE, ToolRemoveParams)
async def tool_prune(ctx: RequestContext, params: ToolRemoveParams) -> ToolRemoveResult:
    rt = await runtime(ctx.app)
    removed = await remove_tools(rt, params.names, older_than=params.older_than, prune=True)
    return ToolRemoveResult(removed=removed, freed=sum(t.size for t in removed))
