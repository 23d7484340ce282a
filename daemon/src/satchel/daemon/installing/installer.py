"""Install unpacked wheels into an environment: plan everything, then commit, or roll back.

The resolver decides *what*; this module decides *how*, fast and correctly:

1. **Plan, writing nothing.** Every destination of every wheel (files, launchers, dist-info) is
   computed from the precomputed manifests (`satchel.daemon.installing.wheel`), checked to stay
   inside its
   scheme directory, and checked against the other wheels (two wheels writing one path is an
   error). Distributions being replaced or removed contribute the paths of their own RECORD,
   kept only when they lie inside the environment (never following a symlinked directory out).
   Existence is learned from one ``listdir`` per directory, not one ``stat`` per file.
2. **Journal.** The plan's undo information (what will be moved aside, which files and
   directories will be created) is written durably to the daemon's own private directory,
   never into the environment (`satchel.daemon.installing.journal` says why).
3. **Apply.** Old files are renamed into the trash directory (``<env>/.satchel-trash-<token>``),
   new directories are made once each, files are linked/cloned/copied in one tight loop
   (`satchel.daemon.installing.linking`), launchers, INSTALLER, REQUESTED, direct_url.json and
   RECORD are
   written; with ``compile_bytecode`` the target interpreter compiles the new files
   (`satchel.daemon.installing._bytecode`), still inside the transaction.
4. **Commit** by deleting the journal; then the trash is emptied and emptied directories pruned.

Any failure before the commit replays the journal backwards, so the environment is exactly its
old state; a process killed mid-install leaves the journal, and the next install into (or
`recover` of) that environment, or the daemon's next start (`recover_all`), replays it.
Durability: the environment is not fsynced (see `satchel.daemon.installing.linking`): the
transaction is
atomic against crashes of the process, while the files themselves come from the durable cache
and can always be re-linked.

A per-environment ``flock`` on ``<env>/.satchel.lock`` serialises installs into one environment;
different environments proceed in parallel. Everything here blocks: the daemon calls it through
``trio.to_thread.run_sync`` (the wait for the lock is not cancellable). POSIX only, like the
launchers it writes.

No destination may be a name Satchel or the venv owns (`satchel.daemon.installing._layout`).
"""

# Paths are plain strings and os calls on purpose: these loops run per file, 10^4 times per
# install, where pathlib objects cost several microseconds each.
# ruff: noqa: PTH102, PTH104, PTH118, PTH120, PTH208

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

from satchel.daemon.errors import InstallError, NotFound, SatchelError
from satchel.daemon.installing._bytecode import compile_files, remove_bytecode
from satchel.daemon.installing._layout import (
    Scheme,
    env_lock,
    reserved_candidates,
    reserved_destination,
)
from satchel.daemon.installing._manifest import UnpackedWheel, WheelManifest, stamp_of
from satchel.daemon.installing._placement import NO_STAMPS, TreeChanged, Unit, place
from satchel.daemon.installing._removal import Inside, prune_empty, removal_paths
from satchel.daemon.installing._replacing import only_removed, replaced_by_other_bytes
from satchel.daemon.installing._scripts import launcher, rewrite_shebang
from satchel.daemon.installing.journal import (
    Journal,
    recover,
    recover_all,
    recover_locked,
    remove_trash,
    roll_back,
)
from satchel.daemon.installing.journal import write as write_journal
from satchel.daemon.installing.linking import Linker, LinkMode
from satchel.daemon.storage.fsutil import disk_full_guard

__all__ = [
    "InstallItem",
    "InstallReport",
    "Scheme",
    "TreeChanged",
    "env_lock",
    "install",
    "installed_distributions",
    "recover",
    "recover_all",
    "uninstall",
]

#: Written by us into every dist-info; a wheel's own copies of these are not installed.
_OWN_METADATA = frozenset({"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"})


@dataclass(frozen=True)
class InstallItem:
    """One wheel to install; *requested* marks a direct requirement (PEP 376 REQUESTED)."""

    unpacked: UnpackedWheel
    requested: bool = False
    direct_url: dict[str, Any] | None = None


