"""Link modes: hard links share the cached inode, copies and clones do not; auto falls back."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from satchel.daemon.installing.linking import Linker, LinkMode, clone_file


def _source(tmp_path: Path, name: str = "src.py", data: bytes = b"x = 1\n") -> Path:
    src = tmp_path / "cache" / name
    src.parent.mkdir(exist_ok=True)
    src.write_bytes(data)
    src.chmod(0o444)
    return src


def _clone_supported(tmp_path: Path) -> bool:
    probe = _source(tmp_path, "probe")
    try:
        clone_file(str(probe), str(tmp_path / "probe-clone"), 0o644)
    except OSError as exc:
        assert exc.errno in (errno.EOPNOTSUPP, errno.EXDEV, errno.EINVAL, errno.ENOTTY)
        return False
    return True


def test_hardlink_shares_the_cached_inode(tmp_path: Path) -> None:
    src = _source(tmp_path)
    linker = Linker("hardlink")
    linker.place(str(src), str(tmp_path / "dst.py"), 0o644)
    assert (tmp_path / "dst.py").stat().st_ino == src.stat().st_ino
    assert linker.used == {"hardlink"}


def test_copy_is_an_independent_file_with_the_requested_mode(tmp_path: Path) -> None:
    src = _source(tmp_path, data=b"y" * 300_000)
    Linker("copy").place(str(src), str(tmp_path / "dst.py"), 0o755)
    dst = tmp_path / "dst.py"
    assert dst.read_bytes() == src.read_bytes()
    assert dst.stat().st_ino != src.stat().st_ino
    assert stat.S_IMODE(dst.stat().st_mode) == 0o755


def test_clone_either_works_or_reports_unsupported(tmp_path: Path) -> None:
    src = _source(tmp_path)
    dst = tmp_path / "dst.py"
    if _clone_supported(tmp_path):
        Linker("clone").place(str(src), str(dst), 0o644)
        assert dst.read_bytes() == src.read_bytes()
        assert dst.stat().st_ino != src.stat().st_ino
    else:
        with pytest.raises(OSError):
            Linker("clone").place(str(src), str(dst), 0o644)
        assert not dst.exists()  # a refused clone leaves no empty file behind


def test_auto_prefers_clone_then_falls_back_to_hardlink(tmp_path: Path) -> None:
    srcs = [_source(tmp_path, f"m{i}.py") for i in range(3)]
    linker = Linker("auto")
    for s in srcs:
        linker.place(str(s), str(tmp_path / s.name), 0o644)
    expected = "clone" if _clone_supported(tmp_path) else "hardlink"
    assert linker.used == {expected}
    for s in srcs:
        same_inode = (tmp_path / s.name).stat().st_ino == s.stat().st_ino
        assert same_inode == (expected == "hardlink")


def test_existing_destination_is_an_error_not_an_overwrite(tmp_path: Path) -> None:
    src = _source(tmp_path)
    (tmp_path / "dst.py").write_text("mine")
    for mode in ("hardlink", "copy"):
        with pytest.raises(FileExistsError):
            Linker(mode).place(str(src), str(tmp_path / "dst.py"), 0o644)
    assert (tmp_path / "dst.py").read_text() == "mine"


@pytest.mark.parametrize("mode", ["hardlink", "copy", "auto"])
def test_a_name_relative_to_an_open_directory_is_placed_like_a_path(
    tmp_path: Path, mode: LinkMode
) -> None:
    """The installer places each file by its name in its tree directory, open once."""
    src = _source(tmp_path, data=b"z = 3\n")
    fd = os.open(src.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        linker = Linker(mode)
        linker.place(src.name, str(tmp_path / "dst.py"), 0o644, fd)
        assert linker.strategy is not None
        linker.strategy(src.name, str(tmp_path / "again.py"), 0o644, fd)
    finally:
        os.close(fd)
    assert (tmp_path / "dst.py").read_bytes() == (tmp_path / "again.py").read_bytes() == b"z = 3\n"


def test_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown link mode"):
        Linker("symlink")  # type: ignore[arg-type]


def test_copy_fallback_when_hardlinks_are_impossible(tmp_path: Path) -> None:
    """/dev/shm is another filesystem here: link(2) fails with EXDEV, auto copies."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("needs a second filesystem")
    src = _source(tmp_path)
    dst_dir = Path(os.path.realpath(shm)) / f"satchel-test-{os.getpid()}"
    dst_dir.mkdir()
    try:
        linker = Linker("auto")
        linker.place(str(src), str(dst_dir / "dst.py"), 0o644)
        assert (dst_dir / "dst.py").read_bytes() == src.read_bytes()
        assert linker.used <= {"copy", "clone"}
    finally:
        for child in dst_dir.iterdir():
            child.unlink()
        dst_dir.rmdir()
