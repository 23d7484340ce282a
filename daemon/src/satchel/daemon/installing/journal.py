"""The install journal: Satchel's own record of an install in progress, and its replay.

An install (`satchel.daemon.installing.installer`) moves the files it replaces into a trash
directory
inside the environment (``<prefix>/.satchel-trash-<token>``: a rename must stay on one file
system) and creates new files and directories. Before it touches anything it writes the undo
information, its *journal*, here:

    <journal dir>/<digest of the prefix>-<token>.json     (journal dir: ``<cache>/installing``)

Where it lives is the security boundary. An environment's contents are written by the wheels
installed into it: a wheel's ``.data/data/`` scheme can put any file at the environment's root,
so a journal kept there could be planted, and its replay (unlink, rmtree, rename) would reach
anywhere the daemon may write. So a journal is found only in the daemon's private directory,
which no wheel writes to, and is tied to the install that wrote it: the file name carries the
digest of the prefix and the trash token, and `load` refuses a journal whose prefix, trash or
name disagree. Even then every path it names is proven to lie inside the environment, symlinks
resolved (`satchel.daemon.installing._removal.Inside`), before anything is undone: a journal is a
claim to
check, like a RECORD.

A journal file is written atomically and durably before the first change and deleted at the
commit point, so it doubles as the marker of an interrupted install: at start-up the daemon
replays every journal left by a killed predecessor
(`satchel.daemon.installing.installer.recover_all`).
"""

# ruff: noqa: PTH104, PTH108, PTH112, PTH114, PTH117, PTH118, PTH120, PTH208

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from satchel.daemon.installing._layout import SCHEME_FIELDS, Scheme, env_lock
from satchel.daemon.installing._removal import Inside
from satchel.daemon.storage.fsutil import TEMP_PREFIX, atomic_write

__all__ = [
    "TRASH_PREFIX",
    "Journal",
    "JournalError",
    "is_trash_name",
    "journal_dir",
    "journals",
    "load",
    "recover",
    "recover_all",
    "recover_locked",
    "remove_trash",
    "roll_back",
    "write",
]

log = logging.getLogger(__name__)

TRASH_PREFIX = ".satchel-trash-"
#: 12 hex digits (48 bits) from `secrets`: unique among the installs one environment ever sees.
_TRASH_NAME = re.compile(r"\.satchel-trash-([0-9a-f]{12})")
_FILE_NAME = re.compile(r"([0-9a-f]{32})-([0-9a-f]{12})\.json")
#: A journal lists every path an install creates or moves: a 112-wheel set is ~3 MB of JSON.
#: A file larger than this was not written by an install.
MAX_JOURNAL_BYTES = 256 * 1024 * 1024


class JournalError(ValueError):
    """A journal that is not one Satchel wrote for this environment: never replayed."""


def journal_dir(cache_root: Path) -> Path:
    """Where journals live: in the cache directory, private to the user, guarded by the daemon."""
    return cache_root / "installing"


def is_trash_name(name: str) -> bool:
    """Is *name* (an entry of an environment's prefix) an install's trash directory?"""
    return _TRASH_NAME.fullmatch(name) is not None


def _digest(prefix: str) -> str:
    return hashlib.sha256(os.fsencode(prefix)).hexdigest()[:32]


@dataclass(frozen=True)
class Journal:
    """One install's undo information, checked against the environment it names."""

    file: Path  # where it is stored (the daemon's directory)
    prefix: str  # the environment (normalised, absolute)
    scheme: dict[str, str]  # the environment's install scheme, to rebuild it at start-up
    trash: str
    moves: list[str]  # originals moved to <trash>/<index>
    dirs: list[str]  # top-most directories created
    created: list[str]  # files created outside created directories


def write(
    directory: Path,
    scheme: dict[str, str],
    token: str,
    moves: list[str],
    dirs: list[str],
    created: list[str],
) -> Journal:
    """Durably record an install into the environment at ``scheme["data"]`` before it starts.

    *dirs* lists every directory the install creates, parents first; only the top-most ones are
    kept (removing them removes the rest).
    """
    prefix = os.path.normpath(scheme["data"])
    all_dirs = set(dirs)
    top_dirs = [d for d in dirs if os.path.dirname(d) not in all_dirs]
    journal = Journal(
        file=directory / f"{_digest(prefix)}-{token}.json",
        prefix=prefix,
        scheme=dict(scheme),
        trash=os.path.join(prefix, TRASH_PREFIX + token),
        moves=moves,
        dirs=top_dirs,
        created=created,
    )
    body = {
        "prefix": journal.prefix,
        "scheme": journal.scheme,
        "trash": journal.trash,
        "moves": moves,
        "dirs": top_dirs,
        "created": created,
    }
    atomic_write(journal.file, json.dumps(body).encode("utf-8"), mode=0o600)
    return journal


def journals(directory: Path, prefix: str | None = None) -> list[Path]:
    """The journal files in *directory*, all of them or only those of the environment *prefix*."""
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return []
    digest = None if prefix is None else _digest(os.path.normpath(prefix))
    found: list[Path] = []
    for name in names:
        match = _FILE_NAME.fullmatch(name)
        if match is not None and (digest is None or match.group(1) == digest):
            found.append(directory / name)
    return found


def _paths(body: dict[str, Any], key: str, prefix: str) -> list[str]:
    value = body.get(key)
    if not isinstance(value, list):
        raise JournalError(f"{key!r} is not a list")
    inside = prefix + "/"
    for path in value:
        if not isinstance(path, str) or not path.startswith(inside):
            raise JournalError(f"{key!r} names {path!r}, outside the environment {prefix}")
        if os.path.normpath(path) != path:
            raise JournalError(f"{key!r} names {path!r}, which is not a normalised path")
    return value


