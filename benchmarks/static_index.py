"""A static simple index built from a directory of wheels, and a small server for it.

The benchmarks serve the corpus to Satchel, uv and pip from one loopback index so that every tool
fetches the same bytes from the same place. The index is generated once per run into a directory:

- ``simple/index.html`` / ``index.json``: the project list (PEP 503 HTML, PEP 691 JSON);
- ``simple/<project>/index.html`` / ``index.json``: one page per project, every link carrying its
  ``#sha256=``, ``data-requires-python`` and PEP 658/714 ``data-core-metadata`` (and the older
  ``data-dist-info-metadata`` spelling, which pip < 23.3 reads), the JSON with PEP 700 ``size``
  and ``versions``;
- ``files/<wheel>`` and ``files/<wheel>.metadata``: the wheel (hard-linked from the corpus when
  the filesystem allows, else copied) and its METADATA extracted byte for byte, so resolvers
  read ~2 KB instead of downloading the wheel (PEP 658).

Serving: a stdlib ``ThreadingHTTPServer`` speaking HTTP/1.1 keep-alive, choosing HTML or JSON
per request by the ``Accept`` header (``Vary: Accept``), sending files with ``sendfile``. Its
listen backlog is raised to 1024: uv opens dozens of connections at once, and the default
backlog of 5 made the kernel drop SYNs, which costs a 1-second retransmit each. What it costs:
one Python thread per connection and the GIL, so on a 2-core machine the server takes some CPU
from the tool being timed; a cached page is answered in well under a millisecond, and all three
tools pay the same. Run it in its own process (``python static_index.py serve ROOT``) so the
harness's own work never shares its GIL.

Request counts: every URL may carry one leading *tag* segment (``/<tag>/simple/...``,
``/<tag>/files/...``); the server answers it like the untagged path and counts the request under
the tag: project pages, ``.metadata`` files, wheels, other requests, and bytes sent.
``GET /_counters/<tag>`` answers that tag's counts as JSON (``GET /_counters``: all tags). The
harness gives every trial its own tag (``tagged_url``), so counts need no reset and a daemon
still fetching in the background never pollutes another trial's figures. Relative file links
(``../../files/x``) keep the tag by construction.

Slow-network mode: ``serve --latency-ms N`` sleeps N ms before answering every request (not the
counters), each request in its own thread, so a tool that asks concurrently pays the latency once
per wave, as on a real network, and a sequential one pays it per request.
"""

from __future__ import annotations

import argparse
import email.parser
import hashlib
import html
import json
import os
import re
import shutil
import socket
import sys
import threading
import time
import urllib.request
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from packaging.utils import canonicalize_name, parse_wheel_filename

__all__ = [
    "COUNTER_KINDS",
    "IndexInfo",
    "build_index",
    "make_server",
    "negotiate",
    "read_counters",
    "tagged_url",
]

JSON_TYPE = "application/vnd.pypi.simple.v1+json"
HTML_TYPE = "application/vnd.pypi.simple.v1+html"
LISTEN_BACKLOG = 1024
COUNTER_KINDS = ("pages", "metadata", "files", "other", "bytes")
MAX_TAGS = 100_000
"""Distinct tags counted before new ones share the ``"(overflow)"`` entry: a run uses a few
hundred, and a bound keeps a stray client from growing the server without limit."""
_TAG = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_ROOTS = ("simple", "files", "_counters")


@dataclass
class IndexInfo:
    """What was generated: project name -> wheel filenames."""

    root: Path
    projects: dict[str, list[str]] = field(default_factory=dict)

    @property
    def file_count(self) -> int:
        return sum(len(v) for v in self.projects.values())


def _wheel_metadata(wheel: Path) -> bytes:
    """The wheel's ``*.dist-info/METADATA``, exactly as stored (PEP 658 wants the same bytes)."""
    with zipfile.ZipFile(wheel) as zf:
        candidates = [
            n for n in zf.namelist() if n.count("/") == 1 and n.endswith(".dist-info/METADATA")
        ]
        if len(candidates) != 1:
            raise ValueError(f"{wheel.name}: expected one .dist-info/METADATA, found {candidates}")
        return zf.read(candidates[0])


def _requires_python(metadata: bytes) -> str | None:
    headers = email.parser.BytesHeaderParser().parsebytes(metadata)
    value = headers.get("Requires-Python")
    return str(value).strip() if value else None


