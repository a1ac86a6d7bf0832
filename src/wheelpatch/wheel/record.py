"""The RECORD file: one CSV row per file, ``path,algorithm=urlsafe-b64-digest,size``.

Rows are kept with their exact text so that a rewritten RECORD differs from the original only in
the rows that had to change (renamed paths, rehashed files, RECORD's own row).
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

__all__ = ["ALLOWED_HASHES", "Record", "RecordError", "RecordRow", "digest_bytes", "record_hash"]

#: Algorithms a RECORD may use: hashlib's guaranteed ones, without the forbidden md5 and sha1.
ALLOWED_HASHES = frozenset(
    {
        "sha224",
        "sha256",
        "sha384",
        "sha512",
        "sha3_224",
        "sha3_256",
        "sha3_384",
        "sha3_512",
        "blake2b",
        "blake2s",
    }
)


_B64_LENGTHS = {name: (hashlib.new(name).digest_size * 8 + 5) // 6 for name in ALLOWED_HASHES}
_B64 = re.compile(r"[A-Za-z0-9_-]+")


def _check_path(path: str, where: str) -> None:
    if not path or path.startswith(("/", "./")) or "\\" in path:
        raise RecordError(f"{where}: path must be relative, '/'-separated and not start with './'")
    if any(part == ".." for part in path.split("/")) or (len(path) > 1 and path[1] == ":"):
        raise RecordError(f"{where}: path leaves the wheel")
    if any(ord(c) < 0x20 or c in "\x7f\x85\u2028\u2029" for c in path):
        raise RecordError(f"{where}: path contains a control character")


class RecordError(ValueError):
    """RECORD breaks a rule; the message says which (the caller adds the wheel's name)."""


def record_hash(digest: bytes, algorithm: str = "sha256") -> str:
    """Format a digest the way RECORD wants it: urlsafe base64 without padding."""
    return f"{algorithm}=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def digest_bytes(data: bytes) -> tuple[str, int]:
    """Return the RECORD hash field and size for ``data``."""
    return record_hash(hashlib.sha256(data).digest()), len(data)


class RecordRow(NamedTuple):
    path: str
    hash: str
    size: str
    #: The row's exact text, line ending included.
    line: str

    @property
    def algorithm(self) -> str:
        return self.hash.partition("=")[0]

    @property
    def digest(self) -> bytes:
        """The decoded digest (validated when the row was parsed)."""
        value = self.hash.partition("=")[2]
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


#: A row needing no closer look: plain path, sha256 hash, size. Anything else goes through csv.
_FAST_ROW = re.compile(
    r"([^,\"\\\x00-\x1f\x7f\x85\u2028\u2029]+),(sha256=[A-Za-z0-9_-]{43}),([0-9]+)\r?\n?"
)


def _slow_row(line: str, number: int, exempt: set[str]) -> tuple[str, str, str]:
    """Parse and check one row the fast pattern did not take (quoted, other hashes, empty)."""
    try:
        fields = next(csv.reader([line.rstrip("\r\n")]))
    except csv.Error as exc:
        raise RecordError(f"row {number} is not valid CSV ({exc})") from None
    if line.count('"') % 2:
        raise RecordError(f"row {number} has a quoted field that spans lines")
    if len(fields) != 3:
        raise RecordError(f"row {number} has {len(fields)} fields, not 3: {line.rstrip()!r}")
    path, hash_field, size = fields
    where = f"row {number} ({path!r})"
    _check_path(path, where)
    if hash_field:
        algorithm, sep, value = hash_field.partition("=")
        length = _B64_LENGTHS.get(algorithm)
        if not sep or length is None:
            raise RecordError(
                f"{where}: hash {hash_field!r} does not use an allowed algorithm "
                f"({', '.join(sorted(ALLOWED_HASHES))}; md5 and sha1 are forbidden)"
            )
        if len(value) != length or _B64.fullmatch(value) is None:
            raise RecordError(
                f"{where}: hash {hash_field!r} is not {length} characters of urlsafe base64 "
                "without padding"
            )
        if not (size.isdigit() and size.isascii()):
            raise RecordError(f"{where}: size {size!r} is not a whole number")
    elif path not in exempt:
        raise RecordError(f"{where}: has no hash (only RECORD itself may go without)")
    elif size and not (size.isdigit() and size.isascii()):
        raise RecordError(f"{where}: size {size!r} is not a whole number")
    return path, hash_field, size


@dataclass(frozen=True, slots=True)
class Record:
    rows: tuple[RecordRow, ...]
    newline: str

    @classmethod
    def parse(cls, data: bytes, record_path: str) -> Record:
        """Parse and check RECORD. Rows without a hash are allowed only for RECORD itself and
        for signature files, whose rows the spec leaves empty."""
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise RecordError(f"is not valid UTF-8 (byte {exc.start})") from None
        lines = text.splitlines(keepends=True)
        if any(not line.endswith("\n") for line in lines[:-1]):
            raise RecordError("contains a line break other than \\n or \\r\\n")
        rows: list[RecordRow] = []
        seen: set[str] = set()
        exempt = {record_path, record_path + ".jws", record_path + ".p7s"}
        fast = _FAST_ROW.fullmatch
        for number, line in enumerate(lines, start=1):
            match = fast(line)
            if match is not None:  # the common row: only the path needs a closer look
                path, hash_field, size = match.groups()
                wrapped = "/" + path + "/"
                if "/../" in wrapped or "/./" in wrapped or path[0] == "/" or path[1:2] == ":":
                    _check_path(path, f"row {number} ({path!r})")
            elif not line.strip():
                continue
            else:
                path, hash_field, size = _slow_row(line, number, exempt)
            if path in seen:
                raise RecordError(f"row {number} ({path!r}): path is listed twice")
            seen.add(path)
            rows.append(RecordRow(path=path, hash=hash_field, size=size, line=line))
        newline = "\r\n" if rows and rows[0].line.endswith("\r\n") else "\n"
        return cls(rows=tuple(rows), newline=newline)

    def by_path(self) -> dict[str, RecordRow]:
        return {row.path: row for row in self.rows}

    def row(self, path: str, hash_field: str, size: int | str) -> RecordRow:
        """A new row in this file's CSV dialect and line ending."""
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator=self.newline).writerow([path, hash_field, size])
        return RecordRow(path=path, hash=hash_field, size=str(size), line=buffer.getvalue())

    @staticmethod
    def render(rows: Iterable[RecordRow]) -> bytes:
        return "".join(
            row.line if row.line.endswith("\n") else row.line + "\n" for row in rows
        ).encode("utf-8")
