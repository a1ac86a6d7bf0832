"""Upstream pages read into typed values and rendered back: nothing a pass-through needs is lost,
in HTML or JSON, and what cannot be read is refused with a message."""

from __future__ import annotations

import json
import re
import warnings

import pytest
from mousebender.simple import APIVersionWarning, parse_project_details

from wheelpatch.index.listing import (
    JSON_TYPE,
    ListedFile,
    Listing,
    ListingError,
    parse_listing,
    parse_project_list,
    render_html,
    render_json,
    render_project_list,
)

PAGE = "https://index.example/simple/demo/"
SHA = "a" * 64
META_SHA = "b" * 64

HTML = f"""<!DOCTYPE html>
<html><head>
<meta name="pypi:repository-version" content="1.4">
<meta name="pypi:project-status" content="deprecated">
<meta name="pypi:project-status-reason" content="use other &amp; better">
</head><body>
<a href="../../files/demo-1.0-py3-none-any.whl#sha256={SHA}" data-requires-python="&gt;=3.8"
   data-core-metadata="sha256={META_SHA}" data-provenance="https://index.example/prov/1">demo-1.0-py3-none-any.whl</a>
<a href="https://cdn.example/demo-0.9.tar.gz#sha256={SHA}" data-yanked="broken">demo-0.9.tar.gz</a>
</body></html>
"""

JSON = {
    "meta": {"api-version": "1.4", "_last-serial": 7},
    "name": "demo",
    "project-status": {"status": "archived", "reason": "done"},
    "versions": ["0.9", "1.0"],
    "files": [
        {
            "filename": "demo-1.0-py3-none-any.whl",
            "url": "../../files/demo-1.0-py3-none-any.whl",
            "hashes": {"sha256": SHA},
            "requires-python": ">=3.8",
            "core-metadata": {"sha256": META_SHA},
            "yanked": False,
            "size": 1234,
            "upload-time": "2024-01-01T00:00:00.000000Z",
            "provenance": "https://index.example/prov/1",
            "x-custom": {"kept": True},
        },
        {
            "filename": "demo-0.9.tar.gz",
            "url": "https://cdn.example/demo-0.9.tar.gz",
            "hashes": {"sha256": SHA},
            "yanked": "broken",
            "size": 99,
        },
    ],
    "alternate-locations": ["https://mirror.example/simple/demo/"],
}


def test_html_page_is_read_with_what_mousebender_leaves_out() -> None:
    listing = parse_listing(HTML.encode(), "text/html; charset=utf-8", "Demo", PAGE)
    assert listing.name == "demo"
    assert listing.api_version == "1.4"
    assert (listing.status, listing.status_reason) == ("deprecated", "use other & better")
    wheel, sdist = listing.files
    assert wheel.url == "https://index.example/files/demo-1.0-py3-none-any.whl"
    assert wheel.hashes == {"sha256": SHA}
    assert wheel.requires_python == ">=3.8"
    assert wheel.core_metadata == {"sha256": META_SHA}
    assert wheel.provenance == "https://index.example/prov/1"
    assert sdist.yanked == "broken"
    assert sdist.url == "https://cdn.example/demo-0.9.tar.gz"


def test_json_page_keeps_every_key_through_a_round_trip() -> None:
    listing = parse_listing(json.dumps(JSON).encode(), JSON_TYPE, "demo", PAGE)
    document = json.loads(render_json(listing))
    assert document["meta"]["api-version"] == "1.4"
    assert document["project-status"] == {"status": "archived", "reason": "done"}
    assert document["versions"] == ["0.9", "1.0"]
    assert document["alternate-locations"] == JSON["alternate-locations"]
    first = document["files"][0]
    assert first["url"] == "https://index.example/files/demo-1.0-py3-none-any.whl"
    for key in ("hashes", "requires-python", "core-metadata", "size", "upload-time", "provenance"):
        assert first[key] == JSON["files"][0][key], key  # type: ignore[index]
    assert first["dist-info-metadata"] == {"sha256": META_SHA}
    assert first["x-custom"] == {"kept": True}
    assert document["files"][1]["yanked"] == "broken"


def test_rendered_html_reads_back_the_same() -> None:
    listing = parse_listing(json.dumps(JSON).encode(), JSON_TYPE, "demo", PAGE)
    again = parse_listing(render_html(listing), "text/html", "demo", PAGE)
    assert again.status == "archived"
    assert [f.filename for f in again.files] == [f.filename for f in listing.files]
    for before, after in zip(listing.files, again.files, strict=True):
        assert (after.url, after.hashes, after.requires_python, after.yanked) == (
            before.url,
            before.hashes,
            before.requires_python,
            before.yanked,
        )
        assert after.core_metadata == before.core_metadata
        assert after.provenance == before.provenance
    # and mousebender, a parser made for the simple API, reads it too
    with warnings.catch_warnings():  # it knows the API up to 1.1; this page says 1.4
        warnings.simplefilter("ignore", APIVersionWarning)
        details = parse_project_details(render_html(listing).decode(), "text/html", "demo")
    assert details["files"][0]["core-metadata"] == {"sha256": META_SHA}  # type: ignore[typeddict-item]


def test_a_page_without_sizes_claims_api_version_1_0() -> None:
    listing = Listing(
        name="demo",  # type: ignore[arg-type]
        files=(ListedFile("demo-1.0.tar.gz", "https://x/demo-1.0.tar.gz", {"sha256": SHA}),),
        api_version="1.1",
    )
    document = json.loads(render_json(listing))
    assert document["meta"]["api-version"] == "1.0"
    assert "versions" not in document
    sized = listing.with_files([ListedFile("demo-1.0.tar.gz", "u", {}, size=3)])
    assert json.loads(render_json(sized))["versions"] == ["1.0"]


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        pytest.param(b"{}", JSON_TYPE, "no files list", id="json-without-files"),
        pytest.param(b"not json", JSON_TYPE, "not a PEP 691 project page", id="not-json"),
        pytest.param(
            json.dumps({"meta": {"api-version": "2.0"}, "name": "d", "files": []}).encode(),
            JSON_TYPE,
            "api-version 2.0 is not supported",
            id="major-2",
        ),
        pytest.param(b"\xff\xfe", "text/html", "not UTF-8", id="not-utf8"),
        pytest.param(b"<html/>", "application/pdf", "unexpected content type", id="pdf"),
        pytest.param(
            json.dumps(
                {"meta": {"api-version": "1.0"}, "name": "d", "files": [{"filename": "x"}]}
            ).encode(),
            JSON_TYPE,
            "files[0] has no filename or url",
            id="file-without-url",
        ),
        pytest.param(
            json.dumps(
                {
                    "meta": {"api-version": "1.1"},
                    "name": "d",
                    "files": [{"filename": "x", "url": "y", "hashes": {}, "size": -1}],
                }
            ).encode(),
            JSON_TYPE,
            "files[0].size -1 is not a whole number",
            id="negative-size",
        ),
    ],
)
def test_unreadable_pages_are_refused(body: bytes, content_type: str, message: str) -> None:
    with pytest.raises(ListingError, match=re.escape(message)):
        parse_listing(body, content_type, "demo", PAGE)


def test_project_list_round_trip() -> None:
    html, json_page = render_project_list(["Foo_Bar", "demo", "demo"])
    assert parse_project_list(html, "text/html") == ["demo", "foo-bar"]
    assert parse_project_list(json_page, JSON_TYPE) == ["demo", "foo-bar"]
