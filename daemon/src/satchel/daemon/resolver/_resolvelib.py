"""resolvelib, with its result builder made safe from dependency cycles.

resolvelib (1.2.1, and its main branch) builds the result by asking, for each pinned project,
whether a chain of dependents leads back to the root (``_has_route_to_root``). It recurses with
no memory of the projects it is already visiting, so a cycle of projects that the root no longer
reaches (A needs B, B needs A, and the version that needed A was backtracked away) recurses until
the interpreter gives up: a ``RecursionError`` where an answer was ready. Real projects do form
such cycles (sphinx and its sphinxcontrib-* extensions, for one), and the fast path's random
worlds found it (`_fastpath`, tests/daemon/test_fastpath.py).

`patch` replaces that one function with the same search plus the set of keys on the current path:
a key met again on its own path is a dead end, not a route. Everything else is resolvelib's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from resolvelib.resolvers import resolution

__all__ = ["has_route_to_root", "patch"]


def has_route_to_root(
    criteria: Mapping[Any, Any],
    key: Any,
    all_keys: dict[int, Any],
    connected: set[Any],
    visiting: set[Any] | None = None,
) -> bool:
    """resolvelib's ``_has_route_to_root``: whether *key* is reached from the root, noting in
    *connected* every key found so; a key already on the path (*visiting*) is no route."""
    if key in connected:
        return True
    if key not in criteria:
        return False
    if visiting is None:
        visiting = set()
    if key in visiting:
        return False
    visiting.add(key)
    try:
        for parent in criteria[key].iter_parent():
            try:
                parent_key = all_keys[id(parent)]
            except KeyError:
                continue
            if parent_key in connected or has_route_to_root(
                criteria, parent_key, all_keys, connected, visiting
            ):
                connected.add(key)
                return True
        return False
    finally:
        visiting.discard(key)


def patch() -> None:
    """Put `has_route_to_root` in resolvelib (idempotent; a resolvelib without the function,
    a future one, is left alone)."""
    if hasattr(resolution, "_has_route_to_root"):
        resolution._has_route_to_root = has_route_to_root
