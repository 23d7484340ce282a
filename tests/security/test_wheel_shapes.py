"""Hostile wheel shapes that once ended in "internal error" (issue 11.10), end to end.

Each wheel is served by a real loopback index and installed by the real daemon into an
environment that already holds ``good``: the install must fail with ``invalid-wheel`` and a
message naming the file and the cause, the environment must be unchanged, nothing may land
outside, and the store must stay consistent (`Scene.assert_refused`).
"""

from __future__ import annotations

import base64
import hashlib
import struct
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from satchel.daemon.errors import InvalidWheel, SatchelError
from satchel.daemon.installing.wheelfile import central_directory_problem, validate_wheel
from satchel.daemon.settings.config import IndexConfig
from satchel.daemon.upstream.client import Upstream
from satchel.daemon.upstream.limits import Limits
from tests.reliability.harness import env_state, memory_mib, rig_for
from tests.reliability.test_hostile_packages import Scene, _hostile_wheel
from tests.support.wheels import build_wheel, corrupt_member


@pytest.fixture
def scene(tmp_path: Path) -> Iterator[Scene]:
    for rig in rig_for(tmp_path):
        yield Scene(rig)


def _serve(scene: Scene, members: list[tuple[zipfile.ZipInfo | str, bytes]]) -> None:
    scene.rig.index.add(_hostile_wheel(scene.rig.root / "dist-evil", members))


def test_a_file_that_is_also_a_directory_is_refused(scene: Scene) -> None:
    """issue 11.10: ``evil/a`` is a file and ``evil/a/b`` needs it to be a directory."""
    _serve(scene, [("evil/a", b"file\n"), ("evil/a/b", b"below a file\n")])
    scene.assert_refused(mentions=("'evil/a' is both a file and a directory",))


def test_a_300_character_member_name_is_refused(scene: Scene) -> None:
    """issue 11.10: a path component longer than any filesystem allows (255 bytes)."""
    _serve(scene, [("evil/" + "x" * 300 + ".py", b"")])
    scene.assert_refused(mentions=("longer than 255 bytes",))


def test_a_member_path_longer_than_the_limit_is_refused(scene: Scene) -> None:
    """issue 11.10: every component short, the whole path far too long to install."""
    _serve(scene, [("evil/" + ("d" * 200 + "/") * 6 + "f.py", b"")])
    scene.assert_refused(mentions=("path longer than",))


def test_two_dist_info_directories_are_refused(scene: Scene) -> None:
    """issue 11.10: a second ``.dist-info`` (here of another project) beside the wheel's own."""
    _serve(scene, [("other-2.0.dist-info/METADATA", b"Metadata-Version: 2.1\nName: other\n")])
    scene.assert_refused(mentions=("exactly one .dist-info directory",))


def test_a_file_and_a_directory_meeting_once_installed_are_refused(scene: Scene) -> None:
    """issue 11.10: the clash only appears once ``.data/purelib`` is placed beside the root."""
    _serve(scene, [("evil/a", b"file\n"), ("evil-1.0.data/purelib/evil/a/b", b"below a file\n")])
    scene.assert_refused(mentions=("is both a file and a directory",))


def test_a_wheel_of_hundreds_of_thousands_of_empty_members_is_refused_in_bounded_memory(
    scene: Scene,
) -> None:
    """issue 11.13: 400,000 empty members (a 70 MB download, a 24 MiB central directory;
    real wheels hold at most a few tens of thousands of files). Reading such a central
    directory costs ~1.3 KB of memory per member: refused from its declared size before it is
    read, naming the limit. (Before: the daemon's peak grew past 500 MiB, then it unpacked
    and linked 400,000 files.)"""
    scene.rig.ok("ping")
    pid = scene.rig.env.daemon_pid()
    _serve(scene, [(f"evil/m/{i}", b"") for i in range(400_000)])
    scene.assert_refused(mentions=("central directory",))
    peak = memory_mib(pid)
    print(f"daemon peak: {peak:.0f} MiB")
    assert peak < 250, f"the daemon's peak was {peak:.0f} MiB"


