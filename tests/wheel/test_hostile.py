"""Hostile and broken wheels: each is refused, by ``patch`` and by ``verify``, the same way.

Every case is the valid baseline of :func:`tests.zipcraft.wheel_entries` with ONE defect, built
in memory at the struct level. The standard for every refusal: exit code 1; one line on stderr,
``error: <wheel>: ...``, naming the member or field and the rule broken; no traceback; no output
file and no temporary file; the input byte-identical.
"""

from __future__ import annotations

import base64
import bz2
import dataclasses
import hashlib
import io
import re
import stat
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from wheelpatch.wheel.source_wheel import read_wheel

from ..conftest import CliResult, snapshot
from ..zipcraft import (
    FLAG_UTF8,
    STORED,
    Entry,
    build_zip,
    deflate,
    local_record,
    record_row,
    wheel_entries,
    wheel_filename,
)

Cli = Callable[..., CliResult]
#: Builds the archive's bytes (lazily: the table is built at import time).
Build = Callable[[], bytes]
#: A piece of the expected message, or several that must all appear.
Fragment = str | tuple[str, ...]

WHEEL = wheel_filename()
DIST = "demo-1.0.dist-info"
METADATA = f"{DIST}/METADATA"
RECORD = f"{DIST}/RECORD"
CORE = "demo/core.py"
FILES = {"demo/__init__.py": b"VALUE = 1\n", CORE: b"x = 2\n"}
META_TEXT = (
    "Metadata-Version: 2.1\nName: demo\nVersion: 1.0\nSummary: A demo project\n\n"
    "A long description.\n"
)
CONFIG = '[tool.wheelpatch]\nlocal-version = "hostile.1"\n\n[tool.wheelpatch.overrides.demo]\n'
MIB = 1 << 20


# --- building blocks ------------------------------------------------------------------------


def base(**changes: Any) -> list[Entry]:
    """The valid baseline's entries (``changes`` go to :func:`wheel_entries`)."""
    return wheel_entries(files=changes.pop("files", FILES), **changes)


def change(entries: Sequence[Entry], name: str | bytes, /, **changes: Any) -> list[Entry]:
    """``entries`` with member ``name`` (which must be there) changed."""
    assert any(e.name == name for e in entries), name
    return [dataclasses.replace(e, **changes) if e.name == name else e for e in entries]


def insert(entries: Sequence[Entry], new: Entry, *, before: str) -> list[Entry]:
    index = next(i for i, e in enumerate(entries) if e.name == before)
    return [*entries[:index], new, *entries[index:]]


def member(entries: Sequence[Entry], name: str) -> Entry:
    return next(e for e in entries if e.name == name)


def edit_record(entries: Sequence[Entry], pattern: str, replacement: str) -> list[Entry]:
    """Substitute regex ``pattern`` (multiline) in RECORD, exactly once."""
    text, count = re.subn(
        pattern, replacement, member(entries, RECORD).data.decode(), count=1, flags=re.M
    )
    assert count == 1, pattern
    return change(entries, RECORD, data=text.encode())


def b64(digest: bytes) -> str:
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def zipped(**changes: Any) -> Build:
    """The baseline with ``changes`` to :func:`wheel_entries` (a defect in a file's content)."""
    return lambda: build_zip(base(**changes))


def with_member(path: str, /, data: bytes = b"y = 1\n", **changes: Any) -> Build:
    """The baseline plus member ``path`` (listed in RECORD), its entry changed by ``changes``."""

    def build() -> bytes:
        entries = base(files={**FILES, path: data})
        return build_zip(change(entries, path, **changes))

    return build


def with_entry(name: str, /, **changes: Any) -> Build:
    """The baseline with member ``name``'s entry changed."""
    return lambda: build_zip(change(base(), name, **changes))


def with_zip(**options: Any) -> Build:
    """The baseline written with ``options`` to :func:`build_zip`."""
    return lambda: build_zip(base(), **options)


def with_record(pattern: str, replacement: str) -> Build:
    return lambda: build_zip(edit_record(base(), pattern, replacement))


def with_metadata(text: str | bytes) -> Build:
    data = text.encode() if isinstance(text, str) else text
    return zipped(metadata=data)


def core_row(field: str) -> str:
    """A regex for one field of ``demo/core.py``'s RECORD row: path, hash or size."""
    row = r"^demo/core\.py"
    patterns = {
        "path": rf"{row}(?=,)",
        "hash": rf"(?<={row},)[^,]+",
        "size": rf"(?<={row},sha256=[A-Za-z0-9_-]{{43}},)6$",
    }
    return patterns[field]


