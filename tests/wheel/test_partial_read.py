"""Reading an archive of which only the end is real (``known_from``): the members from there on
are read exactly as in a full read, those before it are known from the central directory alone,
nothing before it is ever looked at, and what cannot be done without their bytes is refused."""

from __future__ import annotations

import dataclasses
import os
import random
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from wheelpatch import InvalidWheel
from wheelpatch.wheel.archive import (
    Archive,
    ArchiveWriter,
    directory_offset,
    iter_member_data,
    read_archive,
)
from wheelpatch.wheel.source_wheel import read_wheel

from ..zipcraft import STORED, Entry, build_zip, wheel_entries, wheel_filename

WHERE = wheel_filename()


def _noise(size: int) -> bytes:
    return random.Random(size).randbytes(size)


def _plain() -> bytes:
    return build_zip(wheel_entries())


def _descriptor() -> bytes:
    entries = wheel_entries(files={"demo/a.py": b"a = 1\n" * 30, "demo/b.py": b"b = 2\n"})
    return build_zip(
        [dataclasses.replace(e, data_descriptor=e.name == "demo/a.py") for e in entries]
    )


def _zip64() -> bytes:
    entries = [dataclasses.replace(e, zip64=True) for e in wheel_entries()]
    return build_zip(entries, zip64=True)


def _unicode_and_extras() -> bytes:
    files = {"demo/données.py": b"x = 1\n", "demo/body.bin": _noise(5000)}
    entries = [
        dataclasses.replace(e, local_extra=b"\x55\x54\x05\x00\x01\x00\x00\x00\x00")
        for e in wheel_entries(files=files, method=STORED)
    ]
    return build_zip(entries)


LAYOUTS = {
    "plain": _plain,
    "descriptor": _descriptor,
    "zip64": _zip64,
    "unicode-and-local-extras": _unicode_and_extras,
}


@contextmanager
def _opened(path: Path, data: bytes) -> Iterator[int]:
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY)
    try:
        yield fd
    finally:
        os.close(fd)


