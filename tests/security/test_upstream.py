"""Issue 11, the upstream client: what a hostile or broken index can no longer do.

Each test runs the real daemon (autostarted by the real client) against a loopback index whose
every answer the test writes (`tests.reliability.hostile_server`): pages in PEP 691 JSON, so a
file can carry several digests and PEP 658 metadata. What is asserted is behaviour (refused,
named, stored or not, marked offline or not, answered from the cache with a note), never a
duration: the bounded wait of a hung index is shortened with ``SATCHEL_UPSTREAM_TIMEOUT`` and the
commands' own timeouts only catch the minutes-long hangs of before.

Items: 11.4 (every digest checked), 11.5 (PEP 658 metadata that lies), 11.8 (a hung index, an
unreachable file host), 11.14 (transient failures when a download opens, Retry-After, 416).
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
import trio

from satchel.daemon.errors import IndexUnreachable
from satchel.daemon.indexes.catalog import Catalog
from satchel.daemon.settings.config import Config, IndexConfig
from satchel.daemon.storage.store import open_cache
from satchel.daemon.upstream.client import Upstream
from satchel.daemon.upstream.limits import Limits
from tests.reliability.harness import Rig, rig_for
from tests.reliability.hostile_server import Handler, HostileServer, reply, reset
from tests.support.daemon import pip_download
from tests.support.wheels import build_wheel, wheel_metadata

JSON_V1 = "application/vnd.pypi.simple.v1+json"
#: The shortened bounded wait (seconds, all attempts together) of a hung index in these tests.
TIMEOUT = "3"

Route = Callable[[Handler], None]


class Index:
    """A hostile index on loopback: projects, their wheels and what the page says of them."""

    def __init__(self, rig: Rig, server: HostileServer) -> None:
        self.rig = rig
        self.server = server
        self.files: dict[str, list[dict[str, Any]]] = {}
        self.wheels: dict[str, bytes] = {}
        #: Released at teardown: routes that hang wait on it.
        self.release = threading.Event()
        rig.env.env["SATCHEL_UPSTREAM_TIMEOUT"] = TIMEOUT
        rig.configure(server.url("/simple/"))

    def add(
        self,
        project: str,
        *,
        requires: tuple[str, ...] = (),
        hashes: Callable[[bytes], dict[str, str]] | None = None,
        metadata: bytes | None = None,
        url: str | None = None,
    ) -> str:
        """Offer *project* 1.0 as a wheel; *hashes* computes the digests the page gives (the
        right sha256 by default), *metadata* is served as its PEP 658 file. Returns the name."""
        wheel = build_wheel(self.rig.root / "dist", project, "1.0", requires=requires)
        data = wheel.read_bytes()
        self.wheels[wheel.name] = data
        entry: dict[str, Any] = {
            "filename": wheel.name,
            "url": url or self.server.url(f"/files/{wheel.name}"),
            "hashes": hashes(data) if hashes else {"sha256": hashlib.sha256(data).hexdigest()},
        }
        if metadata is not None:
            entry["core-metadata"] = {"sha256": hashlib.sha256(metadata).hexdigest()}
            self.server.routes[f"/files/{wheel.name}.metadata"] = lambda h: reply(h, 200, metadata)
        self.files.setdefault(project, []).append(entry)
        self.server.routes[f"/files/{wheel.name}"] = lambda h: reply(
            h, 200, data, Content_Type="application/octet-stream"
        )
        self.server.routes[f"/simple/{project}/"] = self.page_route(project)
        return wheel.name

    def page_route(self, project: str) -> Route:
        def route(handler: Handler) -> None:
            doc = {"meta": {"api-version": "1.0"}, "name": project, "files": self.files[project]}
            reply(handler, 200, json.dumps(doc).encode(), Content_Type=JSON_V1)

        return route

    def serve_html(self, project: str) -> None:
        """Serve *project*'s page as PEP 503 HTML: one digest per link, in the URL fragment."""

        def route(handler: Handler) -> None:
            links = []
            for entry in self.files[project]:
                fragment = "".join(f"#{k}={v}" for k, v in list(entry["hashes"].items())[:1])
                links.append(f'<a href="{entry["url"]}{fragment}">{entry["filename"]}</a>')
            body = f"<!DOCTYPE html><html><body>{''.join(links)}</body></html>"
            reply(handler, 200, body.encode(), Content_Type="text/html")

        self.server.routes[f"/simple/{project}/"] = route

    def first_then(self, path: str, faults: list[Route]) -> None:
        """Answer the first requests of *path* with *faults*, in order; then as before."""
        good = self.server.routes[path]

        def route(handler: Handler) -> None:
            seen = self.server.count(path)
            (faults[seen - 1] if seen <= len(faults) else good)(handler)

        self.server.routes[path] = route

    def hang(self, handler: Handler) -> None:
        """Accept the request and say nothing (until the test ends)."""
        self.release.wait(120)

    def stored(self) -> int:
        return self.rig.assert_store_consistent()

    def index_state(self) -> str:
        status = self.rig.json("status")
        return str(next(i for i in status["indexes"] if i["name"] == "test")["state"])

    def local_index(self) -> httpx.Client:
        url = self.rig.ok("index-url").stdout.strip()
        return httpx.Client(base_url=url.removesuffix("/simple/"), timeout=60)


