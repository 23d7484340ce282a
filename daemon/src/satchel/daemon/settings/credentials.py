"""Index credentials: where they come from, and how they stay out of every log, file and message.

Sources, first match wins (the same order uv uses, so a user's existing set-up keeps working):

1. userinfo in the index URL (``https://user:token@host/simple/``);
2. the environment: ``SATCHEL_INDEX_<NAME>_USERNAME`` and ``SATCHEL_INDEX_<NAME>_PASSWORD``, where
   ``<NAME>`` is the index name upper-cased with every non-alphanumeric character replaced by ``_``
   (index ``corp-internal`` -> ``SATCHEL_INDEX_CORP_INTERNAL_PASSWORD``); a password alone is sent
   with an empty user name (no ``__token__`` convention is assumed);
3. userinfo in the URL pip or uv was configured with when the index was adopted
   (``PIP_EXTRA_INDEX_URL=https://user:token@host/simple/``): config.toml never holds it, so the
   daemon keeps it in memory bound to that URL's origin (`bind_origin`), for the index whose URL
   has the same origin;
4. netrc: the file named by ``NETRC``, else ``~/.netrc``, matched by host.

**A credential is bound to an origin** (scheme, host, port): the one of the index URL it was
found for. `Credentials.origin` records it, and the upstream client attaches a credential only to
a request for that very origin: a redirect to another host, scheme or port goes without it (the
client follows redirects itself, with no ``Authorization`` carried over). Index names adopted
from pip and uv are derived from the host (`satchel.daemon.settings.toolsettings.index_name_for`),
so
``SATCHEL_INDEX_<NAME>_PASSWORD`` names the host it is meant for, whatever the order of the
indexes in the environment.

Why redaction is central rather than left to each log call: a URL with userinfo reaches error
messages through exceptions raised deep inside httpx, so every string that may leave the daemon
(log records, error messages, status output, files) goes through `redact`, which removes URL
userinfo *and* every secret value this process has loaded (so a password echoed by a server or
embedded in some other text is still hidden). `RedactingFilter` applies it to log records.
"""

from __future__ import annotations

import logging
import netrc
import os
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

__all__ = [
    "Credentials",
    "Origin",
    "RedactingFilter",
    "bind_origin",
    "env_prefix",
    "find_credentials",
    "origin_of",
    "redact",
    "register_secret",
    "split_userinfo",
    "strip_userinfo",
]

_log = logging.getLogger(__name__)

#: Shown instead of a secret.
MASK = "***"

# scheme://userinfo@ : userinfo is everything up to the last "@" before the host, with no "/",
# whitespace or quote in it.
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^/\s@\"'<>]+)@")

_secrets: set[str] = set()
_secrets_lock = threading.Lock()

#: Secrets shorter than this are not replaced in free text: masking every "a" in a log line would
#: destroy it, and a 1-3 character password is not a secret worth the damage.
_MIN_SECRET_LENGTH = 4


#: (scheme, host, port): what a credential is bound to. The port is the effective one (80/443
#: when the URL names none), so ``https://h/`` and ``https://h:443/`` are one origin.
Origin = tuple[str, str, int | None]