def layout() -> tuple[bytes, int]:
    """The baseline's bytes and the offset of its central directory."""
    data = build_zip(base())
    return data, data.index(b"PK\x01\x02")


# --- member names ---------------------------------------------------------------------------


def special(mode: int) -> Build:
    return with_member("demo/special.py", external_attr=(mode | 0o644) << 16)


def collision(first: str, second: str) -> Build:
    return lambda: build_zip(base(files={**FILES, first: b"a = 1\n", second: b"b = 1\n"}))


NAME_CASES = [
    pytest.param(
        with_member("demo/../evil.py"),
        "member 'demo/../evil.py' has an empty, '.' or '..' component",
        id="dotdot",
    ),
    pytest.param(with_member("/evil.py"), "member '/evil.py' is absolute", id="absolute"),
    pytest.param(with_member("C:/evil.py"), "member 'C:/evil.py' is absolute", id="drive"),
    pytest.param(with_member("C:evil.py"), "member 'C:evil.py' is absolute", id="drive-relative"),
    pytest.param(
        with_member("//server/share/evil.py"),
        "member '//server/share/evil.py' is absolute",
        id="unc",
    ),
    pytest.param(
        with_member("demo\\evil.py"),
        "member 'demo\\\\evil.py' contains a backslash",
        id="backslash",
    ),
    pytest.param(with_member(""), "member '' is empty", id="empty"),
    pytest.param(
        with_member("demo//evil.py"),
        "member 'demo//evil.py' has an empty, '.' or '..' component",
        id="empty-component",
    ),
    pytest.param(
        with_member("demo/./evil.py"),
        "member 'demo/./evil.py' has an empty, '.' or '..' component",
        id="dot-component",
    ),
    pytest.param(
        with_member("demo/a\x00.py"),
        "member 'demo/a\\x00.py' contains a control character",
        id="nul",
    ),
    pytest.param(
        with_member("demo/a\n.py"),
        "member 'demo/a\\n.py' contains a control character",
        id="newline",
    ),
    pytest.param(
        with_member("demo/a\x1b.py"),
        "member 'demo/a\\x1b.py' contains a control character",
        id="escape",
    ),
    pytest.param(
        with_member("demo/a\t.py"),
        "member 'demo/a\\t.py' contains a control character",
        id="tab",
    ),
    pytest.param(
        with_member("demo/a\x7f.py"),
        "member 'demo/a\\x7f.py' contains a control character",
        id="delete",
    ),
    pytest.param(
        with_member("demo/a\u2028.py"),
        "member 'demo/a\\u2028.py' contains a control character",
        id="line-separator",
    ),
    pytest.param(
        with_member("demo/a\x85.py"),
        "member 'demo/a\\x85.py' contains a control character",
        id="next-line",
    ),
    pytest.param(
        with_member("demo/caf\u00e9.py", flags=0),
        "member name b'demo/caf\\xc3\\xa9.py' is not ASCII and lacks the UTF-8 flag",
        id="non-ascii-without-utf8-flag",
    ),
    pytest.param(
        with_member("demo/x.py", name=b"demo/\xff.py", flags=FLAG_UTF8),
        "member name b'demo/\\xff.py' is flagged UTF-8 but is not",
        id="utf8-flag-not-utf8",
    ),
    pytest.param(
        with_member(
            "demo/link.py", data=b"/etc/passwd", external_attr=(stat.S_IFLNK | 0o777) << 16
        ),
        "member 'demo/link.py' is a symlink",
        id="symlink",
    ),
    pytest.param(
        special(stat.S_IFIFO),
        "member 'demo/special.py' is a special file, not a regular file",
        id="fifo",
    ),
    pytest.param(
        special(stat.S_IFCHR),
        "member 'demo/special.py' is a special file, not a regular file",
        id="char-device",
    ),
    pytest.param(
        special(stat.S_IFBLK),
        "member 'demo/special.py' is a special file, not a regular file",
        id="block-device",
    ),
    pytest.param(
        special(stat.S_IFSOCK),
        "member 'demo/special.py' is a special file, not a regular file",
        id="socket",
    ),
    pytest.param(
        collision("demo/A.py", "demo/a.py"),
        "members 'demo/A.py' and 'demo/a.py' collide on case-insensitive file systems",
        id="case-collision",
    ),
    pytest.param(
        collision("demo/caf\u00e9.py", "demo/cafe\u0301.py"),
        "members 'demo/caf\u00e9.py' and 'demo/cafe\u0301.py' collide",
        id="nfc-collision",
    ),
]


# --- zip structure --------------------------------------------------------------------------


def duplicate() -> bytes:
    entries = base()
    return build_zip(insert(entries, member(entries, CORE), before=METADATA))


