"""pip or uv pointed at Satchel and, beside it, at another index: `satchel index list` says so.

Scenario (QA 2026-12-05): after ``eval "$(satchel env)"`` (and uv.toml's ``[pip]`` table naming
Satchel, as docs/local-index.md says), a shell that still has ``UV_INDEX`` pointing at the public
index makes ``uv pip`` ask that index itself, and first: ``internal-tool``, refused by Satchel
(its private index answers 404), resolved to the public impostor 9.9.0 with exit 0. Satchel
cannot stop a tool from asking an index it is configured with, but it read that configuration
and said nothing (pointing at Satchel was taken as "no disagreement", whatever else was
configured). `satchel index list` and `status` now name each index pip or uv asks beside
Satchel, and why that matters.
"""

from __future__ import annotations

import re

from tests.trust.laptop import Laptop


def test_an_index_configured_beside_satchels_own_is_reported(laptop: Laptop) -> None:
    shell = laptop.shell()
    assert laptop.resolved("internal-tool", env=shell) == "1.0.0"
    exports = dict(
        re.findall(
            r"^export (\w+)='([^']*)'$", laptop.ok("env", "--shell", "bash", env=shell).stdout, re.M
        )
    )
    after_eval = {**shell, **exports}
    assert laptop.listing(env=after_eval)["drift"] == []  # Satchel alone: nothing to say

    beside = {**after_eval, "UV_INDEX": laptop.public.url}
    drift = " ".join(laptop.listing(env=beside)["drift"])

    assert laptop.public.url in drift and "UV_INDEX" in drift, drift
    assert "beside Satchel" in drift
