"""Simple-API documents for the local index: PEP 503 HTML and PEP 691 JSON, and choosing one.

Pure functions over small view structs, so the HTTP layer stays about HTTP and every byte a client
parses is decided here, in one place:

* PEP 691 content negotiation from ``Accept`` (q-values, wildcards), with the ``?format=`` query
  override; `negotiate` returns None when nothing acceptable exists (the caller answers 406).
* PEP 629 ``api-version`` 1.1 in the JSON ``meta`` and as the HTML ``pypi:repository-version``
  meta tag; PEP 700 ``versions``, ``size`` and ``upload-time`` (JSON only, as the PEP says);
  PEP 592 ``yanked``; ``requires-python``; PEP 658/714 core metadata, advertised exactly when the
  view says the metadata can be served.
* Every file link carries its sha256 (JSON ``hashes``, HTML ``#sha256=`` fragment).

Why versions 1.1 and not 1.0: uv and pip use ``size`` for progress and PEP 700 ``versions`` to
know a project exists even when none of its files is listed (offline, only cached files are).
When a file's size is unknown the page is downgraded to 1.0, where ``size`` is optional, rather
than inventing one.
"""

from __future__ import annotations

import functools
import html
from urllib.parse import quote

import msgspec

__all__ = [
    "HTML_V1",
    "JSON_V1",
    "TEXT_HTML",
    "FileLink",
    "ProjectView",
    "content_type",
    "file_path",
    "negotiate",
    "render_project",
    "render_root",
]

JSON_V1 = "application/vnd.pypi.simple.v1+json"
HTML_V1 = "application/vnd.pypi.simple.v1+html"
TEXT_HTML = "text/html"
API_VERSION = "1.1"
#: Versions of the simple API whose required fields this module fills (PEP 700 needs ``size``).
_LEGACY_API_VERSION = "1.0"

#: ``?format=`` values: the media types of PEP 691, the ``latest`` aliases, and short names.
_FORMAT_ALIASES = {
    JSON_V1: JSON_V1,
    HTML_V1: HTML_V1,
    TEXT_HTML: TEXT_HTML,
    "application/vnd.pypi.simple.latest+json": JSON_V1,
    "application/vnd.pypi.simple.latest+html": HTML_V1,
    "json": JSON_V1,
    "html": TEXT_HTML,
}
#: Exact media types accepted in ``Accept`` (the ``latest`` aliases map onto v1).
_EXACT = {
    JSON_V1: JSON_V1,
    HTML_V1: HTML_V1,
    TEXT_HTML: TEXT_HTML,
    "application/vnd.pypi.simple.latest+json": JSON_V1,
    "application/vnd.pypi.simple.latest+html": HTML_V1,
}
#: Preference among equally acceptable types. Named explicitly, JSON wins (it is what modern
#: installers parse fastest); reached only through a wildcard (browsers, curl), plain HTML wins.
_PREFER_EXACT = {JSON_V1: 3, HTML_V1: 2, TEXT_HTML: 1}
_PREFER_WILDCARD = {TEXT_HTML: 3, HTML_V1: 2, JSON_V1: 1}
#: ``Accept`` headers are short in practice; a huge one is parsed only this far.
_MAX_ACCEPT_RANGES = 64


class FileLink(msgspec.Struct, frozen=True, kw_only=True):
    """One file as the local index lists it (URLs are local paths, never upstream URLs)."""

    filename: str
    sha256: str
    requires_python: str | None = None
    yanked: bool = False
    yanked_reason: str | None = None
    size: int | None = None
    upload_time: str | None = None
    #: sha256 of the core metadata the local index serves for this file; None = not offered.
    metadata_sha256: str | None = None


class ProjectView(msgspec.Struct, frozen=True, kw_only=True):
    project: str
    files: tuple[FileLink, ...] = ()
    versions: tuple[str, ...] = ()


def file_path(sha256: str, filename: str) -> str:
    """The local URL path of a file: content-addressed, so it can be cached forever."""
    return f"/files/{sha256}/{quote(filename, safe='')}"


def _parse_accept(accept: str) -> list[tuple[str, float]]:
    ranges: list[tuple[str, float]] = []
    for part in accept.split(",")[:_MAX_ACCEPT_RANGES]:
        media, *params = part.split(";")
        media = media.strip().lower()
        if not media:
            continue
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value.strip())
                except ValueError:
                    q = 0.0
                if not 0.0 <= q <= 1.0:
                    q = 0.0
        ranges.append((media, q))
    return ranges


#: Distinct (``Accept``, ``?format=``) pairs whose answer is remembered: an installer sends the
#: same header on every request, and parsing it was a tenth of a kept page's time in the
#: daemon; a few hundred cover every tool in use, and a peer sending endless variants only
#: evicts its own. Only headers up to `_NEGOTIATED_LENGTH` characters (installers send ~100)
#: are remembered, so the memo stays under ~130 KiB whatever is sent.
_NEGOTIATED = 256
_NEGOTIATED_LENGTH = 512


