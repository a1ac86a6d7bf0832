"""A small zip writer working at the struct level, for tests that need archives zipfile refuses
to write: local headers that disagree with the central directory, hidden or overlapping members,
bad end records, ZIP64 records that lie, hostile member names.

Every field of every header can be overridden, and the defaults produce a valid archive, so a
test takes the valid baseline (:func:`wheel_entries`) and changes exactly one thing. Offsets in
the headers are absolute file offsets (the prefix included) unless stated otherwise.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import struct
import zlib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

__all__ = [
    "DEFLATED",
    "DOS_DATE",
    "DOS_TIME",
    "FLAG_DESCRIPTOR",
    "FLAG_ENCRYPTED",
    "FLAG_UTF8",
    "STORED",
    "Entry",
    "build_zip",
    "deflate",
    "local_record",
    "record_row",
    "wheel_entries",
    "wheel_filename",
]

STORED = 0
DEFLATED = 8
FLAG_ENCRYPTED = 0x0001
FLAG_DESCRIPTOR = 0x0008
FLAG_UTF8 = 0x0800
#: 2020-02-02 12:00:00 in MS-DOS format.
DOS_TIME = 12 << 11
DOS_DATE = ((2020 - 1980) << 9) | (2 << 5) | 2
UNIX = 3

_LOCAL = struct.Struct("<4sHHHHHIIIHH")
_CENTRAL = struct.Struct("<4sHHHHHHIIIHHHHHII")
_EOCD = struct.Struct("<4sHHHHIIH")
_EOCD64 = struct.Struct("<4sQHHIIQQQQ")
_EOCD64_LOCATOR = struct.Struct("<4sIQI")
_DESCRIPTOR = struct.Struct("<4sIII")
_MAX16 = 0xFFFF
_MAX32 = 0xFFFFFFFF
_ZIP64_TAG = 0x0001


def deflate(data: bytes) -> bytes:
    """Raw deflate (no zlib header), as zip stores it."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush()


@dataclass(frozen=True)
class Entry:
    """One member: its local header and data, and its central directory entry.

    ``None`` overrides mean "the correct value". ``local_*`` overrides affect only the local
    header; ``crc``, ``compress_size`` and ``file_size`` affect both headers (and the data
    descriptor), so a lie told consistently can be built as easily as a disagreement.
    """

    name: bytes | str
    data: bytes = b""
    #: 0 (stored), 8 (deflate) or anything else (then give ``payload``, or ``data`` is used).
    method: int = DEFLATED
    #: General purpose flags; ``None``: the UTF-8 flag iff ``name`` is a non-ASCII ``str``.
    flags: int | None = None
    #: The bytes written as the member's data; ``None``: ``data`` compressed with ``method``.
    payload: bytes | None = None
    crc: int | None = None
    compress_size: int | None = None
    file_size: int | None = None
    local_name: bytes | str | None = None
    local_flags: int | None = None
    local_method: int | None = None
    local_crc: int | None = None
    local_compress_size: int | None = None
    local_file_size: int | None = None
    local_extra: bytes = b""
    central_extra: bytes = b""
    comment: bytes = b""
    #: Unix mode in the high 16 bits (read only when ``create_system`` is 3, Unix).
    external_attr: int = 0o100644 << 16
    create_system: int = UNIX
    version_needed: int = 20
    mod_time: int = DOS_TIME
    mod_date: int = DOS_DATE
    #: Write zero CRC and sizes in the local header and a data descriptor after the data.
    data_descriptor: bool = False
    descriptor_crc: int | None = None
    #: Set the "encrypted" flag (the data is left as it is).
    encrypted: bool = False
    #: Give the sizes as 0xFFFFFFFF with ZIP64 extra fields in both headers.
    zip64: bool = False
    #: Write the local header and data but no central directory entry (hidden data).
    skip_central: bool = False
    #: Write no local header or data; the central entry points at ``header_offset``, or by
    #: default where the local header would have been (the next entry's).
    skip_local: bool = False
    #: Where the central entry says the local header is; ``None``: where it was written.
    header_offset: int | None = None
    #: Bytes written in place of the local header and data (the central entry points at them).
    raw_local: bytes | None = None

    @property
    def raw_name(self) -> bytes:
        return _encode(self.name)

    @property
    def general_flags(self) -> int:
        if self.flags is not None:
            flags = self.flags
        elif isinstance(self.name, str) and not self.name.isascii():
            flags = FLAG_UTF8
        else:
            flags = 0
        if self.encrypted:
            flags |= FLAG_ENCRYPTED
        if self.data_descriptor:
            flags |= FLAG_DESCRIPTOR
        return flags

    @property
    def compressed(self) -> bytes:
        if self.payload is not None:
            return self.payload
        return deflate(self.data) if self.method == DEFLATED else self.data

    @property
    def true_crc(self) -> int:
        return zlib.crc32(self.data) if self.crc is None else self.crc

    @property
    def sizes(self) -> tuple[int, int]:
        """(compressed size, uncompressed size) as both headers give them by default."""
        csize = len(self.compressed) if self.compress_size is None else self.compress_size
        usize = len(self.data) if self.file_size is None else self.file_size
        return csize, usize