def hostile_index(tmp_path: Path) -> Iterator[Index]:
    """A daemon rig whose only index is a hostile server (`Index`); released at the end."""
    with HostileServer() as server:
        for rig in rig_for(tmp_path):
            hostile = Index(rig, server)
            try:
                yield hostile
            finally:
                hostile.release.set()


@pytest.fixture
def index(tmp_path: Path) -> Iterator[Index]:
    yield from hostile_index(tmp_path)


def _digest(name: str) -> Callable[[bytes], str]:
    return lambda data: hashlib.new(name, data).hexdigest()


# -- 11.4: every digest the index gives is checked ----------------------------------------------


def test_a_wrong_md5_is_refused_naming_the_file_the_algorithm_and_both_digests(
    index: Index,
) -> None:
    """issue 11.4: a link with only a wrong ``#md5=`` no longer installs."""
    wrong = "0" * 32
    name = index.add("demo", hashes=lambda _data: {"md5": wrong})
    index.serve_html("demo")
    result = index.rig.satchel("prefetch", "demo")
    assert result.returncode != 0
    real = _digest("md5")(index.wheels[name])
    for word in (name, "md5", wrong, real):
        assert word in result.stderr, result.stderr
    assert index.stored() == 0


def test_a_wrong_sha512_beside_a_right_sha256_is_refused(index: Index) -> None:
    """issue 11.4: the sha256 is not the only promise checked."""
    wrong = "f" * 128
    name = index.add(
        "demo", hashes=lambda data: {"sha256": _digest("sha256")(data), "sha512": wrong}
    )
    result = index.rig.satchel("prefetch", "demo")
    assert result.returncode != 0
    assert name in result.stderr and "sha512" in result.stderr and wrong in result.stderr
    assert index.stored() == 0


def test_right_digests_of_several_algorithms_are_stored_under_the_computed_sha256(
    index: Index,
) -> None:
    """issue 11.4: md5 and blake2b alone (no sha256 on the page) check out: stored by sha256."""
    name = index.add(
        "demo", hashes=lambda d: {"md5": _digest("md5")(d), "blake2b": _digest("blake2b")(d)}
    )
    index.rig.ok("prefetch", "demo")
    sha = hashlib.sha256(index.wheels[name]).hexdigest()
    assert (index.rig.cache / "blobs" / sha[:2] / sha[2:4] / sha).exists()


def test_a_file_whose_digests_cannot_be_checked_is_refused_before_download(index: Index) -> None:
    """issue 11.4: only uncheckable algorithms: refused, naming the file and the algorithms."""
    name = index.add("demo", hashes=lambda _data: {"whirlpool": "ab" * 64})
    result = index.rig.satchel("prefetch", "demo")
    assert result.returncode != 0
    assert name in result.stderr and "whirlpool" in result.stderr, result.stderr
    assert index.server.count(f"/files/{name}") == 0
    assert index.stored() == 0


def test_a_file_with_no_digest_at_all_is_stored_by_its_computed_sha256(index: Index) -> None:
    """issue 11.4: as pip and uv without --require-hashes; the identity is computed."""
    name = index.add("demo", hashes=lambda _data: {})
    index.rig.ok("prefetch", "demo")
    assert index.stored() == 1
    sha = hashlib.sha256(index.wheels[name]).hexdigest()
    assert (index.rig.cache / "blobs" / sha[:2] / sha[2:4] / sha).exists()


