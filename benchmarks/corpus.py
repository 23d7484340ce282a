"""The benchmark corpus: real wheels, downloaded once, reused by every run.

Each requirement set is a requirements file in ``benchmarks/sets/`` (small, medium, large). Its
wheels are fetched once with the pip of the benchmark's own interpreter, from whatever index that
pip is configured with (``pip.conf``, ``PIP_INDEX_URL``, ...): the repository never names a
registry, and a user behind a mirror benchmarks against their mirror. Only wheels for this
interpreter and platform (``--only-binary :all:``), so nothing is built during a timed run.

Why a corpus instead of timing the network: cold rows against a remote index drift by tens of
percent between series, and the tools would be measuring the registry's CDN rather than
themselves. The corpus is then served from a loopback static index (``static_index.py``), the
same one for Satchel, uv and pip.

Layout: ``benchmarks/.corpus/<set>/*.whl`` plus a ``.complete`` stamp recording the requirements
text and interpreter the set was downloaded for; a changed requirements file or another
interpreter downloads the set again. A download goes to a temporary sibling directory and is
renamed into place only on success, so an interrupted download is never mistaken for a corpus.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "CORPUS_DIR",
    "SETS_DIR",
    "CorpusSet",
    "ensure_requirements",
    "ensure_set",
    "set_names",
]

BENCH_DIR = Path(__file__).resolve().parent
SETS_DIR = BENCH_DIR / "sets"
CORPUS_DIR = BENCH_DIR / ".corpus"
_STAMP = ".complete"


@dataclass(frozen=True)
class CorpusSet:
    """One requirement set and the directory holding its downloaded wheels."""

    name: str
    requirements: Path
    wheel_dir: Path

    @property
    def wheels(self) -> list[Path]:
        return sorted(self.wheel_dir.glob("*.whl"))

    @property
    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.wheels)


def set_names(sets_dir: Path = SETS_DIR) -> list[str]:
    """The requirement sets defined in the repository, smallest first by convention."""
    order = {"small": 0, "medium": 1, "large": 2}
    names = [p.stem for p in sets_dir.glob("*.txt")]
    return sorted(names, key=lambda n: (order.get(n, 99), n))


def _stamp_text(requirements: Path, python: str) -> str:
    """What a finished download was made for: the requirements bytes and the target interpreter.

    The interpreter's tag matters because wheels are platform- and version-specific: a corpus
    downloaded under another Python would not install here.
    """
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()
    tag = f"{sys.implementation.name}-{sys.version_info[0]}.{sys.version_info[1]}"
    return f"requirements-sha256={digest}\ninterpreter={tag}-{sysconfig.get_platform()}\n"


def ensure_set(
    name: str,
    *,
    sets_dir: Path = SETS_DIR,
    corpus_dir: Path = CORPUS_DIR,
    python: str = sys.executable,
    downloader: list[str] | None = None,
) -> CorpusSet:
    """Return the set's corpus, downloading it first if missing or stale.

    ``downloader`` replaces the ``pip download`` command prefix (the tests use
    ``pip download --no-index --find-links DIR`` so nothing leaves the machine); the
    requirements file and destination are appended to it.
    """
    requirements = sets_dir / f"{name}.txt"
    if not requirements.is_file():
        raise FileNotFoundError(f"no requirement set {name!r}: {requirements} does not exist")
    return _ensure(name, requirements, corpus_dir / name, corpus_dir, python, downloader)


def ensure_requirements(
    requirements: Path,
    *,
    corpus_dir: Path = CORPUS_DIR,
    python: str = sys.executable,
    downloader: list[str] | None = None,
) -> CorpusSet:
    """A set built from any requirements file (``run.py --requirements FILE``), like the named
    sets: downloaded once into ``<corpus>/file-<stem>-<digest>/``, where the digest of the
    file's absolute path keeps two files of one name apart. The set is named after the file."""
    path = requirements.resolve()
    if not path.is_file():
        raise FileNotFoundError(f"requirements file {requirements} does not exist")
    name = path.stem
    if name in set_names():
        name = f"{name}-file"  # never mistaken for the named set of the repository
    key = hashlib.sha256(str(path).encode()).hexdigest()[:10]
    return _ensure(
        name, path, corpus_dir / f"file-{path.stem}-{key}", corpus_dir, python, downloader
    )


def _ensure(
    name: str,
    requirements: Path,
    wheel_dir: Path,
    corpus_dir: Path,
    python: str,
    downloader: list[str] | None,
) -> CorpusSet:
    stamp = _stamp_text(requirements, python)
    stamp_file = wheel_dir / _STAMP
    if stamp_file.is_file() and stamp_file.read_text() == stamp:
        return CorpusSet(name, requirements, wheel_dir)

    corpus_dir.mkdir(parents=True, exist_ok=True)
    partial = corpus_dir / f".{wheel_dir.name}.partial"
    if partial.exists():
        shutil.rmtree(partial)
    prefix = downloader or [python, "-m", "pip", "download", "--only-binary", ":all:"]
    cmd = [*prefix, "--dest", str(partial), "-r", str(requirements)]
    print(f"corpus: downloading set {name!r} with: {' '.join(prefix[1:])}", file=sys.stderr)
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise RuntimeError(f"downloading set {name!r} failed (exit {proc.returncode}):\n{tail}")
    stray = [p.name for p in partial.iterdir() if not p.name.endswith(".whl")]
    if stray:
        raise RuntimeError(f"set {name!r}: pip left non-wheel files {stray}; wheels only")
    (partial / _STAMP).write_text(stamp)
    if wheel_dir.exists():
        shutil.rmtree(wheel_dir)
    partial.rename(wheel_dir)
    return CorpusSet(name, requirements, wheel_dir)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Download the benchmark corpus (once).")
    parser.add_argument("--sets", default=",".join(set_names()), help="comma-separated set names")
    args = parser.parse_args(argv)
    total = 0
    for name in args.sets.split(","):
        cs = ensure_set(name)
        total += cs.size_bytes
        print(f"{name}: {len(cs.wheels)} wheels, {cs.size_bytes / 1e6:.1f} MB")
    print(f"total: {total / 1e6:.1f} MB (shared wheels counted once per set)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
