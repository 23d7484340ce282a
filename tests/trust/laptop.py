"""A user's machine for the issue-12 index-set tests: real daemons, two loopback indexes.

A `Laptop` starts with NO Satchel configuration (no config.toml): what the daemon does with the
environment it is autostarted from is the subject. It has:

* ``private``: an `IndexServer` on 127.0.0.1 serving the private ``internal-tool`` 1.0.0;
* ``public``: an `IndexServer` serving an impostor ``internal-tool`` 9.9.0, standing for pip's
  default index: tests point pip at it with ``PIP_INDEX_URL`` (or a pip.conf), never at the real
  registry;
* a pip.conf of its own (``PIP_CONFIG_FILE``, empty unless a test writes it) and ``UV_NO_CONFIG``,
  so that nothing of this machine's pip or uv set-up leaks in.

`satchel(..., env=...)` runs the real client with extra variables; a command that autostarts
the daemon gives it exactly that environment, as a shell does.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.client.clientenv import ClientEnv, wait_gone
from tests.support.index_server import IndexServer
from tests.support.wheels import build_wheel, file_sha256

__all__ = ["Laptop"]


class Laptop:
    def __init__(self, root: Path, *, private_auth: tuple[str, str] | None = None) -> None:
        self.root = root
        dist = root / "dist"
        self.private = IndexServer(root / "private", auth=private_auth).start()
        self.public = IndexServer(root / "public").start()
        private = build_wheel(dist / "private", "internal-tool", "1.0.0")
        impostor = build_wheel(dist / "public", "internal-tool", "9.9.0")
        self.private_wheel = self.private.add(private)
        self.impostor_wheel = self.public.add(impostor)
        self.client = ClientEnv(root / "client")
        self.pip_conf = root / "pip.conf"
        self.pip_conf.write_text("")
        self.client.env.update(PIP_CONFIG_FILE=str(self.pip_conf), UV_NO_CONFIG="1")
        self.config = Path(self.client.env["XDG_CONFIG_HOME"]) / "satchel" / "config.toml"

    def close(self) -> None:
        try:
            self.client.cleanup()
        finally:
            self.private.stop()
            self.public.stop()

    def satchel(
        self, *args: str, env: dict[str, str] | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        return self.client.satchel(*args, timeout=timeout, extra_env=env)

    def ok(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        result = self.satchel(*args, env=env)
        assert result.returncode == 0, f"satchel {' '.join(args)}:\n{result.stderr}"
        return result

    def stop(self) -> None:
        """Stop the daemon (as its idle exit, a reboot or a logout would) and wait until gone."""
        pid = self.client.daemon_pid()
        self.ok("--no-autostart", "stop")
        assert wait_gone(pid, 30), f"satcheld {pid} did not exit"

    def wait_status(
        self, text: str, env: dict[str, str] | None = None, *, gone: bool = False
    ) -> str:
        """`satchel status` once it shows *text* (or, with *gone*, no longer shows it): the
        config watcher reacts asynchronously, so this polls, with a deadline far beyond any
        load, rather than sleeping a guessed time."""
        deadline = time.monotonic() + 60
        while True:
            out = self.ok("status", env=env).stdout
            if (text in out) != gone or time.monotonic() > deadline:
                assert (text in out) != gone, out
                return out
            time.sleep(0.1)

    def listing(self, env: dict[str, str] | None = None) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.ok("index", "list", "--json", env=env).stdout)
        return value

    def resolved(self, project: str, env: dict[str, str] | None = None) -> str:
        """The version `satchel resolve` picks for *project* (asserting it succeeded)."""
        out = self.ok("resolve", "--format", "json", project, env=env).stdout
        pins = {pin["name"]: pin["version"] for pin in json.loads(out)["pins"]}
        return str(pins[project])

    def impostor_asked(self) -> bool:
        """Whether the public index was ever asked for internal-tool (its name leaked)."""
        return any("internal-tool" in path for path in self.public.requests)

    def shell(self, *, extra: bool = True) -> dict[str, str]:
        """A shell whose pip uses the public index as default, plus the private extra index."""
        env = {"PIP_INDEX_URL": self.public.url}
        if extra:
            env["PIP_EXTRA_INDEX_URL"] = self.private.url
        return env

    def stored(self, wheel: Path) -> bool:
        """Whether *wheel*'s bytes are in the daemon's store (blobs are named by sha256)."""
        cache = Path(self.client.env["XDG_CACHE_HOME"]) / "satchel" / "blobs"
        return any(True for _ in cache.rglob(file_sha256(wheel)))

    def private_name(self) -> str:
        """The stable name adoption gives the private index (derived from host and port)."""
        return f"127-0-0-1-{self.private.port}"
