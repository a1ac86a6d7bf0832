"""What the dynamic loader reads of one ELF file: DT_NEEDED, DT_RUNPATH, DT_RPATH, DT_SONAME,
its machine and class, read by pyelftools from a file on disk or from a wheel member.

A member is never inflated whole: pyelftools is given a stream that holds only the ranges
inflated so far (a head of the member, then the dynamic segment and its string table, which it
asks for by offset), and asking for bytes that are not there inflates the member further,
forward. The ELF header and program headers open a file; the dynamic segment and string table
usually follow within the first few MB, but a library rewritten by patchelf (torch's, whose
RPATH was set after linking) has its string table at the very end, and its dynamic segment 420
MB into 503. A range that far ahead is inflated from a deflate block boundary found shortly
before it (:mod:`wheelpatch.wheel.deflate_tail`), with the member's last MB kept on the way:
torch's two largest libraries are read in 0.5 s instead of 1.7 s (ISA-L, one core). Where no
boundary gives the range, the member is inflated from its start as before.

The bytes read so are the member's for every archive zlib or any other encoder wrote; a stream
crafted to hold bits that decode as a block and fall into step with the real ones later could
show this reader other bytes there than a whole inflate gives (a check of what the removal of
requirements leaves unresolved, not a defence against a hostile wheel: installing inflates and
checks every member whole).
"""

from __future__ import annotations

import io
import itertools
import os
import re
import struct
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal, cast

from elftools.common.exceptions import ELFError
from elftools.common.utils import parse_cstring_from_stream, struct_parse
from elftools.elf.elffile import ELFFile

from ..errors import InvalidWheel
from ..wheel import deflate_tail
from ..wheel.archive import DEFLATED, STORED, ZipMember

_isal: Any
try:  # ISA-L's inflate, about twice as fast as zlib's, when the `fast` extra is installed
    from isal import isal_zlib as _isal
except ImportError:  # pragma: no cover - depends on the extra
    _isal = None

__all__ = [
    "Cancelled",
    "ElfFacts",
    "FileKind",
    "file_kind",
    "is_library_name",
    "machine_of",
    "read_file_facts",
    "read_member_facts",
]

#: The inflaters members can be read with: ISA-L's (isal, the ``fast`` extra) if installed, and
#: zlib's. ``inflater_name`` says which is used.
INFLATE_MODULES: dict[str, Any] = {"zlib": zlib, **({"isal": _isal} if _isal else {})}
inflater_name = "isal" if _isal else "zlib"
_INFLATE_ERRORS: tuple[type[Exception], ...] = tuple(m.error for m in INFLATE_MODULES.values())

#: What a file's first bytes say it is (only ELF is read further).
FileKind = Literal["elf", "mach-o", "pe", "other"]

_MACHO_MAGICS = (
    b"\xfe\xed\xfa\xce",
    b"\xce\xfa\xed\xfe",
    b"\xfe\xed\xfa\xcf",
    b"\xcf\xfa\xed\xfe",
    b"\xca\xfe\xba\xbe",  # a universal (fat) binary
)
#: The first inflated piece of a member: ELF and program headers, usually much more.
_HEAD = 64 << 10
#: Inflated bytes below this offset are kept (dynamic string tables normally lie there).
_KEEP_HEAD = 4 << 20
#: A dynamic section or string table larger than this is not believed.
_TABLE_CAP = 64 << 20
_CHUNK = 1 << 20
#: Inflated at most at once when skipping towards a range.
_SKIP = 8 << 20
#: A range at least this far past what is inflated is inflated from a block boundary before it
#: (finding one and inflating to the member's end costs about what inflating 30 MB does).
SEEK_AHEAD = 32 << 20
#: The member's last bytes kept by such a pass (patchelf's string tables lie there).
_KEEP_TAIL = 8 << 20
#: More entries than this in a dynamic segment are not believed (real libraries have tens).
DYNAMIC_CAP = 65536
#: More directories than this in one RUNPATH or RPATH are not believed (each is searched for
#: every need).
PATH_CAP = 1024
_PATH_PART = re.compile(r"[^:]+")


