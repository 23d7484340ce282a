"""Create a virtual environment in under a millisecond, without pip.

Measured here as whole processes: ``python -m venv --without-pip`` ~20 ms, ``uv venv`` ~50 ms;
both mostly start-up and interpreter discovery. A venv is only a ``pyvenv.cfg`` (``home``,
``version``, ``include-system-site-packages``), ``bin/python*`` symlinks to the base
interpreter, an empty ``site-packages`` and the activate scripts, so `create_venv` writes those
directly (~0.8 ms in the daemon). The only thing we must ask the interpreter is its identity and
install scheme, which `query_interpreter` does once per interpreter binary (~14 ms, then cached
by path, size and mtime) so the daemon never spawns a process per install.

The layout is the stdlib's own (the ``venv`` sysconfig scheme of the *target* interpreter, the
activate templates from the target's own ``venv`` package), so pip (``--python``), uv
(``uv pip --python``) and the interpreter's ``site`` module all recognise the result.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

from satchel.daemon.errors import InstallError, InvalidParams
from satchel.daemon.installing.childenv import scrubbed_environ
from satchel.daemon.installing.installer import Scheme
from satchel.daemon.storage.fsutil import disk_full_guard

__all__ = ["Interpreter", "create_venv", "query_interpreter", "venv_scheme"]

_PLACEHOLDER = "/__satchel_venv_base__"

_QUERY = f"""
import json, os, sys, sysconfig
names = sysconfig.get_scheme_names()
scheme = "venv" if "venv" in names else ("nt" if os.name == "nt" else "posix_prefix")
base = {_PLACEHOLDER!r}
paths = sysconfig.get_paths(scheme, vars={{
    "base": base, "platbase": base, "installed_base": base, "installed_platbase": base}})
print(json.dumps({{
    "base_executable": getattr(sys, "_base_executable", sys.executable),
    "version": "%d.%d.%d" % sys.version_info[:3],
    "implementation": sys.implementation.name,
    "cache_tag": sys.implementation.cache_tag,
    "stdlib": sysconfig.get_paths()["stdlib"],
    "is64": sys.maxsize > 2**32,
    "paths": {{k: v for k, v in paths.items()
               if k in ("purelib", "platlib", "scripts", "data", "include")}},
}}))
"""


@dataclass(frozen=True)
class Interpreter:
    """What a venv needs to know about its base interpreter (queried once, then cached)."""

    base_executable: str
    version: str  # "3.11.7"
    implementation: str
    cache_tag: str
    stdlib: str
    is64: bool
    paths: dict[str, str]  # scheme paths relative to the venv root

    @property
    def minor(self) -> str:
        return ".".join(self.version.split(".")[:2])


_cache: dict[tuple[str, str, int, int], Interpreter] = {}
_cache_lock = threading.Lock()


def query_interpreter(python: Path | str) -> Interpreter:
    """Identity and venv scheme of *python*; one subprocess per path, then memoised.

    Keyed by the path as given as well as the binary it names: a symlink's ``base_executable``
    is the link itself, so a venv made from ``~/.pyenv/versions/X.Y.Z/bin/python`` links to
    that path, never to another alias of the same binary that happened to be asked first.
    """
    resolved = os.path.realpath(python)
    try:
        st = Path(resolved).stat()
    except OSError as exc:
        raise InstallError(f"no interpreter at {python}: {exc.strerror}") from exc
    key = (str(Path(python).absolute()), resolved, st.st_size, st.st_mtime_ns)
    with _cache_lock:
        cached = _cache.get(key)
    if cached is not None:
        return cached
    env = scrubbed_environ()  # no PYTHON* variables, no credentials (`childenv`)
    try:
        result = subprocess.run(
            [os.fspath(python), "-I", "-S", "-c", _QUERY],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
            env=env,
        )
    except OSError as exc:
        raise InvalidParams(
            f"--python {python} is not an interpreter Satchel can run: {exc.strerror or exc}",
            details={"python": str(python)},
        ) from exc
    except subprocess.TimeoutExpired as exc:
        raise InvalidParams(f"--python {python}: the interpreter did not answer in 30 s") from exc
    if result.returncode != 0:
        raise InvalidParams(
            f"--python {python} is not a Python interpreter Satchel can use (it failed to "
            f"describe itself, exit {result.returncode}): {result.stderr[-300:].strip()}",
            details={"python": str(python)},
        )
    try:
        raw = json.loads(result.stdout)
        relative = {
            key: os.path.relpath(value, _PLACEHOLDER) for key, value in raw.pop("paths").items()
        }
        info = Interpreter(paths=relative, **raw)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise InvalidParams(
            f"--python {python} gave an unreadable description of itself: {exc}",
            details={"python": str(python)},
        ) from exc
    with _cache_lock:
        _cache[key] = info
    return info


def venv_scheme(path: Path, interpreter: Interpreter) -> Scheme:
    """The install scheme of a venv at *path* for *interpreter*'s layout."""
    root = Path(os.path.abspath(path))  # noqa: PTH100 - normalise, never resolve symlinks
    paths = interpreter.paths
    return Scheme(
        purelib=root / paths["purelib"],
        platlib=root / paths["platlib"],
        scripts=root / paths["scripts"],
        data=root / paths["data"],
        headers=root / "include" / "site" / f"python{interpreter.minor}",
        interpreter=root / paths["scripts"] / "python",
    )


