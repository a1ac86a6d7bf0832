"""``FollowingDigest``: the hash of a file as it is written, worked out by a child process (or a
thread) reading it back, and the hash of another file sharing its first bytes."""

from __future__ import annotations

import hashlib
import os
import random
import sys
import threading
from pathlib import Path

import pytest

from wheelpatch.errors import InvalidWheel
from wheelpatch.wheel.digest import FollowingDigest

DATA = random.Random(5).randbytes(3 << 20)
TAIL = b"a new tail, written in place" * 1000


@pytest.fixture(params=["child", "thread"])
def where(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "thread":  # no interpreter to start a child with
        monkeypatch.setattr(sys, "executable", "")
    return str(request.param)


def _written(path: Path, pieces: int, digest: FollowingDigest) -> int:
    """Write DATA into ``path`` in ``pieces``, telling ``digest`` after each; the size."""
    step = len(DATA) // pieces + 1
    with path.open("r+b", buffering=0) as out:
        for start in range(0, len(DATA), step):
            out.write(DATA[start : start + step])
            digest.advance(min(start + step, len(DATA)))
    return len(DATA)


@pytest.mark.parametrize("branch_at", [-1, 0, 1, 1 << 20, (1 << 20) + 1, len(DATA)])
def test_the_file_and_its_branch_hash_as_hashlib_does(
    tmp_path: Path, where: str, branch_at: int
) -> None:
    path = tmp_path / "received.whl"
    path.write_bytes(b"")
    fd = os.open(path, os.O_RDWR)
    digest = FollowingDigest(fd, branch_at=branch_at)
    try:
        assert (digest._child is not None) == (where == "child")
        size = _written(path, 7, digest)
        found, kept = digest.finish(size)
        assert found == hashlib.sha256(DATA).hexdigest()
        assert kept == (branch_at >= 0)
        if kept:
            # The file rewritten after branch_at, as a patch in place does.
            os.pwrite(fd, TAIL, branch_at)
            os.ftruncate(fd, branch_at + len(TAIL))
            patched = digest.extend(branch_at, branch_at + len(TAIL))
            assert patched == hashlib.sha256(DATA[:branch_at] + TAIL).hexdigest()
    finally:
        digest.close()
        os.close(fd)


def test_a_file_shorter_than_announced_is_one_line(tmp_path: Path, where: str) -> None:
    path = tmp_path / "received.whl"
    path.write_bytes(DATA[:1000])
    fd = os.open(path, os.O_RDWR)
    digest = FollowingDigest(fd)
    try:
        with pytest.raises(InvalidWheel, match=r"^hashing the file being received failed \(the "):
            digest.finish(5000)
    finally:
        digest.close()
        os.close(fd)


def test_close_stops_the_child_whatever_it_was_doing(tmp_path: Path) -> None:
    path = tmp_path / "received.whl"
    path.write_bytes(random.Random(1).randbytes(64 << 20))
    fd = os.open(path, os.O_RDWR)
    digest = FollowingDigest(fd)
    child = digest._child
    assert child is not None
    digest.advance(64 << 20)  # work for it, never waited for
    digest.close()
    assert child.returncode is not None  # gone, not left hashing
    digest.close()  # again: nothing
    os.close(fd)


def test_marks_past_the_end_never_fill_a_pipe(tmp_path: Path, where: str) -> None:
    """Marks are never answered, even when reading fails: 20,000 of them past the end of an
    empty file, then the one line ``finish`` reads (a child that answered each would fill its
    pipe, and then the parent's)."""
    path = tmp_path / "received.whl"
    path.write_bytes(b"")
    fd = os.open(path, os.O_RDWR)
    digest = FollowingDigest(fd)
    outcome: list[BaseException | tuple[str, bool]] = []

    def run() -> None:
        try:
            for mark in range(1, 20_001):
                digest.advance(mark)
            outcome.append(digest.finish(20_000))
        except InvalidWheel as exc:
            outcome.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(timeout=60)
    try:
        assert not worker.is_alive(), "the parent blocked on a full pipe"
        [result] = outcome
        assert isinstance(result, InvalidWheel)
        assert "the file ends at 0, before 1" in str(result)
    finally:
        digest.close()
        os.close(fd)
