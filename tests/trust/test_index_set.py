"""Issue 12: the index set is a persisted decision, and credentials are bound to origins.

Every test starts real daemons (the `satchel` client autostarts them, as for a user) from an
EMPTY configuration, with a private loopback index serving ``internal-tool`` 1.0.0 and a public
one serving an impostor ``internal-tool`` 9.9.0 (`tests.trust.laptop`). The impostor must never
be resolved, and the public index must never even be asked for the private name, unless the
user said so.
"""

from __future__ import annotations

import json
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.support.index_server import IndexServer
from tests.trust.laptop import Laptop


def _indexes(value: dict[str, Any]) -> list[tuple[str, bool]]:
    return [(index["url"], index["default"]) for index in value["indexes"]]


# -- 12.1 ---------------------------------------------------------------------------------------


def test_fresh_laptop_adopts_pips_builtin_default_as_default_and_last(laptop: Laptop) -> None:
    """Issue 12.1: with no pip or uv configuration, pip's built-in default index is adopted
    marked ``default = true``, so the first `index add` ranks the new index ahead of it.

    pip's built-in default is read from the installed pip at run time (never written in this
    repository); nothing here contacts it."""
    from pip._internal.models.index import PyPI

    listing = laptop.listing()
    assert _indexes(listing) == [(PyPI.simple_url, True)]
    assert listing["indexes"][0]["source"] == "pip: built-in default index"
    text = laptop.config.read_text()
    assert "default = true" in text
    assert 'adopted-from = "pip: built-in default index"' in text
    laptop.ok("index", "add", "internal", laptop.private.url)
    assert _indexes(laptop.listing()) == [(laptop.private.url, False), (PyPI.simple_url, True)]
    written = laptop.config.read_text()
    assert written.index(laptop.private.url) < written.index(PyPI.simple_url)


def test_first_index_add_goes_ahead_of_the_adopted_default_and_wins(laptop: Laptop) -> None:
    """Issue 12.1 end to end: pip's default index (pointed at the loopback public index) is
    adopted as the default; after `index add internal`, resolve takes the private 1.0.0."""
    first = laptop.ok("index", "list", env={"PIP_INDEX_URL": laptop.public.url})
    assert "note: first start: adopted" in first.stderr  # shown on the command that adopted
    assert "[default: asked last]" in first.stdout
    assert "adopted from pip: PIP_INDEX_URL" in first.stdout
    laptop.ok("index", "add", "internal", laptop.private.url)
    assert _indexes(laptop.listing()) == [(laptop.private.url, False), (laptop.public.url, True)]
    assert laptop.resolved("internal-tool") == "1.0.0"
    assert not laptop.impostor_asked()


def test_without_pip_nothing_is_adopted_and_every_command_says_what_to_do(
    laptop: Laptop, tmp_path: Path
) -> None:
    """Issue 13.3 (adoption part): with no pip anywhere on the daemon's side and no pip/uv
    configuration, Satchel does not guess the public index's address: nothing is adopted,
    nothing is written, and every command that needs an index says what to do.

    "No pip" is made real for the daemon (and every Python it could ask) by a ``pip`` package
    on PYTHONPATH that cannot be imported, as on a Python without pip."""
    shadow = tmp_path / "no-pip" / "pip"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text('raise ImportError("no pip on this machine")\n')
    env = {"PYTHONPATH": str(shadow.parent)}
    result = laptop.satchel("resolve", "internal-tool", env=env)
    assert result.returncode != 0
    assert "no index configured" in result.stderr
    assert "satchel index add NAME URL" in result.stderr
    assert not laptop.config.exists()  # nothing decided: a later start may still adopt
    status = laptop.ok("status", env=env).stdout
    assert "no index configured" in status
    assert "starting up" not in status
    laptop.ok("index", "add", "internal", laptop.private.url, env=env)
    assert laptop.resolved("internal-tool", env=env) == "1.0.0"
    assert laptop.public.requests == []


# -- 12.3 ---------------------------------------------------------------------------------------


