"""Upstream faults, end to end: the real daemon against a loopback index that misbehaves.

`tests/daemon/test_upstream.py` checks the HTTP client's rules in-process with shrunken limits;
this suite checks what a user gets from the running daemon with its real defaults: each fault
ends in a clear error naming the index and file (and the cause: a deadline, a rate floor, a size
cap), or in a successful retry, and the daemon's peak memory stays bounded (``VmHWM`` from
``/proc``, printed for ``docs/reliability.md``). The daemon keeps serving after every fault.
"""

from __future__ import annotations

import gzip
import hashlib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.reliability.harness import Rig, memory_mib, rig_for
from tests.reliability.hostile_server import Handler, HostileServer, reply, reset
from tests.support.wheels import build_wheel

PAGE = "/simple/demo/"
WHEEL = "demo-1.0-py3-none-any.whl"
FILE = f"/files/{WHEEL}"
#: No fault may hang a command: the command's timeout is a hang detector, not a latency bound
#: (no test compares a duration with it). The daemon's longest designed wait is one bounded wait
#: on a silent index (`SATCHEL_UPSTREAM_TIMEOUT`, 12 s) or a slow-drip download cut after 10 s
#: under 1 KiB/s; 90 s leaves a loaded 2-core machine room.
BOUND = 90.0


class Hostile:
    """The hostile server, the wheel it offers, and a rig configured with it."""

    def __init__(self, rig: Rig, server: HostileServer) -> None:
        self.rig = rig
        self.server = server
        self.seconds = 0.0  # how long the last prefetch took (printed, never asserted)
        wheel = build_wheel(rig.root / "dist", "demo", "1.0")
        self.wheel = wheel.read_bytes()
        sha = hashlib.sha256(self.wheel).hexdigest()
        self.page = (
            f'<!DOCTYPE html><html><body><a href="{server.url(FILE)}#sha256={sha}">{WHEEL}</a>'
            "</body></html>"
        ).encode()
        server.routes[PAGE] = self.serve_page
        server.routes[FILE] = self.serve_file
        rig.configure(server.url("/simple/"))

    def serve_page(self, handler: Handler) -> None:
        reply(handler, 200, self.page, Content_Type="text/html")

    def serve_file(self, handler: Handler) -> None:
        reply(handler, 200, self.wheel, Content_Type="application/octet-stream")

    def prefetch(self) -> tuple[int, str]:
        start = time.monotonic()
        result = self.rig.satchel("prefetch", "demo", timeout=BOUND)
        self.seconds = time.monotonic() - start  # printed for docs/reliability.md, never asserted
        return result.returncode, result.stderr

    def assert_still_serving(self) -> None:
        self.rig.ok("ping")
        self.rig.ok("status")


@pytest.fixture
def hostile(tmp_path: Path) -> Iterator[Hostile]:
    with HostileServer() as server:
        for rig in rig_for(tmp_path):
            yield Hostile(rig, server)


def _once_then(fault: object, hostile: Hostile, path: str) -> None:
    """Route *path* to *fault* for the first request, to the good answer afterwards."""
    good = hostile.server.routes[path]

    def route(handler: Handler) -> None:
        if hostile.server.count(path) == 1:
            fault(handler)  # type: ignore[operator]
        else:
            good(handler)

    hostile.server.routes[path] = route


