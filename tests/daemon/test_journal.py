"""`journal`: an install's undo record lives in the daemon's own directory, is replayed after a
crash, and is never taken from the environment nor allowed to reach outside it (issue 11.1)."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import pytest

from satchel.daemon.installing._manifest import UnpackedWheel
from satchel.daemon.installing.installer import InstallItem, Scheme, installed_distributions
from satchel.daemon.installing.journal import JournalError, load, recover_all, write
from satchel.daemon.installing.venv import create_venv
from satchel.daemon.installing.wheel import unpack
from satchel.daemon.storage.fsutil import TEMP_PREFIX
from tests.support.installing import install, journals_of, kill_mid_install, recover
from tests.support.wheels import build_wheel


def _unpack(tmp_path: Path, version: str, files: dict[str, str]) -> UnpackedWheel:
    wheel = build_wheel(tmp_path / "wheels", "pkg", version, files=files)
    return unpack(wheel, hashlib.sha256(wheel.read_bytes()).hexdigest(), tmp_path / "unpacked")


def _snapshot(root: Path) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            rel = Path(dirpath, name).relative_to(root).as_posix()
            if rel != ".satchel.lock":
                found[rel] = Path(dirpath, name).read_bytes()
    return found


@pytest.fixture
def scheme(tmp_path: Path) -> Scheme:
    return create_venv(tmp_path / "venv", sys.executable)


def test_an_install_killed_mid_way_is_rolled_back_at_start_and_its_journal_removed(
    tmp_path: Path, scheme: Scheme
) -> None:
    install(scheme, [InstallItem(_unpack(tmp_path, "1.0", {"pkg/a.py": "1"}))])
    before = _snapshot(scheme.data)
    new = _unpack(tmp_path, "2.0", {f"pkg/m{i:02}.py": str(i) for i in range(20)})
    journals = journals_of(scheme)
    kill_mid_install(scheme, tmp_path / "unpacked", new.sha256)
    assert _snapshot(scheme.data) != before  # half-applied, as a user would find it
    assert len(list(journals.iterdir())) == 1
    assert not any(name.endswith(".json") for name in _snapshot(scheme.data))

    assert recover_all(journals) == [str(scheme.data)]

    assert _snapshot(scheme.data) == before
    assert list(journals.iterdir()) == []
    assert installed_distributions(scheme)["pkg"][0] == "1.0"


def test_a_finished_install_leaves_no_journal(tmp_path: Path, scheme: Scheme) -> None:
    install(scheme, [InstallItem(_unpack(tmp_path, "1.0", {"pkg/a.py": "1"}))])
    assert list(journals_of(scheme).iterdir()) == []
    assert recover_all(journals_of(scheme)) == []


def test_a_journal_is_private_to_the_user(tmp_path: Path, scheme: Scheme) -> None:
    journal = write(tmp_path / "journals", scheme.fields(), "0123456789ab", [], [], [])
    assert journal.file.stat().st_mode & 0o077 == 0


def test_a_journal_torn_before_its_rename_is_swept_at_start(tmp_path: Path) -> None:
    journals = tmp_path / "installing"
    journals.mkdir()
    (journals / f"{TEMP_PREFIX}{'0' * 32}-{'a' * 12}.json.0123456789ab").write_text('{"pre')
    assert recover_all(journals) == []
    assert list(journals.iterdir()) == []


def test_an_unreadable_journal_is_dropped(tmp_path: Path) -> None:
    journals = tmp_path / "installing"
    journals.mkdir()
    name = f"{'0' * 32}-{'a' * 12}.json"
    (journals / name).write_text("{not json")
    assert recover_all(journals) == []
    assert list(journals.iterdir()) == []


def _forge(journals: Path, scheme: Scheme, **changes: object) -> Path:
    """A journal as an attacker would write it if they could reach the daemon's directory."""
    journal = write(journals, scheme.fields(), "0123456789ab", [], [], [])
    body = json.loads(journal.file.read_bytes())
    body.update(changes)
    journal.file.write_text(json.dumps(body))
    return journal.file


@pytest.mark.parametrize(
    ("key", "path"),
    [
        ("created", "/etc/passwd"),
        ("created", "relative/path"),
        ("dirs", "{prefix}/../outside"),
        ("moves", "{prefix}/../../outside"),
        ("created", "{prefix}2/sibling-with-the-same-start"),
    ],
)
def test_a_journal_naming_a_path_outside_the_environment_is_refused(
    tmp_path: Path, scheme: Scheme, key: str, path: str
) -> None:
    file = _forge(journals_of(scheme), scheme, **{key: [path.format(prefix=scheme.data)]})
    with pytest.raises(JournalError, match=r"outside the environment|normalised"):
        load(file)


def test_a_journal_whose_name_does_not_match_its_environment_is_refused(
    tmp_path: Path, scheme: Scheme
) -> None:
    other = create_venv(tmp_path / "other", sys.executable)
    file = _forge(journals_of(scheme), scheme, prefix=str(other.data))
    with pytest.raises(JournalError, match="name does not match"):
        load(file)
    trash = _forge(journals_of(scheme), scheme, trash=str(scheme.data / ".satchel-trash-x"))
    with pytest.raises(JournalError, match="trash"):
        load(trash)


def test_replay_never_follows_a_symlink_out_of_the_environment(
    tmp_path: Path, scheme: Scheme
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "victim.txt"
    victim.write_text("precious")
    (scheme.data / "escape").symlink_to(outside)
    _forge(
        journals_of(scheme),
        scheme,
        created=[str(scheme.data / "escape" / "victim.txt")],
        dirs=[str(scheme.data / "escape")],
    )
    recover(scheme)
    assert victim.read_text() == "precious"


def test_trash_left_by_a_committed_install_is_purged_but_a_symlink_is_not_followed(
    tmp_path: Path, scheme: Scheme
) -> None:
    install(scheme, [InstallItem(_unpack(tmp_path, "1.0", {"pkg/a.py": "1"}))])
    leftover = scheme.data / ".satchel-trash-0123456789ab"
    leftover.mkdir()
    (leftover / "0").write_text("old file, committed away")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep")
    (scheme.data / ".satchel-trash-ba9876543210").symlink_to(outside)
    assert recover(scheme)
    assert not leftover.exists()
    assert not (scheme.data / ".satchel-trash-ba9876543210").exists()
    assert (outside / "keep.txt").read_text() == "keep"
