"""Real edits of a requirements set: each distinct, each resolvable from the set's corpus alone."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.variants import Edits, corpus_pins, edits, requirement_lines, same_result_edits
from tests.support.wheels import build_wheel


@pytest.fixture
def corpus(tmp_path: Path) -> list[Path]:
    out = tmp_path / "corpus"
    return [
        build_wheel(out, "Tiny_App", "1.0", requires=["tiny-lib", "tiny-extra"]),
        build_wheel(out, "tiny-lib", "3.0"),
        build_wheel(out, "tiny-extra", "0.2"),
        build_wheel(out, "tiny-cli", "2.0", requires=["tiny-lib"]),
    ]


@pytest.fixture
def requirements(tmp_path: Path) -> Path:
    path = tmp_path / "req" / "stack.txt"
    path.parent.mkdir()
    (path.parent / "more.txt").write_text("tiny-cli\n")
    path.write_text("# a stack\ntiny-app  # the app\n\n-r more.txt\n")
    return path


def test_lines_drop_comments_and_name_nested_files_by_absolute_path(requirements: Path) -> None:
    assert requirement_lines(requirements) == [
        "tiny-app",
        f"-r {requirements.parent.resolve() / 'more.txt'}",
    ]


def test_pins_are_the_corpus_projects_at_their_versions(corpus: list[Path]) -> None:
    assert corpus_pins(corpus) == [
        "tiny-app==1.0",
        "tiny-cli==2.0",
        "tiny-extra==0.2",
        "tiny-lib==3.0",
    ]


def test_same_result_edits_keep_every_line_and_add_pins(corpus: list[Path]) -> None:
    lines = ["tiny-app", "tiny-cli"]
    found = list(same_result_edits(lines, corpus_pins(corpus)))
    assert len(found) == 4 + 6 + 2 * 4  # every pin, every pair, every bound
    assert all(edit[:2] == lines for edit in found)
    assert found[0] == ["tiny-app", "tiny-cli", "tiny-app==1.0"]


def test_every_edit_is_distinct_and_later_ones_drop_a_line(corpus: list[Path]) -> None:
    lines = ["tiny-app", "tiny-cli"]
    found = [tuple(e) for e in edits(lines, corpus_pins(corpus))]
    assert len(found) == len(set(found)) == 4 + 6 + 2 * 4 + 4 + 2 * 4
    assert ("tiny-cli", "tiny-app==1.0") in found  # "tiny-app" dropped, a pin added


def test_the_two_streams_never_hand_out_the_same_edit(
    tmp_path: Path, corpus: list[Path], requirements: Path
) -> None:
    handed = Edits(requirements, corpus, tmp_path / "edits")
    texts = [p.read_text() for p in iter(handed.same_result, None)]
    texts += [p.read_text() for p in iter(handed.any, None)]
    assert len(texts) == len(set(texts)) == handed.handed_out
    assert handed.any() is None


def test_an_edit_resolves_from_the_corpus_to_the_same_pins(
    tmp_path: Path, corpus: list[Path], requirements: Path
) -> None:
    """pip's own resolver, offline on the corpus: the edit asks for nothing the set lacks."""
    edit = Edits(requirements, corpus, tmp_path / "edits").same_result()
    assert edit is not None
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1")
    resolved = {}
    for req in (requirements, edit):
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed",
             "--no-index", "--find-links", str(corpus[0].parent), "-r", str(req)],
            env=env, capture_output=True, text=True, check=True,
        )  # fmt: skip
        resolved[req] = next(ln for ln in proc.stdout.splitlines() if "Would install" in ln)
    assert resolved[requirements] == resolved[edit]
    assert "tiny-extra-0.2" in resolved[edit]


def test_the_memory_stream_changes_the_result_first(
    tmp_path: Path, corpus: list[Path], requirements: Path
) -> None:
    handed = Edits(requirements, corpus, tmp_path / "edits")
    first = handed.varied()
    assert first is not None
    nested = f"-r {requirements.parent.resolve() / 'more.txt'}"
    assert first.read_text() == f"{nested}\ntiny-app==1.0\n"  # "tiny-app" dropped
    second = handed.varied()
    assert second is not None
    assert second.read_text() == "tiny-app\ntiny-app==1.0\n"  # the nested file dropped