def load(file: Path) -> Journal:
    """Read and check one journal file; `JournalError` when it is not a sound journal."""
    match = _FILE_NAME.fullmatch(file.name)
    if match is None:
        raise JournalError(f"{file.name!r} is not a journal's name")
    try:
        fd = os.open(file, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, "rb") as stream:
            raw = stream.read(MAX_JOURNAL_BYTES + 1)
    except OSError as exc:
        raise JournalError(f"cannot read it: {exc.strerror}") from exc
    if len(raw) > MAX_JOURNAL_BYTES:
        raise JournalError(f"larger than {MAX_JOURNAL_BYTES} bytes")
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise JournalError("not JSON (torn before the install changed anything)") from exc
    if not isinstance(body, dict):
        raise JournalError("not a JSON object")
    prefix = body.get("prefix")
    scheme = body.get("scheme")
    if not isinstance(prefix, str) or not os.path.isabs(prefix):
        raise JournalError("no absolute prefix")
    if os.path.normpath(prefix) != prefix or _digest(prefix) != match.group(1):
        raise JournalError(f"its name does not match its prefix {prefix}")
    if not isinstance(scheme, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in scheme.items()
    ):
        raise JournalError("no scheme")
    if os.path.normpath(scheme.get("data", "")) != prefix:
        raise JournalError("its scheme is not the prefix's")
    trash = os.path.join(prefix, TRASH_PREFIX + match.group(2))
    if body.get("trash") != trash:
        raise JournalError(f"its trash is not {trash}")
    return Journal(
        file=file,
        prefix=prefix,
        scheme=scheme,
        trash=trash,
        moves=_paths(body, "moves", prefix),
        dirs=_paths(body, "dirs", prefix),
        created=_paths(body, "created", prefix),
    )


def roll_back(journal: Journal) -> None:
    """Undo a journalled install step by step; each step tolerates having never happened.

    A path that is both moved aside and created is only deleted once its original is safely in
    the trash: a crash between the two leaves the original in place, which must survive. A path
    whose directory, symlinks resolved, lies outside the environment is left alone and logged:
    the install never made such a path, so the journal is not telling the truth about it.
    """
    inside = Inside(journal.prefix)
    trash = journal.trash
    moved_to = {original: os.path.join(trash, str(i)) for i, original in enumerate(journal.moves)}

    def ours(path: str) -> bool:
        if not inside(path):
            log.warning("install journal %s: not touching %s (outside)", journal.file, path)
            return False
        aside = moved_to.get(path)
        return aside is None or os.path.lexists(aside)

    for path in journal.created:
        if ours(path):
            with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                os.unlink(path)
    for directory in sorted(journal.dirs, reverse=True):
        if ours(directory):
            shutil.rmtree(directory, ignore_errors=True)
    if not os.path.isdir(trash) or os.path.islink(trash):
        return
    for index, original in enumerate(journal.moves):
        if inside(original):
            with contextlib.suppress(FileNotFoundError):
                os.rename(os.path.join(trash, str(index)), original)


def recover(scheme: Scheme, journal_dir: Path) -> bool:
    """Finish what a killed install into *scheme* left behind: roll back, then purge the trash.

    Every install does this first, under the lock; calling it directly (at daemon start, or
    from a repair command) takes the lock too. True when there was something to clean.
    """
    with env_lock(scheme):
        return recover_locked(scheme, journal_dir)


def recover_locked(scheme: Scheme, journal_dir: Path) -> bool:
    """Replay this environment's journals (found only in *journal_dir*), then remove trash
    directories no journal names: those of committed installs killed while emptying them."""
    prefix = os.path.normpath(scheme.data)
    found = False
    for file in journals(journal_dir, prefix):
        found = True
        try:
            journal = load(file)
        except JournalError as exc:
            log.warning("ignoring the install journal %s: %s", file, exc)
        else:
            if journal.prefix == prefix:
                roll_back(journal)
                remove_trash(journal.trash)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(file)
    try:
        entries = os.listdir(prefix)
    except FileNotFoundError:
        return found
    for entry in entries:
        if is_trash_name(entry):
            found = True
            remove_trash(os.path.join(prefix, entry))
    return found


def remove_trash(trash: str) -> None:
    """Empty and remove a trash directory; a symlink or a file of that name is only unlinked."""
    try:
        if os.path.isdir(trash) and not os.path.islink(trash):
            shutil.rmtree(trash)
        else:
            os.unlink(trash)
    except FileNotFoundError:
        pass


def recover_all(journal_dir: Path) -> list[str]:
    """Repair every environment a killed daemon was installing into; their prefixes.

    Call at start-up, before any install can run. An unreadable or unsound journal is dropped
    with a warning (nothing it says can be trusted); an environment that no longer exists has
    nothing to repair. A journal's temporary file, left by a kill before its rename, is removed:
    its install had not begun.
    """
    repaired: list[str] = []
    with contextlib.suppress(FileNotFoundError):
        for entry in os.listdir(journal_dir):
            if entry.startswith(TEMP_PREFIX):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(journal_dir / entry)
    for file in journals(journal_dir):
        try:
            journal = load(file)
        except JournalError as exc:
            log.warning("ignoring the install journal %s: %s", file, exc)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(file)
            continue
        try:
            scheme = Scheme(**{f: Path(journal.scheme[f]) for f in SCHEME_FIELDS})
        except KeyError as exc:
            log.warning("ignoring the install journal %s: no %s", file, exc)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(file)
            continue
        if not os.path.isdir(journal.prefix):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(file)
        elif recover(scheme, journal_dir):
            log.info("repaired the environment %s after an interrupted install", journal.prefix)
            repaired.append(journal.prefix)
    return repaired
