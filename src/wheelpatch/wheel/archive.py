"""Reading a zip archive's directory strictly, and writing one from raw compressed members.

Python's :mod:`zipfile` can neither copy a member's compressed bytes as they are nor refuse the
archives that installers disagree about, so wheelpatch reads the structure itself: the end record
(and its ZIP64 form), every central directory entry, and every local header, which must agree with
the central directory. Member data is never decompressed here except on request.

A *partial* read (``known_from``) serves a wheel of which only the end was fetched over HTTP: the
members before ``known_from`` are known from the central directory alone, without their local
headers, so they can be counted but neither read nor copied.

:class:`ArchiveWriter` writes a new archive whose unchanged members are byte ranges of the source,
copied in the kernel (``copy_file_range``) where the platform allows, coalesced into runs.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

from ..errors import InvalidWheel

__all__ = [
    "DEFLATED",
    "MAX_RATIO",
    "MAX_TOTAL_SIZE",
    "MAX_VERSION_NEEDED",
    "STORED",
    "Archive",
    "ArchiveWriter",
    "Deflating",
    "InPlaceError",
    "ZipMember",
    "copy_range",
    "directory_offset",
    "iter_member_data",
    "read_archive",
    "read_member",
]

STORED = 0
DEFLATED = 8

_LOCAL = struct.Struct("<4sHHHHHIIIHH")
_CENTRAL = struct.Struct("<4sHHHHHHIIIHHHHHII")
_EOCD = struct.Struct("<4sHHHHIIH")
_EOCD64_LOCATOR = struct.Struct("<4sIQI")
_EOCD64 = struct.Struct("<4sQHHIIQQQQ")
_LOCAL_SIG = b"PK\x03\x04"
_CENTRAL_SIG = b"PK\x01\x02"
_EOCD_SIG = b"PK\x05\x06"
_EOCD64_LOCATOR_SIG = b"PK\x06\x07"
_EOCD64_SIG = b"PK\x06\x06"
_DESCRIPTOR_SIG = b"PK\x07\x08"
_ZIP64_EXTRA = 0x0001
_MAX32 = 0xFFFFFFFF
_MAX16 = 0xFFFF
_FLAG_ENCRYPTED = 0x0001
_FLAG_DESCRIPTOR = 0x0008
_FLAG_UTF8 = 0x0800
_CHUNK = 1 << 20
#: Deflate cannot expand more than about 1032:1; a member declaring more is lying.
MAX_RATIO = 1100
#: The highest "version needed to extract" (its low byte, as APPNOTE 6.3 numbers it) that
#: Python's zipfile, and so pip and installer, will read a member of.
MAX_VERSION_NEEDED = 63
#: All members together may declare at most this much uncompressed data.
MAX_TOTAL_SIZE = 64 << 30
#: How much of the file one read of local headers covers.
_WINDOW = 256 << 10


class ZipMember(NamedTuple):
    """One member as the central directory describes it, with where its data starts.

    A named tuple rather than a dataclass: wheels have tens of thousands of members, and this is
    built once per member on every run.

    A member before ``known_from`` of a partial read has ``data_offset`` -1 and no
    ``local_extra`` (its local header was not read: see :attr:`header_read`).
    """

    name: str
    flags: int
    method: int
    mod_time: int
    mod_date: int
    crc32: int
    compress_size: int
    file_size: int
    header_offset: int
    data_offset: int
    version_made_by: int
    version_needed: int
    internal_attr: int
    external_attr: int
    #: Central directory extra fields without the ZIP64 block (rewritten on output).
    extra: bytes
    #: Local header extra fields without the ZIP64 block.
    local_extra: bytes
    comment: bytes
    #: The central directory entry as read, when it has no ZIP64 block: a copy of the member
    #: reuses it with only the offset changed.
    central: bytes = b""
    #: Where the member's bytes end in the archive, data descriptor included: the next member's
    #: header offset, or the central directory's offset after the last member.
    span_end: int = -1

    @property
    def is_dir(self) -> bool:
        return self.name.endswith("/")

    @property
    def header_read(self) -> bool:
        """Whether the local header was read (not so before ``known_from`` of a partial read)."""
        return self.data_offset >= 0

    @property
    def end_offset(self) -> int:
        """Where this member's compressed data ends in the archive."""
        return self.data_offset + self.compress_size

    @property
    def has_descriptor(self) -> bool:
        return bool(self.flags & _FLAG_DESCRIPTOR)


@dataclass(frozen=True, slots=True)
class Archive:
    """An archive's members in central directory order, and the archive comment."""

    members: tuple[ZipMember, ...]
    comment: bytes
    size: int


def _split_extra(extra: bytes, where: str) -> list[tuple[int, bytes]]:
    blocks: list[tuple[int, bytes]] = []
    pos = 0
    while pos < len(extra):
        if pos + 4 > len(extra):
            raise InvalidWheel(f"{where}: truncated extra field")
        tag, size = struct.unpack_from("<HH", extra, pos)
        end = pos + 4 + size
        if end > len(extra):
            raise InvalidWheel(f"{where}: extra field 0x{tag:04x} runs past its end")
        blocks.append((tag, extra[pos + 4 : end]))
        pos = end
    return blocks


