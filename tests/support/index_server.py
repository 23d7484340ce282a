"""A real simple-API index on 127.0.0.1 for tests: wheels and sdists from a directory, over HTTP.

Why a real server: the upstream client, the daemon (in a subprocess), pip and uv must all be tested
against the same thing they meet in the wild: sockets, keep-alive, content negotiation, ETags,
redirects, authentication. The server runs `http.server.ThreadingHTTPServer` in a background
thread, so it is usable from synchronous tests, from trio tests (it never touches the event loop)
and by daemons running in other processes.

Usage::

    with IndexServer(tmp_path / "index") as index:        # serves every file in that directory
        index.add(build_wheel(tmp_path / "dist", "internal-tool", "1.0"))
        index.url          # "http://127.0.0.1:<port>/simple/"
        index.stop()       # the index goes away (connections refused, open keep-alives closed)
        index.start()      # ... and comes back on the same port
        index.requests     # ["/simple/internal-tool/", "/files/internal_tool-1.0-py3-none-any.whl"]

Routes:

* ``/simple/``: root listing; ``/simple/<project>/``: project page. PEP 691 JSON
  (``application/vnd.pypi.simple.v1+json``, api-version 1.1) or PEP 503 HTML
  (``application/vnd.pypi.simple.v1+html`` or ``text/html``) chosen by the ``Accept`` header (q
  values honoured; no ``Accept`` gives HTML). ``html_only=True`` makes it a legacy HTML-only index.
  A non-normalised project name or a missing trailing slash is a 301 to the canonical URL.
* Every file carries its sha256 (JSON ``hashes``, HTML ``#sha256=`` fragment), ``requires-python``
  (read from the file's own metadata), ``size`` and ``upload-time`` (PEP 700, from the file's
  mtime), ``yanked`` (PEP 592, see `yank`), and for wheels PEP 658/714 core metadata
  (``core-metadata`` and ``dist-info-metadata`` with the METADATA sha256; ``metadata=False``
  turns it off). File links are relative (``../../files/<name>``), as many real indexes do.
* ``/files/<name>``: the file; ``/files/<name>.metadata``: the wheel's METADATA, byte-identical.
* Pages and files carry an ``ETag``; a matching ``If-None-Match`` gets ``304``. ``max_age`` adds
  ``Cache-Control: max-age=N`` to pages (default: no Cache-Control header).
* HEAD works on every route.
* Byte ranges of files (``ranges=``): ``"ignore"`` (the default, as many simple servers do: a
  ``Range`` header is ignored and the whole file answered with 200, no ``Accept-Ranges``),
  ``"honour"`` (one range per request, ``bytes=a-b``, ``bytes=a-`` or ``bytes=-n``: 206 with
  ``Content-Range``, 416 when unsatisfiable, ``Accept-Ranges: bytes``), ``"refuse"`` (every
  ``Range`` request is answered 416). `body_bytes` counts the body bytes sent per path.

Knobs for tests (all thread-safe, all changeable while serving): `add`, `remove`, `yank`, `corrupt`
(serve other bytes than the advertised hash), `fail_next` (the next N requests answer 5xx),
`override` (one path answers a fixed response: a 410, a redirect, a captive portal's page),
``auth=(user, password)`` (HTTP basic auth required, 401 otherwise), ``delay`` (seconds slept
before each answer), `gate` (a `threading.Event`, set: clear it to hold the answers to the paths
`held` picks, all by default, until it is set again, so a client's request is provably in flight
without a clock; requests are logged before they wait), `requests` / `records` (what was asked,
with headers), `reset_log`.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import hashlib
import html
import json
import os
import shutil
import socket
import tarfile
import threading
import time
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import unquote, urlsplit

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)

__all__ = ["IndexServer", "RequestRecord", "byte_range"]

JSON_V1 = "application/vnd.pypi.simple.v1+json"
HTML_V1 = "application/vnd.pypi.simple.v1+html"
TEXT_HTML = "text/html"


@dataclass(frozen=True)
class RequestRecord:
    """One request as the server saw it (headers with lower-case names)."""

    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Dist:
    """What the server knows about one published file (cached by mtime and size)."""

    filename: str
    project: str
    path: Path
    sha256: str
    size: int
    mtime: float
    requires_python: str | None
    metadata: bytes | None


def _project_of(filename: str) -> str | None:
    try:
        if filename.endswith(".whl"):
            return canonicalize_name(parse_wheel_filename(filename)[0])
        return canonicalize_name(parse_sdist_filename(filename)[0])
    except (InvalidWheelFilename, InvalidSdistFilename):
        return None


def _wheel_metadata(path: Path) -> bytes | None:
    """The wheel's METADATA; None for a broken archive (served as it is, for tests of it)."""
    try:
        with zipfile.ZipFile(path) as zf:
            for member in zf.namelist():
                parts = member.split("/")
                if len(parts) == 2 and parts[0].endswith(".dist-info") and parts[1] == "METADATA":
                    return zf.read(member)
    except (zipfile.BadZipFile, OSError, EOFError):
        return None
    return None


