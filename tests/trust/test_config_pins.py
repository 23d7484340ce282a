"""Two pins in config.toml that name one project in two spellings are an error, not last-wins.

Scenario (QA 2026-12-05): project names are compared normalized (``internal_tool``,
``Internal-Tool`` and ``internal.tool`` are one project), but TOML sees different keys. A user
who pinned ``internal_tool`` to the private index, and later (or a merge of two dotfiles) added
``Internal-Tool`` pinned to the public one, used to get the last pin silently: ``internal-tool``
resolved to the public impostor 9.9.0 with exit 0, the private pin ignored without a word. The
file is now refused naming both spellings and the line, like any other ambiguous edit: the
running daemon keeps its last good configuration, a daemon started on it has no index set.
"""

from __future__ import annotations

from tests.trust.laptop import Laptop


def test_one_project_pinned_twice_in_two_spellings_is_refused(laptop: Laptop) -> None:
    shell = laptop.shell()
    assert laptop.resolved("internal-tool", env=shell) == "1.0.0"
    public = f"127-0-0-1-{laptop.public.port}"
    good = laptop.config.read_text()
    pins = f'\n[pins]\ninternal_tool = "{laptop.private_name()}"\nInternal-Tool = "{public}"\n'
    laptop.config.write_text(good + pins)
    line = len(good.splitlines()) + 4  # the second spelling's line

    status = laptop.wait_status("Internal-Tool", env=shell)  # the live reload refused the edit
    assert f"{laptop.config}:{line}:" in status, status
    assert "internal_tool" in status
    assert laptop.resolved("internal-tool", env=shell) == "1.0.0"  # the last good configuration

    laptop.stop()
    result = laptop.satchel("resolve", "internal-tool", env=shell)
    assert result.returncode != 0, result.stdout
    assert f"{laptop.config}:{line}:" in result.stderr
    assert "does not fall back" in result.stderr
    assert "9.9.0" not in result.stdout
    assert not laptop.impostor_asked()
