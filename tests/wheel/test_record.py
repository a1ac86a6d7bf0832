"""RECORD parsing and rendering."""

from __future__ import annotations

import hashlib

import pytest

from wheelpatch.wheel.record import Record, RecordError, digest_bytes, record_hash

GOOD = digest_bytes(b"x")[0]


def test_rows_keep_their_exact_text() -> None:
    data = f'a.py,{GOOD},1\r\n"b,c.py",{GOOD},1\r\nd-1.0.dist-info/RECORD,,\r\n'.encode()
    record = Record.parse(data, "d-1.0.dist-info/RECORD")
    assert [r.path for r in record.rows] == ["a.py", "b,c.py", "d-1.0.dist-info/RECORD"]
    assert record.newline == "\r\n"
    assert Record.render(record.rows) == data
    assert record.row("e,f.py", GOOD, 1).line == f'"e,f.py",{GOOD},1\r\n'


def test_record_hash_format() -> None:
    assert record_hash(hashlib.sha256(b"").digest()) == (
        "sha256=47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU"
    )
    assert digest_bytes(b"abc") == ("sha256=ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0", 3)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        pytest.param("../x.py,{h},1", "path leaves the wheel", id="dotdot"),
        pytest.param("/abs.py,{h},1", "path must be relative", id="absolute"),
        pytest.param("./x.py,{h},1", "not start with './'", id="dot-slash"),
        pytest.param("a\\b.py,{h},1", "'/'-separated", id="backslash"),
        pytest.param("C:/x.py,{h},1", "path leaves the wheel", id="drive"),
        pytest.param("x.py,md5=1B2M2Y8AsgTpgAmY7PhCfg,0", "md5 and sha1 are forbidden", id="md5"),
        pytest.param(
            "x.py,sha1=2jmj7l5rSw0yVb_vlWAYkK_YBwk,0", "md5 and sha1 are forbidden", id="sha1"
        ),
        pytest.param("x.py,crc32=abc,0", "allowed algorithm", id="unknown-algorithm"),
        pytest.param("x.py,sha256=abc,0", "is not 43 characters", id="short-digest"),
        pytest.param("x.py,{h},one", "is not a whole number", id="bad-size"),
        pytest.param("x.py,,", "has no hash", id="no-hash"),
        pytest.param("x.py,{h}", "has 2 fields, not 3", id="two-fields"),
        pytest.param("x.py,{h},1\nx.py,{h},1", "listed twice", id="duplicate"),
        pytest.param('"x\ny.py",{h},1', "spans lines", id="quoted-newline"),
        pytest.param("x\x85y.py,{h},1", "line break other than", id="nel"),
    ],
)
def test_refusals(row: str, message: str) -> None:
    data = (row.format(h=GOOD) + "\nd-1.0.dist-info/RECORD,,\n").encode()
    with pytest.raises(RecordError, match=message.replace("(", r"\(")):
        Record.parse(data, "d-1.0.dist-info/RECORD")


def test_other_strong_algorithms_are_accepted() -> None:
    from wheelpatch.wheel.record import record_hash as fmt

    row = f"x.py,{fmt(hashlib.sha512(b'x').digest(), 'sha512')},1\n"
    record = Record.parse(row.encode(), "d-1.0.dist-info/RECORD")
    assert record.rows[0].algorithm == "sha512"
    assert record.rows[0].digest == hashlib.sha512(b"x").digest()
