"""Credentials: where they are found, and that they never survive into text a user may see."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from satchel.daemon.settings.credentials import (
    Credentials,
    RedactingFilter,
    bind_origin,
    env_prefix,
    find_credentials,
    origin_of,
    redact,
    register_secret,
    split_userinfo,
    strip_userinfo,
)

URL = "https://127.0.0.1:8443/simple/"
ORIGIN = ("https", "127.0.0.1", 8443)


def test_strip_userinfo_removes_user_and_password() -> None:
    assert strip_userinfo("https://bob:pa%40ss@127.0.0.1:8443/simple/?q=1") == (
        "https://127.0.0.1:8443/simple/?q=1"
    )
    assert strip_userinfo(URL) == URL


def test_split_userinfo_decodes_percent_escapes() -> None:
    clean, creds = split_userinfo("https://bob:pa%40ss-word@127.0.0.1/simple/")
    assert clean == "https://127.0.0.1/simple/"
    assert creds == Credentials("bob", "pa@ss-word", "url")


def test_redact_hides_userinfo_anywhere_in_text() -> None:
    text = "failed: GET https://bob:hunter2x@127.0.0.1/a and http://tok3n-only@127.0.0.1/b"
    assert redact(text) == "failed: GET https://***@127.0.0.1/a and http://***@127.0.0.1/b"


def test_redact_hides_registered_secrets_outside_urls() -> None:
    register_secret("Zq8-secret-value")
    assert redact("server said: bad token Zq8-secret-value!") == "server said: bad token ***!"


def test_repr_of_credentials_hides_the_password() -> None:
    assert "hunter2" not in repr(Credentials("bob", "hunter2", "netrc"))


def test_env_prefix_normalises_the_index_name() -> None:
    assert env_prefix("corp-internal.v2") == "SATCHEL_INDEX_CORP_INTERNAL_V2_"


def test_url_userinfo_wins_over_environment_and_netrc(tmp_path: Path) -> None:
    env = {"SATCHEL_INDEX_MAIN_USERNAME": "env-user", "SATCHEL_INDEX_MAIN_PASSWORD": "env-pw"}
    creds = find_credentials("main", "https://url-user:url-pw@127.0.0.1/simple/", environ=env)
    assert creds == Credentials("url-user", "url-pw", "url", ("https", "127.0.0.1", 443))


def test_environment_wins_over_netrc(tmp_path: Path) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login n-user password n-pass\n")
    netrc.chmod(0o600)
    env = {
        "NETRC": str(netrc),
        "SATCHEL_INDEX_MAIN_USERNAME": "env-user",
        "SATCHEL_INDEX_MAIN_PASSWORD": "env-pw",
    }
    assert find_credentials("main", URL, environ=env) == Credentials(
        "env-user", "env-pw", "environment", ORIGIN
    )


def test_netrc_from_the_netrc_variable_matches_by_host(tmp_path: Path) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login n-user password n-pass-123\n")
    netrc.chmod(0o600)
    env = {"NETRC": str(netrc)}
    assert find_credentials("main", URL, environ=env) == Credentials(
        "n-user", "n-pass-123", "netrc", ORIGIN
    )
    assert find_credentials("main", "https://127.0.0.2/simple/", environ=env) is None
    assert redact("echo n-pass-123") == "echo ***"


def test_default_netrc_is_in_home(tmp_path: Path) -> None:
    (tmp_path / ".netrc").write_text("default login anyone password any-pass-1\n")
    (tmp_path / ".netrc").chmod(0o600)
    creds = find_credentials("x", URL, environ={"HOME": str(tmp_path)})
    assert creds == Credentials("anyone", "any-pass-1", "netrc", ORIGIN)


def test_broken_netrc_is_ignored_without_echoing_its_content(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login u password p-1234\nfollower-s3cr3t\n")
    netrc.chmod(0o600)
    assert find_credentials("main", URL, environ={"NETRC": str(netrc)}) is None
    assert "ignoring unreadable netrc" in caplog.text
    assert "s3cr3t" not in caplog.text


def test_redacting_filter_cleans_messages_args_and_tracebacks(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logger = logging.getLogger("satchel.test.redaction")
    redactor = RedactingFilter()
    caplog.handler.addFilter(redactor)
    try:
        logger.warning("fetching %s", "https://bob:pw-in-arg-1@127.0.0.1/simple/")
        try:
            raise RuntimeError("boom at https://bob:pw-in-exc-2@127.0.0.1/x")
        except RuntimeError:
            logger.exception("failed")
    finally:
        caplog.handler.removeFilter(redactor)
    assert "pw-in-arg-1" not in caplog.text
    assert "pw-in-exc-2" not in caplog.text
    assert "https://***@127.0.0.1/simple/" in caplog.text


def test_every_credential_is_bound_to_the_origin_it_was_found_for() -> None:
    """Issue 12.9: a credential may be sent to its index's origin (scheme, host, port) only."""
    env = {"SATCHEL_INDEX_MAIN_PASSWORD": "bound-pw-1"}
    creds = find_credentials("main", URL, environ=env)
    assert creds is not None
    assert creds.origin == origin_of(URL) == ORIGIN
    assert creds.allows("https://127.0.0.1:8443/files/a.whl")
    for elsewhere in (
        "https://127.0.0.2:8443/simple/",  # another host
        "https://127.0.0.1:8444/simple/",  # another port
        "http://127.0.0.1:8443/simple/",  # another scheme
    ):
        assert not creds.allows(elsewhere), elsewhere
    assert origin_of("https://h.example/") == origin_of("https://H.example:443/x")


def test_adopted_url_credentials_serve_only_their_origin() -> None:
    """A token in PIP_EXTRA_INDEX_URL is kept in memory for that origin, never by name."""
    bind_origin("https://tok:adopted-pw-9@127.0.0.1:9443/private/simple/")
    found = find_credentials("127-0-0-1-9443", "https://127.0.0.1:9443/private/simple/")
    assert found is not None
    assert (found.password, found.origin) == ("adopted-pw-9", ("https", "127.0.0.1", 9443))
    assert find_credentials("127-0-0-1-9443", "https://127.0.0.1:9444/simple/") is None