def _place(src: Path, dst: Path) -> None:
    """Hard-link when possible (no copy of a 150 MB corpus per run), else copy."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _html_page(title: str, links: Iterable[str]) -> bytes:
    body = "\n".join(links)
    return (
        "<!DOCTYPE html>\n<html><head>"
        '<meta name="pypi:repository-version" content="1.1">'
        f"<title>{html.escape(title)}</title></head>\n<body>\n<h1>{html.escape(title)}</h1>\n"
        f"{body}\n</body></html>\n"
    ).encode()


def build_index(wheels: Iterable[Path], root: Path) -> IndexInfo:
    """Generate the static index for ``wheels`` under ``root`` (which must not exist yet).

    The same filename appearing twice (a wheel shared by two sets) is taken once; two different
    files with the same name would be a corrupt corpus and raise.
    """
    files_dir = root / "files"
    simple_dir = root / "simple"
    files_dir.mkdir(parents=True)
    simple_dir.mkdir()
    info = IndexInfo(root)
    entries: dict[str, list[dict[str, Any]]] = {}
    versions: dict[str, set[str]] = {}
    seen: dict[str, str] = {}
    for wheel in sorted(wheels, key=lambda p: p.name):
        digest = _sha256(wheel)
        if wheel.name in seen:
            if seen[wheel.name] != digest:
                raise ValueError(f"two different files named {wheel.name} in the corpus")
            continue
        seen[wheel.name] = digest
        name, version, _build, _tags = parse_wheel_filename(wheel.name)
        project: str = canonicalize_name(name)
        metadata = _wheel_metadata(wheel)
        _place(wheel, files_dir / wheel.name)
        (files_dir / f"{wheel.name}.metadata").write_bytes(metadata)
        entries.setdefault(project, []).append(
            {
                "filename": wheel.name,
                "url": f"../../files/{wheel.name}",
                "hashes": {"sha256": digest},
                "requires-python": _requires_python(metadata),
                "core-metadata": {"sha256": hashlib.sha256(metadata).hexdigest()},
                "dist-info-metadata": {"sha256": hashlib.sha256(metadata).hexdigest()},
                "size": wheel.stat().st_size,
            }
        )
        versions.setdefault(project, set()).add(str(version))
        info.projects.setdefault(project, []).append(wheel.name)

    meta = {"api-version": "1.1"}
    for project, files in entries.items():
        page_dir = simple_dir / project
        page_dir.mkdir()
        links = []
        for f in files:
            attrs = f'href="{html.escape(f["url"])}#sha256={f["hashes"]["sha256"]}"'
            if f["requires-python"]:
                attrs += f' data-requires-python="{html.escape(f["requires-python"])}"'
            md = f["core-metadata"]["sha256"]
            attrs += f' data-dist-info-metadata="sha256={md}" data-core-metadata="sha256={md}"'
            links.append(f"<a {attrs}>{html.escape(f['filename'])}</a><br/>")
        (page_dir / "index.html").write_bytes(_html_page(f"Links for {project}", links))
        page = {
            "meta": meta,
            "name": project,
            "versions": sorted(versions[project]),
            "files": [{k: v for k, v in f.items() if v is not None} for f in files],
        }
        (page_dir / "index.json").write_text(json.dumps(page, separators=(",", ":")))
    names = sorted(entries)
    (simple_dir / "index.html").write_bytes(
        _html_page("Simple index", (f'<a href="{n}/">{n}</a><br/>' for n in names))
    )
    (simple_dir / "index.json").write_text(
        json.dumps({"meta": meta, "projects": [{"name": n} for n in names]})
    )
    return info


def negotiate(accept: str | None) -> str:
    """``"json"`` or ``"html"`` for an ``Accept`` header (PEP 691), preferring the higher q.

    Installers list JSON first with q=1 and HTML lower, so this is a small q-value comparison,
    not a full media-range matcher; an absent header means HTML (what PEP 503 clients expect).
    """
    best_json = best_html = -1.0
    for part in (accept or "").split(","):
        fields = [x.strip() for x in part.split(";")]
        media = fields[0].lower()
        q = 1.0
        for param in fields[1:]:
            if param.startswith("q="):
                try:
                    q = float(param[2:])
                except ValueError:
                    q = 0.0
        if media in (JSON_TYPE, "application/vnd.pypi.simple.latest+json"):
            best_json = max(best_json, q)
        elif media in (HTML_TYPE, "application/vnd.pypi.simple.latest+html", "text/html", "*/*"):
            best_html = max(best_html, q)
    return "json" if best_json > 0 and best_json >= best_html else "html"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    _tag = ""  # the request's tag for the counters ("": not counted), set per request
    _kind = "other"

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # the hot path stays quiet
        pass

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def do_GET(self) -> None:
        self._serve(head=False)

    def _serve(self, *, head: bool) -> None:
        path = unquote(urlsplit(self.path).path)
        parts = [p for p in path.split("/") if p]
        tag = "-"
        if parts and parts[0] not in _ROOTS and _TAG.fullmatch(parts[0]):
            tag, parts = parts[0], parts[1:]
        self._tag = ""  # uncounted until known to be an index request (not the counters)
        if parts and parts[0] == "_counters" and tag == "-" and len(parts) <= 2:
            self._counters(parts[1] if len(parts) == 2 else None, head)
            return
        if self.server.latency > 0:
            time.sleep(self.server.latency)
        self._tag = tag
        self._kind = "other"
        if len(parts) == 2 and parts[0] == "simple":
            self._kind = "pages"
        elif len(parts) == 2 and parts[0] == "files":
            self._kind = "metadata" if parts[1].endswith(".metadata") else "files"
        self.server.count(tag, self._kind)
        root = self.server.root
        if parts and parts[0] == "simple" and len(parts) <= 2:
            if not path.endswith("/"):
                self._reply(301, b"", "text/plain", head, [("Location", path + "/")])
                return
            page_dir = root.joinpath(*parts)
            kind = negotiate(self.headers.get("Accept"))
            target = page_dir / f"index.{kind}"
            if not target.is_file():
                self._reply(404, b"not found\n", "text/plain", head)
                return
            ctype = JSON_TYPE if kind == "json" else "text/html; charset=utf-8"
            self._reply(200, target.read_bytes(), ctype, head, [("Vary", "Accept")])
            return
        if len(parts) == 2 and parts[0] == "files" and "/" not in parts[1] and parts[1] != "..":
            target = root / "files" / parts[1]
            if target.is_file():
                self._send_file(target, head)
                return
        self._reply(404, b"not found\n", "text/plain", head)

    def _reply(
        self,
        status: int,
        body: bytes,
        ctype: str,
        head: bool,
        extra: list[tuple[str, str]] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "max-age=600")
        for k, v in extra or []:
            self.send_header(k, v)
        self.end_headers()
        if not head:
            self.wfile.write(body)
            self.server.count(self._tag, "bytes", len(body))

    def _counters(self, tag: str | None, head: bool) -> None:
        """The counts of one tag (zeros when it was never seen) or of every tag, as JSON."""
        snapshot = self.server.snapshot()
        doc: Any = snapshot if tag is None else snapshot.get(tag, dict.fromkeys(COUNTER_KINDS, 0))
        self._reply(200, json.dumps(doc).encode(), "application/json", head)

    def _send_file(self, target: Path, head: bool) -> None:
        size = target.stat().st_size
        ctype = "text/plain" if target.name.endswith(".metadata") else "application/octet-stream"
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(size))
        self.send_header("Cache-Control", "max-age=31536000, immutable")
        self.end_headers()
        if not head:
            with target.open("rb") as f:
                self.connection.sendfile(f)
            self.server.count(self._tag, "bytes", size)


class _Server(ThreadingHTTPServer):
    request_queue_size = LISTEN_BACKLOG
    daemon_threads = True

    def __init__(self, address: tuple[str, int], root: Path, latency: float = 0.0) -> None:
        self.root = root
        self.latency = latency
        self._lock = threading.Lock()
        self._counts: dict[str, dict[str, int]] = {}
        super().__init__(address, _Handler)

    def count(self, tag: str, kind: str, amount: int = 1) -> None:
        """Add ``amount`` to the ``kind`` counter of ``tag`` (a request, or bytes sent)."""
        if not tag:
            return
        with self._lock:
            if tag not in self._counts and len(self._counts) >= MAX_TAGS:
                tag = "(overflow)"
            entry = self._counts.setdefault(tag, dict.fromkeys(COUNTER_KINDS, 0))
            entry[kind] += amount

    def snapshot(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return {tag: dict(entry) for tag, entry in self._counts.items()}

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients drop idle keep-alive connections at exit: not worth a traceback each."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


def make_server(root: Path, port: int = 0, latency_ms: float = 0.0) -> ThreadingHTTPServer:
    """A server for the index under ``root`` on 127.0.0.1 (``port=0``: an ephemeral port),
    answering every request after ``latency_ms`` (the slow-network mode)."""
    if latency_ms < 0:
        raise ValueError(f"latency must be >= 0 ms, got {latency_ms}")
    return _Server(("127.0.0.1", port), root, latency_ms / 1000)


def tagged_url(simple_url: str, tag: str) -> str:
    """``http://host:port/simple/`` -> ``http://host:port/<tag>/simple/``: counted under tag."""
    if not _TAG.fullmatch(tag) or tag in _ROOTS:
        raise ValueError(f"not a usable tag: {tag!r}")
    base = simple_url.removesuffix("/").removesuffix("/simple")
    return f"{base}/{tag}/simple/"


