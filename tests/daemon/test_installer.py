"""Installing unpacked wheels: same result as pypa/installer, atomic, recoverable, serialised."""

from __future__ import annotations

import ensurepip
import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import msgspec
import pytest
from installer import install as reference_install
from installer.destinations import SchemeDictionaryDestination
from installer.sources import WheelFile

from satchel.daemon.errors import InstallError, NotFound
from satchel.daemon.installing._layout import LOCK_NAME
from satchel.daemon.installing._manifest import UnpackedWheel
from satchel.daemon.installing.installer import (
    InstallItem,
    Scheme,
    env_lock,
    installed_distributions,
)
from satchel.daemon.installing.venv import create_venv
from satchel.daemon.installing.wheel import unpack
from tests.support.installing import install, journals_of, kill_mid_install, recover, uninstall
from tests.support.locks import flock_waiters, wait_for_flock_waiter
from tests.support.wheels import build_wheel

RICH = {
    "files": {
        "rich_pkg/__init__.py": "def main():\n    print('console says hi')\n",
        "rich_pkg/gui.py": "def run():\n    print('gui says hi')\n",
        "rich_pkg/sub/deep.py": "DEEP = True\n",
        "rich_top.py": "TOP = 1\n",
    },
    "console_scripts": {"rich-cli": "rich_pkg:main"},
    "gui_scripts": {"rich-gui": "rich_pkg.gui:run"},
    "data": {
        "scripts": {"rich-raw": "#!python\nprint('raw script')\n"},
        "data": {"share/rich/readme.txt": "data scheme"},
        "headers": {"rich.h": "int rich;"},
        "purelib": {"rich_extra.py": "EXTRA = 1\n"},
    },
}


@pytest.fixture
def scheme(tmp_path: Path) -> Scheme:
    return create_venv(tmp_path / "venv", sys.executable)


def _unpack(tmp_path: Path, name: str, version: str, **kwargs: object) -> UnpackedWheel:
    wheel = build_wheel(tmp_path / "wheels", name, version, **kwargs)  # type: ignore[arg-type]
    sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
    return unpack(wheel, sha, tmp_path / "unpacked")


def _snapshot(root: Path) -> dict[str, bytes]:
    """Every file (and symlink) under *root* with its content; the lock file excluded."""
    found: dict[str, bytes] = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = Path(dirpath, name)
            rel = path.relative_to(root).as_posix()
            if rel == ".satchel.lock":
                continue
            found[rel] = os.readlink(path).encode() if path.is_symlink() else path.read_bytes()
    return found


def _run(path: Path) -> str:
    return subprocess.run([str(path)], capture_output=True, text=True, check=True).stdout


def _record_rows(scheme: Scheme, dist_info: str) -> set[str]:
    return set((scheme.purelib / dist_info / "RECORD").read_text().splitlines())


def _assert_same_as_pypa_installer(tmp_path: Path, scheme: Scheme, wheel: Path) -> None:
    """Install *wheel* with us into *scheme* and with pypa/installer into a twin venv; compare."""
    unpacked = unpack(wheel, hashlib.sha256(wheel.read_bytes()).hexdigest(), tmp_path / "u")
    before = _snapshot(scheme.data)
    install(scheme, [InstallItem(unpacked)])
    ours = {k: v for k, v in _snapshot(scheme.data).items() if k not in before}

    ref = create_venv(tmp_path / "ref", sys.executable)
    ref_before = _snapshot(ref.data)
    destination = SchemeDictionaryDestination(
        scheme_dict={
            "purelib": str(ref.purelib),
            "platlib": str(ref.platlib),
            "headers": str(ref.headers / unpacked.manifest.name),
            "scripts": str(ref.scripts),
            "data": str(ref.data),
        },
        interpreter=str(scheme.interpreter),  # same launcher bytes in both environments
        script_kind="posix",
    )
    with WheelFile.open(wheel) as source:
        reference_install(source, destination, {"INSTALLER": b"satchel\n"})
    theirs = {k: v for k, v in _snapshot(ref.data).items() if k not in ref_before}

    assert sorted(ours) == sorted(theirs)
    site = scheme.purelib.relative_to(scheme.data).as_posix()
    record = f"{site}/{unpacked.manifest.dist_info}/RECORD"
    for rel in ours:
        if rel != record:
            assert ours[rel] == theirs[rel], rel
    assert set(ours[record].decode().splitlines()) == set(theirs[record].decode().splitlines())
    for rel in ours:  # executable bits agree too...
        if rel.startswith("bin/") and unpacked.manifest.name == "rich-pkg":
            # ...except that, like pip, we make every .data/scripts file executable, where
            # pypa/installer trusts the zip's mode bits (which lack S_IFREG in this wheel).
            assert os.access(scheme.data / rel, os.X_OK)
            continue
        assert os.access(scheme.data / rel, os.X_OK) == os.access(ref.data / rel, os.X_OK), rel


