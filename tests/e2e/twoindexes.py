"""Two loopback indexes and a private daemon, for the issue-3 end-to-end tests.

A `World` is what a user has: the real `satchel` script autostarting its own private `satcheld`
(`tests.client.clientenv.ClientEnv`), and two real HTTP indexes on 127.0.0.1
(`tests.support.index_server.IndexServer`) serving real wheels:

* ``internal`` (configured first): the private ``internal-tool`` 1.0 (console script ``render``)
  depending on ``helper>=1``, and ``helper`` 1.2;
* ``public`` (configured after it, unless ``public=False``): an impostor ``internal-tool`` 9.0
  depending on ``evil``, and ``evil`` 1.0. Under the default strategy nothing from it may ever
  be picked for ``internal-tool``.

Each test opens its own world (`open_world`): the scenarios stop indexes, kill the daemon and
remove indexes from the configuration, and the daemon's per-index circuit breaker remembers an
index it saw die for a cool-down much longer than a test, so sharing one daemon between tests
would make them depend on their order. A world costs well under a second.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.client.clientenv import ClientEnv
from tests.support.index_server import IndexServer
from tests.support.wheels import build_wheel, file_sha256

__all__ = [
    "EXIT_FAILURE",
    "EXIT_OFFLINE",
    "EXIT_RESOLUTION",
    "HELPER",
    "INTERNAL_TOOL",
    "World",
    "blobs_are_whole",
    "build_world",
    "open_world",
]

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
        # The first daemon start adopted pip's built-in default into config.toml (marked
        # default, so it ranks after the new one). The tests stay on loopback: remove it.
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


def build_world(root: Path) -> World:
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


@contextlib.contextmanager
def open_world(root: Path, *, public: bool = True) -> Iterator[World]:
    """Both servers running; `internal` (then `public`) configured with `satchel index add`."""
    w = build_world(root)
    try:
        w.add_index("internal", w.internal.url)
        if public:
            w.add_index("public", w.public.url)
        yield w
    finally:
        w.env.cleanup()
        w.internal.stop()
        w.public.stop()


def blobs_are_whole(cache: Path) -> set[str]:
    """Names of the blobs under ``blobs/``, each checked to hash to its name."""
    blobs = [p for p in (cache / "blobs").rglob("*") if p.is_file()]
    for path in blobs:
        assert file_sha256(path) == path.name, f"partial or corrupt blob visible: {path}"
    return {path.name for path in blobs}
