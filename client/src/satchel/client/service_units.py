"""Render the service-manager units for *this* installation from the templates shipped with it.

The templates (`unit_templates/`, also visible in the repository as `systemd/` and `launchd/`)
contain only placeholders of the form `@NAME@`; rendering fills in absolute paths of the running
installation (its `satcheld`, the user's socket and log locations). That keeps machine paths out
of the repository and makes a rendered unit always start the daemon that matches the client
which installed it: a different checkout's daemon would be a version skew waiting to happen.

Rendering is pure (paths in, text out) so tests can verify the output with `systemd-analyze
verify` and `plistlib` without touching the real user session.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path
from xml.sax.saxutils import escape

TEMPLATES = Path(__file__).with_name("unit_templates")

#: launchd job label (reverse-DNS by convention); also the plist's file name.
LAUNCHD_LABEL = "dev.satchel.satcheld"

SYSTEMD_UNITS = ("satchel.socket", "satchel.service")


class RenderError(Exception):
    """A template placeholder was left unfilled, or a value cannot be expressed in the format."""


def systemd_user_dir() -> Path:
    """Where user units live: `$XDG_CONFIG_HOME/systemd/user` (systemd's own rule)."""
    config = os.environ.get("XDG_CONFIG_HOME")
    return (Path(config) if config else Path.home() / ".config") / "systemd" / "user"


def launchd_agents_dir() -> Path:
    return Path.home() / "Library" / "LaunchAgents"


def render_systemd(daemon_argv: list[str]) -> dict[str, str]:
    """Return `{unit file name: text}` for the socket and service units."""
    exec_start = " ".join(_systemd_quote(arg) for arg in daemon_argv)
    values = {"SATCHELD": exec_start}
    return {name: _fill((TEMPLATES / name).read_text(), values) for name in SYSTEMD_UNITS}


def render_launchd(daemon_argv: list[str], socket_path: str, log_path: str) -> dict[str, str]:
    """Return `{plist file name: text}` for the LaunchAgent."""
    arguments = "\n".join(f"    <string>{escape(arg)}</string>" for arg in daemon_argv)
    values = {
        "LABEL": LAUNCHD_LABEL,
        "PROGRAM_ARGUMENTS": arguments,
        "SOCKET_PATH": escape(socket_path),
        "LOG_PATH": escape(log_path),
    }
    text = _fill((TEMPLATES / "launchd.plist").read_text(), values)
    return {f"{LAUNCHD_LABEL}.plist": text}


def _fill(template: str, values: dict[str, str]) -> str:
    text = template
    for key, value in values.items():
        text = text.replace(f"@{key}@", value)
    leftover = _placeholders(text)
    if leftover:
        raise RenderError(f"template placeholders left unfilled: {', '.join(sorted(leftover))}")
    return text


def _placeholders(text: str) -> set[str]:
    return set(re.findall(r"@([A-Z][A-Z0-9_]*)@", text))


def _systemd_quote(arg: str) -> str:
    """Quote one ExecStart word the way systemd parses it (C-style escapes in double quotes).

    `%` starts a specifier in unit files, so a literal one is doubled.
    """
    if "\n" in arg:
        raise RenderError(f"a newline cannot appear in a unit's command line: {arg!r}")
    arg = arg.replace("%", "%%")
    if arg and all(c.isalnum() or c in "/._-+=:,@" for c in arg):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


def shell_line(argv: list[str]) -> str:
    """How a command is shown in `--dry-run` output: copy-pasteable into a shell."""
    return shlex.join(argv)
