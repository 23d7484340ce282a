"""Issue 11.2: the cache, config and state are readable by their user alone.

A real daemon (autostarted by the real client) fetches a wheel from a private loopback index
(credentials in the URL) and installs it into a venv. Every directory on the way to the cache,
config and state is opened up (0755), as a traversable home is, so nothing but Satchel's own
modes stands between the files and another local user. The other user (``satchel-intruder``, a
real second uid) then tries to read each of them. A second scenario plants the layout an earlier
version left (0755 directories, 0644/0444 files, the database and its WAL world-readable) and
checks that the next daemon start tightens all of it and says so in its log.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.reliability.harness import Rig, rig_for
from tests.security.otheruser import Intruder, as_intruder, intruder
from tests.support.wheels import build_wheel


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    yield from rig_for(tmp_path, auth=("owner", "private-index-secret"))


def _open_up(rig: Rig) -> None:
    """Every directory from / to the Satchel roots traversable by everyone, like a 0755 home."""
    path = rig.root
    while path != path.parent:
        mode = stat.S_IMODE(path.stat().st_mode)
        path.chmod(mode | 0o755 if not mode & 0o1000 else mode)
        path = path.parent
    for sub in ("cache", "config", "state", "home"):
        (rig.root / sub).chmod(0o755)


def _fill(rig: Rig) -> Path:
    rig.index.add(
        build_wheel(
            rig.root / "dist",
            "secretpkg",
            "1.0",
            files={"secretpkg/__init__.py": "VALUE = 'the private code'\n"},
            console_scripts={"secret-tool": "secretpkg:main"},
        )
    )
    venv = rig.root / "venv"
    rig.ok("install", "secretpkg==1.0", "--venv", str(venv), "--python", sys.executable)
    rig.ok("index", "list")
    return venv


def _loose_entries(*roots: Path) -> list[str]:
    """Every entry under *roots* (roots included, symlinks skipped) with group or other bits."""
    loose = []
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            for path in [Path(dirpath)] + [Path(dirpath, n) for n in dirnames + filenames]:
                try:
                    info = path.lstat()
                except FileNotFoundError:
                    continue  # SQLite's -shm goes when its last connection closes
                if not stat.S_ISLNK(info.st_mode) and info.st_mode & 0o077:
                    loose.append(f"{path} {stat.S_IMODE(info.st_mode):04o}")
    return sorted(set(loose))


def _private_files(rig: Rig) -> list[Path]:
    """One of each kind: a blob, an unpacked member, the database (and its WAL and SHM while
    they exist), the config, the local index's token."""
    blobs = [p for p in (rig.cache / "blobs").rglob("*") if p.is_file()]
    members = list((rig.cache / "unpacked").rglob("__init__.py"))
    side_files = [rig.cache / f"metadata.sqlite-{suffix}" for suffix in ("wal", "shm")]
    picked = [
        blobs[0],
        members[0],
        rig.cache / "metadata.sqlite",
        rig.config_dir / "config.toml",
        rig.state_dir / "local-index-token",
    ]
    assert blobs and members
    return picked + [path for path in side_files if path.exists()]


def _intruder_reads(user: Intruder, paths: list[Path]) -> dict[str, str]:
    """As the other user: try to read each path, and list each one's directory."""

    def work() -> str:
        lines = []
        for path in paths:
            for what in ("read", "list"):
                try:
                    if what == "read":
                        path.read_bytes()
                    else:
                        os.listdir(path.parent)
                    lines.append(f"{what} {path}: ALLOWED")
                except PermissionError:
                    lines.append(f"{what} {path}: denied")
        return "\n".join(lines)

    report = as_intruder(user, work)
    return dict(line.rsplit(": ", 1) for line in report.splitlines())  # type: ignore[misc]


def test_cache_config_and_state_are_created_private(rig: Rig) -> None:
    """issue 11.2: what the daemon creates has no group or other permission bits; another uid
    can read none of the private files; the venv still imports and runs the package."""
    user = intruder()
    _open_up(rig)
    venv = _fill(rig)
    roots = (rig.cache, rig.config_dir, rig.state_dir)
    assert _loose_entries(*roots) == []
    paths = _private_files(rig)
    outcome = _intruder_reads(user, paths)
    assert len(outcome) == 2 * len(paths)
    assert [k for k, v in outcome.items() if v != "denied"] == []
    # Files hard-linked from the owner-only cache still work for the owner, in the venv.
    python = str(venv / "bin" / "python")
    imported = subprocess.run(
        [python, "-c", "import secretpkg; print(secretpkg.VALUE)"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert imported.stdout.strip() == "the private code", imported.stderr
    script = venv / "bin" / "secret-tool"
    assert script.stat().st_mode & stat.S_IXUSR


def test_trees_left_readable_by_an_earlier_version_are_tightened_at_start(rig: Rig) -> None:
    """issue 11.2: a cache written world-readable (0755/0644/0444, WAL included) is made
    private when the daemon starts, and the log says what was changed."""
    user = intruder()
    _open_up(rig)
    _fill(rig)
    rig.ok("stop")
    # The layout of earlier versions: world-readable everything, no marker of a finished walk.
    for root in (rig.cache, rig.config_dir, rig.state_dir):
        for dirpath, _dirnames, filenames in os.walk(root):
            Path(dirpath).chmod(0o755)
            for name in filenames:
                path = Path(dirpath, name)
                if not path.is_symlink():
                    path.chmod(path.stat().st_mode | 0o044)
    (rig.state_dir / "private-v1").unlink(missing_ok=True)
    wal = rig.cache / "metadata.sqlite-wal"
    wal.touch()
    wal.chmod(0o644)
    paths = _private_files(rig)
    assert "ALLOWED" in _intruder_reads(user, paths).values()  # the planted layout is readable
    # A command that waits for the daemon's runtime: `ping` is answered while the runtime still
    # opens the database in the background (its -shm file appears and goes meanwhile).
    rig.ok("index", "list")
    assert _loose_entries(rig.cache, rig.config_dir, rig.state_dir) == []
    assert [k for k, v in _intruder_reads(user, paths).items() if v != "denied"] == []
    log = rig.env.log_file.read_text()
    assert f"made {rig.cache} private: removed group/other permissions" in log
    assert f"made {rig.config_dir} private" in log
    # A second start finds the marker and private roots: no walk, nothing to say.
    rig.ok("stop")
    rig.ok("ping")
    assert rig.env.log_file.read_text().count(f"made {rig.cache} private") == 1
