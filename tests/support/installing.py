"""The installer's entry points with the journal directory a test keeps beside the venv.

`satchel.daemon.installer` keeps its journals in the daemon's private directory (the cache's
``installing/``); an in-process test has no daemon, so its journals live in ``journals/`` next
to the environment's prefix, outside it, as the daemon's do.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from satchel.daemon import installer
from satchel.daemon.installer import InstallItem, InstallReport, Scheme

__all__ = ["install", "journals_of", "recover", "uninstall"]


def journals_of(scheme: Scheme) -> Path:
    return scheme.data.parent / "journals"


def install(scheme: Scheme, wheels: Sequence[InstallItem], **options: Any) -> InstallReport:
    return installer.install(scheme, wheels, journal_dir=journals_of(scheme), **options)


def uninstall(scheme: Scheme, name: str) -> InstallReport:
    return installer.uninstall(scheme, name, journal_dir=journals_of(scheme))


def recover(scheme: Scheme) -> bool:
    return installer.recover(scheme, journals_of(scheme))
