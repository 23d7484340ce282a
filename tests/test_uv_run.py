"""Issue 13.8: the README's commands (`uv run satchel ...`) do not recompile bytecode each call.

With `compile-bytecode = true` in the workspace, uv recompiled the whole environment on every
`uv run` ("Bytecode compiled 1992 files" on stderr, 0.2-0.3 s a call). Run as the README runs
it, in this checkout, twice: the second call must not compile anything.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_uv_run_satchel_compiles_nothing_on_a_repeated_call(tmp_path: Path) -> None:
    uv = shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not on PATH")
    env = {**os.environ, "SATCHEL_NO_AUTOSTART": "1", "XDG_RUNTIME_DIR": str(tmp_path)}
    env.pop("VIRTUAL_ENV", None)
    for _ in range(2):
        result = subprocess.run(
            [uv, "run", "--frozen", "satchel", "--version"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert result.returncode == 0, result.stderr
    assert "Bytecode compiled" not in result.stderr, result.stderr
