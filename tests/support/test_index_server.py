"""The loopback test index behaves like a real simple-API index: every other test trusts it."""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.index_server import IndexServer
from tests.support.wheels import build_sdist, build_wheel, file_sha256, wheel_metadata

JSON_V1 = "application/vnd.pypi.simple.v1+json"


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


@pytest.fixture
def index(tmp_path: Path) -> Iterator[IndexServer]:
    server = IndexServer(tmp_path / "index")
    server.add(build_wheel(tmp_path / "dist", "Internal.Tool", "1.0", requires_python=">=3.8"))
    server.add(build_sdist(tmp_path / "dist", "internal-tool", "1.0"))
    server.start()
    yield server
    server.stop()


def test_json_page_lists_files_with_hashes_metadata_and_pep700_fields(index: IndexServer) -> None:
    status, headers, body = _get(index.project_url("internal-tool"), {"Accept": JSON_V1})
    assert status == 200
    assert headers["Content-Type"] == JSON_V1
    doc = json.loads(body)
    assert doc["meta"]["api-version"] == "1.1"
    assert doc["versions"] == ["1.0"]
    wheel = next(f for f in doc["files"] if f["filename"].endswith(".whl"))
    assert wheel["hashes"]["sha256"] == index.sha256(wheel["filename"])
    assert wheel["requires-python"] == ">=3.8"
    expected_meta = hashlib.sha256(wheel_metadata(index.root / wheel["filename"])).hexdigest()
    assert wheel["core-metadata"] == {"sha256": expected_meta}
    assert wheel["size"] == (index.root / wheel["filename"]).stat().st_size


def test_html_page_by_default_with_escaped_requires_python(index: IndexServer) -> None:
    status, headers, body = _get(index.project_url("internal-tool"))
    assert status == 200
    assert headers["Content-Type"].startswith("text/html")
    assert b'data-requires-python="&gt;=3.8"' in body
    assert b"#sha256=" in body
    assert b"data-core-metadata=" in body


def test_html_only_index_ignores_json_preference(tmp_path: Path) -> None:
    with IndexServer(tmp_path / "index", html_only=True) as index:
        index.add(build_wheel(tmp_path / "dist", "a", "1"))
        _, headers, _ = _get(index.project_url("a"), {"Accept": f"{JSON_V1}, text/html;q=0.1"})
    assert headers["Content-Type"].startswith("text/html")


def test_file_and_metadata_downloads_match_advertised_hashes(index: IndexServer) -> None:
    wheel = next(p for p in index.root.iterdir() if p.suffix == ".whl")
    _, _, body = _get(index.file_url(wheel.name))
    assert hashlib.sha256(body).hexdigest() == file_sha256(wheel)
    _, _, meta = _get(index.file_url(wheel.name) + ".metadata")
    assert meta == wheel_metadata(wheel)


def test_corrupt_serves_bytes_that_do_not_match(index: IndexServer) -> None:
    wheel = next(p for p in index.root.iterdir() if p.suffix == ".whl")
    index.corrupt(wheel.name)
    _, _, body = _get(index.file_url(wheel.name))
    assert hashlib.sha256(body).hexdigest() != file_sha256(wheel)


def test_etag_revalidation_gives_304(index: IndexServer) -> None:
    _, headers, _ = _get(index.project_url("internal-tool"), {"Accept": JSON_V1})
    status, _, body = _get(
        index.project_url("internal-tool"), {"Accept": JSON_V1, "If-None-Match": headers["ETag"]}
    )
    assert (status, body) == (304, b"")


def test_yanked_file_is_marked(index: IndexServer) -> None:
    wheel = next(p for p in index.root.iterdir() if p.suffix == ".whl")
    index.yank(wheel.name, "broken")
    _, _, body = _get(index.project_url("internal-tool"), {"Accept": JSON_V1})
    entry = next(f for f in json.loads(body)["files"] if f["filename"] == wheel.name)
    assert entry["yanked"] == "broken"


def test_non_normalised_name_redirects(index: IndexServer) -> None:
    status, _, body = _get(index.url + "Internal.Tool/", {"Accept": JSON_V1})
    assert status == 200  # urllib followed the 301
    assert json.loads(body)["name"] == "internal-tool"
    assert "/simple/Internal.Tool/" in index.requests


def test_basic_auth_is_required_when_configured(tmp_path: Path) -> None:
    with IndexServer(tmp_path / "index", auth=("alice", "s3cret")) as index:
        assert _get(index.url)[0] == 401
        token = base64.b64encode(b"alice:s3cret").decode()
        assert _get(index.url, {"Authorization": f"Basic {token}"})[0] == 200


def test_fail_next_injects_server_errors(index: IndexServer) -> None:
    index.fail_next(2, status=503)
    assert [_get(index.url)[0] for _ in range(3)] == [503, 503, 200]


def test_stop_refuses_connections_and_start_reuses_the_port(index: IndexServer) -> None:
    port = index.port
    index.stop()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    index.start()
    assert index.port == port
    assert _get(index.url)[0] == 200


def test_pip_installs_from_it(index: IndexServer, tmp_path: Path) -> None:
    """The strongest check that pages are well-formed: a real installer accepts them."""
    target = tmp_path / "target"
    result = subprocess.run(
        [
            *(sys.executable, "-m", "pip", "download", "--isolated", "--no-deps"),
            *("--only-binary=:all:", "--index-url", index.url, "-d", str(target)),
            "internal-tool==1.0",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert [p.name for p in target.iterdir()] == ["internal_tool-1.0-py3-none-any.whl"]
