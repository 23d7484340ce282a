"""`satchel index adopt` in a shell that ran ``eval "$(satchel env)"`` leaves config.toml alone.

Scenario (QA 2026-12-05): after ``eval "$(satchel env)"`` pip's index is Satchel's own local
index and its extra indexes are emptied; that is pip using config.toml through Satchel, and
`satchel index list` rightly reports no disagreement. Running `satchel index adopt` in that
shell (after a pip.conf change, or because a drift note said so in another shell) skipped the
own index as it must, then took "no index" for pip's current configuration: every adopted index
was dropped from config.toml with exit 0, and the private ``internal-tool`` no longer resolved.
Adopting from a shell whose pip points at Satchel is now refused, naming the cause and the way
(a shell without `satchel env`'s variables), and config.toml is unchanged.
"""

from __future__ import annotations

from tests.trust.laptop import Laptop
from tests.trust.test_index_set import _exports


def test_index_adopt_after_satchel_env_keeps_the_index_set(laptop: Laptop) -> None:
    shell = laptop.shell()
    assert laptop.resolved("internal-tool", env=shell) == "1.0.0"
    before = laptop.config.read_text()
    after_eval = {**shell, **_exports(laptop.ok("env", "--shell", "bash", env=shell).stdout)}
    assert laptop.listing(env=after_eval)["drift"] == []  # no disagreement: pip uses Satchel

    result = laptop.satchel("index", "adopt", env=after_eval)

    assert result.returncode != 0, result.stdout
    assert "Satchel's own local index" in result.stderr, result.stderr
    assert "satchel env" in result.stderr
    assert laptop.config.read_text() == before
    assert laptop.resolved("internal-tool", env=after_eval) == "1.0.0"
