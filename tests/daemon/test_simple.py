"""Simple-API page parsing: PEP 691 JSON and PEP 503 HTML, and what a hostile page cannot do."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from satchel.daemon.errors import UpstreamError
from satchel.daemon.upstream.simple import HTMLPageParser, parse_html_page, parse_json_page

PAGE = "http://127.0.0.1:8000/simple/demo/"
SHA = "a" * 64
WHEEL = "demo-1.0-py3-none-any.whl"


def _json(files: list[dict[str, Any]], **extra: Any) -> bytes:
    doc = {"meta": {"api-version": "1.1"}, "name": "demo", "files": files, **extra}
    return json.dumps(doc).encode()


def _file(
    filename: str = WHEEL, url: str | None = None, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "filename": filename,
        "url": url if url is not None else f"../../files/{filename}",
        "hashes": {"sha256": SHA},
        **(extra or {}),
    }


def _parse_json(data: bytes) -> Any:
    return parse_json_page(data, index="test", project="Demo", url=PAGE)


def _parse_html(body: str, url: str = PAGE) -> Any:
    return parse_html_page(body.encode(), index="test", project="demo", url=url)


# -- JSON ---------------------------------------------------------------------------------------


def test_json_entry_fields_are_read() -> None:
    data = _json(
        [
            _file(
                extra={
                    "requires-python": ">=3.9",
                    "yanked": "bad build",
                    "size": 123,
                    "upload-time": "2024-01-01T00:00:00Z",
                    "core-metadata": {"sha256": "B" * 64},
                }
            )
        ],
        versions=["1.0"],
    )
    page = _parse_json(data)
    assert page.project == "demo"
    assert page.api_version == "1.1"
    assert page.versions == ("1.0",)
    (entry,) = page.files
    assert entry.url == "http://127.0.0.1:8000/files/" + WHEEL
    assert entry.hashes == {"sha256": SHA}
    assert entry.requires_python == ">=3.9"
    assert (entry.yanked, entry.yanked_reason) == (True, "bad build")
    assert (entry.size, entry.upload_time) == (123, "2024-01-01T00:00:00Z")
    assert entry.core_metadata == {"sha256": "b" * 64}


def test_json_hash_in_url_fragment_is_used_when_hashes_is_empty() -> None:
    entry = {**_file(url=f"../../files/{WHEEL}#sha256={SHA}"), "hashes": {}}
    (parsed,) = _parse_json(_json([entry])).files
    assert parsed.hashes == {"sha256": SHA}
    assert "#" not in parsed.url


def test_json_legacy_dist_info_metadata_key_is_honoured() -> None:
    (entry,) = _parse_json(_json([{**_file(), "dist-info-metadata": True}])).files
    assert entry.core_metadata == {}


def test_json_api_major_2_is_refused() -> None:
    data = json.dumps({"meta": {"api-version": "2.0"}, "name": "demo", "files": []}).encode()
    with pytest.raises(UpstreamError, match=r"index test: project demo: simple API version 2\.0"):
        _parse_json(data)


def test_json_newer_minor_is_accepted_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    data = json.dumps({"meta": {"api-version": "1.7"}, "name": "demo", "files": []}).encode()
    with caplog.at_level(logging.INFO, logger="satchel.daemon.upstream.simple"):
        assert _parse_json(data).api_version == "1.7"
        _parse_json(data)
    assert sum("1.7" in r.getMessage() for r in caplog.records) == 1


def test_json_garbage_page_is_an_upstream_error() -> None:
    with pytest.raises(UpstreamError, match="index test: project demo: page is not valid JSON"):
        _parse_json(b"<html>definitely not json")


def test_json_page_for_another_project_is_refused() -> None:
    data = json.dumps({"meta": {"api-version": "1.0"}, "name": "other", "files": []}).encode()
    with pytest.raises(UpstreamError, match="another project"):
        _parse_json(data)


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        (_file("../../etc/demo-1.0-py3-none-any.whl"), "path separator"),
        (_file("demo-1.0-py3-none-any.whl\0.txt"), "NUL"),
        (_file("other-1.0-py3-none-any.whl"), "belongs to project 'other'"),
        (_file("demo-1.0-py3-none-any.whl.txt"), "not a wheel or sdist"),
        (_file(url="file:///etc/passwd"), "switches scheme"),
        (_file(url="ftp://127.0.0.1/demo-1.0-py3-none-any.whl"), "switches scheme"),
        ({**_file(), "hashes": {"sha256": "z" * 64}}, "malformed sha256"),
        ({**_file(), "hashes": {"sha256": "ab"}}, "malformed sha256"),
        (_file(extra={"requires-python": ">=3.x"}), "invalid requires-python"),
    ],
)
def test_json_hostile_entries_are_skipped_with_a_warning(
    entry: dict[str, Any], reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    good = _file("demo-2.0-py3-none-any.whl")
    with caplog.at_level(logging.WARNING, logger="satchel.daemon.upstream.simple"):
        page = _parse_json(_json([entry, good]))
    assert [f.filename for f in page.files] == ["demo-2.0-py3-none-any.whl"]
    (record,) = caplog.records
    assert "index test: project demo: skipped" in record.getMessage()
    assert reason in record.getMessage()


@pytest.mark.parametrize(
    "filename", ["demo-1.0.win32-py2.7.exe", "demo-1.0-py2.7.egg", "demo-1.0.tar.bz2"]
)
def test_legacy_formats_are_skipped_without_a_warning(
    filename: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Real indexes list hundreds of pre-wheel files; they are unusable, not hostile."""
    good = _file("demo-2.0-py3-none-any.whl")
    with caplog.at_level(logging.WARNING, logger="satchel.daemon.upstream.simple"):
        page = _parse_json(_json([_file(filename), good]))
    assert [f.filename for f in page.files] == ["demo-2.0-py3-none-any.whl"]
    assert caplog.records == []


