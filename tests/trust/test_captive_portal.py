"""Issue 12, case 8 seen from the public side: a captive portal (hotel or airport Wi-Fi) answers
every URL of both indexes with ``200 text/html``, a login page that lists no files.

What is stored must not be degraded by it: a project the portal answered for is not bound to
the index whose "page" it was (it came from nowhere), and a public dependency prefetched before
(bound to the public index, the private one having said 404) still installs offline afterwards,
and still resolves from its stored page while the portal is up.

Real `satchel` and `satcheld`, two loopback indexes (`tests.e2e.twoindexes`): ``internal``
(first) and ``public`` (after it), which serves the public projects ``evil`` and ``other``.
"""

from __future__ import annotations

import json
import re
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.twoindexes import World, open_world
from tests.support.wheels import build_wheel

PORTAL = b"<html><body><h1>Welcome to the hotel Wi-Fi</h1><a href='/login'>Log in</a></body>"
PROJECTS = ("internal-tool", "helper", "evil", "other")


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with open_world(tmp_path) as w:
        w.public.add(build_wheel(tmp_path / "dist" / "public", "other", "2.0"))
        yield w


def portal(w: World, up: bool) -> None:
    """Every project page of both indexes answers the portal's login page (or the real page)."""
    for server in (w.internal, w.public):
        for project in PROJECTS:
            server.override(f"/simple/{project}/", 200 if up else None, PORTAL)


def origins(w: World) -> dict[str, str]:
    listing = json.loads(w.ok("origins", "--json").stdout)
    return {entry["project"]: entry["index"] for entry in listing["origins"]}


def install_offline(w: World, venv: Path, project: str) -> subprocess.CompletedProcess[str]:
    return w.satchel("install", "--offline", "--venv", str(venv), project, timeout=120)


def test_a_project_the_portal_answered_for_is_bound_to_no_index(world: World) -> None:
    """A never-seen project asked for behind the portal: the first index's "page" lists no
    files, so nothing came from it and nothing is bound (before: bound to ``internal`` by first
    use, and once back online the real answer from ``public`` was refused, origin-changed,
    "other came from index 'internal'")."""
    w = world
    portal(w, up=True)
    assert w.satchel("resolve", "other").returncode != 0
    assert "other" not in origins(w)

    portal(w, up=False)
    result = w.satchel("resolve", "other")
    assert result.returncode == 0, result.stderr
    assert "other==2.0" in result.stdout
    assert origins(w)["other"] == "public"


def test_a_public_dependency_still_installs_offline_after_a_portal(
    world: World, tmp_path: Path
) -> None:
    """``evil`` was prefetched from ``public`` (``internal`` said 404). Behind the portal,
    ``internal``'s empty "page" is no answer that it now serves ``evil``: the stored page of
    ``public`` is used, with a note; and offline afterwards it installs (before: refused,
    "evil came from index 'public' ... which is now behind index 'internal'", online behind
    the portal and offline ever after, the portal's page being stored as ``internal``'s)."""
    w = world
    w.ok("prefetch", "evil")
    assert origins(w)["evil"] == "public"

    portal(w, up=True)
    behind = w.satchel("resolve", "evil")
    assert behind.returncode == 0, behind.stderr
    assert "evil==1.0" in behind.stdout
    assert "captive portal" in behind.stderr

    w.internal.stop()
    w.public.stop()
    install = install_offline(w, tmp_path / "venv", "evil")
    assert install.returncode == 0, install.stderr
    assert origins(w)["evil"] == "public"


def test_a_project_first_asked_behind_the_portal_installs_offline_later(
    world: World, tmp_path: Path
) -> None:
    """``other`` is first asked behind the portal (its login page is stored as ``internal``'s
    page), then prefetched from ``public`` once the portal is gone (``internal`` says 404).
    Offline, ``internal``'s stale page does not shadow the one ``other`` is bound to (before:
    "index 'internal' lists no files for it", offline ever after)."""
    w = world
    portal(w, up=True)
    w.satchel("resolve", "other")
    portal(w, up=False)
    w.ok("prefetch", "other")
    assert origins(w)["other"] == "public"

    w.internal.stop()
    w.public.stop()
    install = install_offline(w, tmp_path / "venv", "other")
    assert install.returncode == 0, install.stderr


def test_a_portal_answering_511_is_the_network_not_the_index(world: World, tmp_path: Path) -> None:
    """A portal that follows RFC 6585 answers every URL ``511 Network Authentication Required``.
    That is the network asking for a login, not the index failing: the indexes are unreachable,
    so a prefetched project installs from the cache, with a note naming the cause (before:
    "the index answered HTTP 511 3 times in a row", and nothing installed without
    ``--offline``)."""
    w = world
    w.ok("prefetch", "internal-tool")
    for server in (w.internal, w.public):
        server.fail_next(1_000_000, status=511)

    install = w.satchel("install", "--venv", str(tmp_path / "venv"), "internal-tool", timeout=120)
    assert install.returncode == 0, install.stderr
    assert "HTTP 511" in install.stderr and "captive portal" in install.stderr, install.stderr


