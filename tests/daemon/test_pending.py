"""`pending`: an install killed mid-way is repaired when the daemon starts again."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

from satchel.daemon.installer import InstallItem, Scheme, install, installed_distributions
from satchel.daemon.pending import marked, recover_pending
from satchel.daemon.venv import create_venv
from satchel.daemon.wheel import UnpackedWheel, unpack
from tests.support.wheels import build_wheel

#: A daemon's install, killed after linking half of the new files (as kill -9 would).
_KILLED_INSTALL = """
import os, sys
from pathlib import Path
from satchel.daemon import linking
from satchel.daemon.installer import InstallItem, Scheme, install
from satchel.daemon.pending import marked
from satchel.daemon.wheel import load_unpacked

original = linking.Linker.place_all
def place_half_then_die(self, pairs):
    pairs = list(pairs)
    original(self, pairs[: len(pairs) // 2])
    os._exit(9)
linking.Linker.place_all = place_half_then_die
venv, root, sha, markers = sys.argv[1:]
v = Path(venv)
site = next(v.glob("lib/python*/site-packages"))
scheme = Scheme(site, site, v / "bin", v, v / "include", v / "bin" / "python")
with marked(Path(markers), scheme):
    install(scheme, [InstallItem(load_unpacked(Path(root), sha))])
"""


def _unpack(tmp_path: Path, version: str, files: dict[str, str]) -> UnpackedWheel:
    wheel = build_wheel(tmp_path / "wheels", "pkg", version, files=files)
    return unpack(wheel, hashlib.sha256(wheel.read_bytes()).hexdigest(), tmp_path / "unpacked")


def _snapshot(root: Path) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            rel = Path(dirpath, name).relative_to(root).as_posix()
            if rel != ".satchel.lock":
                found[rel] = Path(dirpath, name).read_bytes()
    return found


def test_an_install_killed_mid_way_is_rolled_back_at_start_and_its_marker_removed(
    tmp_path: Path,
) -> None:
    scheme: Scheme = create_venv(tmp_path / "venv", sys.executable)
    install(scheme, [InstallItem(_unpack(tmp_path, "1.0", {"pkg/a.py": "1"}))])
    before = _snapshot(scheme.data)
    new = _unpack(tmp_path, "2.0", {f"pkg/m{i:02}.py": str(i) for i in range(20)})
    markers = tmp_path / "installing"
    child = subprocess.run(
        [
            sys.executable,
            "-c",
            _KILLED_INSTALL,
            str(scheme.data),
            str(tmp_path / "unpacked"),
            new.sha256,
            str(markers),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert child.returncode == 9, child.stderr
    assert _snapshot(scheme.data) != before  # half-applied, as a user would find it
    assert len(list(markers.iterdir())) == 1

    assert recover_pending(markers) == [str(scheme.data)]

    assert _snapshot(scheme.data) == before
    assert list(markers.iterdir()) == []
    assert installed_distributions(scheme)["pkg"][0] == "1.0"


def test_a_finished_install_leaves_no_marker(tmp_path: Path) -> None:
    scheme: Scheme = create_venv(tmp_path / "venv", sys.executable)
    markers = tmp_path / "installing"
    with marked(markers, scheme):
        install(scheme, [InstallItem(_unpack(tmp_path, "1.0", {"pkg/a.py": "1"}))])
    assert list(markers.iterdir()) == []
    assert recover_pending(markers) == []


def test_an_unreadable_marker_is_dropped(tmp_path: Path) -> None:
    markers = tmp_path / "installing"
    markers.mkdir()
    (markers / "garbage.json").write_text("{not json")
    assert recover_pending(markers) == []
    assert list(markers.iterdir()) == []
