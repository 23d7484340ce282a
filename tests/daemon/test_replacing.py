"""Files a wheel replaces that no replaced distribution lists (`installing._replacing`).

Scenario (review of c809a2a, 2026-12-05): a fork installed over the distribution it forks
(``tensorflow-cpu`` over ``tensorflow``, ``psycopg2-binary`` over ``psycopg2``, ``pillow-simd``
over ``pillow``) replaces every file of the other, none of which its own removals list. Each
such file was looked up in the wheel's whole file list again (`replaced_by_other_bytes` walked
``unit.links`` from the start for every one): a wheel of N files cost N * N / 2 steps in the
planning (20,000 files: 200 million). Counted here, not timed: the planning visits each of
the wheel's files once, however many it replaces.
"""

from __future__ import annotations

from pathlib import Path

from satchel.daemon.installing._placement import Unit
from satchel.daemon.installing.installer import _Listing, _Plan, _plan_dirs

FILES = 300


class _CountingLinks(list[tuple[str, str, int, None]]):
    """A unit's file list that counts the entries visited (iteration and indexing)."""

    visited = 0

    def __iter__(self):  # type: ignore[no-untyped-def]
        for item in super().__iter__():
            _CountingLinks.visited += 1
            yield item


def _unit(tmp_path: Path, same: set[int]) -> tuple[Unit, Path]:
    tree, env = tmp_path / "tree", tmp_path / "env" / "pkg"
    tree.mkdir()
    env.mkdir(parents=True)
    unit = Unit(label="fork-1.0-py3-none-any.whl", sha256="0" * 64, tree=f"{tree}/", stamped=False)
    links = _CountingLinks()
    for i in range(FILES):
        (tree / f"m{i}.py").write_text("new\n")
        (env / f"m{i}.py").write_text("new\n" if i in same else "old\n")
        links.append((f"m{i}.py", f"{env}/m{i}.py", 0o644, None))
    unit.links = links  # type: ignore[assignment]
    return unit, env


def test_each_replaced_file_is_reported_in_order_and_identical_bytes_are_not(
    tmp_path: Path,
) -> None:
    unit, env = _unit(tmp_path, same={0, 7})
    plan = _Plan(units=[unit])

    _plan_dirs(plan, _Listing(gone=set()))

    expected = [f"{unit.label}: {env}/m{i}.py" for i in range(FILES) if i not in (0, 7)]
    assert plan.overwritten == expected
    assert len(plan.moves) == FILES  # every existing file is moved aside, reported or not


def test_a_wheel_replacing_every_file_of_another_visits_each_of_its_files_a_bounded_number_of_times(
    tmp_path: Path,
) -> None:
    unit, _env = _unit(tmp_path, same=set())
    plan = _Plan(units=[unit])
    _CountingLinks.visited = 0

    _plan_dirs(plan, _Listing(gone=set()))

    assert len(plan.overwritten) == FILES
    # destinations() once, the comparison once: linear in the wheel's files (was FILES ** 2 / 2)
    assert _CountingLinks.visited <= 3 * FILES, _CountingLinks.visited