def test_behind_a_portal_the_stored_page_offers_only_stored_files(
    world: World, tmp_path: Path
) -> None:
    """``internal-tool`` 1.0 was prefetched; 1.1 was published and seen by a resolve (on the
    stored page, its file never downloaded). Behind the portal the stored page is used, as
    for an unreachable index: only its stored files, so 1.0 installs, with the portal note
    (before: 1.1 was chosen and its download got the login page: "the index promised N
    bytes, got 80 [hash-mismatch]")."""
    w = world
    w.ok("prefetch", "internal-tool")
    w.internal.add(build_wheel(tmp_path / "dist" / "later", "internal-tool", "1.1"))
    assert "internal-tool==1.1" in w.ok("resolve", "internal-tool").stdout
    portal(w, up=True)
    for server in (w.internal, w.public):
        server.override("/files/internal_tool-1.1-py3-none-any.whl", 200, PORTAL)

    venv = tmp_path / "venv"
    install = w.satchel("install", "--venv", str(venv), "internal-tool", timeout=120)
    assert install.returncode == 0, install.stderr
    assert "captive portal" in install.stderr
    assert (next(venv.glob("lib/python*/site-packages")) / "internal_tool-1.0.dist-info").is_dir()


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"Please log in at the front desk.", "text/plain"),
        (b'{"login": "required"}', "application/vnd.pypi.simple.v1+json"),
        (b"\x89PNG\r\n\x1a\n", "image/png"),
    ],
    ids=["text-plain", "json-not-a-page", "image"],
)
def test_a_portal_answer_that_is_no_page_at_all_keeps_the_stored_page(
    world: World, tmp_path: Path, body: bytes, content_type: str
) -> None:
    """A portal whose answer is not a project page at all (plain text, JSON that is not the
    simple API, an image) is ignored like one that lists no files: the stored page answers,
    with a note, and a prefetched project installs without ``--offline`` (before: every
    command failed, "unexpected content type 'text/plain'" or "JSON page is not a simple-API
    page", until the user thought of ``--offline``). A project with no stored page still
    fails, naming what the index answered."""
    w = world
    w.ok("prefetch", "internal-tool")
    for server in (w.internal, w.public):
        for project in PROJECTS:
            server.override(f"/simple/{project}/", 200, body, content_type=content_type)

    install = w.satchel("install", "--venv", str(tmp_path / "venv"), "internal-tool", timeout=120)
    assert install.returncode == 0, install.stderr
    assert "not a project page" in install.stderr and "stored page" in install.stderr
    assert origins(w)["internal-tool"] == "internal"
    never = w.satchel("resolve", "other")
    assert never.returncode != 0 and "internal error" not in never.stderr, never.stderr


def test_after_a_portal_a_public_dependency_installs_with_the_vpn_down(
    world: World, tmp_path: Path
) -> None:
    """``evil`` was prefetched from ``public`` (``internal`` said 404). Behind the portal the
    portal's page is stored as ``internal``'s page of ``evil``; then, back home with the VPN
    down, ``internal`` is unreachable and ``public`` answers. ``internal``'s stored page is
    the portal's, from an index that said it does not serve ``evil``: it is not used, and
    ``evil`` comes from ``public`` it is bound to (before: the stored portal page was taken as
    ``internal``'s cached answer, "evil came from index 'public' ... which is now behind index
    'internal'", refused for as long as the VPN stayed down)."""
    w = world
    w.ok("prefetch", "evil")
    assert origins(w)["evil"] == "public"
    portal(w, up=True)
    assert w.satchel("resolve", "evil").returncode == 0
    portal(w, up=False)

    w.internal.stop()  # the VPN is down; the public index answers
    install = w.satchel("install", "--venv", str(tmp_path / "venv"), "evil", timeout=120)

    assert install.returncode == 0, install.stderr
    assert origins(w)["evil"] == "public"


def test_a_portal_answer_of_json_over_4_mib_keeps_the_stored_page_too(world: World) -> None:
    """A JSON answer that is not the simple API, and larger than 4 MiB, is parsed in the page
    parser's child process (`_pageprocess`); it is "not a project page" as a small one is: the
    stored page answers, with the note (before: its refusal came back as a plain index error,
    and every command failed until ``--offline``)."""
    w = world
    w.ok("prefetch", "internal-tool")
    body = b'{"login": "' + b"x" * (5 * 2**20) + b'"}'
    for server in (w.internal, w.public):
        for project in PROJECTS:
            server.override(
                f"/simple/{project}/", 200, body, content_type="application/vnd.pypi.simple.v1+json"
            )

    result = w.satchel("resolve", "internal-tool", timeout=120)
    assert result.returncode == 0, result.stderr
    assert "internal-tool==1.0" in result.stdout
    assert "not a project page" in result.stderr and "stored page" in result.stderr


def test_status_names_a_stored_page_kept_against_the_index(world: World) -> None:
    """pip and uv read the local index, which answers behind a portal from the stored page as
    `satchel install` does, but cannot show Satchel's note: `satchel status` names every page
    kept against its index's answer (``index notes``), so a user of pip can see that the
    index is not answering pages and what is installed comes from what was stored (before:
    only the daemon's log said so, for as long as the index answered so)."""
    w = world
    w.ok("prefetch", "internal-tool")
    for server in (w.internal, w.public):
        for project in PROJECTS:
            server.override(f"/simple/{project}/", 200, b"login", content_type="text/plain")
    exports = w.ok("env", "--shell", "bash").stdout
    base = re.search(r"PIP_INDEX_URL='?(http://[^'\s]+)", exports)
    assert base is not None, exports
    with urllib.request.urlopen(base[1] + "internal-tool/", timeout=30) as response:
        assert b"internal_tool-1.0-py3-none-any.whl" in response.read()

    notes = json.loads(w.ok("status", "--json").stdout)["index_notes"]
    assert any(
        "index internal answered for internal-tool something that is not a project page" in note
        for note in notes
    ), notes
    assert "not a project page" in w.ok("status").stdout

    for server in (w.internal, w.public):
        for project in PROJECTS:
            server.override(f"/simple/{project}/", None, b"")
    w.ok("resolve", "internal-tool")
    notes = json.loads(w.ok("status", "--json").stdout)["index_notes"]
    assert not any("internal-tool" in note for note in notes), notes