def read_counters(simple_url: str, tag: str) -> dict[str, int]:
    """The requests and bytes the server counted under ``tag`` so far (zeros if none)."""
    parts = urlsplit(simple_url)
    url = f"{parts.scheme}://{parts.netloc}/_counters/{tag}"
    with urllib.request.urlopen(url, timeout=30) as resp:  # loopback only: the harness's server
        doc = json.loads(resp.read())
    return {k: int(doc.get(k, 0)) for k in COUNTER_KINDS}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="generate an index from wheel directories")
    b.add_argument("root", type=Path)
    b.add_argument("wheel_dirs", type=Path, nargs="+")
    s = sub.add_parser("serve", help="serve ROOT; prints the simple URL, then serves forever")
    s.add_argument("root", type=Path)
    s.add_argument("--port", type=int, default=0)
    s.add_argument(
        "--latency-ms", type=float, default=0.0, help="sleep this long before every answer"
    )
    args = parser.parse_args(argv)
    if args.cmd == "build":
        info = build_index((w for d in args.wheel_dirs for w in d.glob("*.whl")), args.root)
        print(f"{len(info.projects)} projects, {info.file_count} files")
        return 0
    server = make_server(args.root, args.port, args.latency_ms)
    host, port = server.server_address[:2]
    print(f"http://{host!s}:{port}/simple/", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
