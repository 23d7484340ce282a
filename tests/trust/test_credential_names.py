"""A password given by name reaches one origin, however many index names spell that name.

Scenario (QA 2026-12-05): ``SATCHEL_INDEX_INTERNAL_PASSWORD`` is the private index's password,
first used for index ``internal``. A pasted snippet (or a merge of dotfiles) adds an index named
``Internal`` (or ``internal.`` variants: ``-``, ``_``, ``.`` and case all give the variable
``SATCHEL_INDEX_INTERNAL_``) on another host. The origin record is kept per index name, so the
new name recorded its own origin at its first use and the private password went to the other
host: the very move the record exists to stop when the URL of ``internal`` is edited. The
record now holds for the variable: a second origin for the same variable is withheld
(``credential-withheld``), naming both origins.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.twoindexes import EXIT_FAILURE
from tests.support.index_server import IndexServer
from tests.support.wheels import build_wheel
from tests.trust.laptop import Laptop


def _authorizations(server: IndexServer) -> list[str]:
    return [r.headers["authorization"] for r in server.records if "authorization" in r.headers]


def test_a_second_name_for_the_same_variable_does_not_take_the_password_elsewhere(
    locked_laptop: Laptop, tmp_path: Path
) -> None:
    laptop = locked_laptop
    laptop.config.parent.mkdir(parents=True, exist_ok=True)
    laptop.config.write_text(
        f'[[index]]\nname = "internal"\nurl = "{laptop.private.url}"\n\n'
        f'[[index]]\nname = "public"\nurl = "{laptop.public.url}"\ndefault = true\n'
    )
    env = {
        "SATCHEL_INDEX_INTERNAL_USERNAME": "ci",
        "SATCHEL_INDEX_INTERNAL_PASSWORD": "private-pw-42",
    }
    assert laptop.resolved("internal-tool", env=env) == "1.0.0"  # first use: the private host

    with IndexServer(tmp_path / "elsewhere") as elsewhere:
        elsewhere.add(build_wheel(tmp_path / "dist", "other-tool", "1.0"))
        laptop.stop()
        laptop.config.write_text(
            laptop.config.read_text().replace(
                '[[index]]\nname = "public"',
                f'[[index]]\nname = "Internal"\nurl = "{elsewhere.url}"\n\n'
                '[[index]]\nname = "public"',
            )
        )
        result = laptop.satchel("resolve", "--format", "json", "other-tool", env=env)

        assert result.returncode == EXIT_FAILURE, (result.stdout, result.stderr)
        error = json.loads(result.stdout)["error"]
        assert error["code"] == "credential-withheld", error
        assert error["details"]["first_used_for"] == laptop.private.base_url.rstrip("/")
        assert error["details"]["configured"] == elsewhere.base_url.rstrip("/")
        assert "SATCHEL_INDEX_INTERNAL_PASSWORD" in error["message"]
        assert _authorizations(elsewhere) == []
        assert "private-pw-42" not in result.stdout + result.stderr