@dataclass(frozen=True)
class InstallReport:
    installed: tuple[tuple[str, str], ...]  # (project, version)
    removed: tuple[tuple[str, str], ...]
    files: int
    link_modes: tuple[str, ...]
    seconds: float
    skipped_outside: tuple[str, ...] = ()  # RECORD entries of removed dists outside the env
    #: Files a wheel replaced that no distribution this install replaces or removes lists:
    #: another distribution's, or put there by hand ("<wheel>: <path in the environment>").
    overwritten: tuple[str, ...] = ()


@dataclass
class _Plan:
    moves: list[str] = field(default_factory=list)  # originals to move into the trash
    dirs: list[str] = field(default_factory=list)  # to create, parents first
    units: list[Unit] = field(default_factory=list)  # per wheel: files to link, files to write
    created: list[str] = field(default_factory=list)  # files not inside a created dir
    prune: set[str] = field(default_factory=set)  # dirs that may be left empty by removals
    py_files: list[str] = field(default_factory=list)  # for bytecode compilation
    overwritten: list[str] = field(default_factory=list)  # InstallReport.overwritten

    def destinations(self) -> list[str]:
        """Every path the units create: linked files, then written ones."""
        return [dst for unit in self.units for dst in unit.destinations()]


class _Listing:
    """``exists`` answered from one ``listdir`` per directory (a fresh venv: a handful)."""

    def __init__(self, gone: set[str]) -> None:
        self._names: dict[str, frozenset[str] | None] = {}
        self.gone = gone  # paths this install moves away first: absent for planning

    def names(self, directory: str) -> frozenset[str] | None:
        try:
            return self._names[directory]
        except KeyError:
            pass
        if directory in self.gone:
            self._names[directory] = None
            return None
        parent, _, base = directory.rpartition("/")
        result: frozenset[str] | None
        if parent:
            above = self.names(parent)
            if above is None or base not in above:
                self._names[directory] = None
                return None
        try:
            result = frozenset(os.listdir(directory))
        except (FileNotFoundError, NotADirectoryError):
            result = None
        self._names[directory] = result
        return result

    def exists(self, path: str) -> bool:
        parent, _, base = path.rpartition("/")
        names = self.names(parent)
        return names is not None and base in names and path not in self.gone


def _record_text(rows: list[tuple[str, str, str]]) -> bytes:
    """RECORD as csv writes it, sorted by path (as pypa/installer does); plain join when no
    field needs quoting, which is every real wheel."""
    rows.sort()
    lines = [f"{path},{digest},{size}\n" for path, digest, size in rows]
    text = "".join(lines)
    if (
        '"' not in text
        and "\r" not in text
        and text.count(",") == 2 * len(rows)
        and text.count("\n") == len(rows)
    ):
        return text.encode("utf-8")
    out = io.StringIO()
    writer = csv.writer(out, delimiter=",", quotechar='"', lineterminator="\n")
    writer.writerows(sorted(rows))
    return out.getvalue().encode("utf-8")


def _hash_of(data: bytes) -> str:
    import base64

    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def installed_distributions(scheme: Scheme) -> dict[str, tuple[str, Path]]:
    """``{canonical name: (version, dist-info path)}`` of what is installed in *scheme*."""
    found: dict[str, tuple[str, Path]] = {}
    for lib in dict.fromkeys((scheme.purelib, scheme.platlib)):
        try:
            entries = os.listdir(lib)
        except FileNotFoundError:
            continue
        for entry in entries:
            if not entry.endswith(".dist-info"):
                continue
            name, sep, version = entry[: -len(".dist-info")].rpartition("-")
            if sep and name:
                found[canonicalize_name(name)] = (version, lib / entry)
    return found