def test_install_matches_pypa_installer(tmp_path: Path, scheme: Scheme) -> None:
    wheel = build_wheel(tmp_path / "wheels", "rich-pkg", "1.0", **RICH)  # type: ignore[arg-type]
    _assert_same_as_pypa_installer(tmp_path, scheme, wheel)


_BUNDLED = sorted((Path(ensurepip.__file__).parent / "_bundled").glob("*.whl"))


@pytest.mark.skipif(not _BUNDLED, reason="this Python ships no ensurepip wheels")
@pytest.mark.parametrize("wheel", _BUNDLED, ids=lambda path: path.name.split("-")[0])
def test_real_world_wheel_matches_pypa_installer(
    tmp_path: Path, scheme: Scheme, wheel: Path
) -> None:
    """pip and setuptools as bundled with CPython: hundreds of files, real entry points."""
    _assert_same_as_pypa_installer(tmp_path, scheme, wheel)


def test_console_gui_and_data_scripts_run(tmp_path: Path, scheme: Scheme) -> None:
    install(scheme, [InstallItem(_unpack(tmp_path, "rich-pkg", "1.0", **RICH))])
    assert _run(scheme.scripts / "rich-cli") == "console says hi\n"
    assert _run(scheme.scripts / "rich-gui") == "gui says hi\n"
    assert _run(scheme.scripts / "rich-raw") == "raw script\n"


def test_data_schemes_land_in_their_directories(tmp_path: Path, scheme: Scheme) -> None:
    install(scheme, [InstallItem(_unpack(tmp_path, "rich-pkg", "1.0", **RICH))])
    assert (scheme.data / "share/rich/readme.txt").read_text() == "data scheme"
    assert (scheme.headers / "rich-pkg" / "rich.h").read_text() == "int rich;"
    assert (scheme.purelib / "rich_extra.py").read_text() == "EXTRA = 1\n"
    assert (
        (scheme.scripts / "rich-raw")
        .read_bytes()
        .startswith(b"#!" + str(scheme.interpreter).encode())
    )


def test_dist_info_says_who_installed_it_and_why(tmp_path: Path, scheme: Scheme) -> None:
    direct = {"url": "file:///src/direct", "dir_info": {}}
    install(
        scheme,
        [
            InstallItem(_unpack(tmp_path, "wanted", "1.0"), requested=True, direct_url=direct),
            InstallItem(_unpack(tmp_path, "dependency", "1.0")),
        ],
    )
    wanted = scheme.purelib / "wanted-1.0.dist-info"
    dependency = scheme.purelib / "dependency-1.0.dist-info"
    assert (wanted / "INSTALLER").read_text() == "satchel\n"
    assert (wanted / "REQUESTED").exists()
    assert not (dependency / "REQUESTED").exists()
    assert json.loads((wanted / "direct_url.json").read_text()) == direct
    assert not (dependency / "direct_url.json").exists()
    rows = _record_rows(scheme, "wanted-1.0.dist-info")
    assert "wanted-1.0.dist-info/RECORD,," in rows
    assert any(row.startswith("wanted-1.0.dist-info/direct_url.json,sha256=") for row in rows)