def _join_extra(blocks: list[tuple[int, bytes]]) -> bytes:
    return b"".join(struct.pack("<HH", tag, len(data)) + data for tag, data in blocks)


def _find_eocd(fd: int, size: int, where: str, known_from: int) -> tuple[int, bytes]:
    """Return the end record's offset and bytes; its comment must end the file exactly."""
    tail_len = min(size - known_from, _EOCD.size + _MAX16)
    tail = os.pread(fd, tail_len, size - tail_len)
    pos = tail.rfind(_EOCD_SIG)
    trailing: int | None = None
    while pos >= 0:
        if pos + _EOCD.size <= len(tail):
            (comment_len,) = struct.unpack_from("<H", tail, pos + 20)
            end = pos + _EOCD.size + comment_len
            if end == len(tail):
                if _EOCD_SIG in tail[pos + _EOCD.size :] or _another_eocd(tail, pos):
                    raise InvalidWheel(
                        f"{where}: more than one end of central directory record "
                        "(one hides in the archive comment)"
                    )
                return size - tail_len + pos, tail[pos:]
            if end < len(tail) and trailing is None:
                trailing = len(tail) - end
        pos = tail.rfind(_EOCD_SIG, 0, pos)
    if trailing is not None:
        raise InvalidWheel(f"{where}: {trailing} bytes of trailing data after the end record")
    raise InvalidWheel(
        f"{where}: not a zip archive (no end of central directory record at its end)"
    )


def _another_eocd(tail: bytes, before: int) -> bool:
    """Whether an earlier end record's comment also reaches the end of the file exactly."""
    pos = tail.rfind(_EOCD_SIG, 0, before)
    while pos >= 0:
        if pos + _EOCD.size <= len(tail):
            (comment_len,) = struct.unpack_from("<H", tail, pos + 20)
            if pos + _EOCD.size + comment_len == len(tail):
                return True
        pos = tail.rfind(_EOCD_SIG, 0, pos)
    return False


def _decode_name(raw: bytes, flags: int, where: str) -> str:
    if flags & _FLAG_UTF8:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidWheel(
                f"{where}: member name {raw!r} is flagged UTF-8 but is not"
            ) from None
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError:
        raise InvalidWheel(
            f"{where}: member name {raw!r} is not ASCII and lacks the UTF-8 flag "
            "(zip readers would decode it differently)"
        ) from None


class _Directory(NamedTuple):
    """Where the central directory is, as the end records say."""

    entries: int
    size: int
    offset: int
    comment: bytes


def _check_known_from(size: int, known_from: int) -> None:
    if not 0 <= known_from <= size:
        raise ValueError(f"known_from {known_from} is outside the archive's {size} bytes")


def _before_known(where: str, what: str, offset: int, known_from: int) -> InvalidWheel:
    return InvalidWheel(
        f"{where}: {what} at offset {offset} lies before offset {known_from}, where the part of "
        "the archive that was read begins"
    )


def directory_offset(fd: int, where: str, *, known_from: int = 0) -> int:
    """Where the central directory of the archive open as ``fd`` starts, from its end records
    alone (checked as :func:`read_archive` checks them), which must lie at or after
    ``known_from``; the central directory itself may start before it.

    A reader fetching the end of a remote archive learns from this how much more to fetch before
    :func:`read_archive` can read the whole central directory."""
    size = os.fstat(fd).st_size
    _check_known_from(size, known_from)
    return _locate_directory(fd, size, where, known_from).offset


def read_archive(fd: int, where: str, *, known_from: int = 0) -> Archive:
    """Read and cross-check the directory of the zip archive open as ``fd``.

    ``where`` (the wheel's file name) starts every error message. Refused: anything that is not a
    single-disk zip, trailing data after the end record, data before the first member, ZIP64 records
    that disagree with the end record, encrypted members, compression other than stored or deflate,
    data descriptors whose sizes the local header hides, duplicate names, local headers that
    disagree with the central directory, and overlapping members.

    With ``known_from``, only the bytes from that offset to the end are real (the rest may be a
    hole of zeros): the end records and the central directory must lie there, local headers are
    read only for the members that start there, and the members tile the archive from the first of
    those on. A member before it is known from the central directory alone: its ``data_offset`` is
    -1, its ``span_end`` the next member's header offset (which must leave room for its local
    header and data), and reading or copying it raises :class:`InvalidWheel`.
    """
    size = os.fstat(fd).st_size
    _check_known_from(size, known_from)
    directory = _locate_directory(fd, size, where, known_from)
    if directory.offset < known_from:
        raise _before_known(where, "the central directory", directory.offset, known_from)
    cd = os.pread(fd, directory.size, directory.offset)
    members = _parse_central(fd, cd, directory.entries, directory.offset, where, known_from)
    total = sum(m.file_size for m in members)
    if total > MAX_TOTAL_SIZE:
        raise InvalidWheel(
            f"{where}: members declare {total} bytes uncompressed, over the "
            f"{MAX_TOTAL_SIZE >> 30} GiB cap"
        )
    return Archive(members=members, comment=directory.comment, size=size)