def _activate_scripts(root: Path, interpreter: Interpreter) -> dict[str, str]:
    """The target interpreter's own activate templates with the placeholders filled in."""
    templates = Path(interpreter.stdlib) / "venv" / "scripts"
    name = root.name
    # 3.12 moved the parentheses from the substituted prompt into the templates.
    prompt = name if tuple(map(int, interpreter.minor.split("."))) >= (3, 12) else f"({name}) "
    bin_name = interpreter.paths["scripts"]
    values = {
        "__VENV_DIR__": os.fspath(root),
        "__VENV_NAME__": name,
        "__VENV_PROMPT__": prompt,
        "__VENV_BIN_NAME__": bin_name,
        "__VENV_PYTHON__": os.fspath(root / bin_name / "python"),
    }
    scripts: dict[str, str] = {}
    for sub in ("common", "posix"):
        try:
            entries = sorted((templates / sub).iterdir())
        except FileNotFoundError:
            continue
        for template in entries:
            try:
                text = template.read_text("utf-8")
            except (UnicodeDecodeError, IsADirectoryError):
                continue
            for placeholder, value in values.items():
                text = text.replace(placeholder, value)
            scripts[template.name] = text
    return scripts


def create_venv(path: Path, python: Path | str) -> Scheme:
    """Create a venv at *path* for *python* (no pip) and return its install scheme.

    Refuses to overwrite anything but an empty directory, so a typo never clobbers a project.
    A venv that cannot be finished (a full disk) is removed again: the directory when this call
    created it, its contents when it was an empty directory before. ENOSPC/EDQUOT is `DiskFull`
    naming the venv; any other failure to write it is an `InstallError` naming it.
    """
    interpreter = query_interpreter(python)
    root = Path(os.path.abspath(path))  # noqa: PTH100 - normalise, never resolve symlinks
    existed = root.exists()
    if existed and (not root.is_dir() or any(root.iterdir())):
        raise InstallError(f"{root} exists and is not an empty directory")
    top = root  # the outermost directory this call creates (parents of the venv included)
    while not existed and not top.parent.exists():
        top = top.parent
    try:
        with disk_full_guard(root):
            return _write_venv(root, interpreter)
    except BaseException as exc:
        _discard(root if existed else top, keep_dir=existed)
        if isinstance(exc, OSError):
            raise InstallError(f"cannot create the virtual environment {root}: {exc}") from exc
        raise


def _discard(root: Path, *, keep_dir: bool) -> None:
    """Remove what `create_venv` wrote: *root* itself, or only its contents (*keep_dir*)."""
    if not keep_dir:
        shutil.rmtree(root, ignore_errors=True)
        return
    for child in list(root.iterdir()) if root.is_dir() else []:
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                child.unlink()


def _write_venv(root: Path, interpreter: Interpreter) -> Scheme:
    scheme = venv_scheme(root, interpreter)
    bin_dir = scheme.scripts
    for directory in (bin_dir, scheme.purelib, scheme.platlib, root / "include"):
        directory.mkdir(parents=True, exist_ok=True)
    lib = root / "lib"
    if interpreter.is64 and os.name == "posix" and not (root / "lib64").exists() and lib.is_dir():
        (root / "lib64").symlink_to("lib")
    base = interpreter.base_executable
    (bin_dir / "python").symlink_to(base)
    major = interpreter.minor.split(".")[0]
    for alias in (f"python{major}", f"python{interpreter.minor}"):
        if alias != "python":
            (bin_dir / alias).symlink_to("python")
    cfg = (
        f"home = {Path(base).parent}\n"
        "include-system-site-packages = false\n"
        f"version = {interpreter.version}\n"
        f"executable = {os.path.realpath(base)}\n"
        "installer = satchel\n"
    )
    (root / "pyvenv.cfg").write_text(cfg, "utf-8")
    for name, text in _activate_scripts(root, interpreter).items():
        (bin_dir / name).write_text(text, "utf-8")
    (root / ".gitignore").write_text("# created by satchel\n*\n", "utf-8")
    return scheme
