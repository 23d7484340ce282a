"""Human-readable rendering of daemon answers (`satchel status`), stdlib only.

The renderer is deliberately schema-tolerant: it knows the order in which a person wants to read
the well-known `status` fields and how to show durations, and prints any field it does not know
generically. A newer daemon that adds a field (schema evolution only ever adds) is therefore
shown in full by an older client instead of being hidden or crashing it.
"""

from __future__ import annotations

import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

#: Well-known `status` fields (`satchel.protocol.methods.core.StatusResult`), in reading order;
#: anything else follows alphabetically.
STATUS_ORDER = (
    "pid",
    "version",
    "build_id",
    "protocol",
    "activation",
    "started_at",
    "uptime",
    "idle_timeout",
    "socket",
    "cache_dir",
    "config_dir",
    "state_dir",
    "log_file",
    "jobs",
    "previous_exit",
    "config_error",
    "services",
    "repaired",
    "indexes",
    "index_notes",
    "local_index",
)


def format_time(unix: float) -> str:
    """A Unix time as local `YYYY-MM-DD HH:MM:SS`."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(unix))


def format_duration(seconds: float) -> str:
    """`3725.2` -> `1h 2m 5s`; sub-minute values keep one decimal."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    total = int(seconds)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "m"), (secs, "s")]
    shown = [f"{n}{unit}" for n, unit in parts if n]
    return " ".join(shown[:3])


def format_status(status: Any) -> str:
    """Render a `status` result as aligned `key: value` lines."""
    if not isinstance(status, dict):
        return format_value(status)
    keys = [k for k in STATUS_ORDER if k in status]
    keys += sorted(k for k in status if k not in STATUS_ORDER)
    width = max((len(_label(k)) for k in keys), default=0) + 1
    lines = []
    for key in keys:
        text = _status_field(key, status[key], width + 3)
        if key == "indexes" and not status[key] and status.get("index_notes"):
            text = "none (see index notes)"  # not "starting up": there is no index set
        elif (
            key == "indexes"
            and not status[key]
            and status.get("services", "starting") != "starting"
        ):
            text = "-"  # not starting up: "services" says why there are none
        lines.append(f"{(_label(key) + ':').ljust(width)} {text}")
    return "\n".join(line.rstrip(" ") for line in "\n".join(lines).split("\n"))


def _status_field(key: str, value: Any, indent: int) -> str:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if key == "uptime" and number:
        return format_duration(float(value))
    if key == "started_at" and number:
        return format_time(float(value))
    if key == "idle_timeout":
        return "never (stays up)" if value is None else f"after {format_duration(float(value))}"
    if key == "log_file" and value is None:
        return "stderr (service manager)"
    if key in ("jobs", "config_error", "repaired") and not value:
        return "none"
    if key == "jobs" and isinstance(value, list):
        return "".join(f"\n{' ' * indent}{format_job(job)}" for job in value)
    if key == "index_notes" and isinstance(value, list):
        return "".join(f"\n{' ' * indent}{note}" for note in value) if value else "none"
    if key == "previous_exit" and isinstance(value, dict):
        return format_exit(value)
    if key == "previous_exit" and value is None:
        return "-"
    if key == "indexes" and isinstance(value, list):
        if not value:
            return "- (starting up)"
        return "".join(f"\n{' ' * indent}{format_index(index)}" for index in value)
    return format_value(value, indent=indent)


def format_index(index: Any) -> str:
    """`internal  http://127.0.0.1:8080/simple/  offline since 09:12:03 (connection refused)`."""
    if not isinstance(index, dict):
        return format_value(index)
    state = str(index.get("state", "unknown"))
    since = index.get("offline_since")
    if state == "offline" and isinstance(since, int | float):
        state += f" since {format_time(float(since))}"
    if index.get("reason"):
        state += f" ({index['reason']})"
    return f"{index.get('name')}  {index.get('url')}  {state}"


def format_job(job: Any) -> str:
    if not isinstance(job, dict):
        return format_value(job)
    text = f"#{job.get('id')} {job.get('method')}"
    if job.get("description"):
        text += f" ({job['description']})"
    started = job.get("started_at")
    if isinstance(started, int | float):
        text += f", running {format_duration(max(0.0, time.time() - float(started)))}"
    return text


def format_exit(record: dict[str, Any]) -> str:
    """`pid 1234 exited at 2026-... (clean, status 0): stopped by request`."""
    at = record.get("at")
    when = f" at {format_time(float(at))}" if isinstance(at, int | float) else ""
    how = "clean" if record.get("clean") else "unclean"
    if record.get("exit_code") is not None:
        how += f", status {record['exit_code']}"
    return f"pid {record.get('pid')} ended{when} ({how}): {record.get('reason')}"


def format_value(value: Any, indent: int = 0) -> str:
    """Scalars inline; dicts and lists as indented lines under their key."""
    pad = " " * indent
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict):
        if not value:
            return "-"
        return "".join(
            f"\n{pad}{_label(str(k))}: {format_value(v, indent + 2)}" for k, v in value.items()
        )
    if isinstance(value, list | tuple):
        if not value:
            return "-"
        if all(not isinstance(v, dict | list | tuple) for v in value):
            return ", ".join(format_value(v) for v in value)
        return "".join(f"\n{pad}- {format_value(v, indent + 2)}" for v in value)
    return str(value)


def _label(key: str) -> str:
    return key.replace("_", " ")
