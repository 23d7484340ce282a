"""Issue 12, end to end: edits of the index set that must not weaken trust.

* Satchel's own local index typed into config.toml by hand is refused at load, naming the line
  (`index add` and adoption refuse it already);
* a password given by index name (``SATCHEL_INDEX_<NAME>_PASSWORD``) stays with the origin it
  was first used for when config.toml later gives that name another host;
* `satchel index remove` says which projects are bound to the index and what becomes of them.

Real daemons (autostarted by the real client) and loopback indexes: a private one serving
``internal-tool`` 1.0.0 and a public one serving an impostor ``internal-tool`` 9.9.0.
"""

from __future__ import annotations

import json
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.twoindexes import EXIT_FAILURE, World
from tests.support.index_server import IndexServer
from tests.trust.laptop import Laptop
from tests.trust.test_index_set import _exports, _free_port
from tests.trust.test_origins import open_world, refused


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with open_world(tmp_path) as w:
        yield w


# -- gap 3: the own local index typed into config.toml -----------------------------------------


def _with_loop(good: str, url: str) -> tuple[str, int]:
    """*good* with an index at *url* appended, and the line its ``url`` key is on."""
    return good + f'\n[[index]]\nname = "loop"\nurl = "{url}"\n', good.count("\n") + 4


def test_the_own_local_index_typed_into_config_toml_is_refused_naming_the_line(
    laptop: Laptop,
) -> None:
    """issue 12 (gap 3): Satchel's own port on 127.0.0.1, localhost or [::1], with or without
    its token, written into config.toml by hand: a live edit is refused (the last good index set
    stays, status names file and line); at a restart every command that needs an index fails
    naming file and line, and nothing falls back."""
    port = str(_free_port())
    shell = {**laptop.shell(), "SATCHEL_LOCAL_INDEX_PORT": port}
    laptop.ok("index", "list", env=shell)  # the first start adopts the two indexes
    plain_url = _exports(laptop.ok("env", "--shell", "bash", env=shell).stdout)["PIP_INDEX_URL"]
    assert f"127.0.0.1:{port}" in plain_url
    token = (laptop.client.state_dir / "local-index-token").read_text().strip()
    token_url = plain_url.replace("http://", f"http://satchel:{token}@")
    good = laptop.config.read_text()

    for url in (
        f"http://localhost:{port}/simple/",
        f"http://[::1]:{port}/simple/",
        plain_url,
        token_url,
    ):
        text, line = _with_loop(good, url)
        laptop.config.write_text(text)
        status = laptop.wait_status(f"{laptop.config}:{line}:", env=shell)
        assert "Satchel's own local index" in status, status
        assert token not in status  # the token is never shown
        kept = laptop.ok("resolve", "internal-tool", env=shell)
        assert "internal-tool==1.0.0" in kept.stdout
        assert "the last good configuration is in use" in kept.stderr
        laptop.config.write_text(good)
        laptop.wait_status("Satchel's own local index", env=shell, gone=True)

    text, line = _with_loop(good, f"http://127.0.0.1:{port}/simple/")
    laptop.config.write_text(text)
    laptop.stop()
    for command in (("resolve", "internal-tool"), ("prefetch", "internal-tool")):
        result = laptop.satchel(*command, env=shell)
        assert result.returncode != 0, command
        assert f"{laptop.config}:{line}:" in result.stderr, result.stderr
        assert "Satchel's own local index" in result.stderr
        assert "does not fall back" in result.stderr
    laptop.ok("index", "remove", "loop", env=shell)  # the way out works on the broken file
    assert laptop.resolved("internal-tool", env=shell) == "1.0.0"
    assert not laptop.impostor_asked()


# -- gap 4: a name-given credential stays with its first origin --------------------------------


def _wait_url(laptop: Laptop, name: str, url: str, env: dict[str, str]) -> None:
    """Until the running daemon's index *name* has *url* (the live reload is asynchronous:
    polled against a deadline far beyond any load, not a guessed sleep)."""
    deadline = time.monotonic() + 60
    while True:
        urls = {i["name"]: i["url"] for i in laptop.listing(env=env)["indexes"]}
        if urls.get(name) == url or time.monotonic() > deadline:
            assert urls.get(name) == url, urls
            return
        time.sleep(0.1)


