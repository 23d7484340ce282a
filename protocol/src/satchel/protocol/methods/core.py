"""Core methods: `ping` (is the daemon alive?), `status` (what is it doing?), `stop`."""

from __future__ import annotations

import msgspec

__all__ = [
    "ExitRecord",
    "IndexState",
    "Job",
    "PingParams",
    "PingResult",
    "StatusParams",
    "StatusResult",
    "StopParams",
    "StopResult",
]

PING = "ping"
STATUS = "status"
STOP = "stop"


class PingParams(msgspec.Struct, frozen=True):
    """`ping` takes nothing: it is the cheapest possible round trip."""


class PingResult(msgspec.Struct, frozen=True):
    pid: int


class StatusParams(msgspec.Struct, frozen=True):
    """`status` takes nothing (fields may be added to ask for more)."""


class Job(msgspec.Struct, frozen=True, kw_only=True):
    """A request or background job running in the daemon."""

    id: int
    method: str
    started_at: float  # Unix time
    description: str = ""


class ExitRecord(msgspec.Struct, frozen=True, kw_only=True):
    """How the previous daemon ended; shown once by the next `satchel status`.

    `clean` is False when the daemon died without recording its exit (kill -9, crash); then
    `reason` says so and `exit_code` is unknown.
    """

    pid: int
    reason: str
    at: float  # Unix time
    clean: bool
    exit_code: int | None = None


class StatusResult(msgspec.Struct, frozen=True, kw_only=True):
    """What `satchel status` shows. Times are Unix times, durations seconds."""

    pid: int
    version: str
    build_id: str
    protocol: str  # negotiated protocol version of this connection, "1.0"
    started_at: float
    uptime: float
    socket: str
    cache_dir: str
    config_dir: str
    state_dir: str
    log_file: str | None  # None when logging to an inherited stderr (service managers)
    activation: str  # how the daemon got its socket: "autostart", "systemd", "launchd", "manual"
    idle_timeout: float | None  # None: never exits when idle
    jobs: list[Job]
    previous_exit: ExitRecord | None = None
    config_error: str | None = None  # the last config.toml error (file:line: message), if any
    #: Each configured index in priority order, and whether it currently answers.
    indexes: list[IndexState] = []
    #: The local simple index: "serving http://127.0.0.1:20000/simple/" (never the token),
    #: "error: <why>", "starting" or "stopped".
    local_index: str | None = None
    #: How pip's/uv's configuration disagrees with config.toml, or that no index is configured;
    #: then the stored pages kept against their index's answer (a captive portal?).
    index_notes: list[str] = []
    #: The cache and index services: "starting", "ready", or "failed: <why>" (a cache the
    #: daemon cannot open: every request that needs it fails with that reason).
    services: str | None = None
    #: What start-up repaired that the user should know (a damaged database moved aside, where
    #: to, and what was rebuilt from the stored files); None when nothing was.
    repaired: str | None = None


class IndexState(msgspec.Struct, frozen=True, kw_only=True):
    """One configured index as `status` shows it (the URL without credentials)."""

    name: str
    url: str
    #: "unknown" (not asked since start), "online", or "offline" (marked by the circuit breaker).
    state: str
    reason: str | None = None
    offline_since: float | None = None


class StopParams(msgspec.Struct, frozen=True, kw_only=True):
    """`stop`: drain in-flight work for at most `drain_timeout` seconds (None: daemon default)."""

    drain_timeout: float | None = None


class StopResult(msgspec.Struct, frozen=True):
    pid: int