def _unsafe_path(paths: list[str]) -> str | None:
    """The first path with an empty, ``.`` or ``..`` component or a leading ``/``, if any.

    Validated at unpack already; re-checked because the manifest is read back from disk, with
    a handful of substring searches over all paths at once instead of a loop per file.
    """
    blob = "\n" + "\n".join(paths) + "\n"
    for bad in ("\n/", "//"):
        found = _line_with(blob, bad)
        if found is not None:
            return found
    if "/." not in blob and "\n." not in blob:  # in every other pattern; in few real wheels
        return None
    for bad in ("/./", "/../", "\n./", "\n../", "/.\n", "/..\n", "\n.\n", "\n..\n"):
        found = _line_with(blob, bad)
        if found is not None:
            return found
    return None


def _line_with(blob: str, bad: str) -> str | None:
    at = blob.find(bad)
    if at < 0:
        return None
    start = blob.rfind("\n", 0, at + 1) + 1
    return blob[start : blob.find("\n", start)]


def _plan_wheel(
    item: InstallItem, scheme: Scheme, plan: _Plan, compile_bytecode: bool
) -> dict[str, list[str]]:
    """Add one wheel's unit to *plan* (files, launchers, dist-info, RECORD); returns the tree's
    changed members when a script it must read to rewrite changed (else {}).

    The per-file work is list comprehensions over the precomputed manifest; conflicts and
    existing files are found afterwards for all wheels at once (`_check_conflicts`,
    `_plan_dirs`).
    """
    manifest: WheelManifest = item.unpacked.manifest
    tree = os.fspath(item.unpacked.tree) + "/"
    stamped = len(manifest.stamps) == len(manifest.files)
    unit = Unit(manifest.filename, item.unpacked.sha256, tree, stamped)
    plan.units.append(unit)
    interpreter = os.fspath(scheme.interpreter)
    root_scheme = "purelib" if manifest.root_is_purelib else "platlib"
    roots = {
        name: os.path.normpath(scheme.directory(name)) + "/"
        for name in ("purelib", "platlib", "scripts", "data")
    }
    roots["headers"] = os.path.normpath(scheme.directory("headers")) + f"/{manifest.name}/"
    lib = roots[root_scheme]
    prefixes = {
        name: ("" if root == lib else os.path.relpath(root, lib) + "/")
        for name, root in roots.items()
    }
    label = manifest.filename
    bad = _unsafe_path([f.path for f in manifest.files] + [e.name for e in manifest.entry_points])
    if bad is not None:
        raise InstallError(f"{label}: {bad!r} would land outside the environment's schemes")
    if not stamped:
        return {item.unpacked.sha256: [NO_STAMPS]}
    own = {f"{manifest.dist_info}/{name}" for name in _OWN_METADATA}
    files, stamps = manifest.files, manifest.stamps
    # The linked files: every file but scripts (rewritten below) and our own metadata.
    unit.links = [
        (f.member, roots[f.scheme] + f.path, 0o755 if f.executable else 0o644, stamp)
        for f, stamp in zip(files, stamps, strict=True)
        if f.scheme != "scripts" and f.member not in own
    ]
    _check_metadata_dirs(unit, manifest.dist_info, {roots["purelib"], roots["platlib"]})
    scripts = [(f, stamp) for f, stamp in zip(files, stamps, strict=True) if f.scheme == "scripts"]
    rows: list[tuple[str, str, str]] = []  # RECORD rows besides the linked files'
    if compile_bytecode:
        plan.py_files.extend(
            [
                roots[f.scheme] + f.path
                for f in files
                if f.scheme in ("purelib", "platlib")
                and f.path.endswith(".py")
                and f.member not in own
            ]
        )

    scripts_prefix = prefixes["scripts"]
    changed: list[str] = []
    for f, stamp in scripts:
        src, dst = tree + f.member, roots["scripts"] + f.path
        try:  # not following a link, not blocking on a FIFO: a changed member is "changed"
            stream = os.fdopen(os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK), "rb")
        except OSError:
            changed.append(f.member)
            continue
        with stream:
            if stamp_of(os.fstat(stream.fileno())) != stamp:
                changed.append(f.member)  # its bytes would be copied: checked like a link
                continue
            rewritten = rewrite_shebang(stream.read(), interpreter)
        if rewritten is None:
            unit.links.append((f.member, dst, 0o755, stamp))
            rows.append((scripts_prefix + f.path, f.hash, str(f.size)))
        else:
            unit.writes.append((dst, rewritten, 0o755))
            rows.append((scripts_prefix + f.path, _hash_of(rewritten), str(len(rewritten))))

    for entry in manifest.entry_points:
        data = launcher(entry, interpreter)
        unit.writes.append((roots["scripts"] + entry.name, data, 0o755))
        rows.append((scripts_prefix + entry.name, _hash_of(data), str(len(data))))

    extra: dict[str, bytes] = {"INSTALLER": b"satchel\n"}
    if item.requested:
        extra["REQUESTED"] = b""
    if item.direct_url is not None:
        extra["direct_url.json"] = json.dumps(item.direct_url, sort_keys=True).encode()
    for name, data in extra.items():
        unit.writes.append((f"{lib}{manifest.dist_info}/{name}", data, 0o644))
        rows.append((f"{manifest.dist_info}/{name}", _hash_of(data), str(len(data))))
    record = f"{manifest.dist_info}/RECORD"
    rows.append((record, "", ""))

    def record_text() -> bytes:  # built by the placement thread: per-file work, off the plan
        own_rows = [
            (prefixes[f.scheme] + f.path, f.hash, str(f.size))
            for f in files
            if f.scheme != "scripts" and f.member not in own
        ]
        return _record_text(own_rows + rows)

    unit.late_writes.append((lib + record, record_text, 0o644))
    return {item.unpacked.sha256: changed} if changed else {}