@dataclass(frozen=True, slots=True)
class ElfFacts:
    """The parts of one ELF file the dynamic loader acts on."""

    machine: str
    elf_class: int
    elf_type: str
    needed: tuple[str, ...]
    #: None when the file has no such tag (an empty tag is an empty tuple).
    runpath: tuple[str, ...] | None
    rpath: tuple[str, ...] | None
    soname: str | None


def file_kind(head: bytes) -> FileKind:
    if head[:4] == b"\x7fELF":
        return "elf"
    if head[:4] in _MACHO_MAGICS:
        return "mach-o"
    if head[:2] == b"MZ":
        return "pe"
    return "other"


def is_library_name(name: str) -> bool:
    """Whether a member's name is that of a shared object or extension module (any platform)."""
    base = name.rsplit("/", 1)[-1].lower()
    return base.endswith((".so", ".dylib", ".dll", ".pyd")) or ".so." in base


class Cancelled(Exception):
    """Reading stopped because the caller no longer wants the facts (checked between blocks)."""


class _Unread(Exception):
    """pyelftools asked for bytes of the member that are not inflated yet."""

    def __init__(self, start: int, end: int) -> None:
        super().__init__(start, end)
        self.start = start
        self.end = end


class _Window(io.RawIOBase):
    """A seekable stream over the ranges of a file known so far; reading elsewhere raises
    :class:`_Unread` with the range wanted."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self._size = size
        self._ranges: list[tuple[int, bytes]] = []
        self._pos = 0

    def add(self, start: int, data: bytes) -> None:
        self._ranges.append((start, data))

    def has(self, start: int, end: int) -> bool:
        return any(s <= start and end <= s + len(d) for s, d in self._ranges)

    def require(self, start: int, length: int) -> None:
        end = min(self._size, start + length)
        if start < self._size and not self.has(start, end):
            raise _Unread(start, end)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            self._pos = offset
        elif whence == io.SEEK_CUR:
            self._pos += offset
        else:
            self._pos = self._size + offset
        return self._pos

    def tell(self) -> int:
        return self._pos

    def read(self, size: int | None = -1) -> bytes:
        start = self._pos
        end = self._size if size is None or size < 0 else min(self._size, start + size)
        if start >= end:
            return b""
        for s, data in self._ranges:
            if s <= start < s + len(data):
                piece = data[start - s : end - s]
                if start + len(piece) == end:
                    self._pos = end
                    return piece
        raise _Unread(start, end)

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class _Inflater:
    """Inflates one member forward, keeping its first :data:`_KEEP_HEAD` bytes; a range before
    where it stands (and past the head) restarts it from the member's first byte."""

    def __init__(
        self, fd: int, member: ZipMember, where: str, cancel: threading.Event | None = None
    ) -> None:
        if member.method not in (STORED, DEFLATED):  # pragma: no cover - read_archive refuses
            raise InvalidWheel(f"{where}: member {member.name!r}: unknown compression")
        self._fd = fd
        self._member = member
        self._where = where
        self._cancel = cancel
        self._head = bytearray()
        #: Ranges inflated from block boundaries; whether looking for one failed already.
        self._seeks: list[deflate_tail.Inflated] = []
        self._seek_failed = False
        self._restart()

    def _restart(self) -> None:
        module = INFLATE_MODULES[inflater_name]
        self._inflater = module.decompressobj(-15) if self._member.method == DEFLATED else None
        self._raw = b""
        self._read_to = self._member.data_offset
        self._produced = 0
        self._head.clear()

    def _more(self, limit: int) -> bytes:
        """At most ``limit`` next bytes of the member (never empty before its end)."""
        member = self._member
        while True:
            if not self._raw:
                if self._cancel is not None and self._cancel.is_set():
                    raise Cancelled(self._where)
                if self._read_to >= member.end_offset:
                    tail = self._inflater.flush() if self._inflater is not None else b""
                    if tail:
                        self._raw = b""
                        if self._produced < _KEEP_HEAD:
                            self._head += tail[: _KEEP_HEAD - self._produced]
                        self._produced += len(tail)
                        return tail
                    raise InvalidWheel(
                        f"{self._where}: member {member.name!r} ends before its declared size"
                    )
                want = min(_CHUNK, member.end_offset - self._read_to)
                self._raw = os.pread(self._fd, want, self._read_to)
                if not self._raw:
                    raise InvalidWheel(f"{self._where}: member {member.name!r} is truncated")
                self._read_to += len(self._raw)
            if self._inflater is None:
                piece, self._raw = self._raw[:limit], self._raw[limit:]
            else:
                try:
                    piece = self._inflater.decompress(self._raw, limit)
                except _INFLATE_ERRORS as exc:
                    raise InvalidWheel(
                        f"{self._where}: member {member.name!r}: corrupt deflate data ({exc})"
                    ) from None
                self._raw = self._inflater.unconsumed_tail
            if piece:
                if self._produced < _KEEP_HEAD:
                    self._head += piece[: _KEEP_HEAD - self._produced]
                self._produced += len(piece)
                return piece

    def fetch(self, start: int, end: int) -> bytes:
        """Bytes ``start`` to ``end`` of the member, uncompressed."""
        if end <= len(self._head):
            return bytes(self._head[start:end])
        for seek in self._seeks:
            got = seek.get(start, end)
            if got is not None:
                return got
        if (
            self._member.method == DEFLATED
            and not self._seek_failed
            and start - (self._produced if start >= self._produced else 0) >= SEEK_AHEAD
        ):
            got = self._seek(start, end)
            if got is not None:
                return got
        if start < self._produced:
            self._restart()
        while self._produced < start:  # skip forward
            self._more(min(_SKIP, start - self._produced))
        parts = []
        while self._produced < end:
            parts.append(self._more(min(_CHUNK, end - self._produced)))
        return b"".join(parts)

    @property
    def seeked(self) -> bool:
        """Whether a range was inflated from a block boundary."""
        return bool(self._seeks)

    def stop_seeking(self) -> None:
        """Forget the ranges inflated from block boundaries, and look for none again."""
        self._seeks.clear()
        self._seek_failed = True

    def _seek(self, start: int, end: int) -> bytes | None:
        """Bytes ``start`` to ``end`` inflated from a block boundary before them, or None
        (then no other range of this member is looked for so)."""
        member = self._member
        try:
            found = deflate_tail.inflate_range(
                self._fd,
                member.data_offset,
                member.end_offset,
                member.file_size,
                start,
                end,
                keep_tail=_KEEP_TAIL,
                module=INFLATE_MODULES[inflater_name],
                cancel=self._cancel,
            )
        except deflate_tail.Cancelled:
            raise Cancelled(self._where) from None
        except OSError:  # the file is short: inflating from the start says so
            found = None
        got = None if found is None else found.get(start, end)
        if found is None or got is None:
            self._seek_failed = True
            return None
        self._seeks.append(found)
        return got