def hidden_local(before: str) -> Build:
    hidden = Entry("demo/evil.py", b"import os\n", skip_central=True)
    return lambda: build_zip(insert(base(), hidden, before=before))


def overlap() -> bytes:
    """``demo/b.py``'s local header and data lie inside ``demo/a.py``'s stored data: each member
    is consistent on its own (names, CRCs, sizes, RECORD), but the two overlap."""
    inner = Entry("demo/b.py", b"b = 1\n", method=STORED)
    outer = local_record(inner)
    entries = base(files={"demo/a.py": outer, "demo/b.py": inner.data}, method=STORED)
    offset = 30 + len(b"demo/a.py")  # demo/a.py is first: its data starts after its header
    return build_zip(change(entries, "demo/b.py", skip_local=True, header_offset=offset))


def truncated(where: str) -> Build:
    def build() -> bytes:
        data, cd_offset = layout()
        cut = data.index(CORE.encode()) + len(CORE) + 3 if where == "data" else cd_offset + 40
        return data[:cut]

    return build


def zip64_count_disagrees() -> bytes:
    count = len(base())
    return build_zip(base(), zip64=True, zip64_saturate=False, zip64_count=count + 1)


def suspicious_comment() -> bytes:
    return build_zip(base(), comment=b"note PK\x05\x06" + bytes(18) + b" more")


COUNT = len(base())

ZIP_CASES = [
    pytest.param(duplicate, f"member '{CORE}': duplicate name in the archive", id="duplicate"),
    pytest.param(
        with_entry(CORE, version_needed=64),
        f"member '{CORE}': needs version 6.4 of the zip format to be extracted; Python's "
        "zipfile (pip, installer) reads none past 6.3",
        id="version-needed-past-zipfile",
    ),
    pytest.param(
        with_entry(CORE, local_name="demo/c0re.py"),
        f"member '{CORE}': local header names b'demo/c0re.py', the central directory b'{CORE}'",
        id="local-name-differs",
    ),
    pytest.param(
        with_entry(CORE, local_crc=0x12345678),
        (f"member '{CORE}': local header (crc 12345678", "disagrees with the central directory"),
        id="local-crc-differs",
    ),
    pytest.param(
        with_entry(CORE, local_file_size=7),
        (f"member '{CORE}': local header (crc", "/7 bytes) disagrees with the central directory"),
        id="local-size-differs",
    ),
    pytest.param(
        with_entry(CORE, local_compress_size=99),
        (f"member '{CORE}': local header (crc", ", 99/6 bytes) disagrees with the central"),
        id="local-compressed-size-differs",
    ),
    pytest.param(
        with_entry(CORE, local_method=STORED),
        f"member '{CORE}': local header and central directory disagree on compression or flags",
        id="local-method-differs",
    ),
    pytest.param(
        with_entry(CORE, data_descriptor=True, descriptor_crc=0x12345678),
        f"member '{CORE}': data descriptor disagrees with the central directory",
        id="descriptor-differs",
    ),
    pytest.param(
        hidden_local(CORE),
        ("unexplained bytes at offset", f"before member '{CORE}'", "does not list"),
        id="hidden-local-header",
    ),
    pytest.param(
        hidden_local(RECORD),
        ("unexplained bytes at offset", f"before member '{RECORD}'", "does not list"),
        id="hidden-local-header-before-record",
    ),
    pytest.param(
        with_entry(CORE, raw_local=b"\x00garbage\x00" * 5),
        f"member '{CORE}': no local header at offset",
        id="central-points-at-garbage",
    ),
    pytest.param(
        with_entry(CORE, skip_local=True, header_offset=10_000_000),
        f"member '{CORE}': local header offset 10000000 is out of range",
        id="central-points-past-the-end",
    ),
    pytest.param(
        with_zip(prefix=b"#!/bin/sh\nexec python3\n"),
        "23 unexplained bytes at offset 0, before member 'demo/__init__.py'",
        id="prefix",
    ),
    pytest.param(
        with_zip(prefix=b"#!/bin/sh\nexec python3\n", prefix_counted=False),
        "does not end where the end record starts",
        id="prefix-uncounted",
    ),
    pytest.param(
        with_zip(suffix=b"trailing junk"),
        "13 bytes of trailing data after the end record",
        id="suffix",
    ),
    pytest.param(
        suspicious_comment,
        "more than one end of central directory record (one hides in the archive comment)",
        id="end-record-inside-comment",
    ),
    pytest.param(
        with_zip(extra_eocd=True),
        "more than one end of central directory record (one hides in the archive comment)",
        id="end-record-ends-comment",
    ),
    pytest.param(
        with_zip(count=COUNT + 1),
        "central directory holds fewer entries than announced",
        id="count-too-high",
    ),
    pytest.param(
        with_zip(count=COUNT - 1),
        f"central directory holds more than the {COUNT - 1} entries the end record announces",
        id="count-too-low",
    ),
    pytest.param(
        lambda: build_zip(base(), cd_offset=layout()[1] - 1),
        "does not end where the end record starts",
        id="cd-offset-wrong",
    ),
    pytest.param(
        lambda: build_zip(base(), cd_size=len(layout()[0]) - layout()[1] - 22 + 1),
        "does not end where the end record starts",
        id="cd-size-wrong",
    ),
    pytest.param(
        with_zip(disk=1, cd_disk=1),
        "multi-disk zip archives are not supported",
        id="multi-disk",
    ),
    pytest.param(
        with_zip(zip64=True, zip64_locator_offset=0),
        "malformed ZIP64 end of central directory record",
        id="zip64-locator-at-garbage",
    ),
    pytest.param(
        zip64_count_disagrees,
        f"the end record's entry count ({COUNT}) disagrees with ZIP64's ({COUNT + 1})",
        id="zip64-count-disagrees",
    ),
    pytest.param(
        with_zip(count=0xFFFF, cd_size=0xFFFFFFFF, cd_offset=0xFFFFFFFF),
        "end record points to a ZIP64 record that is missing",
        id="zip64-record-missing",
    ),
    pytest.param(
        with_entry(CORE, encrypted=True),
        f"member '{CORE}': encrypted members are not allowed in a wheel",
        id="encrypted",
    ),
    pytest.param(
        with_entry(CORE, method=12, payload=bz2.compress(FILES[CORE])),
        f"member '{CORE}': compression method 12 is not allowed",
        id="bzip2",
    ),
    pytest.param(
        with_entry(CORE, method=99, payload=b"\x01\x02" * 8),
        f"member '{CORE}': compression method 99 is not allowed",
        id="method-99",
    ),
    pytest.param(
        with_entry(CORE, method=STORED, compress_size=5),
        f"member '{CORE}': stored member with compressed size 5 != size 6",
        id="stored-sizes-differ",
    ),
    pytest.param(overlap, "member 'demo/b.py' overlaps the member before it", id="overlap"),
    pytest.param(
        with_entry(CORE, compress_size=1_000_000),
        f"member '{CORE}': data runs into the central directory (truncated archive?)",
        id="data-runs-into-cd",
    ),
    pytest.param(
        truncated("data"),
        "not a zip archive (no end of central directory record at its end)",
        id="truncated-in-data",
    ),
    pytest.param(
        truncated("cd"),
        "not a zip archive (no end of central directory record at its end)",
        id="truncated-in-cd",
    ),
    pytest.param(
        lambda: b"This is a text file, not a zip archive.\n" * 3,
        "not a zip archive (no end of central directory record at its end)",
        id="text-file",
    ),
    pytest.param(lambda: b"", "not a zip archive (0 bytes)", id="empty-file"),
]


