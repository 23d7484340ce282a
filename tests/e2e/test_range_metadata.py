"""Issue 13.7, end to end: an index without PEP 658 metadata no longer costs whole wheels.

Each test runs the real client, which autostarts its own daemon, against a loopback
`IndexServer` with ``metadata=False`` (no ``.metadata`` files, as many private registries) that
honours, ignores or refuses HTTP byte ranges. The wheels are padded with megabytes of random
data, so a whole-file download would show in the bytes the server sent (`body_bytes`), which is
what is asserted; never a duration.

* ranges honoured: the resolve reads each METADATA with a few small range requests, shows its
  progress, says what it fetched; prefetch then downloads every wheel (counted as downloaded)
  with the METADATA check passing, and install works;
* ranges ignored or refused: the resolve falls back to whole wheels, stores them, and says so;
  a prefetch on a fresh cache counts them as downloaded (it said "0 downloaded" before);
* an archive whose central directory lies, or whose METADATA claims an oversize length, is
  refused with a message naming the file and the cause, after a few small reads.
"""

from __future__ import annotations

import os
import random
import re
import struct
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.world import World, site_packages
from tests.support.wheels import build_wheel

#: Random padding per wheel: a whole-file read of any one of them dwarfs every range read.
PAD = 2 * 2**20
#: What a resolve may receive per wheel by range requests: the 64 KiB tail and the member.
RANGE_BUDGET = 96 * 1024

PROJECTS = {
    "alpha": ["beta>=1", "gamma"],
    "beta": ["delta"],
    "gamma": [],
    "delta": [],
}


def _publish(world: World, seed: int) -> dict[str, Path]:
    """One padded wheel per project of `PROJECTS` (beta also in an older version)."""
    rng = random.Random(seed)
    wheels = {}
    for name, requires in PROJECTS.items():
        pad = rng.randbytes(PAD)
        files = {f"{name}/__init__.py": f"NAME = {name!r}\n", f"{name}/pad.bin": pad}
        files.update({f"{name}/mod{i}.py": f"X = {i}\n" for i in range(40)})
        wheels[name] = world.index.add(
            build_wheel(world.dist, name, "1.0", requires=requires, files=files)
        )
    world.index.add(build_wheel(world.dist, "beta", "0.5"))
    return wheels


def _file_bytes(world: World) -> dict[str, int]:
    return {p: n for p, n in world.index.body_bytes.items() if p.startswith("/files/")}


@pytest.fixture
def seed() -> int:
    value = int.from_bytes(os.urandom(4), "big")
    print(f"padding seed: {value}")
    return value


@pytest.fixture
def honouring(tmp_path: Path, seed: int) -> Iterator[World]:
    world = World(tmp_path, metadata=False, ranges="honour")
    _publish(world, seed)
    try:
        yield world
    finally:
        world.close()


def test_a_resolve_reads_metadata_by_range_requests_and_prefetch_then_install_work(
    honouring: World, tmp_path: Path
) -> None:
    """issue 13.7: range requests, progress, a truthful summary, then the wheels themselves."""
    world = honouring
    result = world.ok("resolve", "alpha")
    pins = result.stdout
    for line in ("alpha==1.0", "beta==1.0", "gamma==1.0", "delta==1.0"):
        assert line in pins, pins
    sent = _file_bytes(world)
    assert set(sent) == {f"/files/{n}-1.0-py3-none-any.whl" for n in PROJECTS}, sent
    for path, count in sent.items():
        assert 0 < count <= RANGE_BUDGET, (path, count)
    ranged = [r for r in world.index.records if r.path.startswith("/files/")]
    assert all(r.headers.get("range", "").startswith("bytes=") for r in ranged), ranged
    # Progress, as plain lines (stderr is a pipe), and the summary of what was fetched.
    assert "resolve: metadata 4/4 (range requests)" in result.stderr, result.stderr
    assert re.search(r"resolve: \d+ metadata request\(s\)", result.stderr), result.stderr
    assert "whole file" not in result.stderr, result.stderr
    assert world.ok("cache", "verify", "--json")

    world.index.reset_log()
    prefetch = world.ok("prefetch", "alpha")
    assert "prefetched 4 files" in prefetch.stdout, prefetch.stdout
    assert "4 downloaded" in prefetch.stdout and "0 already cached" in prefetch.stdout
    # Downloaded whole now, and each wheel's own METADATA matched the range-read one (a
    # mismatch is an error of its own: `Catalog._record_download`).
    assert all(count > PAD for count in _file_bytes(world).values()), _file_bytes(world)

    venv = tmp_path / "venv"
    world.ok("install", "--venv", str(venv), "--offline", "alpha")
    listed = world.pip_list(venv)
    assert {k: listed[k] for k in PROJECTS} == dict.fromkeys(PROJECTS, "1.0"), listed
    assert (site_packages(venv) / "delta" / "pad.bin").stat().st_size == PAD


