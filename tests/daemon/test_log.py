"""Logging: redaction of secrets and the journald format."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator

import pytest

from satchel.daemon.settings import log as log_module
from satchel.daemon.settings.credentials import register_secret
from satchel.daemon.settings.log import add_redaction, parse_level, redact, setup_logging


def test_url_credentials_are_masked() -> None:
    assert "secret" not in redact("fetch https://user:secret@host/simple/")
    assert redact("fetch https://user:secret@host/simple/").endswith("***@host/simple/")
    assert "tok3n" not in redact("token only https://tok3n@host/")
    assert redact("no credentials https://host/x") == "no credentials https://host/x"


def test_registered_secrets_are_masked_anywhere() -> None:
    register_secret("s3cr3t-value-for-log-test")
    assert redact("server said: s3cr3t-value-for-log-test") == "server said: ***"


def test_more_patterns_can_be_registered() -> None:
    pattern = re.compile(r"token=\w+")
    add_redaction(pattern, "token=***")
    try:
        assert redact("GET /simple/?token=abcdef") == "GET /simple/?token=***"
    finally:
        log_module._REDACTIONS.remove((pattern, "token=***"))


@pytest.fixture
def root_logger() -> Iterator[logging.Logger]:
    """The root logger, restored after the test (setup_logging reconfigures it)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield root
    root.handlers[:] = handlers
    root.setLevel(level)


def _capture(monkeypatch: pytest.MonkeyPatch, journal: bool) -> tuple[io.StringIO, logging.Logger]:
    if journal:
        monkeypatch.setenv("JOURNAL_STREAM", "8:1234")
    else:
        monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    stream = io.StringIO()
    setup_logging("debug", stream)
    return stream, logging.getLogger("satchel.test")


def test_log_records_are_redacted_including_arguments_and_tracebacks(
    monkeypatch: pytest.MonkeyPatch, root_logger: logging.Logger
) -> None:
    stream, logger = _capture(monkeypatch, journal=False)
    logger.info("index %s unreachable", "https://u:hunter2@example.invalid/")
    try:
        raise ValueError("https://u:hunter2@example.invalid/")
    except ValueError:
        logger.exception("failed")
    output = stream.getvalue()
    assert "hunter2" not in output
    assert "***@example.invalid/" in output


def test_journald_lines_carry_priority_and_no_timestamp(
    monkeypatch: pytest.MonkeyPatch, root_logger: logging.Logger
) -> None:
    stream, logger = _capture(monkeypatch, journal=True)
    logger.warning("careful")
    logger.error("broken")
    assert stream.getvalue().splitlines() == [
        "<4>satchel.test: careful",
        "<3>satchel.test: broken",
    ]


def test_levels_by_name_or_number() -> None:
    assert parse_level("debug") == logging.DEBUG
    assert parse_level("WARNING") == logging.WARNING
    assert parse_level("15") == 15
    assert parse_level(None) == logging.INFO
    with pytest.raises(ValueError, match="unknown log level"):
        parse_level("chatty")