# --- wheel rules ----------------------------------------------------------------------------


def impossible_ratio() -> bytes:
    """A tiny deflate stream declaring 64 MiB, consistently in both headers and RECORD."""
    name = "demo/huge.py"
    entries = base(files={**FILES, name: b"x" * 100})
    entries = edit_record(entries, r"(?<=^demo/huge\.py,)([^,]+),\d+$", rf"\1,{64 * MIB}")
    return build_zip(change(entries, name, file_size=64 * MIB))


def big_metadata() -> bytes:
    """METADATA of 16 MiB + 1 byte (a body of spaces), stored so the archive is quick to write."""
    head = META_TEXT.encode()
    data = head + b" " * (16 * MIB + 1 - len(head))
    return build_zip(change(base(metadata=data), METADATA, method=STORED))


def metadata_bomb() -> bytes:
    data = META_TEXT.encode() + b"\n" * 4096
    return build_zip(change(base(metadata=data), METADATA, file_size=len(data) - 100))


def line_break(char: str) -> pytest.ParameterSet:
    line = f"Summary: A demo{char}Requires-Dist: evil"
    text = META_TEXT.replace("Summary: A demo project", line)
    return pytest.param(
        with_metadata(text),
        (f"{METADATA} line {line!r}", f"contains the line-break or control character {char!r}"),
        id=f"metadata-line-break-{ord(char):x}",
    )


OTHER_HASH = b64(hashlib.sha256(b"something else").digest())
CORE_HASH = record_row(CORE, FILES[CORE])[1]


def with_entry_points(text: bytes) -> Build:
    return zipped(files={**FILES, f"{DIST}/entry_points.txt": text})