def _locate_directory(fd: int, size: int, where: str, known_from: int) -> _Directory:
    """Read and check the end record and its ZIP64 form."""
    if size < _EOCD.size:
        raise InvalidWheel(f"{where}: not a zip archive ({size} bytes)")
    eocd_offset, eocd = _find_eocd(fd, size, where, known_from)
    _, disk, cd_disk, n_disk, count, cd_size, cd_offset, comment_len = _EOCD.unpack_from(eocd)
    comment = eocd[_EOCD.size : _EOCD.size + comment_len]
    if disk != 0 or cd_disk != 0 or n_disk != count:
        raise InvalidWheel(f"{where}: multi-disk zip archives are not supported")
    cd_end = eocd_offset
    zip64_needed = count == _MAX16 or cd_size == _MAX32 or cd_offset == _MAX32
    loc_offset = eocd_offset - _EOCD64_LOCATOR.size
    if 0 <= loc_offset < known_from:
        raise _before_known(where, "the ZIP64 end record locator's place", loc_offset, known_from)
    if loc_offset >= 0 and os.pread(fd, 4, loc_offset) == _EOCD64_LOCATOR_SIG:
        _, loc_disk, eocd64_offset, disks = _EOCD64_LOCATOR.unpack(
            os.pread(fd, _EOCD64_LOCATOR.size, loc_offset)
        )
        if loc_disk != 0 or disks != 1:
            raise InvalidWheel(f"{where}: multi-disk zip archives are not supported")
        if eocd64_offset + _EOCD64.size > loc_offset:
            raise InvalidWheel(f"{where}: ZIP64 end record offset {eocd64_offset} is out of place")
        if eocd64_offset < known_from:
            raise _before_known(where, "the ZIP64 end record", eocd64_offset, known_from)
        rec = os.pread(fd, _EOCD64.size, eocd64_offset)
        sig, rec_size, _, _, disk64, cd_disk64, n_disk64, count64, cd_size64, cd_offset64 = (
            _EOCD64.unpack(rec)
        )
        if sig != _EOCD64_SIG or rec_size < _EOCD64.size - 12:
            raise InvalidWheel(f"{where}: malformed ZIP64 end of central directory record")
        if eocd64_offset + 12 + rec_size != loc_offset:
            raise InvalidWheel(
                f"{where}: unexpected bytes between the ZIP64 end record and locator"
            )
        if disk64 != 0 or cd_disk64 != 0 or n_disk64 != count64:
            raise InvalidWheel(f"{where}: multi-disk zip archives are not supported")
        for label, small, big, limit in (
            ("entry count", count, count64, _MAX16),
            ("central directory size", cd_size, cd_size64, _MAX32),
            ("central directory offset", cd_offset, cd_offset64, _MAX32),
        ):
            if small != limit and small != big:
                raise InvalidWheel(
                    f"{where}: the end record's {label} ({small}) disagrees with ZIP64's ({big})"
                )
        count, cd_size, cd_offset = count64, cd_size64, cd_offset64
        cd_end = eocd64_offset
    elif zip64_needed and count == _MAX16 and cd_size == _MAX32:
        raise InvalidWheel(f"{where}: end record points to a ZIP64 record that is missing")
    if cd_offset + cd_size != cd_end:
        hint = ""
        if cd_offset + cd_size < cd_end:
            hint = f"; {cd_end - cd_offset - cd_size} bytes were prepended to the archive?"
        raise InvalidWheel(
            f"{where}: central directory at {cd_offset} of {cd_size} bytes does not end where the "
            f"end record starts ({cd_end}){hint}"
        )
    if cd_size > 256 << 20:
        raise InvalidWheel(f"{where}: central directory of {cd_size} bytes is over the 256 MiB cap")
    return _Directory(count, cd_size, cd_offset, comment)


class _Central(NamedTuple):
    """A central directory entry before its local header is read. Its fields are those of
    :class:`ZipMember` in the same order, less the ones the local header gives: a member is made
    of slices of it (see :func:`_member`), which matters at tens of thousands of members."""

    name: str
    flags: int
    method: int
    mod_time: int
    mod_date: int
    crc32: int
    compress_size: int
    file_size: int
    header_offset: int
    version_made_by: int
    version_needed: int
    internal_attr: int
    external_attr: int
    extra: bytes
    comment: bytes
    central: bytes
    raw_name: bytes


def _member_where(where: str, name: str) -> str:
    return f"{where}: member {name!r}"


