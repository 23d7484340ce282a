"""The benchmark corpus: downloaded once per set, never half-written, refreshed on change.

The real corpus comes from the user's configured index; here pip downloads from a local
find-links directory of generated wheels (``--no-index``), so nothing leaves the machine.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from benchmarks.corpus import ensure_set, set_names
from tests.support.wheels import build_wheel


@pytest.fixture
def source(tmp_path: Path) -> Path:
    out = tmp_path / "source"
    build_wheel(out, "tiny-app", "1.0", requires=["tiny-lib"])
    build_wheel(out, "tiny-lib", "3.0")
    return out


@pytest.fixture
def sets_dir(tmp_path: Path) -> Path:
    d = tmp_path / "sets"
    d.mkdir()
    (d / "small.txt").write_text("tiny-app\n")
    return d


@pytest.fixture(autouse=True)
def no_user_pip_config(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("PIP_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_DISABLE_PIP_VERSION_CHECK", "1")


def _downloader(find_links: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pip",
        "download",
        "-q",
        "--no-index",
        "--find-links",
        str(find_links),
    ]


def test_a_set_is_downloaded_with_its_dependencies(
    tmp_path: Path, source: Path, sets_dir: Path
) -> None:
    cs = ensure_set(
        "small", sets_dir=sets_dir, corpus_dir=tmp_path / "c", downloader=_downloader(source)
    )
    assert [p.name for p in cs.wheels] == [
        "tiny_app-1.0-py3-none-any.whl",
        "tiny_lib-3.0-py3-none-any.whl",
    ]
    assert cs.size_bytes == sum(p.stat().st_size for p in cs.wheels)


def test_a_complete_set_is_not_downloaded_again(
    tmp_path: Path, source: Path, sets_dir: Path
) -> None:
    corpus_dir = tmp_path / "c"
    ensure_set("small", sets_dir=sets_dir, corpus_dir=corpus_dir, downloader=_downloader(source))
    empty = tmp_path / "empty"
    empty.mkdir()
    again = ensure_set(
        "small", sets_dir=sets_dir, corpus_dir=corpus_dir, downloader=_downloader(empty)
    )
    assert len(again.wheels) == 2


def test_a_changed_requirements_file_downloads_the_set_again(
    tmp_path: Path, source: Path, sets_dir: Path
) -> None:
    corpus_dir = tmp_path / "c"
    ensure_set("small", sets_dir=sets_dir, corpus_dir=corpus_dir, downloader=_downloader(source))
    (sets_dir / "small.txt").write_text("tiny-lib\n")
    cs = ensure_set(
        "small", sets_dir=sets_dir, corpus_dir=corpus_dir, downloader=_downloader(source)
    )
    assert [p.name for p in cs.wheels] == ["tiny_lib-3.0-py3-none-any.whl"]


def test_a_failed_download_leaves_no_set_behind(
    tmp_path: Path, source: Path, sets_dir: Path
) -> None:
    (sets_dir / "small.txt").write_text("tiny-app\nnot-in-the-index\n")
    corpus_dir = tmp_path / "c"
    with pytest.raises(RuntimeError, match="downloading set 'small' failed"):
        ensure_set(
            "small", sets_dir=sets_dir, corpus_dir=corpus_dir, downloader=_downloader(source)
        )
    assert not (corpus_dir / "small").exists()


def test_an_unknown_set_names_the_missing_file(tmp_path: Path, sets_dir: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no requirement set 'huge'"):
        ensure_set("huge", sets_dir=sets_dir, corpus_dir=tmp_path / "c")


def test_repository_sets_are_ordered_small_to_large() -> None:
    assert set_names()[:3] == ["small", "medium", "large"]


def test_any_requirements_file_becomes_a_set_named_after_it(tmp_path: Path, source: Path) -> None:
    from benchmarks.corpus import ensure_requirements

    mine = tmp_path / "mystack.txt"
    mine.write_text("tiny-lib\n")
    cs = ensure_requirements(mine, corpus_dir=tmp_path / "c", downloader=_downloader(source))
    assert cs.name == "mystack"
    assert [p.name for p in cs.wheels] == ["tiny_lib-3.0-py3-none-any.whl"]
    clash = tmp_path / "small.txt"
    clash.write_text("tiny-lib\n")
    other = ensure_requirements(clash, corpus_dir=tmp_path / "c", downloader=_downloader(source))
    assert other.name == "small-file"  # never taken for the repository's own small set
    assert other.wheel_dir != cs.wheel_dir


def test_a_missing_requirements_file_is_named(tmp_path: Path) -> None:
    from benchmarks.corpus import ensure_requirements

    with pytest.raises(FileNotFoundError, match=r"nope\.txt does not exist"):
        ensure_requirements(tmp_path / "nope.txt", corpus_dir=tmp_path / "c")