def _removable(scheme: Scheme, paths: list[str]) -> list[str]:
    """*paths* but those no wheel may install (`reserved_destination`: the interpreter, the
    activate scripts, Satchel's own files), whatever a distribution's RECORD claims."""
    candidates = reserved_candidates(scheme)
    return [
        path
        for path in paths
        if not path.startswith(candidates) or reserved_destination(scheme, path) is None
    ]


def _check_metadata_dirs(unit: Unit, dist_info: str, libs: set[str]) -> None:
    """No file of a wheel lands in another distribution's ``.dist-info`` (through
    ``.data/purelib`` or ``.data/data``, spelled through a link such as a venv's ``lib64``):
    its RECORD decides what removing that distribution removes, and a forged one could take
    the venv's interpreter."""
    real: dict[str, str] = {}  # directory -> its real path, asked once each
    for _member, dst, _mode, _stamp in unit.links:
        at = dst.find(".dist-info/")  # one C-level search per file; the rest is rare
        while at >= 0:
            parent, _, name = dst[: at + len(".dist-info")].rpartition("/")
            at = dst.find(".dist-info/", at + 1)
            if name == dist_info and parent + "/" in libs:
                continue  # the wheel's own, spelled as Satchel writes it
            for directory in (parent, *libs):
                if directory not in real:
                    real[directory] = os.path.realpath(directory)
            if name != dist_info and real[parent] in {real[lib] for lib in libs}:
                raise InstallError(
                    f"{unit.label}: refusing to install {dst}: {name} is another "
                    "distribution's metadata directory",
                    details={"path": dst},
                )


def _check_conflicts(plan: _Plan) -> None:
    """Two wheels writing one path is an error naming both (checked once, for all wheels)."""
    dsts = plan.destinations()
    if len(set(dsts)) == len(dsts):
        return
    seen: dict[str, str] = {}
    for unit in plan.units:
        for dst in unit.destinations():
            other = seen.setdefault(dst, unit.label)
            if other != unit.label:
                raise InstallError(
                    f"{unit.label} and {other} both install {dst}", details={"path": dst}
                )


def _check_reserved(plan: _Plan, scheme: Scheme) -> None:
    """No destination is a name Satchel or the venv owns (`layout.reserved_destination`)."""
    candidates = reserved_candidates(scheme)
    for unit in plan.units:
        for dst in unit.destinations():
            if dst.startswith(candidates):
                reason = reserved_destination(scheme, dst)
                if reason is not None:
                    raise InstallError(
                        f"{unit.label}: refusing to install {dst}: {reason}", details={"path": dst}
                    )