def _parse_central(
    fd: int, cd: bytes, count: int, cd_offset: int, where: str, known_from: int
) -> tuple[ZipMember, ...]:
    entries: list[_Central] = []
    seen: set[str] = set()
    pos = 0
    unpack = _CENTRAL.unpack_from
    new_central = tuple.__new__  # the named tuple without the call of its __new__
    header_size = _CENTRAL.size
    for index in range(count):
        if pos + header_size > len(cd):
            raise InvalidWheel(f"{where}: central directory holds fewer entries than announced")
        (
            sig,
            made_by,
            needed,
            flags,
            method,
            mtime,
            mdate,
            crc,
            csize,
            usize,
            nlen,
            elen,
            clen,
            disk,
            iattr,
            eattr,
            offset,
        ) = unpack(cd, pos)
        if sig != _CENTRAL_SIG:
            raise InvalidWheel(f"{where}: bad central directory entry signature at entry {index}")
        name_end = pos + header_size + nlen
        end = name_end + elen + clen
        if end > len(cd):
            raise InvalidWheel(f"{where}: central directory entry {index} runs past its end")
        raw_name = cd[pos + header_size : name_end]
        try:
            name = raw_name.decode("utf-8" if flags & _FLAG_UTF8 else "ascii")
        except UnicodeDecodeError:
            name = _decode_name(raw_name, flags, where)  # raises, saying which rule it broke
        extra = cd[name_end : name_end + elen] if elen else b""
        comment = cd[name_end + elen : end] if clen else b""
        central = cd[pos:end]
        pos = end
        if extra:
            blocks = _split_extra(extra, _member_where(where, name))
            zip64 = [data for tag, data in blocks if tag == _ZIP64_EXTRA]
            if len(zip64) > 1:
                raise InvalidWheel(f"{_member_where(where, name)}: more than one ZIP64 extra field")
            if zip64:
                usize, csize, offset, disk = _apply_zip64(
                    zip64[0], usize, csize, offset, disk, _member_where(where, name)
                )
                extra = _join_extra([b for b in blocks if b[0] != _ZIP64_EXTRA])
                central = b""
            elif _MAX32 in (usize, csize, offset):
                raise InvalidWheel(
                    f"{_member_where(where, name)}: sizes need a ZIP64 extra field that is missing"
                )
        elif _MAX32 in (usize, csize, offset):
            raise InvalidWheel(
                f"{_member_where(where, name)}: sizes need a ZIP64 extra field that is missing"
            )
        if (
            disk != 0
            or flags & _FLAG_ENCRYPTED
            or needed & 0xFF > MAX_VERSION_NEEDED
            or (usize > csize * MAX_RATIO + 4096 if method == DEFLATED else method != STORED)
            or (method == STORED and csize != usize)
        ):
            _refuse_entry(_member_where(where, name), disk, flags, needed, method, csize, usize)
        if name in seen:
            raise InvalidWheel(f"{_member_where(where, name)}: duplicate name in the archive")
        seen.add(name)
        entries.append(
            new_central(
                _Central,
                (
                    name,
                    flags,
                    method,
                    mtime,
                    mdate,
                    crc,
                    csize,
                    usize,
                    offset,
                    made_by,
                    needed,
                    iattr,
                    eattr,
                    extra,
                    comment,
                    central,
                    raw_name,
                ),
            )
        )
    if pos != len(cd):
        raise InvalidWheel(
            f"{where}: central directory holds more than the {count} entries the end record "
            "announces"
        )
    return _read_locals(fd, entries, cd_offset, where, known_from)


def _refuse_entry(
    where: str, disk: int, flags: int, needed: int, method: int, csize: int, usize: int
) -> None:
    """Raise the error for a central directory entry the quick check found wrong."""
    if disk != 0:
        raise InvalidWheel(f"{where}: multi-disk zip archives are not supported")
    if flags & _FLAG_ENCRYPTED:
        raise InvalidWheel(f"{where}: encrypted members are not allowed in a wheel")
    if needed & 0xFF > MAX_VERSION_NEEDED:
        version = needed & 0xFF
        raise InvalidWheel(
            f"{where}: needs version {version // 10}.{version % 10} of the zip format to be "
            f"extracted; Python's zipfile (pip, installer) reads none past "
            f"{MAX_VERSION_NEEDED // 10}.{MAX_VERSION_NEEDED % 10}"
        )
    if method != DEFLATED and method != STORED:
        raise InvalidWheel(
            f"{where}: compression method {method} is not allowed "
            "(a wheel may use only stored (0) or deflate (8))"
        )
    if method == STORED:
        raise InvalidWheel(f"{where}: stored member with compressed size {csize} != size {usize}")
    raise InvalidWheel(
        f"{where}: declares {usize} bytes from {csize} compressed, "
        f"more than deflate can produce (a zip bomb's lie; the cap is {MAX_RATIO}:1)"
    )


