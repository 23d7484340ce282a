"""Harness primitives: failure classification, the tools' environment, Satchel's isolation."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.harness import SatchelInstance, classify, tool_env
from satchel.daemon.settings.config import load_config


def test_unknown_command_is_classified_as_not_implemented() -> None:
    status, detail = classify("usage: satchel ...\nsatchel: error: unknown command 'resolve'\n")
    assert status == "n/a"
    assert "unknown command 'resolve'" in detail


def test_missing_daemon_module_is_classified_as_not_implemented() -> None:
    assert (
        classify("ModuleNotFoundError: No module named 'satchel.daemon.process.main'")[0] == "n/a"
    )


def test_other_failures_keep_their_last_line() -> None:
    assert classify("Traceback ...\nOSError: [Errno 28] No space left\n") == (
        "failed",
        "OSError: [Errno 28] No space left",
    )


def test_tool_env_drops_user_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple/")
    monkeypatch.setenv("UV_INDEX_URL", "http://127.0.0.1:9/simple/")
    monkeypatch.setenv("XDG_CONFIG_HOME", "/nonexistent")
    env = tool_env()
    assert "PIP_INDEX_URL" not in env
    assert "UV_INDEX_URL" not in env
    assert "XDG_CONFIG_HOME" not in env
    assert env["PIP_CONFIG_FILE"]


def test_each_satchel_instance_is_configured_with_only_the_loopback_index(tmp_path: Path) -> None:
    """Checked with the daemon's own parser: the file must mean what the harness thinks it means."""
    inst = SatchelInstance(tmp_path / "s")
    inst.write_config("http://127.0.0.1:9/simple/")
    config = load_config(tmp_path / "s" / "f" / "satchel" / "config.toml")
    assert [(i.name, i.url) for i in config.indexes] == [("bench", "http://127.0.0.1:9/simple/")]
    assert config.settings.local_index_port == 0