NOT_AN_ENTRY_POINT = (
    "is not an entry point of the form 'module:attr' (no installer can make a script of it)"
)
#: ``entry_points.txt`` that installers cannot make scripts of: the rules of entrypoints.py, which
#: ``wheelpatch-install`` applies too (tests/test_install_checks.py), checked by patch and verify.
ENTRY_POINT_CASES = [
    pytest.param(
        with_entry_points(b"[console_scripts]\nhello = hello:\n"),
        f"{DIST}/entry_points.txt: [console_scripts] hello = 'hello:' {NOT_AN_ENTRY_POINT}",
        id="entry-point-without-attr",
    ),
    pytest.param(
        with_entry_points(b"[gui_scripts]\nhello = demo.core\n"),
        f"{DIST}/entry_points.txt: [gui_scripts] hello = 'demo.core' {NOT_AN_ENTRY_POINT}",
        id="entry-point-module-only",
    ),
    pytest.param(
        with_entry_points(b"[console_scripts]\n../../bin/evil = demo.core:main\n"),
        f"{DIST}/entry_points.txt: [console_scripts] '../../bin/evil' is not a file name a "
        "script can have",
        id="entry-point-name-escapes",
    ),
    pytest.param(
        with_entry_points(b"[console_scripts]\nhello\n"),
        f"{DIST}/entry_points.txt: line 2: 'hello' in [console_scripts] is not "
        "'name = module:attr'",
        id="entry-point-without-value",
    ),
    pytest.param(
        with_entry_points(b"[console_scripts]\nh\xe9llo = a:b\n"),
        f"{DIST}/entry_points.txt: not UTF-8",
        id="entry-points-not-utf8",
    ),
]

