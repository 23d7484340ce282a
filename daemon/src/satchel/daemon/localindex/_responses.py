"""The local index's small answers and the checks on what a request path names.

Plain-text responses (errors say what is wrong, never what the cache holds), ETag matching, the
time format of PEP 700, and the shapes a project or file name in a path may take before any
lookup is made.
"""

from __future__ import annotations

import datetime

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    parse_sdist_filename,
    parse_wheel_filename,
)

from satchel.daemon.localindex._messages import Response
from satchel.daemon.upstream.simple import file_project

__all__ = [
    "OCTET_STREAM",
    "etag_matches",
    "rfc3339",
    "text",
    "valid_filename",
    "valid_project_name",
    "version_of",
]

OCTET_STREAM = "application/octet-stream"
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
_MAX_NAME = 200


def text(status: int, message: str, headers: list[tuple[str, str]] | None = None) -> Response:
    return Response(
        status,
        [("Content-Type", "text/plain; charset=utf-8"), *(headers or [])],
        (message.rstrip("\n") + "\n").encode(),
    )


def rfc3339(timestamp: float) -> str:
    moment = datetime.datetime.fromtimestamp(timestamp, tz=datetime.UTC)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def etag_matches(header: str | None, etag: str) -> bool:
    """``If-None-Match`` uses weak comparison (RFC 9110 13.1.2): ``W/`` prefixes are ignored."""
    if header is None:
        return False
    if header.strip() == "*":
        return True
    bare = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == bare for tag in header.split(","))


#: What a file name may not hold: path separators, NUL and the other control characters. Checked
#: as one set operation (in C): a loop over the characters was 7% of the daemon's work serving
#: an install.
_NOT_IN_FILENAMES = frozenset(["/", "\\", *map(chr, range(32)), chr(127)])


def valid_project_name(name: str) -> bool:
    return (
        0 < len(name) <= _MAX_NAME
        and _NAME_CHARS.issuperset(name)
        and name[0].isalnum()
        and name[-1].isalnum()
    )


def valid_filename(name: str) -> bool:
    if not name or len(name) > 255 or name.startswith("."):
        return False
    if not _NOT_IN_FILENAMES.isdisjoint(name) or ".." in name:
        return False
    return file_project(name) is not None


def version_of(filename: str) -> str | None:
    try:
        if filename.endswith(".whl"):
            return str(parse_wheel_filename(filename)[1])
        return str(parse_sdist_filename(filename)[1])
    except (InvalidWheelFilename, InvalidSdistFilename):
        return None
