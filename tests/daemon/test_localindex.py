"""The local index over real sockets: an in-process runtime, a loopback upstream, httpx as client.

Each test starts the daemon's runtime (cache, config, upstream, catalog and the local index on an
ephemeral port) against an `IndexServer` holding real wheels, and speaks HTTP to it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import stat
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import trio

from satchel.daemon.localindex import local_index_state
from satchel.daemon.process.app import run_runtime
from satchel.daemon.services.daemon import runtime
from satchel.daemon.settings.ownindex import TOKEN_FILE
from tests.support.daemon import HANG_GUARD, in_process_app
from tests.support.localindex import local_index, two_indexes, write_config
from tests.support.wheels import build_wheel, file_sha256, wheel_metadata

JSON_V1 = "application/vnd.pypi.simple.v1+json"
HTML_V1 = "application/vnd.pypi.simple.v1+html"


# -- access control ------------------------------------------------------------------------------


async def test_token_file_is_private_and_stable(tmp_path: Path) -> None:
    async with local_index(tmp_path) as local:
        path = local.app.paths.state_dir / TOKEN_FILE
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert path.read_text().strip() == local.token
    async with local_index(tmp_path) as again:
        assert again.token == local.token


@pytest.fixture
def no_peer_auth(monkeypatch: pytest.MonkeyPatch) -> None:
    """The daemon as on an OS where it cannot tell who a loopback peer is (not Linux): every
    request needs the token."""
    monkeypatch.setattr("satchel.daemon.localindex.supported", lambda: False)


@pytest.mark.usefixtures("no_peer_auth")
async def test_missing_token_is_401_without_project_names(tmp_path: Path) -> None:
    async with local_index(tmp_path) as local, httpx.AsyncClient() as anonymous:
        await local.get("/simple/alpha/")  # the cache now knows alpha
        for path in ("/simple/", "/simple/alpha/", "/simple/nope/", "/files/x/y"):
            response = await anonymous.get(local.base + path)
            assert response.status_code == 401
            assert response.headers["WWW-Authenticate"].startswith("Basic ")
            assert b"alpha" not in response.content
            assert b"nope" not in response.content


async def test_wrong_token_is_401(tmp_path: Path) -> None:
    async with local_index(tmp_path) as local:
        response = await local.client.get(
            local.base + "/simple/alpha/", auth=httpx.BasicAuth("satchel", "x" * 43)
        )
        assert response.status_code == 401


async def test_any_user_name_with_the_token_is_accepted(tmp_path: Path) -> None:
    async with local_index(tmp_path) as local:
        response = await local.client.get(
            local.base + "/simple/", auth=httpx.BasicAuth("whoever", local.token)
        )
        assert response.status_code == 200


async def test_foreign_host_header_is_refused(tmp_path: Path) -> None:
    async with local_index(tmp_path) as local:
        response = await local.get("/simple/", Host="attacker.example.invalid")
        assert response.status_code == 400


# -- pages and negotiation -----------------------------------------------------------------------


async def test_json_page_carries_pep_691_700_fields(tmp_path: Path) -> None:
    async with local_index(tmp_path) as local:
        response = await local.get("/simple/alpha/", Accept=JSON_V1)
        assert response.status_code == 200
        assert response.headers["Content-Type"] == JSON_V1
        assert response.headers["Vary"] == "Accept"
        assert response.headers["Cache-Control"] == "no-cache"
        page = response.json()
        assert page["meta"]["api-version"] == "1.1"
        assert page["name"] == "alpha"
        assert set(page["versions"]) == {"1.0", "2.0"}
        by_name = {f["filename"]: f for f in page["files"]}
        new = by_name["alpha-2.0-py3-none-any.whl"]
        path = local.dist / "alpha-2.0-py3-none-any.whl"
        assert new["hashes"] == {"sha256": file_sha256(path)}
        assert new["url"] == f"/files/{file_sha256(path)}/alpha-2.0-py3-none-any.whl"
        assert new["requires-python"] == ">=3.8"
        assert new["size"] == path.stat().st_size
        assert "upload-time" in new


async def test_no_accept_header_gives_html_with_api_version_meta(tmp_path: Path) -> None:
    async with local_index(tmp_path) as local:
        response = await local.client.get(local.base + "/simple/alpha/", headers={"Accept": ""})
        assert response.headers["Content-Type"].startswith("text/html")
        text = response.text
        assert '<meta name="pypi:repository-version" content="1.1">' in text
        assert 'data-requires-python="&gt;=3.8"' in text
        assert "#sha256=" in text


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (f"{JSON_V1}, {HTML_V1};q=0.1, text/html;q=0.01", JSON_V1),
        (f"{HTML_V1}, {JSON_V1};q=0.5", HTML_V1),
        ("*/*", "text/html"),
        ("application/vnd.pypi.simple.latest+json", JSON_V1),
        ("text/*", "text/html"),
    ],
)
async def test_accept_header_negotiation(tmp_path: Path, accept: str, expected: str) -> None:
    async with local_index(tmp_path) as local:
        response = await local.get("/simple/alpha/", Accept=accept)
        assert response.status_code == 200
        assert response.headers["Content-Type"].split(";")[0] == expected


async def test_unacceptable_accept_is_406(tmp_path: Path) -> None:
    async with local_index(tmp_path) as local:
        response = await local.get("/simple/alpha/", Accept="application/xml")
        assert response.status_code == 406
        assert response.headers["Vary"] == "Accept"
        response = await local.get("/simple/alpha/", Accept=f"{JSON_V1};q=0, text/html;q=0")
        assert response.status_code == 406


async def test_format_query_overrides_accept(tmp_path: Path) -> None:
    async with local_index(tmp_path) as local:
        response = await local.get(f"/simple/alpha/?format={JSON_V1}", Accept="text/html")
        assert response.headers["Content-Type"] == JSON_V1
        response = await local.get("/simple/alpha/?format=application/nonsense")
        assert response.status_code == 406


async def test_non_normalised_name_redirects_permanently(tmp_path: Path) -> None:
    async with local_index(tmp_path) as local:
        response = await local.get("/simple/Alpha_/")
        assert response.status_code == 404  # not a valid name: trailing separator
        response = await local.get("/simple/ALPHA/")
        assert response.status_code == 301
        assert response.headers["Location"] == "/simple/alpha/"


async def test_missing_trailing_slash_redirects_keeping_the_query(tmp_path: Path) -> None:
    async with local_index(tmp_path) as local:
        response = await local.get("/simple/alpha?format=json")
        assert response.status_code == 301
        assert response.headers["Location"] == "/simple/alpha/?format=json"
        response = await local.get("/simple")
        assert response.headers["Location"] == "/simple/"


async def test_etag_revalidation_is_304(tmp_path: Path) -> None:
    async with local_index(tmp_path) as local:
        first = await local.get("/simple/alpha/", Accept=JSON_V1)
        etag = first.headers["ETag"]
        again = await local.get("/simple/alpha/", Accept=JSON_V1, **{"If-None-Match": etag})
        assert again.status_code == 304
        assert again.content == b""
        assert again.headers["ETag"] == etag
        html = await local.get("/simple/alpha/", Accept="text/html", **{"If-None-Match": etag})
        assert html.status_code == 200  # another representation, another tag


async def test_head_of_a_page_has_headers_and_no_body(tmp_path: Path) -> None:
    async with local_index(tmp_path) as local:
        got = await local.get("/simple/alpha/", Accept=JSON_V1)
        head = await local.client.head(local.base + "/simple/alpha/", headers={"Accept": JSON_V1})
        assert head.status_code == 200
        assert head.content == b""
        assert head.headers["Content-Length"] == str(len(got.content))


async def test_unknown_project_is_404(tmp_path: Path) -> None:
    async with local_index(tmp_path) as local:
        response = await local.get("/simple/does-not-exist/")
        assert response.status_code == 404


async def test_root_lists_cached_projects(tmp_path: Path) -> None:
    async with local_index(tmp_path) as local:
        await local.get("/simple/alpha/")
        response = await local.get("/simple/", Accept=JSON_V1)
        assert response.json()["projects"] == [{"name": "alpha"}]


async def test_yanked_file_is_marked(tmp_path: Path) -> None:
    async with local_index(tmp_path) as local:
        local.index.yank("alpha-1.0-py3-none-any.whl", "broken")
        page = (await local.get("/simple/alpha/", Accept=JSON_V1)).json()
        yanked = {f["filename"]: f.get("yanked") for f in page["files"]}
        assert yanked == {
            "alpha-1.0-py3-none-any.whl": "broken",
            "alpha-2.0-py3-none-any.whl": None,
        }
        html = (await local.get("/simple/alpha/", Accept="text/html")).text
        assert 'data-yanked="broken"' in html


# -- files ---------------------------------------------------------------------------------------


async def test_file_is_fetched_once_verified_and_cached_immutably(tmp_path: Path) -> None:
    async with local_index(tmp_path) as local:
        page = (await local.get("/simple/beta/", Accept=JSON_V1)).json()
        url = page["files"][0]["url"]
        local.index.reset_log()
        first = await local.get(url)
        second = await local.get(url)
        expected = (local.dist / "beta-0.5-py3-none-any.whl").read_bytes()
        assert first.content == second.content == expected
        assert first.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        assert first.headers["ETag"] == f'"{hashlib.sha256(expected).hexdigest()}"'
        downloads = [r for r in local.index.requests if r.startswith("/files/")]
        assert downloads == ["/files/beta-0.5-py3-none-any.whl"]


async def test_corrupt_upstream_file_is_502_and_not_served(tmp_path: Path) -> None:
    async with local_index(tmp_path) as local:
        url = (await local.get("/simple/beta/", Accept=JSON_V1)).json()["files"][0]["url"]
        local.index.corrupt("beta-0.5-py3-none-any.whl")
        response = await local.get(url)
        assert response.status_code == 502
        assert not local.app.services.runtime or not (await runtime(local.app)).store.has(
            url.split("/")[2]
        )


async def test_byte_ranges(tmp_path: Path) -> None:
    async with local_index(tmp_path) as local:
        url = (await local.get("/simple/beta/", Accept=JSON_V1)).json()["files"][0]["url"]
        whole = (await local.get(url)).content
        part = await local.get(url, Range="bytes=10-19")
        assert part.status_code == 206
        assert part.content == whole[10:20]
        assert part.headers["Content-Range"] == f"bytes 10-19/{len(whole)}"
        tail = await local.get(url, Range="bytes=-5")
        assert tail.content == whole[-5:]
        beyond = await local.get(url, Range=f"bytes={len(whole)}-")
        assert beyond.status_code == 416
        assert beyond.headers["Content-Range"] == f"bytes */{len(whole)}"
        stale_if_range = await local.get(url, Range="bytes=0-0", **{"If-Range": '"other"'})
        assert stale_if_range.status_code == 200
        assert stale_if_range.content == whole


async def test_file_etag_is_304_and_head_has_length(tmp_path: Path) -> None:
    async with local_index(tmp_path) as local:
        url = (await local.get("/simple/beta/", Accept=JSON_V1)).json()["files"][0]["url"]
        first = await local.get(url)
        cached = await local.get(url, **{"If-None-Match": first.headers["ETag"]})
        assert cached.status_code == 304
        head = await local.client.head(local.base + url)
        assert head.status_code == 200
        assert head.content == b""
        assert head.headers["Content-Length"] == str(len(first.content))


async def test_metadata_is_advertised_and_byte_identical(tmp_path: Path) -> None:
    async with local_index(tmp_path) as local:
        page = (await local.get("/simple/beta/", Accept=JSON_V1)).json()
        entry = page["files"][0]
        expected = wheel_metadata(local.dist / "beta-0.5-py3-none-any.whl")
        digest = hashlib.sha256(expected).hexdigest()
        assert entry["core-metadata"] == {"sha256": digest}
        assert entry["dist-info-metadata"] == {"sha256": digest}
        response = await local.get(entry["url"] + ".metadata")
        assert response.status_code == 200
        assert response.content == expected


async def test_metadata_not_advertised_when_neither_cache_nor_upstream_has_it(
    tmp_path: Path,
) -> None:
    async with local_index(tmp_path) as local:
        local.index.metadata = False
        page = (await local.get("/simple/beta/", Accept=JSON_V1)).json()
        assert "core-metadata" not in page["files"][0]
        assert "data-core-metadata" not in (await local.get("/simple/beta/")).text


async def test_metadata_held_in_the_cache_is_advertised_without_upstream(tmp_path: Path) -> None:
    async with local_index(tmp_path) as local:
        url = (await local.get("/simple/beta/", Accept=JSON_V1)).json()["files"][0]["url"]
        await local.get(url + ".metadata")  # now in the metadb
        local.index.metadata = False
        page = (await local.get("/simple/beta/", Accept=JSON_V1)).json()
        assert "core-metadata" in page["files"][0]


# -- hostile requests ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/simple/../../etc/passwd/",
        "/simple/%2e%2e%2f%2e%2e%2fetc/",
        "/simple/a%00b/",
        "/files/" + "0" * 64 + "/..%2f..%2fetc%2fpasswd",
        "/files/" + "0" * 64 + "/../../blobs",
        "/files/../../../etc/passwd",
        "/files/" + "Z" * 64 + "/beta-0.5-py3-none-any.whl",
        "/files/" + "0" * 64 + "/beta-0.5-py3-none-any.whl",
        "/files/" + "0" * 64 + "/beta-0.5.tar.gz.metadata",
        "/nothing-here",
    ],
)
async def test_traversal_and_junk_paths_are_404(tmp_path: Path, path: str) -> None:
    async with local_index(tmp_path) as local:
        response = await local.get(path)
        assert response.status_code in (400, 404)
        assert b"root:" not in response.content


async def raw_exchange(port: int, data: bytes) -> bytes:
    """Send *data*, read until the server closes (each exchange here ends in a close; the
    guard turns one kept open into a failure that says so)."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    received = b""
    async with stream:
        await stream.send_all(data)
        with trio.move_on_after(HANG_GUARD) as guard:
            while chunk := await stream.receive_some(65536):
                received += chunk
    assert not guard.cancelled_caught, f"the connection was kept open after {received[:200]!r}"
    return received


