"""Read what users already write down: requirements files and ``pyproject.toml``.

Requirements files follow pip's format where it makes sense for a cache daemon:

* ``-r``/``--requirement`` and ``-c``/``--constraint`` nest, relative to the including file;
  every requirement inside a constraints file (at any depth) is a constraint. Cycles are errors.
* ``\\`` line continuations, ``#`` comments (at line start or after whitespace), ``${VAR}``
  environment variables (the ``${NAME}`` form only, as pip).
* ``--hash=sha256:...`` after a requirement (repeatable, continuation lines welcome); any hash turns
  on hash-checking mode (as does ``--require-hashes``), in which every resolved file must carry a
  listed hash. Only sha256 is accepted: it is what indexes publish and what the store is keyed on.
* Environment markers are kept on the requirement; the resolver evaluates them for the target.
* ``--pre`` allows pre-releases.
* ``--only-binary`` / ``--no-binary`` (``:all:``, ``:none:``, comma-separated names), with pip's
  semantics (`buildpolicy.Formats`): a project that may only come as a wheel is never built.

Refused (`RequirementsFileError`, naming file and line), because Satchel cannot cache them:
``-e``/``--editable``, direct references (``name @ URL``), bare URLs and local paths, ``-r``/``-c``
of a URL.

Ignored with a warning (naming file and line), because index choice belongs to the daemon's
configuration (that is the product: the user never repeats index URLs, and a requirements file
must not be able to pull a package from an index outside the configured scope):
``-i``/``--index-url``, ``--extra-index-url``, ``-f``/``--find-links``, ``--no-index``,
``--trusted-host``, and installer tuning (``--prefer-binary``, ``--use-feature``,
``--config-settings``, ``--global-option``). Unknown options are errors.
"""

from __future__ import annotations

import os
import re
import shlex
import stat
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from satchel.daemon.errors import SatchelError
from satchel.daemon.resolver.buildpolicy import Formats

__all__ = [
    "ParsedRequirement",
    "RequirementSet",
    "RequirementsFileError",
    "parse_requirements",
    "parse_requirements_text",
    "read_pyproject",
]


class RequirementsFileError(SatchelError):
    """A requirements file or pyproject.toml Satchel cannot use (message names file and line).

    Also a malformed requirement given as an argument. The input is wrong, not the request:
    the client exits with the usage status (2), as for a bad command line.
    """

    code: ClassVar[str] = "invalid-requirement"


@dataclass(frozen=True)
class ParsedRequirement:
    requirement: Requirement
    #: sha256 hex digests listed with ``--hash`` (empty when none).
    hashes: frozenset[str]
    #: ``path:line`` it came from, for messages.
    origin: str


@dataclass
class RequirementSet:
    requirements: list[ParsedRequirement] = field(default_factory=list)
    constraints: list[ParsedRequirement] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    prereleases: bool = False
    require_hashes: bool = False
    #: ``(--only-binary|--no-binary, value, "file:line")`` in the order read (pip applies them
    #: in order: a later statement about a project overrides an earlier one).
    format_options: list[tuple[str, str, str]] = field(default_factory=list)

    def formats(self) -> Formats:
        """What this set's ``--only-binary``/``--no-binary`` say, in the order given."""
        formats = Formats()
        for option, value, origin in self.format_options:
            formats = formats.update(option, value, origin)
        return formats

    def hash_mode(self) -> bool:
        every = (*self.requirements, *self.constraints)
        return self.require_hashes or any(item.hashes for item in every)

    def hashes(self) -> dict[str, frozenset[str]] | None:
        """Normalised name -> acceptable sha256s for the resolver; None outside hash mode."""
        if not self.hash_mode():
            return None
        out: dict[str, set[str]] = {}
        for item in (*self.requirements, *self.constraints):
            out.setdefault(canonicalize_name(item.requirement.name), set()).update(item.hashes)
        return {name: frozenset(hashes) for name, hashes in out.items() if hashes}

    def extend(self, other: RequirementSet) -> None:
        self.requirements.extend(other.requirements)
        self.constraints.extend(other.constraints)
        self.warnings.extend(other.warnings)
        self.format_options.extend(other.format_options)
        self.prereleases |= other.prereleases
        self.require_hashes |= other.require_hashes


