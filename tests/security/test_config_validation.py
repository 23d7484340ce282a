"""Issue 11.10 (config part): config.toml is validated at load, with the key and the cause.

`url = "http://[::1/simple/"` used to be accepted, after which `status`, `index list` and
`resolve` all failed with "internal error" until the file was fixed; ports above 65535 and URLs
with spaces were accepted too. Each is now refused when the file is read, with an error naming
the file, the line, the key and the cause, and a daemon started on such a file still answers
`status` and `index list` (showing the error) while refusing work that needs an index.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from satchel.daemon.errors import ConfigError
from satchel.daemon.settings.config import parse_config
from tests.client.clientenv import ClientEnv

#: (what is wrong, the URL, what the error must say)
BAD_URLS = [
    ("unbalanced IPv6 bracket", "http://[::1/simple/", "Invalid IPv6 URL"),
    ("port above 65535", "http://127.0.0.1:70000/simple/", "Port out of range"),
    ("port not a number", "http://127.0.0.1:80a/simple/", "not a valid URL"),
    ("space in the path", "http://127.0.0.1:8080/my index/", "spaces"),
    ("space in the host", "http://127.0.0. 1/simple/", "spaces"),
    ("tab", "http://127.0.0.1/\tsimple/", "spaces or control characters"),
    ("no host", "http:///simple/", "needs a host name"),
    ("port 0", "http://127.0.0.1:0/simple/", "port 0"),
    ("other scheme", "ftp://127.0.0.1/simple/", "http://, https:// or file://"),
]


def _config(url: str) -> str:
    escaped = url.replace("\t", "\\t")
    return f'[[index]]\nname = "one"\n\nurl = "{escaped}"\n'


@pytest.mark.parametrize(("what", "url", "cause"), BAD_URLS, ids=[b[0] for b in BAD_URLS])
def test_bad_index_urls_are_refused_at_load_naming_key_line_and_cause(
    what: str, url: str, cause: str
) -> None:
    """Issue 11.10: every malformed index URL is a ConfigError at load, never later."""
    with pytest.raises(ConfigError) as raised:
        parse_config(_config(url), "/home/u/.config/satchel/config.toml")
    message = raised.value.message
    assert message.startswith("/home/u/.config/satchel/config.toml:4: index 'url':"), message
    assert cause in message, message
    assert raised.value.details == {"path": "/home/u/.config/satchel/config.toml", "line": 4}


def test_good_urls_still_load() -> None:
    for url in (
        "http://[::1]:8080/simple/",
        "https://packages.example.com/simple/",
        "http://127.0.0.1:65535/simple/",
        "file:///srv/simple/",
    ):
        assert parse_config(_config(url)).indexes[0].url == url


@pytest.fixture
def client(tmp_path: Path) -> Iterator[ClientEnv]:
    env = ClientEnv(tmp_path)
    try:
        yield env
    finally:
        env.cleanup()


def test_a_daemon_started_on_a_bad_url_explains_it_on_every_command(client: ClientEnv) -> None:
    """Issue 11.10: `status` and `index list` answer (showing the error); `resolve` fails with
    the file, line, key and cause instead of "internal error"."""
    config = Path(client.env["XDG_CONFIG_HOME"]) / "satchel" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text(_config("http://[::1/simple/"))
    resolve = client.satchel("resolve", "anything")
    assert resolve.returncode != 0
    assert f"{config}:4: index 'url': not a valid URL (Invalid IPv6 URL)" in resolve.stderr
    assert "internal error" not in resolve.stderr
    status = client.satchel("status")
    assert status.returncode == 0 and "Invalid IPv6 URL" in status.stdout
    listing = client.satchel("index", "list", "--json")
    assert listing.returncode == 0, listing.stderr
    assert "Invalid IPv6 URL" in json.loads(listing.stdout)["config_error"]
    added = client.satchel("index", "add", "two", "http://127.0.0.1:9/simple/")
    assert added.returncode != 0 and "fix config.toml first" in added.stderr
    assert config.read_text() == _config("http://[::1/simple/")  # never rewritten


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:70000/simple/", "http://127.0.0.1:9/a b/", "http://[::1/simple/"]
)
def test_index_add_refuses_the_same_urls(client: ClientEnv, url: str) -> None:
    """Issue 11.10: `satchel index add` applies the same validation before writing."""
    config = Path(client.env["XDG_CONFIG_HOME"]) / "satchel" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text('[[index]]\nname = "one"\nurl = "http://127.0.0.1:9/simple/"\n')
    result = client.satchel("index", "add", "bad", url)
    assert result.returncode != 0
    assert "index url" in result.stderr
    assert "bad" not in config.read_text()


@pytest.mark.parametrize("kind", ["fifo", "/dev/zero"])
def test_a_config_that_is_no_regular_file_is_refused_without_blocking(
    client: ClientEnv, kind: str
) -> None:
    """QA 2026-12-05 (config edits, 11.13's bound applied to config.toml): config.toml replaced
    by a FIFO (or linked to ``/dev/zero``) while the daemon runs. The live reload read it on
    the event loop: the FIFO blocked the whole daemon (``satchel ping`` got no answer), and
    ``/dev/zero`` would have grown it without bound. It is now refused as not a regular file,
    the last good configuration kept, and every command still answers."""
    config = Path(client.env["XDG_CONFIG_HOME"]) / "satchel" / "config.toml"
    config.parent.mkdir(parents=True)
    good = '[[index]]\nname = "one"\nurl = "http://127.0.0.1:9/simple/"\n'
    config.write_text(good)
    first = json.loads(client.satchel("index", "list", "--json").stdout)
    assert [index["name"] for index in first["indexes"]] == ["one"]
    config.unlink()
    if kind == "fifo":
        os.mkfifo(config)
    else:
        config.symlink_to(kind)

    deadline = time.monotonic() + 60  # a hang guard: the reload is asynchronous
    while True:
        listing = client.satchel("index", "list", "--json", timeout=60)
        assert listing.returncode == 0, listing.stderr
        value = json.loads(listing.stdout)
        if value["config_error"] or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert "not a regular file" in value["config_error"], value
    assert [index["name"] for index in value["indexes"]] == ["one"]  # the last good one
    assert client.satchel("ping", timeout=60).returncode == 0
