"""Reading an upstream wheel from its end alone, through range requests: enough to plan its patch
and count the patched wheel's size (:func:`~wheelpatch.patch.writer.patched_size`) without
downloading its body.

The end records and the central directory come first, from the last bytes of the file; then the
file from the first member the writer needs the local header of (everything in the ``.dist-info``
and ``.data`` directories, which it renames, and any member with a data descriptor, which it
re-heads) to what was already read. Builders put ``.dist-info`` last, so that is usually a small
part of the file: one request when the first read (the last 128 KiB) holds it all, two when it
does not, three when the central directory alone is bigger than the first read. The bytes are
checked as a whole wheel's are, by :func:`~wheelpatch.wheel.source_wheel.read_wheel` on a sparse
file holding them in place.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import (
    InvalidWheelFilename,
    NormalizedName,
    canonicalize_name,
    parse_wheel_filename,
)

from ..errors import InvalidWheel
from ..wheel.archive import ZipMember, directory_offset, read_archive
from ..wheel.source_wheel import SourceWheel, read_wheel

__all__ = ["RemoteWheel", "read_remote_wheel"]

#: The first read: the largest end record (22 bytes and a comment of up to 64 KiB) with its ZIP64
#: records, and room for the central directory and ``.dist-info`` of most wheels.
_TAIL = 128 << 10


@dataclass(frozen=True, slots=True)
class RemoteWheel:
    """An upstream wheel as read from its end.

    ``wheel`` plans a patch and counts the patched size, but cannot be written from: its members
    before ``known_from`` are known by their central directory entries alone, and its ``path``
    names the sparse file it was read from, which is gone."""

    wheel: SourceWheel
    #: The METADATA bytes exactly as inside the wheel.
    metadata: bytes
    #: The file was read from this offset to its end; 0 means all of it was read (a caller may
    #: then as well have downloaded it whole).
    known_from: int
    #: Bytes read through ``read_range``, over all requests.
    fetched: int


#: The largest range asked for at once.
_PIECE = 8 << 20


class _Sparse:
    """A file of the remote wheel's size in which the bytes read so far are in place, read from
    some offset to the end; the rest is a hole."""

    def __init__(self, fd: int, size: int, read_range: Callable[[int, int], bytes], where: str):
        self.fd = fd
        self.start = size
        self.fetched = 0
        self._read_range = read_range
        self._where = where
        os.ftruncate(fd, size)

    def extend_to(self, offset: int) -> None:
        """Read the file from ``offset`` to where what was read begins: in one request when it
        is small (the usual ``.dist-info`` at the end), in requests of ``_PIECE`` bytes written
        out one by one when it is not (a ``.dist-info`` at the start), so memory stays flat."""
        end = self.start
        while offset < end:
            start = max(offset, end - _PIECE)
            self._read_into(start, end - start)
            end = start
            self.start = start

    def _read_into(self, offset: int, length: int) -> None:
        data = self._read_range(offset, length)
        if len(data) != length:
            raise InvalidWheel(
                f"{self._where}: {len(data)} bytes came back for the {length} bytes at offset "
                f"{offset} asked for (is the size announced for it right?)"
            )
        self.fetched += length
        view = memoryview(data)
        position = offset
        while view:
            written = os.pwrite(self.fd, view, position)
            view = view[written:]
            position += written


def read_remote_wheel(
    filename: str, size: int, read_range: Callable[[int, int], bytes], workdir: Path
) -> RemoteWheel:
    """Read the wheel ``filename`` of ``size`` bytes through ``read_range(offset, length)``, which
    returns exactly those bytes (an HTTP range request; its failures are its own to raise).

    The sparse file lives in a temporary directory under ``workdir`` while it is read and is
    removed before this returns, whatever happens. Anything wrong in the bytes raises
    :class:`InvalidWheel` naming ``filename``."""
    try:
        name = parse_wheel_filename(filename)[0]
    except InvalidWheelFilename as exc:
        raise InvalidWheel(f"{filename}: not a valid wheel filename ({exc})") from None
    if os.path.basename(filename) != filename or "\\" in filename or "\0" in filename:
        raise InvalidWheel(f"{filename!r}: a wheel filename cannot hold a directory separator")
    if size <= 0:
        raise InvalidWheel(f"{filename}: not a zip archive ({size} bytes)")
    with tempfile.TemporaryDirectory(prefix=".remote-", dir=workdir) as temp:
        path = Path(temp) / filename
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o600)
        try:
            sparse = _Sparse(fd, size, read_range, filename)
            sparse.extend_to(max(0, size - _TAIL))
            sparse.extend_to(directory_offset(fd, filename, known_from=sparse.start))
            archive = read_archive(fd, filename, known_from=sparse.start)
            needed = [m.header_offset for m in archive.members if _needs_header(m, name)]
            sparse.extend_to(min(needed, default=sparse.start))
        finally:
            os.close(fd)
        wheel = read_wheel(path, known_from=sparse.start)
    return RemoteWheel(wheel, wheel.metadata_bytes, sparse.start, sparse.fetched)


def _needs_header(member: ZipMember, name: NormalizedName) -> bool:
    """Whether the writer needs the member's local header: it renames everything in the
    ``.dist-info`` and ``.data`` directories, writes METADATA and RECORD with their local
    headers' extra fields, and drops data descriptors, all of which need the local header.

    Any top-level ``.dist-info`` counts (:func:`read_wheel` refuses a second one), and the
    ``.data`` directories of the project (others are ordinary directories)."""
    if member.has_descriptor:
        return True
    top = member.name.partition("/")[0]
    if top.endswith(".dist-info"):
        return True
    if not top.endswith(".data"):
        return False
    project = top.removesuffix(".data").rpartition("-")[0]
    return canonicalize_name(project) == name