# -- 11.5: PEP 658 metadata that disagrees with the wheel --------------------------------------


def _hide_dependencies(metadata: bytes) -> bytes:
    lines = metadata.split(b"\n")
    return b"\n".join(line for line in lines if not line.startswith(b"Requires-Dist:"))


def _lying_index(index: Index) -> tuple[str, bytes]:
    """demo 1.0 requires dep, but its PEP 658 file says it requires nothing."""
    index.add("dep")
    own = wheel_metadata(build_wheel(index.rig.root / "own", "demo", "1.0", requires=("dep",)))
    name = index.add("demo", requires=("dep",), metadata=_hide_dependencies(own))
    assert wheel_metadata_of(index, name) == own
    return name, own


def wheel_metadata_of(index: Index, name: str) -> bytes:
    path = index.rig.root / "check" / name
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(index.wheels[name])
    return wheel_metadata(path)


def test_metadata_hiding_a_dependency_is_an_error_and_the_wheels_own_is_used_after(
    index: Index,
) -> None:
    """issue 11.5: the wheel's METADATA must agree with what the resolution used."""
    name, own = _lying_index(index)
    result = index.rig.satchel("prefetch", "demo")
    assert result.returncode != 0
    assert name in result.stderr and "dep" in result.stderr, result.stderr
    assert "Requires-Dist" in result.stderr, result.stderr
    # The cache now holds the wheel's own METADATA: resolving again finds the dependency...
    pins = index.rig.ok("resolve", "demo").stdout
    assert "dep==1.0" in pins, pins
    index.rig.ok("prefetch", "demo")
    # ... and the local index serves the wheel's own METADATA, never the index's file again.
    sha = hashlib.sha256(index.wheels[name]).hexdigest()
    with index.local_index() as local:
        served = local.get(f"/files/{sha}/{name}.metadata")
        assert served.status_code == 200
        assert served.content == own


def test_the_local_index_refuses_a_wheel_whose_metadata_lied_then_serves_its_own(
    index: Index,
) -> None:
    """issue 11.5, through the local index as pip uses it: page, metadata, then the file."""
    name, own = _lying_index(index)
    sha = hashlib.sha256(index.wheels[name]).hexdigest()
    with index.local_index() as local:
        page = local.get("/simple/demo/", headers={"Accept": JSON_V1}).json()
        advertised = page["files"][0]["core-metadata"]["sha256"]
        assert local.get(f"/files/{sha}/{name}.metadata").status_code == 200
        refused = local.get(f"/files/{sha}/{name}")
        assert refused.status_code == 502, refused.text
        assert name in refused.text and "dep" in refused.text, refused.text
        served = local.get(f"/files/{sha}/{name}.metadata")
        assert served.content == own
        page = local.get("/simple/demo/", headers={"Accept": JSON_V1}).json()
        now = page["files"][0]["core-metadata"]["sha256"]
        assert now == hashlib.sha256(own).hexdigest() != advertised


# -- 11.8: a hung index, an unreachable file host ------------------------------------------------


def test_a_hung_index_costs_one_bounded_wait_then_cached_pages_answer_with_a_note(
    index: Index,
) -> None:
    """issue 11.8: it used to cost ~90 s per request (three 30 s read timeouts), every time."""
    index.add("demo")
    index.rig.ok("prefetch", "demo")
    index.server.routes["/simple/demo/"] = index.hang
    # The command timeouts (60 s) fail the test where the old client would still be waiting.
    first = index.rig.satchel("resolve", "demo", timeout=60)
    assert first.returncode == 0, first.stderr
    assert "demo==1.0" in first.stdout
    # One index: the session answers from the cache ("every configured index is unreachable");
    # with others still answering, the note is "index test is unreachable: using its cached pages".
    assert "unreachable" in first.stderr and "cache" in first.stderr, first.stderr
    assert index.index_state() == "offline"
    asked = index.server.count("/simple/demo/")
    second = index.rig.satchel("resolve", "demo", timeout=60)
    assert second.returncode == 0 and "unreachable" in second.stderr, second.stderr
    # pip through the local index gets the cached page, marked stale, not a timeout.
    with index.local_index() as local:
        page = local.get("/simple/demo/")
        assert page.status_code == 200, page.text
        assert "X-Satchel-Stale" in page.headers
    # The second resolve and the page did not wait on the index: at most a background probe
    # asked it again (after the 30 s cool-down, on a slow machine).
    assert index.server.count("/simple/demo/") <= asked + 1


