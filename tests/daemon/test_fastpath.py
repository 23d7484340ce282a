"""The linear path of a resolve answers exactly what resolvelib alone answers (issue 15).

`fastpath.resolve_straight` replays resolvelib's choices without its per-round rescans, and
hands over to resolvelib at the first conflict. The specification is equivalence: on random
worlds of real wheels (versions, specifiers, extras, markers false on the target, conflicts,
cycles), a resolve gives the same pins, dependents, skipped requirements and notes, or the same
error, with the fast path as without it; and a world with no conflict never reaches resolvelib.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from satchel.daemon.errors import SatchelError
from satchel.daemon.resolver import resolve as resolver
from satchel.daemon.resolver.resolve import Resolution, resolve
from satchel.daemon.resolver.target import synthetic_target
from tests.support.memindex import MemoryIndex

LINUX = synthetic_target("3.11.4", ["manylinux_2_28_x86_64"])

#: Random worlds per run: each builds ~25 small wheels; enough to meet backtracking, extras,
#: markers and cycles many times over, few enough to keep the test in seconds.
WORLDS = 30


def _requirement(rng: random.Random, name: str, versions: int) -> str:
    v = rng.randint(1, versions)
    spec = rng.choice(["", "", f">={v}", f"<{v + 1}", f"=={v}.0", f"!={v}.0"])
    extra = "[x]" if rng.random() < 0.15 else ""
    marker = '; sys_platform == "win32"' if rng.random() < 0.1 else ""
    return f"{name}{extra}{spec}{marker}"


def _world(tmp_path: Path, seed: int) -> tuple[MemoryIndex, list[str]]:
    rng = random.Random(seed)
    index = MemoryIndex(tmp_path / str(seed))
    names = [f"p{i}" for i in range(rng.randint(4, 9))]
    counts = {name: rng.randint(1, 3) for name in names}
    for name in names:
        for v in range(1, counts[name] + 1):
            others = rng.sample(names, k=rng.randint(0, min(3, len(names))))
            requires = [_requirement(rng, o, counts[o]) for o in others if o != name]
            extra_dep = rng.choice(names)
            index.wheel(name, f"{v}.0", requires=requires, extras={"x": [extra_dep]})
    roots = [_requirement(rng, n, counts[n]) for n in rng.sample(names, k=rng.randint(1, 3))]
    return index, roots


def _answer(index: MemoryIndex, roots: list[str]) -> object:
    try:
        result: Resolution = resolve([Requirement(r) for r in roots], [], LINUX, index)
    except SatchelError as exc:
        return (type(exc).__name__, str(exc))
    return (result.pins, result.skipped, result.notes)


def test_random_worlds_resolve_alike_with_and_without_the_fast_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """issue 15: the fast path changes no answer, success or error."""
    base = random.randrange(1_000_000)
    print(f"seed base {base}")
    straight = 0
    for seed in range(base, base + WORLDS):
        index, roots = _world(tmp_path, seed)
        with_fast = _answer(index, roots)
        if isinstance(with_fast, tuple) and isinstance(with_fast[0], list):
            straight += 1
        monkeypatch.setattr(resolver, "resolve_straight", lambda *_a, **_k: None)
        alone = _answer(index, roots)
        monkeypatch.undo()
        assert with_fast == alone, f"seed {seed}, roots {roots}"
    assert straight > 0, f"seed base {base}: no world resolved at all"


@pytest.mark.parametrize("seed", [105858, 134795, 134797, 134803])
def test_worlds_resolvelib_alone_failed_on_are_answered(tmp_path: Path, seed: int) -> None:
    """Worlds the random test found where resolvelib itself broke, with no fast path: a cycle of
    projects the root no longer reached recursed until RecursionError (its result builder,
    `satchel.daemon.resolver._resolvelib`), and backjumping asked for a project nothing required
    any more (IndexError in the provider). Each now gets an answer: pins or a resolution error."""
    index, roots = _world(tmp_path, seed)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(resolver, "resolve_straight", lambda *_a, **_k: None)
        answer = _answer(index, roots)
    assert isinstance(answer, tuple)


def test_a_resolve_without_conflict_never_reaches_resolvelib(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """issue 15: a chain, extras, a marker false on the target and a cycle, all without
    resolvelib's loop; the rounds reported are one per pin and the final one."""
    index = MemoryIndex(tmp_path)
    index.wheel("app", "1.0", requires=["lib>=1", 'win; sys_platform == "win32"', "cyc"])
    index.wheel("lib", "1.0", requires=["base"], extras={"fast": ["speed"]})
    index.wheel("lib", "2.0", requires=["base<1"], extras={"fast": ["speed"]})
    index.wheel("base", "0.5")
    index.wheel("base", "1.5")
    index.wheel("speed", "1.0")
    index.wheel("cyc", "1.0", requires=["app"])

    def no_resolvelib(*_args: object, **_kwargs: object) -> object:
        raise AssertionError("resolvelib was asked")

    monkeypatch.setattr(resolver.resolvelib.Resolver, "resolve", no_resolvelib)
    result = resolve([Requirement("app"), Requirement("lib[fast]")], [], LINUX, index)

    pins = {pin.name: pin.version for pin in result.pins}
    assert pins == {"app": "1.0", "base": "0.5", "cyc": "1.0", "lib": "2.0", "speed": "1.0"}
    assert result.stats["rounds"] == 7  # app, base, cyc, lib, lib[fast], speed, and the last
    assert result.stats["backtracks"] == 0