def _plan_dirs(plan: _Plan, listing: _Listing) -> None:
    """Directories to create (parents first), files that exist already (moved aside first),
    and files created outside new directories (for undo)."""
    needed: set[str] = set()
    present: set[str] = set()
    created = plan.created
    for unit in plan.units:
        replaced: list[str] = []  # files no replaced distribution lists (`_replacing`)
        for dst in unit.destinations():
            parent, _, base = dst.rpartition("/")
            if parent in needed:
                continue  # a new directory holds nothing yet
            if parent not in present:
                current = parent
                while current not in needed and current not in present:
                    if listing.exists(current):
                        if not Path(current).is_dir():  # a file, or a link to one
                            raise InstallError(
                                f"{unit.label}: refusing to install {dst}: {current} is not a "
                                "directory",
                                details={"path": dst},
                            )
                        present.add(current)
                        break
                    needed.add(current)
                    current = current.rpartition("/")[0]
                if parent in needed:
                    continue
            created.append(dst)
            names = listing.names(parent)
            if names is not None and base in names and dst not in listing.gone:
                # A file replaces a file, or a directory this install empties (an upgrade's
                # package turned module); never another one (the venv's bin/, another
                # distribution's package), which the trash would take whole. A file no
                # replaced distribution lists is reported (`_replacing`).
                if not Path(dst).is_dir():
                    replaced.append(dst)
                elif not only_removed(dst, listing.gone):
                    raise InstallError(
                        f"{unit.label}: refusing to install {dst}: it is a directory, and a "
                        "wheel's file may not replace one",
                        details={"path": dst},
                    )
                plan.moves.append(dst)
        if replaced:
            differ = replaced_by_other_bytes(unit, replaced)
            plan.overwritten += [f"{unit.label}: {dst}" for dst in differ]
    plan.dirs = sorted(needed)


def _add_pyc_to_records(scheme: Scheme, items: Sequence[InstallItem], pycs: list[str]) -> None:
    """Append hashless .pyc rows (as pip does) to each distribution's RECORD."""
    owner: dict[str, tuple[str, str]] = {}  # source .py -> (lib dir, RECORD path)
    for item in items:
        manifest = item.unpacked.manifest
        lib = os.path.normpath(
            scheme.directory("purelib" if manifest.root_is_purelib else "platlib")
        )
        record_path = f"{lib}/{manifest.dist_info}/RECORD"
        for f in manifest.files:
            if f.scheme in ("purelib", "platlib") and f.path.endswith(".py"):
                root = os.path.normpath(scheme.directory(f.scheme))
                owner[root + "/" + f.path] = (lib, record_path)
    rows: dict[str, list[str]] = {}
    for pyc in pycs:
        cache_dir, name = os.path.split(pyc)
        source = os.path.dirname(cache_dir) + "/" + name.split(".", 1)[0] + ".py"
        found = owner.get(source)
        if found is not None:
            rows.setdefault(found[1], []).append(os.path.relpath(pyc, found[0]) + ",,\n")
    for record_path, lines in rows.items():
        with open(record_path, "a", encoding="utf-8") as stream:
            stream.writelines(lines)


