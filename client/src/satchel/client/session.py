"""`Session`: one conversation with the daemon, the seam every client command goes through.

A session connects (autostarting the daemon unless that is disabled), performs the Hello/Welcome
handshake, and runs requests with `call(method, params)`, which returns the `Result` value or
raises `RemoteError(code, message, details)`. Progress and log events stream to callbacks.

Start-up cost matters here (see docs/client.md): this module and everything it imports on the hot
path avoid `typing`, `enum`, `socket`, `json`-via-`re`, `argparse` and `subprocess`. That is why
annotations are strings only (`from __future__ import annotations`, `TYPE_CHECKING = False`), and
why autostart, which needs more, is imported only when nobody answers.

Pipelining: for read-only methods (`ping`, `status`, and any call made with `pipeline=True`,
which `satchel resolve --offline` uses) the Hello and the Request go out in one write, saving a
round trip. If the Welcome then shows a daemon of another build, its answer is discarded and the
request is asked again of the replacement. Other methods wait for the Welcome first, so that a
daemon of the wrong build is replaced *before* it is asked to do anything.

Ctrl-C during a call sends `Cancel` for the request and waits briefly for its terminal event, so
the daemon stops the work instead of finishing it for nobody; then `Interrupted` (a
`KeyboardInterrupt`) propagates, saying whether the daemon stopped it, had completed it, or did
not say.
"""

from __future__ import annotations

import os
import sys
import time

from satchel.client import transport
from satchel.protocol import CLOSED, NEED_DATA, Connection, ProtocolError, errors
from satchel.protocol.buildid import build_id
from satchel.protocol.codec import DictCodec
from satchel.protocol.locations import socket_path as default_socket_path
from satchel.protocol.locations import state_dir as default_state_dir
from satchel.protocol.version import PROTOCOL_MAJOR, PROTOCOL_MINOR, __version__

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

#: Methods safe to send before the Welcome arrives: answering them from a daemon of another build
#: changes nothing, so the saved round trip costs nothing either.
PIPELINE_SAFE = frozenset({"ping", "status"})

#: After Ctrl-C, how long to wait for the daemon to confirm the cancelled request ended.
CANCEL_GRACE = 2.0

#: How long to wait for an old daemon to exit after asking it to stop (version-skew restart).
STOP_WAIT = 10.0

#: Features this client announces in Hello.
CLIENT_FEATURES = ("progress", "log", "cancel")

NOT_RUNNING_HELP = (
    "start it with one of:\n"
    "  satcheld                               (foreground, in another terminal)\n"
    "  satchel service install                (systemd/launchd, starts on demand)\n"
    "  systemctl --user start satchel.socket  (if the units are already installed)\n"
    "or let the client start it: unset SATCHEL_NO_AUTOSTART / drop --no-autostart"
)


#: Daemons the client may stop when they are another build: one it started itself (it starts
#: this build next), or one the service manager starts on the next connection (from the units,
#: which name this installation's `satcheld` by absolute path: a reinstall of the tool changes
#: the build behind that path, so the restarted daemon is the new one).
RESTARTABLE = ("autostart", "systemd", "launchd")
RESTART_MANUAL = "restart it where it was started (or `satchel stop`, then run the command again)"
#: When the service manager started the old build again: its units name another installation.
RESTART_SERVICE = (
    "the service manager started the same build again, so its units name another installation "
    "than this client's; run `satchel service install` with this client to point them here"
)


