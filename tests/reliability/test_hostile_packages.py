"""Hostile packages and index pages: nothing is written outside the cache or the environment.

Each hostile wheel is served by a real loopback index, prefetched, then installed into an
environment that already holds a good package. The install must fail with a clear error, the
environment must be exactly as before (``pip list`` scan and file listing), the store must stay
consistent, and no file may appear outside: every place a ``..`` or absolute member could land
(resolved from each directory the daemon writes into, at every depth) is checked, and a sentinel
tree next to the environment is compared before and after.

Unit tests of `satchel.daemon.installing.wheel` check the validator member by member; this suite
checks the
whole path a user takes (index -> store -> unpack -> link) with the real daemon.
"""

from __future__ import annotations

import base64
import hashlib
import os
import stat
import sys
import zipfile
from pathlib import Path

import pytest

from tests.reliability.harness import Rig, env_state, snapshot_tree
from tests.reliability.hostile_server import Handler, HostileServer, reply
from tests.support.wheels import build_wheel

ESCAPE = "escaped_by_satchel_test.py"


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def _hostile_wheel(
    out: Path,
    members: list[tuple[zipfile.ZipInfo | str, bytes]],
    *,
    record: str | None = None,
    name: str = "evil",
) -> Path:
    """``evil-1.0`` with the given extra members and a RECORD listing them (correct hashes
    unless *record* replaces it)."""
    out.mkdir(parents=True, exist_ok=True)
    dist_info = f"{name}-1.0.dist-info"
    base = [
        (f"{name}/__init__.py", b""),
        (f"{dist_info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n".encode()),
        (f"{dist_info}/WHEEL", b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"),
    ]
    everything: list[tuple[zipfile.ZipInfo | str, bytes]] = [*base, *members]
    lines = [
        _record_line(m.filename if isinstance(m, zipfile.ZipInfo) else m, d) for m, d in everything
    ]
    text = record if record is not None else "\n".join([*lines, f"{dist_info}/RECORD,,"]) + "\n"
    path = out / f"{name}-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for member, data in everything:
            zf.writestr(member, data)
        zf.writestr(f"{dist_info}/RECORD", text)
    return path


def _symlink(name: str, target: str) -> tuple[zipfile.ZipInfo, bytes]:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info, target.encode()


class Scene:
    """A rig with an environment holding ``good`` and a sentinel tree beside it."""

    def __init__(self, rig: Rig) -> None:
        self.rig = rig
        self.venv = rig.root / "venv"
        self.sentinel = rig.root / "sentinel"
        (self.sentinel / "inner").mkdir(parents=True)
        (self.sentinel / "inner" / "keep.txt").write_text("untouched\n")
        rig.index.add(build_wheel(rig.root / "dist", "good", "1.0"))
        rig.ok("install", "good", "--venv", str(self.venv), "--python", sys.executable)
        self.before = env_state(self.venv)
        self.sentinel_before = snapshot_tree(self.sentinel)

    def landing_spots(self) -> list[Path]:
        """Where an escaping member named `ESCAPE` could end up, at any depth, from any
        directory the daemon writes into."""
        cache = self.rig.cache
        bases = [
            *self.venv.glob("lib/python*/site-packages"),
            self.venv / "bin",
            self.venv,
            cache / "tmp",
            cache / "unpacked",
            *cache.glob("unpacked/*/tree"),
            *cache.glob("unpacked/*"),
        ]
        spots = {Path("/") / ESCAPE, self.sentinel / ESCAPE}
        for base in bases:
            for depth in range(12):
                spots.add(Path(os.path.normpath(base / ("../" * depth) / ESCAPE)))
                spots.add(Path(os.path.normpath(base / ("../" * depth) / "sentinel" / ESCAPE)))
        return sorted(spots)

    def assert_refused(self, *, mentions: tuple[str, ...]) -> str:
        result = self.rig.satchel(
            "install", "good", "evil", "--venv", str(self.venv), "--python", sys.executable
        )
        assert result.returncode != 0, "a hostile wheel was installed"
        message = result.stderr.lower()
        assert "traceback" not in message, result.stderr
        assert "invalid wheel evil-1.0-py3-none-any.whl:" in message, "the file is not named"
        assert any(word in message for word in mentions), result.stderr
        assert env_state(self.venv) == self.before, "the environment changed"
        assert snapshot_tree(self.sentinel) == self.sentinel_before
        escaped = [p for p in self.landing_spots() if os.path.lexists(p)]
        assert escaped == [], f"written outside the cache and the environment: {escaped}"
        self.rig.assert_store_consistent()
        self.rig.ok("ping")
        print(f"\nrefused: {result.stderr.strip()}")
        return result.stderr


@pytest.fixture
def scene(rig: Rig) -> Scene:
    return Scene(rig)


def _serve(scene: Scene, *members: tuple[zipfile.ZipInfo | str, bytes], **kw: str) -> None:
    scene.rig.index.add(_hostile_wheel(scene.rig.root / "dist-evil", list(members), **kw))


@pytest.mark.parametrize("depth", [1, 4, 8])
def test_dot_dot_member_is_refused(scene: Scene, depth: int) -> None:
    _serve(scene, ("../" * depth + ESCAPE, b"print('escaped')\n"))
    scene.assert_refused(mentions=("..", "outside", "unsafe", "path"))


def test_absolute_member_is_refused(scene: Scene) -> None:
    _serve(scene, (str(scene.sentinel / ESCAPE), b"print('escaped')\n"))
    scene.assert_refused(mentions=("absolute", "outside", "unsafe", "path"))


def test_symlink_out_of_the_tree_is_refused(scene: Scene) -> None:
    _serve(scene, _symlink("evil/link", str(scene.sentinel)))
    scene.assert_refused(mentions=("symlink", "link"))


def test_symlink_then_write_through_it_is_refused(scene: Scene) -> None:
    """The classic two-step: a symlink to outside, then a file "inside" the symlink."""
    _serve(
        scene,
        _symlink("evil/door", "../../../../../sentinel"),
        ("evil/door/" + ESCAPE, b"print('escaped')\n"),
    )
    scene.assert_refused(mentions=("symlink", "link", "outside"))


def test_record_hash_mismatch_is_refused(scene: Scene) -> None:
    wrong = _record_line("evil/__init__.py", b"something else")
    dist_info = "evil-1.0.dist-info"
    meta = b"Metadata-Version: 2.1\nName: evil\nVersion: 1.0\n"
    wheel = b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    record = "\n".join(
        [
            wrong,
            _record_line(f"{dist_info}/METADATA", meta),
            _record_line(f"{dist_info}/WHEEL", wheel),
            f"{dist_info}/RECORD,,",
        ]
    )
    _serve(scene, record=record)
    scene.assert_refused(mentions=("record", "hash"))


def test_member_missing_from_record_is_refused(scene: Scene) -> None:
    dist_info = "evil-1.0.dist-info"
    meta = b"Metadata-Version: 2.1\nName: evil\nVersion: 1.0\n"
    wheel = b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    record = "\n".join(  # every member but evil/extra.py, with right hashes
        [
            _record_line("evil/__init__.py", b""),
            _record_line(f"{dist_info}/METADATA", meta),
            _record_line(f"{dist_info}/WHEEL", wheel),
            f"{dist_info}/RECORD,,",
        ]
    )
    _serve(scene, ("evil/extra.py", b"x = 1\n"), record=record)
    scene.assert_refused(mentions=("record",))


@pytest.mark.filterwarnings("ignore:Duplicate name")
def test_duplicate_members_are_refused(scene: Scene) -> None:
    _serve(scene, ("evil/twice.py", b"a = 1\n"), ("evil/twice.py", b"a = 2\n"))
    scene.assert_refused(mentions=("duplicate", "twice"))


def test_zip_bomb_is_refused_before_it_fills_the_disk(scene: Scene) -> None:
    _serve(scene, ("evil/zeros.bin", b"\0" * (256 * 2**20)))  # 256 MiB deflated to ~250 KiB
    scene.assert_refused(mentions=("ratio", "expands", "size"))
    unpacked = sum(
        p.stat().st_size for p in (scene.rig.cache / "unpacked").rglob("*") if p.is_file()
    )
    assert unpacked < 10 * 2**20


# -- hostile index pages ---------------------------------------------------------------------


def test_hostile_links_on_an_index_page_are_never_followed(rig: Rig) -> None:
    """A page offering: a path-traversal file name, a file:// link to a real wheel on this
    machine, malformed and missing hashes. None is fetched, nothing lands outside the cache."""
    local = build_wheel(rig.root / "sentinel", "evil", "1.0")
    good = build_wheel(rig.root / "dist", "evil", "0.9").read_bytes()
    sha = hashlib.sha256(local.read_bytes()).hexdigest()
    before = snapshot_tree(rig.root / "sentinel")
    with HostileServer() as server:
        traversal = server.url("/files/..%2F..%2F..%2Fsentinel%2Fevil-1.0-py3-none-any.whl")
        page = (
            "<html><body>"
            f'<a href="{traversal}#sha256={sha}">../../../sentinel/evil-1.0-py3-none-any.whl</a>'
            f'<a href="{local.as_uri()}#sha256={sha}">evil-1.0-py3-none-any.whl</a>'
            f'<a href="{server.url("/files/evil-0.9-py3-none-any.whl")}#sha256=zz">'
            "evil-0.9-py3-none-any.whl</a>"
            f'<a href="{server.url("/files/evil-0.8-py3-none-any.whl")}#sha256=">'
            "evil-0.8-py3-none-any.whl</a>"
            "</body></html>"
        ).encode()

        def serve_page(handler: Handler) -> None:
            reply(handler, 200, page, Content_Type="text/html")

        def serve_good(handler: Handler) -> None:
            reply(handler, 200, good, Content_Type="application/octet-stream")

        server.routes["/simple/evil/"] = serve_page
        server.routes["/files/evil-0.9-py3-none-any.whl"] = serve_good
        rig.configure(server.url("/simple/"))
        result = rig.satchel("prefetch", "evil")
        assert result.returncode != 0, "a hostile link was used"
        assert "traceback" not in result.stderr.lower()
        assert "evil" in result.stderr, result.stderr
        print(f"\nhostile page: {result.stderr.strip()}")
        files_asked = [p for p in ("/files/evil-0.9-py3-none-any.whl",) if server.count(p)]
        assert files_asked == [], "downloaded a file whose hash is malformed"
    assert snapshot_tree(rig.root / "sentinel") == before
    assert rig.assert_store_consistent() == 0
    rig.ok("ping")