def test_https_page_cannot_downgrade_to_http() -> None:
    data = _json([_file(url="http://127.0.0.1/files/" + WHEEL)])
    page = parse_json_page(data, index="t", project="demo", url="https://127.0.0.1/simple/demo/")
    assert page.files == ()


def test_http_page_may_upgrade_to_https() -> None:
    (entry,) = _parse_json(_json([_file(url="https://127.0.0.1/files/" + WHEEL)])).files
    assert entry.url.startswith("https://")


def test_credentials_in_file_urls_are_dropped() -> None:
    (entry,) = _parse_json(_json([_file(url="http://u:pw123456@127.0.0.1/f/" + WHEEL)])).files
    assert entry.url == "http://127.0.0.1/f/" + WHEEL


# -- HTML ---------------------------------------------------------------------------------------


def test_html_anchor_attributes_are_read_and_unescaped() -> None:
    body = (
        '<html><head><meta name="pypi:repository-version" content="1.0"></head><body>'
        f'<a href="../../files/{WHEEL}#sha256={SHA}" data-requires-python="&gt;=3.8,&lt;4" '
        f'data-yanked="" data-dist-info-metadata="sha256={"c" * 64}">{WHEEL}</a>'
        '<a href="../../files/demo-0.9.tar.gz" data-core-metadata="true">demo-0.9.tar.gz</a>'
        "</body></html>"
    )
    page = _parse_html(body)
    wheel, sdist = page.files
    assert wheel.url == "http://127.0.0.1:8000/files/" + WHEEL
    assert wheel.hashes == {"sha256": SHA}
    assert wheel.requires_python == ">=3.8,<4"
    assert (wheel.yanked, wheel.yanked_reason) == (True, None)
    assert wheel.core_metadata == {"sha256": "c" * 64}
    assert sdist.filename == "demo-0.9.tar.gz"
    assert (sdist.yanked, sdist.core_metadata) == (False, {})