def test_a_zip64_end_record_declaring_a_huge_central_directory_is_refused(tmp_path: Path) -> None:
    """issue 11.13, in process: the size zipfile would read comes from the zip64 end record
    when the classic one says 0xFFFFFFFF; a zip64 record declaring 1 GiB is refused, and an
    honest wheel passes."""
    honest = build_wheel(tmp_path / "dist", "honest", "1.0")
    assert central_directory_problem(honest) is None
    data = honest.read_bytes()
    at = data.rfind(b"PK\x05\x06")
    eocd = bytearray(data[at:])
    eocd[12:16] = b"\xff\xff\xff\xff"
    record = (
        b"PK\x06\x06"
        + struct.pack("<QHHII", 44, 45, 45, 0, 0)
        + struct.pack("<QQQQ", 1, 1, 2**30, int.from_bytes(eocd[16:20], "little"))
    )
    locator = b"PK\x06\x07" + struct.pack("<IQI", 0, at, 1)
    forged = tmp_path / "forged-1.0-py3-none-any.whl"
    forged.write_bytes(data[:at] + record + locator + bytes(eocd))
    assert "1073741824 bytes, above the 16777216 byte limit" in str(
        central_directory_problem(forged)
    )
    real_size = int.from_bytes(data[at + 12 : at + 16], "little")
    record = record[:40] + struct.pack("<Q", real_size) + record[48:]
    forged.write_bytes(data[:at] + record + locator + bytes(eocd))
    assert central_directory_problem(forged) is None  # zip64 and honest


def test_an_end_record_hiding_its_signature_in_its_own_fields_is_still_read(
    tmp_path: Path,
) -> None:
    """issue 11.13, in process: zipfile takes the last 22 bytes as the end record when they
    start with its signature and declare no comment, whatever those bytes hold. Entry counts
    spelling the signature again (``PK\\x05\\x06``: zipfile never checks them) made the
    check find that later, truncated copy and give up (None), while zipfile read the 1 GiB
    central directory the real record declares."""
    honest = build_wheel(tmp_path / "dist", "honest", "1.0")
    data = bytearray(honest.read_bytes())
    at = len(data) - 22
    assert data[at : at + 4] == b"PK\x05\x06" and data[-2:] == b"\0\0"
    data[at + 8 : at + 12] = b"PK\x05\x06"  # entries on this disk, entries in all
    data[at + 12 : at + 16] = struct.pack("<I", 2**30)
    forged = tmp_path / "forged-1.0-py3-none-any.whl"
    forged.write_bytes(bytes(data))
    assert "1073741824 bytes, above the 16777216 byte limit" in str(
        central_directory_problem(forged)
    )


def test_a_record_field_longer_than_csv_allows_is_refused(scene: Scene) -> None:
    """issue 11.10: a RECORD row whose path field is 200,000 characters (Python's csv refuses
    fields over 128 KiB). (Before: "internal error in install".)"""
    record = '"' + "a" * 200_000 + '",sha256=x,1\n'
    scene.rig.index.add(_hostile_wheel(scene.rig.root / "dist-evil", [], record=record))
    scene.assert_refused(mentions=("record is unreadable",))


def test_an_installed_record_longer_than_csv_allows_is_a_clear_error(scene: Scene) -> None:
    """issue 11.10: ``good``'s installed RECORD, rewritten by another tool, holds a 200,000
    character field; upgrading ``good`` fails naming that RECORD, and the environment is
    unchanged. (Before: "internal error in install".)"""
    record = next(scene.venv.glob("lib/python*/site-packages/good-1.0.dist-info/RECORD"))
    record.write_text(record.read_text() + '"' + "a" * 200_000 + '",,\n')
    before = env_state(scene.venv)
    scene.rig.index.add(build_wheel(scene.rig.root / "dist", "good", "2.0"))
    result = scene.rig.satchel(
        "install", "good==2.0", "--venv", str(scene.venv), "--python", sys.executable
    )
    assert result.returncode != 0, result.stderr
    assert str(record) in result.stderr and "internal error" not in result.stderr, result.stderr
    assert env_state(scene.venv) == before


