"""Exit records: why the previous daemon stopped, told once to the next `satchel status`.

Two files in the state dir, both written atomically (`fsutil.atomic_write`):

``running.json``
    written at start-up (pid, start time), removed after a clean exit has been recorded. If the
    next daemon finds it, the previous one never got to record its exit: it was killed with
    SIGKILL, crashed, or lost power. That is recorded as ``crashed``.
``last-exit.json``
    the previous run's `ExitRecord`. Loaded (and deleted) at start-up and kept in memory until
    the first ``status`` shows it; a record is therefore reported exactly once.

Both are only touched while holding the instance lock, so a second daemon refused at start can
never clobber the running daemon's records.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from satchel.daemon.storage.fsutil import atomic_write

__all__ = ["CRASHED", "ExitReason", "ExitRecord", "ExitRecorder"]

log = logging.getLogger(__name__)

RUNNING_NAME = "running.json"
LAST_EXIT_NAME = "last-exit.json"

#: The reasons a daemon can stop. Plain strings on disk and on the wire.
ExitReason = str
SIGTERM = "sigterm"
SIGINT = "sigint"
STOP_REQUEST = "stop-request"
IDLE_TIMEOUT = "idle-timeout"
STARTUP_ERROR = "startup-error"
FATAL_ERROR = "fatal-error"
CRASHED = "crashed"


@dataclass(frozen=True, slots=True)
class ExitRecord:
    """How one daemon run ended."""

    reason: ExitReason
    message: str
    pid: int
    started_at: float | None
    exited_at: float
    #: The process exit status, None when unknown (crashes).
    exit_code: int | None = None

    @property
    def clean(self) -> bool:
        return self.reason != CRASHED

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExitRecord:
        started = data.get("started_at")
        return cls(
            reason=str(data["reason"]),
            message=str(data.get("message", "")),
            pid=int(data["pid"]),
            started_at=float(started) if started is not None else None,
            exited_at=float(data["exited_at"]),
            exit_code=int(data["exit_code"]) if data.get("exit_code") is not None else None,
        )


class ExitRecorder:
    """Reads the previous run's record at start, writes this run's at exit."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.running_file = state_dir / RUNNING_NAME
        self.last_exit_file = state_dir / LAST_EXIT_NAME
        self._pending: ExitRecord | None = None
        self._started_at: float | None = None

    def start(self, started_at: float) -> None:
        """Pick up the previous run's ending (recording a crash if it left none), mark us running.

        Call with the instance lock held.
        """
        self._started_at = started_at
        previous = _read_json(self.running_file)
        if previous is not None:
            old_pid = int(previous.get("pid", 0))
            started = previous.get("started_at")
            record = ExitRecord(
                reason=CRASHED,
                message="crashed (no clean exit recorded)",
                pid=old_pid,
                started_at=float(started) if isinstance(started, int | float) else None,
                exited_at=time.time(),
            )
            log.warning("previous satcheld (pid %d) did not exit cleanly", old_pid)
            self._write(record)
        data = _read_json(self.last_exit_file)
        if data is not None:
            try:
                self._pending = ExitRecord.from_dict(data)
            except (KeyError, TypeError, ValueError):
                log.warning("ignoring unreadable exit record %s", self.last_exit_file)
        atomic_write(
            self.running_file,
            json.dumps({"pid": os.getpid(), "started_at": started_at}).encode(),
            mode=0o600,
        )

    def take_previous(self) -> ExitRecord | None:
        """The previous run's record, once: later calls return None (and the file is gone)."""
        record, self._pending = self._pending, None
        if record is not None:
            with contextlib.suppress(FileNotFoundError):
                self.last_exit_file.unlink()
        return record

    def record_exit(self, reason: ExitReason, message: str = "", exit_code: int = 0) -> ExitRecord:
        """Write this run's record, then drop the running marker (in that order: a crash in
        between still leaves a record behind, never neither)."""
        record = ExitRecord(
            reason=reason,
            message=message or reason,
            pid=os.getpid(),
            started_at=self._started_at,
            exited_at=time.time(),
            exit_code=exit_code,
        )
        try:
            self._write(record)
            with contextlib.suppress(FileNotFoundError):
                self.running_file.unlink()
        except OSError as exc:
            log.error("cannot record exit in %s: %s", self.state_dir, exc)  # noqa: TRY400
        return record

    def _write(self, record: ExitRecord) -> None:
        atomic_write(self.last_exit_file, json.dumps(record.to_dict()).encode(), mode=0o600)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable %s: %s", path, exc)
        return None
    return data if isinstance(data, dict) else None
