"""The upstream client against real loopback HTTP: negotiation, revalidation, retries, the circuit
breaker, credentials, caps, hostile servers, and file:// / find-links indexes."""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import json
import logging
import resource
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import httpx
import msgspec
import pytest
import trio

from satchel.daemon.errors import (
    HashMismatch,
    HostileInput,
    IndexUnreachable,
    NotFound,
    UpstreamError,
)
from satchel.daemon.settings.config import IndexConfig
from satchel.daemon.storage.metadb import MetaDB
from satchel.daemon.storage.model import ProjectPage
from satchel.daemon.upstream._breaker import Retries, ServerError, retry_after
from satchel.daemon.upstream.client import Upstream
from satchel.daemon.upstream.limits import TIMEOUT_ENV, Limits
from satchel.daemon.upstream.simple import parse_json_page
from tests.support.index_server import IndexServer
from tests.support.oneoff import serving
from tests.support.wheels import build_sdist, build_wheel, file_sha256, wheel_metadata

JSON_V1 = "application/vnd.pypi.simple.v1+json"
FAST = Limits(backoff=0.01, connect_timeout=1.0, timeout=15.0)


class _Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def index(tmp_path: Path) -> Iterator[IndexServer]:
    server = IndexServer(tmp_path / "index")
    server.add(build_wheel(tmp_path / "dist", "demo", "1.0", requires_python=">=3.8"))
    server.add(build_sdist(tmp_path / "dist", "demo", "1.0"))
    with server:
        yield server


def _config(url: str, name: str = "test", **extra: object) -> IndexConfig:
    return msgspec.convert({"name": name, "url": url, **extra}, IndexConfig)


def _reply(handler: BaseHTTPRequestHandler, status: int, body: bytes, **headers: str) -> None:
    handler.send_response(status)
    for key, value in headers.items():
        handler.send_header(key.replace("_", "-"), value)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


# -- pages --------------------------------------------------------------------------------------


async def test_json_page_is_negotiated_and_parsed(index: IndexServer) -> None:
    async with Upstream(limits=FAST) as up:
        page = await up.fetch_page(_config(index.url), "Demo")
    assert page.project == "demo"
    assert page.api_version == "1.1"
    assert {f.filename for f in page.files} == {"demo-1.0-py3-none-any.whl", "demo-1.0.tar.gz"}
    assert page.etag is not None
    assert index.records[-1].headers["accept"].startswith("application/vnd.pypi.simple.v1+json")


async def test_html_only_index_works(tmp_path: Path) -> None:
    with IndexServer(tmp_path / "index", html_only=True) as index:
        wheel = index.add(build_wheel(tmp_path / "dist", "demo", "1.0"))
        async with Upstream(limits=FAST) as up:
            page = await up.fetch_page(_config(index.url), "demo")
    (entry,) = page.files
    assert entry.sha256 == file_sha256(wheel)
    assert entry.core_metadata is not None


async def test_revalidation_is_a_304_that_keeps_the_cached_page(index: IndexServer) -> None:
    clock = _Clock()
    async with Upstream(limits=FAST, clock=clock) as up:
        first = await up.fetch_page(_config(index.url), "demo")
        marked = msgspec.structs.replace(first, versions=("from-cache",))
        clock.now += 5
        again = await up.fetch_page(_config(index.url), "demo", marked)
    assert index.records[-1].headers["if-none-match"] == first.etag
    assert again.versions == ("from-cache",)  # the 304 path returned the cached page...
    assert again.fetched_at == clock.now  # ...with a new fetch time


async def test_fresh_page_is_not_requested_again_unless_forced(tmp_path: Path) -> None:
    clock = _Clock()
    with IndexServer(tmp_path / "index", max_age=60) as index:
        index.add(build_wheel(tmp_path / "dist", "demo", "1.0"))
        async with Upstream(limits=FAST, clock=clock) as up:
            page = await up.fetch_page(_config(index.url), "demo")
            assert page.max_age == 60
            clock.now += 30
            index.reset_log()
            assert await up.fetch_page(_config(index.url), "demo", page) is page
            assert index.requests == []
            await up.fetch_page(_config(index.url), "demo", page, force=True)
            assert len(index.requests) == 1