_COMMENT = re.compile(r"(^|\s+)#.*$")
_ENV_VAR = re.compile(r"\$\{([A-Z0-9_]+)\}")
_IGNORED_WITH_VALUE = {
    "-i": "index", "--index-url": "index", "--extra-index-url": "index",
    "-f": "index", "--find-links": "index", "--trusted-host": "index",
    "--use-feature": "tuning",
    "--config-settings": "tuning", "--global-option": "tuning",
}  # fmt: skip
_IGNORED_FLAGS = {"--no-index": "index", "--prefer-binary": "tuning"}
_WHY_IGNORED = {
    "index": "indexes come from Satchel's configuration (`satchel index add`), not from "
    "requirements files",
    "tuning": "installer options do not change what Satchel resolves and caches",
}


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """(first physical line number, joined line) with continuations joined, comments removed."""
    start = None
    parts: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if start is None:
            start = number
        # A comment ends a continuation even if it ends with a backslash (as in pip).
        if raw.endswith("\\") and not _COMMENT.search(raw[:-1]):
            parts.append(raw[:-1])
            continue
        parts.append(raw)
        joined = _COMMENT.sub("", " ".join(parts)).strip()
        yield start, joined
        start, parts = None, []
    if parts and start is not None:
        yield start, _COMMENT.sub("", " ".join(parts)).strip()


def _expand_env(line: str) -> str:
    return _ENV_VAR.sub(lambda m: os.environ.get(m[1], m[0]), line)


def _split_option(tokens: list[str], position: int) -> tuple[str, str | None, int]:
    """(option, value, next position) for ``--opt=value``, ``--opt value``, ``-ovalue``."""
    token = tokens[position]
    if token.startswith("--") and "=" in token:
        name, _, value = token.partition("=")
        return name, value, position + 1
    if not token.startswith("--") and len(token) > 2:
        return token[:2], token[2:], position + 1
    if position + 1 < len(tokens):
        return token, tokens[position + 1], position + 2
    return token, None, position + 1


def _looks_like_path_or_url(text: str) -> bool:
    return (
        "://" in text
        or text.startswith((".", "/", "~"))
        or text.endswith((".whl", ".tar.gz", ".zip"))
        or os.sep in text.split(";")[0]
    )


#: Largest input file the daemon reads (requirements, constraints, pyproject.toml, pylock.toml,
#: uv.lock). The largest real ones are lock files of big monorepos, a few MB; 16 MiB is far
#: above that and still a bounded cost for a daemon that reads whatever path a client names
#: (``-r /dev/zero`` once grew it to 23.5 GB: issue 11.13).
MAX_INPUT_BYTES = 16 * 2**20


