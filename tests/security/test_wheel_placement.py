"""Issue 11 (hostile packages): where a wheel's files land inside the environment.

A wheel's member names are checked for escaping the environment (`test_hostile_packages`), but
a name that stays inside can still take what is not the wheel's: a file named like one of the
venv's own directories (``.data/data/bin``, ``.data/data/lib``) or like another distribution's
package directory, or two scripts of one wheel with the same name. Each case: real `satchel
install` against a real daemon and a loopback index, into an environment that already holds
``good``; the install fails with a message naming the wheel and the cause, and the environment
(its ``bin/``, its interpreter, ``good``) is exactly as before.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.reliability.harness import env_state, rig_for, snapshot_tree
from tests.reliability.test_hostile_packages import Scene, _hostile_wheel
from tests.support.wheels import build_wheel

WHEEL = "evil-1.0-py3-none-any.whl"
EP = "evil-1.0.dist-info/entry_points.txt"


@pytest.fixture
def scene(tmp_path: Path) -> Iterator[Scene]:
    for rig in rig_for(tmp_path):
        yield Scene(rig)


def refused(scene: Scene, members: list[tuple[zipfile.ZipInfo | str, bytes]], *causes: str) -> str:
    """Serve ``evil`` with *members*, install it beside ``good``: refused naming the wheel and
    every one of *causes*; the environment unchanged and still working; the store whole."""
    scene.rig.index.add(_hostile_wheel(scene.rig.root / "dist-evil", members))
    bin_before = sorted(os.listdir(scene.venv / "bin"))
    result = scene.rig.satchel(
        "install", "good", "evil", "--venv", str(scene.venv), "--python", sys.executable
    )
    message = result.stderr
    assert result.returncode != 0, f"installed:\n{message}"
    assert WHEEL in message and all(cause in message for cause in causes), message
    assert "internal error" not in message and "Errno" not in message, message
    assert (scene.venv / "bin").is_dir() and sorted(os.listdir(scene.venv / "bin")) == bin_before
    assert env_state(scene.venv) == scene.before, "the environment changed"
    assert snapshot_tree(scene.sentinel) == scene.sentinel_before
    check = subprocess.run(
        [str(scene.venv / "bin" / "python"), "-c", "import good"], capture_output=True, check=False
    )
    assert check.returncode == 0, check.stderr
    scene.rig.assert_store_consistent()
    return message


@pytest.mark.parametrize("where", ["bin", "lib", "include"])
def test_a_file_cannot_replace_a_directory_of_the_venv(scene: Scene, where: str) -> None:
    """issue 11.11: ``evil-1.0.data/data/bin`` is a *file* at the venv's root, where ``bin/``
    (the interpreter, the activate scripts) is a directory; likewise ``lib`` and ``include``.
    (Before: ``bin/`` was moved to the trash and deleted, the file put in its place, exit 0:
    the venv had no interpreter left. With ``lib``: an install-failed "No such file or
    directory" naming a path under it.)"""
    (scene.venv / "include").mkdir(exist_ok=True)
    refused(scene, [(f"evil-1.0.data/data/{where}", b"not a directory\n")], "is a directory")


def test_a_file_cannot_replace_another_distributions_package(scene: Scene) -> None:
    """issue 11.11: ``evil-1.0.data/purelib/good`` is a file named like the package directory
    of ``good``, installed already: it would move ``good``'s whole package away. (Before: exit
    0, ``good`` no longer importable.)"""
    refused(scene, [("evil-1.0.data/purelib/good", b"x = 1\n")], "is a directory")


def test_an_entry_point_name_too_long_for_a_file_is_refused(scene: Scene) -> None:
    """issue 11.10: a console script named by 300 characters cannot be a file in ``bin/``.
    (Before: "internal error in install; see the daemon log".)"""
    name = "x" * 300
    refused(scene, [(EP, f"[console_scripts]\n{name} = evil:main\n".encode())], "longer than 255")


@pytest.mark.parametrize(
    "members",
    [
        [(EP, b"[console_scripts]\ntool = evil:main\n[gui_scripts]\ntool = evil:main\n")],
        [(EP, b"[console_scripts]\ntool = evil:main\n"), ("evil-1.0.data/scripts/tool", b"#!x\n")],
    ],
    ids=["console-and-gui", "entry-point-and-data-script"],
)
def test_two_scripts_of_one_wheel_with_one_name_are_refused(
    scene: Scene, members: list[tuple[zipfile.ZipInfo | str, bytes]]
) -> None:
    """issue 11.10: one wheel defines the script ``tool`` twice (a console and a GUI entry
    point, or an entry point and a ``.data/scripts/`` file). (Before: install-failed
    "[Errno 17] File exists: <venv>/bin/tool", a file that did not exist before the install.)"""
    refused(scene, members, "'tool'", "twice")


@pytest.mark.parametrize(
    "member", ["evil-1.0.data/data/bin/python/x", "evil-1.0.data/purelib/good/__init__.py/x"]
)
def test_a_directory_of_a_wheel_cannot_go_where_a_file_is(scene: Scene, member: str) -> None:
    """issue 11.10: the wheel needs ``bin/python`` (the interpreter's link) or ``good``'s
    ``__init__.py`` to be a directory. (Before: install-failed "[Errno 20] Not a directory",
    rolled back, without the cause.)"""
    refused(scene, [(member, b"x = 1\n")], "is not a directory")


def test_a_wheel_cannot_write_into_another_distributions_metadata(scene: Scene) -> None:
    """issue 11.11: ``evil`` carries ``good``'s RECORD (through ``.data/purelib``), listing the
    venv's interpreter: upgrading ``good`` would then remove ``bin/python``, what no wheel may
    take (a wheel may not install ``bin/python`` either). Refused naming the directory; after
    upgrading ``good`` the interpreter is still there. (Before: installed, exit 0; the upgrade
    of ``good`` removed the interpreter.)"""
    forged = b"../../../bin/python,,\n"
    message = refused(
        scene,
        [("evil-1.0.data/purelib/good-1.0.dist-info/RECORD", forged)],
        "good-1.0.dist-info",
    )
    assert "metadata directory" in message, message
    scene.rig.index.add(build_wheel(scene.rig.root / "dist", "good", "2.0"))
    scene.rig.ok("install", "good==2.0", "--venv", str(scene.venv), "--python", sys.executable)
    assert os.path.lexists(scene.venv / "bin" / "python")


def test_a_wheel_cannot_write_into_another_distributions_metadata_through_lib64(
    scene: Scene,
) -> None:
    """issue 11.11: the same forged RECORD, through ``.data/data/lib64/...``: ``lib64`` is the
    link to ``lib`` that Satchel (as ``python -m venv``) makes in a venv on 64-bit Linux, so
    the path names ``good``'s dist-info by another spelling. Refused as the direct one.
    (Before: installed, exit 0, ``good``'s RECORD replaced by the forged one.)"""
    if not (scene.venv / "lib64").is_symlink():
        pytest.skip("this venv has no lib64 link (not a 64-bit POSIX interpreter)")
    (site,) = scene.venv.glob("lib/python*/site-packages")
    member = f"evil-1.0.data/data/lib64/{site.parent.name}/site-packages/good-1.0.dist-info/RECORD"
    message = refused(scene, [(member, b"good/__init__.py,,\n")], "good-1.0.dist-info")
    assert "metadata directory" in message, message


def test_a_record_planted_by_another_installer_cannot_remove_the_interpreter(
    scene: Scene,
) -> None:
    """issue 11.11: ``good``'s RECORD rewritten behind Satchel's back (by pip installing a wheel
    like the one above, or by hand) lists ``bin/python``, ``bin/activate`` and
    ``pyvenv.cfg``. Upgrading ``good`` removes ``good``'s files, never those. (Before: the
    upgrade removed all three.)"""
    record = next(scene.venv.glob("lib/python*/site-packages/good-1.0.dist-info/RECORD"))
    planted = "../../../bin/python,,\n../../../bin/activate,,\n../../../pyvenv.cfg,,\n"
    record.write_text(record.read_text() + planted)
    scene.rig.index.add(build_wheel(scene.rig.root / "dist", "good", "2.0"))
    scene.rig.ok("install", "good==2.0", "--venv", str(scene.venv), "--python", sys.executable)
    for name in ("bin/python", "bin/activate", "pyvenv.cfg"):
        assert os.path.lexists(scene.venv / name), name
    check = subprocess.run(
        [str(scene.venv / "bin" / "python"), "-c", "import good"], capture_output=True, check=False
    )
    assert check.returncode == 0, check.stderr


def test_an_upgrade_may_turn_its_own_directory_into_a_file(tmp_path: Path) -> None:
    """The control for the refusals above: ``mod`` 1.0 has a package directory ``mod/sub/``,
    2.0 a module file ``mod/sub`` in its place. The directory holds only 1.0's files (and
    their bytecode), all removed by the upgrade, so 2.0's file may take its place; 3.0 is a
    package again, where 2.0's file (removed by that upgrade) was."""
    for rig in rig_for(tmp_path):
        venv = rig.root / "venv"
        one = {"mod/__init__.py": "", "mod/sub/__init__.py": "X = 1\n"}
        rig.index.add(build_wheel(rig.root / "dist", "mod", "1.0", files=one))
        rig.ok("install", "mod==1.0", "--venv", str(venv), "--python", sys.executable)
        two = {"mod/__init__.py": "", "mod/sub": "not a package any more\n"}
        rig.index.add(build_wheel(rig.root / "dist", "mod", "2.0", files=two))
        rig.ok("install", "mod==2.0", "--venv", str(venv), "--python", sys.executable)
        (placed,) = venv.glob("lib/python*/site-packages/mod/sub")
        assert placed.is_file()
        rig.index.add(build_wheel(rig.root / "dist", "mod", "3.0", files=one))  # and back
        rig.ok("install", "mod==3.0", "--venv", str(venv), "--python", sys.executable)
        assert (placed / "__init__.py").read_text() == "X = 1\n"


def test_a_file_of_another_distribution_replaced_is_reported(scene: Scene) -> None:
    """A wheel that ships ``good/__init__.py`` installed beside ``good``: installed, as pip
    installs it, but with a warning naming the wheel and the file, since uninstalling either
    distribution now breaks the other. (Before: exit 0 and not a word; uv warns.) A file the
    install's own upgrade replaces is not reported."""
    scene.rig.index.add(_hostile_wheel(scene.rig.root / "dist-evil", [("good/__init__.py", b"")]))
    result = scene.rig.satchel(
        "install", "good", "evil", "--venv", str(scene.venv), "--python", sys.executable
    )
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1, result.stderr
    assert "replaced 1 file(s)" in warnings[0] and WHEEL in warnings[0], warnings
    assert warnings[0].endswith(os.path.join("good", "__init__.py")), warnings
    scene.rig.index.add(build_wheel(scene.rig.root / "dist", "good", "2.0"))
    upgrade = scene.rig.satchel(
        "install", "good==2.0", "--venv", str(scene.venv), "--python", sys.executable
    )
    assert upgrade.returncode == 0, upgrade.stderr
    assert "warning: " not in upgrade.stderr, upgrade.stderr


def test_a_file_replaced_by_the_same_bytes_is_not_reported(scene: Scene) -> None:
    """Namespace packages ship the same ``__init__.py`` (``nvidia/``, ``google/``): replaced by
    identical bytes, nothing is lost whichever distribution is uninstalled, so no warning."""
    (same,) = scene.venv.glob("lib/python*/site-packages/good/__init__.py")
    scene.rig.index.add(
        _hostile_wheel(scene.rig.root / "dist-evil", [("good/__init__.py", same.read_bytes())])
    )
    result = scene.rig.satchel(
        "install", "good", "evil", "--venv", str(scene.venv), "--python", sys.executable
    )
    assert result.returncode == 0, result.stderr
    assert "warning: " not in result.stderr, result.stderr


def test_a_replaced_files_name_cannot_drive_the_terminal(scene: Scene) -> None:
    """issue 11.12 for the replaced-file warning: a member name may hold control characters
    (only NUL, backslashes and traversal are refused), and the warning names the replaced
    file. Two wheels that ship ``shared/<ESC>]0;pwned<BEL><ESC>[2J.py`` with different bytes:
    the warning names it with every control character escaped (before: printed raw, so the
    index's wheel set the terminal's title and cleared the screen)."""
    name = "shared/\x1b]0;pwned\x07\x1b[2J.py"
    dist = scene.rig.root / "dist-evil"
    scene.rig.index.add(_hostile_wheel(dist, [(name, b"A = 1\n")], name="first"))
    scene.rig.ok("install", "first", "--venv", str(scene.venv), "--python", sys.executable)
    scene.rig.index.add(_hostile_wheel(dist, [(name, b"A = 2\n")]))
    result = scene.rig.satchel(
        "install", "good", "evil", "--venv", str(scene.venv), "--python", sys.executable
    )
    assert result.returncode == 0, result.stderr
    (warning,) = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert "replaced 1 file(s)" in warning and "\\x1b]0;pwned\\x07\\x1b[2J.py" in warning
    assert warning.isprintable(), repr(warning)


def test_a_conflicting_files_name_in_an_error_cannot_drive_the_terminal(tmp_path: Path) -> None:
    """issue 11.12 for error messages: two wheels of one install that ship the same file are
    refused naming it ("... both install PATH"); a member name may hold control characters,
    and the client prints the daemon's message with them escaped, whatever message carries
    them (before: printed raw, so the index's wheels set the terminal's title)."""
    name = "shared/\x1b]0;pwned\x07\x1b[2J.py"
    for rig in rig_for(tmp_path):
        dist = rig.root / "dist-evil"
        rig.index.add(_hostile_wheel(dist, [(name, b"A = 1\n")], name="first"))
        rig.index.add(_hostile_wheel(dist, [(name, b"A = 2\n")], name="second"))
        venv = tmp_path / "venv"
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
        result = rig.satchel(
            "install", "first", "second", "--venv", str(venv), "--python", sys.executable
        )
        assert result.returncode != 0 and "both install" in result.stderr, result.stderr
        assert "\\x1b]0;pwned\\x07\\x1b[2J.py" in result.stderr, result.stderr
        assert result.stderr.replace("\n", "").isprintable(), repr(result.stderr)
