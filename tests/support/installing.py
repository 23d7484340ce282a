"""The installer's entry points with the journal directory a test keeps beside the venv.

`satchel.daemon.installing.installer` keeps its journals in the daemon's private directory (the
cache's
``installing/``); an in-process test has no daemon, so its journals live in ``journals/`` next
to the environment's prefix, outside it, as the daemon's do.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from satchel.daemon.installing import installer
from satchel.daemon.installing.installer import InstallItem, InstallReport, Scheme

__all__ = ["install", "journals_of", "kill_mid_install", "recover", "uninstall"]

#: A daemon's install in a child process, killed (``os._exit(9)``) after linking half of the new
#: files, as kill -9 would leave it (every file is placed by ``os.link``: the test uses hard links).
#: Arguments: venv, unpacked root, sha256, journal directory.
_KILLED_INSTALL = """
import os, sys
from pathlib import Path
from satchel.daemon.installing.installer import InstallItem, Scheme, install
from satchel.daemon.installing.wheel import load_unpacked

venv, root, sha, journals = sys.argv[1:]
unpacked = load_unpacked(Path(root), sha)
half = len(unpacked.manifest.files) // 2
real_link = os.link
linked = []
def link_half_then_die(*args, **kwargs):
    if len(linked) >= half:
        os._exit(9)
    real_link(*args, **kwargs)
    linked.append(args)
os.link = link_half_then_die
v = Path(venv)
site = next(v.glob("lib/python*/site-packages"))
scheme = Scheme(site, site, v / "bin", v, v / "include", v / "bin" / "python")
install(
    scheme, [InstallItem(unpacked)], journal_dir=Path(journals), link_mode="hardlink"
)
os._exit(0)  # fewer files than expected were linked: the caller's assertion says so
"""


def kill_mid_install(scheme: Scheme, unpacked_root: Path, sha256: str) -> None:
    """Install the unpacked wheel *sha256* into *scheme* in a child killed half-way through."""
    child = subprocess.run(
        [
            sys.executable,
            "-c",
            _KILLED_INSTALL,
            str(scheme.data),
            str(unpacked_root),
            sha256,
            str(journals_of(scheme)),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert child.returncode == 9, child.stderr


def journals_of(scheme: Scheme) -> Path:
    return scheme.data.parent / "journals"


def install(scheme: Scheme, wheels: Sequence[InstallItem], **options: Any) -> InstallReport:
    return installer.install(scheme, wheels, journal_dir=journals_of(scheme), **options)


def uninstall(scheme: Scheme, name: str) -> InstallReport:
    return installer.uninstall(scheme, name, journal_dir=journals_of(scheme))


def recover(scheme: Scheme) -> bool:
    return installer.recover(scheme, journals_of(scheme))


def write_through_link(tmp_path: Path, target: Path, data: bytes) -> Path:
    """Write *data* in place through a second hard link, as a venv's file would be edited;
    the link."""
    link = tmp_path / "venv-file.py"
    os.link(target, link)
    link.chmod(0o644)
    with link.open("r+b") as handle:
        handle.write(data)
        handle.truncate()
    return link