def test_html_base_href_changes_link_resolution() -> None:
    body = f'<base href="http://127.0.0.1:9000/mirror/"><a href="{WHEEL}">x</a>'
    (entry,) = _parse_html(body).files
    assert entry.url == "http://127.0.0.1:9000/mirror/" + WHEEL


def test_html_base_href_cannot_switch_to_file_scheme() -> None:
    body = f'<base href="file:///srv/"><a href="{WHEEL}">x</a>'
    (entry,) = _parse_html(body).files
    assert entry.url == "http://127.0.0.1:8000/simple/demo/" + WHEEL


def test_html_percent_encoded_separator_in_name_is_refused() -> None:
    assert _parse_html('<a href="..%2F..%2Fdemo-1.0-py3-none-any.whl">x</a>').files == ()


def test_html_file_link_from_http_page_is_refused(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="satchel.daemon.upstream.simple"):
        assert _parse_html(f'<a href="file:///tmp/{WHEEL}">x</a>').files == ()
    assert "switches scheme from http: to file:" in caplog.text


def test_html_api_major_2_meta_is_refused() -> None:
    with pytest.raises(UpstreamError, match=r"simple API version 2\.0"):
        _parse_html('<meta name="pypi:repository-version" content="2.0">')


def test_html_parser_is_incremental_across_arbitrary_chunk_boundaries() -> None:
    body = (
        f'<a href="../../files/{WHEEL}#sha256={SHA}" data-requires-python="&gt;=3">é</a>'
    ).encode()
    whole = parse_html_page(body, index="t", project="demo", url=PAGE)
    parser = HTMLPageParser(index="t", project="demo", url=PAGE)
    for i in range(len(body)):
        parser.feed_bytes(body[i : i + 1])
    assert parser.result().files == whole.files
    assert whole.files[0].requires_python == ">=3"


def test_find_links_page_keeps_distributions_of_any_project() -> None:
    body = f'<a href="{WHEEL}">a</a><a href="other-2.0.tar.gz">b</a><a href="../">up</a>'
    page = parse_html_page(body.encode(), index="t", project=None, url="http://127.0.0.1/links/")
    assert [f.filename for f in page.files] == [WHEEL, "other-2.0.tar.gz"]


def test_many_bad_entries_log_a_bounded_number_of_warnings(
    caplog: pytest.LogCaptureFixture,
) -> None:
    body = "".join(f'<a href="file:///x/demo-1.{i}.tar.gz">x</a>' for i in range(100))
    with caplog.at_level(logging.WARNING, logger="satchel.daemon.upstream.simple"):
        _parse_html(body)
    assert len(caplog.records) == 11
    assert "100 invalid entries skipped" in caplog.records[-1].getMessage()


def test_json_entry_of_the_wrong_shape_is_skipped_not_the_page(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Entries are decoded one by one into Structs: a non-object or a non-string filename costs
    that entry only (issue 11.6 changed the decoding, not this)."""
    good = _file("demo-2.0-py3-none-any.whl")
    with caplog.at_level(logging.WARNING, logger="satchel.daemon.upstream.simple"):
        page = _parse_json(_json([7, {**_file(), "filename": 3}, good]))
    assert [f.filename for f in page.files] == ["demo-2.0-py3-none-any.whl"]
    assert len(caplog.records) == 2
    assert "Expected `str`, got `int` - at `$.filename`" in caplog.records[1].getMessage()


def test_json_page_nested_too_deeply_is_an_upstream_error() -> None:
    """issue 11.10: 100,000 levels of nesting, once a RecursionError and "internal error"."""
    data = b'{"files": [], "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    with pytest.raises(UpstreamError, match="nested too deeply"):
        _parse_json(data)


def test_json_page_with_too_many_values_is_refused_before_decoding() -> None:
    """issue 11.6: millions of tiny values are counted, not decoded into gigabytes."""
    data = b'{"files": [' + b"{}," * 3_000_000 + b"{}]}"
    with pytest.raises(UpstreamError, match="more than the 2500000 accepted"):
        _parse_json(data)
