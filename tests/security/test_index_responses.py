"""Issue 11 (hostile index responses), end to end: answers that lie about their bytes.

A real daemon prefetches ``demo`` from a loopback server whose answers are chosen by the test
(`tests.reliability.hostile_server`): a file sent gzip-encoded (a gzip bomb among them), a body
longer than its ``Content-Length``, a PEP 658 metadata file that does not match the hash the
page gives for it, a metadata file larger than the metadata cap. Each one is refused with a
message naming the file and the cause, the daemon's memory stays bounded, nothing is stored
from the lie, and once the server answers honestly the same prefetch succeeds (the cache was
left consistent: no half-written or wrong entry is served).
"""

from __future__ import annotations

import gzip
import hashlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.reliability.harness import memory_mib, rig_for
from tests.reliability.hostile_server import Handler, HostileServer, reply, reset
from tests.reliability.test_upstream_faults import FILE, PAGE, WHEEL, Hostile
from tests.support.daemon import pip_download
from tests.support.wheels import wheel_metadata

METADATA = FILE + ".metadata"


@pytest.fixture
def hostile(tmp_path: Path) -> Iterator[Hostile]:
    with HostileServer() as server:
        for rig in rig_for(tmp_path):
            yield Hostile(rig, server)


def refused_then_recovered(hostile: Hostile, *causes: str) -> str:
    """Prefetch against the lying server: refused naming the file and *causes*, nothing stored.
    Then the honest answers (restored by the caller's *honest* routes) must succeed."""
    code, stderr = hostile.prefetch()
    print(f"\nrefused: {stderr.strip()}")
    assert code != 0, stderr
    assert WHEEL in stderr and all(cause in stderr for cause in causes), stderr
    assert "internal error" not in stderr, stderr
    assert hostile.rig.assert_store_consistent() == 0, "something was stored from a lie"
    hostile.assert_still_serving()
    return stderr


def honest_again(hostile: Hostile) -> None:
    hostile.server.routes[FILE] = hostile.serve_file
    hostile.server.routes[PAGE] = hostile.serve_page
    code, stderr = hostile.prefetch()
    assert code == 0, stderr
    assert hostile.rig.assert_store_consistent() == 1


def test_a_gzip_bomb_sent_as_a_file_is_never_inflated(hostile: Hostile) -> None:
    """issue 11.4/11.13: the wheel's URL answers ``Content-Encoding: gzip`` with 1 GiB of zeros
    gzipped to ~1 MiB. The file's bytes are what came over the wire (never decoded), so the
    sha256 does not match; the daemon's peak memory does not follow the inflated size."""
    bomb = gzip.compress(b"\0" * (1 << 30), compresslevel=9)
    hostile.server.routes[FILE] = lambda h: reply(
        h, 200, bomb, Content_Type="application/octet-stream", Content_Encoding="gzip"
    )
    hostile.rig.ok("ping")  # starts the daemon, so its peak covers the whole download
    pid = hostile.rig.env.daemon_pid()
    refused_then_recovered(hostile, "sha256")
    assert memory_mib(pid) < 300, "the daemon inflated the bomb"
    honest_again(hostile)


def test_a_body_longer_than_its_content_length_is_refused(hostile: Hostile) -> None:
    """issue 11.4: the wheel is sent whole but announced 100 bytes short (the tail would be read
    as the next answer on a kept-alive connection). The 100 bytes short are hashed and refused;
    the next request (on a new or the same connection) gets the honest file."""

    def short(handler: Handler) -> None:
        reply(
            handler,
            200,
            hostile.wheel,
            Content_Type="application/octet-stream",
            Content_Length=str(len(hostile.wheel) - 100),
        )

    hostile.server.routes[FILE] = short
    refused_then_recovered(hostile, "sha256")
    honest_again(hostile)


def _page_with_metadata(hostile: Hostile, metadata_sha: str) -> bytes:
    sha = hashlib.sha256(hostile.wheel).hexdigest()
    return (
        f'<!DOCTYPE html><html><body><a href="{hostile.server.url(FILE)}#sha256={sha}" '
        f'data-dist-info-metadata="sha256={metadata_sha}" '
        f'data-core-metadata="sha256={metadata_sha}">{WHEEL}</a></body></html>'
    ).encode()