def read_input(path: Path, what: str = "file") -> str:
    """The UTF-8 text of the user's input file *path*, read with a bounded read (blocking).

    Refuses, naming the file, anything but a regular file (``/dev/zero``, a FIFO, a directory)
    and files over `MAX_INPUT_BYTES`, checked on the bytes actually read, not on a size the
    file claims (it can grow while being read).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise RequirementsFileError(f"cannot read {what} {path}: {exc.strerror}") from exc
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = "a directory" if stat.S_ISDIR(mode) else "not a regular file"
        raise RequirementsFileError(f"cannot read {what} {path}: {kind}")
    with os.fdopen(fd, "rb") as handle:
        try:
            data = handle.read(MAX_INPUT_BYTES + 1)
        except OSError as exc:
            raise RequirementsFileError(f"cannot read {what} {path}: {exc.strerror}") from exc
    if len(data) > MAX_INPUT_BYTES:
        raise RequirementsFileError(
            f"{what} {path} is larger than the {MAX_INPUT_BYTES // 2**20} MiB input limit"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RequirementsFileError(f"{path} is not UTF-8 text: {exc}") from exc


def parse_requirements(path: Path, *, constraint: bool = False) -> RequirementSet:
    """Parse the requirements file at *path* (and everything it includes)."""
    return _parse_file(path.absolute(), constraint=constraint, stack=())


def parse_requirements_text(text: str, origin: Path, *, constraint: bool = False) -> RequirementSet:
    """Parse *text* as if it were the file *origin* (includes resolve relative to it)."""
    return _parse(text, origin.absolute(), constraint=constraint, stack=(origin.absolute(),))


def _parse_file(path: Path, *, constraint: bool, stack: tuple[Path, ...]) -> RequirementSet:
    if path in stack:
        chain = " -> ".join(str(p) for p in (*stack, path))
        raise RequirementsFileError(f"requirements files include each other in a cycle: {chain}")
    text = read_input(path, "constraints file" if constraint else "requirements file")
    return _parse(text, path, constraint=constraint, stack=(*stack, path))


def _parse(text: str, path: Path, *, constraint: bool, stack: tuple[Path, ...]) -> RequirementSet:
    result = RequirementSet()
    for number, line in _logical_lines(text):
        if not line:
            continue
        where = f"{path}:{number}"
        line = _expand_env(line)
        if line.startswith("-"):
            _option_line(line, where, path, result, constraint=constraint, stack=stack)
        else:
            item = _requirement_line(line, where)
            (result.constraints if constraint else result.requirements).append(item)
    return result


def _option_line(
    line: str,
    where: str,
    path: Path,
    result: RequirementSet,
    *,
    constraint: bool,
    stack: tuple[Path, ...],
) -> None:
    try:
        tokens = shlex.split(line)
    except ValueError as exc:
        raise RequirementsFileError(f"{where}: cannot split options: {exc}") from exc
    position = 0
    while position < len(tokens):
        option = tokens[position]
        if option == "--pre":
            result.prereleases = True
            position += 1
            continue
        if option == "--require-hashes":
            result.require_hashes = True
            position += 1
            continue
        if option in _IGNORED_FLAGS:
            why = _WHY_IGNORED[_IGNORED_FLAGS[option]]
            result.warnings.append(f"{where}: ignoring {option}: {why}")
            position += 1
            continue
        name, value, position = _split_option(tokens, position)
        if name in ("-e", "--editable"):
            raise RequirementsFileError(
                f"{where}: editable requirements (-e {value}) are not supported: Satchel caches "
                "packages from indexes; install editables with pip or uv"
            )
        if name in ("-r", "--requirement", "-c", "--constraint"):
            if value is None:
                raise RequirementsFileError(f"{where}: {name} needs a file name")
            if "://" in value:
                raise RequirementsFileError(
                    f"{where}: {name} {value}: including a file by URL is not supported; "
                    "download it and include the local copy"
                )
            nested = _parse_file(
                (path.parent / value).absolute(),
                constraint=constraint or name in ("-c", "--constraint"),
                stack=stack,
            )
            result.extend(nested)
            continue
        if name in ("--only-binary", "--no-binary"):
            if not value:
                raise RequirementsFileError(
                    f"{where}: {name} needs a value (:all:, :none: or project names)"
                )
            result.format_options.append((name, value, where))
            continue
        if name in _IGNORED_WITH_VALUE:
            why = _WHY_IGNORED[_IGNORED_WITH_VALUE[name]]
            result.warnings.append(f"{where}: ignoring {name} {value or ''}: {why}".rstrip())
            continue
        raise RequirementsFileError(f"{where}: unknown or unsupported option {name}")


def _requirement_line(line: str, where: str) -> ParsedRequirement:
    tokens = line.split()
    split_at = next((i for i, t in enumerate(tokens) if t.startswith("--")), len(tokens))
    spec, options = " ".join(tokens[:split_at]), tokens[split_at:]
    hashes: set[str] = set()
    position = 0
    while position < len(options):
        name, value, position = _split_option(options, position)
        if name != "--hash" or value is None:
            raise RequirementsFileError(
                f"{where}: only --hash may follow a requirement on its line, not {name}"
            )
        algorithm, _, digest = value.partition(":")
        if algorithm != "sha256" or not re.fullmatch(r"[0-9a-fA-F]{64}", digest):
            raise RequirementsFileError(
                f"{where}: --hash={value}: only sha256:<64 hex digits> hashes are supported"
            )
        hashes.add(digest.lower())
    if _looks_like_path_or_url(spec):
        raise RequirementsFileError(
            f"{where}: {spec!r} is a path or URL; Satchel resolves names from its configured "
            "indexes only"
        )
    try:
        requirement = Requirement(spec)
    except InvalidRequirement as exc:
        raise RequirementsFileError(f"{where}: invalid requirement {spec!r}: {exc}") from exc
    if requirement.url:
        raise RequirementsFileError(
            f"{where}: direct reference {spec!r} is not supported; Satchel resolves names from "
            "its configured indexes only"
        )
    return ParsedRequirement(requirement, frozenset(hashes), where)


# --- pyproject.toml -------------------------------------------------------------------------


def _requirements(values: Iterable[Any], where: str) -> list[Requirement]:
    out = []
    for value in values:
        if not isinstance(value, str):
            raise RequirementsFileError(f"{where}: expected a requirement string, got {value!r}")
        try:
            out.append(Requirement(value))
        except InvalidRequirement as exc:
            raise RequirementsFileError(f"{where}: invalid requirement {value!r}: {exc}") from exc
    return out


def _group(
    groups: Mapping[str, Any], name: str, path: Path, stack: tuple[str, ...]
) -> list[Requirement]:
    """PEP 735: a group's requirements, following ``{include-group = ...}`` (no cycles)."""
    by_norm = {canonicalize_name(k): k for k in groups}
    key = by_norm.get(canonicalize_name(name))
    if key is None:
        raise RequirementsFileError(
            f"{path}: no dependency group {name!r} (groups: {', '.join(sorted(groups)) or 'none'})"
        )
    if key in stack:
        raise RequirementsFileError(
            f"{path}: dependency groups include each other: {' -> '.join((*stack, key))}"
        )
    out: list[Requirement] = []
    for item in groups[key]:
        if isinstance(item, dict) and set(item) == {"include-group"}:
            out.extend(_group(groups, str(item["include-group"]), path, (*stack, key)))
        else:
            out.extend(_requirements([item], f"{path} [dependency-groups] {key}"))
    return out