def test_pip_through_the_local_index_gets_the_cached_page_of_a_hung_index(
    index: Index, tmp_path: Path
) -> None:
    """issue 11.8: pip's first request through the local index met the hung index (92 s)."""
    name = index.add("demo")
    index.rig.ok("prefetch", "demo")
    index.server.routes["/simple/demo/"] = index.hang
    url = index.rig.ok("index-url").stdout.strip()
    # pip's own 15 s socket timeout and retries would take minutes
    pip = pip_download(index.rig.env.env, url, "demo", tmp_path / "got", timeout=60)
    assert pip.returncode == 0, pip.stdout + pip.stderr
    assert (tmp_path / "got" / name).read_bytes() == index.wheels[name]
    assert index.index_state() == "offline"


class _Clock:
    """The daemon's clock, moved by the test: the 30 s cool-down passes without waiting."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


async def test_after_the_cool_down_a_cached_page_answers_at_once_while_the_probe_runs_behind(
    tmp_path: Path,
) -> None:
    """issue 11.8: a hung index is not waited on again after each cool-down (it was: 90 s
    every 30 s). In process, with the daemon's own catalog and a clock the test moves."""
    release = threading.Event()
    hung = [False]
    wheel = build_wheel(tmp_path / "dist", "demo", "1.0")
    doc = {
        "meta": {"api-version": "1.0"},
        "name": "demo",
        "files": [{"filename": wheel.name, "url": f"/files/{wheel.name}", "hashes": {}}],
    }

    def page(handler: Handler) -> None:
        if hung[0]:
            release.wait(60)
            return
        reply(handler, 200, json.dumps(doc).encode(), Content_Type=JSON_V1)

    clock = _Clock()
    limits = Limits(timeout=1.5, backoff=0.01)
    store, metadb, _ = open_cache(tmp_path / "cache")
    with HostileServer({"/simple/demo/": page}) as server:
        index = msgspec.convert({"name": "test", "url": server.url("/simple/")}, IndexConfig)
        config = Config(indexes=(index,))
        try:
            async with Upstream(limits=limits, clock=clock) as up, trio.open_nursery() as nursery:
                catalog = Catalog(up, store, metadb, nursery, lambda: config)
                assert await catalog.fetch_page(index, "demo") is not None  # now cached
                hung[0] = True
                with pytest.raises(IndexUnreachable, match="marked offline"):
                    await catalog.fetch_page(index, "demo")  # the one bounded wait
                asked = server.count("/simple/demo/")
                with pytest.raises(IndexUnreachable, match="next try in"):
                    await catalog.fetch_page(index, "demo")  # cool-down: not asked
                assert server.count("/simple/demo/") == asked

                clock.now += limits.offline_cooldown + 1
                # Had this request been the probe, it would fail with "marked offline" after
                # another bounded wait on the hung page; it is answered at once instead.
                with pytest.raises(IndexUnreachable, match="checking again in the background"):
                    await catalog.fetch_page(index, "demo")
                with pytest.raises(IndexUnreachable, match="next try in"):
                    await catalog.fetch_page(index, "demo")  # one probe, not one per request

                hung[0] = False
                release.set()  # the index answers again: the background probe finds it back
                with trio.fail_after(60):
                    while up.is_offline("test"):  # noqa: ASYNC110 (the probe is not ours)
                        await trio.sleep(0.05)
                fresh = await catalog.fetch_page(index, "demo")
                assert fresh is not None and fresh.fetched_at == clock.now
                nursery.cancel_scope.cancel()
        finally:
            release.set()
            metadb.close()


