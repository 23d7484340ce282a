"""Reading uv.lock (issue 13.6): which packages a target needs, walked from the project."""

from __future__ import annotations

from pathlib import Path

import pytest

from satchel.daemon.requests.resolution import is_lock, read_lock
from satchel.daemon.resolver.reqfiles import RequirementsFileError
from satchel.daemon.resolver.target import synthetic_target
from satchel.daemon.resolver.uvlock import read_uv_lock

LINUX = synthetic_target("3.11.4", ["manylinux_2_28_x86_64"])
WINDOWS = synthetic_target("3.11.4", ["win_amd64"])
SHA = "a" * 64


def _registry(name: str, version: str, extra: str = "") -> str:
    return (
        f'[[package]]\nname = "{name}"\nversion = "{version}"\n'
        'source = { registry = "http://127.0.0.1:9/simple/" }\n'
        f'wheels = [{{ url = "http://127.0.0.1:9/files/{name}-{version}-py3-none-any.whl", '
        f'hash = "sha256:{SHA}", size = 5 }}]\n'
        f"{extra}\n"
    )


LOCK = (
    'version = 1\nrequires-python = ">=3.11"\n\n'
    '[[package]]\nname = "myproj"\nversion = "0.1"\nsource = { editable = "." }\n'
    'dependencies = [{ name = "click" }, { name = "member" }]\n'
    '[package.optional-dependencies]\nfast = [{ name = "speedup" }]\n'
    '[package.dev-dependencies]\ndev = [{ name = "pytest" }]\nlint = [{ name = "ruff" }]\n\n'
    '[[package]]\nname = "member"\nversion = "0.2"\nsource = { virtual = "packages/member" }\n'
    'dependencies = [{ name = "rich", extra = ["jupyter"] }]\n\n'
    + _registry(
        "click",
        "8.1",
        'dependencies = [{ name = "colorama", marker = "sys_platform == \'win32\'" }]\n',
    )
    + _registry("colorama", "0.4")
    + _registry("pytest", "8.0")
    + _registry("ruff", "0.6")
    + _registry("speedup", "1.0")
    + _registry(
        "rich",
        "13.0",
        '[package.optional-dependencies]\njupyter = [{ name = "ipywidgets" }]\n',
    )
    + _registry("ipywidgets", "8.0")
)


def test_a_target_needs_what_uv_sync_installs_for_it(tmp_path: Path) -> None:
    """Dependencies of the project and its workspace members, their ``dev`` group, extras asked
    for by an edge, edges whose markers hold; not the project's own extras nor other groups."""
    path = tmp_path / "uv.lock"
    path.write_text(LOCK)
    lock = read_uv_lock(path)
    assert lock.skipped == ("myproj (editable, .)", "member (virtual, packages/member)")
    linux = sorted(p.name for p in lock.applicable(LINUX))
    assert linux == ["click", "ipywidgets", "pytest", "rich"]
    windows = sorted(p.name for p in lock.applicable(WINDOWS))
    assert windows == ["click", "colorama", "ipywidgets", "pytest", "rich"]
    assert len(lock.files()) == 7  # a prefetch stores every registry file of the lock


def test_git_path_and_url_sources_are_named_as_not_from_an_index(tmp_path: Path) -> None:
    path = tmp_path / "uv.lock"
    path.write_text(
        'version = 1\n[[package]]\nname = "p"\nversion = "1"\nsource = { editable = "." }\n'
        'dependencies = [{ name = "g" }, { name = "d" }, { name = "u" }]\n'
        '[[package]]\nname = "g"\nversion = "1"\n'
        'source = { git = "https://127.0.0.1/g.git?rev=main#0123abc" }\n'
        '[[package]]\nname = "d"\nversion = "1"\nsource = { directory = "../d" }\n'
        '[[package]]\nname = "u"\nversion = "1"\nsource = { url = "https://127.0.0.1/u.whl" }\n'
    )
    lock = read_uv_lock(path)
    messages = {p.name: p.unsupported for p in lock.applicable(LINUX)}
    assert messages["g"] is not None
    assert "g comes from the git repository https://127.0.0.1/g.git?rev=main," in messages["g"]
    assert messages["d"] is not None and "the local directory ../d" in messages["d"]
    assert messages["u"] is not None and "the URL https://127.0.0.1/u.whl" in messages["u"]
    assert "Satchel caches and installs index files only" in messages["u"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("package = 3\n", "must be an array of tables"),
        ('[[package]]\nversion = "1"\n', "a package needs a name"),
        (
            '[[package]]\nname = "a"\nversion = "1"\n'
            'source = { registry = "http://127.0.0.1:9/" }\n'
            'dependencies = [{ name = "b", marker = "os_name ==" }]\n'
            'sdist = { url = "http://127.0.0.1:9/a-1.tar.gz", hash = "sha256:' + SHA + '" }\n',
            r"package\[1\] \(a\) dependencies \(b\)",
        ),
        (
            '[[package]]\nname = "a"\nversion = "1"\n'
            'source = { registry = "http://127.0.0.1:9/" }\n',
            r"\(a\): no wheels and no sdist",
        ),
    ],
)
def test_a_broken_uv_lock_is_refused_naming_the_package(
    tmp_path: Path, body: str, message: str
) -> None:
    path = tmp_path / "uv.lock"
    path.write_text(body)
    with pytest.raises(RequirementsFileError, match=message):
        read_uv_lock(path)


def test_a_renamed_uv_lock_given_to_install_lock_is_still_read_as_uv_lock(tmp_path: Path) -> None:
    """``-r`` goes by name (uv.lock, pylock*.toml); ``--lock`` of another name by content."""
    renamed = tmp_path / "deps.lock"
    renamed.write_text(LOCK)
    lock = read_lock(renamed)
    assert lock.roots is not None
    assert sorted(p.name for p in lock.applicable(LINUX)) == [
        "click",
        "ipywidgets",
        "pytest",
        "rich",
    ]
    assert is_lock(tmp_path / "uv.lock") and is_lock(tmp_path / "pylock.dev.toml")
    assert not is_lock(renamed)
