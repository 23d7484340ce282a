"""What an install may replace in an environment, and what it reports having replaced.

An install replaces freely what the distributions it upgrades or removes list in their RECORD
(``gone``). A directory it may replace only when it empties it (an upgrade's package turned
module). A file no such RECORD lists belongs to another distribution or to none: replaced, as
pip replaces it, but reported (uv warns too), since uninstalling either distribution may then
break the other. A file replaced by identical bytes is not reported: namespace packages that
ship the same empty ``__init__.py`` (``nvidia/``, ``google/``) would otherwise warn on every
install (uv's false positive, fixed in its later conflict check).
"""

# Paths are plain strings, as in the installer: the planned paths are strings.
# ruff: noqa: PTH118

from __future__ import annotations

import filecmp
import os
from collections.abc import Collection
from pathlib import Path

from satchel.daemon.installing._placement import Unit

__all__ = ["only_removed", "replaced_by_other_bytes"]


def only_removed(directory: str, gone: set[str]) -> bool:
    """Does this install empty *directory*: it holds files this install removes, and nothing
    else (an empty directory, such as a venv's ``include/``, is not the wheel's to take)?"""
    removed = False
    for root, dirs, files in os.walk(directory):
        if any(Path(root, name).is_symlink() for name in dirs):
            return False  # a link is a file to keep, though os.walk lists it as a directory
        for name in files:
            if os.path.join(root, name) not in gone:
                return False
            removed = True
    return removed


def replaced_by_other_bytes(unit: Unit, dsts: Collection[str]) -> list[str]:
    """Those of *dsts* (files that exist, that no replaced distribution lists) where *unit* puts
    bytes that differ from what is there: the cases worth reporting, in the unit's order. One
    pass over the unit's files, however many it replaces (a fork installed over the project it
    forks replaces them all)."""
    wanted = set(dsts)
    differ: list[str] = []
    for member, dst, _mode, _stamp in unit.links:
        if dst in wanted:
            wanted.discard(dst)
            try:
                same = filecmp.cmp(unit.tree + member, dst, shallow=False)
            except OSError:  # unreadable: say so rather than stay silent
                same = False
            if not same:
                differ.append(dst)
    for dst, data, _mode in unit.writes:
        if dst in wanted:
            wanted.discard(dst)
            try:
                same = Path(dst).read_bytes() == data
            except OSError:
                same = False
            if not same:
                differ.append(dst)
    # A late write (RECORD): another distribution's RECORD is worth a word.
    differ += [dst for dst in dsts if dst in wanted]
    return differ