def read_toml(path: Path) -> dict[str, Any]:
    """The TOML document at *path* (pyproject.toml, pylock.toml, uv.lock); a file that cannot be
    read or parsed is the user's input being wrong: `RequirementsFileError` naming it."""
    text = read_input(path)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RequirementsFileError(f"{path} is not valid TOML: {exc}") from exc


def read_pyproject(
    path: Path,
    *,
    extras: Iterable[str] = (),
    groups: Iterable[str] = (),
    project_dependencies: bool = True,
) -> list[Requirement]:
    """The requirements a ``pyproject.toml`` declares: dependencies, chosen extras and groups.

    Extras naming the project itself (``myproj[test]`` inside ``[all]``) are expanded in place,
    since the project is not on any index.
    """
    data = read_toml(path)
    project = data.get("project", {})
    dynamic = {str(d) for d in project.get("dynamic", [])}
    self_name = canonicalize_name(project["name"]) if "name" in project else None
    optional = {
        canonicalize_name(k): v for k, v in project.get("optional-dependencies", {}).items()
    }
    out: list[Requirement] = []
    wanted_extras = [canonicalize_name(e) for e in extras]
    if (project_dependencies and "dependencies" in dynamic) or (
        wanted_extras and "optional-dependencies" in dynamic
    ):
        raise RequirementsFileError(
            f"{path}: the project declares its dependencies as dynamic, so they are only known "
            "after building it; list them statically or use a requirements file"
        )
    if project_dependencies:
        out.extend(_requirements(project.get("dependencies", []), f"{path} [project]"))
    seen: set[str] = set()
    while wanted_extras:
        extra = wanted_extras.pop(0)
        if extra in seen:
            continue
        seen.add(extra)
        if extra not in optional:
            raise RequirementsFileError(
                f"{path}: no optional-dependencies extra {extra!r} "
                f"(extras: {', '.join(sorted(optional)) or 'none'})"
            )
        for req in _requirements(optional[extra], f"{path} [project.optional-dependencies]"):
            if self_name is not None and canonicalize_name(req.name) == self_name:
                wanted_extras.extend(canonicalize_name(e) for e in sorted(req.extras))
            else:
                out.append(req)
    dependency_groups = data.get("dependency-groups", {})
    for name in groups:
        out.extend(_group(dependency_groups, name, path, ()))
    return out