def test_the_index_set_does_not_depend_on_the_shell_that_starts_the_daemon(
    laptop: Laptop,
) -> None:
    """Issue 12.3: adoption happens once; a daemon autostarted later from a shell without
    PIP_EXTRA_INDEX_URL (cron, an IDE, after a reboot) keeps the private index, and `status`
    and `index list` say how pip's configuration now differs and how to adopt it."""
    shell = laptop.shell()
    first = laptop.ok("index", "list", env=shell)
    assert "note: first start: adopted" in first.stderr
    written = laptop.config.read_text()
    assert 'adopted-from = "pip: PIP_EXTRA_INDEX_URL"' in written
    assert f'name = "{laptop.private_name()}"' in written
    assert laptop.resolved("internal-tool", env=shell) == "1.0.0"
    laptop.stop()

    cron = laptop.shell(extra=False)  # no PIP_EXTRA_INDEX_URL here
    assert laptop.resolved("internal-tool", env=cron) == "1.0.0"
    assert laptop.config.read_text() == written  # nothing re-adopted, nothing rewritten
    assert not laptop.impostor_asked()
    listing = laptop.listing(env=cron)
    assert _indexes(listing) == [(laptop.private.url, False), (laptop.public.url, True)]
    assert [i["source"] for i in listing["indexes"]] == [
        "pip: PIP_EXTRA_INDEX_URL",
        "pip: PIP_INDEX_URL",
    ]
    assert [i["adopted"] for i in listing["indexes"]] == [True, True]
    (drift,) = listing["drift"]
    assert f"{laptop.private_name()} (adopted from pip: PIP_EXTRA_INDEX_URL)" in drift
    assert "satchel index adopt" in drift
    status = laptop.ok("status", env=cron).stdout
    assert "satchel index adopt" in status

    # Adopting the change is the user's word, from the shell they run it in.
    adopted = json.loads(laptop.ok("index", "adopt", "--json", env=cron).stdout)
    assert _indexes(adopted) == [(laptop.public.url, True)]
    assert any(laptop.private_name() in note for note in adopted["notes"])
    assert laptop.listing(env=cron)["drift"] == []


# -- 12.4 ---------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _exports(text: str) -> dict[str, str]:
    return {
        match.group(1): match.group(2)
        for match in re.finditer(r"^export (\w+)='([^']*)'$", text, re.MULTILINE)
    }


def test_satchel_env_never_makes_the_daemon_its_own_upstream(laptop: Laptop) -> None:
    """Issue 12.4: after ``eval "$(satchel env)"`` the next autostarted daemon used to adopt
    its own local index as its only upstream (endless recursion), and `index add` wrote the
    loop into config.toml. The local index (its port, with or without its token, under
    localhost, 127.0.0.1 or [::1]) is never adopted nor accepted by `index add`."""
    port = str(_free_port())
    shell = {**laptop.shell(), "SATCHEL_LOCAL_INDEX_PORT": port}
    laptop.ok("index", "list", env=shell)  # first start: adopts the private and public indexes
    exports = _exports(laptop.ok("env", "--shell", "bash", env=shell).stdout)
    assert f"127.0.0.1:{port}" in exports["PIP_INDEX_URL"]
    laptop.stop()

    # The same shell after eval "$(satchel env)": config.toml is the index set, no recursion,
    # and pip pointing at Satchel is not reported as a disagreement with config.toml.
    after_eval = {**shell, **exports}
    assert laptop.resolved("internal-tool", env=after_eval) == "1.0.0"
    assert laptop.listing(env=after_eval)["drift"] == []
    token_url = exports["PIP_INDEX_URL"]
    for url in (
        f"http://127.0.0.1:{port}/simple/",
        f"http://localhost:{port}/simple/",
        f"http://[::1]:{port}/simple/",
        token_url,
    ):
        refused = laptop.satchel("index", "add", "loop", url, env=after_eval)
        assert refused.returncode != 0, url
        assert "Satchel's own local index" in refused.stderr, refused.stderr
    assert port not in laptop.config.read_text()

    # A first start from that shell (no config.toml, and none ever in use) adopts nothing
    # rather than itself.
    laptop.stop()
    laptop.config.unlink()
    (Path(laptop.client.env["XDG_STATE_HOME"]) / "satchel" / "config-in-use").unlink()
    first = laptop.satchel("resolve", "internal-tool", env=after_eval)
    assert first.returncode != 0
    assert "no index configured" in first.stderr
    notes = laptop.listing(env=after_eval)
    assert notes["indexes"] == []
    assert any("Satchel's own local index" in note for note in notes["notes"])
    token_file = Path(laptop.client.env["XDG_STATE_HOME"]) / "satchel" / "local-index-token"
    assert token_file.read_text().strip() not in json.dumps(notes)  # no token shown


# -- 12.6 ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["PIP_NO_INDEX", "pip.conf", "uv.toml"])
def test_no_index_alone_adopts_no_index(laptop: Laptop, how: str, tmp_path: Path) -> None:
    """Issue 12.6: ``PIP_NO_INDEX=1``, pip's ``no-index = true`` or uv's ``no-index`` alone
    used to adopt the public default anyway, sending every private name to it."""
    env: dict[str, str] = {}
    if how == "PIP_NO_INDEX":
        env["PIP_NO_INDEX"] = "1"
    elif how == "pip.conf":
        laptop.pip_conf.write_text("[global]\nno-index = true\n")
    else:
        uv_toml = tmp_path / "uv.toml"
        uv_toml.write_text("no-index = true\n")
        env["UV_CONFIG_FILE"] = str(uv_toml)
    first = laptop.ok("index", "list", env=env)
    assert "no index adopted" in first.stderr
    assert "[[index]]" not in laptop.config.read_text()  # the decision is written: no index
    result = laptop.satchel("resolve", "internal-tool", env=env)
    assert result.returncode != 0
    assert not laptop.impostor_asked()
    assert laptop.public.requests == []


