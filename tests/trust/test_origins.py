"""Issue 12, end to end: project origins are remembered, and a fresh answer never degrades the
store (cases 2, 5, 8, 11 and the seed scenario).

A real `satchel` autostarting its own `satcheld`, and two loopback indexes: ``internal`` (first)
serving the private ``internal-tool`` 1.0.0 (console script ``render``) and ``helper``; ``public``
(after it) serving an impostor ``internal-tool`` 9.9.0 (whose ``render`` says so), and the public
projects ``evil`` and ``other``. Once ``internal-tool`` came from ``internal``, no answer may take
it from ``public`` without the user's word: resolve, prefetch, install, run and the local index
refuse (``origin-changed``), naming both indexes, their versions and the way out.
"""

from __future__ import annotations

import base64
import contextlib
import json
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.client.clientenv import ClientEnv
from tests.e2e.twoindexes import EXIT_FAILURE, EXIT_OFFLINE, World
from tests.support.index_server import IndexServer
from tests.support.wheels import build_wheel

RENDER = 'def main():\n    print("render {version}")\n'
PORTAL = b"<html><body><h1>Welcome to the airport Wi-Fi</h1><a href='/login'>Log in</a></body>"


def _world(root: Path) -> World:
    dist = root / "dist"
    internal = IndexServer(root / "internal").start()
    public = IndexServer(root / "public").start()
    for server, where, version, requires in (
        (internal, "internal", "1.0.0", ["helper>=1"]),
        (public, "public", "9.9.0", ["evil"]),
    ):
        server.add(
            build_wheel(
                dist / where,
                "internal-tool",
                version,
                requires=requires,
                files={"internal_tool/__init__.py": RENDER.format(version=version)},
                console_scripts={"render": "internal_tool:main"},
            )
        )
    internal.add(build_wheel(dist / "internal", "helper", "1.2"))
    public.add(build_wheel(dist / "public", "evil", "1.0"))
    public.add(build_wheel(dist / "public", "other", "2.0"))
    return World(root, ClientEnv(root), internal, public)


@contextlib.contextmanager
def open_world(root: Path) -> Iterator[World]:
    w = _world(root)
    try:
        w.add_index("internal", w.internal.url)
        w.add_index("public", w.public.url)
        yield w
    finally:
        w.env.cleanup()
        w.internal.stop()
        w.public.stop()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with open_world(tmp_path) as w:
        yield w


def refused(w: World, *args: str) -> dict[str, Any]:
    """Run `satchel *args` (asking for JSON), insist on an origin-changed refusal; return the
    refusal's JSON details."""
    result = w.satchel(*args)
    assert result.returncode == EXIT_FAILURE, (result.returncode, result.stdout, result.stderr)
    assert "[origin-changed]" in result.stderr, result.stderr
    error = json.loads(result.stdout)["error"]
    assert error["code"] == "origin-changed"
    details: dict[str, Any] = error["details"]
    return details


def assert_names_both(w: World, details: dict[str, Any], stderr: str) -> None:
    assert details["project"] == "internal-tool"
    assert details["bound"]["index"] == "internal"
    assert details["bound"]["url"] == w.internal.url
    assert details["bound"]["versions"] == ["1.0.0"]
    assert details["offered"] == {"index": "public", "url": w.public.url, "versions": ["9.9.0"]}
    assert details["accept"] == "satchel origins trust internal-tool public"
    for text in ("internal", "public", "1.0.0", "9.9.0", "satchel origins trust internal-tool"):
        assert text in stderr


def versions(w: World, *args: str) -> dict[str, str]:
    return {name: pin["version"] for name, pin in w.pins(*args).items()}