def auth_header(token: str) -> bytes:
    return b"Authorization: Basic " + base64.b64encode(b"satchel:" + token.encode()) + b"\r\n"


async def test_huge_request_head_is_431_and_closed(tmp_path: Path) -> None:
    async with local_index(tmp_path) as local:
        port = local_index_state(local.app).port
        assert port is not None
        head = b"GET /simple/ HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n"
        answer = await raw_exchange(port, head)
        assert answer.startswith(b"HTTP/1.1 431 ")


async def test_other_methods_are_405(tmp_path: Path) -> None:
    async with local_index(tmp_path) as local:
        response = await local.client.post(local.base + "/simple/", content=b"x")
        assert response.status_code == 405
        assert response.headers["Allow"] == "GET, HEAD"


async def test_pipelined_requests_are_answered_in_order(tmp_path: Path) -> None:
    async with local_index(tmp_path) as local:
        port = local_index_state(local.app).port
        assert port is not None
        one = b"GET /simple/alpha/ HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: " + JSON_V1.encode()
        one += b"\r\n" + auth_header(local.token) + b"\r\n"
        two = b"GET /simple/nope-nope/ HTTP/1.1\r\nHost: 127.0.0.1\r\n" + auth_header(local.token)
        two += b"Connection: close\r\n\r\n"
        answer = await raw_exchange(port, one + two)
        first, _, rest = answer.partition(b"HTTP/1.1 404 ")
        assert first.startswith(b"HTTP/1.1 200 ")
        assert json.loads(first.split(b"\r\n\r\n", 1)[1])["name"] == "alpha"
        assert rest  # the second answer followed the first on the same connection