# -- 12.7 ---------------------------------------------------------------------------------------


def _uv_project(root: Path, private_url: str, *, explicit: bool = True) -> Path:
    project = root / "app"
    project.mkdir()
    (project / "pyproject.toml").write_text(
        "[project]\n"
        'name = "app"\n'
        'version = "0.1"\n'
        'dependencies = ["internal-tool"]\n'
        "\n"
        "[[tool.uv.index]]\n"
        'name = "private"\n'
        f'url = "{private_url}"\n'
        f"explicit = {'true' if explicit else 'false'}\n"
        "\n"
        "[tool.uv.sources]\n"
        'internal-tool = { index = "private" }\n'
    )
    return project


def test_a_uv_projects_own_index_and_pins_are_honoured(laptop: Laptop, tmp_path: Path) -> None:
    """Issue 12.7: `[[tool.uv.index]]` (explicit) plus a `[tool.uv.sources]` pin used to be
    ignored by `resolve -r pyproject.toml` and `watch add`, which took the public impostor where
    uv itself takes the private 1.0.0. config.toml knows only the public (default) index."""
    shell = laptop.shell(extra=False)
    project = _uv_project(tmp_path, laptop.private.url)
    pyproject = str(project / "pyproject.toml")
    out = laptop.ok("resolve", "--format", "json", "-r", pyproject, env=shell).stdout
    (pin,) = json.loads(out)["pins"]
    assert (pin["name"], pin["version"], pin["index_url"]) == (
        "internal-tool",
        "1.0.0",
        laptop.private.url,
    )
    laptop.ok("watch", "add", str(project), env=shell)
    laptop.ok("prefetch", "--watched", env=shell)
    assert laptop.stored(laptop.private_wheel)
    assert not laptop.stored(laptop.impostor_wheel)
    assert not laptop.impostor_asked()  # pinned: the public index is never asked for it
    # The project's index applies to that project only: config.toml is unchanged.
    assert laptop.private.url not in laptop.config.read_text()


# -- 12.9 ---------------------------------------------------------------------------------------


def _authorizations(records: list[Any]) -> list[str]:
    return [r.headers["authorization"] for r in records if "authorization" in r.headers]


def test_a_password_given_by_name_reaches_only_its_host(
    locked_laptop: Laptop, tmp_path: Path
) -> None:
    """Issue 12.9: adopted indexes were named pip-extra-1, pip-extra-2... by position, so a
    SATCHEL_INDEX_PIP_EXTRA_1_PASSWORD meant for the private index went to whichever host came
    first. Names are derived from the host (and port), and credentials go to their origin only.
    """
    laptop = locked_laptop
    name = laptop.private_name().upper().replace("-", "_")
    # Another host listed FIRST among the extra indexes (it has no internal-tool).
    with IndexServer(tmp_path / "other") as other:
        env = {
            "PIP_EXTRA_INDEX_URL": f"{other.url} {laptop.private.url}",
            "PIP_INDEX_URL": laptop.public.url,
            f"SATCHEL_INDEX_{name}_USERNAME": "ci",
            f"SATCHEL_INDEX_{name}_PASSWORD": "private-pw-42",
        }
        listing = laptop.listing(env=env)
        assert [i["name"] for i in listing["indexes"]] == [
            f"127-0-0-1-{other.port}",
            laptop.private_name(),
            f"127-0-0-1-{laptop.public.port}",
        ]
        assert laptop.resolved("internal-tool", env=env) == "1.0.0"
        assert other.requests  # it was asked first...
        assert _authorizations(other.records) == []  # ...without the private password
    assert _authorizations(laptop.public.records) == []
    assert _authorizations(laptop.private.records)  # the private index got it


def test_a_token_in_an_adopted_url_is_bound_to_its_origin(locked_laptop: Laptop) -> None:
    """Issue 12.9: a token in PIP_EXTRA_INDEX_URL is never written to config.toml; the daemon
    sends it to that URL's origin only."""
    laptop = locked_laptop
    env = {
        "PIP_INDEX_URL": laptop.public.url,
        "PIP_EXTRA_INDEX_URL": laptop.private.url_with_auth(),
    }
    first = laptop.ok("index", "list", env=env)
    assert "credentials in its URL" in first.stderr
    assert "private-pw-42" not in laptop.config.read_text()
    assert "private-pw-42" not in first.stdout + first.stderr
    assert laptop.resolved("internal-tool", env=env) == "1.0.0"
    assert _authorizations(laptop.public.records) == []