def local_index_get(w: World, path: str) -> tuple[int, str]:
    """GET *path* (``/simple/...``) from the daemon's local index, as pip would (with the URL
    `satchel index-url` prints: with the token only where it carries one)."""
    url = urlsplit(w.ok("index-url").stdout.strip())
    headers = {}
    if url.password is not None:
        token = base64.b64encode(f"{url.username}:{url.password}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    request = urllib.request.Request(f"http://{url.hostname}:{url.port}{path}", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def venv_with(w: World, venv: Path, *requirements: str) -> subprocess.CompletedProcess[str]:
    return w.satchel("install", "--venv", str(venv), *requirements, timeout=120)


def render_in(venv: Path) -> str:
    result = subprocess.run(
        [str(venv / "bin" / "render")], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


# -- the binding -------------------------------------------------------------------------------


def test_first_use_binds_the_project_to_the_index_that_served_it(world: World) -> None:
    """issue 12: trust on first use, recorded with the indexes that said "not here"."""
    w = world
    assert versions(w, "internal-tool", "evil") == {
        "internal-tool": "1.0.0",
        "helper": "1.2",
        "evil": "1.0",
    }
    listing = json.loads(w.ok("origins", "list", "--json").stdout)["origins"]
    bound = {item["project"]: item for item in listing}
    assert bound["internal-tool"]["index"] == "internal"
    assert bound["internal-tool"]["url"] == w.internal.url
    assert bound["internal-tool"]["how"] == "first-use"
    assert bound["evil"]["index"] == "public"
    assert bound["evil"]["absent"] == [w.internal.url]
    pins = w.pins("internal-tool")
    assert (pins["internal-tool"]["index"], pins["internal-tool"]["bound"]) == (
        "internal",
        "first-use",
    )


# -- case 2: the private index answers 404 or 410, or redirects to a 404 ----------------------


def _break_internal(w: World, how: str) -> None:
    if how == "404":
        w.internal.override("/simple/internal-tool/", 404, b"no such project\n", "text/plain")
    elif how == "410":
        w.internal.override("/simple/internal-tool/", 410, b"gone\n", "text/plain")
    else:
        w.internal.override("/simple/internal-tool/", 302, headers={"Location": "/moved/"})
        w.internal.override("/moved/", 404, b"not found\n", "text/plain")


@pytest.mark.parametrize("how", ["404", "410", "redirect-to-404"])
def test_a_not_found_from_the_bound_index_is_refused_not_followed(
    world: World, tmp_path: Path, how: str
) -> None:
    """issue 12 case 2: the impostor is never taken; the refusal names both and the way out."""
    w = world
    w.ok("prefetch", "internal-tool")
    _break_internal(w, how)

    details = refused(w, "resolve", "--format", "json", "internal-tool")
    result = w.satchel("resolve", "internal-tool")
    assert_names_both(w, details, result.stderr)
    assert details["reason"] == "not-found"
    assert "404 or 410" in result.stderr

    venv = tmp_path / "venv"
    install = venv_with(w, venv, "internal-tool")
    assert install.returncode == EXIT_FAILURE and "[origin-changed]" in install.stderr
    assert not (venv / "bin" / "render").exists()
    # `run` is offline-first: the cache, bound to internal, answers with the private tool.
    run = w.satchel("run", "--from", "internal-tool", "render")
    assert (run.returncode, run.stdout) == (0, "render 1.0.0\n"), run.stderr
    refused(w, "prefetch", "--json", "internal-tool")
    status, body = local_index_get(w, "/simple/internal-tool/")
    assert status == 403 and "satchel origins trust internal-tool public" in body
    assert not any("internal_tool-9.9.0" in path for path in w.public.requests)


def test_the_way_out_trust_accepts_the_change(world: World) -> None:
    """issue 12 case 2: `satchel origins trust` is the user's word; the impostor is then taken."""
    w = world
    w.ok("resolve", "internal-tool")
    _break_internal(w, "404")
    refused(w, "resolve", "--format", "json", "internal-tool")

    trusted = w.ok("origins", "trust", "internal-tool", "public")
    assert "internal-tool may now come from index public only" in trusted.stdout

    pin = w.pins("internal-tool")["internal-tool"]
    assert (pin["version"], pin["index"], pin["bound"]) == ("9.9.0", "public", "trust")
    listing = json.loads(w.ok("origins", "list", "internal-tool", "--json").stdout)["origins"]
    assert listing[0]["index"] == "public" and listing[0]["how"] == "trust"


def test_a_pin_and_unsafe_best_match_are_the_other_ways_out(world: World) -> None:
    """issue 12: a pin rebinds; `--index-strategy unsafe-best-match` is the explicit opt-out."""
    w = world
    w.ok("resolve", "internal-tool")
    _break_internal(w, "410")
    opted = w.pins("--index-strategy", "unsafe-best-match", "internal-tool")["internal-tool"]
    assert (opted["version"], opted["bound"]) == ("9.9.0", None)
    refused(
        w, "resolve", "--format", "json", "internal-tool"
    )  # the opt-out was for one command only

    w.ok("index", "pin", "internal-tool", "public")
    assert versions(w, "internal-tool")["internal-tool"] == "9.9.0"
    w.ok("index", "pin", "internal-tool", "--remove")
    # The pin moved the binding: unpinned, the project still comes from public only.
    assert versions(w, "internal-tool")["internal-tool"] == "9.9.0"


# -- case 5: the private index removed, or made explicit without a pin ------------------------


def test_removing_the_bound_index_is_refused_not_silently_switched(
    world: World, tmp_path: Path
) -> None:
    """issue 12 case 5: `satchel index remove internal`, then online resolve/install/run."""
    w = world
    w.ok("prefetch", "internal-tool")
    w.ok("index", "remove", "internal")

    details = refused(w, "resolve", "--format", "json", "internal-tool")
    assert details["reason"] == "not-configured"
    assert details["bound"]["index"] == "internal" and details["offered"]["index"] == "public"
    message = w.satchel("install", "--venv", str(tmp_path / "venv"), "internal-tool").stderr
    assert "no longer configured" in message and "satchel origins trust" in message
    run = w.satchel("run", "--from", "internal-tool", "render")
    assert run.returncode == EXIT_FAILURE and "[origin-changed]" in run.stderr
    assert not any("internal_tool-9.9.0" in path for path in w.public.requests)


def test_an_explicit_bound_index_without_a_pin_is_refused(world: World, tmp_path: Path) -> None:
    """issue 12 case 5: `explicit = true` on the private index, and no pin."""
    w = world
    w.ok("prefetch", "internal-tool")
    w.ok("index", "remove", "internal")
    w.ok("index", "add", "internal", w.internal.url, "--explicit")

    details = refused(w, "resolve", "--format", "json", "internal-tool")
    assert details["reason"] == "explicit-unpinned"
    install = venv_with(w, tmp_path / "venv", "internal-tool")
    assert install.returncode == EXIT_FAILURE and "[origin-changed]" in install.stderr

    w.ok("index", "pin", "internal-tool", "internal")
    w.ok("index", "pin", "helper", "internal")
    assert versions(w, "internal-tool")["internal-tool"] == "1.0.0"


# -- case 8: a captive portal ------------------------------------------------------------------


def test_a_captive_portal_page_does_not_replace_the_stored_page(
    world: World, tmp_path: Path
) -> None:
    """issue 12 case 8: a 200 text/html page without the stored files is reported and ignored;
    the prefetched package still installs once both indexes are gone."""
    w = world
    w.ok("prefetch", "internal-tool")
    for server in (w.internal, w.public):
        for project in ("internal-tool", "helper", "evil", "other"):
            server.override(f"/simple/{project}/", 200, PORTAL)

    online = w.satchel("resolve", "internal-tool")
    assert online.returncode == 0, online.stderr
    assert "internal-tool==1.0.0" in online.stdout
    assert "lists none of the" in online.stderr and "captive portal" in online.stderr

    w.internal.stop()
    w.public.stop()
    venv = tmp_path / "venv"
    install = venv_with(w, venv, "internal-tool")
    assert install.returncode == 0, install.stderr
    assert "not cached" not in install.stderr
    assert render_in(venv) == "render 1.0.0\n"


def test_offline_stored_files_are_never_called_not_cached(world: World) -> None:
    """issue 12: the index dropped the stored 1.0.0 from its page (a legitimate change, stored);
    offline, the miss says the file is in the store and why it is not used."""
    w = world
    w.ok("prefetch", "internal-tool")
    w.internal.add(build_wheel(w.root / "dist" / "later", "internal-tool", "1.1.0"))
    w.ok("resolve", "internal-tool")
    w.internal.remove("internal_tool-1.0.0-py3-none-any.whl")
    w.satchel("resolve", "internal-tool==1.0.0")  # online: the page now lists 1.1.0 only
    w.internal.stop()
    w.public.stop()

    result = w.satchel("resolve", "--offline", "internal-tool")
    assert result.returncode == EXIT_OFFLINE
    assert "internal_tool-1.0.0-py3-none-any.whl (index internal) is in the store" in result.stderr
    assert "not cached" not in result.stderr and "not in the cache" not in result.stderr


# -- case 11: half-offline ---------------------------------------------------------------------


def test_half_offline_a_project_bound_to_the_public_index_still_resolves(
    world: World, tmp_path: Path
) -> None:
    """issue 12 case 11: the private index is unreachable, the public one up. A project the
    private index said it did not serve resolves and installs (also through the local index);
    a never-seen project is still refused."""
    w = world
    w.ok("prefetch", "evil")
    w.internal.stop()

    result = w.satchel("resolve", "evil")
    assert result.returncode == 0, result.stderr
    assert "evil==1.0" in result.stdout
    assert "it said before that it does not serve evil" in result.stderr
    venv = tmp_path / "venv"
    install = venv_with(w, venv, "evil")
    assert install.returncode == 0, install.stderr
    status, body = local_index_get(w, "/simple/evil/")
    assert status == 200 and "evil-1.0-py3-none-any.whl" in body

    never_seen = w.satchel("resolve", "other")
    assert never_seen.returncode == EXIT_OFFLINE, never_seen.stderr
    assert "index-unreachable" in never_seen.stderr
    assert "never been seen serving other" in never_seen.stderr
    status, _ = local_index_get(w, "/simple/other/")
    assert status == 503


# -- the seed scenario -------------------------------------------------------------------------


def test_seed_scenario_prefetch_then_both_indexes_die(world: World, tmp_path: Path) -> None:
    """issue 12 (seed): prefetch from the private index, both indexes die; run and install
    work with no index flag, and pip installs it through the local index."""
    w = world
    w.ok("prefetch", "internal-tool")
    w.internal.stop()
    w.public.stop()

    run = w.satchel("run", "--from", "internal-tool", "render")
    assert run.returncode == 0, run.stderr
    assert run.stdout == "render 1.0.0\n"
    venv = tmp_path / "venv"
    install = venv_with(w, venv, "internal-tool")
    assert install.returncode == 0, install.stderr
    assert render_in(venv) == "render 1.0.0\n"

    target = tmp_path / "pip-target"
    index_url = w.ok("index-url").stdout.strip()
    pip = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-cache-dir",
            "--disable-pip-version-check",
            "--target",
            str(target),
            "--index-url",
            index_url,
            "internal-tool",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**w.env.env, "PIP_CONFIG_FILE": "/dev/null"},
        check=False,
    )
    assert pip.returncode == 0, pip.stderr
    assert "1.0.0" in (target / "internal_tool" / "__init__.py").read_text("utf-8")

    uv = shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not on PATH: the pip half of the seed scenario passed")
    uv_target = tmp_path / "uv-target"
    env = {k: v for k, v in w.env.env.items() if not k.startswith("UV_")}
    env["UV_CACHE_DIR"] = str(tmp_path / "cold-uv-cache")
    installed = subprocess.run(
        [
            uv,
            "pip",
            "install",
            "--target",
            str(uv_target),
            "--index-url",
            index_url,
            "internal-tool",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert installed.returncode == 0, installed.stderr
    assert "1.0.0" in (uv_target / "internal_tool" / "__init__.py").read_text("utf-8")


# -- a changed configuration, a fresh daemon, a renamed index, watched projects ---------------


def test_a_fresh_daemon_with_the_public_index_first_is_refused(world: World) -> None:
    """issue 12: the binding is on disk; a daemon started with another index order (another
    environment, another config.toml) does not take the project from elsewhere."""
    w = world
    w.ok("resolve", "internal-tool")
    w.ok("stop")
    config = Path(w.env.env["XDG_CONFIG_HOME"]) / "satchel" / "config.toml"
    config.write_text(
        f'[[index]]\nname = "public"\nurl = "{w.public.url}"\n\n'
        f'[[index]]\nname = "internal"\nurl = "{w.internal.url}"\n',
        "utf-8",
    )

    details = refused(w, "resolve", "--format", "json", "internal-tool")
    assert details["reason"] == "shadowed"
    assert details["bound"]["index"] == "internal" and details["offered"]["index"] == "public"


def test_a_renamed_index_with_the_same_url_keeps_its_projects(world: World) -> None:
    """issue 12: an index is identified by its URL, not its name."""
    w = world
    w.ok("resolve", "internal-tool")
    w.ok("index", "remove", "internal")
    w.ok("index", "add", "corp", w.internal.url, "--before", "public")

    assert versions(w, "internal-tool") == {"internal-tool": "1.0.0", "helper": "1.2"}
    listing = json.loads(w.ok("origins", "--json").stdout)["origins"]
    bound = {item["project"]: item for item in listing}
    assert bound["internal-tool"]["index"] == "corp"
    assert bound["internal-tool"]["bound_name"] == "internal"


def test_a_watched_project_never_prefetches_the_impostor(world: World, tmp_path: Path) -> None:
    """issue 12: watch/refresh go through the same binding as prefetch."""
    w = world
    w.ok("resolve", "internal-tool")
    _break_internal(w, "404")
    project = tmp_path / "project"
    project.mkdir()
    (project / "requirements.txt").write_text("internal-tool\n", "utf-8")
    w.ok("watch", "add", str(project))

    result = w.satchel("prefetch", "--watched")
    assert result.returncode != 0
    assert "FAILED" in result.stdout and "came from index 'internal'" in result.stdout
    assert "satchel origins trust internal-tool public" in result.stdout
    assert "came from index 'internal'" in w.ok("watch", "list").stdout
    assert not any("internal_tool-9.9.0" in path for path in w.public.requests)
