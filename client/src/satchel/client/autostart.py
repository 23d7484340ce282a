# os.path, not pathlib: this runs in the client, whose imports are budgeted (docs/client.md).
# ruff: noqa: PTH102, PTH103, PTH105, PTH116, PTH118, PTH120
"""Start `satcheld` on demand, exactly once, and report its real error when it cannot start.

The contract with the daemon is its command line: `satcheld --socket PATH --idle-timeout S
--notify-fd N`. With `--notify-fd` the daemon writes `READY` once it serves, or `ERROR <message>`
if start-up fails, as one line on the inherited descriptor N. Waiting on that pipe (instead of
polling the socket) means a failed start shows the daemon's own explanation ("runtime dir is 0755,
must be 0700") rather than a vague timeout, and a successful start costs no sleep-and-retry
latency.

Why an flock: 32 shells running `satchel` at the same moment would otherwise spawn 32 daemons. The
daemon's single-instance lock would make 31 of them exit, but each of those 31 clients would then
see "another instance is running" instead of an answer. Holding an exclusive lock on
`<socket dir>/autostart.lock` while spawning serialises the spawners: the first starts the daemon
and waits for READY; every later one takes the lock, finds the socket answering, and connects. The
daemon's own lock stays the backstop for spawners that bypass this one (a service manager).

Why `posix_spawn`: it starts the detached daemon (new session, stdin `/dev/null`, output appended
to `<state dir>/satcheld.log`) without importing `subprocess` (~7 ms of `re`, `locale`, `enum`),
and it leaves no `Popen` object whose finaliser would complain that the child outlived it. The
spawned daemon is our child until we exit; `_reap` collects it if it dies during start-up.
"""

from __future__ import annotations

import os
import select
import sys
import time

from satchel.client.transport import NotRunning, Stream, check_directory, connect

#: Idle exit for autostarted daemons (seconds): long enough to keep a working session warm, short
#: enough that a daemon nobody asked for does not linger all day. Service-managed daemons run
#: without one.
DEFAULT_IDLE_TIMEOUT = 900

#: How long to wait for READY. A cold daemon imports trio, httpx and friends (~0.3 s here) and
#: opens its stores; a minute-long wait only happens on a badly overloaded machine.
START_TIMEOUT = 30.0

#: The log is appended to by every autostarted daemon; past this size it is rotated once (`.1`)
#: so it cannot grow without bound on a machine that never reboots.
MAX_LOG_BYTES = 8 * 1024 * 1024

#: After a failed start (e.g. another daemon won a race we could not serialise), how long to keep
#: trying to connect to whichever daemon did start.
RACE_GRACE = 2.0

LOCK_NAME = "autostart.lock"
LOG_NAME = "satcheld.log"


class StartFailed(Exception):
    """The daemon could not be started; `message` is its own explanation where it gave one."""

    def __init__(self, message: str, log_path: str) -> None:
        super().__init__(message)
        self.message = message
        self.log_path = log_path


def daemon_command() -> list[str]:
    """The argv prefix that runs the daemon of *this* installation.

    The `satcheld` script next to our interpreter belongs to the same environment (a venv, a uv
    tool environment), so it has the same build; one found on PATH might not. Without a script we
    run the daemon's entry point with the same interpreter.
    """
    script = os.path.join(os.path.dirname(sys.executable), "satcheld")
    if os.access(script, os.X_OK):
        return [script]
    return [
        sys.executable,
        "-c",
        "import sys; from satchel.daemon.process.main import main; sys.exit(main())",
    ]


def start_and_connect(
    socket_path: str,
    state_dir: str,
    *,
    idle_timeout: int = DEFAULT_IDLE_TIMEOUT,
    timeout: float = START_TIMEOUT,
) -> tuple[Stream, bool]:
    """Connect to the daemon at `socket_path`, spawning one first if nobody answers.

    Returns the stream and whether this call spawned the daemon. Safe to call from many
    processes at once: at most one of them spawns.
    """
    sock_dir = os.path.dirname(socket_path) or "."
    _make_private_dirs(sock_dir)
    check_directory(socket_path)  # the lock file below must not be created in a foreign dir
    lock_fd = os.open(
        os.path.join(sock_dir, LOCK_NAME), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600
    )
    try:
        import fcntl

        fcntl.flock(lock_fd, fcntl.LOCK_EX)
        try:
            return connect(socket_path), False
        except NotRunning:
            pass
        try:
            spawn(socket_path, state_dir, idle_timeout=idle_timeout, timeout=timeout)
        except StartFailed as exc:
            # A daemon started outside our lock (a service manager, a client of another
            # installation) may have won the instance lock; its "already running" refusal is
            # not a failure if that daemon answers once it is up.
            stream = _connect_within(socket_path, RACE_GRACE if "already" in exc.message else 0)
            if stream is None:
                raise
            return stream, False
        return connect(socket_path), True
    finally:
        os.close(lock_fd)  # closing the descriptor releases the flock


