"""Run the real `satcheld` in tests, in an environment of its own.

Stable API (used by every area's tests; change only by adding):

`isolated_env(tmp_path) -> dict[str, str]`
    A copy of the environment where every Satchel location points into the test's directories:
    ``HOME``, ``XDG_CACHE_HOME``, ``XDG_CONFIG_HOME``, ``XDG_STATE_HOME`` under *tmp_path*, and
    ``XDG_RUNTIME_DIR`` in a SHORT private directory under /tmp (a Unix socket path must fit in
    ~107 bytes, and pytest's tmp_path is long). ``SATCHEL_TEST_METHODS=1`` enables the test-only
    ``debug.*`` methods. Variables that would make the daemon talk to a service manager or adopt
    the machine's index configuration (``NOTIFY_SOCKET``, ``LISTEN_*``, ``SATCHEL_SOCKET``,
    ``PIP_*INDEX*``, ``UV_*INDEX*``, ...) are removed. ``PATH`` starts with this interpreter's bin
    directory, so ``satchel``/``satcheld`` of the checkout are found first.

`socket_path(env) -> str`
    Where a daemon started with *env* listens.

`pip_env(env) -> dict[str, str]`
    *env* for a pip subprocess that asks only the index its command line names: no ``PIP_*``
    variable, and ``PIP_CONFIG_FILE`` set to os.devnull, which makes pip skip every
    configuration file, the machine's global ones included (one may name the public index).

`pip_download(env, index_url, project, dest, *, timeout, retries=None)`
    ``pip download --no-deps PROJECT`` from *index_url* alone into *dest*, with `pip_env`
    (no cache, no version check; ``--retries`` when given); the completed process, never raised.

`DaemonProcess(env, *args, socket=None, command=None)` (context manager)
    Starts ``python -m satchel.daemon.process.main *args`` (or ``*command, *args``) with *env*, its
    output
    going to the file ``.stderr_path``; `start()` (called by ``__enter__``)
    returns once the socket answers a ping (or raises with the daemon's stderr). Exposes
    ``.pid``, ``.env``, ``.socket``, ``.returncode``, ``.stderr()`` (everything it logged so far),
    ``.stop(timeout)`` (SIGTERM, wait, return the exit status), ``.kill()`` (SIGKILL, wait),
    ``.wait(timeout)``. Leaving the block stops a daemon still running (SIGTERM, then SIGKILL).

`call(socket_path, method, params=None, timeout=30.0) -> Any`
    One blocking request on a fresh connection; returns the result value (a dict for struct
    results), raises `CallError(code, message, details)` for an `Error` answer.

`Client(socket_path)`
    A blocking connection for tests that need several requests in flight, `Cancel`, or raw
    bytes: ``hello()``, ``request(method, params) -> id``, ``cancel(id)``, ``next_event(timeout)``,
    ``wait_terminal(id, timeout)``, ``next_progress(id)``, ``send_raw(bytes)``, ``close()``.

`wait_exited(pid, timeout=10.0) -> bool`
    Waits until process *pid* has exited *and released its descriptors* (its socket, its locks);
    False if it still runs after *timeout*. A pid that no longer exists has exited.

`kill_and_wait(pid, timeout=10.0)`
    SIGKILL *pid* and return once it has released its descriptors (asserts it did in time).

`in_process_app(directory) -> satchel.daemon.process.app.App`
    An `App` whose locations all live under *directory*, for trio tests that run daemon code
    (handlers, the server) inside the test process.

Protocol messages are plain dicts (the protocol's `DictCodec`), so these helpers do not depend on
the client package or on msgspec.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from satchel.protocol import CLOSED, NEED_DATA, Connection
from satchel.protocol.buildid import build_id
from satchel.protocol.codec import DictCodec
from satchel.protocol.locations import UnixAddress
from satchel.protocol.version import PROTOCOL_MAJOR, PROTOCOL_MINOR, __version__

if TYPE_CHECKING:
    from satchel.daemon.services.daemon import App

__all__ = [
    "HANG_GUARD",
    "CallError",
    "Client",
    "DaemonProcess",
    "call",
    "in_process_app",
    "isolated_env",
    "kill_and_wait",
    "socket_path",
    "wait_exited",
]

#: How long a blocking read waits for the daemon by default: a hang guard, not a measurement
#: (a loaded 2-core CI machine can stall a process for seconds; no answer takes this long).
HANG_GUARD = 30.0

#: Environment variables never inherited by a test daemon.
_DROPPED = (
    "NOTIFY_SOCKET",
    "LISTEN_PID",
    "LISTEN_FDS",
    "LISTEN_FDNAMES",
    "JOURNAL_STREAM",
    "SATCHEL_SOCKET",
    "SATCHEL_LOG_LEVEL",
    "SATCHEL_NO_AUTOSTART",
    "PIP_INDEX_URL",
    "PIP_EXTRA_INDEX_URL",
    "PIP_FIND_LINKS",
    "PIP_CONFIG_FILE",
    "PIP_NO_INDEX",
    "UV_DEFAULT_INDEX",
    "UV_INDEX",
    "UV_INDEX_URL",
    "UV_EXTRA_INDEX_URL",
    "UV_FIND_LINKS",
    "UV_CONFIG_FILE",
)

_short_dirs: list[str] = []


@atexit.register
def _remove_short_dirs() -> None:
    for path in _short_dirs:
        if os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                os.unlink(path)


def isolated_env(tmp_path: Path) -> dict[str, str]:
    """An environment whose Satchel locations all live in this test's directories."""
    env = {k: v for k, v in os.environ.items() if k not in _DROPPED}
    runtime = tempfile.mkdtemp(prefix="st-", dir="/tmp")
    _short_dirs.append(runtime)
    os.chmod(runtime, 0o700)
    home = tmp_path / "home"
    for sub in ("home", "cache", "config", "state"):
        (tmp_path / sub).mkdir(parents=True, exist_ok=True)
    bindir = str(Path(sys.executable).parent)
    env.update(
        HOME=str(home),
        XDG_RUNTIME_DIR=runtime,
        XDG_CACHE_HOME=str(tmp_path / "cache"),
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        XDG_STATE_HOME=str(tmp_path / "state"),
        SATCHEL_TEST_METHODS="1",
        # The local index binds an ephemeral port: never the per-user port of a real daemon.
        SATCHEL_LOCAL_INDEX_PORT="0",
        PATH=bindir + os.pathsep + env.get("PATH", ""),
    )
    return env


