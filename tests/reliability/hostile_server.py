"""A loopback HTTP server whose every answer is chosen by the test: the misbehaving index.

`tests.support.index_server.IndexServer` is a well-behaved index with a few knobs; the faults of
issue 7 (a reset in the middle of a body, a body shorter than announced, a drip of one byte at a
time, a 50 MB page, a gzip bomb, redirect loops, redirects to ``file://``) need a server that
can break HTTP itself. ``HostileServer(routes)`` maps a path to a function writing the raw
answer on the socket; `count(path)` says how often a path was asked for.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

__all__ = ["Handler", "HostileServer", "reply", "reset"]

Handler = BaseHTTPRequestHandler
Route = Callable[[BaseHTTPRequestHandler], None]


def reply(handler: Handler, status: int, body: bytes = b"", **headers: str) -> None:
    """A complete, well-formed answer (header names: ``Content_Type`` -> ``Content-Type``)."""
    handler.send_response(status)
    for name, value in headers.items():
        handler.send_header(name.replace("_", "-"), value)
    if "Content_Length" not in headers:
        handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def reset(handler: Handler) -> None:
    """Abort the connection with a TCP RST (SO_LINGER 0), not a clean FIN."""
    handler.wfile.flush()
    handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    handler.connection.close()
    handler.close_connection = True


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        with self.server.lock:
            self.server.counts[path] += 1
        route = self.server.routes.get(path)
        try:
            if route is None:
                reply(self, 404, b"not found", Content_Type="text/plain")
            else:
                route(self)
        except OSError:
            self.close_connection = True  # the client gave up: as intended by many routes


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, routes: dict[str, Route]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.routes = routes
        self.counts: Counter[str] = Counter()
        self.lock = threading.Lock()

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # resets and aborted clients are the point of this server


class HostileServer:
    """``with HostileServer({"/simple/demo/": route}) as server: server.url(...)``."""

    def __init__(self, routes: dict[str, Route] | None = None) -> None:
        self._server = _Server(dict(routes or {}))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def routes(self) -> dict[str, Route]:
        return self._server.routes

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{path}"

    def count(self, path: str) -> int:
        with self._server.lock:
            return self._server.counts[path]

    def __enter__(self) -> HostileServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