_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_of(url: str) -> Origin:
    """The origin of *url* (lower-cased scheme and host, effective port)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    return scheme, (parts.hostname or "").lower(), port or _DEFAULT_PORTS.get(scheme)


@dataclass(frozen=True)
class Credentials:
    """A user name and password for one index; `repr` never shows the password."""

    username: str
    password: str
    #: Where they came from ("url", "environment", "pip/uv configuration", "netrc").
    source: str
    #: The only origin they may be sent to (None until bound by `find_credentials`).
    origin: Origin | None = None

    def __repr__(self) -> str:
        return (
            f"Credentials(username={self.username!r}, password={MASK!r}, "
            f"source={self.source!r}, origin={self.origin!r})"
        )

    def allows(self, url: str) -> bool:
        """Whether these credentials may be sent with a request for *url*."""
        return self.origin is not None and origin_of(url) == self.origin


#: Credentials from the URLs pip and uv were configured with, by origin (see `bind_origin`).
_by_origin: dict[Origin, Credentials] = {}


def bind_origin(url_with_userinfo: str) -> None:
    """Remember the credentials in *url_with_userinfo* for its origin only (in memory)."""
    clean, creds = split_userinfo(url_with_userinfo)
    if creds is not None:
        origin = origin_of(clean)
        with _secrets_lock:
            _by_origin[origin] = Credentials(
                creds.username, creds.password, "pip/uv configuration", origin
            )


def register_secret(value: str) -> None:
    """Remember *value* so that `redact` hides it wherever it appears from now on."""
    if len(value) >= _MIN_SECRET_LENGTH:
        with _secrets_lock:
            _secrets.add(value)


def redact(text: object) -> str:
    """*text* with URL userinfo and every registered secret replaced by ``***``."""
    result = _USERINFO.sub(lambda m: f"{m.group('scheme')}{MASK}@", str(text))
    with _secrets_lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in result:
            result = result.replace(secret, MASK)
    return result


def split_userinfo(url: str) -> tuple[str, Credentials | None]:
    """Split *url* into its credential-free form and the credentials it carried (if any)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    clean = urlunsplit((parts.scheme, hostport, parts.path, parts.query, parts.fragment))
    creds = Credentials(unquote(user), unquote(password), "url")
    register_secret(creds.password)
    if not creds.password:
        register_secret(creds.username)  # a token passed as the user name
    return clean, creds


def strip_userinfo(url: str) -> str:
    """*url* without ``user:password@``."""
    return split_userinfo(url)[0]


def env_prefix(index_name: str) -> str:
    """``SATCHEL_INDEX_<NAME>_`` for *index_name* (see the module docstring)."""
    return "SATCHEL_INDEX_" + re.sub(r"[^A-Za-z0-9]", "_", index_name).upper() + "_"


def _from_environment(index_name: str, environ: Mapping[str, str]) -> Credentials | None:
    prefix = env_prefix(index_name)
    username = environ.get(prefix + "USERNAME")
    password = environ.get(prefix + "PASSWORD")
    if username is None and password is None:
        return None
    register_secret(password or "")
    return Credentials(username or "", password or "", "environment")


def _netrc_path(environ: Mapping[str, str]) -> Path | None:
    if environ.get("NETRC"):
        return Path(environ["NETRC"])
    home = environ.get("HOME")
    return Path(home) / ".netrc" if home else None


def _from_netrc(host: str, environ: Mapping[str, str]) -> Credentials | None:
    path = _netrc_path(environ)
    if path is None or not path.is_file():
        return None
    try:
        entry = netrc.netrc(os.fspath(path)).authenticators(host)
    except (netrc.NetrcParseError, OSError) as exc:
        # The parse error quotes the offending token, which may be a password: give the line only.
        line = getattr(exc, "lineno", None)
        _log.warning(
            "ignoring unreadable netrc file %s (%s at line %s)", path, type(exc).__name__, line
        )
        return None
    if entry is None:
        return None
    login, _account, password = entry
    register_secret(password or "")
    return Credentials(login or "", password or "", "netrc")


def find_credentials(
    index_name: str, url: str, *, environ: Mapping[str, str] | None = None
) -> Credentials | None:
    """The credentials for index *index_name* at *url*, bound to the origin of *url*: from the
    URL, the environment, the adopted pip/uv URL of that origin, or netrc (in that order)."""
    env = os.environ if environ is None else environ
    clean, found = split_userinfo(url)
    origin = origin_of(clean)
    if found is None:
        found = _from_environment(index_name, env)
    if found is None:
        with _secrets_lock:
            found = _by_origin.get(origin)
    if found is None:
        host = urlsplit(clean).hostname
        found = _from_netrc(host, env) if host else None
    if found is None:
        return None
    return Credentials(found.username, found.password, found.source, origin)


class RedactingFilter(logging.Filter):
    """A logging filter that passes every record through `redact` (install it on handlers)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            message = str(record.msg)
        record.msg = redact(message)
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            # Render the traceback now, redacted, so formatters never see the raw exception text.
            formatter = logging.Formatter()
            record.exc_text = redact(formatter.formatException(record.exc_info))
            record.exc_info = None
        return True
