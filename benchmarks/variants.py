"""Real edits of a requirements set, each one a resolve no tool has seen before.

The issue's "never-resolved" row is a user editing their requirements: adding a pin, dropping a
line. A resolver with a result cache must then resolve again; a benchmark that sends the same
file twice measures the cache instead. `edits` yields distinct edits of a set, in this order:

1. **one pin added**: ``name==version`` of one wheel of the set's corpus (a project the set
   already resolves to, at the version it resolves to). The result is the same pins as the
   set's, so the work is comparable from trial to trial and from tool to tool;
2. **two pins added** (every pair), one bound added (``>=``/``<=`` the resolved version),
   then three pins (every triple);
3. **one line dropped** combined with one pin added (only when the set has two lines or more):
   a smaller result, so the daemon's result cache holds distinct results.

Every pin names a version the corpus holds, so every edit resolves against the corpus alone.
`same_result_edits` is (1) and (2) only: the timed row uses them, so trials do the same work.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from pathlib import Path

from packaging.utils import canonicalize_name, parse_wheel_filename

_NESTED = ("-r", "-c", "--requirement", "--constraint")

__all__ = [
    "Edits",
    "corpus_pins",
    "edits",
    "requirement_lines",
    "result_changing_edits",
    "same_result_edits",
]


def requirement_lines(requirements: Path) -> list[str]:
    """The file's lines that are requirements or options, comments and blanks dropped.

    A nested file (``-r other.txt``, ``-c pins.txt``) is named by its absolute path, since
    the edits are written elsewhere.
    """
    lines = []
    for raw in requirements.read_text().splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        option, _sep, value = line.partition(" ")
        if option in _NESTED and value.strip():
            line = f"{option} {(requirements.parent / value.strip()).resolve()}"
        lines.append(line)
    return lines


def corpus_pins(wheels: Sequence[Path]) -> list[str]:
    """``name==version`` for every project of the corpus, sorted, one per project."""
    pins: dict[str, str] = {}
    for wheel in wheels:
        name, version, _build, _tags = parse_wheel_filename(wheel.name)
        pins.setdefault(canonicalize_name(name), f"{canonicalize_name(name)}=={version}")
    return [pins[k] for k in sorted(pins)]


def same_result_edits(lines: Sequence[str], pins: Sequence[str]) -> Iterator[list[str]]:
    """Edits whose resolution is the unedited set's: one pin added, then every pair, then
    one bound (``>=`` or ``<=`` the resolved version: more edits for a set of few projects)."""
    for pin in pins:
        yield [*lines, pin]
    for a, b in itertools.combinations(pins, 2):
        yield [*lines, a, b]
    for op in (">=", "<="):
        for pin in pins:
            yield [*lines, pin.replace("==", op, 1)]


def edits(lines: Sequence[str], pins: Sequence[str]) -> Iterator[list[str]]:
    """Every edit of the module docstring, each text distinct, same-result edits first."""
    yield from same_result_edits(lines, pins)
    for trio in itertools.combinations(pins, 3):
        yield [*lines, *trio]
    yield from result_changing_edits(lines, pins)


def result_changing_edits(lines: Sequence[str], pins: Sequence[str]) -> Iterator[list[str]]:
    """One line dropped and one pin added, the dropped line changing from one edit to the next
    (nothing when the set has a single line): each result is the rest of the set plus the
    pinned project's closure, so many of them differ."""
    if len(lines) < 2:
        return
    for pin, dropped in itertools.product(pins, range(len(lines))):
        yield [*(line for i, line in enumerate(lines) if i != dropped), pin]


class Edits:
    """Hands out edits of one set as files, never the same edit twice across the whole run.

    The streams share the ``seen`` set: ``same_result`` for the timed row, ``any`` for the
    load under the ping probe, ``varied`` for the memory probe; a text handed out by one is
    skipped by the others.
    """

    def __init__(self, requirements: Path, wheels: Sequence[Path], directory: Path) -> None:
        lines = requirement_lines(requirements)
        pins = corpus_pins(wheels)
        self._same = same_result_edits(lines, pins)
        self._any = edits(lines, pins)
        self._varied = itertools.chain(result_changing_edits(lines, pins), edits(lines, pins))
        self._directory = directory
        self._seen: set[tuple[str, ...]] = set()
        self.handed_out = 0
        directory.mkdir(parents=True, exist_ok=True)

    def same_result(self) -> Path | None:
        """The next same-result edit as a file, or None when they are used up."""
        return self._next(self._same)

    def varied(self) -> Path | None:
        """The next edit, those that change the result first (the memory probe's: distinct
        results are what a result cache holds)."""
        return self._next(self._varied)

    def any(self) -> Path | None:
        """The next edit of any kind as a file, or None when every edit has been handed out."""
        return self._next(self._any)

    def _next(self, stream: Iterator[list[str]]) -> Path | None:
        for edit in stream:
            key = tuple(edit)
            if key in self._seen:
                continue
            self._seen.add(key)
            self.handed_out += 1
            path = self._directory / f"edit-{self.handed_out}.txt"
            path.write_text("\n".join(edit) + "\n")
            return path
        return None
