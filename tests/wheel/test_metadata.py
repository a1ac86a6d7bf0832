"""METADATA parsing and line-by-line editing."""

from __future__ import annotations

import pytest

from wheelpatch.wheel.metadata import MetadataDocument, MetadataError

BASE = b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n"


def test_render_without_edits_is_identity() -> None:
    data = (
        BASE + b"Summary: s\nDescription: a\n        |b\n\tc\nRequires-Dist: x\n\n"
        b"Body\n\nwith: colon lines\n"
    )
    document = MetadataDocument.parse(data)
    assert document.render({}) == data
    assert document.get("Description") == "a\n        |b\n\tc"
    assert document.rest == "\nBody\n\nwith: colon lines\n"


def test_no_body_and_no_final_newline() -> None:
    data = BASE + b"Requires-Dist: x"
    document = MetadataDocument.parse(data)
    assert document.render({}) == data
    assert document.render({}, {3: [("Requires-Dist", "y")]}) == data + b"\nRequires-Dist: y\n"


def test_replace_drop_and_insert() -> None:
    document = MetadataDocument.parse(BASE + b"Requires-Dist: a\nRequires-Dist: b\n\nbody\n")
    result = document.render({2: "2.0", 3: None}, {4: [("Requires-Dist", "c")]})
    assert result == (
        b"Metadata-Version: 2.1\nName: demo\nVersion: 2.0\nRequires-Dist: b\n"
        b"Requires-Dist: c\n\nbody\n"
    )


def test_crlf_is_kept() -> None:
    data = BASE.replace(b"\n", b"\r\n") + b"\r\nbody\r\n"
    document = MetadataDocument.parse(data)
    assert document.newline == "\r\n"
    assert document.render({2: "1.0+x"}, {2: [("Requires-Python", ">=3")]}) == (
        b"Metadata-Version: 2.1\r\nName: demo\r\nVersion: 1.0+x\r\nRequires-Python: >=3\r\n"
        b"\r\nbody\r\n"
    )


def test_field_names_are_case_insensitive() -> None:
    document = MetadataDocument.parse(BASE + b"requires-dist: a\nREQUIRES-DIST: b\n")
    assert document.get_all("Requires-Dist") == ["a", "b"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param(b"\xff" + BASE, "is not valid UTF-8 (byte 0)", id="not-utf8"),
        pytest.param(BASE + b"Version: 2\n", "repeats the single-use field 'Version'", id="repeat"),
        pytest.param(
            BASE + b"Summary: a\nsummary: b\n",
            "repeats the single-use field 'summary'",
            id="repeat-case",
        ),
        pytest.param(b"Name: demo\nVersion: 1\n", "has no 'Metadata-Version' field", id="missing"),
        pytest.param(b" folded\n" + BASE, "starts with a continuation line", id="leading-fold"),
        pytest.param(BASE + b"no colon here\n", "is not a 'Name: value' header", id="no-colon"),
        pytest.param(b"\xef\xbb\xbf" + BASE, "starts with a byte order mark", id="bom"),
    ],
)
def test_refusals(data: bytes, message: str) -> None:
    with pytest.raises(MetadataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        MetadataDocument.parse(data)


@pytest.mark.parametrize(
    "char", ["\r", "\v", "\f", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029", "\x00", "\x1b"]
)
def test_line_breaks_inside_header_values_are_refused(char: str) -> None:
    data = BASE + f"Summary: a{char}Requires-Dist: evil\n".encode()
    with pytest.raises(MetadataError, match="line-break or control character"):
        MetadataDocument.parse(data)


def test_line_breaks_in_the_body_are_kept() -> None:
    data = BASE + "\nbody with \x0c form feed and \u2028 separators\n".encode()
    assert MetadataDocument.parse(data).render({}) == data
