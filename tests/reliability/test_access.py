"""Access: other users stay out of the local HTTP index; index secrets never leak.

The Unix socket's peer-uid check is proven by `tests/daemon/test_server.py` (a uid-65534 child
is refused even with the socket and its directories chmod 0666/0777). This suite adds:

* the local HTTP index (loopback TCP, reachable by every local user): no token or a wrong one
  gets 401 without naming any project, and another uid cannot read the token file;
* secrets: three indexes whose credentials come from URL userinfo, the environment
  (``SATCHEL_INDEX_<NAME>_PASSWORD``) and netrc are used for prefetch, resolve, offline
  failures and a refused (401) request; then every file under the state, cache and config
  directories, the daemon log, every command's output and ``status --json`` are searched for
  the secrets. Excluded, by decision: ``config.toml``, which the user wrote with the URL
  themselves (documented in ``docs/reliability.md``).
"""

from __future__ import annotations

import base64
import json
import os
import re
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.client.clientenv import ClientEnv
from tests.reliability.harness import Rig
from tests.support.index_server import IndexServer
from tests.support.wheels import build_wheel

URL_SECRET = "url-secret-token-7f3a"
ENV_SECRET = "env-secret-token-91bc"
NETRC_SECRET = "netrc-secret-token-c0de"
SECRETS = (URL_SECRET, ENV_SECRET, NETRC_SECRET)


def _local_index_url(rig: Rig) -> str:
    """The local index's URL, once the daemon has logged that it serves (it starts beside the
    socket, a moment after the daemon answers)."""
    deadline = time.monotonic() + 60  # a hang guard, not a measurement
    while True:
        log = rig.env.log_file.read_text()
        found: list[str] = re.findall(
            r"local index serving on (http://127\.0\.0\.1:\d+/simple/)", log
        )
        if found:
            return found[-1]
        assert time.monotonic() < deadline, "the local index did not start"
        time.sleep(0.05)