class _Implausible(Exception):
    """Bytes read from a block boundary make no dynamic segment a linker writes (the member's
    end misplaced them: a corrupt or crafted stream); read them from the start instead."""


#: The d_tag values a dynamic segment may hold: the generic ones (37 so far, room for more),
#: and the OS- and processor-specific ranges.
_TAG_RANGES = ((0, 63), (0x6000000D, 0x7FFFFFFF))


def _check_plausible(
    stream: _Window | io.BufferedReader,
    elf: ELFFile,
    offset: int,
    length: int,
    table: int,
    table_size: int,
    values: list[int],
) -> None:
    """Raise :class:`_Implausible` unless the dynamic segment at ``offset`` holds only known
    tags up to a DT_NULL, and its string table starts with a NUL and has one before each
    string named (``values``), as every linker writes them."""
    width = 8 if elf.elfclass == 64 else 4
    layout = ("<" if elf.little_endian else ">") + ("qQ" if width == 8 else "iI")
    stream.seek(offset)
    raw = stream.read(length - length % (2 * width))
    for tag, _ in struct.iter_unpack(layout, raw):
        if tag == 0:
            break
        if not any(low <= tag <= high for low, high in _TAG_RANGES):
            raise _Implausible(f"d_tag {tag:#x}")
    else:
        raise _Implausible("no DT_NULL")
    for value in (0, *values):
        if value >= table_size:
            raise _Implausible(f"a string at {value}, past the table's {table_size} bytes")
        stream.seek(table + value - 1 if value else table)
        if stream.read(1) != b"\0":
            raise _Implausible(f"no NUL before the string at {value}")