async def test_index_max_age_override_applies_without_server_header(index: IndexServer) -> None:
    clock = _Clock()
    config = _config(index.url, max_age=100)
    async with Upstream(limits=FAST, clock=clock) as up:
        page = await up.fetch_page(config, "demo")
        index.reset_log()
        clock.now += 50
        await up.fetch_page(config, "demo", page)
    assert index.requests == []


async def test_a_max_age_past_what_a_cache_holds_is_taken_as_2_to_the_31(
    index: IndexServer, tmp_path: Path
) -> None:
    """RFC 9111 5.2: a delta-seconds a cache cannot represent counts as 2^31. A 20-digit
    ``max-age`` kept as is made the page unstorable (SQLite: `OverflowError`)."""
    index.max_age = 10**20
    async with Upstream(limits=FAST) as up:
        page = await up.fetch_page(_config(index.url), "demo")
    assert page.max_age == 2**31
    db = MetaDB(tmp_path / "meta.sqlite")
    db.put_page(page)
    assert db.get_page(page.index, "demo") == page


async def test_missing_project_is_not_found(index: IndexServer) -> None:
    async with Upstream(limits=FAST) as up:
        with pytest.raises(NotFound, match="index test: project nothing-here: not found"):
            await up.fetch_page(_config(index.url), "nothing-here")
        assert up.index_states()["test"].state == "online"


async def test_concurrency_per_index_is_bounded(tmp_path: Path) -> None:
    with IndexServer(tmp_path / "index", delay=0.1) as index:
        for i in range(6):
            index.add(build_wheel(tmp_path / "dist", f"p{i}", "1.0"))
        limits = Limits(per_index_concurrency=2, backoff=0.01)
        async with Upstream(limits=limits) as up, trio.open_nursery() as nursery:
            for i in range(6):
                nursery.start_soon(up.fetch_page, _config(index.url), f"p{i}")
    # Counted by the index, not timed: each answer takes 0.1 s, so six sent at once would
    # have been answered side by side.
    assert index.max_in_flight <= 2
    assert len([p for p in index.requests if p.startswith("/simple/p")]) == 6


# -- retries and the circuit breaker ------------------------------------------------------------


async def test_server_errors_are_retried(index: IndexServer) -> None:
    index.fail_next(2, status=503)
    async with Upstream(limits=FAST) as up:
        page = await up.fetch_page(_config(index.url), "demo")
    assert page.files
    assert len(index.requests) == 3


async def test_persistent_server_errors_fail_without_marking_offline(index: IndexServer) -> None:
    index.fail_next(3, status=500)
    async with Upstream(limits=FAST) as up:
        with pytest.raises(UpstreamError, match="answered HTTP 500 3 times"):
            await up.fetch_page(_config(index.url), "demo")
        assert not up.is_offline("test")


