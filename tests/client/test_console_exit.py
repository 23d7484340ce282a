"""How the `satchel` console script ends: `main`, then `os._exit` without the interpreter's
teardown, except when something still needs the ordinary exit (`satchel.client.main.console`).

Each test runs a real interpreter that calls `console()` the way the console script does, after
setting up what the ordinary exit would take care of: an exit handler, a running thread, an
object whose finaliser prints.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from satchel.protocol import errors


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    return {
        "PATH": "/usr/bin:/bin",
        "XDG_RUNTIME_DIR": str(runtime),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
    }


def run_console(env: dict[str, str], setup: str, *argv: str) -> subprocess.CompletedProcess[str]:
    """`setup` (Python source), then `console()` with `argv` as the command line."""
    source = (
        f"import sys\n{setup}\nsys.argv = ['satchel', *{list(argv)!r}]\n"
        "from satchel.client.main import console\nconsole()\n"
    )
    return subprocess.run(
        [sys.executable, "-c", source],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


TEARDOWN_NOTE = """
class Noisy:
    def __del__(self):
        print("teardown ran", flush=True)

kept = Noisy()
"""


def test_the_teardown_is_skipped_but_the_output_is_complete(env: dict[str, str]) -> None:
    result = run_console(env, TEARDOWN_NOTE, "--help")
    assert result.returncode == errors.EXIT_OK, result.stderr
    assert result.stdout.startswith("usage: satchel")
    assert result.stdout.rstrip().endswith("Run `satchel COMMAND --help` for a command's options.")
    assert "teardown ran" not in result.stdout  # no module teardown: `os._exit`


def test_the_exit_status_is_mains(env: dict[str, str]) -> None:
    usage = run_console(env, TEARDOWN_NOTE, "no-such-command")
    assert usage.returncode == errors.EXIT_USAGE
    assert "unknown command 'no-such-command'" in usage.stderr
    missing = run_console(env, TEARDOWN_NOTE, "--no-autostart", "ping")
    assert missing.returncode == errors.EXIT_UNAVAILABLE
    assert "satcheld is not running" in missing.stderr
    assert "teardown ran" not in usage.stdout + missing.stdout


def test_exit_handlers_still_run_after_the_output(env: dict[str, str]) -> None:
    setup = "import atexit\natexit.register(print, 'exit handler ran')"
    result = run_console(env, setup, "--help")
    assert result.returncode == errors.EXIT_OK, result.stderr
    assert result.stdout.rstrip().endswith("exit handler ran")
    assert result.stdout.count("exit handler ran") == 1


def test_a_running_thread_takes_the_ordinary_exit_which_waits_for_it(
    env: dict[str, str],
) -> None:
    # No clock: the thread prints only once the main thread has stopped, which the ordinary
    # exit does before it joins the other threads; a fast exit never lets it print.
    setup = (
        "import threading\n"
        "def late():\n"
        "    threading.main_thread().join()\n"
        "    print('thread finished', flush=True)\n"
        "threading.Thread(target=late).start()\n"
    )
    result = run_console(env, setup, "--help")
    assert result.returncode == errors.EXIT_OK, result.stderr
    assert "thread finished" in result.stdout
