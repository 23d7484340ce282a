"""Parse simple-API project pages (PEP 691 JSON, PEP 503 HTML) into `ProjectPage`, distrusting them.

An index page is input from the network, so every entry is validated before it becomes a
`FileEntry` that the store may later write to disk under its file name:

* the file name must be a plain basename (no separator, no ``..``, no NUL or control character)
  that `packaging.utils` parses as a wheel or sdist of *this* project (normalised names);
* the file URL, resolved against the page (and ``<base href>``), may not switch scheme: an http(s)
  page cannot point at ``file://`` (or anything else), and https cannot downgrade to http;
* hashes must be hex of the right length for their algorithm;
* ``requires-python`` must parse as a specifier set.

A bad entry is skipped with a warning naming the index, project and reason (the rest of the page
is still usable, as pip does); a page that is not a simple-API page at all is an `UpstreamError`.

PEP 629: major version 1 is understood; a newer minor is logged once per index (new minors only
add fields); a major of 2 or more is refused, because its meaning is unknown by definition.

The HTML parser is incremental (`HTMLPageParser.feed` takes byte chunks as they arrive), so a
large legacy page is never held twice in memory and the size cap can be enforced while streaming.
"""

from __future__ import annotations

import codecs
import functools
import logging
import re
import sys
from collections.abc import Iterable, Mapping
from html.parser import HTMLParser
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

import msgspec
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)

from satchel.daemon.errors import NotAPage, UpstreamError
from satchel.daemon.settings.credentials import redact, strip_userinfo
from satchel.daemon.storage.model import FileEntry, ProjectPage

__all__ = [
    "SUPPORTED_API_VERSION",
    "HTMLPageParser",
    "check_api_version",
    "file_project",
    "parse_html_page",
    "parse_json_page",
    "resolve_file_url",
    "validate_filename",
]

_log = logging.getLogger(__name__)

#: The newest simple-API version whose fields we read (PEP 700 added size/upload-time/versions).
SUPPORTED_API_VERSION = (1, 1)

#: Hex digest lengths of the algorithms indexes use; other names must at least be hex.
_DIGEST_LENGTHS = {"md5": 32, "sha1": 40, "sha224": 56, "sha256": 64, "sha384": 96, "sha512": 128}
_HEX = re.compile(r"^[0-9a-fA-F]+$")
_HASH_NAME = re.compile(r"^[a-z0-9_]{2,20}$")

#: At most this many skipped entries are logged one by one per page; the rest are counted.
_MAX_WARNINGS_PER_PAGE = 10

_warned_versions: set[tuple[str, str]] = set()


class _Skip(Exception):
    """An entry is invalid; the message is the reason shown in the warning."""

    #: Not a sign of a broken or hostile index, just a file no installer uses today.
    quiet = False


class _Legacy(_Skip):
    """A distribution format from before wheels (``.exe``, ``.egg``, ``.msi``, ``.tar.bz2``...).

    Long-lived projects list hundreds of them on real indexes; they are skipped like any
    unusable entry, but logged at debug level, since warning about each would bury the
    warnings that matter (traversal, scheme switches, foreign projects).
    """

    quiet = True


#: Suffixes of pre-wheel distribution formats (bdist_wininst, eggs, OS packages, old sdists).
_LEGACY_SUFFIXES = (
    ".exe", ".egg", ".msi", ".rpm", ".dmg", ".deb", ".tar.bz2", ".tbz", ".tar.xz", ".tgz",
    ".tar", ".tar.Z", ".zip",
)  # fmt: skip