async def test_dead_index_is_marked_offline_once_without_a_request_storm() -> None:
    """Concurrent requests to a dead index: one probe (with its retries), everyone else waits."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    port = listener.getsockname()[1]
    accepted = 0

    def accept_and_slam() -> None:
        nonlocal accepted
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            accepted += 1
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
            conn.close()  # reset: no HTTP answer, ever

    threading.Thread(target=accept_and_slam, daemon=True).start()
    config = _config(f"http://127.0.0.1:{port}/simple/")
    errors: list[Exception] = []
    try:
        async with Upstream(limits=FAST) as up:

            async def fetch(project: str) -> None:
                try:
                    await up.fetch_page(config, project)
                except IndexUnreachable as exc:
                    errors.append(exc)

            async with trio.open_nursery() as nursery:
                for i in range(20):
                    nursery.start_soon(fetch, f"project-{i}")
            attempts_during_burst = accepted
            with pytest.raises(IndexUnreachable, match="index offline since"):
                await up.fetch_page(config, "one-more")
            state = up.index_states()["test"]
    finally:
        listener.close()
    assert len(errors) == 20
    assert attempts_during_burst == FAST.attempts
    assert accepted == FAST.attempts  # the fail-fast request never connected
    assert state.state == "offline"
    assert state.reason


async def test_offline_index_is_probed_again_after_the_cool_down(index: IndexServer) -> None:
    clock = _Clock()
    index.stop()
    async with Upstream(limits=FAST, clock=clock) as up:
        with pytest.raises(IndexUnreachable):
            await up.fetch_page(_config(index.url), "demo")
        index.start()
        with pytest.raises(IndexUnreachable, match="offline since"):
            await up.fetch_page(_config(index.url), "demo")
        clock.now += FAST.offline_cooldown + 1
        page = await up.fetch_page(_config(index.url), "demo")
        assert up.index_states()["test"].state == "online"
    assert page.files


async def test_downloads_fail_fast_while_offline_and_resume_after_the_cool_down(
    index: IndexServer,
) -> None:
    clock = _Clock()
    config = _config(index.url)
    async with Upstream(limits=FAST, clock=clock) as up:
        wheel = next(f for f in (await up.fetch_page(config, "demo")).files if f.is_wheel)
        index.stop()
        with pytest.raises(IndexUnreachable):
            await up.fetch_page(config, "demo", force=True)
        index.start()
        index.reset_log()
        with pytest.raises(IndexUnreachable, match="offline since"):
            async with up.open_file(config, wheel):
                pass
        assert index.requests == []
        clock.now += FAST.offline_cooldown + 1
        async with up.open_file(config, wheel) as download:
            data = b"".join([chunk async for chunk in download])
        with trio.fail_after(60):  # a hang guard: a probe left dangling is waited on for ever
            await up.fetch_page(config, "demo", force=True)
    assert hashlib.sha256(data).hexdigest() == wheel.sha256


async def test_a_callers_own_error_during_a_download_does_not_blame_the_index(
    index: IndexServer,
) -> None:
    config = _config(index.url)
    async with Upstream(limits=FAST) as up:
        wheel = next(f for f in (await up.fetch_page(config, "demo")).files if f.is_wheel)
        with pytest.raises(PermissionError):
            async with up.open_file(config, wheel):
                raise PermissionError("the store's disk said no")
        assert not up.is_offline("test")


# -- credentials --------------------------------------------------------------------------------


async def test_basic_auth_from_url_userinfo(tmp_path: Path) -> None:
    with IndexServer(tmp_path / "index", auth=("alice", "s3cret-pw")) as index:
        index.add(build_wheel(tmp_path / "dist", "demo", "1.0"))
        async with Upstream(limits=FAST) as up:
            page = await up.fetch_page(_config(index.url_with_auth()), "demo")
    assert "s3cret-pw" not in page.url
    assert all("s3cret-pw" not in f.url for f in page.files)


async def test_basic_auth_from_environment(tmp_path: Path) -> None:
    env = {
        "SATCHEL_INDEX_CORP_NET_USERNAME": "alice",
        "SATCHEL_INDEX_CORP_NET_PASSWORD": "pw-env-1",
    }
    with IndexServer(tmp_path / "index", auth=("alice", "pw-env-1")) as index:
        index.add(build_wheel(tmp_path / "dist", "demo", "1.0"))
        async with Upstream(limits=FAST, environ=env) as up:
            page = await up.fetch_page(_config(index.url, name="corp.net"), "demo")
    assert page.files


async def test_credentials_never_appear_in_errors_or_logs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with IndexServer(tmp_path / "index", auth=("alice", "right-password")) as index:
        url = index.url_with_auth().replace("right-password", "wrong-password")
        caplog.set_level(logging.DEBUG)
        async with Upstream(limits=FAST) as up:
            with pytest.raises(UpstreamError) as denied:
                await up.fetch_page(_config(url), "demo")
            index.stop()
            with pytest.raises(IndexUnreachable) as unreachable:
                await up.fetch_page(_config(url, name="other"), "demo")
    for text in (str(denied.value), str(unreachable.value), caplog.text):
        assert "wrong-password" not in text
    assert "access denied (HTTP 401)" in str(denied.value)


async def test_credentials_are_not_sent_to_another_origin_on_redirect(tmp_path: Path) -> None:
    seen: list[str | None] = []

    def record(handler: BaseHTTPRequestHandler) -> None:
        seen.append(handler.headers.get("Authorization"))
        _reply(handler, 404, b"")

    with serving(record) as other:

        def redirect(handler: BaseHTTPRequestHandler) -> None:
            _reply(handler, 302, b"", Location=f"{other}/elsewhere/")

        with serving(redirect) as origin:
            url = origin.replace("http://", "http://bob:tok-123456@") + "/simple/"
            async with Upstream(limits=FAST) as up:
                with pytest.raises(NotFound):
                    await up.fetch_page(_config(url), "demo")
    assert seen == [None]


# -- metadata and files -------------------------------------------------------------------------


async def test_core_metadata_is_fetched_and_hash_checked(index: IndexServer) -> None:
    async with Upstream(limits=FAST) as up:
        page = await up.fetch_page(_config(index.url), "demo")
        wheel = next(f for f in page.files if f.is_wheel)
        data = await up.fetch_core_metadata(_config(index.url), wheel)
        assert data == wheel_metadata(index.root / wheel.filename)
        lying = msgspec.structs.replace(wheel, metadata_sha256="0" * 64)
        with pytest.raises(HashMismatch, match=r"demo-1\.0-py3-none-any\.whl\.metadata"):
            await up.fetch_core_metadata(_config(index.url), lying)


async def test_file_download_streams_the_exact_bytes(index: IndexServer) -> None:
    async with Upstream(limits=FAST) as up:
        page = await up.fetch_page(_config(index.url), "demo")
        wheel = next(f for f in page.files if f.is_wheel)
        digest = hashlib.sha256()
        async with up.open_file(_config(index.url), wheel) as download:
            assert download.size == (index.root / wheel.filename).stat().st_size
            async for chunk in download:
                digest.update(chunk)
    assert digest.hexdigest() == wheel.sha256


async def test_file_over_the_size_cap_is_refused(index: IndexServer) -> None:
    async with Upstream(limits=FAST) as up:
        page = await up.fetch_page(_config(index.url), "demo")
        wheel = next(f for f in page.files if f.is_wheel)
        with pytest.raises(HostileInput, match=r"file demo-1\.0-py3-none-any\.whl: announced"):
            async with up.open_file(_config(index.url), wheel, max_bytes=100):
                pass


# -- hostile servers ----------------------------------------------------------------------------


async def test_gzip_encoded_page_is_decoded() -> None:
    doc = {
        "meta": {"api-version": "1.0"},
        "name": "demo",
        "files": [{"filename": "demo-1.0.tar.gz", "url": "/f/demo-1.0.tar.gz", "hashes": {}}],
    }
    body = gzip.compress(json.dumps(doc).encode())

    def respond(handler: BaseHTTPRequestHandler) -> None:
        assert "gzip" in handler.headers.get("Accept-Encoding", "")
        _reply(handler, 200, body, Content_Type=JSON_V1, Content_Encoding="gzip")

    with serving(respond) as base:
        async with Upstream(limits=FAST) as up:
            page = await up.fetch_page(_config(base + "/simple/"), "demo")
    assert [f.url for f in page.files] == [base + "/f/demo-1.0.tar.gz"]


def _big_json_page(base: str, count: int) -> bytes:
    """A PEP 691 page of *count* wheels (~100 bytes each) plus entries the parser must skip."""
    files: list[dict[str, object]] = [
        {
            "filename": f"demo-0.{i}-py3-none-any.whl",
            "url": f"{base}/f/{'x' * 300}/demo-0.{i}-py3-none-any.whl",
            "hashes": {"sha256": f"{i:064x}"},
            "requires-python": ">=3.8",
            "core-metadata": {"sha256": f"{i + 1:064x}"},
            "yanked": "broken" if i % 1000 == 0 else False,
        }
        for i in range(count)
    ]
    files.append({"filename": "../escape-1.0.tar.gz", "url": "/f/escape-1.0.tar.gz"})
    files.append({"filename": "other-1.0.tar.gz", "url": "/f/other-1.0.tar.gz"})
    files.append({"filename": "demo-2.0.tar.gz", "url": "file:///etc/passwd"})
    doc = {"meta": {"api-version": "1.1"}, "name": "demo", "files": files, "versions": ["0.1"]}
    return json.dumps(doc).encode()


async def test_a_large_json_page_is_parsed_in_a_child_process_as_in_a_thread() -> None:
    """issue 11.6: a page over 4 MiB (gzip-encoded here) streams into a child process, which
    validates it exactly as the in-thread parser does: same entries, same skips."""
    body_holder: list[bytes] = []

    def respond(handler: BaseHTTPRequestHandler) -> None:
        _reply(handler, 200, body_holder[0], Content_Type=JSON_V1, Content_Encoding="gzip")

    with serving(respond) as base:
        body = _big_json_page(base, 12_000)
        assert len(body) > 5 * 2**20
        body_holder.append(gzip.compress(body, compresslevel=1))
        children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        async with Upstream(limits=FAST) as up:
            page = await up.fetch_page(_config(base + "/simple/"), "demo")
        children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    url = base + "/simple/demo/"
    expected = parse_json_page(body, index="test", project="demo", url=url)
    assert page.files == expected.files and len(page.files) == 12_000
    assert (page.versions, page.api_version, page.url) == (("0.1",), "1.1", url)
    assert page.files[1000].yanked_reason == "broken"
    assert page.files[0].core_metadata == {"sha256": f"{1:064x}"}
    # A child was reaped, and it did the parsing (seconds of CPU are not needed to prove it).
    cpu = (children_after.ru_utime + children_after.ru_stime) - (
        children_before.ru_utime + children_before.ru_stime
    )
    assert cpu > 0


async def test_a_large_json_page_refused_in_the_child_is_the_same_clear_error() -> None:
    """issue 11.6: what the child refuses comes back as the parser's own index-error."""
    body = b'{"name": "demo", "files": [' + b'{"filename": "a"},' * 400_000 + b'{"x": 1}]}'

    def respond(handler: BaseHTTPRequestHandler) -> None:
        _reply(handler, 200, body, Content_Type=JSON_V1)

    with serving(respond) as base:
        async with Upstream(limits=FAST) as up:
            with pytest.raises(UpstreamError, match="lists 400001 files, more than the 100000"):
                await up.fetch_page(_config(base + "/simple/"), "demo")


