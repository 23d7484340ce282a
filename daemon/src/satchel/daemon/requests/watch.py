"""Watched projects: what the user asked the daemon to keep prefetched, and what they need.

A watched project is a directory or a single input file. A directory stands for every input
file directly in it (not recursively: a checkout's ``tests/`` or vendored trees are not the
project's dependencies), plus the files of a ``requirements/`` subdirectory when there is one,
the common place for split requirements files. Input files are:

    requirements*.txt   pip's format (-r/-c nesting, hashes)                          (reqfiles)
    pyproject.toml      [project] dependencies, EVERY optional-dependencies extra and EVERY
                        PEP 735 dependency group: a watched project should be workable offline
                        whatever the user installs next (tests, docs, extras)      (reqfiles)
    pylock.toml, pylock.*.toml   PEP 751 locks                                           (pylock)
    uv.lock             uv's lock: each registry package's file for the target     (uvlock)
    *.py                PEP 723 inline script metadata (``# /// script``)             (here)

Each input file is one *unit*, resolved on its own: two scripts or a dev requirements file may
pin different versions, and resolving them together would make them conflict.

The watched set and each project's last prefetch persist in the metadb's state table (one JSON
value under `STATE_KEY`, written in one transaction, so a crash never leaves half a list).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
from packaging.requirements import InvalidRequirement, Requirement

from satchel.daemon.requests.resolution import Inputs
from satchel.daemon.resolver import pylock
from satchel.daemon.resolver.reqfiles import (
    ParsedRequirement,
    RequirementSet,
    RequirementsFileError,
    parse_requirements,
    read_input,
    read_pyproject,
    read_toml,
)
from satchel.daemon.resolver.uvlock import read_uv_lock
from satchel.daemon.settings.uvproject import read_uv_project
from satchel.daemon.storage.metadb import MetaDB

__all__ = [
    "STATE_KEY",
    "Record",
    "Unit",
    "WatchedProject",
    "belongs_to",
    "discover",
    "input_state",
    "is_input_name",
    "is_stale",
    "load_projects",
    "read_script_metadata",
    "read_unit",
    "read_uv_lock",
    "save_projects",
    "watch_dirs",
]

#: Key of the watched set in the metadb's state table.
STATE_KEY = "watch.projects"

#: A PEP 723 metadata block, as the PEP's reference implementation matches it.
_SCRIPT_BLOCK = re.compile(
    r"(?m)^# /// (?P<type>[a-zA-Z0-9-]+)$\s(?P<content>(^#(| .*)$\s)+)^# ///$"
)

#: Scripts larger than this are not scanned for metadata (a generated file, not a script).
MAX_SCRIPT_BYTES = 4 * 2**20


class Record(msgspec.Struct, kw_only=True):
    """The outcome of a project's latest prefetch (what `watch list` shows, what GC keeps)."""

    at: float
    ok: bool
    message: str
    files: int = 0
    downloaded: int = 0
    bytes: int = 0
    missing: list[str] = []
    #: sha256 of every file the project needed: garbage collection never evicts these.
    needed: list[str] = []
    #: Normalised names of the projects it resolved to: background refresh revalidates them.
    projects: list[str] = []
    target: str = ""
    #: Input file -> its mtime (ns) as read, taken before reading: a later edit, a new or a
    #: removed input makes the project stale (see `input_state`).
    sources: dict[str, int] = {}


class WatchedProject(msgspec.Struct, kw_only=True):
    path: str
    python: str | None = None
    added_at: float
    last: Record | None = None

    @property
    def root(self) -> Path:
        """The directory the project lives in (its own path, or a watched file's parent)."""
        path = Path(self.path)
        return path if path.is_dir() else path.parent


_projects_decoder = msgspec.json.Decoder(list[WatchedProject])


def load_projects(metadb: MetaDB) -> list[WatchedProject]:
    """The persisted watched set (blocking; empty when nothing was ever watched)."""
    raw = metadb.get_state(STATE_KEY)
    if raw is None:
        return []
    try:
        return _projects_decoder.decode(raw)
    except msgspec.DecodeError:
        # Written by a newer, incompatible daemon or damaged: start afresh rather than refuse
        # to start; the user re-adds projects (`watch list` shows the set is empty).
        return []


def save_projects(metadb: MetaDB, projects: list[WatchedProject]) -> None:
    metadb.put_state(STATE_KEY, msgspec.json.encode(projects))


# -- discovery ----------------------------------------------------------------------------------


def is_input_name(name: str) -> bool:
    """Whether a file called *name* is one a project directory's inputs can be."""
    return (
        (name.startswith("requirements") and name.endswith(".txt"))
        or name in ("pyproject.toml", "uv.lock", "pylock.toml")
        or (name.startswith("pylock.") and name.endswith(".toml"))
        or name.endswith(".py")
    )


def belongs_to(root: Path, path: Path) -> bool:
    """Whether *path* is (by name and place) an input file of the project directory *root*."""
    if path.parent == root:
        return is_input_name(path.name)
    return path.parent == root / "requirements" and path.name.endswith(".txt")