def _read_locals(
    fd: int, entries: list[_Central], cd_offset: int, where: str, known_from: int
) -> tuple[ZipMember, ...]:
    """Check every local header against its central entry, in file order, and check that the
    members tile the archive from offset 0 to the central directory: no gap can hide a local
    header the central directory does not list, and no two members may overlap.

    Members starting before ``known_from`` are not read: each must start where the one before it
    leaves room for (the first at 0), and the tiling is checked from the first member after them.

    Headers are read through a window of the file, so a wheel of many small members costs a
    few reads, not one per member."""
    members: list[ZipMember | None] = [None] * len(entries)
    order = sorted(range(len(entries)), key=lambda i: entries[i].header_offset)
    window = b""
    window_start = 0
    position = 0
    local_size = _LOCAL.size
    unread: int | None = None  # the last member before known_from, until the next one's offset
    for index in order:
        entry = entries[index]
        offset = entry.header_offset
        if unread is not None:
            members[unread] = _unread_member(entries[unread], offset, where)
            unread = None
            position = offset
        if offset < known_from:
            if offset != position:
                raise InvalidWheel(
                    f"{where}: {offset - position} unexplained bytes at offset {position}, before "
                    f"member {entry.name!r} (data the central directory does not list)"
                )
            unread = index
            continue
        if offset + local_size > cd_offset:
            raise InvalidWheel(
                f"{_member_where(where, entry.name)}: local header offset {offset} is out of range"
            )
        if offset != position:
            if offset < position:
                raise InvalidWheel(
                    f"{_member_where(where, entry.name)} overlaps the member before it"
                )
            raise InvalidWheel(
                f"{where}: {offset - position} unexplained bytes at offset {position}, before "
                f"member {entry.name!r} (data the central directory does not list)"
            )
        rel = offset - window_start
        if rel < 0 or rel + local_size + len(entry.raw_name) + 64 > len(window):
            window = os.pread(fd, max(_WINDOW, local_size + len(entry.raw_name) + 64), offset)
            window_start, rel = offset, 0
        if offset + local_size > cd_offset or rel + local_size > len(window):
            raise InvalidWheel(
                f"{_member_where(where, entry.name)}: local header offset {offset} is out of range"
            )
        sig, _, flags, method, _, _, crc, csize, usize, nlen, elen = _LOCAL.unpack_from(window, rel)
        if sig != _LOCAL_SIG:
            raise InvalidWheel(
                f"{_member_where(where, entry.name)}: no local header at offset {offset}"
            )
        header_end = rel + local_size + nlen + elen
        if header_end > len(window):
            window = os.pread(fd, max(_WINDOW, local_size + nlen + elen), offset)
            window_start, rel = offset, 0
            header_end = local_size + nlen + elen
            if header_end > len(window):
                raise InvalidWheel(f"{_member_where(where, entry.name)}: truncated local header")
        local_name = window[rel + local_size : rel + local_size + nlen]
        if local_name != entry.raw_name:
            raise InvalidWheel(
                f"{_member_where(where, entry.name)}: local header names {local_name!r}, "
                f"the central directory {entry.raw_name!r}"
            )
        if method != entry.method or (flags ^ entry.flags) & (_FLAG_ENCRYPTED | _FLAG_DESCRIPTOR):
            raise InvalidWheel(
                f"{_member_where(where, entry.name)}: local header and central directory "
                "disagree on compression or flags"
            )
        local_extra = window[rel + local_size + nlen : header_end]
        if local_extra:
            blocks = _split_extra(local_extra, _member_where(where, entry.name))
            zip64 = [data for tag, data in blocks if tag == _ZIP64_EXTRA]
            if zip64:
                local_extra = _join_extra([b for b in blocks if b[0] != _ZIP64_EXTRA])
                if _MAX32 in (usize, csize) and not flags & _FLAG_DESCRIPTOR:
                    if len(zip64[0]) < 16:
                        raise InvalidWheel(
                            f"{_member_where(where, entry.name)}: local ZIP64 extra field is "
                            "too short"
                        )
                    usize, csize = struct.unpack_from("<QQ", zip64[0])
        if not flags & _FLAG_DESCRIPTOR and (crc, csize, usize) != (
            entry.crc32,
            entry.compress_size,
            entry.file_size,
        ):
            raise InvalidWheel(
                f"{_member_where(where, entry.name)}: local header (crc {crc:08x}, "
                f"{csize}/{usize} bytes) disagrees with the central directory (crc "
                f"{entry.crc32:08x}, {entry.compress_size}/{entry.file_size} bytes)"
            )
        data_offset = offset + local_size + nlen + elen
        if data_offset + entry.compress_size > cd_offset:
            raise InvalidWheel(
                f"{_member_where(where, entry.name)}: data runs into the central directory "
                "(truncated archive?)"
            )
        position = data_offset + entry.compress_size
        if flags & _FLAG_DESCRIPTOR:
            position += _descriptor_length(fd, entry, position, where)
        members[index] = _member(entry, data_offset, local_extra, position)
    if unread is not None:
        members[unread] = _unread_member(entries[unread], cd_offset, where)
        position = cd_offset
    if position != cd_offset:
        raise InvalidWheel(
            f"{where}: {cd_offset - position} unexplained bytes at offset {position}, before the "
            "central directory (data the central directory does not list)"
        )
    return tuple(m for m in members if m is not None)


def _member(entry: _Central, data_offset: int, local_extra: bytes, span_end: int) -> ZipMember:
    # name .. header_offset, data_offset, version_made_by .. extra, local_extra, comment,
    # central, span_end: ZipMember's fields in order.
    return tuple.__new__(
        ZipMember,
        (*entry[:9], data_offset, *entry[9:14], local_extra, entry[14], entry[15], span_end),
    )