def _sdist_pkg_info(path: Path) -> bytes | None:
    with contextlib.suppress(tarfile.TarError, OSError), tarfile.open(path) as tf:
        for member in tf.getmembers():
            parts = member.name.split("/")
            if len(parts) == 2 and parts[1] == "PKG-INFO":
                extracted = tf.extractfile(member)
                return extracted.read() if extracted else None
    return None


def _requires_python(metadata: bytes | None) -> str | None:
    if not metadata:
        return None
    for line in metadata.decode("utf-8", "replace").splitlines():
        if not line.strip():
            break  # end of headers
        key, _, value = line.partition(":")
        if key.strip().lower() == "requires-python":
            return value.strip()
    return None


def _negotiate(accept: str | None, html_only: bool) -> str | None:
    """Pick the page format for an ``Accept`` header (None: nothing acceptable -> 406).

    Each offer gets the quality of the most specific media range matching it (exact, then
    ``type/*``, then ``*/*``); the highest quality wins, ties going to JSON before HTML. No
    ``Accept`` header at all means a legacy client: HTML.
    """
    offers = [HTML_V1, TEXT_HTML] if html_only else [JSON_V1, HTML_V1, TEXT_HTML]
    if not accept:
        return TEXT_HTML
    ranges: list[tuple[str, float]] = []
    for part in accept.split(","):
        media, *params = (piece.strip() for piece in part.split(";"))
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        ranges.append((media.lower(), quality))
    best: tuple[float, int, str] | None = None
    for position, offer in enumerate(offers):
        matched: tuple[int, float] | None = None
        for media, quality in ranges:
            if media == offer:
                specificity = 2
            elif media.endswith("/*") and offer.startswith(media[:-1]):
                specificity = 1
            elif media == "*/*":
                specificity = 0
            else:
                continue
            if matched is None or specificity > matched[0]:
                matched = (specificity, quality)
        if matched is None or matched[1] <= 0:
            continue
        rank = (matched[1], -position, offer)
        if best is None or rank > best:
            best = rank
    return best[2] if best else None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], owner: IndexServer) -> None:
        self.owner = owner
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.connections_lock:
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def drop_connections(self) -> None:
        """Close live keep-alive connections, so a stopped index really is gone."""
        with self.connections_lock:
            connections = list(self.connections)
            self.connections.clear()
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle's algorithm the body then waits
    # for the client's delayed ACK (~40 ms per request on a kept-alive connection).
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass  # tests read `IndexServer.requests`; stderr noise helps nobody

    def do_GET(self) -> None:
        self._dispatch(head=False)

    def do_HEAD(self) -> None:
        self._dispatch(head=True)

    def _dispatch(self, *, head: bool) -> None:
        owner = self.server.owner
        headers = {key.lower(): value for key, value in self.headers.items()}
        owner._record(RequestRecord(self.command, self.path, headers))
        with owner._lock:
            owner._in_flight += 1
            owner.max_in_flight = max(owner.max_in_flight, owner._in_flight)
        try:
            self._answer(owner, head=head)
        finally:
            with owner._lock:
                owner._in_flight -= 1

    def _answer(self, owner: IndexServer, *, head: bool) -> None:
        if not owner.gate.is_set() and owner.held(unquote(urlsplit(self.path).path)):
            owner.gate.wait()
        if owner.delay:
            time.sleep(owner.delay)
        failure = owner._take_failure()
        if failure is not None:
            self._send(failure, b"injected failure\n", "text/plain", head=head)
            return
        fixed = owner._override_of(unquote(urlsplit(self.path).path))
        if fixed is not None:
            status, body, content_type, extra = fixed
            self._send(status, body, content_type, head=head, extra=extra)
            return
        if owner.auth is not None and not self._authorized(owner.auth):
            self._send(
                401,
                b"authentication required\n",
                "text/plain",
                head=head,
                extra={"WWW-Authenticate": 'Basic realm="test index"'},
            )
            return
        path = unquote(urlsplit(self.path).path)
        if path == "/simple":
            self._redirect("/simple/", head=head)
        elif path == "/simple/":
            self._page(owner._root_page, head=head)
        elif path.startswith("/simple/"):
            name = path[len("/simple/") :].rstrip("/")
            canonical = canonicalize_name(name)
            if "/" in name or not name:
                self._send(404, b"not found\n", "text/plain", head=head)
            elif name != canonical or not path.endswith("/"):
                self._redirect(f"/simple/{canonical}/", head=head)
            elif not owner._dists_of(canonical):
                self._send(404, b"no such project\n", "text/plain", head=head)
            else:
                self._page(lambda fmt: owner._project_page(canonical, fmt), head=head)
        elif path.startswith("/files/"):
            self._file(path[len("/files/") :], head=head)
        else:
            self._send(404, b"not found\n", "text/plain", head=head)

    def _authorized(self, auth: tuple[str, str]) -> bool:
        header = self.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(token).decode().partition(":")
        except ValueError:
            return False
        return (user, password) == auth

    def _page(self, render: Any, *, head: bool) -> None:
        owner = self.server.owner
        fmt = _negotiate(self.headers.get("Accept"), owner.html_only)
        if fmt is None:
            self._send(406, b"not acceptable\n", "text/plain", head=head)
            return
        body: bytes = render(fmt)
        extra = {"Vary": "Accept"}
        if owner.max_age is not None:
            extra["Cache-Control"] = f"max-age={owner.max_age}"
        content_type = fmt if fmt == JSON_V1 else f"{fmt}; charset=utf-8"
        self._send_validated(body, content_type, head=head, extra=extra)

    def _file(self, name: str, *, head: bool) -> None:
        owner = self.server.owner
        want_metadata = name.endswith(".metadata")
        dist = owner._dist(name.removesuffix(".metadata") if want_metadata else name)
        if dist is None or "/" in name:
            self._send(404, b"no such file\n", "text/plain", head=head)
            return
        if want_metadata:
            if dist.metadata is None or not owner.metadata:
                self._send(404, b"no metadata\n", "text/plain", head=head)
                return
            self._send_validated(dist.metadata, "text/plain", head=head)
            return
        body = dist.path.read_bytes()
        digest: str | None = dist.sha256  # already known: big files are not re-hashed per GET
        if dist.filename in owner._corrupted:
            body = bytes([body[0] ^ 0xFF]) + body[1:] if body else b"corrupt"
            digest = None
        wanted = self.headers.get("Range")
        if wanted and owner.ranges == "refuse":
            extra = {"Content-Range": f"bytes */{len(body)}"}
            self._send(416, b"", "text/plain", head=head, extra=extra)
            return
        if owner.ranges == "honour":
            span = byte_range(wanted, len(body)) if wanted else None
            if span == "unsatisfiable":
                extra = {"Content-Range": f"bytes */{len(body)}", "Accept-Ranges": "bytes"}
                self._send(416, b"", "text/plain", head=head, extra=extra)
                return
            if span is not None:
                first, last = span
                extra = {
                    "Content-Range": f"bytes {first}-{last}/{len(body)}",
                    "Accept-Ranges": "bytes",
                }
                part = body[first : last + 1]
                self._send(206, part, "application/octet-stream", head=head, extra=extra)
                return
        self._send_validated(
            body,
            "application/octet-stream",
            head=head,
            digest=digest,
            extra={"Accept-Ranges": "bytes"} if owner.ranges == "honour" else None,
        )

    def _send_validated(
        self,
        body: bytes,
        content_type: str,
        *,
        head: bool,
        extra: dict[str, str] | None = None,
        digest: str | None = None,
    ) -> None:
        if digest is None:
            digest = hashlib.sha256(content_type.encode() + b"\0" + body).hexdigest()
        etag = f'"{digest[:32]}"'
        headers = dict(extra or {})
        headers["ETag"] = etag
        candidates = [tag.strip() for tag in self.headers.get("If-None-Match", "").split(",")]
        if etag in candidates or "*" in candidates:
            self._send(304, b"", None, head=True, extra=headers)
            return
        self._send(200, body, content_type, head=head, extra=headers)

    def _redirect(self, location: str, *, head: bool) -> None:
        self._send(301, b"", None, head=head, extra={"Location": location})

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str | None,
        *,
        head: bool,
        extra: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        if status != 304:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head and status != 304:
            self.server.owner._count(unquote(urlsplit(self.path).path), len(body))
            with contextlib.suppress(OSError):
                self.wfile.write(body)