def _authorizations(server: IndexServer) -> list[str]:
    return [r.headers["authorization"] for r in server.records if "authorization" in r.headers]


def test_a_password_given_by_name_does_not_follow_an_edited_url(
    locked_laptop: Laptop, tmp_path: Path
) -> None:
    """issue 12 (gap 4): SATCHEL_INDEX_INTERNAL_PASSWORD was first used for the private index;
    config.toml then gives `internal` another host. The password is withheld (live and after a
    restart) with an error naming both origins and how to confirm; re-adding the index is the
    user's word, after which it goes to the new URL."""
    laptop = locked_laptop
    laptop.config.parent.mkdir(parents=True, exist_ok=True)
    laptop.config.write_text(
        f'[[index]]\nname = "internal"\nurl = "{laptop.private.url}"\n\n'
        f'[[index]]\nname = "public"\nurl = "{laptop.public.url}"\ndefault = true\n'
    )
    env = {"SATCHEL_INDEX_INTERNAL_USERNAME": "ci", "SATCHEL_INDEX_INTERNAL_PASSWORD": "pw-4242"}
    laptop.private.auth = ("ci", "pw-4242")
    assert laptop.resolved("internal-tool", env=env) == "1.0.0"
    assert _authorizations(laptop.private)
    state = Path(laptop.client.env["XDG_STATE_HOME"]) / "satchel" / "credential-origins.json"
    assert json.loads(state.read_text()) == {"internal": laptop.private.base_url.rstrip("/")}
    assert stat.S_IMODE(state.stat().st_mode) == 0o600 and "pw-4242" not in state.read_text()

    with IndexServer(tmp_path / "elsewhere") as elsewhere:
        laptop.config.write_text(
            laptop.config.read_text().replace(laptop.private.url, elsewhere.url)
        )
        _wait_url(laptop, "internal", elsewhere.url, env)
        for restart in (False, True):
            if restart:
                laptop.stop()
            result = laptop.satchel("resolve", "--format", "json", "internal-tool", env=env)
            assert result.returncode == EXIT_FAILURE, result.stderr
            error: dict[str, Any] = json.loads(result.stdout)["error"]
            assert error["code"] == "credential-withheld"
            assert error["details"]["first_used_for"] == laptop.private.base_url.rstrip("/")
            assert error["details"]["configured"] == elsewhere.base_url.rstrip("/")
            assert "satchel index remove internal" in error["message"]
            assert "SATCHEL_INDEX_INTERNAL_PASSWORD" in error["message"]
            assert "pw-4242" not in result.stdout + result.stderr
            assert _authorizations(elsewhere) == []
            assert not laptop.impostor_asked()

        # The user's word: re-add the index with the URL they mean.
        laptop.ok("index", "remove", "internal", env=env)
        laptop.ok("index", "add", "internal", elsewhere.url, "--before", "public", env=env)
        laptop.satchel("resolve", "internal-tool", env=env)  # elsewhere serves nothing: refused
        assert _authorizations(elsewhere)
    assert json.loads(state.read_text()) == {"internal": elsewhere.base_url.rstrip("/")}


# -- gap 5: `index remove` says what becomes of the projects bound to the index ----------------


def test_index_remove_names_the_projects_bound_to_the_index(world: World) -> None:
    """issue 12 (gap 5): removing `internal` says how many projects are bound to it and that
    they are refused until re-trusted, in text and in --json; they then are."""
    w = world
    w.ok("prefetch", "internal-tool")  # binds internal-tool and helper to internal

    text = w.ok("index", "remove", "internal")
    assert "2 projects are bound to index internal" in text.stderr
    assert "helper, internal-tool" in text.stderr
    assert "satchel origins trust PROJECT INDEX" in text.stderr
    assert refused(w, "resolve", "--format", "json", "internal-tool")["reason"] == "not-configured"

    w.ok("index", "add", "internal", w.internal.url, "--before", "public")
    assert w.pins("internal-tool")["internal-tool"]["version"] == "1.0.0"  # back: bound again
    value = json.loads(w.ok("index", "remove", "internal", "--json").stdout)
    assert value["bound_to_removed"] == ["helper", "internal-tool"]
    assert any("2 projects are bound to index internal" in note for note in value["notes"])

    value = json.loads(w.ok("index", "remove", "public", "--json").stdout)
    assert value["bound_to_removed"] == []  # nothing came from public
