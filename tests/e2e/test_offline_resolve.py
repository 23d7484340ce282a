"""Issue 3, end to end: prefetch online, resolve offline, with the real `satchel` and `satcheld`.

Every test runs the installed `satchel` script against a daemon it autostarts, exactly as a user
would, in a private environment (`tests.client.clientenv.ClientEnv`), with indexes that are real
HTTP servers on 127.0.0.1 (`tests.support.index_server.IndexServer`) serving real wheels.

Each test gets its own daemon and indexes (`world`): the scenarios stop indexes, kill the daemon
and remove indexes from the configuration, and the daemon's per-index circuit breaker remembers
an index it saw die for a cool-down much longer than a test, so sharing one daemon would make the
tests depend on their order. A daemon start costs well under a second.

The two indexes of a world:

* ``internal`` (configured first): the private ``internal-tool`` 1.0 (console script ``render``)
  depending on ``helper>=1``, and ``helper`` 1.2;
* ``public`` (configured after it): an impostor ``internal-tool`` 9.0 depending on ``evil``, and
  ``evil`` 1.0. Under the default strategy nothing from it may ever be picked for
  ``internal-tool``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import re
import signal
import socket
import subprocess
import threading
import time
import tomllib
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.client.clientenv import SATCHEL, ClientEnv
from tests.support.daemon import Client
from tests.support.index_server import IndexServer
from tests.support.wheels import build_wheel, file_sha256

EXIT_FAILURE = 1
EXIT_OFFLINE = 5
EXIT_RESOLUTION = 6

INTERNAL_TOOL = "internal_tool-1.0-py3-none-any.whl"
HELPER = "helper-1.2-py3-none-any.whl"


@dataclass
class World:
    """One private daemon environment and its two indexes."""

    root: Path
    env: ClientEnv
    internal: IndexServer
    public: IndexServer

    @property
    def cache(self) -> Path:
        return Path(self.env.env["XDG_CACHE_HOME"]) / "satchel"

    def satchel(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return self.env.satchel(*args, timeout=timeout)

    def ok(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """Run `satchel *args` and insist that it succeeded."""
        result = self.satchel(*args, timeout=timeout)
        assert result.returncode == 0, f"satchel {' '.join(args)}:\n{result.stderr}"
        return result

    def pins(self, *args: str) -> dict[str, dict[str, Any]]:
        """`satchel resolve --format json *args` as {name: pin}."""
        value = json.loads(self.ok("resolve", "--format", "json", *args).stdout)
        return {pin["name"]: pin for pin in value["pins"]}

    def add_index(self, name: str, url: str) -> None:
        self.ok("index", "add", name, url)
        # On an empty config.toml, `index add` first writes out the adopted indexes (pip's
        # built-in default among them, ahead of the new one). The tests stay on loopback.
        listing = json.loads(self.ok("index", "list", "--json").stdout)
        for index in listing["indexes"]:
            if not index["url"].startswith("http://127.0.0.1:"):
                self.ok("index", "remove", index["name"])

    def verify_clean(self) -> int:
        """`satchel cache verify`: assert nothing is corrupt; return how many blobs it checked."""
        value = json.loads(self.ok("cache", "verify", "--json").stdout)
        assert value["corrupt"] == []
        return int(value["checked"])

    def blob(self, sha256: str) -> Path:
        return self.cache / "blobs" / sha256[:2] / sha256[2:4] / sha256


def _build_world(root: Path) -> World:
    dist = root / "dist"
    internal = IndexServer(root / "internal").start()
    public = IndexServer(root / "public").start()
    internal.add(
        build_wheel(
            dist / "internal",
            "internal-tool",
            "1.0",
            requires=["helper>=1"],
            console_scripts={"render": "internal_tool:main"},
        )
    )
    internal.add(build_wheel(dist / "internal", "helper", "1.2"))
    public.add(build_wheel(dist / "public", "internal-tool", "9.0", requires=["evil"]))
    public.add(build_wheel(dist / "public", "evil", "1.0"))
    return World(root, ClientEnv(root), internal, public)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    """Both indexes serving, `internal` then `public` configured through `satchel index add`."""
    w = _build_world(tmp_path)
    try:
        w.add_index("internal", w.internal.url)
        w.add_index("public", w.public.url)
        yield w
    finally:
        w.env.cleanup()
        w.internal.stop()
        w.public.stop()


@pytest.fixture
def internal_only(tmp_path: Path) -> Iterator[World]:
    """Only `internal` configured (the `public` server runs but is not an index)."""
    w = _build_world(tmp_path)
    try:
        w.add_index("internal", w.internal.url)
        yield w
    finally:
        w.env.cleanup()
        w.internal.stop()
        w.public.stop()


# -- scenario 1: prefetch, stop the index, resolve offline ----------------------------------------


def test_offline_resolve_after_prefetch_prints_the_online_pins(internal_only: World) -> None:
    w = internal_only
    online = w.ok("resolve", "internal-tool").stdout
    assert "internal-tool==1.0" in online and "helper==1.2" in online
    w.ok("prefetch", "internal-tool")
    w.internal.stop()

    offline = w.ok("resolve", "--offline", "internal-tool")

    assert offline.stdout == online
    assert f"--hash=sha256:{w.internal.sha256(INTERNAL_TOOL)}" in offline.stdout
    assert f"--hash=sha256:{w.internal.sha256(HELPER)}" in offline.stdout


def test_resolve_with_the_index_down_answers_offline_and_says_so(internal_only: World) -> None:
    w = internal_only
    online = w.ok("resolve", "internal-tool").stdout
    w.ok("prefetch", "internal-tool")
    w.internal.stop()

    result = w.ok("resolve", "internal-tool")

    assert result.stdout == online
    assert "offline" in result.stderr and "unreachable" in result.stderr
    assert result.stderr.startswith("note: ")


def test_every_index_down_answers_from_the_cache_of_a_later_index(world: World) -> None:
    """evil comes from `public`; with the network gone, first-index must not block it."""
    online = world.ok("resolve", "evil").stdout
    assert "from index 'public'" in online
    world.ok("prefetch", "evil")
    world.internal.stop()
    world.public.stop()

    result = world.ok("resolve", "evil")

    assert result.stdout == online
    assert "note: offline: every configured index is unreachable" in result.stderr


def test_prefetched_wheel_keeps_its_console_script(internal_only: World) -> None:
    """What is prefetched is the very file the index served (its entry points included)."""
    w = internal_only
    pins = w.pins("internal-tool")
    w.ok("prefetch", "internal-tool")
    stored = w.blob(pins["internal-tool"]["sha256"])
    assert file_sha256(stored) == w.internal.sha256(INTERNAL_TOOL)
    with zipfile.ZipFile(stored) as zf:
        entry_points = zf.read("internal_tool-1.0.dist-info/entry_points.txt").decode()
    assert "render = internal_tool:main" in entry_points


# -- scenario 2: a second index serving another internal-tool -------------------------------------


def test_first_index_takes_internal_tool_only_from_internal(world: World) -> None:
    pins = world.pins("internal-tool")

    assert set(pins) == {"internal-tool", "helper"}
    for name, filename in (("internal-tool", INTERNAL_TOOL), ("helper", HELPER)):
        assert pins[name]["index"] == "internal"
        assert pins[name]["index_url"].rstrip("/") == world.internal.url.rstrip("/")
        assert pins[name]["sha256"] == world.internal.sha256(filename)
    assert pins["internal-tool"]["version"] == "1.0"
    assert not any("/files/" in path for path in world.public.requests)
    text = world.ok("resolve", "internal-tool").stdout
    assert text.count("from index 'internal'") == 2 and "public" not in text
    assert f"--hash=sha256:{world.internal.sha256(INTERNAL_TOOL)}" in text


def test_first_index_answering_errors_does_not_fall_through(world: World) -> None:
    """An index that answers 5xx is broken, not absent: its projects are not looked up later."""
    world.internal.fail_next(100, 503)

    result = world.satchel("resolve", "internal-tool")

    assert result.returncode != 0
    assert "internal" in result.stderr
    assert "internal-tool" not in result.stdout
    assert not any("internal-tool" in path for path in world.public.requests)


def test_unreachable_internal_with_a_cached_page_still_wins(world: World) -> None:
    online = world.pins("internal-tool")
    world.internal.stop()

    result = world.ok("resolve", "--format", "json", "internal-tool")

    pins = {pin["name"]: pin for pin in json.loads(result.stdout)["pins"]}
    assert pins == online
    assert "index internal is unreachable" in result.stderr


def test_unreachable_internal_never_seen_serving_refuses_public(world: World) -> None:
    world.internal.stop()

    result = world.satchel("resolve", "internal-tool")

    assert result.returncode == EXIT_OFFLINE, result.stderr
    assert result.stdout == ""
    assert "index internal is unreachable" in result.stderr
    assert "never been seen serving internal-tool" in result.stderr
    assert "dependency confusion" in result.stderr
    assert "satchel index pin internal-tool" in result.stderr
    assert not any("internal-tool" in path for path in world.public.requests)


def test_refusal_probes_a_later_index_without_naming_the_project(world: World) -> None:
    """Is `public` down too? Asked with a project it serves, never with the one refused."""
    world.ok("prefetch", "evil")
    world.internal.stop()
    world.public.reset_log()

    result = world.satchel("resolve", "internal-tool")

    assert result.returncode == EXIT_OFFLINE, result.stderr
    assert "dependency confusion" in result.stderr
    assert world.public.requests == ["/simple/evil/"]


def test_unsafe_best_match_takes_the_best_version_across_indexes(world: World) -> None:
    pins = world.pins("--index-strategy", "unsafe-best-match", "internal-tool")

    assert pins["internal-tool"]["version"] == "9.0"
    assert pins["internal-tool"]["index"] == "public"
    assert pins["evil"]["index"] == "public"
    assert "helper" not in pins
    # The opt-in is per request: the next default resolve is back to internal's.
    assert world.pins("internal-tool")["internal-tool"]["index"] == "internal"


def test_unsafe_best_match_still_honours_a_pin(world: World) -> None:
    world.ok("index", "pin", "internal-tool", "internal")

    pins = world.pins("--index-strategy", "unsafe-best-match", "internal-tool")

    assert pins["internal-tool"]["version"] == "1.0"
    assert pins["internal-tool"]["index"] == "internal"
    assert set(pins) == {"internal-tool", "helper"}


def test_unsafe_best_match_prefers_the_earlier_index_for_the_same_version(world: World) -> None:
    dist = world.root / "dist" / "public-helper"
    world.public.add(build_wheel(dist, "helper", "1.2", summary="Another helper."))
    assert world.public.sha256(HELPER) != world.internal.sha256(HELPER)

    pins = world.pins("--index-strategy", "unsafe-best-match", "helper")

    assert pins["helper"]["index"] == "internal"
    assert pins["helper"]["sha256"] == world.internal.sha256(HELPER)


# -- scenarios 3 and 4: out of scope and missing, offline -----------------------------------------


def test_offline_project_cached_under_a_removed_index_names_it(world: World) -> None:
    world.ok("prefetch", "internal-tool")
    world.ok("index", "remove", "internal")

    result = world.satchel("resolve", "--offline", "internal-tool")

    assert result.returncode == EXIT_OFFLINE, result.stderr
    assert "cached from index 'internal'" in result.stderr
    assert world.internal.project_url("internal-tool").rstrip("/") in result.stderr
    assert "satchel index add internal" in result.stderr
    assert "satchel index pin internal-tool internal" in result.stderr


def test_offline_miss_says_what_is_missing(world: World) -> None:
    world.ok("prefetch", "helper")

    result = world.satchel("resolve", "--offline", "never-fetched")

    assert result.returncode == EXIT_OFFLINE, result.stderr
    assert "never-fetched is not cached" in result.stderr
    assert "satchel prefetch never-fetched" in result.stderr
    assert "[not-cached]" in result.stderr


def test_offline_miss_of_files_never_prefetched(world: World) -> None:
    """An online resolve caches pages and metadata, not files: offline, that is a miss."""
    world.ok("resolve", "internal-tool")
    world.internal.stop()

    result = world.satchel("resolve", "--offline", "internal-tool")

    assert result.returncode == EXIT_OFFLINE, result.stderr
    assert "internal-tool (needed by: your requirements) is known from index 'internal'" in (
        result.stderr
    )
    assert re.search(r"last seen \d{4}-\d\d-\d\d \d\d:\d\d UTC", result.stderr)
    assert "none of its files is in the cache" in result.stderr
    assert "satchel prefetch internal-tool" in result.stderr


# -- scenario 5: a corrupted file on the index ----------------------------------------------------


def test_corrupted_file_is_rejected_and_nothing_is_kept(world: World) -> None:
    good = world.internal.sha256(HELPER)
    data = (world.internal.root / HELPER).read_bytes()
    bad = hashlib.sha256(bytes([data[0] ^ 0xFF]) + data[1:]).hexdigest()
    world.internal.corrupt(HELPER)

    result = world.satchel("prefetch", "internal-tool")

    assert result.returncode == EXIT_FAILURE, result.stderr
    assert HELPER in result.stderr
    assert good in result.stderr and bad in result.stderr
    assert "[hash-mismatch]" in result.stderr
    assert not world.blob(good).exists() and not world.blob(bad).exists()
    assert list((world.cache / "tmp").iterdir()) == []
    assert world.verify_clean() == 1  # internal-tool's wheel, which was fine
    # Once the index serves the right bytes again, the same prefetch goes through.
    world.internal.corrupt(HELPER, False)
    world.ok("prefetch", "internal-tool")
    assert file_sha256(world.blob(good)) == good


# -- scenario 6: kill -9 of the daemon during a prefetch ------------------------------------------


class ThrottledProxy:
    """A TCP relay on 127.0.0.1 to *port* whose answers trickle at *rate* bytes/s per connection.

    The test index writes a whole file at once, which loopback delivers in a millisecond; behind
    this relay a download lasts long enough to kill the daemon in the middle of it. Requests
    pass unchanged (the index's relative links keep pointing at the relay). ``rate = None``
    lifts the limit.
    """

    def __init__(self, port: int, rate: float | None) -> None:
        self.target = port
        self.rate = rate
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/simple/"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
                upstream = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                return
            for src, dst, slow in ((client, upstream, False), (upstream, client, True)):
                threading.Thread(target=self._pump, args=(src, dst, slow), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, slow: bool) -> None:
        try:
            while data := src.recv(16384):
                dst.sendall(data)
                rate = self.rate
                if slow and rate:
                    time.sleep(len(data) / rate)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def close(self) -> None:
        self.listener.close()


def _wheels(world: World, prefix: str, count: int, size: int) -> dict[str, str]:
    """*count* wheels of about *size* bytes (incompressible) on `internal`: {project: sha256}."""
    out = {}
    for i in range(count):
        name = f"{prefix}-{i}"
        module = name.replace("-", "_")
        payload = random.Random(name).randbytes(size)
        wheel = build_wheel(
            world.root / "dist" / prefix,
            name,
            "1.0",
            files={f"{module}/__init__.py": "", f"{module}/payload.bin": payload},
        )
        world.internal.add(wheel)
        out[name] = file_sha256(wheel)
    return out


def _blobs_are_whole(cache: Path) -> set[str]:
    """Names of the blobs under ``blobs/``, each checked to hash to its name."""
    blobs = [p for p in (cache / "blobs").rglob("*") if p.is_file()]
    for path in blobs:
        assert file_sha256(path) == path.name, f"partial or corrupt blob visible: {path}"
    return {path.name for path in blobs}


def _wait_for_partial_download(tmp: Path, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(FileNotFoundError):
            if any(entry.stat().st_size > 0 for entry in tmp.iterdir()):
                return
        time.sleep(0.005)
    raise AssertionError("no download reached the store's tmp/ in time")


def test_kill_9_during_prefetch_leaves_no_partial_blob_and_a_rerun_completes(
    world: World,
) -> None:
    wheels = _wheels(world, "small", 3, 1000) | _wheels(world, "big", 3, 5 << 19)
    proxy = ThrottledProxy(world.internal.port, rate=2 << 20)
    try:
        world.ok("index", "remove", "internal")
        world.ok("index", "add", "internal", proxy.url, "--before", "public")
        pid = world.env.daemon_pid()
        prefetch = subprocess.Popen(
            [SATCHEL, "prefetch", *wheels],
            env=world.env.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait_for_partial_download(world.cache / "tmp")
            os.kill(pid, signal.SIGKILL)
            assert prefetch.wait(15) != 0
        finally:
            if prefetch.poll() is None:
                prefetch.kill()
                prefetch.wait()
        # The kill landed mid-download: bytes in tmp/, and only whole files under blobs/.
        assert any(entry.stat().st_size > 0 for entry in (world.cache / "tmp").iterdir())
        stored = _blobs_are_whole(world.cache)
        assert stored < set(wheels.values())

        proxy.rate = None
        summary = json.loads(world.ok("prefetch", *wheels, "--json").stdout)
    finally:
        proxy.close()

    assert summary["files"] == len(wheels)
    assert summary["downloaded"] == len(wheels) - len(stored)
    assert _blobs_are_whole(world.cache) == set(wheels.values())
    assert list((world.cache / "tmp").iterdir()) == []
    assert world.verify_clean() == len(wheels)


# -- scenario 7: requirements files, pyproject.toml, pylock.toml ----------------------------------


def test_requirements_file_with_nesting_and_hashes(world: World) -> None:
    nested = world.root / "reqs" / "nested"
    nested.mkdir(parents=True)
    (nested / "base.txt").write_text(
        f"helper==1.2 \\\n    --hash=sha256:{world.internal.sha256(HELPER)}\n"
    )
    top = world.root / "reqs" / "requirements.txt"
    top.write_text(
        "-r nested/base.txt\n"
        f"internal-tool==1.0 --hash=sha256:{world.internal.sha256(INTERNAL_TOOL)}\n"
    )

    pins = world.pins("-r", str(top))

    assert {name: pin["version"] for name, pin in pins.items()} == {
        "internal-tool": "1.0",
        "helper": "1.2",
    }


def test_requirements_file_with_a_wrong_hash_is_refused(world: World) -> None:
    top = world.root / "requirements.txt"
    top.write_text(f"helper==1.2 --hash=sha256:{'0' * 64}\n")

    result = world.satchel("resolve", "-r", str(top))

    assert result.returncode == EXIT_RESOLUTION, result.stderr
    assert "helper==1.2" in result.stderr


def test_pyproject_optional_dependencies_and_groups(world: World) -> None:
    dist = world.root / "dist" / "extra"
    world.internal.add(build_wheel(dist, "extra-thing", "1.0"))
    world.internal.add(build_wheel(dist, "dev-thing", "1.0"))
    project = world.root / "app"
    project.mkdir()
    (project / "pyproject.toml").write_text(
        '[project]\nname = "app"\nversion = "0"\ndependencies = ["internal-tool"]\n'
        '[project.optional-dependencies]\nfancy = ["extra-thing"]\n'
        '[dependency-groups]\ndev = ["dev-thing"]\n'
    )
    pyproject = str(project / "pyproject.toml")

    plain = world.pins("-r", pyproject)
    full = world.pins("-r", pyproject, "--extra", "fancy", "--group", "dev")

    assert set(plain) == {"internal-tool", "helper"}
    assert set(full) == {"internal-tool", "helper", "extra-thing", "dev-thing"}


def test_pylock_records_the_index_and_prefetch_fetches_exactly_its_files(world: World) -> None:
    lock = world.root / "pylock.toml"
    result = world.ok("resolve", "internal-tool", "--format", "pylock", "-o", str(lock))
    assert "pylock.toml" in result.stderr

    data = tomllib.loads(lock.read_text())
    packages = {package["name"]: package for package in data["packages"]}
    assert set(packages) == {"internal-tool", "helper"}
    wanted = set()
    for package in packages.values():
        assert package["index"].rstrip("/") == world.internal.url.rstrip("/")
        for wheel in package["wheels"]:
            wanted.add(wheel["name"])
            assert wheel["hashes"]["sha256"] == world.internal.sha256(wheel["name"])
    assert wanted == {INTERNAL_TOOL, HELPER}
    world.internal.reset_log()
    world.public.reset_log()

    summary = json.loads(world.ok("prefetch", "-r", str(lock), "--json").stdout)

    fetched = {
        path.rsplit("/", 1)[1]
        for path in world.internal.requests
        if path.startswith("/files/") and not path.endswith(".metadata")
    }
    assert fetched == wanted
    assert world.public.requests == []
    assert summary["files"] == summary["downloaded"] == len(wanted)
    for name in wanted:
        assert world.blob(world.internal.sha256(name)).exists()


# -- scenario 8: resolving for another machine ----------------------------------------------------


@pytest.mark.parametrize(
    ("platform", "expected"),
    [
        ("macosx_11_0_arm64", "plat_thing-1.0-cp311-cp311-macosx_11_0_arm64.whl"),
        ("win_amd64", "plat_thing-1.0-py3-none-any.whl"),
    ],
)
def test_platform_and_python_version_pick_that_machine_s_wheel(
    world: World, platform: str, expected: str
) -> None:
    dist = world.root / "dist" / "plat"
    for tag in ("cp311-cp311-macosx_11_0_arm64", "cp311-cp311-win32", "py3-none-any"):
        world.internal.add(build_wheel(dist, "plat-thing", "1.0", tag=tag))

    pins = world.pins("--platform", platform, "--python-version", "3.11", "plat-thing")

    assert pins["plat-thing"]["filename"] == expected
    assert pins["plat-thing"]["sha256"] == world.internal.sha256(expected)


# -- scenario 9: the daemon answers while a large resolve runs ------------------------------------


def _tree(world: World, mids: int, leaves: int) -> None:
    dist = world.root / "dist" / "tree"
    mid_names = [f"mid-{m}" for m in range(mids)]
    world.internal.add(build_wheel(dist, "tree-root", "1.0", requires=mid_names))
    for m, mid in enumerate(mid_names):
        leaf_names = [f"leaf-{m}-{n}" for n in range(leaves)]
        world.internal.add(build_wheel(dist, mid, "1.0", requires=leaf_names))
        for leaf in leaf_names:
            # Two versions each, so the resolver has choices to make.
            world.internal.add(build_wheel(dist, leaf, "1.0"))
            world.internal.add(build_wheel(dist, leaf, "1.1"))


def test_ping_stays_fast_while_a_large_resolve_runs(world: World) -> None:
    _tree(world, 10, 9)  # 1 + 10 + 90 = 101 packages
    world.internal.delay = 0.005  # a resolve long enough to ping through, on loopback
    world.ok("ping")
    rtts: list[float] = []
    done = threading.Event()

    def ping_loop() -> None:
        with Client(world.env.socket.as_posix()) as client:
            assert client.hello()["type"] == "welcome"
            while not done.is_set():
                started = time.perf_counter()
                reply = client.wait_terminal(client.request("ping"), timeout=5)
                rtts.append(time.perf_counter() - started)
                assert reply["type"] == "result"
                time.sleep(0.01)

    pinger = threading.Thread(target=ping_loop)
    pinger.start()
    try:
        started = time.perf_counter()
        result = world.ok("resolve", "--format", "json", "tree-root", timeout=60)
        elapsed = time.perf_counter() - started
    finally:
        done.set()
        pinger.join(10)

    assert len(json.loads(result.stdout)["pins"]) == 101
    assert len(rtts) >= 10, f"the resolve ({elapsed:.2f} s) was too quick to ping through"
    # A loop blocked by the resolve would stall every ping for as long as it is blocked. One
    # late answer is tolerated: on a loaded 2-core machine the scheduler alone can delay the
    # daemon process that long.
    slow = [round(rtt * 1000, 1) for rtt in rtts if rtt >= 0.1]
    assert len(slow) <= 1 and max(rtts) < 0.5, (
        f"pings over 100 ms during the resolve: {slow} (of {len(rtts)})"
    )


def test_cold_resolve_fetches_metadata_ahead_of_the_resolver(world: World) -> None:
    """24 dependencies on an index answering in 100 ms: one at a time would take 2.4 s."""
    dist = world.root / "dist" / "fan"
    leaves = [f"fan-leaf-{n}" for n in range(24)]
    world.internal.add(build_wheel(dist, "fan-root", "1.0", requires=leaves))
    for leaf in leaves:
        world.internal.add(build_wheel(dist, leaf, "1.0"))
    world.ok("ping")
    world.internal.delay = 0.1

    started = time.perf_counter()
    pins = world.pins("fan-root")
    elapsed = time.perf_counter() - started

    assert len(pins) == 25
    metadata = [p for p in world.internal.requests if p.endswith(".metadata")]
    assert len(metadata) == 25
    assert elapsed < 2.0, f"cold resolve took {elapsed:.2f} s: metadata fetched one at a time?"