WHEEL_CASES = [
    pytest.param(
        lambda: build_zip([Entry(name, data) for name, data in FILES.items()]),
        "a wheel has exactly one .dist-info directory (found none)",
        id="no-dist-info",
    ),
    pytest.param(
        zipped(files={**FILES, "other-1.0.dist-info/METADATA": b"Name: other\n"}),
        "a wheel has exactly one .dist-info directory (found 'demo-1.0.dist-info', "
        "'other-1.0.dist-info')",
        id="two-dist-info",
    ),
    pytest.param(
        zipped(dist_info="other-1.0.dist-info"),
        "'other-1.0.dist-info' names project 'other', the filename 'demo'",
        id="dist-info-name-differs",
    ),
    pytest.param(
        with_metadata(META_TEXT.replace("Name: demo", "Name: other")),
        "METADATA Name 'other' does not match the filename's 'demo'",
        id="metadata-name-differs",
    ),
    pytest.param(
        zipped(dist_info="demo-2.0.dist-info"),
        "'demo-2.0.dist-info' has version '2.0', the filename '1.0'",
        id="dist-info-version-differs",
    ),
    pytest.param(
        with_metadata(META_TEXT.replace("Version: 1.0", "Version: 2.0")),
        "METADATA Version '2.0' does not match the filename's '1.0'",
        id="metadata-version-differs",
    ),
    pytest.param(
        zipped(omit=[f"{DIST}/WHEEL"]), f"{DIST}/WHEEL is missing", id="wheel-file-missing"
    ),
    pytest.param(
        zipped(wheel=b"Wheel-Version: 2.0\nGenerator: x\nRoot-Is-Purelib: true\n"),
        f"{DIST}/WHEEL: Wheel-Version '2.0' is not 1.x",
        id="wheel-version-2",
    ),
    pytest.param(
        zipped(wheel=b"Generator: x\nRoot-Is-Purelib: true\n"),
        f"{DIST}/WHEEL must have exactly one Wheel-Version field",
        id="wheel-version-missing",
    ),
    pytest.param(zipped(omit=[RECORD]), f"{RECORD} is missing", id="record-missing"),
    pytest.param(
        with_record(core_row("path"), '"demo/core.py'),
        (f"{RECORD} ", "has a quoted field that spans lines"),
        id="record-unclosed-quote",
    ),
    pytest.param(
        with_record(core_row("path"), "demo/core.py,extra"),
        f"{RECORD} row 2 has 4 fields, not 3",
        id="record-four-fields",
    ),
    pytest.param(
        with_record(r"^demo/core\.py,.*\n", ""),
        f"member '{CORE}' is not listed in RECORD",
        id="member-not-in-record",
    ),
    pytest.param(
        with_record(r"^(?=demo/core\.py,)", f"demo/ghost.py,sha256={OTHER_HASH},14\n"),
        "RECORD lists 'demo/ghost.py', which is not in the wheel",
        id="record-row-for-missing-file",
    ),
    pytest.param(
        with_record(core_row("path"), "demo/../demo/core.py"),
        f"{RECORD} row 2 ('demo/../demo/core.py'): path leaves the wheel",
        id="record-path-dotdot",
    ),
    pytest.param(
        with_record(core_row("path"), "/demo/core.py"),
        f"{RECORD} row 2 ('/demo/core.py'): path must be relative",
        id="record-path-absolute",
    ),
    pytest.param(
        with_record(core_row("path"), "./demo/core.py"),
        f"{RECORD} row 2 ('./demo/core.py'): path must be relative, '/'-separated and not "
        "start with './'",
        id="record-path-dot-slash",
    ),
    pytest.param(
        with_record(core_row("path"), "C:/demo/core.py"),
        f"{RECORD} row 2 ('C:/demo/core.py'): path leaves the wheel",
        id="record-path-drive",
    ),
    pytest.param(
        with_record(core_row("hash"), "md5=" + b64(hashlib.md5(FILES[CORE]).digest())),
        (f"{RECORD} row 2 ('{CORE}'): hash 'md5=", "does not use an allowed algorithm"),
        id="record-md5",
    ),
    pytest.param(
        with_record(core_row("hash"), "sha1=" + b64(hashlib.sha1(FILES[CORE]).digest())),
        (f"{RECORD} row 2 ('{CORE}'): hash 'sha1=", "does not use an allowed algorithm"),
        id="record-sha1",
    ),
    pytest.param(
        with_record(core_row("hash"), "rot13=" + OTHER_HASH),
        (f"{RECORD} row 2 ('{CORE}'): hash 'rot13=", "does not use an allowed algorithm"),
        id="record-unknown-algorithm",
    ),
    pytest.param(
        with_record(core_row("hash"), CORE_HASH[:-2]),
        (f"{RECORD} row 2 ('{CORE}'): hash", "is not 43 characters of urlsafe base64"),
        id="record-hash-too-short",
    ),
    pytest.param(
        with_record(core_row("size"), "7"),
        f"RECORD gives '{CORE}' 7 bytes, the archive 6",
        id="record-wrong-size",
    ),
    pytest.param(
        with_metadata(META_TEXT.encode().replace(b"A demo", b"A d\xe9mo")),
        f"{METADATA} is not valid UTF-8 (byte",
        id="metadata-not-utf8",
    ),
    pytest.param(
        with_metadata(META_TEXT.replace("Version: 1.0\n", "Version: 1.0\nVersion: 1.0\n")),
        f"{METADATA} repeats the single-use field 'Version'",
        id="metadata-repeats-version",
    ),
    *(line_break(c) for c in "\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"),
    pytest.param(
        big_metadata,
        f"member '{METADATA}' is {16 * MIB + 1} bytes, over the {16 * MIB} byte cap",
        id="metadata-over-cap",
    ),
    pytest.param(
        impossible_ratio,
        "member 'demo/huge.py': declares 67108864 bytes from",
        id="impossible-compression-ratio",
    ),
    pytest.param(
        metadata_bomb,
        f"member '{METADATA}' inflates past its declared size",
        id="metadata-inflates-past-size",
    ),
    pytest.param(
        lambda: build_zip(change(base(), METADATA, crc=0x12345678)),
        (f"member '{METADATA}': CRC-32", "does not match the declared 12345678"),
        id="metadata-bad-crc",
    ),
    pytest.param(
        zipped(files={**FILES, "demo-1.0.data/evil/x.py": b"x = 1\n"}),
        "member 'demo-1.0.data/evil/x.py' is in unknown .data scheme 'evil'",
        id="unknown-data-scheme",
    ),
    *(
        pytest.param(
            zipped(extra_dist_info={name: b"pip\n"}),
            f"member {DIST}/{name} is written by installers and must not be inside a wheel",
            id=f"installer-file-{name}",
        )
        for name in ("INSTALLER", "REQUESTED", "direct_url.json")
    ),
]


# --- member data (only verify reads it: patch copies members as raw bytes) ------------------


def bomb() -> bytes:
    """1 MiB of zeros declaring 1000 bytes, consistently in both headers and RECORD."""
    name = "demo/bomb.py"
    entries = base(files={**FILES, name: bytes(MIB)})
    entries = edit_record(entries, r"(?<=^demo/bomb\.py,)([^,]+),\d+$", r"\1,1000")
    return build_zip(change(entries, name, file_size=1000))


def verify_member(**changes: Any) -> Build:
    """``demo/core.py`` changed; RECORD's size follows the size the headers declare."""

    def build() -> bytes:
        entries = change(base(), CORE, **changes)
        size = member(entries, CORE).sizes[1]
        return build_zip(edit_record(entries, core_row("size"), str(size)))

    return build


