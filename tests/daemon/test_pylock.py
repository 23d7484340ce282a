"""Lock and requirements output, and reading PEP 751 locks back."""

from __future__ import annotations

import datetime as dt
import tomllib
from pathlib import Path

import msgspec
import pytest
from packaging.requirements import Requirement

from satchel.daemon.resolver.pylock import (
    dumps_json,
    dumps_pylock,
    dumps_requirements,
    read_pylock,
)
from satchel.daemon.resolver.reqfiles import RequirementsFileError, parse_requirements
from satchel.daemon.resolver.resolve import Resolution, resolve
from satchel.daemon.resolver.target import synthetic_target
from satchel.daemon.storage.model import FileEntry, FileEntryMap
from tests.support.memindex import MemoryIndex

LINUX = synthetic_target("3.11.4", ["manylinux_2_28_x86_64"])


@pytest.fixture
def resolution(tmp_path: Path) -> Resolution:
    index = MemoryIndex(tmp_path, ["private", "public"])
    index.wheel("internal-tool", "1.0", index="private", requires=["dep"], extras={"x": ["y"]})
    index.wheel("dep", "2.0", index="public", tag="cp311-cp311-manylinux_2_17_x86_64")
    index.wheel("y", "1.0", index="public", data_requires_python=">=3.8")
    index.sdist("legacy", "0.1", index="public")
    return resolve([Requirement("internal-tool[x]"), Requirement("legacy")], [], LINUX, index)


def with_upload_time(resolution: Resolution) -> Resolution:
    pins = [
        msgspec.structs.replace(
            pin, file=msgspec.structs.replace(pin.file, upload_time="2025-01-25T11:30:10.164985Z")
        )
        for pin in resolution.pins
    ]
    return msgspec.structs.replace(resolution, pins=pins)


def test_pylock_is_valid_toml_recording_each_package_index(resolution: Resolution) -> None:
    data = tomllib.loads(dumps_pylock(resolution, LINUX))
    assert data["lock-version"] == "1.0"
    assert data["created-by"] == "satchel"
    assert data["requires-python"] == "==3.11.*"
    assert "sys_platform == 'linux'" in data["environments"][0]
    packages = {p["name"]: p for p in data["packages"]}
    assert set(packages) == {"internal-tool", "dep", "y", "legacy"}
    assert packages["internal-tool"]["index"] == "http://127.0.0.1:9/private/simple"
    assert packages["dep"]["index"] == "http://127.0.0.1:9/public/simple"
    (wheel,) = packages["dep"]["wheels"]
    assert wheel["name"] == "dep-2.0-cp311-cp311-manylinux_2_17_x86_64.whl"
    assert len(wheel["hashes"]["sha256"]) == 64
    assert wheel["size"] > 0
    assert packages["y"]["requires-python"] == ">=3.8"
    assert packages["legacy"]["sdist"]["name"] == "legacy-0.1.tar.gz"
    assert "wheels" not in packages["legacy"]


def test_upload_time_is_a_toml_datetime(resolution: Resolution) -> None:
    data = tomllib.loads(dumps_pylock(with_upload_time(resolution), LINUX))
    uploaded = data["packages"][0]["wheels"][0]["upload-time"]
    assert uploaded == dt.datetime(2025, 1, 25, 11, 30, 10, 164985, tzinfo=dt.UTC)


def test_pylock_round_trips_through_the_reader(resolution: Resolution, tmp_path: Path) -> None:
    resolution = with_upload_time(resolution)
    path = tmp_path / "pylock.toml"
    path.write_text(dumps_pylock(resolution, LINUX))
    lock = read_pylock(path)
    assert [(p.name, p.version) for p in lock.packages] == [
        (pin.name, pin.version) for pin in resolution.pins
    ]
    by_name = {p.name: p for p in lock.packages}
    for pin in resolution.pins:
        locked = by_name[pin.name]
        (file,) = (*locked.wheels, *([locked.sdist] if locked.sdist else []))
        assert (file.filename, file.url, file.sha256, file.size) == (
            pin.file.filename, pin.file.url, pin.file.sha256, pin.file.size,
        )  # fmt: skip
        assert file.upload_time is not None
        assert dt.datetime.fromisoformat(file.upload_time) == dt.datetime.fromisoformat(
            "2025-01-25T11:30:10.164985+00:00"
        )
        assert locked.applies_to(LINUX)
    assert len(lock.files()) == 4


def test_strings_are_escaped(tmp_path: Path, resolution: Resolution) -> None:
    odd = 'http://127.0.0.1/a "quoted"\\path\x7f\ttab'
    pin = msgspec.structs.replace(
        resolution.pins[0], file=msgspec.structs.replace(resolution.pins[0].file, url=odd)
    )
    text = dumps_pylock(msgspec.structs.replace(resolution, pins=[pin]), LINUX)
    assert tomllib.loads(text)["packages"][0]["wheels"][0]["url"] == odd


def test_requirements_output_pins_hashes_and_names_the_index(
    resolution: Resolution, tmp_path: Path
) -> None:
    text = dumps_requirements(resolution)
    assert "from index 'private' (http://127.0.0.1:9/private/simple)" in text
    assert "internal-tool[x]==1.0 \\\n    --hash=sha256:" in text
    # pip's own parser (ours, here) reads it back: same pins, each with its hash.
    path = tmp_path / "requirements.txt"
    path.write_text(text)
    parsed = parse_requirements(path)
    assert [str(r.requirement) for r in parsed.requirements] == [
        f"{pin.name}{'[x]' if pin.extras else ''}=={pin.version}" for pin in resolution.pins
    ]
    assert parsed.hashes() == {pin.name: frozenset({pin.file.sha256}) for pin in resolution.pins}


