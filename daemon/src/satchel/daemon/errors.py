"""Every error the daemon reports to a client, in one place.

The hierarchy (each class carries the wire error code from `satchel.protocol.errors` that the
client turns into a message and an exit status)::

    SatchelError            internal               base; anything unexpected is wrapped as this
    ├── ConfigError         config-error           config.toml unreadable/invalid (file, line)
    ├── NotFound            not-found              a named index, project, tool or path is absent
    ├── UpstreamError       index-error            an index answered, but not usably
    │   ├── HostileInput    index-error            traversal, scheme switch, oversize page or file
    │   ├── NotAPage        index-error            not a project page at all (a portal's answer)
    │   └── IndexUnreachable index-unreachable     no answer (DNS, refused, timeout, circuit open)
    ├── HashMismatch        hash-mismatch          bytes differ from what the index promised
    ├── MetadataMismatch    metadata-mismatch      METADATA disagrees with the PEP 658 file
    ├── NotCached           not-cached             offline and missing (what, and when last seen)
    ├── ResolutionImpossible resolution-impossible conflict, explained (who wants what)
    ├── InvalidWheel        invalid-wheel          failed validation before anything was written
    ├── InstallError        install-failed         environment unchanged (staged, not committed)
    ├── BuildError          build-failed           a PEP 517 build of an sdist failed
    ├── BuildForbidden      build-forbidden        a build is needed, the user forbade it
    ├── InvalidParams       invalid-params         a parameter no request can use (--python)
    ├── DiskFull            disk-full              ENOSPC/EDQUOT; the store stays consistent
    ├── DatabaseDamaged     database-damaged       the metadata database is corrupt (restart)
    ├── Busy                busy                   a resource is held by another request
    ├── OriginChanged       origin-changed         a bound project would come from another index
    └── CredentialWithheld  credential-withheld    a name-given credential's index moved host

Why one flat module: handlers in every area raise these, the request dispatcher maps them to a
protocol `Error(code, message, details)` in one place, and a reader can see every failure a user
can meet without opening twenty files. Messages must already be redacted (no credentials) and must
name the cause: which index, project, file, path.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "BuildError",
    "BuildForbidden",
    "Busy",
    "ConfigError",
    "CredentialWithheld",
    "DatabaseDamaged",
    "DiskFull",
    "HashMismatch",
    "HostileInput",
    "IndexUnreachable",
    "InstallError",
    "InvalidParams",
    "InvalidWheel",
    "MetadataMismatch",
    "NotAPage",
    "NotCached",
    "NotFound",
    "OriginChanged",
    "ResolutionImpossible",
    "SatchelError",
    "UpstreamError",
]


class SatchelError(Exception):
    """Base of every error a client may see; `code` is the wire error code."""

    code: ClassVar[str] = "internal"

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = dict(details or {})

    def __str__(self) -> str:
        return self.message


class ConfigError(SatchelError):
    code = "config-error"


class NotFound(SatchelError):
    code = "not-found"


class UpstreamError(SatchelError):
    code = "index-error"


class HostileInput(UpstreamError):
    code = "index-error"


class NotAPage(UpstreamError):
    """The answer is no project page at all: another content type, or JSON that is not the
    simple API. More likely a captive portal or a misrouted proxy than the index, so a stored
    page of that index is used instead (`satchel.daemon.indexes.catalog`)."""

    code = "index-error"


class IndexUnreachable(UpstreamError):
    code = "index-unreachable"


class HashMismatch(SatchelError):
    code = "hash-mismatch"


class MetadataMismatch(SatchelError):
    code = "metadata-mismatch"


class NotCached(SatchelError):
    code = "not-cached"


class ResolutionImpossible(SatchelError):
    code = "resolution-impossible"


class InvalidWheel(SatchelError):
    code = "invalid-wheel"


class InstallError(SatchelError):
    code = "install-failed"


class BuildError(SatchelError):
    code = "build-failed"


class BuildForbidden(SatchelError):
    """Only an sdist fits and building it is forbidden (names project, sdist, flag/setting)."""

    code = "build-forbidden"


class InvalidParams(SatchelError):
    """A parameter no request could use: an interpreter that is none, a Python version that
    does not exist (the message names the parameter and why)."""

    code = "invalid-params"


class DiskFull(SatchelError):
    code = "disk-full"


class DatabaseDamaged(SatchelError):
    code = "database-damaged"


class Busy(SatchelError):
    code = "busy"


class OriginChanged(SatchelError):
    code = "origin-changed"


class CredentialWithheld(SatchelError):
    code = "credential-withheld"
