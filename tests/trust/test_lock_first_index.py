"""A lock file never takes an unbound project past the first index that serves it.

Scenario (QA 2026-12-05): a new laptop (pip's extra index: the private one, serving
``internal-tool`` 1.0.0; pip's default: the public one, with an impostor 9.9.0) installs a
project's ``pylock.toml`` written elsewhere (a colleague whose pip saw only the public index, or
a pull request), which lists the impostor's wheel, with ``index`` naming the public index or, as
uv and pip often write it, no index at all. ``internal-tool`` was never fetched here, so no
binding held it; the lock's file was taken from the public index (the first index that vouched
for its sha256), installed with exit 0, and ``internal-tool`` bound to the public index for
good. A resolve would have taken it from the private index only (first-index: the first index
that serves a project is the only one). Now a lock meets the same scope: the project is bound
as a resolve would bind it, and the lock's other index is refused (``origin-changed``; a file
the private index does not list, ``not-found``), with nothing fetched from the public index.
"""

from __future__ import annotations

import json

import pytest

from tests.support.wheels import file_sha256
from tests.trust.laptop import Laptop
from tests.trust.test_lock_origins import pylock


@pytest.mark.parametrize("names_index", [False, True], ids=["no-index", "public-index"])
def test_a_lock_cannot_take_an_unbound_private_project_from_the_public_index(
    laptop: Laptop, names_index: bool
) -> None:
    shell = laptop.shell()
    laptop.ok("index", "list", env=shell)  # the first start adopts: private, then public
    impostor = laptop.impostor_wheel
    lock = pylock(
        laptop.root / "pylock.toml",
        (
            "internal-tool",
            "9.9.0",
            laptop.public.file_url(impostor.name),
            file_sha256(impostor),
        ),
        index=laptop.public.url if names_index else None,
    )
    venv = laptop.root / "venv"

    result = laptop.satchel("install", "--lock", str(lock), "--venv", str(venv), env=shell)

    assert result.returncode == 1, (result.stdout, result.stderr)
    # Naming the public index is a change of origin; naming none, the file is one that the
    # project's index (the private one) does not list.
    assert ("[origin-changed]" if names_index else "[not-found]") in result.stderr, result.stderr
    assert laptop.private_name() in result.stderr
    # The private index was bound by this very install: it is named as the first index that
    # serves the project, not as one it "came from" before (it never did, on this laptop).
    assert "first index that serves internal-tool" in result.stderr, result.stderr
    assert "came from" not in result.stderr, result.stderr
    assert not any(path.startswith("/files/") for path in laptop.public.requests)
    assert not laptop.stored(impostor)
    origins = json.loads(laptop.ok("origins", "list", "--json", env=shell).stdout)["origins"]
    assert [(o["project"], o["index"]) for o in origins] == [
        ("internal-tool", laptop.private_name())
    ]


@pytest.mark.parametrize("names_index", [False, True], ids=["no-index", "public-index"])
def test_a_lock_cannot_pass_a_private_index_whose_page_lists_no_files(
    laptop: Laptop, names_index: bool
) -> None:
    """The private index answers internal-tool's page with 200 and no files (every file
    removed, a name held by a placeholder). A page listing no files binds nothing (a captive
    portal's login page must not bind a project: tests/trust/test_captive_portal.py), but
    under first-index it is still the only index the project may come from, for a lock as for
    a resolve: the lock's file on the public index is refused, nothing fetched from it."""
    shell = laptop.shell()
    laptop.ok("index", "list", env=shell)
    laptop.private.override("/simple/internal-tool/", 200, b"<html><body></body></html>")
    impostor = laptop.impostor_wheel
    lock = pylock(
        laptop.root / "pylock.toml",
        ("internal-tool", "9.9.0", laptop.public.file_url(impostor.name), file_sha256(impostor)),
        index=laptop.public.url if names_index else None,
    )

    venv = laptop.root / "venv"
    result = laptop.satchel("install", "--lock", str(lock), "--venv", str(venv), env=shell)

    assert result.returncode == 1, (result.stdout, result.stderr)
    assert laptop.private_name() in result.stderr, result.stderr
    assert not any(path.startswith("/files/") for path in laptop.public.requests)
    assert not laptop.stored(impostor)
