"""Target environments: asking real interpreters, and imagining other machines."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

import msgspec
import pytest
from packaging import tags
from packaging.markers import default_environment

from satchel.daemon.errors import NotFound
from satchel.daemon.resolver import target as target_mod
from satchel.daemon.resolver.target import (
    find_interpreter,
    query_interpreter,
    synthetic_target,
)


@pytest.fixture(autouse=True)
def _fresh_memory_cache() -> None:
    target_mod.clear_memory_cache()


@pytest.fixture(scope="module")
def bare_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv with nothing in it, not even pip: the target has no `packaging` of its own."""
    venv = tmp_path_factory.mktemp("bare") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    return venv.resolve()


@pytest.fixture
def other_venv(tmp_path: Path) -> Path:
    venv = tmp_path / "other"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    return venv


async def test_query_of_the_running_interpreter_matches_packaging_and_sysconfig() -> None:
    target = await query_interpreter(sys.executable)
    assert target.tags == tuple(str(t) for t in tags.sys_tags())
    assert target.markers == dict(default_environment())
    assert target.paths["purelib"] == sysconfig.get_paths()["purelib"]
    assert target.sys_prefix == sys.prefix
    assert target.python_version == f"{sys.version_info[0]}.{sys.version_info[1]}"
    assert not target.synthetic


async def test_the_daemons_own_interpreter_is_described_in_process_as_it_would_itself() -> None:
    """The default target (the daemon's own interpreter) costs no interpreter start (issue 15),
    and the answer is the one the child would give."""
    assert target_mod._is_self(Path(sys.executable), target_mod._cache_key(Path(sys.executable)))
    asked = await target_mod._ask(Path(sys.executable), sys.executable)
    assert target_mod._describe_self() == asked
    assert await query_interpreter(sys.executable) == asked