def test_installed_distributions_are_keyed_by_normalised_name(
    tmp_path: Path, scheme: Scheme
) -> None:
    install(scheme, [InstallItem(_unpack(tmp_path, "Mixed_Case.Name", "2.0"))])
    version, dist_info = installed_distributions(scheme)["mixed-case-name"]
    assert version == "2.0"
    assert dist_info.name == "mixed_case_name-2.0.dist-info"


@pytest.mark.parametrize(("first", "second"), [("1.0", "2.0"), ("2.0", "1.0")])
def test_upgrade_and_downgrade_remove_the_old_version_via_its_record(
    tmp_path: Path, scheme: Scheme, first: str, second: str
) -> None:
    old_files = {"pkg/__init__.py": "", f"pkg/only_in_{first.replace('.', '_')}.py": ""}
    new_files = {"pkg/__init__.py": f"V = {second!r}\n"}
    old = _unpack(tmp_path, "pkg", first, files=old_files, console_scripts={"old-tool": "pkg:x"})
    install(scheme, [InstallItem(old)], compile_bytecode=True)
    assert (scheme.scripts / "old-tool").exists()
    report = install(scheme, [InstallItem(_unpack(tmp_path, "pkg", second, files=new_files))])
    assert report.removed == (("pkg", first),)
    assert installed_distributions(scheme)["pkg"][0] == second
    assert not (scheme.scripts / "old-tool").exists()
    assert not (scheme.purelib / f"pkg-{first}.dist-info").exists()
    assert sorted(p.name for p in (scheme.purelib / "pkg").iterdir()) == ["__init__.py"]
    assert (scheme.purelib / "pkg/__init__.py").read_text() == f"V = {second!r}\n"


def test_reinstalling_the_same_version_replaces_it(tmp_path: Path, scheme: Scheme) -> None:
    unpacked = _unpack(tmp_path, "pkg", "1.0")
    install(scheme, [InstallItem(unpacked)])
    report = install(scheme, [InstallItem(unpacked, requested=True)])
    assert report.removed == (("pkg", "1.0"),)
    assert (scheme.purelib / "pkg-1.0.dist-info" / "REQUESTED").exists()


def test_failure_mid_install_rolls_back_to_the_old_state(tmp_path: Path, scheme: Scheme) -> None:
    install(scheme, [InstallItem(_unpack(tmp_path, "pkg", "1.0", files={"pkg/a.py": "1"}))])
    before = _snapshot(scheme.data)
    files = {f"pkg/m{i:02}.py": str(i) for i in range(20)}
    broken = _unpack(tmp_path, "pkg", "2.0", files=files)
    (broken.tree / "pkg" / "m15.py").unlink()  # the cache lost a file: linking fails midway
    with pytest.raises(InstallError, match="rolled back"):
        install(scheme, [InstallItem(broken), InstallItem(_unpack(tmp_path, "other", "1.0"))])
    assert _snapshot(scheme.data) == before
    assert not list(scheme.data.glob(".satchel-trash-*"))


def test_two_wheels_writing_one_path_are_refused(tmp_path: Path, scheme: Scheme) -> None:
    before = _snapshot(scheme.data)
    first = _unpack(tmp_path, "first", "1.0", files={"shared/x.py": "a"})
    second = _unpack(tmp_path, "second", "1.0", files={"shared/x.py": "b"})
    with pytest.raises(InstallError, match="both install"):
        install(scheme, [InstallItem(first), InstallItem(second)])
    assert _snapshot(scheme.data) == before


def test_killed_install_is_recovered_to_the_old_state(tmp_path: Path, scheme: Scheme) -> None:
    install(scheme, [InstallItem(_unpack(tmp_path, "pkg", "1.0", files={"pkg/a.py": "1"}))])
    before = _snapshot(scheme.data)
    files = {f"pkg/m{i:02}.py": str(i) for i in range(20)}
    new = _unpack(tmp_path, "pkg", "2.0", files=files)
    kill_mid_install(scheme, tmp_path / "unpacked", new.sha256)
    assert list(journals_of(scheme).glob("*.json"))  # it died mid-way
    assert not list(scheme.data.glob(".satchel-trash-*/*.json"))  # no journal in the venv
    assert recover(scheme)
    assert _snapshot(scheme.data) == before
    install(scheme, [InstallItem(new)])  # and the environment is usable again
    assert installed_distributions(scheme)["pkg"][0] == "2.0"


