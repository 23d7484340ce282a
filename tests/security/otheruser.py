"""A second local user for the security tests (issue 11): created when missing, used by fork.

`intruder()` returns the (uid, gid) of the local account ``satchel-intruder``, creating it with
``useradd`` when it does not exist (idempotent: an existing account is reused), and skips the
calling test when not running as root (only root may create users and switch to them).

`as_intruder(user, work)` runs *work* in a forked child that has dropped to that uid (groups,
gid, then uid: it cannot get back) and returns what *work* returned (a str) once the child ends.
`start_as_intruder` does the same in the background, for attackers that must run while the test
drives the victim: *work* gets a `Child` (``stop_fd`` reads EOF when the test asks it to stop;
``ready()`` wakes the test's `Running.wait_ready`); `finish()` tells the child to stop and returns
its report. The child never returns into pytest.
"""

from __future__ import annotations

# The child cannot import from this interpreter's prefix once it is another uid (a private
# home); socket addresses with str hosts need the idna codec, so it is loaded before any fork.
import encodings.idna  # noqa: F401
import os
import pwd
import select
import subprocess
import traceback
from collections.abc import Callable
from dataclasses import dataclass

import pytest

__all__ = [
    "INTRUDER",
    "Child",
    "Intruder",
    "Running",
    "as_intruder",
    "intruder",
    "start_as_intruder",
]

INTRUDER = "satchel-intruder"


@dataclass(frozen=True)
class Intruder:
    name: str
    uid: int
    gid: int


def intruder() -> Intruder:
    if os.geteuid() != 0:
        pytest.skip("needs root: creates a second local user and switches to it")
    try:
        entry = pwd.getpwnam(INTRUDER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", INTRUDER],
            check=False,
            capture_output=True,
        )
        entry = pwd.getpwnam(INTRUDER)  # a concurrent useradd may have won: either way, it exists
    return Intruder(INTRUDER, entry.pw_uid, entry.pw_gid)


@dataclass(frozen=True)
class Child:
    """What the attacker child gets: when to stop, and how to say it is ready."""

    stop_fd: int
    ready_fd: int

    def ready(self) -> None:
        os.write(self.ready_fd, b"r")


@dataclass
class Running:
    """An attacker child running in the background."""

    pid: int
    report_fd: int
    stop_fd: int
    ready_fd: int

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Block until the child called `Child.ready` (or ended)."""
        ready, _, _ = select.select([self.ready_fd], [], [], timeout)
        assert ready, "the intruder's child never became ready"
        os.read(self.ready_fd, 1)

    def finish(self, timeout: float = 60.0) -> str:
        """Tell the child to stop, and return its report (what *work* returned)."""
        os.close(self.stop_fd)
        chunks = []
        while True:
            ready, _, _ = select.select([self.report_fd], [], [], timeout)
            assert ready, "the intruder's child did not report"
            chunk = os.read(self.report_fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
        os.close(self.report_fd)
        os.close(self.ready_fd)
        os.waitpid(self.pid, 0)
        return b"".join(chunks).decode()


def start_as_intruder(user: Intruder, work: Callable[[Child], str]) -> Running:
    """Fork, drop to *user*, run ``work(child)`` in the background."""
    report_r, report_w = os.pipe()
    stop_r, stop_w = os.pipe()
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        try:
            os.close(report_r)
            os.close(stop_w)
            os.close(ready_r)
            os.setgroups([])
            os.setgid(user.gid)
            os.setuid(user.uid)
            try:
                outcome = work(Child(stop_r, ready_w))
            except BaseException:
                outcome = "intruder failed:\n" + traceback.format_exc()
            view = memoryview(outcome.encode())
            while view:
                view = view[os.write(report_w, view) :]
        finally:
            os._exit(0)
    os.close(report_w)
    os.close(stop_r)
    os.close(ready_w)
    return Running(pid, report_r, stop_w, ready_r)


def as_intruder(user: Intruder, work: Callable[[], str]) -> str:
    """Run *work* as *user* in a child and return its result."""
    return start_as_intruder(user, lambda _stop: work()).finish()
