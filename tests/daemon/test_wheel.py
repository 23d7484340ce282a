"""Wheel validation and the unpack-once cache: hostile wheels are refused before any write."""

from __future__ import annotations

import base64
import hashlib
import os
import stat
import threading
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from satchel.daemon.errors import InvalidWheel
from satchel.daemon.installing.wheel import (
    load_unpacked,
    remove_unpacked,
    sweep_temporaries,
    unpack,
    unpack_all,
)
from satchel.daemon.installing.wheelfile import validate_wheel
from tests.support.wheels import build_wheel, record_hash

pytestmark = pytest.mark.filterwarnings("ignore:Duplicate name:UserWarning")

DIST = "evil-1.0.dist-info"


def _raw_wheel(
    path: Path,
    members: list[tuple[str, bytes]],
    *,
    record: bool = True,
    rows: dict[str, str] | None = None,
    extra_rows: tuple[str, ...] = (),
    attrs: dict[str, int] | None = None,
    compress: int = zipfile.ZIP_DEFLATED,
    wheel_text: bytes = b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n\n",
) -> Path:
    """A wheel with exactly *members* (plus METADATA/WHEEL) and a RECORD we choose."""
    attrs = attrs or {}
    base = [
        (f"{DIST}/METADATA", b"Metadata-Version: 2.1\nName: evil\nVersion: 1.0\n\n"),
        (f"{DIST}/WHEEL", wheel_text),
    ]
    everything = members + base
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in everything:
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            info.compress_type = compress
            info.external_attr = attrs.get(name, 0o100644) << 16
            zf.writestr(info, data)
        if record:
            lines = [(rows or {}).get(n, f"{n},{record_hash(d)},{len(d)}") for n, d in everything]
            lines = [line for line in lines if line] + list(extra_rows)
            text = "\n".join([*lines, f"{DIST}/RECORD,,"]) + "\n"
            zf.writestr(f"{DIST}/RECORD", text)
    return path


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


_OK = b"x = 1\n"


def _ok(name: str) -> tuple[str, bytes]:
    return (name, _OK)


HOSTILE: dict[str, Callable[[Path], Path]] = {
    "dotdot": lambda p: _raw_wheel(p, [_ok("evil/../../escape.py")]),
    "absolute": lambda p: _raw_wheel(p, [_ok("/tmp/escape.py")]),
    "drive-letter": lambda p: _raw_wheel(p, [_ok("C:/escape.py")]),
    "backslash": lambda p: _raw_wheel(p, [_ok("evil\\..\\escape.py")]),
    "symlink": lambda p: _raw_wheel(
        p, [("evil/link", b"/etc/passwd")], attrs={"evil/link": stat.S_IFLNK | 0o777}
    ),
    "record-hash-mismatch": lambda p: _raw_wheel(
        p,
        [_ok("evil/__init__.py")],
        rows={"evil/__init__.py": f"evil/__init__.py,{record_hash(b'other')},6"},
    ),
    "record-size-mismatch": lambda p: _raw_wheel(
        p,
        [_ok("evil/__init__.py")],
        rows={"evil/__init__.py": f"evil/__init__.py,{record_hash(_OK)},99"},
    ),
    "missing-record": lambda p: _raw_wheel(p, [_ok("evil/__init__.py")], record=False),
    "member-not-in-record": lambda p: _raw_wheel(
        p, [_ok("evil/__init__.py")], rows={"evil/__init__.py": ""}
    ),
    "record-entry-not-in-archive": lambda p: _raw_wheel(
        p, [], extra_rows=(f"ghost.py,{record_hash(b'')},0",)
    ),
    "record-entry-escapes": lambda p: _raw_wheel(
        p, [], extra_rows=(f"../ghost.py,{record_hash(b'')},0",)
    ),
    "unhashed-entry": lambda p: _raw_wheel(
        p, [_ok("evil/__init__.py")], rows={"evil/__init__.py": "evil/__init__.py,,"}
    ),
    "duplicate-member": lambda p: _raw_wheel(p, [_ok("evil/a.py"), _ok("evil/a.py")]),
    "case-duplicate": lambda p: _raw_wheel(p, [_ok("evil/a.py"), _ok("evil/A.py")]),
    "compression-bomb": lambda p: _raw_wheel(p, [("evil/zeros.bin", b"\0" * (65 * 1024 * 1024))]),
    "many-small-bombs": lambda p: _raw_wheel(
        p, [(f"evil/zeros{n}.bin", b"\0" * (9 * 1024 * 1024)) for n in range(8)]
    ),
    "unknown-data-scheme": lambda p: _raw_wheel(p, [_ok("evil-1.0.data/etc/passwd")]),
    "data-file-without-scheme": lambda p: _raw_wheel(p, [_ok("evil-1.0.data/stray")]),
    "two-dist-infos": lambda p: _raw_wheel(p, [_ok("other-1.0.dist-info/METADATA")]),
    # zipfile cannot even store a NUL in a name, so smuggle it through RECORD.
    "nul-byte": lambda p: _raw_wheel(p, [], extra_rows=(f"evil/a\0.py,{record_hash(b'')},0",)),
    "bad-script-name": lambda p: _raw_wheel(
        p, [(f"{DIST}/entry_points.txt", b"[console_scripts]\n../../x = evil:main\n")]
    ),
    "wheel-version-2": lambda p: _raw_wheel(
        p, [], wheel_text=b"Wheel-Version: 2.0\nRoot-Is-Purelib: true\n\n"
    ),
}

