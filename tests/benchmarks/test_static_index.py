"""The benchmark's static index: what it generates, how it serves it, that uv and pip accept it."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urljoin

import pytest

from benchmarks.static_index import JSON_TYPE, build_index, make_server, negotiate
from tests.support.wheels import build_wheel, wheel_metadata

PIP_ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, "
    "text/html; q=0.01"
)
UV_ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, "
    "text/html;q=0.01"
)


@pytest.fixture
def wheels(tmp_path: Path) -> list[Path]:
    out = tmp_path / "wheels"
    return [
        build_wheel(out, "Alpha_Pkg", "1.0", requires=["beta>=2"], requires_python=">=3.8"),
        build_wheel(out, "beta", "2.1"),
    ]


@pytest.fixture
def index(tmp_path: Path, wheels: list[Path]) -> Path:
    root = tmp_path / "index"
    build_index(wheels, root)
    return root


@pytest.fixture
def url(index: Path) -> Iterator[str]:
    server = make_server(index)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        yield f"http://{host!s}:{port}/simple/"
    finally:
        server.shutdown()
        server.server_close()


def _get(url: str, accept: str | None = None) -> tuple[int, str, bytes]:
    req = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.headers.get("Content-Type", ""), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type", ""), exc.read()


def test_projects_are_listed_under_their_normalized_names(
    tmp_path: Path, wheels: list[Path]
) -> None:
    info = build_index(wheels, tmp_path / "idx")
    assert sorted(info.projects) == ["alpha-pkg", "beta"]
    assert (tmp_path / "idx" / "simple" / "alpha-pkg" / "index.html").is_file()


def test_metadata_file_is_the_wheels_metadata_byte_for_byte(
    index: Path, wheels: list[Path]
) -> None:
    served = (index / "files" / f"{wheels[0].name}.metadata").read_bytes()
    assert served == wheel_metadata(wheels[0])


def test_json_page_carries_hashes_metadata_hash_size_and_requires_python(
    index: Path, wheels: list[Path]
) -> None:
    page = json.loads((index / "simple" / "alpha-pkg" / "index.json").read_text())
    assert page["meta"]["api-version"] == "1.1"
    assert page["versions"] == ["1.0"]
    (entry,) = page["files"]
    assert entry["hashes"]["sha256"] == hashlib.sha256(wheels[0].read_bytes()).hexdigest()
    assert entry["core-metadata"]["sha256"] == hashlib.sha256(wheel_metadata(wheels[0])).hexdigest()
    assert entry["size"] == wheels[0].stat().st_size
    assert entry["requires-python"] == ">=3.8"


def test_html_page_advertises_pep658_metadata_and_requires_python(
    index: Path, wheels: list[Path]
) -> None:
    html = (index / "simple" / "alpha-pkg" / "index.html").read_text()
    digest = hashlib.sha256(wheel_metadata(wheels[0])).hexdigest()
    assert f'data-core-metadata="sha256={digest}"' in html
    assert 'data-requires-python="&gt;=3.8"' in html


def test_same_file_from_two_sets_is_indexed_once(tmp_path: Path, wheels: list[Path]) -> None:
    copy_dir = tmp_path / "other-set"
    copy_dir.mkdir()
    copy = Path(shutil.copy2(wheels[1], copy_dir))
    info = build_index([*wheels, copy], tmp_path / "idx")
    assert info.file_count == 2


def test_two_different_files_with_one_name_are_refused(tmp_path: Path, wheels: list[Path]) -> None:
    impostor = build_wheel(tmp_path / "impostor", "beta", "2.1", summary="Not the same bytes.")
    with pytest.raises(ValueError, match="two different files"):
        build_index([*wheels, impostor], tmp_path / "idx")


@pytest.mark.parametrize(
    ("accept", "kind"),
    [
        (PIP_ACCEPT, "json"),
        (UV_ACCEPT, "json"),
        (None, "html"),
        ("text/html", "html"),
        ("application/vnd.pypi.simple.v1+json;q=0.1, text/html", "html"),
        ("application/vnd.pypi.simple.v1+json;q=0", "html"),
    ],
)
def test_negotiation_follows_the_accept_q_values(accept: str | None, kind: str) -> None:
    assert negotiate(accept) == kind


def test_server_answers_json_to_installers_and_html_by_default(url: str) -> None:
    status, ctype, body = _get(url + "beta/", UV_ACCEPT)
    assert (status, ctype) == (200, JSON_TYPE)
    assert json.loads(body)["name"] == "beta"
    status, ctype, body = _get(url + "beta/")
    assert status == 200
    assert ctype.startswith("text/html")
    assert b"beta-2.1-py3-none-any.whl" in body


def test_server_redirects_a_page_without_trailing_slash(url: str) -> None:
    status, _ctype, body = _get(url + "beta", UV_ACCEPT)  # urllib follows the 301
    assert status == 200
    assert json.loads(body)["name"] == "beta"


def test_server_serves_files_and_refuses_paths_outside_files(url: str, wheels: list[Path]) -> None:
    base = url.removesuffix("simple/")
    status, _ctype, body = _get(f"{base}files/{wheels[1].name}")
    assert (status, body) == (200, wheels[1].read_bytes())
    assert _get(f"{base}files/%2e%2e/simple/index.html")[0] == 404
    assert _get(url + "missing/")[0] == 404


def _clean_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1")
    return env


@pytest.mark.skipif(shutil.which("uv") is None, reason="uv is not on PATH")
def test_uv_resolves_against_the_index(url: str, tmp_path: Path) -> None:
    uv = shutil.which("uv")
    assert uv is not None
    out = subprocess.run(
        [uv, "pip", "compile", "--no-config", "--index-url", url, "--cache-dir",
         str(tmp_path / "uvc"), "-p", sys.executable, "--no-header", "-"],
        input="alpha-pkg\n", capture_output=True, text=True, env=_clean_env(tmp_path), check=True,
    )  # fmt: skip
    pins = [ln for ln in out.stdout.splitlines() if ln and not ln.startswith(" ")]
    assert pins[:2] == ["alpha-pkg==1.0", "beta==2.1"]


def test_pip_downloads_from_the_index(url: str, tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--index-url", url, "--trusted-host",
         "127.0.0.1", "--no-cache-dir", "-d", str(dest), "alpha-pkg"],
        env=_clean_env(tmp_path), check=True, capture_output=True,
    )  # fmt: skip
    assert sorted(p.name for p in dest.iterdir()) == [
        "alpha_pkg-1.0-py3-none-any.whl",
        "beta-2.1-py3-none-any.whl",
    ]


def _counters(url: str, tag: str) -> dict[str, int]:
    from benchmarks.static_index import read_counters

    return read_counters(url, tag)


def test_requests_are_counted_per_url_tag_by_kind(url: str, wheels: list[Path]) -> None:
    """Pages, .metadata files and wheels each counted under the trial's tag, bytes too."""
    from benchmarks.static_index import tagged_url

    mine = tagged_url(url, "uv-7")
    assert mine.endswith("/uv-7/simple/")
    assert _get(mine + "beta/", UV_ACCEPT)[0] == 200
    status, _ctype, page = _get(mine + "alpha-pkg/", UV_ACCEPT)
    assert status == 200
    file_url = urljoin(mine + "alpha-pkg/", json.loads(page)["files"][0]["url"])
    assert "/uv-7/files/" in file_url  # the relative link keeps the tag
    assert _get(file_url + ".metadata")[0] == 200
    assert _get(file_url)[2] == wheels[0].read_bytes()
    counts = _counters(url, "uv-7")
    assert {k: counts[k] for k in ("pages", "metadata", "files", "other")} == {
        "pages": 2,
        "metadata": 1,
        "files": 1,
        "other": 0,
    }
    assert counts["bytes"] > wheels[0].stat().st_size
    assert _counters(url, "someone-else") == dict.fromkeys(
        ("pages", "metadata", "files", "other", "bytes"), 0
    )


def test_untagged_requests_are_counted_apart_and_reading_counts_is_not_counted(url: str) -> None:
    assert _get(url + "beta/", UV_ACCEPT)[0] == 200
    _counters(url, "-")
    assert _counters(url, "-")["pages"] == 1


def test_tags_must_be_plain_path_segments() -> None:
    from benchmarks.static_index import tagged_url

    for bad in ("", "a/b", "simple", "files", "../x"):
        with pytest.raises(ValueError, match="not a usable tag"):
            tagged_url("http://127.0.0.1:9/simple/", bad)


def test_slow_network_mode_refuses_a_negative_latency_and_still_serves(index: Path) -> None:
    with pytest.raises(ValueError, match="latency must be >= 0"):
        make_server(index, latency_ms=-1)
    server = make_server(index, latency_ms=5)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        status, _ctype, body = _get(f"http://{host!s}:{port}/t1/simple/beta/", UV_ACCEPT)
        assert (status, json.loads(body)["name"]) == (200, "beta")
    finally:
        server.shutdown()
        server.server_close()