def check_api_version(version: Any, *, index: str, project: str) -> str:
    """Validate a PEP 629 ``api-version``; returns it ("1.0" when absent)."""
    if version is None:
        return "1.0"
    match = re.fullmatch(r"(\d+)\.(\d+)", str(version).strip())
    if not match:
        raise UpstreamError(
            f"index {index}: project {project}: malformed api-version {str(version)[:40]!r}"
        )
    major, minor = int(match.group(1)), int(match.group(2))
    if major != SUPPORTED_API_VERSION[0]:
        raise UpstreamError(
            f"index {index}: project {project}: simple API version {major}.{minor} is not "
            f"supported (this Satchel understands {SUPPORTED_API_VERSION[0]}.x)",
            details={"index": index, "project": project, "api_version": f"{major}.{minor}"},
        )
    if minor > SUPPORTED_API_VERSION[1] and (index, f"{major}.{minor}") not in _warned_versions:
        _warned_versions.add((index, f"{major}.{minor}"))
        _log.info(
            "index %s serves simple API %d.%d (newer than %d.%d): fields added since are ignored",
            index,
            major,
            minor,
            *SUPPORTED_API_VERSION,
        )
    return f"{major}.{minor}"


def file_project(filename: str) -> str | None:
    """The normalised project of a wheel or sdist *filename*, or None if it is neither."""
    try:
        if filename.endswith(".whl"):
            return canonicalize_name(parse_wheel_filename(filename)[0])
        return canonicalize_name(parse_sdist_filename(filename)[0])
    except (InvalidWheelFilename, InvalidSdistFilename):
        return None


def validate_filename(filename: str, project: str | None) -> str:
    """Check that *filename* is a safe basename of a distribution of *project* (None: any)."""
    if not filename or filename in (".", ".."):
        raise _Skip("empty file name")
    if any(sep in filename for sep in ("/", "\\", "\0")) or ".." in filename:
        raise _Skip(f"file name {filename[:80]!r} contains a path separator, '..' or NUL")
    if any(ord(char) < 32 or ord(char) == 127 for char in filename):
        raise _Skip(f"file name {filename[:80]!r} contains control characters")
    owner = file_project(filename)
    if owner is None:
        if filename.endswith(_LEGACY_SUFFIXES):
            raise _Legacy(f"{filename[:80]!r} is a legacy distribution format")
        raise _Skip(f"{filename[:80]!r} is not a wheel or sdist file name")
    if project is not None and owner != project:
        raise _Skip(f"{filename!r} belongs to project {owner!r}, not {project!r}")
    return filename


def resolve_file_url(href: str, base_url: str) -> tuple[str, str]:
    """Resolve *href* against *base_url*; returns (credential-free URL, fragment).

    Raises `_Skip` when the link would switch scheme (see the module docstring).
    """
    target = urljoin(base_url, href.strip())
    parts = urlsplit(target)
    scheme, base_scheme = parts.scheme.lower(), urlsplit(base_url).scheme.lower()
    if scheme != base_scheme and not (base_scheme == "http" and scheme == "https"):
        raise _Skip(f"link switches scheme from {base_scheme}: to {scheme or 'none'}:")
    if scheme not in ("http", "https", "file"):
        raise _Skip(f"unsupported link scheme {scheme!r}")
    url = strip_userinfo(urlunsplit((parts.scheme, parts.netloc, parts.path, parts.query, "")))
    return url, parts.fragment


def _hashes(raw: Any) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise _Skip("hashes is not a mapping")
    result: dict[str, str] = {}
    for name, digest in raw.items():
        name = str(name)
        algorithm = sys.intern(name if name.islower() else name.lower())
        if not _HASH_NAME.match(algorithm) or not isinstance(digest, str):
            raise _Skip(f"malformed hash entry {str(name)[:20]!r}")
        expected = _DIGEST_LENGTHS.get(algorithm)
        if not _HEX.match(digest) or (expected is not None and len(digest) != expected):
            raise _Skip(f"malformed {algorithm} hash {digest[:80]!r}")
        result[algorithm] = digest if digest.islower() else digest.lower()
    return result


def _fragment_hashes(fragment: str) -> dict[str, str]:
    if not fragment:
        return {}
    name, sep, digest = fragment.partition("=")
    if not sep:
        return {}  # a fragment that is not a hash (e.g. "#egg=...") carries nothing for us
    return _hashes({name: digest})


