"""The unit templates render into units the service managers accept, for this installation."""

from __future__ import annotations

import os
import plistlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from satchel.client import service_units

REPO = Path(__file__).resolve().parents[2]
SATCHELD = str(Path(sys.executable).parent / "satcheld")


def write_units(directory: Path, argv: list[str]) -> list[Path]:
    paths = []
    for name, text in service_units.render_systemd(argv).items():
        path = directory / name
        path.write_text(text)
        paths.append(path)
    return paths


def systemd_verify(tmp_path: Path, units: list[Path]) -> subprocess.CompletedProcess[str]:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (Debian package `systemd`)")
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700, exist_ok=True)
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime)}
    return subprocess.run(
        [analyze, "verify", "--user", *map(str, units)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )


def test_rendered_systemd_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    units = write_units(tmp_path, [SATCHELD])
    result = systemd_verify(tmp_path, units)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def test_systemd_analyze_rejects_a_unit_naming_a_missing_daemon(tmp_path: Path) -> None:
    # The verification above can fail: a daemon path that does not exist is an error.
    units = write_units(tmp_path, [str(tmp_path / "no-such-satcheld")])
    result = systemd_verify(tmp_path, units)
    assert result.returncode != 0
    assert "no-such-satcheld" in result.stderr


def test_service_unit_is_notify_type_restarting_on_failure_with_the_absolute_daemon_path() -> None:
    service = service_units.render_systemd([SATCHELD])["satchel.service"]
    assert "Type=notify" in service.splitlines()
    assert "Restart=on-failure" in service.splitlines()
    assert f"ExecStart={SATCHELD} --log-level info" in service.splitlines()


def test_socket_unit_listens_privately_in_the_runtime_dir() -> None:
    socket_unit = service_units.render_systemd([SATCHELD])["satchel.socket"].splitlines()
    assert "ListenStream=%t/satchel/satchel.sock" in socket_unit
    assert "SocketMode=0600" in socket_unit
    assert "DirectoryMode=0700" in socket_unit


def test_exec_start_quotes_paths_with_spaces_and_percent_signs() -> None:
    service = service_units.render_systemd(["/opt/my tools/sat%d", "-c", 'a "b"'])
    line = next(x for x in service["satchel.service"].splitlines() if x.startswith("ExecStart="))
    assert line == 'ExecStart="/opt/my tools/sat%%d" -c "a \\"b\\"" --log-level info'


def test_launchd_plist_parses_and_keeps_the_daemon_alive_only_after_a_crash() -> None:
    rendered = service_units.render_launchd(
        ["/Applications/Sat & Co/satcheld"], "/tmp/run/satchel/satchel.sock", "/tmp/log <1>"
    )
    ((name, text),) = rendered.items()
    assert name == f"{service_units.LAUNCHD_LABEL}.plist"
    plist = plistlib.loads(text.encode())
    assert plist["Label"] == service_units.LAUNCHD_LABEL
    assert plist["ProgramArguments"] == [
        "/Applications/Sat & Co/satcheld",
        "--log-level",
        "info",
    ]
    assert plist["KeepAlive"] == {"SuccessfulExit": False}
    assert plist["StandardErrorPath"] == "/tmp/log <1>"
    listeners = plist["Sockets"]["Listeners"]
    assert listeners["SockPathName"] == "/tmp/run/satchel/satchel.sock"
    assert listeners["SockPathMode"] == 0o600


def test_launchd_socket_key_matches_the_name_the_daemon_activates() -> None:
    activation = pytest.importorskip("satchel.daemon.process._activation")
    plist = plistlib.loads(
        service_units.render_launchd(["/x"], "/s", "/l")[
            f"{service_units.LAUNCHD_LABEL}.plist"
        ].encode()
    )
    assert list(plist["Sockets"]) == [activation.LAUNCHD_SOCKET_NAME]


def test_templates_in_the_repository_are_the_packaged_ones_and_hold_no_machine_paths() -> None:
    for repo_path, packaged in [
        (REPO / "systemd" / "satchel.socket", "satchel.socket"),
        (REPO / "systemd" / "satchel.service", "satchel.service"),
        (REPO / "launchd" / f"{service_units.LAUNCHD_LABEL}.plist", "launchd.plist"),
    ]:
        assert repo_path.read_text() == (service_units.TEMPLATES / packaged).read_text()
        assert str(REPO) not in repo_path.read_text()
        assert "/home/" not in repo_path.read_text()


def test_an_unfilled_placeholder_is_an_error_not_a_broken_unit(tmp_path: Path) -> None:
    with pytest.raises(service_units.RenderError, match="MISSING"):
        service_units._fill("ExecStart=@MISSING@\n", {})