def _dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unreachable_file_host_does_not_mark_the_index_offline(index: Index) -> None:
    """issue 11.8: a files host other than the index's own is not the index."""
    port = _dead_port()
    host = f"http://127.0.0.1:{port}/files"
    name = index.add("demo", url=f"{host}/demo-1.0-py3-none-any.whl")
    own = wheel_metadata(build_wheel(index.rig.root / "own", "meta", "1.0"))
    meta = index.add("meta", url=f"{host}/meta-1.0-py3-none-any.whl", metadata=own)
    index.add("other")
    # The file itself on the dead host (no PEP 658: the resolve downloads it), then the PEP 658
    # file (which lives beside the wheel, on the dead host too).
    for project, filename in (("demo", name), ("meta", meta)):
        result = index.rig.satchel("prefetch", project, timeout=60)
        assert result.returncode not in (0, 5), result.stderr  # 5: "offline / not cached"
        assert filename in result.stderr and f"127.0.0.1:{port}" in result.stderr, result.stderr
        assert "offline" not in result.stderr.lower(), result.stderr
        assert index.index_state() == "online"
    index.rig.ok("prefetch", "other")


# -- 11.14: transient failures when a download opens ---------------------------------------------


def _add_with_metadata(index: Index, project: str) -> str:
    """*project* 1.0 with its true PEP 658 file: resolving never touches the wheel, so every
    request for it below is the download's (without one, the resolve would first read its
    METADATA by range requests: issue 13.7)."""
    own = wheel_metadata(build_wheel(index.rig.root / "own", project, "1.0"))
    return index.add(project, metadata=own)


def test_a_reset_when_the_download_opens_is_retried(index: Index) -> None:
    """issue 11.14: one connection reset before any byte no longer fails the prefetch."""
    name = _add_with_metadata(index, "demo")
    index.first_then(f"/files/{name}", [reset])
    index.rig.ok("prefetch", "demo", timeout=60)
    assert index.server.count(f"/files/{name}") == 2
    assert index.index_state() == "online"
    assert index.stored() == 1


def test_a_stall_when_the_download_opens_is_retried(index: Index) -> None:
    """issue 11.14: a request that gets no answer is retried within the bounded wait."""
    name = _add_with_metadata(index, "demo")
    index.first_then(f"/files/{name}", [index.hang])
    index.rig.ok("prefetch", "demo", timeout=60)
    assert index.server.count(f"/files/{name}") == 2
    assert index.stored() == 1


def _busy(status: int, after: str) -> Route:
    return lambda h: reply(h, status, b"busy", Content_Type="text/plain", Retry_After=after)


def test_three_429_with_retry_after_are_waited_for(index: Index) -> None:
    """issue 11.14: `Retry-After` is honoured (capped) and does not use up the attempts."""
    name = _add_with_metadata(index, "demo")
    index.first_then(f"/files/{name}", [_busy(429, "1"), _busy(429, "1"), _busy(503, "0")])
    index.rig.ok("prefetch", "demo", timeout=60)
    assert index.server.count(f"/files/{name}") == 4
    assert index.stored() == 1


def test_an_index_that_always_says_retry_after_0_gets_a_bounded_number_of_tries(
    index: Index,
) -> None:
    """issue 11.14: honouring Retry-After is bounded (in count, and in time by a 30 s cap)."""
    name = _add_with_metadata(index, "demo")
    index.server.routes[f"/files/{name}"] = _busy(429, "0")
    result = index.rig.satchel("prefetch", "demo", timeout=60)
    assert result.returncode != 0
    assert name in result.stderr and "429" in result.stderr, result.stderr
    assert 4 <= index.server.count(f"/files/{name}") <= 20
    assert index.index_state() == "online"  # busy is not down


def test_an_over_long_content_length_restarts_from_byte_0(index: Index) -> None:
    """issue 11.14: the resume past the real end gets 416; a restart from 0 succeeds."""
    name = _add_with_metadata(index, "demo")
    data = index.wheels[name]
    path = f"/files/{name}"
    good = index.server.routes[path]

    def over_long(handler: Handler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(data) + 100))
        handler.send_header("Connection", "close")
        handler.end_headers()
        handler.wfile.write(data)
        handler.close_connection = True

    def route(handler: Handler) -> None:
        if handler.headers.get("Range"):
            reply(handler, 416, b"", Content_Range=f"bytes */{len(data)}")
        elif index.server.count(path) == 1:
            over_long(handler)
        else:
            good(handler)

    index.server.routes[path] = route
    result = index.rig.satchel("prefetch", "demo", timeout=60)
    assert result.returncode == 0, result.stderr
    assert index.server.count(path) == 3  # the first, the refused resume, the restart
    assert index.stored() == 1