# -- offline and scope ---------------------------------------------------------------------------


async def test_upstream_down_serves_stored_files_only_marked_stale(tmp_path: Path) -> None:
    async with local_index(tmp_path) as local:
        page = (await local.get("/simple/alpha/", Accept=JSON_V1)).json()
        kept = next(f for f in page["files"] if f["filename"].startswith("alpha-1.0"))
        assert (await local.get(kept["url"])).status_code == 200
        local.index.stop()
        response = await local.get("/simple/alpha/", Accept=JSON_V1)
        assert response.status_code == 200
        assert [f["filename"] for f in response.json()["files"]] == [kept["filename"]]
        assert response.json()["versions"] == ["1.0"]
        assert response.headers["X-Satchel-Stale"].endswith("Z")
        assert response.headers["Warning"].startswith("110 ")
        assert (await local.get(kept["url"])).status_code == 200


async def test_upstream_down_and_never_fetched_is_not_found(tmp_path: Path) -> None:
    async with local_index(tmp_path) as local:
        local.index.stop()
        response = await local.get("/simple/beta/")
        assert response.status_code in (404, 503)
        assert response.headers.get("X-Satchel-Stale") is None


async def test_fresh_page_has_no_stale_header(tmp_path: Path) -> None:
    async with local_index(tmp_path) as local:
        response = await local.get("/simple/alpha/")
        assert "X-Satchel-Stale" not in response.headers
        assert "Warning" not in response.headers