def install(
    scheme: Scheme,
    wheels: Sequence[InstallItem],
    *,
    journal_dir: Path,
    remove: Sequence[str] = (),
    link_mode: LinkMode = "auto",
    compile_bytecode: bool = False,
) -> InstallReport:
    """Install *wheels* (replacing installed versions) and uninstall *remove*, atomically."""
    started = time.perf_counter()
    linker = Linker(link_mode)
    with env_lock(scheme):
        recover_locked(scheme, journal_dir)
        installed = installed_distributions(scheme)
        inside = Inside(os.fspath(scheme.data))
        outside: list[str] = []
        removed: list[tuple[str, str]] = []
        removing: list[str] = []
        names = [canonicalize_name(item.unpacked.manifest.name) for item in wheels]
        if len(set(names)) != len(names):
            raise InstallError("the same project is listed twice in one install")
        for name in [*names, *map(canonicalize_name, remove)]:
            if name in installed:
                version, dist_info = installed.pop(name)
                removed.append((name, version))
                removing.extend(_removable(scheme, removal_paths(dist_info, inside, outside)))
            elif name not in names:
                raise NotFound(f"{name} is not installed in {scheme.data}")
        plan = _Plan()
        removing_set = set(removing)
        plan.moves.extend(removing)
        listing = _Listing(removing_set)
        changed: dict[str, list[str]] = {}
        for item in wheels:
            changed.update(_plan_wheel(item, scheme, plan, compile_bytecode))
        if changed:  # found before anything is written: nothing to roll back
            raise _tree_changed(scheme, plan, changed)
        _check_conflicts(plan)
        _check_reserved(plan, scheme)
        _plan_dirs(plan, listing)
        plan.prune = {os.path.dirname(p) for p in removing}

        token = secrets.token_hex(6)
        journal: Journal | None = None
        try:
            with disk_full_guard(scheme.data):
                journal = write_journal(
                    journal_dir, scheme.fields(), token, plan.moves, plan.dirs, plan.created
                )
                trash = journal.trash
                os.mkdir(trash, 0o700)
                for index, original in enumerate(plan.moves):
                    os.rename(original, os.path.join(trash, str(index)))
                _place(scheme, plan, linker)
                if compile_bytecode:
                    pycs = compile_files(scheme.interpreter, plan.py_files)
                    _add_pyc_to_records(scheme, wheels, pycs)
        except BaseException as exc:
            if journal is not None:
                roll_back(journal)
                remove_trash(journal.trash)
                with contextlib.suppress(FileNotFoundError):
                    journal.file.unlink()
            if compile_bytecode:
                remove_bytecode(plan.py_files)
            if isinstance(exc, SatchelError) or not isinstance(exc, OSError):
                raise
            raise InstallError(
                f"install into {scheme.data} failed and was rolled back: {exc}",
                details={"path": str(getattr(exc, "filename", "") or "")},
            ) from exc
        journal.file.unlink()  # the commit point
        remove_trash(trash)
        stops = {
            os.path.normpath(scheme.directory(s))
            for s in ("purelib", "platlib", "scripts", "data", "headers")
        }
        prune_empty(plan.prune, stops, os.path.normpath(scheme.data))
    return InstallReport(
        installed=tuple(
            (item.unpacked.manifest.name, item.unpacked.manifest.version) for item in wheels
        ),
        removed=tuple(removed),
        files=sum(len(unit.destinations()) for unit in plan.units),
        link_modes=tuple(sorted(linker.used)),
        seconds=time.perf_counter() - started,
        skipped_outside=tuple(outside),
        overwritten=tuple(plan.overwritten),
    )


def _place(scheme: Scheme, plan: _Plan, linker: Linker) -> None:
    """Make the directories and place every unit; `TreeChanged` when a tree changed."""
    changed = place(plan.dirs, plan.units, linker)
    if changed:
        raise _tree_changed(scheme, plan, changed)


def _tree_changed(scheme: Scheme, plan: _Plan, changed: dict[str, list[str]]) -> TreeChanged:
    labels = {unit.sha256: unit.label for unit in plan.units}
    what = "; ".join(
        f"{labels.get(sha, sha)}: {', '.join(members[:5])}{', ...' if len(members) > 5 else ''}"
        for sha, members in changed.items()
    )
    return TreeChanged(
        f"install into {scheme.data} rolled back: unpacked trees in the cache changed since "
        f"they were unpacked ({what})",
        changed,
    )


def uninstall(scheme: Scheme, name: str, *, journal_dir: Path) -> InstallReport:
    """Remove one distribution through its RECORD (NotFound when it is not installed)."""
    return install(scheme, [], journal_dir=journal_dir, remove=[name])