def _encode(name: bytes | str) -> bytes:
    return name if isinstance(name, bytes) else name.encode("utf-8")


def _zip64_extra(usize: int, csize: int) -> bytes:
    return struct.pack("<HHQQ", _ZIP64_TAG, 16, usize, csize)


def local_record(entry: Entry) -> bytes:
    """The local header, data and data descriptor (if any) of ``entry``, as written."""
    if entry.raw_local is not None:
        return entry.raw_local
    csize, usize = entry.sizes
    crc = entry.true_crc
    local_crc = crc if entry.local_crc is None else entry.local_crc
    local_csize = csize if entry.local_compress_size is None else entry.local_compress_size
    local_usize = usize if entry.local_file_size is None else entry.local_file_size
    extra = entry.local_extra
    needed = entry.version_needed
    descriptor = b""
    if entry.data_descriptor:
        descriptor_crc = crc if entry.descriptor_crc is None else entry.descriptor_crc
        descriptor = _DESCRIPTOR.pack(b"PK\x07\x08", descriptor_crc, csize, usize)
        local_crc = local_csize = local_usize = 0
    elif entry.zip64:
        extra = _zip64_extra(local_usize, local_csize) + extra
        local_csize = local_usize = _MAX32
        needed = max(needed, 45)
    name = entry.raw_name if entry.local_name is None else _encode(entry.local_name)
    flags = entry.general_flags if entry.local_flags is None else entry.local_flags
    method = entry.method if entry.local_method is None else entry.local_method
    header = _LOCAL.pack(
        b"PK\x03\x04",
        needed,
        flags,
        method,
        entry.mod_time,
        entry.mod_date,
        local_crc,
        local_csize,
        local_usize,
        len(name),
        len(extra),
    )
    return header + name + extra + entry.compressed + descriptor


def _central_record(entry: Entry, offset: int) -> bytes:
    csize, usize = entry.sizes
    extra = entry.central_extra
    needed = entry.version_needed
    if entry.zip64:
        extra = _zip64_extra(usize, csize) + extra
        csize = usize = _MAX32
        needed = max(needed, 45)
    name = entry.raw_name
    return (
        _CENTRAL.pack(
            b"PK\x01\x02",
            (entry.create_system << 8) | 20,
            needed,
            entry.general_flags,
            entry.method,
            entry.mod_time,
            entry.mod_date,
            entry.true_crc,
            csize,
            usize,
            len(name),
            len(extra),
            len(entry.comment),
            0,
            0,
            entry.external_attr,
            offset,
        )
        + name
        + extra
        + entry.comment
    )


