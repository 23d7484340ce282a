"""Shared rig for the reliability suite: one private daemon, one loopback index, and the checks
every scenario ends with (the store is whole, nothing leaked outside where it may write).

Why a module of its own instead of reusing the e2e ``World``: these scenarios kill the daemon,
fill its disk, point it at hostile servers and drop privileges, so they need the raw pieces
(paths, pids, the index's knobs) rather than a scenario-level fixture, and they must not depend
on another engineer's test module.

Scale: every scenario runs a small default count; ``SATCHEL_RELIABILITY_FULL=1`` switches to the
counts the issue asks for (`scaled`). ``docs/reliability.md`` records both.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.client.clientenv import ClientEnv
from tests.support.daemon import kill_and_wait
from tests.support.index_server import IndexServer

__all__ = [
    "FULL",
    "Rig",
    "env_state",
    "kill_and_wait",
    "rig_for",
    "scaled",
    "snapshot_tree",
    "venv_state",
]

#: The full-size counts of issue 7 (100 kill points, 100,000 fuzz inputs, ...) instead of the
#: default ones sized for a 2-core CI machine.
FULL = os.environ.get("SATCHEL_RELIABILITY_FULL") == "1"


def memory_mib(pid: int, field: str = "VmHWM") -> float:
    """A memory figure of process *pid* from ``/proc/<pid>/status``, in MiB: ``VmHWM`` (its
    peak resident set) by default, or ``VmRSS`` (resident now)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no {field} for pid {pid}")


def scaled(default: int, full: int) -> int:
    """*full* when the full-size suite was asked for, else *default*."""
    return full if FULL else default


@dataclass
class Rig:
    """A private daemon environment (`ClientEnv`) configured with exactly one loopback index."""

    root: Path
    env: ClientEnv
    index: IndexServer

    @property
    def cache(self) -> Path:
        return Path(self.env.env["XDG_CACHE_HOME"]) / "satchel"

    @property
    def config_dir(self) -> Path:
        return Path(self.env.env["XDG_CONFIG_HOME"]) / "satchel"

    @property
    def state_dir(self) -> Path:
        return Path(self.env.env["XDG_STATE_HOME"]) / "satchel"

    def configure(self, url: str, *, extra: str = "") -> None:
        """Write ``config.toml`` naming only *url* (the local index on an ephemeral port, so
        parallel daemons never fight over the default one)."""
        self.config_dir.mkdir(parents=True, exist_ok=True)
        text = f'[[index]]\nname = "test"\nurl = "{url}"\n\n[settings]\nlocal-index-port = 0\n'
        (self.config_dir / "config.toml").write_text(text + extra)

    def satchel(
        self, *args: str, timeout: float = 60, extra_env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return self.env.satchel(*args, timeout=timeout, extra_env=extra_env)

    def ok(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        result = self.satchel(*args, timeout=timeout)
        assert result.returncode == 0, f"satchel {' '.join(args)}:\n{result.stderr}"
        return result

    def json(self, *args: str, timeout: float = 60) -> Any:
        return json.loads(self.ok(*args, "--json", timeout=timeout).stdout)

    def daemon_pid(self) -> int:
        """The daemon's pid, starting one (client autostart) when none runs."""
        self.ok("ping")
        return self.env.daemon_pid()

    def assert_store_consistent(self) -> int:
        """`satchel cache verify` is clean, every blob is named by its own sha256, no temp
        debris lies in blobs/, and every unpacked tree is complete (its manifest lists only
        files that exist). Returns the number of blobs."""
        report = json.loads(self.ok("cache", "verify", "--json").stdout)
        assert report["corrupt"] == [], report
        blobs = self.cache / "blobs"
        count = 0
        for path in blobs.rglob("*") if blobs.exists() else ():
            if path.is_dir():
                continue
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            assert digest == path.name, f"partial, temporary or corrupt file in blobs/: {path}"
            count += 1
        unpacked = self.cache / "unpacked"
        for entry in unpacked.iterdir() if unpacked.exists() else ():
            manifest = entry / "manifest.json"
            if not manifest.exists():
                # Unpacking happens elsewhere and is renamed in whole: no manifest, no tree.
                assert not (entry / "tree").exists(), f"unpacked tree without manifest: {entry}"
                continue
            for relative, size in _manifest_files(json.loads(manifest.read_text())):
                path = entry / "tree" / relative
                assert path.exists(), f"incomplete unpacked tree {entry}: {relative} missing"
                if size is not None and not path.is_symlink():
                    assert path.stat().st_size == size, f"partial file in unpacked tree: {path}"
        return count

    def cleanup(self) -> None:
        self.env.cleanup()
        self.index.stop()


def _manifest_files(manifest: Any) -> list[tuple[str, int | None]]:
    """(tree path, size) of each file a `satchel.daemon.installing.wheel` manifest lists (rows are
    ``[tree path, scheme, destination, hash, size, executable]``)."""
    files = manifest.get("files") if isinstance(manifest, dict) else None
    out: list[tuple[str, int | None]] = []
    for item in files if isinstance(files, list) else ():
        if isinstance(item, list) and item and isinstance(item[0], str):
            size = item[4] if len(item) > 4 and isinstance(item[4], int) else None
            out.append((item[0], size))
    return out


def rig_for(root: Path, **index_options: Any) -> Iterator[Rig]:
    """Fixture body: an index on 127.0.0.1 and a daemon environment configured with it."""
    index = IndexServer(root / "index", **index_options).start()
    rig = Rig(root, ClientEnv(root), index)
    rig.configure(index.url_with_auth())
    try:
        yield rig
    finally:
        rig.cleanup()


def snapshot_tree(root: Path) -> dict[str, tuple[str, int]]:
    """Every entry under *root* (symlinks not followed): relative path -> (kind, size)."""
    out: dict[str, tuple[str, int]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            st = path.lstat()
            kind = "link" if path.is_symlink() else "dir" if path.is_dir() else "file"
            out[str(path.relative_to(root))] = (kind, 0 if kind == "dir" else st.st_size)
    return out


def venv_state(venv: Path) -> tuple[dict[str, str], frozenset[str]]:
    """What a user sees of an environment: ``pip list`` (name -> version) and every file path
    under site-packages and bin (bytecode caches excluded: pip may write them)."""
    listed = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(venv / "bin" / "python"),
            "list",
            "--format",
            "json",
            "--disable-pip-version-check",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert listed.returncode == 0, listed.stderr
    packages = {p["name"]: p["version"] for p in json.loads(listed.stdout)}
    files = frozenset(
        path
        for path in snapshot_tree(venv)
        if (path.startswith("lib/") or path.startswith("bin/")) and "__pycache__" not in path
    )
    return packages, files


def _distributions(venv: Path) -> dict[str, str]:
    """``pip list`` of *venv*, read in-process (the same dist-info scan pip does, 100x cheaper);
    checked against the real ``pip list`` at the start and the end of the test."""
    site = next((venv / "lib").glob("python*/site-packages"))
    return {
        d.metadata["Name"]: d.version for d in importlib.metadata.distributions(path=[str(site)])
    }


def env_state(venv: Path) -> tuple[dict[str, str], frozenset[str]]:
    """`venv_state` without spawning pip: the in-process dist-info scan and the file listing
    (cheap enough to take after every one of dozens of kills)."""
    files = frozenset(
        str(p.relative_to(venv))
        for p in venv.rglob("*")
        if (p.is_file() or p.is_symlink())
        and p.relative_to(venv).parts[0] in ("lib", "bin")
        and "__pycache__" not in p.parts
    )
    return _distributions(venv), files
