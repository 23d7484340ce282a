"""A config.toml that is briefly absent when a daemon starts is not a first start.

Scenario (QA 2026-12-05): an editor saving config.toml (vim with ``backupcopy=no`` renames the
old file away, then writes the new one) or a dotfiles tool recreating it leaves a moment with
no file at all. A daemon autostarted in that moment, from a shell whose pip names only the
public index, used to take it for a first start: it adopted that shell's indexes, wrote them to
config.toml over the user's decision, resolved the private ``newpriv`` 99.0 from the public
index and bound it there. Adoption is for the first start only: once a config.toml was in use,
a missing one is an error like a broken one (nothing is fetched, nothing is written), until the
file is back or the user runs `satchel index adopt`.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request

from tests.support.wheels import build_wheel, file_sha256
from tests.trust.laptop import Laptop


def _publish_newpriv(laptop: Laptop) -> None:
    """``newpriv`` 1.0 on the private index; an impostor 99.0 of it on the public one."""
    dist = laptop.root / "dist"
    laptop.private.add(build_wheel(dist / "private", "newpriv", "1.0"))
    laptop.public.add(build_wheel(dist / "public", "newpriv", "99.0"))


def test_a_config_missing_at_restart_is_an_error_not_a_new_adoption(laptop: Laptop) -> None:
    """config.toml (adopted: private, then public as the default) is renamed away while no
    daemon runs; a daemon autostarted from a shell naming only the public index refuses every
    command that needs an index, writes nothing, asks nothing; once the file is back, the same
    daemon uses it, and ``newpriv`` comes from the private index."""
    assert laptop.resolved("internal-tool", env=laptop.shell()) == "1.0.0"
    _publish_newpriv(laptop)
    laptop.stop()
    saved = laptop.config.with_name("config.toml~")
    os.rename(laptop.config, saved)

    public_only = {"PIP_INDEX_URL": laptop.public.url}
    for command in (("resolve", "newpriv"), ("prefetch", "newpriv")):
        result = laptop.satchel(*command, env=public_only)
        assert result.returncode != 0, (command, result.stdout)
        assert f"{laptop.config}:" in result.stderr, result.stderr
        assert "is missing" in result.stderr and "does not fall back" in result.stderr
        assert "satchel index adopt" in result.stderr
    assert not laptop.config.exists()  # nothing adopted over the user's file
    assert "is missing" in laptop.ok("status", env=public_only).stdout
    assert not any("newpriv" in path for path in laptop.public.requests)

    os.rename(saved, laptop.config)  # the editor's save completes: no restart needed
    laptop.wait_status("is missing", env=public_only, gone=True)
    assert laptop.resolved("newpriv", env=public_only) == "1.0"
    assert not any("newpriv" in path for path in laptop.public.requests)


def test_index_adopt_is_the_way_to_adopt_again(laptop: Laptop) -> None:
    """Removing config.toml on purpose, then `satchel index adopt` from a shell, adopts that
    shell's indexes: the user's word, not an autostart's environment."""
    assert laptop.resolved("internal-tool", env=laptop.shell()) == "1.0.0"
    laptop.stop()
    laptop.config.unlink()
    adopted = laptop.ok("index", "adopt", env=laptop.shell())
    assert laptop.private.url in adopted.stdout, adopted.stdout
    assert laptop.private.url in laptop.config.read_text()
    laptop.wait_status("is missing", env=laptop.shell(), gone=True)
    assert laptop.resolved("internal-tool", env=laptop.shell()) == "1.0.0"


def test_index_list_says_no_index_set_is_in_use_not_a_last_good_one(laptop: Laptop) -> None:
    """QA 2026-12-05, restart from another shell with config.toml missing (or broken): `satchel
    index list` said "config.toml error (last good configuration in use)" and "no index
    configured: add one with `satchel index add NAME URL`", while the daemon had no index set at
    all and `index add` refuses to touch a broken file. It now says what the other commands
    say: no index set is in use until config.toml is fixed, and there is no fall back."""
    assert laptop.resolved("internal-tool", env=laptop.shell()) == "1.0.0"
    laptop.stop()
    laptop.config.rename(laptop.config.with_name("config.toml~"))

    listing = laptop.ok("index", "list").stdout
    assert "is missing" in listing
    assert "no index set is in use until config.toml is fixed" in listing
    assert "does not fall back" in listing
    assert "last good configuration" not in listing
    assert "add one with" not in listing


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_the_local_index_says_no_index_set_is_in_use(laptop: Laptop) -> None:
    """QA 2026-12-05, pip after `eval "$(satchel env)"` while the daemon has no index set
    (config.toml missing at its start): the local index answered the stored project's page
    with 404 "not on the configured indexes" and its stored file with 403 "came from index
    'internal' (not configured) ... accept it with `satchel origins trust`", advice that
    rewrites a binding for a file nothing is wrong with. Both are now 503 with the config
    error, as every command says it."""
    laptop.ok("prefetch", "internal-tool", env=laptop.shell())
    laptop.stop()
    laptop.config.rename(laptop.config.with_name("config.toml~"))

    laptop.wait_status("serving http")  # the local index starts beside the daemon's services
    status = json.loads(laptop.ok("status", "--json").stdout)
    base = status["local_index"].removeprefix("serving ").removesuffix("/simple/")
    wheel = laptop.private_wheel
    for path in ("/simple/internal-tool/", f"/files/{file_sha256(wheel)}/{wheel.name}"):
        code, body = _get(base + path)
        assert code == 503, (path, code, body)
        assert "is missing" in body and "no index set is in use" in body, body
        assert "origins trust" not in body


def test_a_daemon_started_with_another_config_home_names_the_config_in_use(
    laptop: Laptop,
) -> None:
    """QA 2026-12-05, restart from another environment: the user's shell sets
    ``XDG_CONFIG_HOME`` (dotfiles), so config.toml lives there; a daemon started without it (a
    service, cron, an IDE) looks in the default place, finds nothing, and refuses (no fall back:
    good), but its advice, "restore the file, or run `satchel index adopt`", would write a
    second, different index set there. It now names the config.toml in use before and the
    variable that differs."""
    dotfiles = laptop.root / "dotfiles"
    shell = {**laptop.shell(), "XDG_CONFIG_HOME": str(dotfiles)}
    assert laptop.resolved("internal-tool", env=shell) == "1.0.0"
    in_use = dotfiles / "satchel" / "config.toml"
    assert in_use.is_file()
    laptop.stop()

    result = laptop.satchel("resolve", "internal-tool")  # XDG_CONFIG_HOME as the service has it
    assert result.returncode != 0
    assert str(in_use) in result.stderr, result.stderr
    assert f"set-environment XDG_CONFIG_HOME={dotfiles}`" in result.stderr, result.stderr
    assert not laptop.config.exists()
