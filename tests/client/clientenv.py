"""Shared helpers for the client tests: a private environment and the real `satchel` script.

Each test gets its own locations (`tests.support.daemon.isolated_env`), so the daemons it starts
(through the client's autostart, exactly as a user would) are private to it; `ClientEnv.cleanup`
stops whatever daemon is left and kills, by pid, any daemon this environment saw.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.support.daemon import isolated_env, socket_path, wait_exited

SATCHEL = str(Path(sys.executable).parent / "satchel")
SATCHELD = str(Path(sys.executable).parent / "satcheld")


class ClientEnv:
    """Environment variables for a private daemon, plus the commands to use it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.env = isolated_env(root)
        self.socket = Path(socket_path(self.env))
        self.state_dir = Path(self.env["XDG_STATE_HOME"]) / "satchel"
        self.log_file = self.state_dir / "satcheld.log"
        self.pids: set[int] = set()

    def satchel(
        self, *args: str, timeout: float = 30, extra_env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [SATCHEL, *args],
            env={**self.env, **(extra_env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        self._remember_pid(result.stdout)
        return result

    def spawn(self, *args: str) -> subprocess.Popen[str]:
        """Start `satchel *args` without waiting, its output captured (concurrency and kill
        tests: `communicate()` gives it)."""
        return subprocess.Popen(
            [SATCHEL, *args],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def _remember_pid(self, stdout: str) -> None:
        for word in stdout.replace(")", " ").split():
            if word.isdigit() and int(word) > 1:
                self.pids.add(int(word))

    def daemon_pid(self) -> int:
        """The running daemon's pid, asked without autostarting one."""
        result = self.satchel("--no-autostart", "ping")
        assert result.returncode == 0, result.stderr
        return int(result.stdout.split("(pid ")[1].split(")")[0])

    def cleanup(self) -> None:
        """Stop the daemon if one runs; kill every daemon pid this environment saw."""
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.satchel("stop", timeout=15)
        for pid in self.pids:
            if is_satcheld(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def is_satcheld(pid: int) -> bool:
    """Whether `pid` is a live satcheld (not a reused pid of something else)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return b"satchel" in cmdline and stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_gone(pid: int, seconds: float = 10.0) -> bool:
    """Whether satcheld *pid* is gone within *seconds*, its socket and locks released.

    Gone means exited with every descriptor closed (`tests.support.daemon.wait_exited`), not
    merely no longer looking like satcheld in /proc: a dying process's cmdline empties before
    the kernel closes its listening socket, and a client connecting in between gets ECONNRESET.
    A pid now held by another program counts as gone (that satcheld exited long ago).
    """
    if _other_program(pid):
        return True
    return wait_exited(pid, seconds)


def _other_program(pid: int) -> bool:
    """Whether *pid* is a live process that is not satcheld (an empty cmdline may be a dying
    satcheld, so it does not count)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return bool(cmdline) and b"satchel" not in cmdline


def satcheld_processes(state_dir: Path) -> list[int]:
    """Pids of live satcheld processes whose environment points at `state_dir`'s parent."""
    marker = f"XDG_STATE_HOME={state_dir.parent}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if marker in environ.split(b"\0") and is_satcheld(int(entry.name)):
            pids.append(int(entry.name))
    return pids


def importtime(
    env: ClientEnv, *args: str, timeout: float = 60
) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run ``satchel *args`` under ``python -X importtime``: the result, and every module the
    client process imported."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", SATCHEL, *args],
        env=env.env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    modules = {
        line.rsplit("|", 1)[1].strip()
        for line in result.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    return result, modules