@pytest.mark.parametrize("mode", ["ignore", "refuse"])
def test_without_ranges_a_fresh_prefetch_counts_the_wheels_read_for_metadata_as_downloads(
    tmp_path: Path, seed: int, mode: str
) -> None:
    """issue 13.7: the whole-file fallback, and "0 downloaded" no more on a fresh cache."""
    world = World(tmp_path, metadata=False, ranges=mode)
    try:
        _publish(world, seed)
        prefetch = world.ok("prefetch", "alpha")
        assert "prefetched 4 files" in prefetch.stdout, prefetch.stdout
        assert "4 downloaded" in prefetch.stdout, prefetch.stdout
        assert "0 already cached" in prefetch.stdout, prefetch.stdout
        # One range request found out the host serves none; every later wheel came whole.
        files = [r for r in world.index.records if r.path.startswith("/files/")]
        assert sum(1 for r in files if "range" in r.headers) == 1, files
        blobs = [p for p in (world.cache / "blobs").rglob("*") if p.is_file()]
        assert len(blobs) == 4, blobs

        # A resolve on another fresh cache says what it downloaded, and keeps it.
        other = World(tmp_path / "second", metadata=False, ranges=mode)
        try:
            _publish(other, seed)
            result = other.ok("resolve", "alpha")
            assert "beta==1.0" in result.stdout, result.stdout
            assert "4 whole file(s) downloaded for their metadata" in result.stderr, result.stderr
            assert "resolve: metadata 4/4 (whole files)" in result.stderr, result.stderr
            again = other.ok("prefetch", "alpha")
            assert "0 downloaded" in again.stdout and "4 already cached" in again.stdout
        finally:
            other.close()
    finally:
        world.close()


def _patched(wheel: Path, patch: str) -> Path:
    """*wheel* with its zip directory made to lie: ``cd-size`` (the end record claims a
    central directory running past the file) or ``member-size`` (METADATA claims 64 MiB)."""
    data = bytearray(wheel.read_bytes())
    end = data.rfind(b"PK\x05\x06")
    if patch == "cd-size":
        struct.pack_into("<L", data, end + 12, len(data) * 2)
    else:
        with zipfile.ZipFile(wheel) as zf:
            names = zf.namelist()
        target = next(n for n in names if n.endswith(".dist-info/METADATA")).encode()
        entry = data.rfind(b"PK\x01\x02", 0, data.rfind(target))
        struct.pack_into("<L", data, entry + 24, 64 * 2**20)
    wheel.write_bytes(bytes(data))
    return wheel


@pytest.mark.parametrize(
    ("patch", "says"),
    [
        ("cd-size", "does not end where the end record begins"),
        ("member-size", "over the 16777216 byte limit for core metadata"),
    ],
)
def test_a_lying_zip_directory_is_refused_naming_the_file_and_the_cause(
    tmp_path: Path, seed: int, patch: str, says: str
) -> None:
    """issue 13.7: a central directory that lies is refused after small reads, not followed."""
    world = World(tmp_path, metadata=False, ranges="honour")
    try:
        rng = random.Random(seed)
        files = {"liar/__init__.py": "", "liar/pad.bin": rng.randbytes(PAD)}
        wheel = build_wheel(tmp_path / "build", "liar", "1.0", files=files)
        world.index.add(_patched(wheel, patch))
        result = world.satchel("resolve", "liar")
        assert result.returncode != 0, result.stdout
        assert "liar-1.0-py3-none-any.whl" in result.stderr, result.stderr
        assert says in result.stderr, result.stderr
        assert "internal error" not in result.stderr, result.stderr
        sent = _file_bytes(world)
        assert sum(sent.values()) <= RANGE_BUDGET, sent
    finally:
        world.close()
