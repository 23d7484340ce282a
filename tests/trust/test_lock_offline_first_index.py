"""An offline lock install holds an unbound project to the first index, as an offline resolve.

Scenario (review of 213080b/67f8406, 2026-12-05): ``internal-tool`` is private, never bound
on this laptop. Once, `--index-strategy unsafe-best-match` (the documented opt-out, for that one
command) stored the public impostor 9.9.0 beside it, binding nothing. Later the private index's
page lists no files (a captive portal's page, an emptied project), which binds nothing either
(213080b). Online, a lock naming the impostor is refused since 67f8406 (held to the first index).
Offline (``--offline``, or every index down) the lock skipped that rule (`_first_use` answered
None offline) and took the stored impostor by its provenance, while an offline resolve of the
same project, under first-index, offers nothing but the private index's page.
"""

from __future__ import annotations

import pytest

from tests.support.wheels import file_sha256
from tests.trust.laptop import Laptop
from tests.trust.test_lock_origins import pip_list, pylock


@pytest.mark.parametrize("empty_page", [False, True], ids=["private-lists-it", "private-empty"])
def test_an_offline_lock_cannot_take_a_stored_impostor_of_an_unbound_project(
    laptop: Laptop, empty_page: bool
) -> None:
    shell = laptop.shell()
    laptop.ok("index", "list", env=shell)  # the first start adopts: private, then public
    if empty_page:
        laptop.private.override("/simple/internal-tool/", 200, b"<html><body></body></html>")
    laptop.ok(
        "prefetch", "--index-strategy", "unsafe-best-match", "internal-tool", env=shell
    )  # the opt-out, once: stores 9.9.0 from the public index (and both pages), binds nothing
    assert laptop.stored(laptop.impostor_wheel)
    assert "internal-tool" not in laptop.ok("origins", "list", env=shell).stdout
    impostor = laptop.impostor_wheel
    lock = pylock(
        laptop.root / "pylock.toml",
        ("internal-tool", "9.9.0", laptop.public.file_url(impostor.name), file_sha256(impostor)),
    )
    venv = laptop.root / "venv"

    result = laptop.satchel(
        "install", "--offline", "--lock", str(lock), "--venv", str(venv), env=shell
    )

    assert result.returncode == 5, (result.stdout, result.stderr)
    assert "[not-cached]" in result.stderr, result.stderr
    assert laptop.private_name() in result.stderr, result.stderr
    assert "bound by this install" not in result.stderr, result.stderr
    assert "internal-tool" not in (pip_list(venv) if venv.exists() else {})
