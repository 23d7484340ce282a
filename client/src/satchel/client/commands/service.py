"""`satchel service install|uninstall|status [--dry-run]`: let the OS service manager run satcheld.

systemd (Linux): the rendered `satchel.socket` and `satchel.service` go to the user unit
directory, then `systemctl --user daemon-reload` and `enable --now satchel.socket`; systemd then
owns the socket and starts the daemon on the first connection. launchd (macOS): the rendered
plist goes to `~/Library/LaunchAgents` and is loaded with `launchctl bootstrap gui/<uid>`.

Why stop a running autostarted daemon first: it holds the socket path the service manager is
about to bind, and it may be another build than the units now name. The next client request
then goes through the service manager.

`--dry-run` prints every file it would write (with its full text) and every command it would
run, and changes nothing: the way to review what a service install does to a machine.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from satchel.client import service_units
from satchel.client.autostart import LOG_NAME, daemon_command
from satchel.client.session import ClientError, RemoteError, Session, wait_for_exit
from satchel.protocol import errors
from satchel.protocol.locations import socket_path, state_dir


class Plan:
    """What an action does, in order: write files, run `commands`, remove files, run
    `commands_after` (uninstalling must disable the units before deleting their files and
    reload the manager after)."""

    def __init__(self, manager: str) -> None:
        self.manager = manager
        self.write: dict[Path, str] = {}
        self.commands: list[list[str]] = []
        self.remove: list[Path] = []
        self.commands_after: list[list[str]] = []


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "service",
        help="install, remove or inspect the systemd/launchd units for the daemon",
        description="Hand the daemon to the OS service manager (systemd user units on Linux, "
        "a launchd agent on macOS), rendered for this installation's absolute paths.",
    )
    parser.add_argument("action", choices=("install", "uninstall", "status"))
    parser.add_argument(
        "--dry-run", action="store_true", help="print what would be written and run; change nothing"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    manager = detect_manager()
    if args.action == "status":
        return show_status(manager)
    plan = install_plan(manager) if args.action == "install" else uninstall_plan(manager)
    if args.dry_run:
        print(describe(plan))
        return errors.EXIT_OK
    if args.action == "install":
        stop_autostarted_daemon(args)
    return execute(plan)


def detect_manager() -> str:
    """`systemd` or `launchd`; anything else has no supported user service manager."""
    if sys.platform == "darwin":
        return "launchd"
    if sys.platform.startswith("linux"):
        return "systemd"
    raise ClientError(errors.INTERNAL, f"no supported service manager on {sys.platform}")


def install_plan(manager: str) -> Plan:
    plan = Plan(manager)
    argv = daemon_command()
    if manager == "systemd":
        unit_dir = service_units.systemd_user_dir()
        for name, text in service_units.render_systemd(argv).items():
            plan.write[unit_dir / name] = text
        plan.commands = [
            ["systemctl", "--user", "daemon-reload"],
            ["systemctl", "--user", "enable", "--now", "satchel.socket"],
        ]
    else:
        log_path = Path(state_dir()) / LOG_NAME
        rendered = service_units.render_launchd(argv, socket_path(), str(log_path))
        for name, text in rendered.items():
            path = service_units.launchd_agents_dir() / name
            plan.write[path] = text
            plan.commands.append(["launchctl", "bootstrap", f"gui/{os.getuid()}", str(path)])
    return plan


def uninstall_plan(manager: str) -> Plan:
    plan = Plan(manager)
    if manager == "systemd":
        unit_dir = service_units.systemd_user_dir()
        plan.commands = [
            ["systemctl", "--user", "disable", "--now", "satchel.socket", "satchel.service"],
        ]
        plan.remove = [unit_dir / name for name in service_units.SYSTEMD_UNITS]
        plan.commands_after = [["systemctl", "--user", "daemon-reload"]]
    else:
        label = service_units.LAUNCHD_LABEL
        plan.commands = [["launchctl", "bootout", f"gui/{os.getuid()}/{label}"]]
        plan.remove = [service_units.launchd_agents_dir() / f"{label}.plist"]
    return plan


def describe(plan: Plan) -> str:
    """The dry-run report: each file with its content, then each command."""
    out = []
    for path, text in plan.write.items():
        out.append(f"would write {path}:")
        out.extend(f"    {line}" for line in text.splitlines())
    out.extend(f"would run: {service_units.shell_line(c)}" for c in plan.commands)
    out.extend(f"would remove {path}" for path in plan.remove)
    out.extend(f"would run: {service_units.shell_line(c)}" for c in plan.commands_after)
    return "\n".join(out)


def execute(plan: Plan) -> int:
    for path, text in plan.write.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        tmp.replace(path)
        print(f"wrote {path}")
    status = errors.EXIT_OK
    for command in plan.commands:
        status = max(status, _run(command, check=bool(plan.write)))
    for path in plan.remove:
        try:
            path.unlink()
            print(f"removed {path}")
        except FileNotFoundError:
            pass
    for command in plan.commands_after:
        status = max(status, _run(command, check=True))
    return status


def _run(command: list[str], *, check: bool) -> int:
    print(f"running: {service_units.shell_line(command)}")
    try:
        done = subprocess.run(command, check=False)
    except FileNotFoundError as exc:
        raise ClientError(errors.INTERNAL, f"{command[0]} not found: {exc}") from exc
    if done.returncode != 0 and check:
        print(
            f"satchel: {service_units.shell_line(command)} failed with status {done.returncode}",
            file=sys.stderr,
        )
        return errors.EXIT_FAILURE
    return errors.EXIT_OK


def stop_autostarted_daemon(args: argparse.Namespace) -> None:
    """Stop a client-started daemon so the service manager can take over its socket."""
    session = Session(getattr(args, "socket", None), autostart=False, check_build=False)
    try:
        with session:
            welcome = session.connect()
            session.call("stop", {})
    except (ClientError, RemoteError):
        return
    pid = welcome.get("pid")
    print(f"stopped the running satcheld (pid {pid}); the service manager takes over")
    if isinstance(pid, int):
        wait_for_exit(pid, 30.0)


def show_status(manager: str) -> int:
    """Installed (and matching this installation)? Enabled? Active?"""
    expected = install_plan(manager).write
    for path, text in expected.items():
        try:
            current = path.read_text()
        except FileNotFoundError:
            print(f"{path.name}: not installed ({path})")
            continue
        state = "up to date" if current == text else "differs from this installation"
        print(f"{path.name}: installed, {state} ({path})")
    if manager == "systemd":
        for unit in service_units.SYSTEMD_UNITS:
            enabled = _query(["systemctl", "--user", "is-enabled", unit])
            active = _query(["systemctl", "--user", "is-active", unit])
            print(f"{unit}: enabled={enabled} active={active}")
    else:
        label = service_units.LAUNCHD_LABEL
        loaded = _query(["launchctl", "print", f"gui/{os.getuid()}/{label}"]) != "unknown"
        print(f"{label}: {'loaded' if loaded else 'not loaded'}")
    return errors.EXIT_OK


def _query(command: list[str]) -> str:
    """First line of a query command's output, or `unknown` when it cannot be asked."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    lines = (done.stdout or done.stderr).strip().splitlines()
    if done.returncode != 0 and command[0] == "launchctl":
        return "unknown"
    return lines[0] if lines else "unknown"