def _half_then_reset(data: bytes) -> object:
    def route(handler: Handler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data[: len(data) // 2])
        reset(handler)

    return route


def _truncated(data: bytes) -> object:
    def route(handler: Handler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(data)))
        handler.send_header("Connection", "close")
        handler.end_headers()
        handler.wfile.write(data[: len(data) // 2])
        handler.close_connection = True

    return route


# -- broken bodies ---------------------------------------------------------------------------


def test_connection_reset_mid_body_once_is_retried(hostile: Hostile) -> None:
    _once_then(_half_then_reset(hostile.wheel), hostile, FILE)
    code, err = hostile.prefetch()
    assert code == 0, err
    hostile.rig.assert_store_consistent()


def test_connection_reset_mid_body_every_time_is_a_clear_error(hostile: Hostile) -> None:
    hostile.server.routes[FILE] = _half_then_reset(hostile.wheel)  # type: ignore[assignment]
    code, err = hostile.prefetch()
    assert code != 0
    assert WHEEL in err and "Traceback" not in err, err
    assert hostile.rig.assert_store_consistent() == 0
    hostile.assert_still_serving()


def test_truncated_body_once_is_retried(hostile: Hostile) -> None:
    _once_then(_truncated(hostile.wheel), hostile, FILE)
    code, err = hostile.prefetch()
    assert code == 0, err
    hostile.rig.assert_store_consistent()


def test_truncated_body_every_time_is_a_clear_error(hostile: Hostile) -> None:
    hostile.server.routes[FILE] = _truncated(hostile.wheel)  # type: ignore[assignment]
    code, err = hostile.prefetch()
    assert code != 0
    assert WHEEL in err and "Traceback" not in err, err
    assert hostile.rig.assert_store_consistent() == 0


def test_wrong_hash_is_refused_and_nothing_is_stored(hostile: Hostile) -> None:
    wheel = hostile.wheel
    hostile.wheel = wheel[:-1] + bytes([wheel[-1] ^ 1])
    code, err = hostile.prefetch()
    assert code != 0
    assert "sha256" in err.lower() or "hash" in err.lower(), err
    assert hostile.rig.assert_store_consistent() == 0


# -- server errors ---------------------------------------------------------------------------


def _error_500(handler: Handler) -> None:
    reply(handler, 500, b"boom", Content_Type="text/plain")


def test_500_on_the_page_is_retried_then_succeeds(hostile: Hostile) -> None:
    _once_then(_error_500, hostile, PAGE)
    code, err = hostile.prefetch()
    assert code == 0, err
    assert hostile.server.count(PAGE) >= 2


def test_persistent_500_is_a_clear_error(hostile: Hostile) -> None:
    hostile.server.routes[PAGE] = _error_500
    code, err = hostile.prefetch()
    assert code != 0
    assert "500" in err and "demo" in err and "Traceback" not in err, err
    hostile.assert_still_serving()


def test_500_on_the_file_is_retried_then_succeeds(hostile: Hostile) -> None:
    _once_then(_error_500, hostile, FILE)
    code, err = hostile.prefetch()
    assert code == 0, err


# -- slow, huge and looping answers ---------------------------------------------------------


@pytest.mark.slow
def test_slow_drip_file_is_bounded_in_time(hostile: Hostile) -> None:
    """One byte every 50 ms never trips a read timeout; the download is cut by the rate floor
    (`Limits.min_rate` over `Limits.min_rate_window`: 1 KiB/s over 10 s)."""
    data = hostile.wheel

    def drip(handler: Handler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        for byte in data:
            handler.wfile.write(bytes([byte]))
            handler.wfile.flush()
            time.sleep(0.05)

    hostile.server.routes[FILE] = drip
    code, err = hostile.prefetch()
    log = hostile.rig.env.log_file.read_text()[-3000:]
    print(f"\nslow drip: exit {code} after {hostile.seconds:.1f} s: {err.strip()}")
    # Cut by the rate floor, as its message says (a 20 B/s drip of the whole wheel would
    # otherwise end, or hit the command's hang guard).
    assert code != 0 and WHEEL in err and "download too slow" in err, f"{err}\n{log}"
    hostile.assert_still_serving()


def test_50_mb_html_page_is_handled_in_bounded_memory(hostile: Hostile) -> None:
    filler = b"<p>" + b"x" * 1000 + b"</p>\n"
    body = hostile.page.replace(b"<body>", b"<body>" + filler * (50 * 2**20 // len(filler)))
    hostile.server.routes[PAGE] = lambda h: reply(h, 200, body, Content_Type="text/html")
    pid = hostile.rig.daemon_pid()
    before = memory_mib(pid)
    code, err = hostile.prefetch()
    after = memory_mib(pid)
    print(
        f"\n50 MB page: exit {code} in {hostile.seconds:.1f} s, "
        f"daemon peak RSS {before:.0f} -> {after:.0f} MiB"
    )
    assert code == 0, err  # under the 64 MiB page cap: parsed as it streams
    assert after - before < 200, f"peak RSS grew by {after - before:.0f} MiB for a 50 MB page"


def test_gzip_bomb_page_is_capped_in_bounded_memory(hostile: Hostile) -> None:
    bomb = gzip.compress(b"\0" * (1 << 30), compresslevel=9)  # 1 GiB from ~1 MiB
    hostile.server.routes[PAGE] = lambda h: reply(
        h, 200, bomb, Content_Type="text/html", Content_Encoding="gzip"
    )
    pid = hostile.rig.daemon_pid()
    before = memory_mib(pid)
    code, err = hostile.prefetch()
    after = memory_mib(pid)
    print(
        f"\ngzip bomb: exit {code} in {hostile.seconds:.1f} s, "
        f"daemon peak RSS {before:.0f} -> {after:.0f} MiB"
    )
    assert code != 0
    assert "limit" in err and "demo" in err, err
    assert after - before < 200, f"peak RSS grew by {after - before:.0f} MiB for a gzip bomb"
    hostile.assert_still_serving()


def test_redirect_loop_is_a_clear_error(hostile: Hostile) -> None:
    hostile.server.routes[PAGE] = lambda h: reply(h, 302, Location=PAGE)
    code, err = hostile.prefetch()
    assert code != 0 and "redirects" in err, err


def test_redirect_to_file_scheme_is_refused(hostile: Hostile, tmp_path: Path) -> None:
    secret = tmp_path / "local.html"
    secret.write_bytes(hostile.page)
    hostile.server.routes[PAGE] = lambda h: reply(h, 301, Location=secret.as_uri())
    code, err = hostile.prefetch()
    assert code != 0 and "file:" in err, err
    assert hostile.server.count(FILE) == 0, "followed a redirect into the local file system"