def _unread_member(entry: _Central, span_end: int, where: str) -> ZipMember:
    """A member before ``known_from``, which must fit before ``span_end`` (the next member's
    offset): a local header with its name, its data and its data descriptor, if it has one."""
    least = _LOCAL.size + len(entry.raw_name) + entry.compress_size
    if entry.flags & _FLAG_DESCRIPTOR:
        least += 12
    if span_end - entry.header_offset < least:
        raise InvalidWheel(
            f"{_member_where(where, entry.name)} at offset {entry.header_offset} needs at least "
            f"{least} bytes, but what follows it starts at {span_end} (overlapping members)"
        )
    return _member(entry, -1, b"", span_end)


def _apply_zip64(
    data: bytes, usize: int, csize: int, offset: int, disk: int, where: str
) -> tuple[int, int, int, int]:
    fields = [usize == _MAX32, csize == _MAX32, offset == _MAX32]
    need = sum(fields) * 8 + (4 if disk == _MAX16 else 0)
    if len(data) < need:
        raise InvalidWheel(f"{where}: ZIP64 extra field is too short")
    values = [usize, csize, offset]
    pos = 0
    for index, present in enumerate(fields):
        if present:
            (values[index],) = struct.unpack_from("<Q", data, pos)
            pos += 8
    if disk == _MAX16:
        (disk,) = struct.unpack_from("<I", data, pos)
    return values[0], values[1], values[2], disk


def _descriptor_length(fd: int, entry: _Central, data_end: int, where: str) -> int:
    """Length of the data descriptor at ``data_end``, after ``entry``'s data, checked against the
    directory."""
    block = os.pread(fd, 24, data_end)
    body = block[4:] if block[:4] == _DESCRIPTOR_SIG else block
    skip = len(block) - len(body)
    for size_format, length in (("<III", 12), ("<IQQ", 20)):
        if len(body) >= length:
            crc, csize, usize = struct.unpack_from(size_format, body)
            if (crc, csize, usize) == (entry.crc32, entry.compress_size, entry.file_size):
                return skip + length
    raise InvalidWheel(
        f"{where}: member {entry.name!r}: data descriptor disagrees with the central directory"
    )


def read_member(fd: int, member: ZipMember, where: str, limit: int) -> bytes:
    """Return a member's uncompressed bytes, checking its CRC; refuse members over ``limit``."""
    if member.file_size > limit:
        raise InvalidWheel(
            f"{where}: member {member.name!r} is {member.file_size} bytes, "
            f"over the {limit} byte cap"
        )
    return b"".join(iter_member_data(fd, member, where))


def iter_member_data(fd: int, member: ZipMember, where: str) -> Iterator[bytes]:
    """Yield a member's uncompressed bytes in pieces of at most 1 MiB; the size and CRC are
    checked as it goes and at the end. Memory stays bounded whatever the member declares."""
    if not member.header_read:
        raise _unread_error(where, member, "its data cannot be read")
    inflater = zlib.decompressobj(-15) if member.method == DEFLATED else None
    crc = 0
    produced = 0
    pos = member.data_offset
    end = member.end_offset
    limit = member.file_size
    try:
        while pos < end:
            raw = os.pread(fd, min(_CHUNK, end - pos), pos)
            if not raw:
                raise InvalidWheel(f"{where}: member {member.name!r} is truncated")
            pos += len(raw)
            while raw:
                if inflater is None:
                    piece, raw = raw, b""
                else:
                    # One byte past what is declared is enough to know it lies.
                    piece = inflater.decompress(raw, min(_CHUNK, limit - produced + 1))
                    raw = inflater.unconsumed_tail
                produced += len(piece)
                if produced > limit:
                    raise InvalidWheel(
                        f"{where}: member {member.name!r} inflates past its declared size "
                        f"{member.file_size}"
                    )
                crc = zlib.crc32(piece, crc)
                if piece:
                    yield piece
                elif raw and inflater is not None and inflater.eof:
                    break  # data after the end of the deflate stream: sizes will disagree
        if inflater is not None:
            tail = inflater.flush()
            produced += len(tail)
            crc = zlib.crc32(tail, crc)
            if tail:
                yield tail
            if not inflater.eof:
                raise InvalidWheel(f"{where}: member {member.name!r}: deflate stream is truncated")
    except zlib.error as exc:
        raise InvalidWheel(
            f"{where}: member {member.name!r}: corrupt deflate data ({exc})"
        ) from None
    if produced != member.file_size:
        raise InvalidWheel(
            f"{where}: member {member.name!r} holds {produced} bytes, not the declared "
            f"{member.file_size}"
        )
    if crc != member.crc32:
        raise InvalidWheel(
            f"{where}: member {member.name!r}: CRC-32 {crc:08x} does not match the declared "
            f"{member.crc32:08x}"
        )