def _make_private_dirs(path: str) -> None:
    """`os.makedirs(path, 0o700)`, its missing parents 0700 too (makedirs gives them the umask's
    mode): the parent is ``XDG_RUNTIME_DIR``, which clients take only when it is private, as
    the XDG spec says of a missing base directory; made 0755, it hid the socket from the next
    command."""
    parent = os.path.dirname(path)
    if parent and parent != path and not os.path.lexists(parent):
        _make_private_dirs(parent)
    try:  # noqa: SIM105 -- contextlib is an import the client does not otherwise pay for
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass


def spawn(socket_path: str, state_dir: str, *, idle_timeout: int, timeout: float) -> int:
    """Spawn a detached daemon and wait until it is serving; return its pid.

    Raises `StartFailed` with the daemon's own message (`ERROR ...` on the notify pipe), or with
    the tail of its log if it died silently, or after `timeout` seconds without an answer.
    """
    os.makedirs(state_dir, mode=0o700, exist_ok=True)
    log_path = os.path.join(state_dir, LOG_NAME)
    _rotate_log(log_path)
    read_fd, write_fd = os.pipe()
    log_fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    argv = [
        *daemon_command(),
        "--socket",
        socket_path,
        "--idle-timeout",
        str(idle_timeout),
        "--notify-fd",
        str(write_fd),
    ]
    try:
        os.set_inheritable(write_fd, True)
        pid = _spawn_detached(argv, log_fd)
    except OSError as exc:
        os.close(read_fd)
        raise StartFailed(f"cannot run {argv[0]}: {exc}", log_path) from exc
    finally:
        os.close(write_fd)
        os.close(log_fd)
    try:
        line = _read_line(read_fd, time.monotonic() + timeout)
    finally:
        os.close(read_fd)
    if line == "READY":
        return pid
    if line is not None and line.startswith("ERROR"):
        raise StartFailed(line[len("ERROR") :].strip() or "unknown error", log_path)
    if line is None:
        raise StartFailed(
            f"satcheld (pid {pid}) did not report readiness within {timeout:.0f} s; see {log_path}",
            log_path,
        )
    status = _reap(pid)
    detail = _log_tail(log_path)
    reason = f"satcheld exited ({status}) before it was ready"
    if line:
        reason += f"; it said: {line}"
    raise StartFailed(f"{reason}\n{detail}" if detail else reason, log_path)


def _spawn_detached(argv: list[str], log_fd: int) -> int:
    """Start `argv` in a new session with stdin `/dev/null` and output to `log_fd`."""
    file_actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_DUP2, log_fd, 1),
        (os.POSIX_SPAWN_DUP2, log_fd, 2),
    ]
    try:
        return os.posix_spawn(argv[0], argv, os.environ, file_actions=file_actions, setsid=True)
    except NotImplementedError:  # a libc without POSIX_SPAWN_SETSID: do the same by hand
        pass
    devnull = os.open(os.devnull, os.O_RDONLY)
    pid = os.fork()  # the client is single-threaded, so forking is safe
    if pid == 0:  # pragma: no cover - child; an exec failure shows up as exit status 127
        try:
            os.setsid()
            os.dup2(devnull, 0)
            os.dup2(log_fd, 1)
            os.dup2(log_fd, 2)
            os.execv(argv[0], argv)  # noqa: S606 -- our own daemon, argv built here
        finally:
            os._exit(127)
    os.close(devnull)
    return pid


def _read_line(fd: int, deadline: float) -> str | None:
    """Read one line from the notify pipe: the line, `""` on EOF without one, None on timeout."""
    buf = b""
    while b"\n" not in buf:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        ready, _, _ = select.select([fd], [], [], remaining)
        if not ready:
            return None
        chunk = os.read(fd, 4096)
        if not chunk:
            return buf.decode("utf-8", "replace").strip()
        buf += chunk
    return buf.split(b"\n", 1)[0].decode("utf-8", "replace").strip()


def _reap(pid: int) -> str:
    """Collect the dead daemon's exit status (it is our child until we exit)."""
    for _ in range(50):
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return "status unknown"
        if done:
            if os.WIFSIGNALED(status):
                return f"killed by signal {os.WTERMSIG(status)}"
            return f"exit status {os.waitstatus_to_exitcode(status)}"
        time.sleep(0.01)
    return "status unknown"


def _log_tail(log_path: str, lines: int = 8) -> str:
    try:
        with open(log_path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 4096))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    tail = text.splitlines()[-lines:]
    return "\n".join(f"  {line}" for line in tail)


def _rotate_log(log_path: str) -> None:
    try:
        if os.stat(log_path).st_size > MAX_LOG_BYTES:
            os.replace(log_path, log_path + ".1")
    except FileNotFoundError:
        pass


def _connect_within(socket_path: str, seconds: float) -> Stream | None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            return connect(socket_path)
        except NotRunning:
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.05)