LONG = b"x = 2\n" * 200

VERIFY_CASES = [
    pytest.param(
        with_record(core_row("hash"), f"sha256={OTHER_HASH}"),
        f"member '{CORE}' does not match its RECORD hash",
        id="wrong-hash",
    ),
    pytest.param(
        verify_member(crc=0x12345678),
        (f"member '{CORE}': CRC-32", "does not match the declared 12345678"),
        id="wrong-crc",
    ),
    pytest.param(
        bomb, "member 'demo/bomb.py' inflates past its declared size 1000", id="inflates-past"
    ),
    pytest.param(
        verify_member(file_size=len(FILES[CORE]) + 5),
        f"member '{CORE}' holds 6 bytes, not the declared 11",
        id="inflates-short",
    ),
    pytest.param(
        verify_member(payload=b"\xff" * 16),
        f"member '{CORE}': corrupt deflate data",
        id="corrupt-deflate",
    ),
    pytest.param(
        verify_member(data=LONG, payload=deflate(LONG)[:-4]),
        f"member '{CORE}': deflate stream is truncated",
        id="truncated-deflate",
    ),
]

BOTH = ("patch", "verify")
ALL_CASES = [
    *((p, BOTH) for p in NAME_CASES + ZIP_CASES + WHEEL_CASES + ENTRY_POINT_CASES),
    *((p, ("verify",)) for p in VERIFY_CASES),
]


# --- the checks -----------------------------------------------------------------------------


def run(cli: Cli, command: str, wheel: Path, config: Path, out: Path) -> CliResult:
    argv = (
        ("patch", "--config", config, "-o", out, wheel) if command == "patch" else (command, wheel)
    )
    try:
        return cli(*argv)
    except Exception as exc:
        raise AssertionError(f"wheelpatch {command} crashed: {exc!r}") from exc


def check_refused(
    tmp_path: Path, cli: Cli, build: Build, fragment: Fragment, commands: Sequence[str]
) -> None:
    source = tmp_path / "in"
    source.mkdir()
    wheel = source / WHEEL
    data = build()
    wheel.write_bytes(data)
    config = tmp_path / "pyproject.toml"
    config.write_text(CONFIG, encoding="utf-8")
    out = tmp_path / "out"
    before = snapshot(tmp_path)
    fragments = (fragment,) if isinstance(fragment, str) else fragment
    for command in commands:
        result = run(cli, command, wheel, config, out)
        report = f"wheelpatch {command}: exit {result.code}, stderr {result.err!r}"
        assert "Traceback" not in result.err + result.out, report
        assert result.code == 1, report
        lines = result.err.splitlines()
        assert len(lines) == 1, report
        assert lines[0].startswith(f"error: {WHEEL}: "), report
        for piece in fragments:
            assert piece in lines[0], f"{report}; expected {piece!r}"
        assert snapshot(tmp_path) == before, f"wheelpatch {command} wrote or changed a file"
        assert wheel.read_bytes() == data
        assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize(("build", "fragment"), NAME_CASES)
def test_hostile_member_name(tmp_path: Path, cli: Cli, build: Build, fragment: Fragment) -> None:
    check_refused(tmp_path, cli, build, fragment, BOTH)


@pytest.mark.parametrize(("build", "fragment"), ZIP_CASES)
def test_broken_zip_structure(tmp_path: Path, cli: Cli, build: Build, fragment: Fragment) -> None:
    check_refused(tmp_path, cli, build, fragment, BOTH)


@pytest.mark.parametrize(("build", "fragment"), WHEEL_CASES)
def test_broken_wheel(tmp_path: Path, cli: Cli, build: Build, fragment: Fragment) -> None:
    check_refused(tmp_path, cli, build, fragment, BOTH)


@pytest.mark.parametrize(("build", "fragment"), ENTRY_POINT_CASES)
def test_bad_entry_points(tmp_path: Path, cli: Cli, build: Build, fragment: Fragment) -> None:
    check_refused(tmp_path, cli, build, fragment, BOTH)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(b"[pytest11]\nx = a.b\nx = a.c\n", id="duplicate-in-another-section"),
        pytest.param(b"[console_scripts]\nhello = a:b\nhello = c:d\n", id="duplicate-script"),
        pytest.param(b"hello = demo.core:main\n[x]\n", id="line-before-any-section"),
        pytest.param(b"[DEFAULT]\nfoo = bar\n", id="default-section"),
        pytest.param(b"\xef\xbb\xbf[console_scripts]\nhello = demo.core:main\n", id="bom"),
        pytest.param(b"[console_scripts]\na\\b = demo.core:main\n", id="backslash-in-name"),
        pytest.param(b"[other]\nnot even = a valid: entry point\n", id="other-section"),
    ],
)
def test_entry_points_that_pip_installs_are_accepted(tmp_path: Path, cli: Cli, text: bytes) -> None:
    """Only what every installer refuses is refused: pip installs these (installer cannot read
    some of them, which ``wheelpatch-install`` alone refuses, tests/test_install_checks.py)."""
    source = tmp_path / "in"
    source.mkdir()
    wheel = source / WHEEL
    wheel.write_bytes(with_entry_points(text)())
    config = tmp_path / "pyproject.toml"
    config.write_text(CONFIG, encoding="utf-8")
    for command in BOTH:
        result = run(cli, command, wheel, config, tmp_path / "out")
        assert (result.code, result.err) == (0, ""), (command, result.err)


