"""The local index token: created private and atomically, replaced if exposed, checked strictly."""

from __future__ import annotations

import base64
import stat
from pathlib import Path

import pytest

from satchel.daemon.localindex._auth import check_basic_auth
from satchel.daemon.settings.credentials import redact
from satchel.daemon.settings.ownindex import TOKEN_FILE, load_or_create_token


def basic(user: str, password: str) -> bytes:
    return b"Basic " + base64.b64encode(f"{user}:{password}".encode())


def test_token_is_created_0600_and_reused(tmp_path: Path) -> None:
    token = load_or_create_token(tmp_path)
    path = tmp_path / TOKEN_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_token(tmp_path) == token
    assert len(token) >= 32


def test_token_readable_by_others_is_replaced(tmp_path: Path) -> None:
    leaked = load_or_create_token(tmp_path)
    path = tmp_path / TOKEN_FILE
    path.chmod(0o644)
    fresh = load_or_create_token(tmp_path)
    assert fresh != leaked
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_malformed_token_file_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / TOKEN_FILE
    path.write_text("short\n")
    path.chmod(0o600)
    assert load_or_create_token(tmp_path) != "short"


def test_token_never_appears_in_logs(tmp_path: Path) -> None:
    token = load_or_create_token(tmp_path)
    assert token not in redact(f"GET http://x:{token}@127.0.0.1/ with {token}")


@pytest.mark.parametrize(
    "header",
    [
        None,
        b"",
        b"Bearer sometoken",
        b"Basic !!!not-base64!!!",
        base64.b64encode(b"user-without-colon"),
        b"Basic " + base64.b64encode(b"no-colon-here"),
    ],
)
def test_malformed_authorization_is_refused(header: bytes | None) -> None:
    assert not check_basic_auth(header, "t" * 43)


def test_any_user_with_the_right_password_passes() -> None:
    token = "t" * 43
    assert check_basic_auth(basic("satchel", token), token)
    assert check_basic_auth(basic("", token), token)
    assert check_basic_auth(b"basic " + basic("x", token)[6:], token)
    assert not check_basic_auth(basic("satchel", token[:-1]), token)
    assert not check_basic_auth(basic("satchel", token + "x"), token)