#: What each rejection must say (so a test cannot pass for the wrong reason).
REASONS = {
    "dotdot": "'..' path component",
    "absolute": "absolute path",
    "drive-letter": "absolute path",
    "backslash": "backslash",
    "symlink": "symbolic link",
    "record-hash-mismatch": "does not match its RECORD hash",
    "record-size-mismatch": "RECORD says 99",
    "missing-record": "RECORD is missing",
    "member-not-in-record": "not listed in RECORD",
    "record-entry-not-in-archive": "'ghost.py', which is not in the archive",
    "record-entry-escapes": "'..' path component",
    "unhashed-entry": "unusable hash",
    "duplicate-member": "appears twice",
    "case-duplicate": "differ only in case",
    "compression-bomb": "compression ratio",
    "many-small-bombs": "expands above",
    "unknown-data-scheme": "known .data scheme",
    "data-file-without-scheme": "known .data scheme",
    "two-dist-infos": "exactly one .dist-info",
    "nul-byte": "NUL",
    "bad-script-name": "not a plain file name",
    "wheel-version-2": "Wheel-Version",
}


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_validation_rejects_hostile_wheel(tmp_path: Path, kind: str) -> None:
    wheel = HOSTILE[kind](tmp_path / "evil-1.0-py3-none-any.whl")
    with pytest.raises(InvalidWheel, match=r"evil-1\.0-py3-none-any\.whl") as caught:
        validate_wheel(wheel)
    assert REASONS[kind] in str(caught.value)


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_unpack_of_hostile_wheel_leaves_the_cache_empty(tmp_path: Path, kind: str) -> None:
    wheel = HOSTILE[kind](tmp_path / "evil-1.0-py3-none-any.whl")
    root = tmp_path / "unpacked"
    with pytest.raises(InvalidWheel):
        unpack(wheel, _sha(wheel), root)
    assert list(root.iterdir()) == []
    assert not (tmp_path / "escape.py").exists()


def test_error_names_the_offending_member(tmp_path: Path) -> None:
    wheel = HOSTILE["dotdot"](tmp_path / "evil-1.0-py3-none-any.whl")
    with pytest.raises(InvalidWheel, match=r"evil/\.\./\.\./escape\.py"):
        validate_wheel(wheel)


def test_a_highly_compressible_library_like_pillows_is_accepted(tmp_path: Path) -> None:
    """pillow 13 ships a 2 MiB shared library that deflates 224:1; that is not a bomb."""
    padded = b"\x7fELF" + b"\0" * (2 * 1024 * 1024)
    wheel = _raw_wheel(tmp_path / "evil-1.0-py3-none-any.whl", [("evil/libpadded.so", padded)])
    info = validate_wheel(wheel)
    assert any(f.member == "evil/libpadded.so" for f in info.manifest.files)


def test_dist_info_must_match_the_file_name(tmp_path: Path) -> None:
    wheel = _raw_wheel(tmp_path / "other-1.0-py3-none-any.whl", [])
    with pytest.raises(InvalidWheel, match="does not match the file name"):
        validate_wheel(wheel)


def test_expected_name_and_version_are_enforced(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path, "good", "1.0")
    with pytest.raises(InvalidWheel, match="expected 'bad'"):
        validate_wheel(wheel, expected_name="bad")
    with pytest.raises(InvalidWheel, match=r"expected 2\.0"):
        validate_wheel(wheel, expected_version="2.0")


def test_unparsable_file_name_is_rejected(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path, "good", "1.0")
    with pytest.raises(InvalidWheel, match="bad file name"):
        validate_wheel(wheel.rename(tmp_path / "not-a-wheel.whl"))


