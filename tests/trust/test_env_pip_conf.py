"""After ``eval "$(satchel env)"``, pip asks Satchel only, whatever extra index pip.conf names.

Scenario (QA 2026-12-05): the user's pip.conf names the public index as an extra index (left
over from before Satchel, or a team's template). ``internal-tool`` came from the private index,
which now answers 404 for it; the local index refuses it (HTTP 403). `satchel env` exported
``PIP_EXTRA_INDEX_URL=''`` to silence pip.conf's extra indexes, but pip ignores an empty
variable, so pip still asked the public index itself and downloaded the impostor 9.9.0 with
exit 0: the swap Satchel refuses, done beside it. `satchel env` now exports the local index as
the extra index too (pip asks one URL once, however often it is named), which overrides
pip.conf's.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

from tests.trust.laptop import Laptop


def _exports(text: str) -> dict[str, str]:
    return dict(re.findall(r"^export (\w+)='([^']*)'$", text, re.MULTILINE))


def test_pip_after_satchel_env_never_asks_pip_confs_extra_index(laptop: Laptop) -> None:
    shell = laptop.shell()
    assert laptop.resolved("internal-tool", env=shell) == "1.0.0"  # bound to the private index
    laptop.pip_conf.write_text(f"[global]\nextra-index-url = {laptop.public.url}\n")
    laptop.private.override("/simple/internal-tool/", 404, b"not found")
    exports = _exports(laptop.ok("env", "--shell", "bash", env=shell).stdout)
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PIP_", "UV_"))}
    env.update(
        HOME=laptop.client.env["HOME"],
        PIP_CONFIG_FILE=str(laptop.pip_conf),
        PIP_CACHE_DIR=str(laptop.root / "pip-cache"),
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        **exports,
    )
    laptop.public.reset_log()
    dest = laptop.root / "downloaded"

    result = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "-d", str(dest), "internal-tool"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip

    assert result.returncode != 0, result.stdout
    assert laptop.public.url not in result.stdout, result.stdout  # "Looking in indexes: ..."
    assert not dest.exists() or not any(dest.iterdir())
    assert not any(path.startswith("/files/") for path in laptop.public.requests)
