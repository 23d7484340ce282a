"""`ProgressDisplay`: how the daemon's progress events look on a terminal and in a log."""

from __future__ import annotations

import io

from satchel.client.progress import ProgressDisplay


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_message_only_event_is_shown_as_it_is_on_a_terminal() -> None:
    """issue 13.7: resolve's metadata reads ("metadata 3/9") carry no count of their own."""
    out = Terminal()
    display = ProgressDisplay("resolve", out)
    display({"done": 0, "total": None, "unit": "", "message": "metadata 9/9 (range requests)"})
    assert out.getvalue() == "\rresolve: metadata 9/9 (range requests)\x1b[K"
    display.finish()
    assert out.getvalue().endswith("\r\x1b[K")


def test_in_a_log_each_new_message_is_one_line() -> None:
    out = io.StringIO()
    display = ProgressDisplay("resolve", out)
    for message in ("metadata 1/2 (range requests)", "metadata 2/2 (range requests)"):
        display({"done": 0, "total": None, "unit": "", "message": message})
        display({"done": 0, "total": None, "unit": "", "message": message})
    assert out.getvalue().splitlines() == [
        "resolve: metadata 1/2 (range requests)",
        "resolve: metadata 2/2 (range requests)",
    ]


def test_byte_progress_keeps_its_bar() -> None:
    out = Terminal()
    ProgressDisplay("prefetch", out)({"done": 512, "total": 1024, "unit": "B", "message": "x"})
    assert "[############------------] 512 B/1.0 KiB" in out.getvalue()
