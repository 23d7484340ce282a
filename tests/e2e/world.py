"""Shared set-up for the install/run end-to-end tests: a private daemon and a loopback index.

A `World` is what a user has: the real `satchel` script (autostarting its own private
`satcheld`, `tests.client.clientenv.ClientEnv`), one index configured in ``config.toml`` (an
`IndexServer` on 127.0.0.1 serving real wheels and sdists built by `tests.support.wheels`), and
pip from the dev group as an independent checker of what Satchel installed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.client.clientenv import ClientEnv
from tests.support.index_server import IndexServer

__all__ = ["World", "listing", "record_problems", "site_packages"]


class World:
    """One private daemon environment with the index ``internal`` configured."""

    def __init__(self, root: Path, **index_options: Any) -> None:
        """*index_options* go to the `IndexServer` (``metadata=False``, ``ranges=...``)."""
        self.root = root
        self.dist = root / "dist"
        self.index = IndexServer(root / "index", **index_options).start()
        self.env = ClientEnv(root / "client")
        config = Path(self.env.env["XDG_CONFIG_HOME"]) / "satchel"
        config.mkdir(parents=True, exist_ok=True)
        # Written before the daemon starts, so nothing of this machine's pip/uv set-up is adopted.
        (config / "config.toml").write_text(
            f'[[index]]\nname = "internal"\nurl = "{self.index.url}"\n', "utf-8"
        )

    def close(self) -> None:
        try:
            self.env.cleanup()
        finally:
            self.index.stop()

    @property
    def cache(self) -> Path:
        return Path(self.env.env["XDG_CACHE_HOME"]) / "satchel"

    def satchel(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return self.env.satchel(*args, timeout=timeout)

    def ok(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        result = self.satchel(*args, timeout=timeout)
        assert result.returncode == 0, f"satchel {' '.join(args)}:\n{result.stderr}"
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(*args, "--json").stdout)

    def spawn(self, *args: str) -> subprocess.Popen[str]:
        """Start `satchel *args` without waiting (concurrency tests)."""
        return self.env.spawn(*args)

    def pip(self, venv: Path, *args: str) -> subprocess.CompletedProcess[str]:
        """The dev group's pip, pointed at *venv*'s interpreter, never at an index."""
        env = {**self.env.env, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INDEX": "1"}
        return subprocess.run(
            [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def pip_list(self, venv: Path) -> dict[str, str]:
        result = self.pip(venv, "list", "--format=json")
        assert result.returncode == 0, result.stderr
        return {row["name"]: row["version"] for row in json.loads(result.stdout)}


def site_packages(venv: Path) -> Path:
    found = list((venv / "lib").glob("python*/site-packages"))
    assert len(found) == 1, found
    return found[0]


def listing(root: Path) -> dict[str, tuple[int, int, str]]:
    """Every file and link under *root*: relative path -> (mode, size, sha256 or link target)."""
    out: dict[str, tuple[int, int, str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*filenames, *dirnames]:
            path = Path(dirpath) / name
            st = path.lstat()
            if path.is_symlink():
                out[str(path.relative_to(root))] = (st.st_mode, 0, os.readlink(path))
            elif path.is_file():
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                out[str(path.relative_to(root))] = (st.st_mode, st.st_size, digest)
            else:
                out[str(path.relative_to(root)) + "/"] = (st.st_mode, 0, "")
    return out


def record_problems(venv: Path, dist_info: Path) -> list[str]:
    """What is wrong with *dist_info*'s RECORD: missing files, wrong hashes or sizes."""
    problems = []
    base = site_packages(venv)
    for line in (dist_info / "RECORD").read_text("utf-8").splitlines():
        if not line.strip():
            continue
        path, digest, size = line.rsplit(",", 2)
        target = (base / path).resolve()
        if not target.is_file():
            problems.append(f"missing {path}")
            continue
        if digest:
            algorithm, _, expected = digest.partition("=")
            data = target.read_bytes()
            actual = base64.urlsafe_b64encode(hashlib.new(algorithm, data).digest())
            if actual.rstrip(b"=").decode() != expected:
                problems.append(f"hash of {path}")
            if size and int(size) != len(data):
                problems.append(f"size of {path}")
    return problems