def test_json_output_decodes_to_the_same_resolution(resolution: Resolution) -> None:
    """Each pin's file is shown as a map with its hash dicts (`FileEntryMap`), whatever the
    compact layout the daemon keeps it in; everything else is the resolution itself."""
    document = msgspec.json.decode(dumps_json(resolution))
    shown = [msgspec.convert(pin["file"], FileEntryMap) for pin in document["pins"]]
    assert [file.entry() for file in shown] == [pin.file for pin in resolution.pins]
    assert all(
        file.hashes["sha256"] == pin.file.sha256
        for file, pin in zip(shown, resolution.pins, strict=True)
    )
    for pin, file in zip(document["pins"], shown, strict=True):
        pin["file"] = msgspec.to_builtins(file.entry())
    assert msgspec.convert(document, Resolution) == resolution


def test_lock_marker_and_best_file_for_a_target(tmp_path: Path) -> None:
    path = tmp_path / "pylock.toml"
    path.write_text(
        'lock-version = "1.0"\ncreated-by = "other"\n'
        "[[packages]]\n"
        'name = "Colorama"\nversion = "0.4"\nmarker = "sys_platform == \'win32\'"\n'
        'wheels = [{ url = "http://127.0.0.1/colorama-0.4-py3-none-any.whl", '
        'hashes = { sha256 = "' + "A" * 64 + '" } }]\n'
        "[[packages]]\n"
        'name = "fast"\nversion = "1.0"\n'
        'wheels = [\n  { name = "fast-1.0-py3-none-any.whl", url = "http://127.0.0.1/a.whl", '
        'hashes = { sha256 = "' + "b" * 64 + '" } },\n'
        '  { name = "fast-1.0-cp311-cp311-manylinux_2_17_x86_64.whl", url = '
        '"http://127.0.0.1/b.whl", hashes = { sha256 = "' + "c" * 64 + '" } },\n]\n'
    )
    lock = read_pylock(path)
    colorama, fast = lock.packages
    assert colorama.name == "colorama"
    assert colorama.wheels[0].filename == "colorama-0.4-py3-none-any.whl"
    assert colorama.wheels[0].sha256 == "a" * 64
    assert not colorama.applies_to(LINUX)
    assert colorama.applies_to(synthetic_target("3.11", ["win_amd64"]))
    best = fast.best_file(LINUX)
    assert isinstance(best, FileEntry) and best.url == "http://127.0.0.1/b.whl"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('lock-version = "2.0"\n', "unsupported lock-version"),
        ('lock-version = "1.0"\n[[packages]]\nname = "x"\n', "no wheels and no sdist"),
        (
            'lock-version = "1.0"\n[[packages]]\nname = "x"\nmarker = "os_name =="\n'
            'vcs = { type = "git", url = "http://127.0.0.1/x.git" }\n',
            "Expected a marker variable",
        ),
        (
            'lock-version = "1.0"\n[[packages]]\nname = "x"\n'
            'sdist = { name = "../x.tar.gz", url = "http://127.0.0.1/x", '
            'hashes = { sha256 = "00" } }\n',
            "not a plain file name",
        ),
        ('lock-version = "1.0"\n[[packages]]\nname = "x"\nsdist = { url = "u" }\n', "no hashes"),
        ("lock-version = ", "not valid TOML"),
    ],
)
def test_bad_locks_are_refused(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "pylock.toml"
    path.write_text(body)
    with pytest.raises(RequirementsFileError, match=message):
        read_pylock(path)


def test_a_lock_without_index_is_read_and_non_index_sources_are_kept_as_unsupported(
    tmp_path: Path,
) -> None:
    """Issue 13.6: uv and pip write no ``index``; ``uv export`` writes the project itself as an
    editable directory (skipped), and git or path dependencies as vcs/directory packages
    (kept, with a message naming the package and its source, refused where they are needed)."""
    path = tmp_path / "pylock.toml"
    path.write_text(
        'lock-version = "1.0"\ncreated-by = "uv"\n'
        '[[packages]]\nname = "alpha"\nversion = "1.0"\n'
        'wheels = [{ url = "http://127.0.0.1/files/alpha-1.0-py3-none-any.whl", '
        'hashes = { sha256 = "' + "a" * 64 + '" } }]\n'
        '[[packages]]\nname = "gitdep"\nversion = "0.3"\n'
        'vcs = { type = "git", url = "file:///src/gitdep", commit-id = "abc" }\n'
        '[[packages]]\nname = "localdep"\ndirectory = { path = "../localdep", editable = false }\n'
        '[[packages]]\nname = "myproj"\ndirectory = { path = ".", editable = true }\n'
    )
    lock = read_pylock(path)
    assert [(p.name, p.index) for p in lock.packages] == [
        ("alpha", None),
        ("gitdep", None),
        ("localdep", None),
    ]
    alpha, gitdep, localdep = lock.packages
    assert alpha.unsupported is None
    assert alpha.wheels[0].filename == "alpha-1.0-py3-none-any.whl"
    assert gitdep.unsupported is not None
    assert "gitdep comes from the git repository file:///src/gitdep" in gitdep.unsupported
    assert localdep.unsupported is not None
    assert "the local directory ../localdep" in localdep.unsupported
    assert lock.skipped == ("myproj (editable, the local directory .)",)
    assert [p.name for p in lock.applicable(LINUX)] == ["alpha", "gitdep", "localdep"]