async def test_first_index_wins_never_a_union(tmp_path: Path) -> None:
    async with two_indexes(tmp_path) as (local, _public):
        page = (await local.get("/simple/internal-tool/", Accept=JSON_V1)).json()
        assert [f["filename"] for f in page["files"]] == ["internal_tool-1.0-py3-none-any.whl"]
        assert page["versions"] == ["1.0"]


async def test_pinned_project_comes_from_its_index_only(tmp_path: Path) -> None:
    async with two_indexes(tmp_path, '[pins]\ninternal-tool = "public"\n\n') as (local, _):
        page = (await local.get("/simple/internal-tool/", Accept=JSON_V1)).json()
        assert [f["filename"] for f in page["files"]] == ["internal_tool-9.9-py3-none-any.whl"]


async def test_first_index_down_never_falls_through_to_the_next(tmp_path: Path) -> None:
    async with two_indexes(tmp_path) as (local, _public):
        local.index.stop()  # the private index, never seen serving internal-tool
        response = await local.get("/simple/internal-tool/", Accept=JSON_V1)
        assert response.status_code == 503
        assert b"9.9" not in response.content


async def test_file_of_a_shadowed_index_is_not_served(tmp_path: Path) -> None:
    async with two_indexes(tmp_path) as (local, public):
        await local.get("/simple/internal-tool/")
        sha = public.sha256("internal_tool-9.9-py3-none-any.whl")
        response = await local.get(f"/files/{sha}/internal_tool-9.9-py3-none-any.whl")
        assert response.status_code == 404
        assert not any(r.startswith("/files/") for r in public.requests)


