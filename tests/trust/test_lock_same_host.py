"""A lock's file is vouched for by an index's origin only under that index's own path.

Scenario (review of 67f8406, 2026-12-05): one repository server (Nexus, Artifactory, GitLab)
hosts the company's private index and a proxy of the public index on the same origin, under
two paths (``/private/simple/`` and ``/proxy/simple/``), both configured, the private one
first. A ``pylock.toml`` from a pull request lists the public impostor of the private
``internal-tool`` by its URL on the proxy path, and no ``index``. ``internal-tool`` is held
to the private index (the first that serves it), whose page does not list that sha256; but
the lock's URL is on the private index's origin (scheme, host, port), which vouched for it:
the impostor was fetched from the proxy path and installed as the private project, exit 0.
An index's origin vouches only for URLs under the index's own path (its URL without the
trailing ``simple/``): the file is refused, nothing fetched.
"""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from satchel.daemon.indexes.lockorigins import _under
from tests.e2e.twoindexes import EXIT_FAILURE, World, open_world
from tests.trust.test_lock_origins import files_fetched, pylock

IMPOSTOR = "internal_tool-9.0-py3-none-any.whl"


class _Repository:
    """One origin on 127.0.0.1 serving two indexes by path: ``/private/...`` is the internal
    index server, ``/proxy/...`` the public one (each request passed on as it is)."""

    def __init__(self, routes: dict[str, str]) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                prefix, _, rest = self.path.lstrip("/").partition("/")
                upstream = routes.get(prefix)
                if upstream is None:
                    self.send_error(404)
                    return
                request = urllib.request.Request(f"{upstream}/{rest}", headers=dict(self.headers))
                try:
                    with urllib.request.urlopen(request, timeout=30) as answer:
                        status, headers, body = answer.status, answer.headers, answer.read()
                except urllib.error.HTTPError as exc:
                    status, headers, body = exc.code, exc.headers, exc.read()
                self.send_response(status)
                for name in ("Content-Type", "Location"):
                    if headers.get(name):
                        self.send_header(name, headers[name])
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[World, _Repository]]:
    with open_world(tmp_path, public=False) as w:
        repo = _Repository({"private": w.internal.base_url, "proxy": w.public.base_url})
        try:
            w.ok("index", "remove", "internal")
            w.ok("index", "add", "internal", f"{repo.base}/private/simple/")
            w.ok("index", "add", "proxy", f"{repo.base}/proxy/simple/", "--default")
            yield w, repo
        finally:
            repo.stop()


def test_a_lock_cannot_take_a_file_from_another_index_on_the_same_host(
    world: tuple[World, _Repository],
) -> None:
    w, repo = world
    sha = w.public.sha256(IMPOSTOR)
    lock = pylock(
        w.root / "pylock.toml", ("internal-tool", "9.0", f"{repo.base}/proxy/files/{IMPOSTOR}", sha)
    )
    venv = w.root / "venv"

    result = w.satchel("install", "--lock", str(lock), "--venv", str(venv), "--json", timeout=120)

    assert result.returncode == EXIT_FAILURE, (result.stdout, result.stderr)
    assert "[not-found]" in result.stderr or '"not-found"' in result.stdout, result.stderr
    assert files_fetched(w.public) == []
    assert not (w.blob(sha)).exists()


@pytest.mark.parametrize(
    ("file_url", "index_url", "vouched"),
    [
        ("http://h/private/packages/a.whl", "http://h/private/simple/", True),
        ("http://h/proxy/packages/a.whl", "http://h/private/simple/", False),  # the scenario
        ("http://h/files/a.whl", "http://h/simple", True),  # the index at the server's root
        ("https://h/team/mirror/+f/1/a.whl", "https://h/team/mirror/+simple/", True),  # devpi
        ("https://h/team/other/+f/1/a.whl", "https://h/team/mirror/+simple/", False),
        ("https://h/p/1/pypi/files/ab/a.whl", "https://h/p/1/pypi/simple", True),  # GitLab
        ("https://h/wheels/a.whl", "https://h/wheels/index.html", True),  # a flat page
        ("file:///srv/wheelhouse/a.whl", "file:///srv/wheelhouse", True),  # a flat directory
        ("file:///home/someone/a.whl", "file:///srv/wheelhouse", False),
        ("https://h:8443/private/a.whl", "https://h/private/simple/", False),  # another origin
    ],
)
def test_an_index_vouches_by_url_only_for_its_own_path(
    file_url: str, index_url: str, vouched: bool
) -> None:
    assert _under(file_url, index_url) is vouched