def _cuts(archive: Archive, cd_offset: int) -> list[int]:
    """Every member boundary, one byte either side of it, and the middle of every member."""
    cuts = {0, cd_offset}
    for member in archive.members:
        start, end = member.header_offset, member.span_end
        cuts.update({start, start + 1, max(0, start - 1), (start + end) // 2})
    return sorted(c for c in cuts if c <= cd_offset)


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_partial_read_agrees_with_the_full_read_at_every_cut(layout: str, tmp_path: Path) -> None:
    data = LAYOUTS[layout]()
    with _opened(tmp_path / WHERE, data) as fd:
        full = read_archive(fd, WHERE)
        cd_offset = directory_offset(fd, WHERE)
    ordered = sorted(full.members, key=lambda m: m.header_offset)
    for member, following in zip(ordered, [*ordered[1:], None], strict=True):
        assert member.span_end == (cd_offset if following is None else following.header_offset)
    for cut in _cuts(full, cd_offset):
        # The bytes before the cut are zeros, as in a sparse file: none of them is looked at.
        with _opened(tmp_path / WHERE, bytes(cut) + data[cut:]) as fd:
            partial = read_archive(fd, WHERE, known_from=cut)
        assert partial.comment == full.comment
        assert partial.size == full.size
        for got, want in zip(partial.members, full.members, strict=True):
            if want.header_offset >= cut:
                assert got == want
            else:
                assert got == want._replace(data_offset=-1, local_extra=b"")
                assert not got.header_read


def test_known_from_after_the_central_directory_is_refused(tmp_path: Path) -> None:
    data = _plain()
    with _opened(tmp_path / WHERE, data) as fd:
        cd_offset = directory_offset(fd, WHERE)
        with pytest.raises(InvalidWheel, match=rf"central directory at offset {cd_offset} lies "):
            read_archive(fd, WHERE, known_from=cd_offset + 1)
        with pytest.raises(ValueError, match="outside the archive"):
            read_archive(fd, WHERE, known_from=len(data) + 1)


def test_end_records_before_known_from_are_refused(tmp_path: Path) -> None:
    data = _plain()
    with (
        _opened(tmp_path / WHERE, data) as fd,
        pytest.raises(InvalidWheel, match="no end of central directory record"),
    ):
        directory_offset(fd, WHERE, known_from=len(data) - 5)


def test_overlap_before_known_from_is_refused(tmp_path: Path) -> None:
    entries = wheel_entries(files={"demo/a.bin": _noise(3000), "demo/b.bin": b""}, method=STORED)
    entries = [
        dataclasses.replace(e, skip_local=True, header_offset=0) if e.name == "demo/b.bin" else e
        for e in entries
    ]
    data = build_zip(entries)
    with _opened(tmp_path / WHERE, data) as fd:
        with pytest.raises(InvalidWheel, match="overlaps"):
            read_archive(fd, WHERE)
        with pytest.raises(InvalidWheel, match="overlapping members"):
            read_archive(fd, WHERE, known_from=2000)


def test_data_before_the_first_member_is_refused_in_a_partial_read(tmp_path: Path) -> None:
    data = build_zip(wheel_entries(), prefix=b"#!/bin/sh\n")
    with (
        _opened(tmp_path / WHERE, data) as fd,
        pytest.raises(InvalidWheel, match="10 unexplained bytes at offset 0"),
    ):
        read_archive(fd, WHERE, known_from=20)


def test_unread_members_are_counted_but_never_read_or_copied(tmp_path: Path) -> None:
    entries = wheel_entries(files={"demo/a.py": b"a = 1\n", "demo/b.py": b"b = 2\n"})
    entries.insert(1, Entry("demo/c.py", b"c = 3\n", data_descriptor=True))
    data = build_zip(entries)
    with _opened(tmp_path / WHERE, data) as fd:
        archive = read_archive(fd, WHERE, known_from=directory_offset(fd, WHERE))
        plain, described = archive.members[0], archive.members[1]
        assert not plain.header_read
        assert not described.header_read
        with pytest.raises(InvalidWheel, match=r"'demo/a.py' at offset 0 lies before the part"):
            b"".join(iter_member_data(fd, plain, WHERE))

        counting = ArchiveWriter(None, where=WHERE)
        counting.copy(-1, plain)
        assert counting.size == plain.span_end - plain.header_offset
        with pytest.raises(InvalidWheel, match="cannot be renamed"):
            counting.copy(-1, plain, "demo/z.py")
        with pytest.raises(InvalidWheel, match="cannot be copied without its data descriptor"):
            counting.copy(-1, described)
        with pytest.raises(InvalidWheel, match="local extra fields are not known"):
            counting.add(plain, "demo/new.py", b"")

        with open(tmp_path / "out.zip", "wb") as out:
            writing = ArchiveWriter(out.fileno(), where=WHERE)
            with pytest.raises(InvalidWheel, match="can be counted but not copied"):
                writing.copy(fd, plain)


def test_read_wheel_needs_its_dist_info_files_in_the_part_read(tmp_path: Path) -> None:
    path = tmp_path / WHERE
    path.write_bytes(_plain())
    full = read_wheel(path)
    metadata = full.member(full.metadata_path)
    cut = metadata.header_offset + 1
    path.write_bytes(bytes(cut) + _plain()[cut:])
    with pytest.raises(
        InvalidWheel,
        match=rf"^{WHERE}: demo-1\.0\.dist-info/METADATA at offset {metadata.header_offset} lies "
        rf"before offset {cut}, ",
    ):
        read_wheel(path, known_from=cut)
    cut = metadata.header_offset
    path.write_bytes(bytes(cut) + _plain()[cut:])
    partial = read_wheel(path, known_from=cut)
    assert partial.metadata_bytes == full.metadata_bytes
    assert partial.record == full.record
