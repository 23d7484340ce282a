"""A resolve without conflicts, in time linear in its size; resolvelib for everything else.

resolvelib re-checks every pin against every requirement at each round (``unsatisfied_names``,
``newly_unsatisfied_names``) and copies its whole state per round, so a resolve that never
backtracks still costs O(pins x requirements): 35 ms at 99 pins where 5 pins cost 1.5 ms
(issue 15). Most resolves never meet a conflict, and for those resolvelib's answer is fixed by
its choices alone: at each round, the unpinned identifier its provider prefers; for it, the
first candidate `find_matches` returns for the requirements known then.

`resolve_straight` makes those same choices with the same provider calls, in the same order,
but keeps what resolvelib recomputes: each identifier's requirements and matches, the unpinned
identifiers in a heap by preference (a preference only improves as requirements arrive, so the
newest entry of an identifier is its current one), and a pin is checked only against the
requirements added to it after it was pinned (with `is_satisfied_by` alone: what matches them
all still includes the pin). The moment anything happens that resolvelib would
answer by rejecting a candidate or re-pinning (no match for a requirement, a pin that a new
requirement excludes), it gives up and returns None: the caller runs resolvelib from the start,
so a conflict is resolved, and explained, exactly as before. The answer is shaped as resolvelib's
``Result`` is read by `resolver`: ``mapping`` and ``criteria[...].information``.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from resolvelib import AbstractProvider
from resolvelib.structs import RequirementInformation

__all__ = ["Criterion", "Straight", "resolve_straight"]

RT = TypeVar("RT")
CT = TypeVar("CT")


@dataclass
class Criterion(Generic[RT, CT]):
    """What is known of one identifier: who requires it, how, and what matches all of it."""

    information: list[RequirementInformation[RT, CT]] = field(default_factory=list)
    requirements: list[RT] = field(default_factory=list)
    #: The first candidate matching all of it (the only one a choice reads; see `add`).
    matches: Sequence[CT] = ()


@dataclass
class Straight(Generic[RT, CT]):
    """A finished resolve: pins by identifier (in pin order) and their criteria."""

    mapping: dict[str, CT]
    criteria: dict[str, Criterion[RT, CT]]

    @property
    def rounds(self) -> int:
        """The rounds resolvelib would have counted: one per pin and the last, empty one."""
        return len(self.mapping) + 1


class _Conflict(Exception):
    """Something only resolvelib's backtracking settles."""


def resolve_straight(
    provider: AbstractProvider[RT, CT, str],
    roots: Sequence[RT],
    *,
    first: str,
    preference: Callable[[str, Iterator[RequirementInformation[RT, CT]]], Any],
) -> Straight[RT, CT] | None:
    """Resolve *roots* as resolvelib would when nothing conflicts, else None.

    *first* is settled before anything else whenever it is unpinned (the provider's
    `narrow_requirement_selection` says so for ``<python>``); among the others the least
    *preference* (the provider's `get_preference` key, without backtrack causes) goes first.
    Exceptions of the provider (a missing project, metadata not cached) propagate.
    """
    criteria: dict[str, Criterion[RT, CT]] = {}
    mapping: dict[str, CT] = {}
    waiting: list[tuple[Any, str]] = []

    def add(requirement: RT, parent: CT | None) -> None:
        identifier = provider.identify(requirement)
        criterion = criteria.get(identifier)
        if criterion is None:
            criterion = criteria[identifier] = Criterion()
        criterion.information.append(RequirementInformation(requirement, parent))
        criterion.requirements.append(requirement)
        pin = mapping.get(identifier)
        if pin is not None:
            # The pin matched every earlier requirement; if it satisfies this one too, it is
            # among the matches of them all (a requirement only narrows them), so nothing
            # changes and nothing need be matched: for ``<python>``, required by nearly every
            # candidate, matching anew each time cost O(pins^2) specifier checks per resolve.
            if not provider.is_satisfied_by(requirement, pin):
                raise _Conflict
            return
        found = provider.find_matches(
            identifier,
            {identifier: iter(criterion.requirements)},
            {identifier: iter(())},
        )
        # resolvelib allows a callable or any iterable (the provider's makes candidates as they
        # are iterated). Only the first is ever chosen: the rest of an enormous project's
        # versions (90,000 of them, issue 11.6) are never made.
        best = next(iter(found() if callable(found) else found), None)
        if best is None:
            raise _Conflict
        criterion.matches = (best,)
        key = preference(identifier, iter(criterion.information))
        heapq.heappush(waiting, (key, identifier))

    def choose() -> str | None:
        if first in criteria and first not in mapping:
            return first
        while waiting:
            _preference, identifier = heapq.heappop(waiting)
            if identifier not in mapping:
                return identifier
        return None

    def settle() -> None:
        for root in roots:
            add(root, None)
        while (identifier := choose()) is not None:
            criterion = criteria[identifier]
            candidate = next(iter(criterion.matches))
            for dependency in provider.get_dependencies(candidate):
                add(dependency, candidate)
            mapping[identifier] = candidate
            # A dependency of the candidate on its own identifier came after the choice.
            if not all(provider.is_satisfied_by(r, candidate) for r in criterion.requirements):
                raise _Conflict

    try:
        settle()
    except _Conflict:
        return None
    return Straight(mapping, criteria)
