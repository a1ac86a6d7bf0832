"""Full verification of a wheel: structure, then every member's CRC-32, RECORD hash and size.

Members are checked in parallel threads: zlib and hashlib release the GIL, so decompression and
hashing use every core, while each thread holds at most one chunk in memory.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InvalidWheel
from .archive import ZipMember, iter_member_data
from .record import RecordRow
from .source_wheel import SourceWheel, read_wheel

__all__ = ["VerifyReport", "verify_members", "verify_wheel"]


@dataclass(frozen=True, slots=True)
class VerifyReport:
    wheel: str
    files: int
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_json(self) -> dict[str, Any]:
        return {
            "wheel": self.wheel,
            "ok": self.ok,
            "files": self.files,
            "problems": list(self.problems),
        }


def _check_member(fd: int, member: ZipMember, row: RecordRow | None, where: str) -> str | None:
    digest = hashlib.new(row.algorithm) if row is not None and row.hash else None
    try:
        for chunk in iter_member_data(fd, member, where):
            if digest is not None:
                digest.update(chunk)
    except InvalidWheel as exc:
        return str(exc)
    if row is not None and digest is not None and digest.digest() != row.digest:
        return f"{where}: member {member.name!r} does not match its RECORD hash"
    return None


def _groups(members: list[ZipMember], parts: int) -> list[list[ZipMember]]:
    """Split members, in file order, into about ``parts`` runs of similar compressed size:
    few tasks (little scheduling in Python) and sequential reads within each."""
    ordered = sorted(members, key=lambda m: m.header_offset)
    total = sum(m.compress_size for m in ordered) or 1
    share = total / parts
    groups: list[list[ZipMember]] = [[]]
    filled = 0
    for member in ordered:
        if filled >= share and groups[-1]:
            groups.append([])
            filled = 0
        groups[-1].append(member)
        filled += member.compress_size
    return groups


def verify_members(wheel: SourceWheel, *, workers: int | None = None) -> tuple[str, ...]:
    """Decompress every member of a wheel already read: each CRC-32, size and RECORD hash."""
    where = wheel.filename
    rows = wheel.record.by_path()
    files = [m for m in wheel.archive.members if not m.is_dir]
    threads = workers or min(32, os.cpu_count() or 1)
    fd = os.open(wheel.path, os.O_RDONLY | getattr(os, "O_BINARY", 0))

    def check(group: list[ZipMember]) -> dict[str, str]:
        problems = {}
        for member in group:
            problem = _check_member(fd, member, rows.get(member.name), where)
            if problem is not None:
                problems[member.name] = problem
        return problems

    try:
        # Biggest groups first, so that none finishes alone at the end.
        groups = sorted(
            _groups(files, threads * 8),
            key=lambda g: sum(m.compress_size for m in g),
            reverse=True,
        )
        found: dict[str, str] = {}
        with ThreadPoolExecutor(max_workers=threads) as pool:
            for problems in pool.map(check, groups):
                found.update(problems)
    finally:
        os.close(fd)
    return tuple(found[m.name] for m in files if m.name in found)


def verify_wheel(path: Path, *, workers: int | None = None) -> VerifyReport:
    """Check ``path`` completely; every problem found is in the report, none is raised."""
    try:
        wheel = read_wheel(path)
    except InvalidWheel as exc:
        return VerifyReport(path.name, 0, (str(exc),))
    files = sum(1 for m in wheel.archive.members if not m.is_dir)
    return VerifyReport(path.name, files, verify_members(wheel, workers=workers))