# -- the listener --------------------------------------------------------------------------------


async def wait_until(check: Callable[[], bool], seconds: float = HANG_GUARD) -> None:
    """Poll *check*: the state changes in another task with no event to wait on (*seconds*:
    a hang guard, not a measurement)."""
    with trio.fail_after(seconds):
        while not check():  # noqa: ASYNC110
            await trio.sleep(0.05)


async def test_port_in_use_is_reported_and_retried_without_stopping_the_daemon(
    tmp_path: Path,
) -> None:
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    port = blocker.getsockname()[1]
    write_config(tmp_path, "http://127.0.0.1:9/simple/")
    config = tmp_path / "config" / "config.toml"
    config.write_text(
        config.read_text().replace("local-index-port = 0", f"local-index-port = {port}")
    )
    app = in_process_app(tmp_path)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_runtime, app)
        await runtime(app)  # the daemon's services are up regardless
        await wait_until(lambda: local_index_state(app).state == "error")
        state = local_index_state(app)
        assert state.error is not None and f"127.0.0.1:{port}" in state.error
        assert state.base_url is None
        blocker.close()
        await wait_until(lambda: local_index_state(app).state == "serving")
        assert local_index_state(app).port == port
        nursery.cancel_scope.cancel()


async def test_changing_the_configured_port_moves_the_listener(tmp_path: Path) -> None:
    async with local_index(tmp_path) as local:
        old_port = local_index_state(local.app).port
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        new_port = probe.getsockname()[1]
        probe.close()
        config = tmp_path / "config" / "config.toml"
        config.write_text(
            config.read_text().replace("local-index-port = 0", f"local-index-port = {new_port}")
        )
        await wait_until(lambda: local_index_state(local.app).port == new_port)
        response = await local.client.get(f"http://127.0.0.1:{new_port}/simple/")
        assert response.status_code == 200
        with pytest.raises(httpx.ConnectError):
            await httpx.AsyncClient().get(f"http://127.0.0.1:{old_port}/simple/")