def _get(url: str, token: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url)
    if token is not None:
        basic = base64.b64encode(f"satchel:{token}".encode()).decode()
        request.add_header("Authorization", f"Basic {basic}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_local_index_refuses_requests_without_the_token(rig: Rig) -> None:
    rig.index.add(build_wheel(rig.root / "dist", "private-thing", "1.0"))
    rig.ok("prefetch", "private-thing")
    base = _local_index_url(rig)
    token = (rig.state_dir / "local-index-token").read_text().strip()
    assert _get(base + "private-thing/", token)[0] == 200
    # Without credentials the owner's own connections are admitted on Linux (the kernel names
    # the peer's uid; another user's are refused: tests/security/test_local_index_peer.py), but
    # a wrong token is refused from anyone.
    for wrong in ("not-the-token", token[:-1]):
        status, body = _get(base + "private-thing/", wrong)
        assert status == 401, (wrong, status)
        assert b"private" not in body
        status, body = _get(base, wrong)
        assert status == 401 and b"private" not in body


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch to another uid")
def test_another_uid_cannot_read_the_local_index_token(rig: Rig) -> None:
    rig.ok("ping")
    _local_index_url(rig)
    token_file = rig.state_dir / "local-index-token"
    assert token_file.stat().st_mode & 0o077 == 0
    # Even with every directory on the way opened up, the file's own mode keeps it private.
    for directory in (rig.root, rig.root / "state", rig.state_dir):
        directory.chmod(0o755)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        try:
            os.close(read_end)
            os.setgid(65534)
            os.setuid(65534)
            try:
                token_file.read_text()
                outcome = "read it"
            except PermissionError:
                outcome = "denied"
            except BaseException as exc:
                outcome = repr(exc)
            os.write(write_end, outcome.encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as reader:
        outcome = reader.read().decode()
    os.waitpid(pid, 0)
    assert outcome == "denied"


def _secret_world(root: Path) -> tuple[ClientEnv, list[IndexServer], list[str]]:
    """Three private indexes, one per credential source, and a daemon configured with all."""
    servers = [
        IndexServer(root / "via-url", auth=("alice", URL_SECRET)).start(),
        IndexServer(root / "via-env", auth=("bob", ENV_SECRET)).start(),
        IndexServer(root / "via-netrc", auth=("carol", NETRC_SECRET)).start(),
    ]
    outputs: list[str] = []
    names = ["urlpkg", "envpkg", "netrcpkg"]
    for server, name in zip(servers, names, strict=True):
        server.add(build_wheel(root / "dist", name, "1.0"))
    env = ClientEnv(root)
    env.env["SATCHEL_INDEX_VIA_ENV_USERNAME"] = "bob"
    env.env["SATCHEL_INDEX_VIA_ENV_PASSWORD"] = ENV_SECRET
    netrc = Path(env.env["HOME"]) / ".netrc"
    netrc.write_text(f"machine 127.0.0.1 login carol password {NETRC_SECRET}\n")
    netrc.chmod(0o600)
    config = Path(env.env["XDG_CONFIG_HOME"]) / "satchel"
    config.mkdir(parents=True, exist_ok=True)
    # netrc is matched by host (all three are 127.0.0.1): URL and env credentials come first,
    # so each index gets its own; netrc answers for the third.
    (config / "config.toml").write_text(
        f'[[index]]\nname = "via-url"\nurl = "{servers[0].url_with_auth()}"\n\n'
        f'[[index]]\nname = "via-env"\nurl = "{servers[1].url}"\n\n'
        f'[[index]]\nname = "via-netrc"\nurl = "{servers[2].url}"\n\n'
        '[settings]\nlocal-index-port = 0\nindex-strategy = "unsafe-best-match"\n'
    )
    return env, servers, outputs


def test_secrets_never_reach_logs_status_errors_or_files(tmp_path: Path) -> None:
    env, servers, outputs = _secret_world(tmp_path)
    try:

        def run(*args: str, ok: bool = True) -> None:
            result = env.satchel(*args)
            outputs.extend([result.stdout, result.stderr])
            if ok:
                assert result.returncode == 0, f"satchel {' '.join(args)}: {result.stderr}"
            else:
                assert result.returncode != 0

        run("prefetch", "urlpkg", "envpkg", "netrcpkg")
        run("resolve", "urlpkg", "envpkg", "netrcpkg", "--format", "json")
        run("status", "--json")
        run("index", "list", "--json")
        run("cache", "info", "--json")
        # Failures: a wrong password (401), a project nobody has, indexes gone.
        servers[0].auth = ("alice", "rotated-password")
        run("resolve", "urlpkg", ok=False)
        run("resolve", "no-such-project", ok=False)
        for server in servers:
            server.stop()
        run("resolve", "urlpkg", "envpkg", ok=True)  # offline: from the cache
        run("prefetch", "something-else", ok=False)
        run("status", "--json")
        status = env.satchel("status", "--json").stdout
        outputs.append(status)
        assert json.loads(status)["pid"] > 0
        run("stop")
        for text in outputs:
            for secret in SECRETS:
                assert secret not in text, f"{secret} in command output:\n{text}"
        leaks = _files_containing(tmp_path, SECRETS, exclude=config_file(env))
        assert leaks == [], f"secrets written to: {leaks}"
    finally:
        env.cleanup()
        for server in servers:
            server.stop()


def config_file(env: ClientEnv) -> Path:
    return Path(env.env["XDG_CONFIG_HOME"]) / "satchel" / "config.toml"


def _files_containing(root: Path, secrets: tuple[str, ...], exclude: Path) -> list[str]:
    """Files under the daemon's state, cache and config directories (and the runtime dir)
    holding any secret, as text or inside binary files (SQLite pages, WAL)."""
    env_dirs = [root / "state", root / "cache", root / "config"]
    found = []
    for directory in env_dirs:
        for path in directory.rglob("*"):
            if not path.is_file() or path == exclude:
                continue
            data = path.read_bytes()
            found += [f"{path}: {s}" for s in secrets if s.encode() in data]
    return found


def test_the_grep_finds_a_planted_secret(tmp_path: Path) -> None:
    """The search itself works: a secret written anywhere in those trees is found."""
    planted = tmp_path / "state" / "satchel" / "deep" / "file.bin"
    planted.parent.mkdir(parents=True)
    planted.write_bytes(b"\0\1" + URL_SECRET.encode() + b"\xff")
    assert _files_containing(tmp_path, SECRETS, exclude=tmp_path / "none") != []