class _Redirector(BaseHTTPRequestHandler):
    """Answers every request with a 302 to the same path on *target* (another origin)."""

    target = ""
    seen: list[dict[str, str]] = []

    def do_GET(self) -> None:
        type(self).seen.append({k.lower(): v for k, v in self.headers.items()})
        self.send_response(302)
        self.send_header("Location", self.target + self.path)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_credentials_are_not_carried_over_a_redirect_to_another_origin(
    locked_laptop: Laptop,
) -> None:
    """Issue 12.9: an index that redirects to another host (here: another port) must not make
    Satchel send that host the index's password."""
    laptop = locked_laptop
    laptop.private.auth = None  # the redirect target serves the private project openly
    handler = type("Handler", (_Redirector,), {"target": laptop.private.base_url, "seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        front = f"http://127.0.0.1:{server.server_address[1]}/simple/"
        name = f"127-0-0-1-{server.server_address[1]}".upper().replace("-", "_")
        env = {
            "PIP_INDEX_URL": laptop.public.url,
            "PIP_EXTRA_INDEX_URL": front,
            f"SATCHEL_INDEX_{name}_PASSWORD": "front-pw-77",
        }
        laptop.ok("index", "list", env=env)
        assert laptop.resolved("internal-tool", env=env) == "1.0.0"
    finally:
        server.shutdown()
        server.server_close()
    assert any("authorization" in headers for headers in handler.seen)  # its own origin: yes
    assert _authorizations(laptop.private.records) == []  # the other origin: never


# -- 12.10 and 11.10 (config part) --------------------------------------------------------------


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda t: t.replace("explicit", "explict") + "", "unknown index key 'explict'"),
        (lambda t: t + "[settings\n", "invalid TOML"),
        (lambda t: t.replace("/simple/", "/si mple/", 1), "spaces"),
    ],
    ids=["misspelt-key", "syntax", "space-in-url"],
)
def test_a_broken_config_stops_every_command_that_needs_an_index(
    laptop: Laptop, edit: Any, expected: str
) -> None:
    """Issue 12.10: a typo in config.toml, then a daemon restart, used to fall back to adopting
    pip's indexes and install the impostor with exit 0. Now every command that needs an index
    fails naming the file, the line and the problem; `status` and `index list` show it."""
    shell = laptop.shell()
    laptop.ok("index", "list", env=shell)
    text = laptop.config.read_text().replace("[[index]]\n", "[[index]]\nexplicit = false\n", 1)
    laptop.stop()
    laptop.config.write_text(edit(text))
    for command in (("resolve", "internal-tool"), ("prefetch", "internal-tool")):
        result = laptop.satchel(*command, env=shell)
        assert result.returncode != 0, command
        assert f"{laptop.config}:" in result.stderr, result.stderr
        assert expected in result.stderr
        assert "does not fall back" in result.stderr
    status = laptop.ok("status", env=shell).stdout
    assert expected in status
    listing = laptop.satchel("index", "list", env=shell)
    assert listing.returncode == 0 and expected in listing.stdout
    assert not laptop.impostor_asked()


def test_a_truncated_config_keeps_the_last_good_index_set_live_and_stops_at_restart(
    laptop: Laptop,
) -> None:
    """Issue 12.10: an editor that truncates config.toml before writing it (while the daemon
    runs) must not change the index set: the live reload keeps the last good configuration and
    reports it; a daemon started on the empty file refuses to guess."""
    shell = laptop.shell()
    assert laptop.resolved("internal-tool", env=shell) == "1.0.0"
    good = laptop.config.read_text()
    laptop.config.write_text("")
    refused = laptop.satchel("index", "pin", "internal-tool", laptop.private_name(), env=shell)
    assert refused.returncode != 0 and "is empty" in refused.stderr
    laptop.wait_status("is empty", env=shell)  # the live reload saw it, and reports it
    kept = laptop.ok("resolve", "internal-tool", env=shell)
    assert "==1.0.0" in kept.stdout
    assert "the last good configuration is in use" in kept.stderr  # on every command
    laptop.stop()
    result = laptop.satchel("resolve", "internal-tool", env=shell)
    assert result.returncode != 0
    assert "is empty" in result.stderr and "does not fall back" in result.stderr
    laptop.config.write_text(good)  # fixed: the live reload picks it up, no restart needed
    laptop.wait_status("is empty", env=shell, gone=True)
    assert laptop.resolved("internal-tool", env=shell) == "1.0.0"
    assert not laptop.impostor_asked()
