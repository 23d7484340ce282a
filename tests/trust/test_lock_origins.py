"""Issue 13.6 under issue 12's trust model: a lock's files come only from configured indexes.

A lock (pylock.toml, uv.lock) is input, not configuration: Satchel never fetches a file because a
lock names its URL. Each locked file is tied to a configured index (its recorded provenance, an
index page listing its sha256, or the index's own origin), a project keeps the index it is bound
to, and a lock that would take it from another is refused with the way out.

Two configured loopback indexes (`tests.e2e.twoindexes`): ``internal`` (``internal-tool`` 1.0,
``helper`` 1.2) and, after it, ``public`` (an impostor ``internal-tool`` 9.0, ``evil`` 1.0); and
``elsewhere``, a third index that is not configured. The locks are PEP 751 as uv writes them
(``uv pip compile``: no ``index``), by hand, so that each names exactly the file under test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.twoindexes import EXIT_FAILURE, HELPER, INTERNAL_TOOL, World, open_world
from tests.support.index_server import IndexServer
from tests.support.wheels import build_wheel

IMPOSTOR = "internal_tool-9.0-py3-none-any.whl"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with open_world(tmp_path) as w:
        yield w


@pytest.fixture
def elsewhere(tmp_path: Path) -> Iterator[IndexServer]:
    server = IndexServer(tmp_path / "elsewhere").start()
    server.add(build_wheel(tmp_path / "dist" / "elsewhere", "stray", "1.0"))
    try:
        yield server
    finally:
        server.stop()


def pylock(path: Path, *packages: tuple[str, str, str, str], index: str | None = None) -> Path:
    """A PEP 751 lock of (name, version, url, sha256) wheels, as uv writes it."""
    lines = ['lock-version = "1.0"', 'created-by = "uv"', 'requires-python = ">=3.11"']
    for name, version, url, sha in packages:
        lines += ["", "[[packages]]", f'name = "{name}"', f'version = "{version}"']
        if index is not None:
            lines.append(f'index = "{index}"')
        lines.append(f'wheels = [{{ url = "{url}", hashes = {{ sha256 = "{sha}" }} }}]')
    path.write_text("\n".join(lines) + "\n", "utf-8")
    return path


def files_fetched(server: IndexServer) -> list[str]:
    return [r for r in server.requests if r.startswith("/files/")]


def pip_list(venv: Path) -> dict[str, str]:
    """What pip (the dev group's, never asking an index) sees installed in *venv*."""
    result = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "list",
         "--format=json"],
        env={**os.environ, "PIP_CONFIG_FILE": os.devnull, "PIP_NO_INDEX": "1"},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return {row["name"]: row["version"] for row in json.loads(result.stdout)}


def install_fails(w: World, lock: Path, code: str) -> tuple[str, dict[str, object]]:
    venv = w.root / "venv"
    result = w.satchel("install", "--lock", str(lock), "--venv", str(venv), "--json")
    assert result.returncode == EXIT_FAILURE, (result.returncode, result.stderr)
    error = json.loads(result.stdout)["error"]
    assert error["code"] == code, error
    return result.stderr, error["details"]


def test_a_file_no_configured_index_serves_is_refused_and_never_fetched(
    world: World, elsewhere: IndexServer
) -> None:
    """Issue 13.6: a lock without ``index`` whose file is on no configured index's origin and on
    no configured index's page is refused naming the package, the file and what is missing."""
    stray = "stray-1.0-py3-none-any.whl"
    lock = pylock(
        world.root / "pylock.toml",
        ("stray", "1.0", elsewhere.file_url(stray), elsewhere.sha256(stray)),
    )

    stderr, details = install_fails(world, lock, "not-found")

    assert details["package"] == "stray"
    assert details["file"] == stray
    for text in (
        "stray 1.0",
        stray,
        "'internal', 'public': every non-explicit index",
        elsewhere.sha256(stray),
        f"http://127.0.0.1:{elsewhere.port}/files/, none of their origins and paths",
    ):
        assert text in stderr
    assert "satchel index add" in stderr
    assert files_fetched(elsewhere) == []