def test_pep_658_metadata_that_does_not_match_its_hash_is_refused(hostile: Hostile) -> None:
    """issue 11.5: the page gives the metadata's sha256, the server sends other metadata (a
    dependency added). Refused naming the file: never stored as the
    file's metadata; resolving after the honest answers gives the wheel's own metadata.
    (Held: ``hash-mismatch`` naming the metadata file and both digests.)"""
    real = wheel_metadata(Path(hostile.rig.root / "dist" / WHEEL))
    forged = real.replace(b"\n\n", b"\nRequires-Dist: attacker-pkg\n\n", 1)
    if forged == real:
        forged = real + b"Requires-Dist: attacker-pkg\n"
    page = _page_with_metadata(hostile, hashlib.sha256(real).hexdigest())
    hostile.server.routes[PAGE] = lambda h: reply(h, 200, page, Content_Type="text/html")
    hostile.server.routes[METADATA] = lambda h: reply(h, 200, forged, Content_Type="text/plain")
    result = hostile.rig.satchel("resolve", "demo")
    print(f"\nresolve with forged metadata: exit {result.returncode}\n{result.stderr}")
    assert result.returncode != 0 and "attacker-pkg" not in result.stdout, result.stdout
    assert f"{WHEEL}.metadata: sha256 mismatch" in result.stderr, result.stderr
    hostile.server.routes[METADATA] = lambda h: reply(h, 200, real, Content_Type="text/plain")
    again = hostile.rig.satchel("resolve", "demo")
    assert again.returncode == 0, again.stderr
    assert "attacker-pkg" not in again.stdout and "demo==1.0" in again.stdout, again.stdout


def test_a_metadata_file_over_the_cap_is_refused(hostile: Hostile) -> None:
    """issue 11.13: the page offers PEP 658 metadata and the server answers 20 MiB for it (the
    cap is 16 MiB). Refused naming the file and the limit; the daemon's memory bounded."""
    big = b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n\n" + b"x" * (20 * 2**20)
    page = _page_with_metadata(hostile, hashlib.sha256(big).hexdigest())
    hostile.server.routes[PAGE] = lambda h: reply(h, 200, page, Content_Type="text/html")
    hostile.server.routes[METADATA] = lambda h: reply(h, 200, big, Content_Type="text/plain")
    result = hostile.rig.satchel("resolve", "demo")
    print(f"\nresolve with 20 MiB metadata: exit {result.returncode}\n{result.stderr}")
    assert result.returncode != 0
    assert f"{WHEEL}.metadata: larger than the 16777216 byte limit" in result.stderr, result.stderr
    assert memory_mib(hostile.rig.env.daemon_pid()) < 300


def _pip_download(hostile: Hostile, dest: Path) -> subprocess.CompletedProcess[str]:
    url = hostile.rig.ok("index-url").stdout.strip()
    return pip_download(hostile.rig.env.env, url, "demo", dest, timeout=120, retries=0)


@pytest.mark.parametrize("fault", ["reset-mid-body", "wrong-bytes"])
def test_pip_through_the_local_index_never_gets_a_broken_file(
    hostile: Hostile, tmp_path: Path, fault: str
) -> None:
    """issue 11.4/11.14: pip downloads ``demo`` through the local index while the upstream
    answers every request for the wheel with half of it then a reset, or with other bytes of
    the same length. pip fails and holds no wheel (the local index never passes on bytes it
    has not checked); the store stays consistent; once the upstream is honest, the same pip
    command gets the exact wheel."""
    half = len(hostile.wheel) // 2

    def broken(handler: Handler) -> None:
        if fault == "wrong-bytes":
            reply(handler, 200, bytes(len(hostile.wheel)), Content_Type="application/zip")
            return
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(hostile.wheel)))
        handler.end_headers()
        handler.wfile.write(hostile.wheel[:half])
        reset(handler)

    hostile.server.routes[FILE] = broken
    dest = tmp_path / "got"
    failed = _pip_download(hostile, dest)
    print(f"\npip with {fault}: exit {failed.returncode}\n{failed.stderr[-600:]}")
    assert failed.returncode != 0, failed.stdout
    assert not (dest / WHEEL).exists(), "pip holds a wheel the upstream never sent whole"
    assert hostile.rig.assert_store_consistent() == 0
    hostile.server.routes[FILE] = hostile.serve_file
    again = _pip_download(hostile, dest)
    assert again.returncode == 0, again.stdout + again.stderr
    assert (dest / WHEEL).read_bytes() == hostile.wheel
    assert hostile.rig.assert_store_consistent() == 1
