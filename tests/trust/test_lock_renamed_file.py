"""A lock's file must be a file of the package the lock lists it under.

Scenario (review of 67f8406, 2026-12-05): ``internal-tool`` is bound to the private index.
A ``pylock.toml`` from a pull request lists, under the public project ``evil`` (bound to, or
first served by, the public index), the wheel of the public impostor
``internal_tool-9.0-py3-none-any.whl``. The origin checks ran for ``evil``, whose index vouched
for the file (its URL on the public index's own origin and path), and the install put
``internal-tool 9.0`` into the venv, exit 0, past the binding that holds ``internal-tool`` to
the private index. A project page never lists another project's file (refused as it is read);
a lock listing one is refused the same way, naming both, with nothing fetched.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.twoindexes import World, open_world
from tests.trust.test_lock_origins import files_fetched, pylock

IMPOSTOR = "internal_tool-9.0-py3-none-any.whl"
EXIT_USAGE = 2


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with open_world(tmp_path) as w:
        yield w


@pytest.mark.parametrize("bound", [True, False], ids=["bound", "never-seen"])
def test_a_lock_cannot_install_a_project_under_another_projects_name(
    world: World, bound: bool
) -> None:
    w = world
    if bound:
        w.ok("resolve", "internal-tool")  # bound to the private index
    sha = w.public.sha256(IMPOSTOR)
    lock = pylock(w.root / "pylock.toml", ("evil", "1.0", w.public.file_url(IMPOSTOR), sha))
    venv = w.root / "venv"

    result = w.satchel("install", "--lock", str(lock), "--venv", str(venv), timeout=120)

    assert result.returncode == EXIT_USAGE, (result.stdout, result.stderr)
    assert IMPOSTOR in result.stderr and "internal-tool" in result.stderr, result.stderr
    assert "'evil'" in result.stderr, result.stderr
    assert files_fetched(w.public) == []
    assert not w.blob(sha).exists()