@pytest.mark.parametrize(("build", "fragment"), VERIFY_CASES)
def test_broken_member_data_fails_verify(
    tmp_path: Path, cli: Cli, build: Build, fragment: Fragment
) -> None:
    """Wrong data in a member patch copies unread (by design): only verify decompresses it."""
    check_refused(tmp_path, cli, build, fragment, ("verify",))


def test_whole_table_leaves_no_temporary_file(tmp_path: Path, cli: Cli) -> None:
    """Every case in one tree and one output directory: no ``.tmp`` file anywhere after."""
    config = tmp_path / "pyproject.toml"
    config.write_text(CONFIG, encoding="utf-8")
    out = tmp_path / "out"
    codes: dict[str, list[int]] = {}
    for param, commands in ALL_CASES:
        build = param.values[0]
        assert callable(build)
        directory = tmp_path / "cases" / str(param.id)
        directory.mkdir(parents=True)
        wheel = directory / WHEEL
        wheel.write_bytes(build())
        codes[str(param.id)] = [run(cli, c, wheel, config, out).code for c in commands]
    assert list(tmp_path.rglob("*.tmp")) == []
    assert not out.exists() or not any(out.iterdir())
    assert {case: c for case, c in codes.items() if set(c) != {1}} == {}


# --- the baseline is valid ------------------------------------------------------------------


def test_baseline_is_a_valid_wheel(tmp_path: Path, cli: Cli) -> None:
    """Every case is one defect away from this: it must pass every check, and patch."""
    wheel = tmp_path / WHEEL
    wheel.write_bytes(build_zip(base()))
    source = read_wheel(wheel)
    assert source.dist_info == DIST
    assert [m.name for m in source.archive.members] == [*FILES, METADATA, f"{DIST}/WHEEL", RECORD]
    with zipfile.ZipFile(wheel) as archive:
        assert archive.testzip() is None
    result = cli("verify", wheel)
    assert (result.code, result.err) == (0, ""), result.err
    assert result.out == f"{WHEEL}: OK (5 files checked)\n"
    config = tmp_path / "pyproject.toml"
    config.write_text(CONFIG, encoding="utf-8")
    patched = cli("patch", "--config", config, "-o", tmp_path / "out", wheel)
    assert patched.code == 0, patched.err
    output = tmp_path / "out" / "demo-1.0+hostile.1-py3-none-any.whl"
    assert cli("verify", output).code == 0


VALID_VARIANTS = [
    pytest.param(lambda: build_zip(base(method=STORED)), id="stored"),
    pytest.param(
        lambda: build_zip([dataclasses.replace(e, data_descriptor=True) for e in base()]),
        id="data-descriptors",
    ),
    pytest.param(
        lambda: build_zip([dataclasses.replace(e, zip64=True) for e in base()], zip64=True),
        id="zip64",
    ),
    pytest.param(lambda: build_zip(base(), zip64=True, zip64_saturate=False), id="zip64-unforced"),
    pytest.param(
        lambda: build_zip(base(files={**FILES, "demo/caf\u00e9.py": b"c = 1\n"})),
        id="utf8-name",
    ),
    pytest.param(lambda: build_zip(base(), comment=b"an archive comment"), id="comment"),
    pytest.param(
        lambda: build_zip(
            [
                Entry("demo/", external_attr=(stat.S_IFDIR | 0o755) << 16 | 0x10, method=STORED),
                *base(),
            ]
        ),
        id="directory-entry",
    ),
]


@pytest.mark.parametrize("build", VALID_VARIANTS)
def test_valid_variants_are_accepted(tmp_path: Path, cli: Cli, build: Build) -> None:
    """What zipcraft writes without a defect is a wheel, in every layout the cases use."""
    data = build()
    wheel = tmp_path / WHEEL
    wheel.write_bytes(data)
    read_wheel(wheel)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.testzip() is None
    result = cli("verify", wheel)
    assert result.code == 0, result.err
