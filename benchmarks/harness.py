"""Timing and isolation primitives of the benchmark harness (used by ``run.py``).

- `execute` times a sequence of commands as whole processes and keeps their output, so a
  failure can be classified: `classify` tells "not implemented yet" (an unknown command or
  method, a module that does not exist yet: the row reads "n/a") from a real failure.
- `tool_env` is the environment every tool runs in: the caller's ``PIP_*``, ``UV_*``,
  ``SATCHEL_*`` and ``XDG_*`` variables dropped, pip's configuration files disabled.
- `SatchelInstance` is one isolated Satchel: its own XDG directories under a short path and a
  ``config.toml`` naming only the loopback index, checked with ``satchel index list``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "COMMAND_TIMEOUT",
    "PY",
    "SATCHEL",
    "Outcome",
    "SatchelInstance",
    "ToolResult",
    "Trial",
    "Unavailable",
    "classify",
    "execute",
    "find_uv",
    "tool_env",
]

PY = sys.executable
SATCHEL = str(Path(PY).parent / "satchel")


def find_uv() -> str:
    """The uv binary itself: a version manager's shim (a shell script) adds its own start-up
    to every uv run, so a shim is resolved through its manager (``pyenv which uv``)."""
    found = shutil.which("uv") or "uv"
    try:
        head = Path(found).read_bytes()[:200]
    except OSError:
        return found
    if head.startswith(b"#!") and b"pyenv" in head:
        proc = subprocess.run(["pyenv", "which", "uv"], capture_output=True, text=True, check=False)
        if proc.returncode == 0 and proc.stdout.strip():
            return proc.stdout.strip()
    return found


COMMAND_TIMEOUT = 900.0
"""Seconds before one command counts as failed: pip installing the large set takes ~10 s here."""

_NOT_IMPLEMENTED = re.compile(
    r"unknown (command|method)|invalid choice|not implemented|unrecognized arguments"
    r"|No module named '?satchel\.",
    re.IGNORECASE,
)


class Unavailable(Exception):
    """A contender cannot run this trial (untimed set-up failed); carries status and detail."""

    def __init__(self, status: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


@dataclass
class Trial:
    """Commands to time as one unit, plus untimed clean-up (never deleting trees).

    ``counted``: (the static index's simple URL, a tag) whose request counters the trial moves;
    the harness records what they moved by, read before the commands and after the clean-up (a
    daemon's late background fetches count too).
    """

    commands: list[list[str]]
    env: dict[str, str]
    cleanup: Callable[[], None] | None = None
    counted: tuple[str, str] | None = None


@dataclass
class Outcome:
    ok: bool
    seconds: float
    output: str


@dataclass
class ToolResult:
    status: str = "ok"  # ok | n/a | failed | skipped
    times: list[float] = field(default_factory=list)
    detail: str = ""
    counts: list[dict[str, int]] = field(default_factory=list)  # index requests per timed trial

    @property
    def median(self) -> float | None:
        return statistics.median(self.times) if self.status == "ok" and self.times else None


def classify(output: str) -> tuple[str, str]:
    """Status and a one-line detail for a failed command."""
    lines = [ln.strip() for ln in output.strip().splitlines() if ln.strip()]
    hit = next((ln for ln in lines if _NOT_IMPLEMENTED.search(ln)), None)
    if hit is not None:
        return "n/a", f"not implemented: {hit[:160]}"
    errors = [ln for ln in lines if "error" in ln.lower()]
    return "failed", ((errors or lines)[-1][:200] if lines else "no output")


def execute(commands: list[list[str]], env: dict[str, str], cwd: Path) -> Outcome:
    """Run commands in sequence, timing the whole; stop at the first failure."""
    chunks: list[str] = []
    start = time.perf_counter()
    for cmd in commands:
        try:
            proc = subprocess.run(
                cmd,
                env=env,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                errors="replace",
                timeout=COMMAND_TIMEOUT,
                check=False,
            )
        except FileNotFoundError as exc:
            return Outcome(False, 0.0, f"not implemented: {exc.filename} not found")
        except subprocess.TimeoutExpired:
            return Outcome(False, 0.0, f"timed out after {COMMAND_TIMEOUT:.0f} s: {cmd[:3]}")
        chunks.append(proc.stdout + proc.stderr)
        if proc.returncode != 0:
            return Outcome(False, time.perf_counter() - start, "\n".join(chunks))
    return Outcome(True, time.perf_counter() - start, "\n".join(chunks))


def tool_env() -> dict[str, str]:
    """The environment every tool runs in: no user configuration of pip, uv or Satchel."""
    drop = ("PIP_", "UV_", "SATCHEL_", "XDG_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop) and k != "VIRTUAL_ENV"}
    env.update(
        PIP_CONFIG_FILE=os.devnull,
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PIP_NO_INPUT="1",
        UV_PYTHON_DOWNLOADS="never",
        UV_NO_PROGRESS="1",
    )
    return env


class SatchelInstance:
    """One isolated Satchel (its own runtime, cache, config, state and data directories)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.env = tool_env()
        for var, sub in (
            ("XDG_RUNTIME_DIR", "r"),
            ("XDG_CACHE_HOME", "c"),
            ("XDG_CONFIG_HOME", "f"),
            ("XDG_STATE_HOME", "s"),
            ("XDG_DATA_HOME", "d"),
        ):
            path = root / sub
            path.mkdir(parents=True, mode=0o700, exist_ok=True)
            self.env[var] = str(path)
        self.pid: int | None = None

    def cmd(self, *args: str) -> list[str]:
        return [SATCHEL, *args]

    def run(self, *args: str) -> Outcome:
        return execute([self.cmd(*args)], self.env, self.root)

    def write_config(self, index_url: str) -> None:
        """``config.toml`` in the documented format (``satchel.daemon.settings.config``), before
        start.

        Written directly rather than with `satchel index add`: on an empty configuration the
        daemon first adopts the user's pip/uv indexes (and pip's built-in default) and writes
        them in ahead of the added one, so under first-index every project would come from
        the user's index instead of the loopback one. ``local-index-port = 0`` gives each
        daemon an ephemeral port, so the benchmark's daemons (and the user's, on the fixed
        default port) never fight over one.
        """
        text = (
            f'[[index]]\nname = "bench"\nurl = "{index_url}"\n\n[settings]\nlocal-index-port = 0\n'
        )
        config = Path(self.env["XDG_CONFIG_HOME"]) / "satchel" / "config.toml"
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(text)

    def start(self, index_url: str) -> None:
        """Configure the loopback index, autostart the daemon (untimed), check its indexes.

        Raises Unavailable if the daemon does not answer, or lists any index but ours (then
        the figures would not be about the loopback index at all).
        """
        self.write_config(index_url)
        out = self.run("ping")
        if not out.ok:
            self.stop()
            raise Unavailable(*classify(out.output))
        pong = re.search(r"\(pid (\d+)\)", out.output)
        self.pid = self.daemon_pid() or (int(pong.group(1)) if pong else None)
        listed = subprocess.run(
            self.cmd("index", "list", "--json"),
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if listed.returncode != 0:  # no `index list` yet: config.toml is all we can go by
            return
        try:
            urls = [i.get("url") for i in json.loads(listed.stdout).get("indexes", [])]
        except (ValueError, AttributeError):
            return
        if urls != [index_url]:
            self.stop()
            raise Unavailable("failed", f"index isolation: the daemon lists {len(urls)} indexes")

    def daemon_pid(self) -> int | None:
        proc = subprocess.run(
            self.cmd("--no-autostart", "status", "--json"),
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if proc.returncode != 0 or "{" not in proc.stdout:
            return None
        try:  # tolerate a notice printed before the document (e.g. the previous exit)
            doc, _end = json.JSONDecoder().raw_decode(proc.stdout[proc.stdout.index("{") :])
        except ValueError:
            return None
        return _find_pid(doc)

    def peak_rss_kib(self) -> int | None:
        """VmHWM (peak resident set) of the daemon, from /proc."""
        pid = self.daemon_pid() or self.pid
        if pid is None:
            return None
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        except OSError:
            return None
        return None

    def stop(self) -> None:
        """`satchel stop`; if the daemon we started is still alive after 5 s, SIGTERM its pid."""
        pid = self.pid or self.daemon_pid()
        self.run("--no-autostart", "stop")
        if pid is None:
            return
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
            time.sleep(0.05)
        if Path(f"/proc/{pid}").exists():
            os.kill(pid, signal.SIGTERM)


def _find_pid(value: Any) -> int | None:
    """The daemon pid in `satchel status --json`, wherever the schema nests it."""
    if isinstance(value, dict):
        if isinstance(value.get("pid"), int):
            return int(value["pid"])
        for v in value.values():
            found = _find_pid(v)
            if found is not None:
                return found
    return None
