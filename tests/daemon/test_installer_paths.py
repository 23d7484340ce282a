"""`installer._unsafe_path`: the re-check of an unpacked wheel's manifest paths (and script
names) before anything is placed. It searches all paths at once, and skips the searches for
``.`` and ``..`` components when no component starts with a dot; every path it must refuse is
refused all the same, wherever it stands among the others (first, last, alone)."""

from __future__ import annotations

import itertools
import os
import random

from satchel.daemon.installing.installer import _unsafe_path

#: Every path of up to this many characters over ``a``, ``.`` and ``/`` is tried: enough for
#: each bad pattern at the start, in the middle and at the end of a path.
LONGEST = 5
PATHS = ["".join(p) for n in range(1, LONGEST + 1) for p in itertools.product("a./", repeat=n)]


def escapes(path: str) -> bool:
    """What must be refused: a leading ``/``, an empty component (but a trailing one, which
    names no other place), or a ``.`` or ``..`` component."""
    parts = path.split("/")
    return (
        path.startswith("/")
        or any(part in ("", ".", "..") for part in parts[:-1])
        or (parts[-1] in (".", ".."))
    )


def test_each_path_alone_is_refused_exactly_when_it_escapes() -> None:
    wrong = [p for p in PATHS if (_unsafe_path([p]) is not None) != escapes(p)]
    assert wrong == []
    assert all(_unsafe_path([p]) == p for p in PATHS if escapes(p))


def test_a_bad_path_anywhere_among_good_ones_is_the_one_named() -> None:
    seed = int(os.environ.get("SATCHEL_TEST_SEED", random.randrange(2**32)))
    print(f"seed {seed}")
    rng = random.Random(seed)
    good = [p for p in PATHS if not escapes(p)]
    bad = [p for p in PATHS if escapes(p)]
    for _ in range(20_000):
        paths = rng.sample(good, rng.randint(0, 4))
        unsafe = rng.sample(bad, rng.randint(0, 2))
        for path in unsafe:
            paths.insert(rng.randint(0, len(paths)), path)
        found = _unsafe_path(paths)
        if unsafe:
            assert found in unsafe, (paths, found)
        else:
            assert found is None, (paths, found)