class InPlaceError(Exception):
    """An archive cannot be rewritten in place: the output would differ before the part that is
    rewritten. Not the input's fault: the caller writes the archive afresh instead."""


def _unread_error(where: str, member: ZipMember, consequence: str) -> InvalidWheel:
    return InvalidWheel(
        f"{where}: member {member.name!r} at offset {member.header_offset} lies before the part "
        f"of the archive that was read, so {consequence}"
    )


def copy_range(src: int, dst: int, offset: int, length: int) -> None:
    """Append ``length`` bytes of ``src`` from ``offset`` to ``dst`` at its current position."""
    copy_file_range = getattr(os, "copy_file_range", None)
    while length > 0 and copy_file_range is not None:
        try:
            done = copy_file_range(src, dst, length, offset)
        except OSError:
            break  # e.g. EXDEV on older kernels or ENOSYS: fall back to a user-space copy
        if done == 0:
            break
        offset += done
        length -= done
    while length > 0:
        data = os.pread(src, min(_CHUNK, length), offset)
        if not data:
            raise InvalidWheel("source archive shrank while it was being copied")
        view = memoryview(data)
        while view:
            written = os.write(dst, view)
            view = view[written:]
        offset += len(data)
        length -= len(data)


class Deflating:
    """A member's data compressed as it comes (its method: stored or deflate, level 6): the
    first part while the rest is not known yet. zlib's output does not depend on how its input
    is split, so a member compressed in parts is the member compressed whole."""

    def __init__(self, method: int, data: bytes = b"") -> None:
        self._compressor = zlib.compressobj(6, zlib.DEFLATED, -15) if method == DEFLATED else None
        self._parts: list[bytes] = []
        self._crc = 0
        self._size = 0
        self.feed(data)

    def feed(self, data: bytes) -> None:
        self._crc = zlib.crc32(data, self._crc)
        self._size += len(data)
        self._parts.append(data if self._compressor is None else self._compressor.compress(data))

    def end(self, data: bytes = b"") -> tuple[bytes, int, int]:
        """The whole payload, its CRC-32 and uncompressed size, ``data`` fed last."""
        self.feed(data)
        if self._compressor is not None:
            self._parts.append(self._compressor.flush())
        return b"".join(self._parts), self._crc, self._size


