"""Environment methods: `install` into a venv, `run` a tool, and `tool.*` for cached tools.

`install` and `run` take everything `resolve` takes (`ResolveParams`), so requirement files,
targets and offline mode behave the same everywhere. `run` never executes anything in the
daemon: it returns the path of the executable and the client `exec`s it, so the terminal,
signals and exit code are the tool's own.
"""

from __future__ import annotations

import msgspec

from satchel.protocol.methods.resolve import ResolveParams

__all__ = [
    "INSTALL",
    "RUN",
    "TOOL_LIST",
    "TOOL_PRUNE",
    "TOOL_REMOVE",
    "InstallParams",
    "InstallResult",
    "RunParams",
    "RunResult",
    "ToolInfo",
    "ToolListParams",
    "ToolListResult",
    "ToolRemoveParams",
    "ToolRemoveResult",
]

INSTALL = "install"
RUN = "run"
TOOL_LIST = "tool.list"
TOOL_REMOVE = "tool.remove"
TOOL_PRUNE = "tool.prune"


class InstallParams(ResolveParams, frozen=True, kw_only=True):
    #: The environment (a venv directory, created when missing), absolute.
    venv: str
    #: PEP 751 lock to install exactly (no resolution), absolute.
    lock: str | None = None
    #: ``auto`` (clone, else hardlink, else copy), ``clone``, ``hardlink`` or ``copy``.
    link_mode: str = "auto"
    #: Byte-compile what was installed (like ``uv pip install --compile``).
    compile: bool = False


class InstallResult(msgspec.Struct, frozen=True, kw_only=True):
    venv: str
    created: bool
    #: "name version" of what was installed, removed (replaced), and kept as already installed.
    installed: list[str]
    removed: list[str]
    kept: list[str]
    files: int
    link_modes: list[str]
    offline: bool
    offline_reason: str | None = None
    notes: list[str] = []
    elapsed: float = 0.0


class RunParams(ResolveParams, frozen=True, kw_only=True):
    #: The command to run (a console script of the tool environment).
    command: str


class RunResult(msgspec.Struct, frozen=True, kw_only=True):
    #: Absolute path of the executable to exec, and the environment it belongs to.
    executable: str
    environment: str
    #: True when an existing environment was reused (no install happened).
    reused: bool
    offline: bool
    notes: list[str] = []


class ToolInfo(msgspec.Struct, frozen=True, kw_only=True):
    key: str
    environment: str
    #: What was asked for (``--from`` spec or the command) and the pinned set.
    spec: str
    pins: list[str]
    commands: list[str]
    created_at: float
    last_used: float
    size: int = 0


class ToolListParams(msgspec.Struct, frozen=True):
    pass


class ToolListResult(msgspec.Struct, frozen=True, kw_only=True):
    tools: list[ToolInfo]


class ToolRemoveParams(msgspec.Struct, frozen=True, kw_only=True):
    #: Remove environments whose spec or key matches; with `prune`, the ones unused for
    #: `older_than` seconds (default: every environment but the newest per spec).
    names: list[str] = []
    older_than: float | None = None


class ToolRemoveResult(msgspec.Struct, frozen=True, kw_only=True):
    removed: list[ToolInfo]
    freed: int
