"""Ctrl-C during an install is answered with what happened to the venv.

Scenario (QA 2026-12-05, daily flows): `satchel install` upgrading a venv, Ctrl-C while the
files are being placed. The placement runs in a worker thread that is not cancelled midway (an
install is one transaction: it commits, or it rolls back), so a Cancel arriving then takes
effect only once it has committed. The daemon then answered ``cancelled``, and the client said
"interrupted", while the venv held the new version: the user was told the opposite of what
happened. An install that committed is answered with its result, Cancel or not.

Determinism without timing: the venv holds a ``.pth`` file that, in the interpreter the
install's byte-compiling step starts (inside the transaction, before its commit), says it has
started and waits for the test's word; the Cancel is known to be processed once a ``ping``
sent after it on the same connection is answered (the daemon reads a connection in order).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.e2e.twoindexes import open_world
from tests.support.daemon import Client, socket_path
from tests.support.wheels import build_wheel

#: A .pth line (run by every start of the venv's interpreter): in the byte-compiling step's
#: interpreter (``-c`` with no arguments; the daemon's interpreter query passes two), announce
#: the start and wait until the test releases it. Waits for a file, not for a time.
GATE = "import os, sys, time; exec({code!r})\n"
GATE_CODE = (
    "if len(sys.argv) == 1 and not os.path.exists({released!r}):\n"
    "    open({started!r}, 'a').close()\n"
    "    while not os.path.exists({released!r}):\n"
    "        time.sleep(0.01)\n"
)


def _wait_for(path: Path, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds  # a hang guard, not a measurement
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)


def test_an_install_that_committed_despite_ctrl_c_is_answered_with_its_result(
    tmp_path: Path,
) -> None:
    with open_world(tmp_path, public=False) as w:
        for version in ("1.0", "2.0"):
            w.internal.add(build_wheel(tmp_path / "dist", "slowpkg", version))
        venv = tmp_path / "venv"
        w.ok("install", "--venv", str(venv), "slowpkg==1.0")
        w.ok("prefetch", "slowpkg==2.0")
        started, released = tmp_path / "started", tmp_path / "released"
        (site,) = venv.glob("lib/python*/site-packages")
        code = GATE_CODE.format(started=str(started), released=str(released))
        (site / "zz_gate.pth").write_text(GATE.format(code=code))

        with Client(socket_path(w.env.env), timeout=120) as client:
            assert client.hello()["type"] == "welcome"
            rid = client.request(
                "install",
                {"requirements": ["slowpkg==2.0"], "venv": str(venv), "compile": True},
            )
            _wait_for(started)  # the transaction is under way, in its worker thread
            client.cancel(rid)
            assert client.wait_terminal(client.request("ping"), 60)["type"] == "result"
            released.touch()  # the Cancel is in; now let the transaction finish
            reply = client.wait_terminal(rid, 120)

        assert (site / "slowpkg-2.0.dist-info").is_dir()  # it committed
        assert reply["type"] == "result", reply
        assert reply["value"]["installed"] == ["slowpkg 2.0"]


#: `satchel install` as a shell runs it, so that Ctrl-C reaches it as SIGINT at Python's default
#: (a child inherits an ignored SIGINT from a non-interactive parent).
CLIENT = """
import signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)
from satchel.client.main import main
sys.exit(main(sys.argv[1:]))
"""


def test_ctrl_c_during_the_transaction_says_the_install_may_still_complete(
    tmp_path: Path,
) -> None:
    """The transaction outlasts the client's wait for the daemon to confirm the Cancel: the
    client said "interrupted", and the venv was upgraded a moment later. It now says that the
    daemon did not confirm the stop and the install may still complete (it is never left
    half-done), and `satchel status` shows the job until it has."""
    with open_world(tmp_path, public=False) as w:
        for version in ("1.0", "2.0"):
            w.internal.add(build_wheel(tmp_path / "dist", "slowpkg", version))
        venv = tmp_path / "venv"
        w.ok("install", "--venv", str(venv), "slowpkg==1.0")
        started, released = tmp_path / "started", tmp_path / "released"
        (site,) = venv.glob("lib/python*/site-packages")
        code = GATE_CODE.format(started=str(started), released=str(released))
        (site / "zz_gate.pth").write_text(GATE.format(code=code))

        command = [sys.executable, "-c", CLIENT, "install", "--compile", "--venv", str(venv)]
        proc = subprocess.Popen(
            [*command, "slowpkg==2.0"],
            env=w.env.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            _wait_for(started)
            proc.send_signal(signal.SIGINT)
            _out, err = proc.communicate(timeout=120)  # a hang guard
        finally:
            released.touch()
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 130, err
        assert "may still complete" in err, err
        assert "satchel status" in err
        w.ok("install", "--venv", str(venv), "slowpkg==2.0")  # waits for the first, per venv
        assert (site / "slowpkg-2.0.dist-info").is_dir()