def test_uninstall_removes_what_install_added(tmp_path: Path, scheme: Scheme) -> None:
    before = _snapshot(scheme.data)
    install(scheme, [InstallItem(_unpack(tmp_path, "rich-pkg", "1.0", **RICH))])
    report = uninstall(scheme, "Rich_Pkg")
    assert report.removed == (("rich-pkg", "1.0"),)
    assert _snapshot(scheme.data) == before


def test_uninstall_of_a_missing_distribution_is_not_found(scheme: Scheme) -> None:
    with pytest.raises(NotFound, match="nothing-here"):
        uninstall(scheme, "nothing-here")


def test_record_entries_outside_the_environment_are_never_removed(
    tmp_path: Path, scheme: Scheme
) -> None:
    install(scheme, [InstallItem(_unpack(tmp_path, "pkg", "1.0"))])
    outside = tmp_path / "outside.txt"
    outside.write_text("precious")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "victim.txt").write_text("precious")
    (scheme.purelib / "escape").symlink_to(tmp_path / "elsewhere")
    record = scheme.purelib / "pkg-1.0.dist-info" / "RECORD"
    escape = os.path.relpath(outside, scheme.purelib)
    with record.open("a") as stream:
        stream.write(f"{escape},,\nescape/victim.txt,,\n/etc/hostname,,\n.,,\n")
    report = uninstall(scheme, "pkg")
    assert outside.read_text() == "precious"
    assert (tmp_path / "elsewhere" / "victim.txt").read_text() == "precious"
    assert scheme.purelib.is_dir()
    assert set(report.skipped_outside) >= {escape, "escape/victim.txt", "/etc/hostname"}


def test_compile_bytecode_records_pyc_without_hash(tmp_path: Path, scheme: Scheme) -> None:
    install(scheme, [InstallItem(_unpack(tmp_path, "pkg", "1.0"))], compile_bytecode=True)
    pycs = list((scheme.purelib / "pkg" / "__pycache__").glob("__init__.*.pyc"))
    assert len(pycs) == 1
    rel = pycs[0].relative_to(scheme.purelib).as_posix()
    assert f"{rel},," in _record_rows(scheme, "pkg-1.0.dist-info")


@pytest.mark.parametrize(("mode", "shared"), [("hardlink", True), ("copy", False)])
def test_link_mode_decides_whether_the_cache_inode_is_shared(
    tmp_path: Path, scheme: Scheme, mode: str, shared: bool
) -> None:
    unpacked = _unpack(tmp_path, "pkg", "1.0")
    report = install(scheme, [InstallItem(unpacked)], link_mode=mode)  # type: ignore[arg-type]
    cached = (unpacked.tree / "pkg" / "__init__.py").stat()
    installed = (scheme.purelib / "pkg" / "__init__.py").stat()
    assert (cached.st_ino == installed.st_ino) is shared
    assert report.link_modes == (mode,)


def test_concurrent_installs_into_one_environment_serialise(tmp_path: Path, scheme: Scheme) -> None:
    unpacked = _unpack(tmp_path, "pkg", "1.0")
    done = threading.Event()

    def work() -> None:
        install(scheme, [InstallItem(unpacked)])
        done.set()

    worker = threading.Thread(target=work)
    with env_lock(scheme):
        worker.start()
        # The kernel says the worker is blocked on the lock we hold (not: it is still busy).
        wait_for_flock_waiter(scheme.data / LOCK_NAME, done.is_set, "the install")
        assert not done.is_set()
        assert "pkg" not in installed_distributions(scheme)
    worker.join(60)  # a hang guard, not a measurement
    assert done.is_set()
    assert "pkg" in installed_distributions(scheme)