def _facts(stream: _Window | io.BufferedReader, size: int, strict: bool = False) -> ElfFacts:
    """Read the facts with pyelftools' header and structure parsers; raises :class:`_Unread`
    (before pyelftools reads) for a range that is not inflated yet.

    The program headers and the dynamic segment are parsed one structure at a time: building
    pyelftools' segment objects would read the section headers too, which lie at the file's end
    and which the loader never reads."""
    reader = cast("IO[bytes]", stream)
    stream.seek(4)
    header_size = 64 if stream.read(1) == b"\x02" else 52
    if size < header_size:
        raise ELFError(f"{size} bytes, shorter than an ELF header ({header_size} bytes)")
    stream.seek(0)
    elf = ELFFile(reader)
    structs = elf.structs
    machine = str(elf["e_machine"])
    elf_type = str(elf["e_type"])
    count, entry_size, table_at = int(elf["e_phnum"]), int(elf["e_phentsize"]), int(elf["e_phoff"])
    if count and entry_size < structs.Elf_Phdr.sizeof():
        raise ELFError(f"e_phentsize {entry_size} is too small")
    _require(stream, table_at, count * entry_size, size, "its program headers")
    headers = [
        struct_parse(structs.Elf_Phdr, reader, table_at + n * entry_size) for n in range(count)
    ]
    needed: list[str] = []
    runpath: str | None = None
    rpath: str | None = None
    soname: str | None = None
    # The loader takes the last PT_DYNAMIC, and of each tag but DT_NEEDED the last.
    dynamic = [header for header in headers if header["p_type"] == "PT_DYNAMIC"][-1:]
    if strict and not dynamic:  # a shared object has one; program headers read misplaced?
        raise _Implausible("no PT_DYNAMIC")
    for header in dynamic:
        offset, length = int(header["p_offset"]), int(header["p_filesz"])
        _require(stream, offset, length, size, "its dynamic segment")
        entry = structs.Elf_Dyn.sizeof()
        tags = []
        for n in range(length // entry):
            if n >= DYNAMIC_CAP:
                raise ELFError(
                    f"its dynamic segment has more than {DYNAMIC_CAP} entries (not believed)"
                )
            tag = struct_parse(structs.Elf_Dyn, reader, offset + n * entry)
            if tag["d_tag"] == "DT_NULL":
                break
            tags.append((str(tag["d_tag"]), int(tag["d_val"])))
        last = dict(tags)
        address, table_size = last.get("DT_STRTAB"), last.get("DT_STRSZ")
        table = None if address is None else _file_offset(headers, address)
        if table is None or table_size is None:
            raise ELFError("its dynamic segment has no string table the loader can map")
        # and the last string's read: pyelftools reads strings 64 bytes at a time.
        _require(stream, table, table_size, size, "its dynamic string table", slack=64)

        def string(value: int, table: int = table, table_size: int = table_size) -> str:
            if value >= table_size:
                raise ELFError(f"a dynamic string at {value} lies past its table's end")
            raw = parse_cstring_from_stream(reader, table + value)
            return (raw or b"").decode("utf-8", "surrogateescape")

        if strict:
            named = [v for n, v in tags if n == "DT_NEEDED"]
            named += [last[n] for n in ("DT_RUNPATH", "DT_RPATH", "DT_SONAME") if n in last]
            _check_plausible(stream, elf, offset, length, table, table_size, named)
        needed = [string(value) for name, value in tags if name == "DT_NEEDED"]
        runpath = None if "DT_RUNPATH" not in last else string(last["DT_RUNPATH"])
        rpath = None if "DT_RPATH" not in last else string(last["DT_RPATH"])
        soname = None if "DT_SONAME" not in last else string(last["DT_SONAME"])
    return ElfFacts(
        machine=machine,
        elf_class=int(elf.elfclass),
        elf_type=elf_type,
        needed=tuple(needed),
        runpath=None if runpath is None else _split(runpath),
        rpath=None if rpath is None else _split(rpath),
        soname=soname,
    )


def _split(value: str) -> tuple[str, ...]:
    parts = tuple(m.group() for m in itertools.islice(_PATH_PART.finditer(value), PATH_CAP + 1))
    if len(parts) > PATH_CAP:
        raise ELFError(
            f"its RUNPATH or RPATH lists more than {PATH_CAP} directories (not believed)"
        )
    return parts


def _file_offset(headers: list[Any], address: int) -> int | None:
    """Where the loader finds virtual address ``address``: in the PT_LOAD segment holding it."""
    for header in headers:
        start = int(header["p_vaddr"])
        if header["p_type"] == "PT_LOAD" and start <= address < start + int(header["p_filesz"]):
            return address - start + int(header["p_offset"])
    return None


def _require(stream: object, start: int, length: int, size: int, what: str, slack: int = 0) -> None:
    if length > _TABLE_CAP or start + length > size:
        raise ELFError(f"{what} ({length} bytes at offset {start}) lie outside the file")
    if isinstance(stream, _Window):
        stream.require(start, length + slack)


def _parse(
    stream: _Window | io.BufferedReader, size: int, where: str, strict: bool = False
) -> ElfFacts:
    try:
        return _facts(stream, size, strict)
    except (_Unread, _Implausible):
        raise
    except (ELFError, UnicodeDecodeError, ValueError, KeyError, AttributeError) as exc:
        if strict:  # read from a block boundary: the whole member decides
            raise _Implausible(str(exc)) from None
        raise InvalidWheel(f"{where}: not a readable ELF file ({exc})") from None


def read_member_facts(
    fd: int, member: ZipMember, where: str, cancel: threading.Event | None = None
) -> tuple[FileKind, ElfFacts | None]:
    """What member ``member`` of the archive open as ``fd`` is, and its facts if it is ELF.

    ``where`` (``wheel: member``) starts the error of a member that is ELF but unreadable; once
    ``cancel`` is set, the next block read raises :class:`Cancelled`."""
    size = member.file_size
    inflater = _Inflater(fd, member, where.split(":", 1)[0], cancel)
    window = _Window(size)
    head_end = min(size, _HEAD)
    window.add(0, inflater.fetch(0, head_end))
    kind = file_kind(window.read(4) if size >= 4 else b"")
    if kind != "elf":
        return kind, None
    for _ in range(16):
        window.seek(0)
        try:
            return kind, _parse(window, size, where, strict=inflater.seeked)
        except _Implausible:
            # What the block boundary gave is not believed: everything from the start.
            inflater.stop_seeking()
            window = _Window(size)
            window.add(0, inflater.fetch(0, head_end))
        except _Unread as need:
            if need.end > size:
                raise InvalidWheel(f"{where}: not a readable ELF file (truncated)") from None
            end = min(size, max(need.end, need.start + _HEAD))
            window.add(need.start, inflater.fetch(need.start, end))
    raise InvalidWheel(f"{where}: not a readable ELF file (its tables keep moving)")


def read_file_facts(path: Path) -> tuple[FileKind, ElfFacts | None]:
    """What the file at ``path`` is, and its facts if it is ELF; a file that cannot be read is
    ``other``."""
    try:
        with path.open("rb") as stream:
            kind = file_kind(stream.read(4))
            if kind != "elf":
                return kind, None
            size = os.fstat(stream.fileno()).st_size
            return kind, _parse(stream, size, str(path))
    except OSError:
        return "other", None


def machine_of(path: Path) -> tuple[str, int] | None:
    """The (machine, class) of the ELF file at ``path`` (an interpreter), None if it is none."""
    try:
        with path.open("rb") as stream:
            if stream.read(4) != b"\x7fELF":
                return None
            stream.seek(0)
            elf = ELFFile(stream)
            return str(elf["e_machine"]), int(elf.elfclass)
    except (OSError, ELFError):
        return None