async def test_the_daemons_interpreter_upgraded_in_place_is_asked_not_described_in_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Once the binary at ``sys.executable`` is no longer the one the daemon started from (a
    Python upgraded while the daemon runs: another mtime, size or file), what this process
    knows describes the old interpreter: the binary on disk is asked like any other."""
    now = target_mod._cache_key(Path(sys.executable))
    started_from = (now[0], now[1], now[2] - 1, now[3])  # another mtime: not the same binary
    monkeypatch.setattr(target_mod, "_SELF_KEY", started_from)

    def stale() -> object:
        raise AssertionError("described the interpreter the daemon started from")

    monkeypatch.setattr(target_mod, "_describe_self", stale)

    assert not target_mod._is_self(Path(sys.executable), now)
    asked = await target_mod._ask(Path(sys.executable), sys.executable)
    assert await query_interpreter(sys.executable) == asked


async def test_bare_venv_is_described_with_its_own_prefix_and_scheme(bare_venv: Path) -> None:
    target = await query_interpreter(bare_venv)
    assert target.is_venv
    assert target.sys_prefix == str(bare_venv)
    assert Path(target.paths["purelib"]).is_relative_to(bare_venv)
    assert Path(target.paths["scripts"]) == bare_venv / "bin"
    assert target.tags[0].startswith("cp3")


async def test_two_venvs_of_one_python_are_not_confused(bare_venv: Path, other_venv: Path) -> None:
    first = await query_interpreter(bare_venv)
    second = await query_interpreter(other_venv)
    assert first.sys_prefix != second.sys_prefix
    assert first.paths["purelib"] != second.paths["purelib"]
    # ...while resolving identically: the key covers only what resolution depends on.
    assert first.key == second.key


async def test_a_venv_described_from_its_base_matches_asking_the_venv(
    bare_venv: Path, other_venv: Path
) -> None:
    asked = await query_interpreter(bare_venv)
    base = await query_interpreter(other_venv)
    derived = base.for_venv(bare_venv, asked.paths, str(bare_venv / "bin" / "python"))
    assert derived.markers == asked.markers
    assert derived.tags == asked.tags
    assert derived.key == asked.key
    assert derived.paths == asked.paths


async def test_answer_is_cached_on_disk_and_reused(bare_venv: Path, tmp_path: Path) -> None:
    cache = tmp_path / "targets"
    first = await query_interpreter(bare_venv, cache_dir=cache)
    files = list(cache.iterdir())
    assert len(files) == 1
    target_mod.clear_memory_cache()
    # Poison the on-disk answer: if it is read back instead of re-asking, we see the poison.
    poisoned = msgspec.structs.replace(first, python_full_version="3.99.0")
    files[0].write_bytes(msgspec.json.encode(poisoned))
    again = await query_interpreter(bare_venv, cache_dir=cache)
    assert again.python_full_version == "3.99.0"


def test_python_version_is_found_on_path() -> None:
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    found = find_interpreter(version)
    assert found.name == f"python{version}"


def test_a_directory_that_is_not_a_venv_is_refused(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="not a virtual environment"):
        find_interpreter(tmp_path)


def test_a_missing_version_names_what_was_looked_for() -> None:
    with pytest.raises(NotFound, match=r"python3\.2"):
        find_interpreter("3.2")


def test_synthetic_macos_target() -> None:
    target = synthetic_target("3.12", ["macosx_14_0_arm64"])
    assert target.markers["sys_platform"] == "darwin"
    assert target.markers["platform_system"] == "Darwin"
    assert target.markers["platform_machine"] == "arm64"
    assert target.python_full_version == "3.12.0"
    assert target.tags[0] == "cp312-cp312-macosx_14_0_arm64"
    # Older macOS and universal2 wheels fit too, and so does pure Python.
    assert "cp312-abi3-macosx_11_0_universal2" in target.tags
    assert "py3-none-any" in target.tags
    assert target.synthetic and not target.paths


def test_synthetic_windows_target() -> None:
    target = synthetic_target("3.11.9", ["win_amd64"])
    assert target.markers["os_name"] == "nt"
    assert target.markers["sys_platform"] == "win32"
    assert target.markers["platform_machine"] == "AMD64"
    assert target.python_full_version == "3.11.9"
    assert target.tags[0] == "cp311-cp311-win_amd64"
    assert not any("linux" in tag for tag in target.tags)


def test_synthetic_manylinux_accepts_older_glibc_and_legacy_aliases() -> None:
    target = synthetic_target("3.11", ["manylinux_2_28_x86_64"])
    ranks = target.tag_ranks()
    assert ranks["cp311-cp311-manylinux_2_28_x86_64"] < ranks["cp311-cp311-manylinux2014_x86_64"]
    assert "cp311-abi3-manylinux1_x86_64" in ranks
    assert "cp311-cp311-manylinux_2_34_x86_64" not in ranks


def test_synthetic_target_ranks_like_the_real_one_for_this_machine() -> None:
    """A synthetic target for the running machine ranks the same tags in the same order."""
    native = [str(t) for t in tags.sys_tags()]
    manylinux = [t.platform for t in tags.sys_tags() if t.platform.startswith("manylinux_")]
    if not manylinux:
        pytest.skip("comparison written for glibc Linux")
    synth = synthetic_target(f"{sys.version_info[0]}.{sys.version_info[1]}", [manylinux[0]])
    # Where packaging ranks the locally built linux_ARCH varies between its versions: ignore it.
    native = [t for t in native if "-linux_" not in t]
    common = [t for t in native if t in set(synth.tags)]
    assert common == [t for t in synth.tags if t in set(native)]
    assert len(common) > 0.9 * len(native)


def test_mixed_machines_are_refused() -> None:
    with pytest.raises(ValueError, match="different machines"):
        synthetic_target("3.11", ["win_amd64", "macosx_14_0_arm64"])


def test_unknown_platform_is_refused() -> None:
    with pytest.raises(ValueError, match="unsupported platform tag"):
        synthetic_target("3.11", ["solaris_sparc"])


def test_key_is_stable_and_distinguishes_targets() -> None:
    a = synthetic_target("3.11", ["win_amd64"])
    assert a.key == synthetic_target("3.11", ["win_amd64"]).key
    assert a.key != synthetic_target("3.12", ["win_amd64"]).key