def test_installs_into_different_environments_run_in_parallel(
    tmp_path: Path, scheme: Scheme
) -> None:
    """An install into another environment completes while this one's lock is held: it does
    not wait for it (were it to, it would wait for as long as the test holds it: for ever)."""
    other = create_venv(tmp_path / "other", sys.executable)
    unpacked = _unpack(tmp_path, "pkg", "1.0")
    done = threading.Event()

    def work() -> None:
        install(other, [InstallItem(unpacked)])
        done.set()

    worker = threading.Thread(target=work, daemon=True)
    with env_lock(scheme):
        worker.start()
        # A hang guard, not a measurement: the only way not to finish is to wait for our lock.
        assert done.wait(60), "the install into another environment waited for this one's lock"
        assert flock_waiters(scheme.data / LOCK_NAME) == 0
    assert "pkg" in installed_distributions(other)


def _pip(scheme: Scheme, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PIP_NO_INDEX": "1",
        "PIP_NO_INPUT": "1",
    }
    return subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(scheme.interpreter), *args],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )


def test_real_pip_lists_checks_and_uninstalls_what_we_installed(
    tmp_path: Path, scheme: Scheme
) -> None:
    install(
        scheme,
        [
            InstallItem(_unpack(tmp_path, "app", "1.0", requires=["lib>=1"], **RICH)),
            InstallItem(_unpack(tmp_path, "lib", "1.5")),
        ],
    )
    listed = _pip(scheme, "list", "--format=json")
    assert listed.returncode == 0, listed.stderr
    assert {(d["name"], d["version"]) for d in json.loads(listed.stdout)} >= {
        ("app", "1.0"),
        ("lib", "1.5"),
    }
    checked = _pip(scheme, "check")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    removed = _pip(scheme, "uninstall", "-y", "app")
    assert removed.returncode == 0, removed.stderr
    assert "app" not in installed_distributions(scheme)
    assert not (scheme.scripts / "rich-cli").exists()
    assert not (scheme.data / "share/rich/readme.txt").exists()


def test_compile_of_a_large_package_uses_the_worker_pool(tmp_path: Path, scheme: Scheme) -> None:
    files = {f"big/m{i}.py": f"X = {i}\n" for i in range(250)}
    install(
        scheme, [InstallItem(_unpack(tmp_path, "big", "1.0", files=files))], compile_bytecode=True
    )
    assert len(list((scheme.purelib / "big" / "__pycache__").glob("*.pyc"))) == 250
    rows = _record_rows(scheme, "big-1.0.dist-info")
    assert sum(row.endswith(".pyc,,") for row in rows) == 250


@pytest.mark.parametrize(
    "path",
    [
        "../../../../escape.py",
        "pkg/../../../../escape.py",
        "/tmp/abs.py",
        "a//b.py",
        "a/.",
        "a/..",
        "./a.py",
        ".",
        "..",
        "a/./b.py",
    ],
)
def test_a_tampered_manifest_cannot_escape_the_scheme(
    tmp_path: Path, scheme: Scheme, path: str
) -> None:
    unpacked = _unpack(tmp_path, "pkg", "1.0")
    first = unpacked.manifest.files[0]
    evil = msgspec.structs.replace(first, path=path)
    manifest = msgspec.structs.replace(unpacked.manifest, files=(evil,))
    tampered = UnpackedWheel(unpacked.sha256, unpacked.directory, manifest)
    before = _snapshot(scheme.data)
    with pytest.raises(InstallError, match="would land outside") as caught:
        install(scheme, [InstallItem(tampered)])
    assert repr(path) in str(caught.value)
    assert _snapshot(scheme.data) == before
    assert not (tmp_path / "escape.py").exists()


def test_dot_names_that_stay_inside_install(tmp_path: Path, scheme: Scheme) -> None:
    """Hidden files and names with dots are no escape: only ``.`` and ``..`` components are."""
    files = {"pkg/.hidden": "x", "pkg/.d/..x.py": "y", "pkg/...py": "z"}
    install(scheme, [InstallItem(_unpack(tmp_path, "pkg", "1.0", files=files))])
    assert (scheme.purelib / "pkg" / ".d" / "..x.py").read_text() == "y"
    assert (scheme.purelib / "pkg" / "...py").read_text() == "z"