def test_a_lock_naming_an_index_that_is_not_configured_is_refused(
    world: World, elsewhere: IndexServer
) -> None:
    stray = "stray-1.0-py3-none-any.whl"
    lock = pylock(
        world.root / "pylock.toml",
        ("stray", "1.0", elsewhere.file_url(stray), elsewhere.sha256(stray)),
        index=elsewhere.url,
    )

    stderr, details = install_fails(world, lock, "not-found")

    assert details == {"package": "stray", "index": elsewhere.url}
    assert f"stray is locked to index {elsewhere.url}, which is not configured" in stderr
    assert files_fetched(elsewhere) == []


def test_a_lock_never_takes_a_bound_project_from_another_index(world: World) -> None:
    """internal-tool came from ``internal``; a lock listing the impostor's file from ``public``
    (configured, after it) is refused, with ``index`` (origin-changed, naming both and the way
    out) or without (no index in its scope vouches for that file), and nothing is fetched."""
    world.ok("prefetch", "internal-tool")
    world.public.reset_log()
    impostor = (
        "internal-tool",
        "9.0",
        world.public.file_url(IMPOSTOR),
        world.public.sha256(IMPOSTOR),
    )

    stderr, details = install_fails(
        world,
        pylock(world.root / "pylock.toml", impostor, index=world.public.url),
        "origin-changed",
    )
    assert details["accept"] == "satchel origins trust internal-tool public"
    assert "came from index 'internal'" in stderr
    assert "satchel origins trust internal-tool public" in stderr

    stderr, details = install_fails(
        world, pylock(world.root / "pylock.toml", impostor), "not-found"
    )
    assert details["package"] == "internal-tool"
    assert "no index in scope for internal-tool ('internal': internal-tool came from it" in stderr
    assert "satchel origins trust internal-tool INDEX" in stderr
    assert files_fetched(world.public) == []


def test_offline_a_stored_file_installs_with_the_index_its_provenance_records(
    world: World,
) -> None:
    """The lock's URLs point at a mirror nobody configured; the files (same sha256) are stored
    from ``internal``. Offline, with every index stopped, the lock installs from the store."""
    world.ok("prefetch", "internal-tool")
    mirror = "http://127.0.0.1:9/mirror/"
    lock = pylock(
        world.root / "pylock.toml",
        ("internal-tool", "1.0", mirror + INTERNAL_TOOL, world.internal.sha256(INTERNAL_TOOL)),
        ("helper", "1.2", mirror + HELPER, world.internal.sha256(HELPER)),
    )
    world.internal.stop()
    world.public.stop()
    venv = world.root / "venv"

    world.ok("install", "--offline", "--lock", str(lock), "--venv", str(venv))

    listed = pip_list(venv)
    assert listed["internal-tool"] == "1.0"
    assert listed["helper"] == "1.2"


def test_an_unbound_project_is_bound_to_the_index_that_served_its_locked_file(
    world: World,
) -> None:
    """Online, a locked file on ``public``'s origin binds its project there (first use), as a
    resolve would have."""
    evil = "evil-1.0-py3-none-any.whl"
    lock = pylock(
        world.root / "pylock.toml",
        ("evil", "1.0", world.public.file_url(evil), world.public.sha256(evil)),
    )

    world.ok("install", "--lock", str(lock), "--venv", str(world.root / "venv"))

    listing = json.loads(world.ok("origins", "list", "--json").stdout)["origins"]
    bound = {item["project"]: item for item in listing}
    assert bound["evil"]["index"] == "public"
    assert bound["evil"]["how"] == "first-use"


def test_a_lock_never_overrides_a_pin(world: World) -> None:
    """``evil`` is pinned to ``internal`` (the user's word); a lock taking it from ``public`` is
    refused naming the pin and the command that changes it, and nothing is fetched."""
    world.ok("index", "pin", "evil", "internal")
    world.public.reset_log()
    evil = "evil-1.0-py3-none-any.whl"
    lock = pylock(
        world.root / "pylock.toml",
        ("evil", "1.0", world.public.file_url(evil), world.public.sha256(evil)),
        index=world.public.url,
    )

    stderr, details = install_fails(world, lock, "not-found")

    assert details == {"package": "evil", "index": "public", "pinned": "internal"}
    assert "evil is pinned to index 'internal'" in stderr
    assert "satchel index pin evil public" in stderr
    assert files_fetched(world.public) == []
