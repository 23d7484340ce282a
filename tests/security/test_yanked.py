"""Issue 11.12, end to end: a yanked release chosen by an exact pin is said loudly, with the
index's reason, on resolve, install, run and prefetch (PEP 592); a range never selects one.

Real `satchel` and `satcheld`, a real index on 127.0.0.1 that marks ``yk`` 1.1 yanked with the
reason "compromised release" (in its JSON and HTML pages, as PEP 592/691 say).
"""

from __future__ import annotations

import html
import json
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.world import World
from tests.support.wheels import build_wheel

REASON = "compromised release"
WARNING = f"warning: yk 1.1 (yk-1.1-py3-none-any.whl) is yanked from index 'internal': {REASON}"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path)
    w.index.add(build_wheel(w.dist, "yk", "1.0", console_scripts={"yk": "yk:main"}))
    w.index.add(
        build_wheel(
            w.dist,
            "yk",
            "1.1",
            console_scripts={"yk": "yk:main"},
            files={"yk/__init__.py": "def main():\n    print('yk 1.1')\n"},
        )
    )
    w.index.yank("yk-1.1-py3-none-any.whl", REASON)
    try:
        yield w
    finally:
        w.close()


def test_resolve_of_an_exact_pin_warns_with_the_reason(world: World) -> None:
    """issue 11.12: `resolve yk==1.1` pins the yanked file (only an exact pin may) and says so
    on stderr and in the notes of `--format json`."""
    result = world.ok("resolve", "yk==1.1")
    assert "yk==1.1" in result.stdout
    assert WARNING in result.stderr, result.stderr
    answer = json.loads(world.ok("resolve", "yk==1.1", "--format", "json").stdout)
    assert any(WARNING in note for note in answer["notes"]), answer


def test_install_and_prefetch_of_an_exact_pin_warn(world: World) -> None:
    """issue 11.12: install (and prefetch) of the yanked pin warn with the reason; the install
    itself goes ahead, as PEP 592 allows for an exact pin."""
    venv = world.root / "venv"
    result = world.ok("install", "--venv", str(venv), "yk==1.1")
    assert WARNING in result.stderr, result.stderr
    answer = json.loads(world.ok("install", "--venv", str(venv), "yk==1.1", "--json").stdout)
    assert any(WARNING in note for note in answer["notes"]), answer
    assert world.pip_list(venv)["yk"] == "1.1"
    assert WARNING in world.ok("prefetch", "yk==1.1").stderr


def test_run_of_an_exact_pin_warns(world: World) -> None:
    """issue 11.12: `run --from yk==1.1` warns before the tool runs, also when its cached
    environment is reused."""
    for _ in range(2):
        result = world.ok("run", "--from", "yk==1.1", "yk")
        assert "yk 1.1" in result.stdout
        assert WARNING in result.stderr, result.stderr


def test_a_range_never_selects_a_yanked_release(world: World) -> None:
    """issue 11.12 (PEP 592): `yk>=1.0` gets 1.0 although 1.1 is newer, with no warning;
    `yk>=1.1` and `yk~=1.1` have nothing to choose; `===1.1` is exact and warns."""
    result = world.ok("resolve", "yk>=1.0")
    assert "yk==1.0" in result.stdout and "yanked" not in result.stderr
    for spec in ("yk>=1.1", "yk~=1.1", "yk==1.*,>=1.1"):
        failed = world.satchel("resolve", spec)
        assert failed.returncode != 0, (spec, failed.stdout)
        assert "internal error" not in failed.stderr
    assert WARNING in world.ok("resolve", "yk===1.1").stderr


def test_a_yank_reason_cannot_drive_the_terminal(tmp_path: Path) -> None:
    """issue 11.12 (hostile index): the yank reason is the index's free text, printed on the
    user's terminal. A reason carrying an OSC 52 sequence (writes the clipboard in many
    terminals), a screen clear, a colour, a carriage return, a right-to-left override and
    10,000 more characters is shown with every control character escaped, cut short, and the
    warning stays one line. (Before: printed raw.)"""
    w = World(tmp_path)
    try:
        w.index.add(build_wheel(w.dist, "yk", "1.1"))
        hostile = "bad\x1b]52;c;cHduZWQ=\x07\x1b[2J\x1b[31mred\rover\u202eevil" + "x" * 10_000
        w.index.yank("yk-1.1-py3-none-any.whl", hostile)
        result = w.ok("resolve", "yk==1.1")
        warning = next(line for line in result.stderr.splitlines() if line.startswith("warning:"))
        print(warning)
        assert "is yanked from index 'internal': bad\\x1b]52;c;cHduZWQ=\\x07\\x1b[2J" in warning
        assert "\\rover\\u202eevil" in warning
        assert not any(not char.isprintable() for char in result.stderr.replace("\n", ""))
        assert len(warning) < 600 and warning.endswith("pinned exactly"), warning
    finally:
        w.close()


def test_a_yank_reason_relayed_by_the_local_index_cannot_drive_pips_terminal(
    tmp_path: Path,
) -> None:
    """issue 11.12 through the local index: pip prints the yank reason it reads from the page
    ("Reason for being yanked: ..."). The local index relays it as Satchel shows it: control
    characters escaped, cut at 200 characters, in the JSON and the HTML page alike. (Before:
    relayed as the index gave it.)"""
    w = World(tmp_path)
    try:
        w.index.add(build_wheel(w.dist, "yk", "1.1"))
        w.index.yank("yk-1.1-py3-none-any.whl", "bad\x1b[2J\x1b]52;c;eA==\x07" + "x" * 10_000)
        w.ok("resolve", "yk==1.1")
        exports = w.ok("env", "--shell", "bash").stdout
        base = re.search(r"PIP_INDEX_URL='?(http://[^'\s]+)", exports)
        assert base is not None, exports
        for accept in ("application/vnd.pypi.simple.v1+json", "text/html"):
            request = urllib.request.Request(base[1] + "yk/", headers={"Accept": accept})
            with urllib.request.urlopen(request, timeout=30) as response:
                body = response.read().decode()
            if accept.endswith("json"):
                (reason,) = [f["yanked"] for f in json.loads(body)["files"]]
            else:
                reason = html.unescape(re.search(r'data-yanked="([^"]*)"', body)[1])  # type: ignore[index]
            assert reason.startswith("bad\\x1b[2J\\x1b]52;c;eA==\\x07x"), repr(reason[:80])
            assert reason.isprintable() and len(reason) < 300, repr(reason[:80])
    finally:
        w.close()