async def test_localindex_info_gives_a_url_without_credentials_on_linux(tmp_path: Path) -> None:
    """issue 13.5: where the kernel names a loopback peer's uid, tools get no secret."""
    from satchel.daemon.api import RequestContext
    from satchel.daemon.api.localindex import localindex_info
    from satchel.protocol.methods.localindex import LocalIndexInfoParams

    async def send(message: object) -> None:
        return None

    if not sys.platform.startswith("linux"):
        pytest.skip("peer identification is Linux-only")
    async with local_index(tmp_path) as local:
        ctx = RequestContext(local.app, 1, "localindex.info", send)
        info = await localindex_info(ctx, LocalIndexInfoParams())
        port = local_index_state(local.app).port
        assert info.peer_auth
        assert info.url == info.base_url == f"http://127.0.0.1:{port}/simple/"


@pytest.mark.usefixtures("no_peer_auth")
async def test_localindex_info_gives_the_token_url(tmp_path: Path) -> None:
    from satchel.daemon.api import RequestContext
    from satchel.daemon.api.localindex import localindex_info
    from satchel.protocol.methods.localindex import LocalIndexInfoParams

    async def send(message: object) -> None:
        return None

    async with local_index(tmp_path) as local:
        ctx = RequestContext(local.app, 1, "localindex.info", send)
        info = await localindex_info(ctx, LocalIndexInfoParams())
        port = local_index_state(local.app).port
        assert info.state == "serving"
        assert info.url == f"http://satchel:{local.token}@127.0.0.1:{port}/simple/"
        assert info.base_url == f"http://127.0.0.1:{port}/simple/"
        assert info.token_file == str(local.app.paths.state_dir / TOKEN_FILE)


async def test_find_links_directory_files_get_a_sha256_and_are_served(tmp_path: Path) -> None:
    links = tmp_path / "links"
    wheel = build_wheel(links, "gamma", "1.0")
    config_dir = tmp_path / "config"
    config_dir.mkdir(parents=True)
    (config_dir / "config.toml").write_text(
        f'[[index]]\nname = "dir"\nurl = "{links.as_uri()}"\nkind = "find-links"\n\n'
        "[settings]\nlocal-index-port = 0\n"
    )
    app = in_process_app(tmp_path)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_runtime, app)
        await runtime(app)
        state = local_index_state(app)
        assert state.token is not None
        async with httpx.AsyncClient(auth=httpx.BasicAuth("s", state.token)) as client:
            base = f"http://127.0.0.1:{state.port}"
            page = (await client.get(base + "/simple/gamma/", headers={"Accept": JSON_V1})).json()
            [entry] = page["files"]
            assert entry["hashes"] == {"sha256": file_sha256(wheel)}
            assert entry["size"] == wheel.stat().st_size
            assert (await client.get(base + entry["url"])).content == wheel.read_bytes()
        nursery.cancel_scope.cancel()