def test_valid_wheel_manifest_places_data_schemes(tmp_path: Path) -> None:
    wheel = build_wheel(
        tmp_path,
        "good-pkg",
        "1.0",
        data={"scripts": {"tool": "#!python\n"}, "headers": {"g.h": "int g;"}},
        console_scripts={"good": "good_pkg:main"},
    )
    manifest = validate_wheel(wheel, expected_name="Good_Pkg", expected_version="1.0").manifest
    placed = {(f.scheme, f.path) for f in manifest.files}
    assert ("scripts", "tool") in placed
    assert ("headers", "g.h") in placed
    assert ("purelib", "good_pkg/__init__.py") in placed
    assert [e.name for e in manifest.entry_points] == ["good"]


def test_unpack_writes_a_read_only_tree_with_executable_bits(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path, "good", "1.0", data={"scripts": {"tool": "#!python\n"}})
    unpacked = unpack(wheel, _sha(wheel), tmp_path / "unpacked")
    init = unpacked.tree / "good" / "__init__.py"
    tool = unpacked.tree / "good-1.0.data" / "scripts" / "tool"
    assert init.read_text() == '__version__ = "1.0"\n'
    assert stat.S_IMODE(init.stat().st_mode) == 0o400
    assert stat.S_IMODE(tool.stat().st_mode) == 0o500


def test_unpack_happens_once_per_sha256(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path, "good", "1.0")
    root = tmp_path / "unpacked"
    first = unpack(wheel, _sha(wheel), root)
    inode = (first.tree / "good" / "__init__.py").stat().st_ino
    second = unpack(wheel, _sha(wheel), root)
    assert (second.tree / "good" / "__init__.py").stat().st_ino == inode
    assert load_unpacked(root, _sha(wheel)) == first


def test_concurrent_unpacks_of_one_wheel_agree(tmp_path: Path) -> None:
    wheel = build_wheel(
        tmp_path, "good", "1.0", files={f"good/m{i}.py": f"x = {i}\n" for i in range(200)}
    )
    root = tmp_path / "unpacked"
    results: list[object] = []
    threads = [
        threading.Thread(target=lambda: results.append(unpack(wheel, _sha(wheel), root)))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 4
    assert os.listdir(root) == [_sha(wheel)]  # no temporary directory left behind
    assert len(list((root / _sha(wheel) / "tree" / "good").iterdir())) == 200


def test_unpack_all_publishes_nothing_when_one_wheel_is_bad(tmp_path: Path) -> None:
    good = build_wheel(tmp_path, "good", "1.0")
    bad = HOSTILE["dotdot"](tmp_path / "evil-1.0-py3-none-any.whl")
    root = tmp_path / "unpacked"
    with pytest.raises(InvalidWheel):
        unpack_all([(good, _sha(good)), (bad, _sha(bad))], root)
    assert list(root.iterdir()) == []


def test_unpack_all_returns_trees_in_request_order(tmp_path: Path) -> None:
    first = build_wheel(tmp_path, "first", "1.0")
    second = build_wheel(tmp_path, "second", "1.0")
    root = tmp_path / "unpacked"
    unpack(second, _sha(second), root)  # one already there, one new
    result = unpack_all([(first, _sha(first)), (second, _sha(second))], root)
    assert [u.manifest.name for u in result] == ["first", "second"]


def test_installed_hashes_are_sha256_even_when_record_used_sha512(tmp_path: Path) -> None:
    data = b"x = 1\n"
    digest = hashlib.sha512(data).digest()
    sha512 = "sha512=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    wheel = _raw_wheel(
        tmp_path / "evil-1.0-py3-none-any.whl",
        [("evil/__init__.py", data)],
        rows={"evil/__init__.py": f"evil/__init__.py,{sha512},{len(data)}"},
    )
    unpacked = unpack(wheel, _sha(wheel), tmp_path / "unpacked")
    hashes = {f.member: f.hash for f in unpacked.manifest.files}
    assert hashes["evil/__init__.py"] == record_hash(data)


def test_sweep_removes_staging_left_by_a_killed_unpacker(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path, "good", "1.0")
    root = tmp_path / "unpacked"
    kept = unpack(wheel, _sha(wheel), root)
    (root / f".satchel-tmp-{_sha(wheel)}.abcdef123456" / "tree").mkdir(parents=True)
    assert sweep_temporaries(root) == 1
    assert os.listdir(root) == [kept.sha256]


def test_remove_unpacked_deletes_the_tree(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path, "good", "1.0")
    root = tmp_path / "unpacked"
    unpack(wheel, _sha(wheel), root)
    remove_unpacked(root, _sha(wheel))
    assert os.listdir(root) == []
    assert load_unpacked(root, _sha(wheel)) is None