class RemoteError(Exception):
    """The daemon answered a request with `Error(code, message, details)`."""

    def __init__(self, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.details: dict[str, Any] = details or {}


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a call, with what the daemon said of the request in `CANCEL_GRACE`:
    `outcome` is ``"cancelled"`` (it stopped), ``"completed"`` (it had finished: its changes
    stand) or ``"unconfirmed"`` (no word yet: it may still complete)."""

    def __init__(self, outcome: str) -> None:
        super().__init__(outcome)
        self.outcome = outcome


class ClientError(Exception):
    """A failure on the client's side of the conversation. `code` is a wire error code from
    `satchel.protocol.errors` (`unavailable`, `protocol`, `incompatible`), which selects the exit
    status exactly as it would for a daemon's `Error`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class NotRunningError(ClientError):
    """Nothing answers on the socket and autostart is disabled (exit status 3)."""

    def __init__(self, message: str) -> None:
        super().__init__(errors.UNAVAILABLE, message)


def autostart_enabled(flag: bool | None = None) -> bool:
    """`--no-autostart` wins; otherwise `SATCHEL_NO_AUTOSTART=1` (any non-empty value but "0")."""
    if flag is not None:
        return flag
    value = os.environ.get("SATCHEL_NO_AUTOSTART", "")
    return value in ("", "0")


class Session:
    """A connection to the daemon, opened lazily by the first `call`."""

    def __init__(
        self,
        socket_path: str | None = None,
        *,
        autostart: bool | None = None,
        check_build: bool = True,
    ) -> None:
        self.socket_path = socket_path or default_socket_path()
        self.autostart = autostart_enabled(autostart)
        self.check_build = check_build
        #: The daemon's Welcome (a dict) once connected.
        self.welcome: dict[str, Any] = {}
        #: True when this session started the daemon itself.
        self.started_daemon = False
        self._stream: transport.Stream | None = None
        self._conn: Connection | None = None
        self._next_id = 1
        self._welcomed = False
        self._restarted_service = False

    @classmethod
    def for_args(cls, args: object, **kwargs: Any) -> Session:
        """A session honouring the global options (`--socket`, `--no-autostart`) of a parsed
        command line (an `argparse.Namespace` or a `satchel.client.args.Namespace`)."""
        return cls(
            getattr(args, "socket", None), autostart=getattr(args, "autostart", None), **kwargs
        )

    # -- lifecycle -------------------------------------------------------------------------------

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
        self._stream = None
        self._conn = None
        self._welcomed = False

    def connect(self) -> dict[str, Any]:
        """Connect and complete the handshake (restarting a skewed autostarted daemon)."""
        while not self._welcomed:
            self._open()
            self._await_welcome()
        return self.welcome

    # -- requests --------------------------------------------------------------------------------

    def call(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        on_progress: Callable[[dict[str, Any]], object] | None = None,
        on_log: Callable[[dict[str, Any]], object] | None = None,
        *,
        pipeline: bool = False,
    ) -> Any:
        """Run `method` on the daemon and return its Result value; raise `RemoteError` on Error.

        `pipeline=True` says the request is harmless and quick even for a daemon of another
        build (it is read-only), so it may go out with the Hello, before the Welcome.
        """
        params = params or {}
        if self._conn is None and (pipeline or method in PIPELINE_SAFE):
            request_id = self._take_id()
            self._open(self._encode_request(request_id, method, params))
            self._await_welcome()
            if not self._welcomed:  # the handshake replaced a skewed daemon: ask the new one
                return self.call(method, params, on_progress, on_log)
        else:
            self.connect()
            request_id = self._take_id()
            self._send(self._encode_request(request_id, method, params))
        return self._await_terminal(request_id, on_progress, on_log)

    def _take_id(self) -> int:
        request_id = self._next_id
        self._next_id += 1
        return request_id

    def _encode_request(
        self, request_id: int, method: str, params: dict[str, Any]
    ) -> dict[str, Any]:
        return {"type": "request", "id": request_id, "method": method, "params": params}

    def _await_terminal(
        self,
        request_id: int,
        on_progress: Callable[[dict[str, Any]], object] | None,
        on_log: Callable[[dict[str, Any]], object] | None,
    ) -> Any:
        try:
            while True:
                event = self._next_event()
                kind = event.get("type")
                if kind == "error" and event.get("id") is None:  # the whole connection failed
                    raise RemoteError(
                        str(event.get("code")), str(event.get("message")), event.get("details")
                    )
                if event.get("id") != request_id:
                    continue
                if kind == "result":
                    return event.get("value")
                if kind == "error":
                    raise RemoteError(
                        str(event.get("code")), str(event.get("message")), event.get("details")
                    )
                if kind == "progress" and on_progress is not None:
                    on_progress(event)
                elif kind == "log" and on_log is not None:
                    on_log(event)
        except KeyboardInterrupt:
            raise Interrupted(self._cancel(request_id)) from None

    def _cancel(self, request_id: int) -> str:
        """Tell the daemon to stop `request_id`; wait briefly for it to say it has. Returns the
        `Interrupted` outcome: a request in a step that is never cut midway (an install's
        transaction) ends with its result, or has not ended yet."""
        if self._stream is None or self._conn is None:
            return "cancelled"  # nothing was sent
        stream = self._stream
        try:
            self._send({"type": "cancel", "id": request_id})
            stream.settimeout(CANCEL_GRACE)
            deadline = time.monotonic() + CANCEL_GRACE
            while time.monotonic() < deadline:
                event = self._next_event()
                if event.get("id") == request_id and event.get("type") == "result":
                    return "completed"
                if event.get("id") == request_id and event.get("type") == "error":
                    return "cancelled"
        except (OSError, ClientError, KeyboardInterrupt):
            return "unconfirmed"
        finally:
            stream.settimeout(None)
        return "unconfirmed"

    # -- wire ------------------------------------------------------------------------------------

    def _hello(self) -> dict[str, Any]:
        # No build id: the daemon uses none, and the client's own is computed after the Hello
        # (and the request) went out, while the daemon answers (`_open`).
        return {
            "type": "hello",
            "major": PROTOCOL_MAJOR,
            "minor": PROTOCOL_MINOR,
            "client_version": __version__,
            "build_id": "",
            "features": list(CLIENT_FEATURES),
        }

    def _open(self, first_request: dict[str, Any] | None = None) -> None:
        """Connect (or autostart) and send Hello, plus `first_request` in the same write; then
        compute this client's build id, which the Welcome is checked against, while the daemon
        answers (in a development checkout, a stat of every source file: ~0.6 ms)."""
        self._stream = self._connect_stream()
        self._conn = Connection("client", DictCodec())
        data = self._conn.send(self._hello())
        if first_request is not None:
            data += self._conn.send(first_request)
        self._write(data)
        if self.check_build:
            build_id()

    def _connect_stream(self) -> transport.Stream:
        try:
            return self._connect_or_start()
        except transport.Untrusted as exc:
            raise ClientError(errors.FORBIDDEN, str(exc)) from exc

    def _connect_or_start(self) -> transport.Stream:
        try:
            return transport.connect(self.socket_path)
        except transport.NotRunning as exc:
            if not self.autostart:
                raise NotRunningError(
                    f"satcheld is not running ({exc.reason}: {self.socket_path});\n"
                    + NOT_RUNNING_HELP
                ) from exc
        from satchel.client import autostart

        try:
            stream, self.started_daemon = autostart.start_and_connect(
                self.socket_path, default_state_dir()
            )
        except autostart.StartFailed as exc:
            raise ClientError(
                errors.UNAVAILABLE,
                f"could not start satcheld: {exc.message}\n(daemon log: {exc.log_path})",
            ) from exc
        except transport.NotRunning as exc:
            raise ClientError(
                errors.UNAVAILABLE,
                f"satcheld reported ready, but {self.socket_path} does not answer ({exc.reason})",
            ) from exc
        return stream

    def _await_welcome(self) -> None:
        event = self._next_event()
        kind = event.get("type")
        if kind == "incompatible":
            raise ClientError(
                errors.INCOMPATIBLE,
                f"the daemon refused this client: {event.get('reason')} "
                f"(wanted {event.get('wanted')}, daemon has {event.get('actual')})",
            )
        if kind != "welcome":
            raise ClientError(errors.PROTOCOL, f"expected a welcome from the daemon, got {kind!r}")
        self.welcome = event
        self._welcomed = True
        if self.check_build and event.get("build_id") != build_id():
            self._handle_skew()

    def _handle_skew(self) -> None:
        """Replace a daemon of another build that a client or the service manager started (the
        next connection starts this build); refuse to touch one started by hand."""
        theirs = self.welcome.get("build_id")
        pid = self.welcome.get("pid")
        if self._restarted_service:
            raise ClientError(
                errors.INCOMPATIBLE,
                f"the running satcheld (pid {pid}, build {theirs}) is another build than this "
                f"client ({build_id()}) after a restart: {RESTART_SERVICE}",
            )
        activation = self._activation()
        if activation not in RESTARTABLE:
            raise ClientError(
                errors.INCOMPATIBLE,
                f"the running satcheld (pid {pid}, build {theirs}, activation {activation}) is "
                f"another build than this client ({build_id()}) and was not started by a "
                f"client or a service manager, so it is left alone;\n{RESTART_MANUAL}",
            )
        what = "autostarted daemon" if activation == "autostart" else f"{activation} service"
        print(
            f"satchel: restarting the {what} (pid {pid}, build {theirs}) "
            f"to match this client (build {build_id()})",
            file=sys.stderr,
        )
        self._welcomed = False
        stopper = self._take_id()
        self._send(self._encode_request(stopper, "stop", {}))
        try:  # noqa: SIM105 -- contextlib is an import the client does not otherwise pay for
            self._await_terminal(stopper, None, None)
        except (RemoteError, ClientError):
            pass  # already going away is as good as stopped
        self.close()
        if isinstance(pid, int):
            wait_for_exit(pid, STOP_WAIT)
        if activation == "autostart":
            self.check_build = False  # one restart per session, never a loop
        else:
            self._restarted_service = True  # checked again: the units may name another build

    def _activation(self) -> str:
        """How the daemon was started: "autostart", "manual", "systemd", "launchd" (or "unknown").

        A Welcome feature "autostarted" would say so directly; otherwise the daemon's `status`
        reports it (`activation`), asked on this connection.
        """
        if "autostarted" in (self.welcome.get("features") or ()):
            return "autostart"
        probe = self._take_id()
        self._send(self._encode_request(probe, "status", {}))
        try:
            value = self._await_terminal(probe, None, None)
        except RemoteError:
            return "unknown"
        activation = value.get("activation") if isinstance(value, dict) else None
        return activation if isinstance(activation, str) else "unknown"

    def _send(self, message: dict[str, Any]) -> None:
        assert self._conn is not None
        self._write(self._conn.send(message))

    def _write(self, data: bytes) -> None:
        assert self._stream is not None
        try:
            self._stream.send_all(data)
        except OSError as exc:
            raise ClientError(
                errors.UNAVAILABLE, f"lost the connection to satcheld: {exc}"
            ) from exc

    def _next_event(self) -> dict[str, Any]:
        conn, stream = self._conn, self._stream
        if conn is None or stream is None:
            raise ClientError(errors.UNAVAILABLE, "not connected to satcheld")
        try:
            while True:
                event = conn.next_event()
                if event is NEED_DATA:
                    conn.receive_data(stream.recv())
                    continue
                if event is CLOSED:
                    raise ClientError(
                        errors.UNAVAILABLE, "satcheld closed the connection before answering"
                    )
                return event  # type: ignore[no-any-return]
        except ProtocolError as exc:
            raise ClientError(errors.PROTOCOL, f"bad data from satcheld: {exc}") from exc
        except TimeoutError as exc:
            raise ClientError(errors.UNAVAILABLE, "satcheld stopped answering") from exc
        except OSError as exc:
            raise ClientError(
                errors.UNAVAILABLE, f"lost the connection to satcheld: {exc}"
            ) from exc


def wait_for_exit(pid: int, seconds: float) -> bool:
    """Poll until process `pid` is gone (True) or `seconds` pass (False)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not process_alive(pid):
            return True
        time.sleep(0.01)
    return False


def process_alive(pid: int) -> bool:
    """Whether `pid` still runs. A zombie counts as gone: it has exited and released every
    descriptor and lock; only its parent's `wait` is missing (an autostarted daemon's parent is
    whatever adopted it, which may reap late)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except FileNotFoundError:
        return not os.path.isdir("/proc/self")  # noqa: PTH112 -- no /proc (macOS): trust kill
    except OSError:
        return True
    return stat.rsplit(b")", 1)[-1].split()[:1] != [b"Z"]