async def test_gzip_bomb_page_is_stopped_at_the_cap() -> None:
    bomb = gzip.compress(b"<" * (16 * 2**20), compresslevel=1)  # 16 MiB inflated from ~70 KiB

    def respond(handler: BaseHTTPRequestHandler) -> None:
        _reply(handler, 200, bomb, Content_Type="text/html", Content_Encoding="gzip")

    with serving(respond) as base:
        async with Upstream(limits=Limits(max_page_bytes=2**20, backoff=0.01)) as up:
            with pytest.raises(HostileInput, match="larger than the 1048576 byte limit"):
                await up.fetch_page(_config(base + "/simple/"), "demo")


async def test_slow_drip_page_is_bounded_by_the_request_deadline() -> None:
    def respond(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "text/html")
        handler.send_header("Content-Length", "100000")
        handler.end_headers()
        try:
            for _ in range(400):
                handler.wfile.write(b"<")
                handler.wfile.flush()
                time.sleep(0.01)
        except OSError:
            pass  # the client gave up, as it should

    limits = Limits(request_deadline=0.3, attempts=1, timeout=15.0)
    with serving(respond) as base:
        async with Upstream(limits=limits) as up:
            # The message names the deadline that cut it (the drip alone would last 4 s and
            # then break off: another error); fail_after is a hang guard, not a measurement.
            with trio.fail_after(60), pytest.raises(IndexUnreachable, match=r"within 0\.3s"):
                await up.fetch_page(_config(base + "/simple/"), "demo")


