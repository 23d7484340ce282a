"""Text from the daemon as it may reach the terminal.

The daemon's messages and notes carry what indexes and wheels named (file names, member paths,
reasons), and a member name may hold control characters: escape sequences that retitle the
terminal, clear it, or write the clipboard. Every such character but the line breaks the
daemon's own multi-line messages use is printed escaped (``\\x1b``), whatever the message.
"""

from __future__ import annotations

__all__ = ["shown"]


def shown(text: str) -> str:
    """*text* with every non-printable character but ``\\n`` escaped."""
    if text.replace("\n", "").isprintable():
        return text
    return "".join(
        c if c.isprintable() or c == "\n" else c.encode("unicode_escape").decode() for c in text
    )