def pip_env(env: dict[str, str]) -> dict[str, str]:
    """*env* for a pip that reads no configuration: only its command line's index is asked."""
    clean = {k: v for k, v in env.items() if not k.startswith("PIP_")}
    return {**clean, "PIP_CONFIG_FILE": os.devnull}


def pip_download(
    env: dict[str, str],
    index_url: str,
    project: str,
    dest: Path,
    *,
    timeout: float,
    retries: int | None = None,
) -> subprocess.CompletedProcess[str]:
    """pip downloads *project* (no dependencies) from *index_url* alone into *dest*."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-cache-dir"]
    command += ["--disable-pip-version-check", "--index-url", index_url, "--dest", str(dest)]
    if retries is not None:
        command += ["--retries", str(retries)]
    return subprocess.run(
        [*command, project],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=pip_env(env),  # never the machine's pip.conf and its indexes
    )


def socket_path(env: dict[str, str]) -> str:
    """The socket a daemon started with *env* (and no --socket) listens on."""
    if env.get("SATCHEL_SOCKET"):
        return env["SATCHEL_SOCKET"]
    return os.path.join(env["XDG_RUNTIME_DIR"], "satchel", "satchel.sock")


class CallError(Exception):
    """The daemon answered a request with an `Error`."""

    def __init__(self, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.details = details or {}


class Client:
    """A blocking protocol connection to a daemon (dict messages)."""

    def __init__(self, path: str, timeout: float = HANG_GUARD) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        with UnixAddress(path) as address:
            self.sock.connect(address)
        self.conn = Connection("client", DictCodec())
        self._next_id = 1
        self.welcome: dict[str, Any] | None = None
        #: Events read by `wait_terminal` that belonged to other requests.
        self.others: list[dict[str, Any]] = []

    def hello(self, major: int = PROTOCOL_MAJOR, minor: int = PROTOCOL_MINOR) -> dict[str, Any]:
        """Say Hello and return the daemon's answer (Welcome or Incompatible)."""
        self.send(
            {
                "type": "hello",
                "major": major,
                "minor": minor,
                "client_version": __version__,
                "build_id": build_id(),
                "features": [],
            }
        )
        answer: dict[str, Any] = self.next_event()
        if answer.get("type") == "welcome":
            self.welcome = answer
        return answer

    def send(self, message: dict[str, Any]) -> None:
        self.sock.sendall(self.conn.send(message))

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def request(self, method: str, params: dict[str, Any] | None = None) -> int:
        rid = self._next_id
        self._next_id += 1
        self.send({"type": "request", "id": rid, "method": method, "params": params or {}})
        return rid

    def cancel(self, rid: int) -> None:
        self.send({"type": "cancel", "id": rid})

    def next_event(self, timeout: float | None = None) -> Any:
        """The next message from the daemon, or `CLOSED`; socket.timeout when none arrives."""
        if timeout is not None:
            self.sock.settimeout(timeout)
        while True:
            event = self.conn.next_event()
            if event is not NEED_DATA:
                return event
            self.conn.receive_data(self.sock.recv(65536))

    def next_progress(self, rid: int) -> dict[str, Any]:
        """Read events until request *rid*'s next Progress (it runs in the daemon now; others'
        events are collected in `.others`). `debug.sleep` with a `step` reports its k-th step
        after k steps of the daemon's own clock: a test's way to know time passed there."""
        while True:
            event = self.next_event()
            if event is CLOSED:
                raise ConnectionError(f"connection closed before request {rid} reported")
            self.others.append(event)
            if event.get("id") == rid:
                assert event["type"] == "progress", event
                return event  # type: ignore[no-any-return]

    def wait_terminal(self, rid: int, timeout: float = HANG_GUARD) -> dict[str, Any]:
        """Read events until request *rid*'s Result or Error (other requests' events are
        collected in `.others`; a terminal already collected there is returned at once)."""
        for index, event in enumerate(self.others):
            if event.get("id") == rid and event["type"] in ("result", "error"):
                return self.others.pop(index)
        deadline = time.monotonic() + timeout
        while True:
            event = self.next_event(max(0.01, deadline - time.monotonic()))
            if event is CLOSED:
                raise ConnectionError(f"connection closed before request {rid} was answered")
            if event.get("id") == rid and event["type"] in ("result", "error"):
                return event  # type: ignore[no-any-return]
            self.others.append(event)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def call(
    path: str, method: str, params: dict[str, Any] | None = None, timeout: float = HANG_GUARD
) -> Any:
    """One request on a fresh connection: the result value, or `CallError`."""
    with Client(path, timeout) as client:
        answer = client.hello()
        if answer["type"] != "welcome":
            raise CallError("incompatible", str(answer))
        rid = client.request(method, params)
        reply = client.wait_terminal(rid, timeout)
    if reply["type"] == "error":
        raise CallError(reply["code"], reply["message"], reply.get("details"))
    return reply["value"]