async def test_redirect_to_file_scheme_is_refused() -> None:
    def respond(handler: BaseHTTPRequestHandler) -> None:
        _reply(handler, 301, b"", Location="file:///etc/")

    with serving(respond) as base:
        async with Upstream(limits=FAST) as up:
            with pytest.raises(HostileInput, match="refused redirect from http: to file:"):
                await up.fetch_page(_config(base + "/simple/"), "demo")


async def test_redirect_loop_is_bounded() -> None:
    def respond(handler: BaseHTTPRequestHandler) -> None:
        _reply(handler, 302, b"", Location=handler.path)

    with serving(respond) as base:
        async with Upstream(limits=FAST) as up:
            with pytest.raises(UpstreamError, match="more than 5 redirects"):
                await up.fetch_page(_config(base + "/simple/"), "demo")


async def test_unexpected_content_type_is_an_error_naming_index_and_project() -> None:
    def respond(handler: BaseHTTPRequestHandler) -> None:
        _reply(handler, 200, b"\x89PNG", Content_Type="image/png")

    with serving(respond) as base:
        async with Upstream(limits=FAST) as up:
            with pytest.raises(UpstreamError, match="index test: project demo: unexpected content"):
                await up.fetch_page(_config(base + "/simple/"), "demo")


# -- file:// and find-links ---------------------------------------------------------------------