class IndexServer:
    """A simple-API index over the wheels and sdists in *root* (see the module docstring)."""

    def __init__(
        self,
        root: Path,
        *,
        html_only: bool = False,
        auth: tuple[str, str] | None = None,
        delay: float = 0.0,
        metadata: bool = True,
        max_age: int | None = None,
        yanked: Mapping[str, str] | None = None,
        port: int = 0,
        ranges: str = "ignore",
    ) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.html_only = html_only
        self.auth = auth
        self.delay = delay
        #: Every answer waits until this is set (it is, unless a test holds the answers).
        self.gate = threading.Event()
        self.gate.set()
        #: Which paths a cleared `gate` holds.
        self.held: Callable[[str], bool] = lambda path: True
        self.metadata = metadata
        self.max_age = max_age
        if ranges not in ("ignore", "honour", "refuse"):
            raise ValueError(f"ranges must be ignore, honour or refuse, not {ranges!r}")
        #: How a ``Range`` request for a file is answered (see the module docstring).
        self.ranges = ranges
        self._body_bytes: dict[str, int] = {}
        self._port = port
        self._lock = threading.Lock()
        self._in_flight = 0
        #: The most requests this server was answering at once (with `delay`, a measure of how
        #: many a client sent concurrently that needs no clock).
        self.max_in_flight = 0
        self._records: list[RequestRecord] = []
        self._yanked: dict[str, str] = dict(yanked or {})
        self._corrupted: set[str] = set()
        self._failures: list[int] = []
        self._overrides: dict[str, tuple[int, bytes, str | None, dict[str, str]]] = {}
        self._cache: dict[str, tuple[tuple[int, int], _Dist]] = {}
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> IndexServer:
        """Listen (again) on the same port; a no-op when already serving."""
        if self._server is not None:
            return self
        server = _Server(("127.0.0.1", self._port), self)
        self._port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and cut open connections: afterwards, connecting is refused."""
        server, self._server = self._server, None
        self.gate.set()  # held answers go (to connections about to be cut)
        if server is None:
            return
        server.shutdown()
        server.server_close()
        server.drop_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> IndexServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def port(self) -> int:
        return self._port

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>`` (no trailing slash)."""
        return f"http://127.0.0.1:{self._port}"

    @property
    def url(self) -> str:
        """The index URL to configure: ``http://127.0.0.1:<port>/simple/``."""
        return f"{self.base_url}/simple/"

    def url_with_auth(self) -> str:
        """`url` with the configured basic-auth credentials as userinfo."""
        if self.auth is None:
            return self.url
        user, password = self.auth
        return f"http://{user}:{password}@127.0.0.1:{self._port}/simple/"

    def project_url(self, project: str) -> str:
        return f"{self.url}{canonicalize_name(project)}/"

    def file_url(self, filename: str) -> str:
        return f"{self.base_url}/files/{filename}"

    # -- content -----------------------------------------------------------------------------

    def add(self, path: Path) -> Path:
        """Publish *path* (copied into the root unless it is already there); returns its copy."""
        path = Path(path)
        if _project_of(path.name) is None:
            raise ValueError(f"not a wheel or sdist file name: {path.name}")
        dest = self.root / path.name
        if path.resolve() != dest.resolve():
            shutil.copyfile(path, dest)
        return dest

    def remove(self, filename: str) -> None:
        """Unpublish *filename* (deletes it from the root)."""
        (self.root / filename).unlink()

    def yank(self, filename: str, reason: str = "") -> None:
        """Mark *filename* yanked (PEP 592); an empty reason is ``yanked: true``."""
        with self._lock:
            self._yanked[filename] = reason

    def unyank(self, filename: str) -> None:
        with self._lock:
            self._yanked.pop(filename, None)

    def corrupt(self, filename: str, corrupted: bool = True) -> None:
        """Serve different bytes for *filename* than the sha256 the pages advertise."""
        with self._lock:
            if corrupted:
                self._corrupted.add(filename)
            else:
                self._corrupted.discard(filename)

    def fail_next(self, count: int = 1, status: int = 500) -> None:
        """The next *count* requests (any route) answer *status* instead."""
        with self._lock:
            self._failures.extend([status] * count)

    def sha256(self, filename: str) -> str:
        dist = self._dist(filename)
        if dist is None:
            raise KeyError(filename)
        return dist.sha256

    def override(
        self,
        path: str,
        status: int | None,
        body: bytes = b"",
        content_type: str | None = "text/html; charset=utf-8",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Answer every request for *path* (e.g. ``/simple/internal-tool/``) with this response
        instead of the real one, until called again with *status* None."""
        with self._lock:
            if status is None:
                self._overrides.pop(path, None)
            else:
                self._overrides[path] = (status, body, content_type, dict(headers or {}))

    # -- request log -------------------------------------------------------------------------

    @property
    def records(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._records)

    @property
    def requests(self) -> list[str]:
        """Paths requested so far, in order (query strings included)."""
        return [record.path for record in self.records]

    def reset_log(self) -> None:
        with self._lock:
            self._records.clear()
            self._body_bytes.clear()

    @property
    def body_bytes(self) -> dict[str, int]:
        """Body bytes sent so far, per path (``/files/<name>`` ...), since the last reset."""
        with self._lock:
            return dict(self._body_bytes)

    # -- internals used by the handler -------------------------------------------------------

    def _count(self, path: str, sent: int) -> None:
        with self._lock:
            self._body_bytes[path] = self._body_bytes.get(path, 0) + sent

    def _record(self, record: RequestRecord) -> None:
        with self._lock:
            self._records.append(record)

    def _override_of(self, path: str) -> tuple[int, bytes, str | None, dict[str, str]] | None:
        with self._lock:
            return self._overrides.get(path)

    def _take_failure(self) -> int | None:
        with self._lock:
            return self._failures.pop(0) if self._failures else None

    def _dist(self, filename: str) -> _Dist | None:
        if not filename or "/" in filename or filename.startswith("."):
            return None
        path = self.root / filename
        project = _project_of(filename)
        try:
            stat = path.stat()
        except OSError:
            return None
        if project is None:
            return None
        key = (stat.st_mtime_ns, stat.st_size)
        with self._lock:
            cached = self._cache.get(filename)
        if cached is not None and cached[0] == key:
            return cached[1]
        data = path.read_bytes()
        if filename.endswith(".whl"):
            metadata = _wheel_metadata(path)
            requires_python = _requires_python(metadata)
        else:
            metadata = None
            requires_python = _requires_python(_sdist_pkg_info(path))
        dist = _Dist(
            filename=filename,
            project=project,
            path=path,
            sha256=hashlib.sha256(data).hexdigest(),
            size=len(data),
            mtime=stat.st_mtime,
            requires_python=requires_python,
            metadata=metadata,
        )
        with self._lock:
            self._cache[filename] = (key, dist)
        return dist

    def _all_dists(self) -> Iterator[_Dist]:
        for filename in sorted(os.listdir(self.root)):
            dist = self._dist(filename)
            if dist is not None:
                yield dist

    def _dists_of(self, project: str) -> list[_Dist]:
        return [dist for dist in self._all_dists() if dist.project == project]

    def _root_page(self, fmt: str) -> bytes:
        projects = sorted({dist.project for dist in self._all_dists()})
        if fmt == JSON_V1:
            doc = {"meta": {"api-version": "1.1"}, "projects": [{"name": p} for p in projects]}
            return json.dumps(doc).encode()
        links = "".join(f'<a href="{p}/">{p}</a>\n' for p in projects)
        return _html_document("Simple index", links)

    def _project_page(self, project: str, fmt: str) -> bytes:
        dists = self._dists_of(project)
        with self._lock:
            yanked = dict(self._yanked)
        if fmt == JSON_V1:
            files: list[dict[str, Any]] = []
            for dist in dists:
                entry: dict[str, Any] = {
                    "filename": dist.filename,
                    "url": f"../../files/{dist.filename}",
                    "hashes": {"sha256": dist.sha256},
                    "requires-python": dist.requires_python,
                    "size": dist.size,
                    "upload-time": _upload_time(dist.mtime),
                    "yanked": (yanked[dist.filename] or True) if dist.filename in yanked else False,
                }
                if dist.metadata is not None and self.metadata:
                    meta_hash = {"sha256": hashlib.sha256(dist.metadata).hexdigest()}
                    entry["core-metadata"] = meta_hash
                    entry["dist-info-metadata"] = meta_hash
                files.append(entry)
            doc = {
                "meta": {"api-version": "1.1"},
                "name": project,
                "files": files,
                "versions": sorted({_version_of(d.filename) for d in dists}),
            }
            return json.dumps(doc).encode()
        anchors = []
        for dist in dists:
            attrs = [f'href="../../files/{dist.filename}#sha256={dist.sha256}"']
            if dist.requires_python:
                attrs.append(f'data-requires-python="{html.escape(dist.requires_python)}"')
            if dist.filename in yanked:
                attrs.append(f'data-yanked="{html.escape(yanked[dist.filename])}"')
            if dist.metadata is not None and self.metadata:
                meta_attr = f"sha256={hashlib.sha256(dist.metadata).hexdigest()}"
                attrs.append(f'data-core-metadata="{meta_attr}"')
                attrs.append(f'data-dist-info-metadata="{meta_attr}"')
            anchors.append(f"<a {' '.join(attrs)}>{html.escape(dist.filename)}</a><br/>\n")
        return _html_document(f"Links for {project}", "".join(anchors))


def byte_range(header: str, size: int) -> tuple[int, int] | str | None:
    """(first, last) of a single-range ``Range`` header, "unsatisfiable", or None (not a byte
    range this server serves: the whole file is answered, as RFC 9110 allows)."""
    unit, _, spec = header.strip().partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    start, dash, end = spec.strip().partition("-")
    if not dash or not (start.isdigit() or end.isdigit()):
        return None
    if not start:  # a suffix: the last N bytes
        length = int(end)
        if length == 0:
            return "unsatisfiable"
        return (max(0, size - length), size - 1) if size else "unsatisfiable"
    first = int(start)
    last = int(end) if end.isdigit() else size - 1
    if last < first:
        return None
    if first >= size:
        return "unsatisfiable"
    return first, min(last, size - 1)


def _version_of(filename: str) -> str:
    if filename.endswith(".whl"):
        return str(parse_wheel_filename(filename)[1])
    return str(parse_sdist_filename(filename)[1])


def _upload_time(mtime: float) -> str:
    moment = datetime.datetime.fromtimestamp(mtime, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _html_document(title: str, body: str) -> bytes:
    return (
        "<!DOCTYPE html>\n<html>\n<head>\n"
        '<meta name="pypi:repository-version" content="1.1">\n'
        f"<title>{html.escape(title)}</title>\n</head>\n<body>\n<h1>{html.escape(title)}</h1>\n"
        f"{body}</body>\n</html>\n"
    ).encode()