class DaemonProcess:
    """A real `satcheld` subprocess (see the module docstring)."""

    def __init__(
        self,
        env: dict[str, str],
        *args: str,
        socket: str | None = None,
        start_timeout: float = 60.0,
        command: list[str] | None = None,
    ) -> None:
        self.env = env
        self.command = command or [sys.executable, "-m", "satchel.daemon.process.main"]
        self.args = list(args)
        self.socket = socket or socket_path(env)
        if socket is not None and "--socket" not in self.args:
            self.args += ["--socket", socket]
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        fd, self._stderr_path = tempfile.mkstemp(prefix="satcheld-", suffix=".log")
        os.close(fd)
        _short_dirs.append(self._stderr_path)  # kept after exit for assertions; removed atexit

    @property
    def pid(self) -> int:
        assert self.proc is not None, "daemon not started"
        return self.proc.pid

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    @property
    def stderr_path(self) -> str:
        return self._stderr_path

    def stderr(self) -> str:
        return Path(self._stderr_path).read_text(errors="replace")

    def spawn(self) -> DaemonProcess:
        """Start the process without waiting for it to serve."""
        with open(self._stderr_path, "ab") as err:
            self.proc = subprocess.Popen(
                [*self.command, *self.args],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=err,
            )
        return self

    def start(self) -> DaemonProcess:
        """Start and wait until the socket answers a ping."""
        self.spawn()
        self.wait_ready()
        return self

    def wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        while True:
            code = self.returncode
            if code is not None:
                raise RuntimeError(f"satcheld exited with {code} before serving:\n{self.stderr()}")
            try:
                call(self.socket, "ping", timeout=2.0)
                return
            except (OSError, CallError):
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"satcheld did not answer within {self.start_timeout} s:\n{self.stderr()}"
                    ) from None
                time.sleep(0.02)

    def wait(self, timeout: float = 10.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM and wait; returns the exit status."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> int:
        """SIGKILL and wait (a crash, as far as the daemon's records are concerned)."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.kill()
        return self.proc.wait(10)

    def __enter__(self) -> DaemonProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.stop(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


def wait_exited(pid: int, timeout: float = 10.0) -> bool:
    """True once process *pid* has exited and the kernel has closed its files; False on timeout.

    Waits on a pidfd, which becomes readable only at exit notification, after every descriptor
    is closed. Polling /proc/<pid> is not enough: its cmdline empties when the dying process
    drops its memory, *before* its files are closed, so a client connecting in between reaches
    a listening socket about to vanish (ECONNRESET).
    """
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        return _exited(pidfd, timeout)
    finally:
        os.close(pidfd)


def kill_and_wait(pid: int, timeout: float = 10.0) -> None:
    """SIGKILL *pid* and return once it has released its descriptors (socket, locks).

    The pidfd is opened before the signal, so the wait is for this very process even if its pid
    were reused at once.
    """
    pidfd = os.pidfd_open(pid)
    try:
        os.kill(pid, signal.SIGKILL)
        assert _exited(pidfd, timeout), f"process {pid} survived SIGKILL for {timeout} s"
    finally:
        os.close(pidfd)


def _exited(pidfd: int, timeout: float) -> bool:
    ready, _, _ = select.select([pidfd], [], [], timeout)
    return bool(ready)


def in_process_app(directory: Path, idle_timeout: float | None = None) -> App:
    """An `App` for in-process tests; nothing is created on disk until code asks for it."""
    from satchel.daemon.services.daemon import App
    from satchel.daemon.services.paths import Paths
    from satchel.daemon.services.state import ExitRecorder

    paths = Paths(
        runtime_dir=directory / "run",
        socket=directory / "run" / "satchel.sock",
        socket_is_default=False,
        cache_dir=directory / "cache",
        config_dir=directory / "config",
        state_dir=directory / "state",
        log_dir=directory / "log",
    )
    return App(
        paths,
        activation="manual",
        idle_timeout=idle_timeout,
        version="0.0.0",
        build_id="0.0.0+test",
        exit_recorder=ExitRecorder(paths.state_dir),
    )
