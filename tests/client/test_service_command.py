"""`satchel service`: what it would install, what it reports, and activation for real.

`service install` itself needs a user service manager (`systemctl --user` with a session bus),
which a test machine does not have; `--dry-run` shows the exact files and commands instead, and
the rendered service's own command line is run under `systemd-socket-activate` to prove that
what systemd would start serves clients through an inherited socket.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from satchel.client import service_units
from tests.client.clientenv import SATCHELD, ClientEnv


@pytest.fixture
def client(tmp_path: Path) -> Iterator[ClientEnv]:
    env = ClientEnv(tmp_path)
    yield env
    env.cleanup()


def unit_dir(client: ClientEnv) -> Path:
    return Path(client.env["XDG_CONFIG_HOME"]) / "systemd" / "user"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="systemd units are Linux-only")
def test_install_dry_run_shows_both_units_and_the_commands_and_writes_nothing(
    client: ClientEnv,
) -> None:
    result = client.satchel("service", "install", "--dry-run")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"would write {unit_dir(client) / 'satchel.socket'}:" in out
    assert f"would write {unit_dir(client) / 'satchel.service'}:" in out
    assert f"    ExecStart={SATCHELD} --log-level info" in out
    assert "would run: systemctl --user daemon-reload" in out
    assert "would run: systemctl --user enable --now satchel.socket" in out
    assert not unit_dir(client).exists()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="systemd units are Linux-only")
def test_uninstall_dry_run_disables_before_removing(client: ClientEnv) -> None:
    result = client.satchel("service", "uninstall", "--dry-run")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    disable = lines.index(
        "would run: systemctl --user disable --now satchel.socket satchel.service"
    )
    remove = lines.index(f"would remove {unit_dir(client) / 'satchel.socket'}")
    assert disable < remove


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="systemd units are Linux-only")
def test_status_tells_missing_current_and_stale_units_apart(client: ClientEnv) -> None:
    first = client.satchel("service", "status")
    assert "satchel.socket: not installed" in first.stdout

    rendered = service_units.render_systemd([SATCHELD])
    unit_dir(client).mkdir(parents=True)
    (unit_dir(client) / "satchel.socket").write_text(rendered["satchel.socket"])
    (unit_dir(client) / "satchel.service").write_text(
        rendered["satchel.service"].replace(SATCHELD, "/elsewhere/satcheld")
    )
    second = client.satchel("service", "status")
    assert "satchel.socket: installed, up to date" in second.stdout
    assert "satchel.service: installed, differs from this installation" in second.stdout


def test_the_rendered_service_serves_through_systemd_socket_activation(
    client: ClientEnv,
) -> None:
    activate = shutil.which("systemd-socket-activate")
    if activate is None:
        pytest.skip("systemd-socket-activate is not installed (Debian package `systemd`)")
    service = service_units.render_systemd([SATCHELD])["satchel.service"]
    exec_start = next(x for x in service.splitlines() if x.startswith("ExecStart="))
    command = shlex.split(exec_start.removeprefix("ExecStart="))
    client.socket.parent.mkdir(mode=0o700, exist_ok=True)
    proc = subprocess.Popen(
        [activate, "--listen", str(client.socket), "--fdname=satchel", *command],
        env=client.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60  # a hang guard, not a measurement
        while not client.socket.exists():  # systemd-socket-activate binds before it waits
            assert time.monotonic() < deadline, "systemd-socket-activate never listened"
            time.sleep(0.01)
        ping = client.satchel("--no-autostart", "ping")
        assert ping.returncode == 0, ping.stderr
        status = json.loads(client.satchel("--no-autostart", "status", "--json").stdout)
        assert status["activation"] == "systemd"
        assert status["pid"] == proc.pid  # the activator execs the daemon in place
        assert client.satchel("stop").returncode == 0
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_executing_a_plan_writes_files_then_runs_commands_in_order(tmp_path: Path) -> None:
    from satchel.client.commands.service import Plan, execute

    log = tmp_path / "order.log"
    plan = Plan("systemd")
    plan.write[tmp_path / "units" / "satchel.socket"] = "[Socket]\n"
    plan.commands = [
        ["sh", "-c", f"test -f {tmp_path}/units/satchel.socket && echo run >> {log}"],
    ]
    assert execute(plan) == 0
    assert (tmp_path / "units" / "satchel.socket").read_text() == "[Socket]\n"
    assert log.read_text() == "run\n"
    assert list((tmp_path / "units").iterdir()) == [tmp_path / "units" / "satchel.socket"]


def test_a_failing_manager_command_makes_the_install_fail(tmp_path: Path) -> None:
    from satchel.client.commands.service import Plan, execute

    plan = Plan("systemd")
    plan.write[tmp_path / "satchel.service"] = "[Service]\n"
    plan.commands = [["false"]]
    assert execute(plan) == 1