def watch_dirs(path: Path) -> list[Path]:
    """The directories whose changes concern a watched *path* (watched non-recursively)."""
    if not path.is_dir():
        return [path.parent]
    dirs = [path]
    if (path / "requirements").is_dir():
        dirs.append(path / "requirements")
    return dirs


def _kind(path: Path) -> str | None:
    name = path.name
    if name == "pyproject.toml":
        return "pyproject"
    if name == "uv.lock":
        return "uv-lock"
    if name.startswith("pylock") and name.endswith(".toml"):
        return "pylock"
    if name.endswith(".py"):
        return "script"
    if name.endswith(".txt"):
        return "requirements"
    return None


def discover(path: Path) -> list[Path]:
    """The input files of a watched *path* right now, sorted (blocking).

    A watched file is its own single input whatever its name (``-r dev.txt`` style names are
    fine); in a directory, ``.py`` files count only when they carry a ``# /// script`` block.
    """
    if not path.is_dir():
        return [path] if path.exists() else []
    found: list[Path] = []
    for directory in watch_dirs(path):
        for child in sorted(directory.iterdir()):
            if not child.is_file() or not belongs_to(path, child):
                continue
            if child.suffix == ".py" and read_script_metadata(child) is None:
                continue
            found.append(child)
    return found


def input_state(path: Path) -> dict[str, int]:
    """Input file -> mtime in ns, for the inputs of watched *path* now (blocking)."""
    state: dict[str, int] = {}
    for child in discover(path):
        try:
            state[str(child)] = child.stat().st_mtime_ns
        except FileNotFoundError:
            continue
    return state


def is_stale(project: WatchedProject) -> bool:
    """Whether *project* needs a prefetch: never done, failed, or its inputs changed since
    (edited while the daemon was not running or not yet watching). Blocking."""
    last = project.last
    return last is None or not last.ok or input_state(Path(project.path)) != last.sources


# -- reading units -----------------------------------------------------------------------------


@dataclass
class Unit:
    """One input file, read: what to resolve, and which locks to fetch as listed."""

    path: Path
    kind: str
    inputs: Inputs = field(default_factory=Inputs)

    @property
    def empty(self) -> bool:
        return not self.inputs.requirements.requirements and not self.inputs.locks


def _from_strings(values: list[Requirement], origin: str) -> RequirementSet:
    reqs = RequirementSet()
    for req in values:
        if req.url:
            raise RequirementsFileError(
                f"{origin}: direct reference {str(req)!r} is not supported; Satchel resolves "
                "names from its configured indexes only"
            )
        reqs.requirements.append(ParsedRequirement(req, frozenset(), origin))
    return reqs


def _all_of_pyproject(path: Path) -> list[Requirement]:
    data = read_toml(path)
    project = data.get("project", {})
    extras = list(project.get("optional-dependencies", {}))
    groups = list(data.get("dependency-groups", {}))
    dynamic = "dependencies" in project.get("dynamic", [])
    return read_pyproject(path, extras=extras, groups=groups, project_dependencies=not dynamic)


def read_unit(path: Path) -> Unit:
    """Read one input file (blocking); errors are `RequirementsFileError` naming the file."""
    kind = _kind(path) or "requirements"
    unit = Unit(path, kind)
    if kind == "requirements":
        unit.inputs.requirements = parse_requirements(path)
    elif kind == "pyproject":
        unit.inputs.requirements = _from_strings(_all_of_pyproject(path), str(path))
        unit.inputs.project = read_uv_project(path, read_toml(path))
    elif kind == "pylock":
        unit.inputs.locks.append(pylock.read_pylock(path))
    elif kind == "uv-lock":
        unit.inputs.locks.append(read_uv_lock(path))
    else:
        unit.inputs.requirements = _from_strings(read_script_metadata(path) or [], str(path))
    return unit


def read_script_metadata(path: Path) -> list[Requirement] | None:
    """The ``dependencies`` of a PEP 723 ``script`` block; None when the file has no block."""
    try:
        text = read_input(path, "script")  # bounded, and never /dev/zero or a FIFO
    except RequirementsFileError:
        return None
    if len(text) > MAX_SCRIPT_BYTES:
        return None
    blocks = [m for m in _SCRIPT_BLOCK.finditer(text) if m.group("type") == "script"]
    if not blocks:
        return None
    if len(blocks) > 1:
        raise RequirementsFileError(f"{path}: more than one `# /// script` block (PEP 723)")
    content = "".join(
        line[2:] if line.startswith("# ") else line[1:]
        for line in blocks[0].group("content").splitlines(keepends=True)
    )
    try:
        data = tomllib.loads(content)
    except tomllib.TOMLDecodeError as exc:
        raise RequirementsFileError(
            f"{path}: the script metadata is not valid TOML: {exc}"
        ) from exc
    values = data.get("dependencies", [])
    if not isinstance(values, list):
        raise RequirementsFileError(f"{path}: script `dependencies` must be a list of strings")
    out: list[Requirement] = []
    for value in values:
        try:
            out.append(Requirement(str(value)))
        except InvalidRequirement as exc:
            raise RequirementsFileError(f"{path}: invalid requirement {value!r}: {exc}") from exc
    return out