async def test_file_index_reads_project_index_html(tmp_path: Path) -> None:
    root = tmp_path / "simple"
    files = tmp_path / "files"
    wheel = build_wheel(files, "demo", "1.0")
    (root / "demo").mkdir(parents=True)
    sha = file_sha256(wheel)
    href = f"../../files/{wheel.name}#sha256={sha}"
    (root / "demo" / "index.html").write_text(f'<a href="{href}">{wheel.name}</a>')
    config = _config(root.as_uri() + "/")
    async with Upstream(limits=FAST) as up:
        page = await up.fetch_page(config, "demo")
        (entry,) = page.files
        assert entry.url == wheel.as_uri()
        assert await up.fetch_core_metadata(config, entry) == wheel_metadata(wheel)
        with pytest.raises(NotFound):
            await up.fetch_page(config, "absent")
        again = await up.fetch_page(config, "demo", page, force=True)
    assert again.files == page.files


async def test_find_links_directory_offers_the_projects_files(tmp_path: Path) -> None:
    links = tmp_path / "links"
    wheel = build_wheel(links, "demo", "1.0")
    build_wheel(links, "other", "2.0")
    (links / "README.txt").write_text("not a distribution")
    config = _config(links.as_uri(), kind="find-links")
    async with Upstream(limits=FAST) as up:
        page = await up.fetch_page(config, "demo")
        (entry,) = page.files
        chunks = []
        async with up.open_file(config, entry) as download:
            async for chunk in download:
                chunks.append(chunk)
        with pytest.raises(NotFound):
            await up.fetch_page(config, "absent")
    assert b"".join(chunks) == wheel.read_bytes()


async def test_find_links_http_page(index: IndexServer) -> None:
    config = _config(index.project_url("demo"), kind="find-links")
    async with Upstream(limits=FAST) as up:
        page: ProjectPage = await up.fetch_page(config, "demo")
    assert {f.filename for f in page.files} == {"demo-1.0-py3-none-any.whl", "demo-1.0.tar.gz"}


# -- bounded waits and Retry-After (issue 11.8, 11.14) ---------------------------------------


def test_the_bounded_wait_comes_from_the_environment_and_bad_values_keep_the_default() -> None:
    assert Limits.from_environ({}).timeout == Limits().timeout
    assert Limits.from_environ({TIMEOUT_ENV: "4.5"}).timeout == 4.5
    assert Limits.from_environ({TIMEOUT_ENV: "4.5"}).silence == 1.5  # three attempts share it
    for bad in ("soon", "0", "-1", "1e9", "nan"):
        assert Limits.from_environ({TIMEOUT_ENV: bad}).timeout == Limits().timeout, bad


def test_retry_after_is_read_as_seconds_or_an_http_date() -> None:
    def answer(value: str) -> httpx.Response:
        return httpx.Response(503, headers={"Retry-After": value})

    assert retry_after(answer("7")) == 7.0
    assert retry_after(answer("Wed, 21 Oct 2015 07:28:00 GMT")) == 0.0  # in the past
    assert retry_after(answer("tomorrow-ish")) is None
    assert retry_after(httpx.Response(503)) is None


def test_retry_after_answers_do_not_use_up_attempts_but_their_waits_are_capped() -> None:
    limits = Limits(attempts=3, max_retry_after=30.0)
    retries = Retries(limits)
    polite = ServerError(429, retry_after=1.0)
    assert [retries.pause(polite) for _ in range(5)] == [1.0] * 5
    greedy = Retries(limits)
    assert greedy.pause(ServerError(503, retry_after=3600.0)) == 30.0  # capped
    # the budget is spent: from now on each answer counts as a failure
    assert greedy.pause(ServerError(503, retry_after=1.0)) is not None
    assert greedy.pause(ServerError(503, retry_after=1.0)) is not None
    assert greedy.pause(ServerError(503, retry_after=1.0)) is None


def test_the_daemon_never_imports_the_command_line_of_httpx() -> None:
    """httpx imports its command line (click, rich, pygments: ~95 modules, ~6 MiB) whenever
    those are installed; a process that starts as the daemon does (its entry point first) never
    has them, and httpx itself still works there."""
    cli = ("click", "rich", "pygments")
    missing = [name for name in cli if importlib.util.find_spec(name) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed: httpx would not import its CLI anyway")
    probe = (
        "import sys\n"
        "import satchel.daemon.process.main\n"
        "import httpx\n"
        "assert httpx.AsyncClient and httpx.Response(200).status_code == 200\n"
        "print(sorted(m for m, module in sys.modules.items() if module is not None and\n"
        f"    (m.split('.')[0] in {cli!r} or m == 'httpx._main')))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