class ArchiveWriter:
    """Write a zip archive to ``fd`` from raw members of a source archive and fresh members.

    Members whose local header can be kept are copied with it; consecutive ones become one copy.
    Nothing is ever written with a data descriptor, and ZIP64 records appear only when needed.

    With ``fd`` None nothing is written or read: the writer only counts, and :attr:`size` is what
    the same calls would have written. Counting is the one use of members of a partial read (see
    :func:`read_archive`), and only of those copied as they are. ``where`` (the source wheel's
    file name) starts the error messages.

    With ``in_place_before=N``, ``fd`` already holds the output's first N bytes (the source
    itself, whose first members the output keeps where they are) and is positioned at N: members
    copied unchanged to their own offset below N cost nothing, and anything that would be written
    below N raises :class:`InPlaceError` (the caller then writes the archive afresh).
    """

    def __init__(
        self, fd: int | None, *, where: str = "source archive", in_place_before: int = 0
    ) -> None:
        self._fd = fd
        self._where = where
        self._in_place = in_place_before
        self._offset = 0
        self._central: list[bytes] = []
        self._pending: tuple[int, int, int] | None = None  # (src fd, start, end)

    @property
    def size(self) -> int:
        """Bytes written so far (pending copies included)."""
        pending = self._pending
        return self._offset + (pending[2] - pending[1] if pending else 0)

    def _flush(self) -> None:
        if self._pending is not None:
            src, start, end = self._pending
            if self._fd is not None:
                self._check_in_place()
                copy_range(src, self._fd, start, end - start)
            self._offset += end - start
            self._pending = None

    def _check_in_place(self) -> None:
        if self._offset < self._in_place:
            raise InPlaceError(
                f"{self._where}: the output differs from the source at offset {self._offset}, "
                f"before {self._in_place}"
            )

    def _write(self, data: bytes) -> None:
        self._flush()
        if self._fd is not None:
            self._check_in_place()
            view = memoryview(data)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
        self._offset += len(data)

    def copy(self, src: int, member: ZipMember, name: str | None = None) -> None:
        """Copy ``member`` of the archive open as ``src`` without decompressing it.

        With ``name``, the member is stored under that name (a fresh local header is written).
        """
        offset = self.size
        if (name is None or name == member.name) and not member.has_descriptor:
            # Without a descriptor, a member read in full ends where its data does.
            end = member.end_offset if member.header_read else member.span_end
            if offset < self._in_place and self._pending is None:
                if offset != member.header_offset or end > self._in_place:
                    raise InPlaceError(
                        f"{self._where}: member {member.name!r} would move from offset "
                        f"{member.header_offset} to {offset}"
                    )
                self._offset = end  # already in place: nothing to write
            else:
                if not member.header_read and self._fd is not None:
                    raise _unread_error(self._where, member, "it can be counted but not copied")
                pending = self._pending
                if pending is not None and pending[0] == src and pending[2] == member.header_offset:
                    self._pending = (src, pending[1], end)
                else:
                    self._flush()
                    self._pending = (src, member.header_offset, end)
            if member.central and offset < _MAX32:
                central = member.central
                self._central.append(central[:42] + struct.pack("<I", offset) + central[46:])
            else:
                self._central.append(self._central_entry(member, member.name, offset))
            return
        if not member.header_read:
            renamed = name is not None and name != member.name
            action = "renamed" if renamed else "copied without its data descriptor"
            raise _unread_error(
                self._where, member, f"it cannot be {action} (that needs its local header)"
            )
        target = member._replace(
            name=name or member.name, flags=member.flags & ~_FLAG_DESCRIPTOR, central=b""
        )
        self._write(self._local_header(target))
        self._pending = (src, member.data_offset, member.end_offset)
        self._central.append(self._central_entry(target, target.name, offset))

    def add(
        self, template: ZipMember, name: str, data: bytes, ahead: Deflating | None = None
    ) -> ZipMember:
        """Write ``data`` as member ``name``, with time, attributes and method of ``template``;
        with ``ahead``, the member's first bytes were compressed already and ``data`` is the
        rest (the same bytes come out as from the whole in one go)."""
        if not template.header_read:
            raise _unread_error(self._where, template, "its local extra fields are not known")
        started = ahead or Deflating(template.method)
        payload, crc, size = started.end(data)
        self._flush()
        member = template._replace(
            name=name,
            flags=template.flags & ~_FLAG_DESCRIPTOR,
            crc32=crc,
            compress_size=len(payload),
            file_size=size,
            comment=b"",
            central=b"",
        )
        offset = self._offset
        self._write(self._local_header(member))
        self._write(payload)
        self._central.append(self._central_entry(member, name, offset))
        return member

    @staticmethod
    def _name_bytes(member: ZipMember) -> tuple[bytes, int]:
        flags = member.flags
        try:
            raw = member.name.encode("ascii")
        except UnicodeEncodeError:
            raw = member.name.encode("utf-8")
            flags |= _FLAG_UTF8
        return raw, flags

    def _local_header(self, member: ZipMember) -> bytes:
        raw, flags = self._name_bytes(member)
        extra = member.local_extra
        csize, usize = member.compress_size, member.file_size
        needed = member.version_needed
        if csize >= _MAX32 or usize >= _MAX32:
            extra = struct.pack("<HHQQ", _ZIP64_EXTRA, 16, usize, csize) + extra
            csize = usize = _MAX32
            needed = max(needed, 45)
        return (
            _LOCAL.pack(
                _LOCAL_SIG,
                needed,
                flags,
                member.method,
                member.mod_time,
                member.mod_date,
                member.crc32,
                csize,
                usize,
                len(raw),
                len(extra),
            )
            + raw
            + extra
        )

    def _central_entry(self, member: ZipMember, name: str, offset: int) -> bytes:
        raw, flags = self._name_bytes(member._replace(name=name))
        zip64 = b""
        usize, csize, off = member.file_size, member.compress_size, offset
        if usize >= _MAX32:
            zip64 += struct.pack("<Q", usize)
            usize = _MAX32
        if csize >= _MAX32:
            zip64 += struct.pack("<Q", csize)
            csize = _MAX32
        if off >= _MAX32:
            zip64 += struct.pack("<Q", off)
            off = _MAX32
        extra = member.extra
        needed = member.version_needed
        if zip64:
            extra = struct.pack("<HH", _ZIP64_EXTRA, len(zip64)) + zip64 + extra
            needed = max(needed, 45)
        return (
            _CENTRAL.pack(
                _CENTRAL_SIG,
                member.version_made_by,
                needed,
                flags,
                member.method,
                member.mod_time,
                member.mod_date,
                member.crc32,
                csize,
                usize,
                len(raw),
                len(extra),
                len(member.comment),
                0,
                member.internal_attr,
                member.external_attr,
                off,
            )
            + raw
            + extra
            + member.comment
        )

    def finish(self, comment: bytes = b"") -> None:
        """Write the central directory and end records."""
        self._flush()
        cd_offset = self._offset
        self._write(b"".join(self._central))
        cd_size = self._offset - cd_offset
        count = len(self._central)
        if count >= _MAX16 or cd_size >= _MAX32 or cd_offset >= _MAX32:
            eocd64_offset = self._offset
            self._write(
                _EOCD64.pack(
                    _EOCD64_SIG, _EOCD64.size - 12, 45, 45, 0, 0, count, count, cd_size, cd_offset
                )
            )
            self._write(_EOCD64_LOCATOR.pack(_EOCD64_LOCATOR_SIG, 0, eocd64_offset, 1))
        self._write(
            _EOCD.pack(
                _EOCD_SIG,
                0,
                0,
                min(count, _MAX16),
                min(count, _MAX16),
                min(cd_size, _MAX32),
                min(cd_offset, _MAX32),
                len(comment),
            )
            + comment
        )