@pytest.mark.parametrize(
    ("member", "data", "cause"),
    [
        (
            "evil-1.0.dist-info/WHEEL",
            b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
            + b"X-Pad: "
            + b"p" * (2 * 2**20)
            + b"\n",
            "WHEEL is larger than",
        ),
        (
            "evil-1.0.dist-info/entry_points.txt",
            b"[console_scripts]\n" + b"".join(b"s%d = evil:main\n" % i for i in range(1_100_000)),
            "entry_points.txt is larger than",
        ),
    ],
    ids=["wheel-2-mib", "entry-points-17-mib"],
)
def test_metadata_members_read_whole_are_bounded(
    tmp_path: Path, member: str, data: bytes, cause: str
) -> None:
    """issue 11.13, in process: WHEEL and entry_points.txt are read whole into the daemon's
    memory (and decoded: a second copy), so each has a cap, checked from the declared size
    before reading: a 2 MiB WHEEL, 17 MiB of entry points. (Before: read whole whatever their
    size; with a ratio just under 200:1 a 5 MB download is a 1 GiB WHEEL.)"""
    dist_info = "evil-1.0.dist-info"
    base = {
        "evil/__init__.py": b"",
        f"{dist_info}/METADATA": b"Metadata-Version: 2.1\nName: evil\nVersion: 1.0\n",
        f"{dist_info}/WHEEL": b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    base[member] = data
    wheel = tmp_path / "evil-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as zf:
        lines = [f"{name},{_digest(body)},{len(body)}" for name, body in base.items()]
        for name, body in base.items():
            zf.writestr(name, body)
        zf.writestr(f"{dist_info}/RECORD", "\n".join([*lines, f"{dist_info}/RECORD,,"]) + "\n")
    with pytest.raises(InvalidWheel, match=cause):
        validate_wheel(wheel, expected_name="evil", expected_version="1.0")


def _digest(data: bytes) -> str:
    raw = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={raw}"


async def test_a_local_indexs_wheel_metadata_is_read_within_the_caps(tmp_path: Path) -> None:
    """issue 11.13, in process: a wheel in a find-links directory (or a ``file://`` index,
    a shared mirror others write) offers no ``.metadata`` file, so its METADATA is read from
    the wheel itself, as a stored wheel's is: a METADATA declaring 32 MiB (the cap is 16 MiB)
    is refused naming the wheel, before it is read. (Before: read whole into the daemon, with
    no cap on it nor on the wheel's central directory.)"""
    links = tmp_path / "links"
    links.mkdir()
    wheel = links / "big-1.0-py3-none-any.whl"
    metadata = b"Metadata-Version: 2.1\nName: big\nVersion: 1.0\nX-Pad: " + b"a" * 2**25 + b"\n"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("big-1.0.dist-info/METADATA", metadata)
        zf.writestr("big-1.0.dist-info/WHEEL", "Wheel-Version: 1.0\nTag: py3-none-any\n")
        zf.writestr("big-1.0.dist-info/RECORD", "")
    config = msgspec.convert(
        {"name": "links", "url": links.as_uri(), "kind": "find-links"}, IndexConfig
    )
    async with Upstream(limits=Limits()) as up:
        (entry,) = (await up.fetch_page(config, "big")).files
        with pytest.raises(SatchelError) as raised:
            await up.fetch_core_metadata(config, entry)
    print(raised.value)
    assert "big-1.0-py3-none-any.whl" in str(raised.value)
    assert "larger than the 16777216 byte limit" in str(raised.value)


@pytest.mark.parametrize("member", ["RECORD", "WHEEL"])
def test_a_member_whose_compressed_bytes_are_corrupt_is_refused(scene: Scene, member: str) -> None:
    """issue 11.10: a wheel whose RECORD or WHEEL member's deflate stream is corrupt (the
    index's sha256 matches: it served it so) is refused naming the member, as an unreadable
    RECORD is. (Before: zlib's error escaped as "internal error in install".)"""
    wheel = _hostile_wheel(scene.rig.root / "dist-evil", [])
    corrupt_member(wheel, f"evil-1.0.dist-info/{member}", 16)
    scene.rig.index.add(wheel)
    scene.assert_refused(mentions=(f"{member.lower()} is unreadable",))
