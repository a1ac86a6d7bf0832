"""An installer ``WheelSource`` that presents a wheel as its patch plan would make it.

The patched ``.dist-info`` (renamed, with the new METADATA and the provenance file) exists only
here, in memory: no patched wheel is written and read back. Every member's data is checked while
it is read (size, CRC-32 and RECORD hash); a mismatch raises :class:`InvalidWheel` at the end of
that member, before its RECORD entry is ever used.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
from collections.abc import Callable, Iterable, Iterator
from typing import BinaryIO, cast

from installer.sources import WheelContentElement, WheelSource

from ..errors import InvalidWheel
from ..patch.plan import PatchPlan
from ..wheel.archive import ZipMember, iter_member_data, read_member
from ..wheel.entrypoints import installer_problem
from ..wheel.record import RecordRow, digest_bytes
from ..wheel.source_wheel import METADATA_CAP, SourceWheel
from ..wheel.verify import verify_members

__all__ = [
    "MemberStream",
    "PatchedWheelSource",
    "check_installable",
    "open_source",
]


class MemberStream(io.RawIOBase):
    """A member's uncompressed bytes, checked against its CRC-32, size and RECORD row.

    The parallel destination recognises it and does the reading on a worker thread instead.
    """

    def __init__(self, fd: int, member: ZipMember, row: RecordRow, where: str) -> None:
        super().__init__()
        self.fd = fd
        self.member = member
        self.row = row
        self.where = where
        self._pieces: Iterator[bytes] | None = None
        self._view = memoryview(b"")
        # Only signature files go without a hash; they are checked by whoever checks signatures.
        self._digest = hashlib.new(row.algorithm) if row.hash else None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self._pieces is None:
            self._pieces = iter(iter_member_data(self.fd, self.member, self.where))
        while not self._view:
            piece = next(self._pieces, None)
            if piece is None:
                if self._digest is not None:
                    check_digest(self._digest.digest(), self.row, self.member.name, self.where)
                return 0
            if self._digest is not None:
                self._digest.update(piece)
            self._view = memoryview(piece)
        count = min(len(buffer), len(self._view))
        buffer[:count] = self._view[:count]
        self._view = self._view[count:]
        return count


def check_digest(digest: bytes, row: RecordRow, name: str, where: str) -> None:
    if digest != row.digest:
        raise InvalidWheel(f"{where}: member {name!r} does not match its RECORD hash")


def is_executable(member: ZipMember) -> bool:
    return bool((member.external_attr >> 16) & stat.S_IXUSR)


class PatchedWheelSource(WheelSource):
    """``wheel`` as ``plan`` patches it (or as it is, without a plan)."""

    validation_error = InvalidWheel

    def __init__(
        self,
        wheel: SourceWheel,
        plan: PatchPlan | None,
        fd: int,
        late: Callable[[], dict[str, bytes]] | None = None,
    ) -> None:
        dist_info = plan.dist_info if plan is not None else wheel.dist_info
        distribution, _, version = dist_info.removesuffix(".dist-info").rpartition("-")
        super().__init__(distribution, version)
        self.wheel = wheel
        self.plan = plan
        self._fd = fd
        self._dist_info = dist_info
        data_dir = plan.data_dir if plan is not None else wheel.data_dir
        self._data_dir = data_dir or f"{distribution}-{version}.data"
        #: Files that exist only in the patched wheel, by their path in it.
        self._generated: dict[str, bytes] = {}
        skipped = {wheel.record_path}
        if plan is not None:
            skipped |= plan.replaced
            self._generated[plan.metadata_path] = plan.metadata
        #: ``.dist-info`` files made once every member is written (they may wait for the source
        #: wheel's sha256: the provenance and ``direct_url.json``).
        self._late = late
        #: Source members to install, by their path in the patched wheel.
        self._members = {
            self._rename(m.name): m
            for m in wheel.archive.members
            if not m.is_dir and m.name not in skipped
        }
        #: The member (as named in the source wheel) installer is working on, for its errors.
        self.current = f"{wheel.dist_info}/WHEEL"

    def _rename(self, name: str) -> str:
        return self.plan.rename(name) if self.plan is not None else name

    @property
    def dist_info_dir(self) -> str:
        return self._dist_info

    @property
    def data_dir(self) -> str:
        return self._data_dir

    @property
    def dist_info_filenames(self) -> list[str]:
        prefix = self._dist_info + "/"
        names = [*self._members, *self._generated]
        return sorted(
            name[len(prefix) :]
            for name in names
            if name.startswith(prefix) and "/" not in name[len(prefix) :]
        )

    def read_dist_info(self, filename: str) -> str:
        path = f"{self._dist_info}/{filename}"
        data = self._generated.get(path)
        self.current = path
        if data is None:
            member = self._members.get(path)
            if member is None:
                raise InvalidWheel(f"{self.wheel.filename}: has no {path}")
            self.current = member.name
            data = read_member(self._fd, member, self.wheel.filename, METADATA_CAP)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidWheel(f"{self.wheel.filename}: {path} is not valid UTF-8") from None

    def validate_record(self) -> None:
        """Check every member's data against its CRC-32 and RECORD row."""
        problems = verify_members(self.wheel)
        if problems:
            raise InvalidWheel(problems[0])

    def get_contents(self) -> Iterator[WheelContentElement]:
        """The largest members first, so the parallel destination starts the longest work
        first; then the generated files."""
        rows = self.wheel.record.by_path()
        where = self.wheel.filename
        ordered = sorted(self._members.items(), key=lambda item: -item[1].file_size)
        for path, member in ordered:
            self.current = member.name
            self.check_layout(path, member.name)
            row = rows[member.name]
            stream = MemberStream(self._fd, member, row, where)
            yield (path, row.hash, row.size), cast(BinaryIO, stream), is_executable(member)
        late = self._late() if self._late is not None else {}
        generated = {**self._generated, **{f"{self._dist_info}/{n}": d for n, d in late.items()}}
        for path, data in generated.items():
            self.current = path
            hash_field, size = digest_bytes(data)
            yield (path, hash_field, str(size)), io.BytesIO(data), False

    def planned_paths(self) -> Iterable[str]:
        """Every path this source yields, in the patched wheel."""
        return [*self._members, *self._generated]

    def check_layout(self, path: str, name: str) -> None:
        """A file in the ``.data`` directory must be inside one of its scheme directories.

        installer loops forever on a file named like the ``.data`` directory itself, and fails
        with a TypeError on one named like a scheme directory (``x.data/scripts``).
        """
        data_dir = self._data_dir
        if path == data_dir or (path.startswith(data_dir + "/") and path.count("/") < 2):
            raise InvalidWheel(
                f"{self.wheel.filename}: {name}: a file in the .data directory must be inside "
                "one of its scheme directories (purelib, platlib, headers, scripts, data)"
            )

    def check_entry_points(self) -> None:
        """Refuse an ``entry_points.txt`` that installer cannot make scripts from."""
        if "entry_points.txt" not in self.dist_info_filenames:
            return
        problem = installer_problem(self.read_dist_info("entry_points.txt"))
        if problem is not None:
            raise InvalidWheel(f"{self.wheel.filename}: {self.current}: {problem}")

    def installer_failure(self, exc: Exception) -> InvalidWheel:
        """One line for an exception installer raised while it worked on :attr:`current`."""
        problem = None
        if self.current.endswith("/entry_points.txt"):
            problem = installer_problem(self.read_dist_info("entry_points.txt"))
        if problem is None:
            detail = exc.args[-1] if exc.args and isinstance(exc.args[-1], str) else ""
            detail = " ".join(detail.split())
            problem = f"installer cannot install it ({type(exc).__name__}{': ' if detail else ''}"
            problem += f"{detail})"
        return InvalidWheel(f"{self.wheel.filename}: {self.current}: {problem}")


def check_installable(wheel: SourceWheel, plan: PatchPlan | None) -> None:
    """Refuse, before anything is written, what installer would fail on midway: a file where a
    ``.data`` scheme directory belongs, an ``entry_points.txt`` it cannot parse."""
    source, fd = open_source(wheel, plan, None)
    try:
        for path, member in source._members.items():
            source.check_layout(path, member.name)
        source.check_entry_points()
    finally:
        os.close(fd)


def open_source(
    wheel: SourceWheel, plan: PatchPlan | None, late: Callable[[], dict[str, bytes]] | None
) -> tuple[PatchedWheelSource, int]:
    """The source and the descriptor it reads from (the caller closes it)."""
    fd = os.open(wheel.path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    info = os.fstat(fd)
    if (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns) != wheel.identity:
        os.close(fd)
        raise InvalidWheel(f"{wheel.filename}: the file changed since it was read")
    return PatchedWheelSource(wheel, plan, fd, late), fd