def _attr_hashes(value: str | None) -> dict[str, str] | None:
    """``data-core-metadata`` / ``data-dist-info-metadata``: "true" or "<name>=<hex>"."""
    if value is None:
        return None
    value = value.strip()
    if value.lower() in ("", "true"):
        return {}
    if value.lower() == "false":
        return None
    name, sep, digest = value.partition("=")
    if not sep:
        raise _Skip(f"malformed core-metadata attribute {value[:80]!r}")
    return _hashes({name: digest})


def _requires_python(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise _Skip("requires-python is not a string")
    checked = _checked_specifier(value)
    if checked is None:
        raise _Skip(f"invalid requires-python {value[:80]!r}")
    return checked


@functools.lru_cache(maxsize=256)
def _checked_specifier(value: str) -> str | None:
    """*value* if it parses as a specifier set, else None. Cached: a page repeats a handful of
    values over thousands of entries, and every entry then shares one string object."""
    try:
        SpecifierSet(value)
    except InvalidSpecifier:
        return None
    return value


class _Reporter:
    """Logs skipped entries for one page, at most `_MAX_WARNINGS_PER_PAGE` of them in detail."""

    def __init__(self, index: str, project: str | None) -> None:
        self.index = index
        self.project = project or "(find-links)"
        self.skipped = 0

    def skip(self, what: str, reason: str, *, quiet: bool = False) -> None:
        if quiet:
            _log.debug("%s", redact(f"index {self.index}: project {self.project}: {reason}"))
            return
        self.skipped += 1
        if self.skipped <= _MAX_WARNINGS_PER_PAGE:
            _log.warning(
                "%s",
                redact(f"index {self.index}: project {self.project}: skipped {what}: {reason}"),
            )

    def finish(self) -> None:
        if self.skipped > _MAX_WARNINGS_PER_PAGE:
            _log.warning(
                "index %s: project %s: %d invalid entries skipped in all",
                self.index,
                self.project,
                self.skipped,
            )


def _unique(entries: Iterable[FileEntry], reporter: _Reporter) -> tuple[FileEntry, ...]:
    seen: set[str] = set()
    result: list[FileEntry] = []
    for entry in entries:
        if entry.filename in seen:
            reporter.skip(repr(entry.filename), "listed twice (first entry kept)")
            continue
        seen.add(entry.filename)
        result.append(entry)
    return tuple(result)


# -- PEP 691 JSON -------------------------------------------------------------------------------


#: Files one JSON page may list. The largest projects on public indexes list some tens of
#: thousands of files (nightly builds times platforms); a parsed entry costs about 1 KB resident,
#: so this bounds one page at ~100 MB of objects, whatever a hostile index sends.
MAX_PAGE_FILES = 100_000
#: JSON values one page may hold, counted before decoding as an upper bound (commas, ``{`` and
#: ``[``: every value after the first of a container follows a comma). A real entry holds ~16, so
#: this admits `MAX_PAGE_FILES` real entries; it refuses, before anything is allocated, a page of
#: millions of tiny values that would decode into gigabytes of objects (issue 11.6).
MAX_PAGE_VALUES = 25 * MAX_PAGE_FILES


class _JsonFile(msgspec.Struct):
    """One ``files`` entry as sent: decoded straight into a Struct (unknown keys are skipped
    without being allocated), then validated by `_json_entry`."""

    filename: str
    url: str
    hashes: dict[str, str] | None = None
    requires_python: str | None = msgspec.field(default=None, name="requires-python")
    yanked: bool | str | None = False
    core_metadata: bool | dict[str, str] | None = msgspec.field(default=None, name="core-metadata")
    #: The PEP 691 name before PEP 714, and the older spelling some indexes still send.
    data_dist_info_metadata: bool | dict[str, str] | None = msgspec.field(
        default=None, name="data-dist-info-metadata"
    )
    dist_info_metadata: bool | dict[str, str] | None = msgspec.field(
        default=None, name="dist-info-metadata"
    )
    size: int | None = None
    upload_time: str | None = msgspec.field(default=None, name="upload-time")


class _JsonMeta(msgspec.Struct):
    api_version: str | None = msgspec.field(default=None, name="api-version")


class _JsonPage(msgspec.Struct):
    #: Each entry is kept undecoded (a view of the body) and decoded on its own: one bad entry
    #: is skipped, not the page, and no single C call holds the GIL for the whole page.
    files: list[msgspec.Raw]
    meta: _JsonMeta | None = None
    name: str | None = None
    versions: list[str] | None = None


_json_page_decoder = msgspec.json.Decoder(_JsonPage)
_json_file_decoder = msgspec.json.Decoder(_JsonFile)


def _json_entry(raw: _JsonFile, project: str, page_url: str) -> FileEntry:
    validate_filename(raw.filename, project)
    url, fragment = resolve_file_url(raw.url, page_url)
    if isinstance(raw.yanked, str):
        yanked, reason = True, (raw.yanked or None)
    else:
        yanked, reason = bool(raw.yanked), None
    metadata_raw = raw.core_metadata
    if metadata_raw is None:
        metadata_raw = raw.data_dist_info_metadata
    if metadata_raw is None:
        metadata_raw = raw.dist_info_metadata
    if metadata_raw is None or metadata_raw is False:
        core_metadata = None
    elif metadata_raw is True:
        core_metadata = {}
    else:
        core_metadata = _hashes(metadata_raw)
    size = raw.size
    return FileEntry.of(
        filename=raw.filename,
        url=url,
        # PEP 691 says `hashes`; some indexes only put a hash in the URL fragment, as in HTML.
        hashes=_hashes(raw.hashes) or _fragment_hashes(fragment),
        requires_python=_requires_python(raw.requires_python),
        yanked=yanked,
        yanked_reason=reason,
        size=size if size is not None and size >= 0 else None,
        upload_time=raw.upload_time,
        core_metadata=core_metadata,
    )


def _decode_json_page(data: bytes | bytearray, *, index: str, project: str) -> _JsonPage:
    def refuse(reason: str, kind: type[UpstreamError] = UpstreamError) -> UpstreamError:
        return kind(
            f"index {index}: project {project}: {reason}",
            details={"index": index, "project": project},
        )

    values = data.count(b",") + data.count(b"{") + data.count(b"[")
    if values > MAX_PAGE_VALUES:
        raise refuse(
            f"JSON page holds up to {values} values, more than the {MAX_PAGE_VALUES} accepted "
            f"({MAX_PAGE_FILES} files)"
        )
    try:
        doc = _json_page_decoder.decode(data)
    except RecursionError:
        raise refuse("JSON page is nested too deeply to be a simple-API page") from None
    except msgspec.ValidationError as exc:
        raise refuse(f"JSON page is not a simple-API page ({exc})", NotAPage) from None
    except msgspec.DecodeError as exc:
        raise refuse(f"page is not valid JSON ({exc})", NotAPage) from None
    if len(doc.files) > MAX_PAGE_FILES:
        raise refuse(
            f"JSON page lists {len(doc.files)} files, more than the {MAX_PAGE_FILES} accepted"
        )
    return doc


def parse_json_page(data: bytes | bytearray, *, index: str, project: str, url: str) -> ProjectPage:
    """Parse a PEP 691 JSON project page fetched from *url* (credential-free).

    CPU-bound for a large page (seconds for 60 MB): call it from a worker thread.
    """
    project = canonicalize_name(project)
    doc = _decode_json_page(data, index=index, project=project)
    api_version = check_api_version(
        doc.meta.api_version if doc.meta is not None else None, index=index, project=project
    )
    if doc.name is not None and canonicalize_name(doc.name) != project:
        raise UpstreamError(
            f"index {index}: project {project}: page describes another project {doc.name[:80]!r}",
            details={"index": index, "project": project},
        )
    reporter = _Reporter(index, project)
    entries: list[FileEntry] = []
    raws, doc.files = doc.files, []
    raws.reverse()
    while raws:  # each entry is released as soon as it is converted
        try:
            raw = _json_file_decoder.decode(raws.pop())
        except msgspec.ValidationError as exc:
            reporter.skip("an entry", str(exc).replace(" - at `$`", ""))
            continue
        except (msgspec.DecodeError, RecursionError):
            reporter.skip("an entry", "nested too deeply")
            continue
        try:
            entries.append(_json_entry(raw, project, url))
        except _Skip as exc:
            reporter.skip(repr(raw.filename), str(exc), quiet=exc.quiet)
    reporter.finish()
    return ProjectPage(
        index=index,
        project=project,
        url=strip_userinfo(url),
        files=_unique(entries, reporter),
        versions=tuple(doc.versions or ()),
        api_version=api_version,
    )


# -- PEP 503 HTML -------------------------------------------------------------------------------


class HTMLPageParser(HTMLParser):
    """Incremental PEP 503 parser: `feed_bytes` chunks as they arrive, then `result`.

    With ``project=None`` it reads a find-links page: every valid distribution link is kept,
    whatever its project (group them with `file_project`).
    """

    def __init__(
        self, *, index: str, project: str | None, url: str, encoding: str = "utf-8"
    ) -> None:
        super().__init__(convert_charrefs=True)
        self.index = index
        self.project = canonicalize_name(project) if project is not None else None
        self.url = strip_userinfo(url)
        self.base_url = self.url
        self.api_version = "1.0"
        self.entries: list[FileEntry] = []
        self._reporter = _Reporter(index, self.project)
        self._saw_base = False
        try:
            self._decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
        except LookupError:
            self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed_bytes(self, chunk: bytes) -> None:
        self.feed(self._decoder.decode(chunk))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "base" and not self._saw_base and attributes.get("href"):
            self._saw_base = True
            try:
                self.base_url, _ = resolve_file_url(attributes["href"] or "", self.url)
            except _Skip as exc:
                self._reporter.skip("<base href>", str(exc))
        elif tag == "meta" and attributes.get("name") == "pypi:repository-version":
            self.api_version = check_api_version(
                attributes.get("content"), index=self.index, project=self.project or "(links)"
            )
        elif tag == "a" and attributes.get("href"):
            self._anchor(attributes)

    def _anchor(self, attributes: dict[str, str | None]) -> None:
        href = attributes.get("href") or ""
        try:
            url, fragment = resolve_file_url(href, self.base_url)
        except _Skip as exc:
            self._reporter.skip(repr(href[:120]), str(exc), quiet=exc.quiet)
            return
        filename = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
        if self.project is None and file_project(filename) is None:
            return  # find-links pages link to anything; only distributions matter
        try:
            validate_filename(filename, self.project)
            hashes = _fragment_hashes(fragment)
            metadata_attr = attributes.get("data-core-metadata")
            if metadata_attr is None:
                metadata_attr = attributes.get("data-dist-info-metadata")
            core_metadata = _attr_hashes(metadata_attr)
            requires_python = _requires_python(attributes.get("data-requires-python"))
        except _Skip as exc:
            self._reporter.skip(repr(filename[:120]), str(exc), quiet=exc.quiet)
            return
        yanked = "data-yanked" in attributes
        self.entries.append(
            FileEntry.of(
                filename=filename,
                url=url,
                hashes=hashes,
                requires_python=requires_python,
                yanked=yanked,
                yanked_reason=(attributes.get("data-yanked") or None) if yanked else None,
                core_metadata=core_metadata,
            )
        )

    def result(self) -> ProjectPage:
        """Finish parsing and return the page (``project`` is "" for a find-links page)."""
        self.feed(self._decoder.decode(b"", final=True))
        self.close()
        self._reporter.finish()
        return ProjectPage(
            index=self.index,
            project=self.project or "",
            url=self.url,
            files=_unique(self.entries, self._reporter),
            api_version=self.api_version,
        )


def parse_html_page(
    data: bytes, *, index: str, project: str | None, url: str, encoding: str = "utf-8"
) -> ProjectPage:
    """Parse a whole PEP 503 page at once (see `HTMLPageParser`)."""
    parser = HTMLPageParser(index=index, project=project, url=url, encoding=encoding)
    parser.feed_bytes(data)
    return parser.result()
