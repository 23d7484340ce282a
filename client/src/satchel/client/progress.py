"""Progress display for long requests: a self-rewriting bar on a terminal, plain lines otherwise.

The daemon streams `Progress(done, total, unit, message)` events; how to show them is the
client's business. On a terminal one line is rewritten in place (at most every `REDRAW` seconds,
so a fast download is not slowed by the terminal); when stderr is a pipe or a log file, a plain
line is printed only when the message changes, so logs stay readable.
"""

from __future__ import annotations

import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:  # `typing` costs ~2 ms at start-up; install/prefetch load this module
    from typing import Any, TextIO

__all__ = ["ProgressDisplay", "call_with_progress", "format_bytes"]

#: Seconds between redraws of the terminal bar.
REDRAW = 0.1


def format_bytes(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} GiB"  # pragma: no cover - loop always returns


class ProgressDisplay:
    """Callable for `Session.call(on_progress=...)`; `finish()` clears the bar."""

    def __init__(self, label: str, stream: TextIO | None = None) -> None:
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty()
        self.started = time.monotonic()
        self._drawn = 0.0
        self._shown = False
        self._last_message = ""

    def __call__(self, event: dict[str, Any]) -> None:
        done = int(event.get("done") or 0)
        total = event.get("total")
        unit = str(event.get("unit") or "")
        message = str(event.get("message") or "")
        if not self.tty:
            if message and message != self._last_message:
                self.stream.write(f"{self.label}: {message}\n")
                self.stream.flush()
                self._last_message = message
            return
        now = time.monotonic()
        if now - self._drawn < REDRAW and (total is None or done < int(total)):
            return
        self._drawn = now
        self.stream.write("\r" + self._line(done, total, unit, message, now) + "\x1b[K")
        self.stream.flush()
        self._shown = True

    def _line(self, done: int, total: Any, unit: str, message: str, now: float) -> str:
        elapsed = max(now - self.started, 1e-6)
        if unit == "B":
            amount = format_bytes(done) + (f"/{format_bytes(int(total))}" if total else "")
            rate = f" {format_bytes(done / elapsed)}/s"
        elif not unit and not total and not done:  # the message says it all ("metadata 3/9")
            return f"{self.label}: {message}"[:200]
        else:
            amount = f"{done}/{total}" if total else str(done)
            rate = ""
        bar = ""
        if total:
            width = 24
            filled = min(width, int(width * done / max(int(total), 1)))
            bar = "[" + "#" * filled + "-" * (width - filled) + "] "
        return f"{self.label}: {bar}{amount}{rate} {message}"[:200]

    def finish(self) -> None:
        if self._shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._shown = False


def call_with_progress(args: Any, label: str, method: str, params: dict[str, Any]) -> Any:
    """Run *method* on the daemon (honouring the global options in *args*) while its progress
    events are shown under *label*; the bar is cleared whatever the outcome."""
    from satchel.client.session import Session

    progress = ProgressDisplay(label)
    try:
        with Session.for_args(args) as session:
            return session.call(method, params, on_progress=progress)
    finally:
        progress.finish()
