"""Logging to stderr, the way service managers want it, with secrets scrubbed.

Why stderr only: under systemd it goes to the journal, under launchd to StandardErrorPath, and an
autostarted daemon's stderr is the client's log file. One sink, chosen by whoever started us.

Under journald (``JOURNAL_STREAM`` set) lines carry no timestamp (the journal adds its own) and
start with a syslog priority prefix ``<N>`` so ``journalctl -p warning`` works. Elsewhere lines
get an ISO timestamp.

Redaction: every record passes through `RedactingFilter`, which masks the password of any URL
userinfo (``https://user:secret@host`` -> ``https://user:***@host``) and then applies
`satchel.daemon.settings.credentials.redact` (URL userinfo as a whole, and every secret value the
daemon
has loaded, wherever it appears). Feature code must already avoid logging secrets; this is the
net under it. `add_redaction` lets later features register more patterns (e.g. the local index
token) without touching this module.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from typing import TextIO

from satchel.daemon.settings.credentials import redact as redact_credentials

__all__ = [
    "LEVEL_ENV",
    "RedactingFilter",
    "add_redaction",
    "parse_level",
    "redact",
    "setup_logging",
]

LEVEL_ENV = "SATCHEL_LOG_LEVEL"

#: scheme://user:password@ -> keep the user, hide the password.
_URL_PASSWORD = re.compile(r"(?P<prefix>[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*:)[^@/\s]+(?=@)")

_REDACTIONS: list[tuple[re.Pattern[str], str]] = [(_URL_PASSWORD, r"\g<prefix>***")]

_SYSLOG_PRIORITY = {
    logging.CRITICAL: 2,
    logging.ERROR: 3,
    logging.WARNING: 4,
    logging.INFO: 6,
    logging.DEBUG: 7,
}


def add_redaction(pattern: re.Pattern[str], replacement: str) -> None:
    """Mask every match of *pattern* in log output (``re.sub`` replacement syntax)."""
    _REDACTIONS.append((pattern, replacement))


def redact(text: str) -> str:
    """*text* with every registered secret pattern masked."""
    for pattern, replacement in _REDACTIONS:
        text = pattern.sub(replacement, text)
    return redact_credentials(text)


class RedactingFilter(logging.Filter):
    """Renders the record's message once, redacted, so arguments cannot smuggle secrets in."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        record.msg = cleaned
        record.args = None
        return True


class _JournalFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        priority = _SYSLOG_PRIORITY.get(record.levelno, 6)
        text = super().format(record)
        # Every line of a multi-line message (tracebacks) needs its own prefix for the journal.
        return "\n".join(f"<{priority}>{line}" for line in text.splitlines())


def parse_level(value: str | None) -> int:
    """A logging level from a name ("debug", "WARNING") or a number; raises ValueError."""
    if value is None or value == "":
        return logging.INFO
    if value.isdigit():
        return int(value)
    level = logging.getLevelNamesMapping().get(value.upper())
    if level is None:
        raise ValueError(f"unknown log level {value!r} (use debug, info, warning, error)")
    return level


def setup_logging(level: str | None = None, stream: TextIO | None = None) -> None:
    """Configure the root logger: stderr, journald-aware format, redaction, *level* (or
    ``$SATCHEL_LOG_LEVEL``, or info)."""
    numeric = parse_level(level if level is not None else os.environ.get(LEVEL_ENV))
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.addFilter(RedactingFilter())
    if os.environ.get("JOURNAL_STREAM"):
        handler.setFormatter(_JournalFormatter("%(name)s: %(message)s"))
    else:
        handler.setFormatter(
            logging.Formatter(
                "%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s",
                datefmt="%Y-%m-%dT%H:%M:%S%z",
            )
        )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    # httpx logs every request at INFO: thousands of lines per prefetch. Satchel's own modules
    # report what matters (failures, offline indexes); the per-request lines stay at debug.
    for chatty in ("httpx", "httpcore"):
        logging.getLogger(chatty).setLevel(max(numeric, logging.WARNING))
