"""A credential given by index name stays with the origin it was first used for.

``SATCHEL_INDEX_<NAME>_PASSWORD`` names an index, and config.toml says where that index is. If
the URL of ``internal`` were edited to another host (by hand, by a pasted snippet, by a merge of
dotfiles), a lookup by name alone would send the private password there. So the first time a
name-given credential is used, the origin (scheme, host, port) of its index is recorded, in the
daemon's state directory (``credential-origins.json``, 0600: it holds host names, never a
secret); afterwards the credential is sent to that origin only. When the index's URL has moved
to another origin, the credential is withheld and every request to the index fails with
`CredentialWithheld`, saying both origins and how to confirm the move: re-add the index
(``satchel index remove NAME`` then ``satchel index add NAME URL``), the user's word for the new
URL, which forgets the record (the next use records the new origin).

Credentials in a URL, adopted from pip/uv URLs and from netrc are bound by origin already (see
`satchel.daemon.settings.credentials`): only the name-given ones need this.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import msgspec

from satchel.daemon.errors import CredentialWithheld
from satchel.daemon.settings.credentials import Credentials, Origin, env_prefix
from satchel.daemon.storage.fsutil import atomic_write

__all__ = ["FILENAME", "CredentialBindings", "origin_text"]

log = logging.getLogger(__name__)

FILENAME = "credential-origins.json"
#: A file of a few index names; anything larger was not written by Satchel and is not read.
_MAX_BYTES = 1 << 20

_decoder = msgspec.json.Decoder(dict[str, str])


def origin_text(origin: Origin) -> str:
    scheme, host, port = origin
    host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{host}" + (f":{port}" if port is not None else "")


class CredentialBindings:
    """Index name -> the origin its name-given credential was first used for (a state file)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._known: dict[str, str] | None = None

    def _load(self) -> dict[str, str]:
        if self._known is None:
            try:
                with self.path.open("rb") as handle:
                    data = handle.read(_MAX_BYTES + 1)
                self._known = dict(_decoder.decode(data)) if len(data) <= _MAX_BYTES else {}
            except FileNotFoundError:
                self._known = {}
            except (OSError, msgspec.DecodeError) as exc:
                # Unreadable: start again (first use records anew), and say so.
                log.warning("ignoring the unreadable %s: %s", self.path, exc)
                self._known = {}
        return self._known

    def _save(self, known: dict[str, str]) -> None:
        atomic_write(self.path, msgspec.json.encode(dict(sorted(known.items()))))

    def check(self, index_name: str, creds: Credentials) -> None:
        """Record *creds*' origin on first use; raise `CredentialWithheld` when the index now
        points at another origin than the one its name-given credential was first used for."""
        if creds.source != "environment" or creds.origin is None:
            return
        current = origin_text(creds.origin)
        variable = env_prefix(index_name)
        with self._lock:
            known = self._load()
            # One variable, one origin: names that spell the same variable (``internal``,
            # ``Internal``, ``internal.``) share the record, else a new name recorded an origin
            # of its own at its first use and took the password there.
            holder = index_name if index_name in known else None
            if holder is None:
                holder = next((n for n in known if env_prefix(n) == variable), None)
            if holder is None:
                known[index_name] = current
                self._save(known)
                return
            first = known[holder]
        if first == current:
            return
        if holder != index_name:
            raise CredentialWithheld(
                f"index {index_name}: its credential variables ({variable}PASSWORD) are those "
                f"of index {holder} (names compare by the variable they spell), whose "
                f"credential was first used for {first}; index {index_name} is on {current}: "
                "it is not sent there. Give the index a name of its own (another variable)",
                details={"index": index_name, "first_used_for": first, "configured": current},
            )
        raise CredentialWithheld(
            f"index {index_name}: the credential given by name ({env_prefix(index_name)}"
            f"PASSWORD) was first used for {first}, and config.toml now gives index "
            f"{index_name} the URL of {current}: it is not sent there (a changed URL must "
            f"not take your password to another host). If {current} is right, confirm it by "
            f"re-adding the index: `satchel index remove {index_name}` then "
            f"`satchel index add {index_name} URL`",
            details={"index": index_name, "first_used_for": first, "configured": current},
        )

    def forget(self, index_name: str) -> None:
        """The user re-added (or removed) the index: its next use records its origin anew."""
        with self._lock:
            known = self._load()
            if known.pop(index_name, None) is not None:
                self._save(known)