def build_zip(
    entries: Sequence[Entry],
    *,
    prefix: bytes = b"",
    prefix_counted: bool = True,
    suffix: bytes = b"",
    comment: bytes = b"",
    count: int | None = None,
    disk_count: int | None = None,
    cd_size: int | None = None,
    cd_offset: int | None = None,
    disk: int = 0,
    cd_disk: int = 0,
    zip64: bool = False,
    zip64_saturate: bool = True,
    zip64_count: int | None = None,
    zip64_locator_offset: int | None = None,
    extra_eocd: bool = False,
) -> bytes:
    """Return the bytes of a zip archive of ``entries``, in order.

    ``prefix`` comes before the first local header; with ``prefix_counted`` (the default) the
    offsets include it, as when a tool writes a self-extracting archive, otherwise they do not,
    as after ``cat stub archive.zip``. ``suffix`` follows the end record.

    ``count``/``disk_count``/``cd_size``/``cd_offset``/``disk``/``cd_disk`` override the end
    record's fields. ``zip64`` adds a ZIP64 end record and locator; with ``zip64_saturate`` the
    classic end record then says 0xFFFF/0xFFFFFFFF ("look at ZIP64"), otherwise it keeps the real
    values. ``zip64_count`` overrides the ZIP64 record's entry count and ``zip64_locator_offset``
    where the locator says the ZIP64 record is. ``extra_eocd`` appends a copy of the end record
    (with an empty comment) to the comment, so that the file ends with a second, plausible end
    record.
    """
    base = len(prefix) if prefix_counted else 0
    body = bytearray(prefix)
    central = bytearray()
    for entry in entries:
        offset = len(body) - len(prefix) + base
        if not entry.skip_local:
            body += local_record(entry)
        if not entry.skip_central:
            pointer = offset if entry.header_offset is None else entry.header_offset
            central += _central_record(entry, pointer)
    real_count = sum(not e.skip_central for e in entries)
    real_cd_offset = len(body) - len(prefix) + base
    real_cd_size = len(central)
    body += central
    n_entries, size, start = real_count, real_cd_size, real_cd_offset
    if zip64:
        eocd64_offset = len(body) - len(prefix) + base
        count64 = real_count if zip64_count is None else zip64_count
        body += _EOCD64.pack(
            b"PK\x06\x06",
            _EOCD64.size - 12,
            45,
            45,
            0,
            0,
            count64,
            count64,
            real_cd_size,
            real_cd_offset,
        )
        locator = eocd64_offset if zip64_locator_offset is None else zip64_locator_offset
        body += _EOCD64_LOCATOR.pack(b"PK\x06\x07", 0, locator, 1)
        if zip64_saturate:
            n_entries, size, start = _MAX16, _MAX32, _MAX32
    n_entries = n_entries if count is None else count
    size = size if cd_size is None else cd_size
    start = start if cd_offset is None else cd_offset
    on_disk = n_entries if disk_count is None else disk_count

    def end_record(comment: bytes) -> bytes:
        return _EOCD.pack(
            b"PK\x05\x06", disk, cd_disk, on_disk, n_entries, size, start, len(comment)
        )

    if extra_eocd:
        comment += end_record(b"")
    body += end_record(comment) + comment + suffix
    return bytes(body)


def record_row(path: str, data: bytes) -> tuple[str, str, str]:
    """The RECORD row of ``data`` stored as ``path``: sha256 in urlsafe base64, and size."""
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return path, f"sha256={digest}", str(len(data))


def wheel_filename(name: str = "demo", version: str = "1.0") -> str:
    return f"{name}-{version}-py3-none-any.whl"


def wheel_entries(
    name: str = "demo",
    version: str = "1.0",
    files: Mapping[str, bytes] | None = None,
    requires: Sequence[str] = (),
    *,
    metadata: bytes | None = None,
    wheel: bytes | None = None,
    extra_dist_info: Mapping[str, bytes] | None = None,
    method: int = DEFLATED,
    dist_info: str | None = None,
    omit: Collection[str] = (),
) -> list[Entry]:
    """The entries of a valid wheel: ``files``, then METADATA, WHEEL, ``extra_dist_info`` (names
    relative to the ``.dist-info``) and RECORD (with a correct sha256 row for every other
    member), all with ``method``.

    ``metadata`` and ``wheel`` replace the generated files (RECORD still matches them);
    ``dist_info`` replaces the directory's name; members named in ``omit`` (full paths, RECORD's
    included) are left out of the archive and of RECORD."""
    if files is None:
        files = {f"{name}/__init__.py": b"VALUE = 1\n", f"{name}/core.py": b"x = 2\n"}
    dist_info = dist_info or f"{name}-{version}.dist-info"
    if metadata is None:
        lines = [
            "Metadata-Version: 2.1",
            f"Name: {name}",
            f"Version: {version}",
            "Summary: A demo project",
        ]
        lines += [f"Requires-Dist: {r}" for r in requires]
        metadata = ("\n".join(lines) + "\n\nA long description.\n").encode()
    if wheel is None:
        wheel = (
            b"Wheel-Version: 1.0\nGenerator: zipcraft\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
    members = dict(files)
    members[f"{dist_info}/METADATA"] = metadata
    members[f"{dist_info}/WHEEL"] = wheel
    members.update({f"{dist_info}/{k}": v for k, v in (extra_dist_info or {}).items()})
    members = {path: data for path, data in members.items() if path not in omit}
    record_path = f"{dist_info}/RECORD"
    if record_path not in omit:
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerows(record_row(path, data) for path, data in members.items())
        writer.writerow((record_path, "", ""))
        members[record_path] = text.getvalue().encode("utf-8")
    return [Entry(path, data, method=method) for path, data in members.items()]
