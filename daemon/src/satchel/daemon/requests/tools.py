"""Cached tool environments: what `satchel run` execs, offline-first.

A tool environment is keyed by what it contains: the target interpreter and the exact resolved
set (name, version, sha256 of every file). The same resolved set therefore always maps to the
same environment, which is built once and reused; a different set gets its own environment, so
an upgrade never disturbs a tool that is running.

Resolution is offline-first: the cache is asked before any index. When the cached pages and
files already satisfy the request, the environment is found without touching the network (this
is what makes a second `satchel run` instant, and a run on a plane possible). Only a request the
cache cannot answer goes online (unless ``--offline`` forbids it); an sdist pin counts as answered
only when a wheel was built from it for this interpreter (`builder`).

Environments live under ``<cache>/tools/<key>/``. An environment is complete only once its
record ``satchel-tool.json`` is written (atomically, last); a directory without one is debris
from an interrupted build and is rebuilt.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import time
from pathlib import Path

import msgspec
import trio

from satchel.daemon.errors import NotCached, NotFound, ResolutionImpossible
from satchel.daemon.requests.builder import cached_wheel, not_built
from satchel.daemon.requests.environments import install_files, prepare_environment, scheme_for
from satchel.daemon.requests.resolution import (
    Inputs,
    Outcome,
    pinned_files,
    read_inputs,
    resolve_request,
)
from satchel.daemon.requests.runtime import Runtime
from satchel.daemon.resolver.target import query_interpreter
from satchel.daemon.storage.fsutil import atomic_write
from satchel.protocol.methods.install import RunParams, RunResult, ToolInfo

__all__ = ["RECORD_NAME", "list_tools", "prepare_tool", "remove_tools", "tools_dir"]

log = logging.getLogger(__name__)

RECORD_NAME = "satchel-tool.json"

#: Files of a venv's bin directory that are not the tool's commands.
_NOT_COMMANDS = ("python", "activate", "Activate", "pip", "deactivate")


class ToolRecord(msgspec.Struct, kw_only=True):
    key: str
    spec: str
    pins: list[str]
    commands: list[str]
    created_at: float
    last_used: float
    python: str


def tools_dir(rt: Runtime) -> Path:
    return rt.store.root / "tools"


def _key(target_key: str, outcome: Outcome) -> str:
    parts = [target_key]
    parts += sorted(
        f"{pin.name}=={pin.version}#{pin.file.sha256 or pin.file.url}"
        for pin in outcome.resolution.pins
    )
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:24]


def _commands(bin_dir: Path) -> list[str]:
    try:
        entries = sorted(bin_dir.iterdir())
    except FileNotFoundError:
        return []
    return [
        p.name for p in entries if not p.name.startswith(_NOT_COMMANDS) and os.access(p, os.X_OK)
    ]


def _read_record(env: Path) -> ToolRecord | None:
    try:
        return msgspec.json.decode((env / RECORD_NAME).read_bytes(), type=ToolRecord)
    except (OSError, msgspec.DecodeError, msgspec.ValidationError):
        return None


def _touch(env: Path, record: ToolRecord) -> None:
    record.last_used = time.time()
    atomic_write(env / RECORD_NAME, msgspec.json.encode(record))


async def _resolve(rt: Runtime, params: RunParams, inputs: Inputs, python: str) -> Outcome:
    target = await query_interpreter(python, cache_dir=rt.interpreters_dir)
    offline_first = msgspec.structs.replace(params, offline=True)
    try:
        outcome = await resolve_request(rt, offline_first, inputs, target)
        await _require_built(rt, outcome)
    except (NotCached, NotFound, ResolutionImpossible) as exc:
        if params.offline:
            raise
        log.info(
            "tool %s not resolvable from the cache (%s): resolving online", params.command, exc
        )
    else:
        return outcome
    return await resolve_request(rt, params, inputs, target)


async def _require_built(rt: Runtime, outcome: Outcome) -> None:
    """An sdist pin answers offline only with a wheel already built for this interpreter.

    Raises `builder.NotBuilt` (a `NotCached`) otherwise, so the caller goes online and builds.
    """
    for pin in outcome.resolution.pins:
        if pin.file.is_wheel:
            continue
        sha = pin.file.sha256
        if sha is None or await cached_wheel(rt, sha, outcome.target) is None:
            raise not_built(pin.name, pin.file, outcome.target)


_building: dict[str, trio.Lock] = {}


async def prepare_tool(rt: Runtime, params: RunParams) -> RunResult:
    """Find or build the environment for *params* and return the executable to exec."""
    spec_params = params
    if not params.requirements and not params.requirement_files:
        spec_params = msgspec.structs.replace(params, requirements=[params.command])
    spec = " ".join(spec_params.requirements) or ", ".join(spec_params.requirement_files)
    python = params.python
    if python is None:
        raise NotFound("`run` needs the interpreter to build the tool environment with")
    inputs = await read_inputs(spec_params)
    outcome = await _resolve(rt, spec_params, inputs, python)
    key = _key(outcome.target.key, outcome)
    env = tools_dir(rt) / key
    lock = _building.setdefault(key, trio.Lock())
    async with lock:
        record = await trio.to_thread.run_sync(_read_record, env)
        reused = record is not None
        if record is None:
            record = await _build(rt, outcome, env, key, spec, python)
        else:
            await trio.to_thread.run_sync(_touch, env, record)
    scheme = scheme_for(await query_interpreter(env, cache_dir=rt.interpreters_dir))
    executable = scheme.scripts / params.command
    if params.command not in record.commands:
        available = ", ".join(record.commands) or "none"
        raise NotFound(
            f"{spec} provides no command {params.command!r} (it provides: {available}); "
            f"use `satchel run --from {spec} COMMAND`",
            details={"commands": record.commands},
        )
    return RunResult(
        executable=str(executable),
        environment=str(env),
        reused=reused,
        offline=outcome.session.offline,
        notes=outcome.session.notes,
    )


async def _build(
    rt: Runtime, outcome: Outcome, env: Path, key: str, spec: str, python: str
) -> ToolRecord:
    if await trio.to_thread.run_sync(env.exists):
        log.info("removing an incomplete tool environment %s", env)
        await trio.to_thread.run_sync(shutil.rmtree, env)
    await trio.to_thread.run_sync(lambda: env.parent.mkdir(parents=True, exist_ok=True))
    try:
        target, _created = await prepare_environment(rt, env, python)
        session = outcome.session
        files = pinned_files(session, outcome.resolution.pins)
        requested = {pin.name for pin in outcome.resolution.pins if pin.requested}
        scheme = scheme_for(target)
        await install_files(rt, session, scheme, target, files, requested)
        now = time.time()
        record = ToolRecord(
            key=key,
            spec=spec,
            pins=[f"{pin.name}=={pin.version}" for pin in outcome.resolution.pins],
            commands=await trio.to_thread.run_sync(_commands, scheme.scripts),
            created_at=now,
            last_used=now,
            python=python,
        )
        await trio.to_thread.run_sync(atomic_write, env / RECORD_NAME, msgspec.json.encode(record))
    except BaseException:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(lambda: shutil.rmtree(env, ignore_errors=True))
        raise
    return record


def _size(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_size  # noqa: PTH118
    return total


def _list(root: Path) -> list[ToolInfo]:
    tools = []
    try:
        entries = sorted(root.iterdir())
    except FileNotFoundError:
        return []
    for env in entries:
        record = _read_record(env)
        if record is None:
            continue
        tools.append(
            ToolInfo(
                key=record.key,
                environment=str(env),
                spec=record.spec,
                pins=record.pins,
                commands=record.commands,
                created_at=record.created_at,
                last_used=record.last_used,
                size=_size(env),
            )
        )
    return tools


async def list_tools(rt: Runtime) -> list[ToolInfo]:
    return await trio.to_thread.run_sync(_list, tools_dir(rt))


async def remove_tools(
    rt: Runtime, names: list[str], *, older_than: float | None = None, prune: bool = False
) -> list[ToolInfo]:
    """Remove tool environments by spec/key/command, or (prune) the stale ones."""
    tools = await list_tools(rt)
    doomed: list[ToolInfo] = []
    if prune:
        now = time.time()
        newest: dict[str, ToolInfo] = {}
        for tool in tools:
            if tool.spec not in newest or tool.last_used > newest[tool.spec].last_used:
                newest[tool.spec] = tool
        for tool in tools:
            stale = older_than is not None and now - tool.last_used > older_than
            superseded = older_than is None and newest[tool.spec] is not tool
            if stale or superseded:
                doomed.append(tool)
    else:
        wanted = set(names)
        doomed = [
            t
            for t in tools
            if t.key in wanted or t.spec in wanted or wanted.intersection(t.commands)
        ]
        if not doomed:
            raise NotFound(f"no cached tool matches {', '.join(names)}")
    for tool in doomed:
        async with _building.setdefault(tool.key, trio.Lock()):
            await trio.to_thread.run_sync(shutil.rmtree, tool.environment)
    return doomed