def negotiate(accept: str | None, format_override: str | None = None) -> str | None:
    """The media type to answer with, or None when the client accepts none of ours (406).

    *format_override* is the ``?format=`` query value (PEP 691 allows it as an alternative to
    ``Accept``); an unknown value is not acceptable. No ``Accept`` header means HTML, which every
    installer understands.
    """
    if len(accept or "") + len(format_override or "") > _NEGOTIATED_LENGTH:
        return _negotiate(accept, format_override)
    return _negotiated(accept, format_override)


@functools.lru_cache(maxsize=_NEGOTIATED)
def _negotiated(accept: str | None, format_override: str | None) -> str | None:
    return _negotiate(accept, format_override)


def _negotiate(accept: str | None, format_override: str | None) -> str | None:
    if format_override is not None:
        return _FORMAT_ALIASES.get(format_override.strip().lower())
    if accept is None or not accept.strip():
        return TEXT_HTML
    best: tuple[float, int, int, str] | None = None
    ranges = _parse_accept(accept)
    for ours in (JSON_V1, HTML_V1, TEXT_HTML):
        # The most specific matching range decides the q of a type (RFC 9110, 12.5.1).
        q: float | None = None
        specificity = -1
        for media, weight in ranges:
            if _EXACT.get(media) == ours:
                level = 2
            elif media == "*/*" or media == ours.split("/")[0] + "/*":
                level = 0 if media == "*/*" else 1
            else:
                continue
            if level > specificity:
                specificity, q = level, weight
        if q is None or q <= 0.0:
            continue
        prefer = _PREFER_EXACT[ours] if specificity == 2 else _PREFER_WILDCARD[ours]
        key = (q, specificity, prefer, ours)
        if best is None or key[:3] > best[:3]:
            best = key
    return None if best is None else best[3]


def content_type(media_type: str) -> str:
    """The ``Content-Type`` header for *media_type* (HTML is always UTF-8 here)."""
    return media_type if media_type == JSON_V1 else f"{media_type}; charset=utf-8"


def _api_version(view: ProjectView) -> str:
    if all(file.size is not None for file in view.files):
        return API_VERSION
    return _LEGACY_API_VERSION


def _json_file(file: FileLink) -> dict[str, object]:
    entry: dict[str, object] = {
        "filename": file.filename,
        "url": file_path(file.sha256, file.filename),
        "hashes": {"sha256": file.sha256},
    }
    if file.requires_python is not None:
        entry["requires-python"] = file.requires_python
    if file.yanked:
        entry["yanked"] = file.yanked_reason or True
    if file.size is not None:
        entry["size"] = file.size
    if file.upload_time is not None:
        entry["upload-time"] = file.upload_time
    if file.metadata_sha256 is not None:
        offered = {"sha256": file.metadata_sha256}
        # PEP 714 renamed the key; older pip reads only the PEP 658 one, so send both.
        entry["core-metadata"] = offered
        entry["dist-info-metadata"] = offered
    return entry


def _html_link(file: FileLink) -> str:
    href = f"{file_path(file.sha256, file.filename)}#sha256={file.sha256}"
    attrs = [f'href="{html.escape(href)}"']
    if file.requires_python is not None:
        attrs.append(f'data-requires-python="{html.escape(file.requires_python)}"')
    if file.yanked:
        attrs.append(f'data-yanked="{html.escape(file.yanked_reason or "")}"')
    if file.metadata_sha256 is not None:
        value = f"sha256={file.metadata_sha256}"
        attrs.append(f'data-core-metadata="{value}"')
        attrs.append(f'data-dist-info-metadata="{value}"')
    return f"    <a {' '.join(attrs)}>{html.escape(file.filename)}</a><br />\n"


def _html_document(title: str, body: str, api_version: str) -> bytes:
    return (
        "<!DOCTYPE html>\n<html>\n  <head>\n"
        f'    <meta name="pypi:repository-version" content="{api_version}">\n'
        f"    <title>{html.escape(title)}</title>\n  </head>\n  <body>\n"
        f"{body}  </body>\n</html>\n"
    ).encode()


def render_project(view: ProjectView, media_type: str) -> bytes:
    """A project page in *media_type* (one of `JSON_V1`, `HTML_V1`, `TEXT_HTML`)."""
    version = _api_version(view)
    if media_type == JSON_V1:
        document: dict[str, object] = {
            "meta": {"api-version": version},
            "name": view.project,
            "files": [_json_file(file) for file in view.files],
        }
        if version == API_VERSION:
            document["versions"] = list(view.versions)
        return msgspec.json.encode(document)
    title = f"Links for {view.project}"
    body = f"    <h1>{html.escape(title)}</h1>\n" + "".join(_html_link(f) for f in view.files)
    return _html_document(title, body, version)


def render_root(projects: list[str], media_type: str) -> bytes:
    """The root listing of *projects* (normalised names) in *media_type*."""
    if media_type == JSON_V1:
        return msgspec.json.encode(
            {"meta": {"api-version": API_VERSION}, "projects": [{"name": p} for p in projects]}
        )
    body = "".join(
        f'    <a href="/simple/{quote(p, safe="")}/">{html.escape(p)}</a><br />\n' for p in projects
    )
    return _html_document("Simple index", body, API_VERSION)
