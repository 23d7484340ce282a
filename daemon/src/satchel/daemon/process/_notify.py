"""Telling whoever started us how start-up went: systemd's sd_notify and the autostart pipe.

sd_notify is a datagram of ``KEY=VALUE`` lines sent to the Unix socket named by
``NOTIFY_SOCKET`` (a leading ``@`` means the Linux abstract namespace). It is twenty lines of
stdlib, so no libsystemd binding: ``READY=1`` is sent only once the accept loop is serving (with
``Type=notify`` systemd holds back dependent units until then), ``STATUS=`` carries a one-line
human status for ``systemctl status``, ``STOPPING=1`` announces a graceful shutdown.

The autostart channel is the same idea for the client's own spawner: ``satcheld --notify-fd N``
inherits the write end of a pipe and writes exactly one line to it, ``READY`` once serving or
``ERROR <message>`` when start-up fails, then closes it. The client blocks on the read end, so a
failed start shows the daemon's real reason instead of a connect timeout.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket

__all__ = ["NOTIFY_SOCKET_ENV", "StartupChannel", "SystemdNotifier"]

NOTIFY_SOCKET_ENV = "NOTIFY_SOCKET"

log = logging.getLogger(__name__)


class SystemdNotifier:
    """Sends sd_notify messages when ``NOTIFY_SOCKET`` was set at start, else does nothing.

    The variable is removed from the environment on construction so that processes the daemon
    spawns later (builds, interpreters) do not talk to systemd in its name.
    """

    def __init__(self, environ: dict[str, str] | os._Environ[str] | None = None) -> None:
        env = os.environ if environ is None else environ
        raw = env.pop(NOTIFY_SOCKET_ENV, "")
        self._address: str | None = None
        if raw.startswith("@"):
            self._address = "\0" + raw[1:]
        elif raw.startswith("/"):
            self._address = raw
        elif raw:
            log.warning("ignoring NOTIFY_SOCKET=%r: neither a path nor an abstract name", raw)

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def send(self, *lines: str) -> bool:
        """Send one datagram made of *lines*; failure is logged, never raised (systemd may be
        gone during shutdown, and notification is advisory)."""
        if self._address is None:
            return False
        payload = "\n".join(lines).encode("utf-8", "replace")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.connect(self._address)
                sock.sendall(payload)
        except OSError as exc:
            log.debug("sd_notify %r failed: %s", lines, exc)
            return False
        return True

    def ready(self, status: str) -> bool:
        return self.send("READY=1", f"STATUS={status}", f"MAINPID={os.getpid()}")

    def status(self, status: str) -> bool:
        return self.send(f"STATUS={status}")

    def stopping(self, status: str = "stopping") -> bool:
        return self.send("STOPPING=1", f"STATUS={status}")


class StartupChannel:
    """The autostart pipe: one line, ``READY`` or ``ERROR <message>``, then closed."""

    def __init__(self, fd: int | None) -> None:
        self._fd = fd
        if fd is not None:
            # Children spawned later must not inherit the write end: the client reads until a
            # line *or EOF*, and an inherited copy would keep EOF from ever arriving.
            os.set_inheritable(fd, False)

    @property
    def open(self) -> bool:
        return self._fd is not None

    def ready(self) -> None:
        self._finish("READY")

    def error(self, message: str) -> None:
        # The protocol is line based: the message must stay on one line.
        self._finish("ERROR " + " ".join(message.split()))

    def _finish(self, line: str) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            data = (line + "\n").encode("utf-8", "replace")
            while data:
                data = data[os.write(fd, data) :]
        except OSError as exc:  # the client gave up waiting (EPIPE): nothing left to tell
            log.debug("notify-fd write failed: %s", exc)
        finally:
            with contextlib.suppress(OSError):
                os.close(fd)