def test_recover_purges_the_trash_of_a_committed_install(tmp_path: Path, scheme: Scheme) -> None:
    install(scheme, [InstallItem(_unpack(tmp_path, "pkg", "1.0"))])
    leftover = scheme.data / ".satchel-trash-0123456789ab"
    leftover.mkdir()
    (leftover / "0").write_text("old file, committed away")
    before = _snapshot(scheme.data)
    assert recover(scheme)
    assert not leftover.exists()
    assert {k: v for k, v in before.items() if not k.startswith(".satchel-trash")} == _snapshot(
        scheme.data
    )


_BUNDLED_PIP = [w for w in _BUNDLED if w.name.startswith("pip-")]


@pytest.mark.skipif(not _BUNDLED_PIP, reason="this Python ships no ensurepip pip wheel")
def test_every_console_script_of_a_real_wheel_runs(tmp_path: Path, scheme: Scheme) -> None:
    wheel = _BUNDLED_PIP[0]
    unpacked = unpack(wheel, hashlib.sha256(wheel.read_bytes()).hexdigest(), tmp_path / "u")
    install(scheme, [InstallItem(unpacked, requested=True)])
    scripts = [entry.name for entry in unpacked.manifest.entry_points]
    assert scripts
    for name in scripts:
        result = subprocess.run(
            [str(scheme.scripts / name), "--version"], capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, (name, result.stderr)
        assert str(scheme.purelib) in result.stdout, name


def test_uninstalling_the_last_package_keeps_the_scheme_directories(
    tmp_path: Path, scheme: Scheme
) -> None:
    install(scheme, [InstallItem(_unpack(tmp_path, "rich-pkg", "1.0", **RICH))])
    uninstall(scheme, "rich-pkg")
    for directory in (scheme.purelib, scheme.scripts, scheme.data):
        assert directory.is_dir()
    assert not (scheme.data / "share").exists()  # emptied by the uninstall, so pruned


def test_failed_compile_rolls_back_bytecode_too(
    tmp_path: Path, scheme: Scheme, monkeypatch: pytest.MonkeyPatch
) -> None:
    install(scheme, [InstallItem(_unpack(tmp_path, "first", "1.0", files={"top1.py": "A = 1"}))])
    before = _snapshot(scheme.data)
    unpacked = _unpack(tmp_path, "second", "1.0", files={"top2.py": "B = 2"})
    import satchel.daemon.installing.installer as installer_module
    from satchel.daemon.installing._bytecode import compile_files as real_compile

    def compile_then_fail(interpreter: Path, py_files: list[str]) -> list[str]:
        real_compile(interpreter, py_files)
        raise InstallError("compiler crashed")

    monkeypatch.setattr(installer_module, "compile_files", compile_then_fail)
    with pytest.raises(InstallError, match="compiler crashed"):
        install(scheme, [InstallItem(unpacked)], compile_bytecode=True)
    after = _snapshot(scheme.data)
    assert after == before


def test_hardlinked_files_are_read_only_so_in_place_edits_cannot_spread(
    tmp_path: Path, scheme: Scheme
) -> None:
    install(scheme, [InstallItem(_unpack(tmp_path, "pkg", "1.0"))], link_mode="hardlink")
    mode = (scheme.purelib / "pkg" / "__init__.py").stat().st_mode
    assert mode & 0o222 == 0  # a non-root `open(..., "w")` fails instead of editing the cache


@pytest.mark.skipif(shutil.which("uv") is None, reason="uv is not installed")
def test_uv_lists_and_uninstalls_what_we_installed(tmp_path: Path, scheme: Scheme) -> None:
    install(scheme, [InstallItem(_unpack(tmp_path, "rich-pkg", "1.0", **RICH))])
    target = ["--no-config", "--python", str(scheme.data)]
    listed = subprocess.run(
        ["uv", "pip", "list", "--offline", "--format=json", *target],
        capture_output=True,
        text=True,
        check=False,
    )
    assert listed.returncode == 0, listed.stderr
    assert {"name": "rich-pkg", "version": "1.0"} in json.loads(listed.stdout)
    removed = subprocess.run(
        ["uv", "pip", "uninstall", *target, "rich-pkg"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert removed.returncode == 0, removed.stderr
    assert "rich-pkg" not in installed_distributions(scheme)
    assert not (scheme.scripts / "rich-cli").exists()
