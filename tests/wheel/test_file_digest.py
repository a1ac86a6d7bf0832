"""``FileDigest`` through a ``HashProcess``: a child process hashes the files in turn, each
answer is checked to be about the file that was opened, and a hash no longer wanted stops."""

from __future__ import annotations

import hashlib
import os
import random
import sys
import time
from pathlib import Path

import pytest

from wheelpatch.errors import InvalidWheel
from wheelpatch.wheel.digest import FileDigest, HashProcess


def _files(tmp_path: Path, sizes: list[int]) -> list[Path]:
    rng = random.Random(11)
    paths = []
    for index, size in enumerate(sizes):
        path = tmp_path / f"f{index}.whl"
        path.write_bytes(rng.randbytes(size))
        paths.append(path)
    return paths


def test_files_are_hashed_in_a_child_as_hashlib_does(tmp_path: Path) -> None:
    paths = _files(tmp_path, [0, 1, 1 << 20, (3 << 20) + 17])
    pool = HashProcess()
    try:
        digests = [FileDigest(path, pool) for path in paths]
        answers = [digest.result() for digest in digests]
        child = pool._child
        assert child is not None  # hashed in a child, not on the thread
        assert child.pid != os.getpid()
    finally:
        pool.shutdown()
    assert answers == [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]
    assert pool._child is None  # ended with the pool


def test_without_an_interpreter_to_start_the_thread_hashes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (path,) = _files(tmp_path, [5000])
    monkeypatch.setattr(sys, "executable", "")
    pool = HashProcess()
    try:
        assert FileDigest(path, pool).result() == hashlib.sha256(path.read_bytes()).hexdigest()
        assert pool._child is None
    finally:
        pool.shutdown()


def test_a_file_replaced_after_it_was_opened_is_refused(tmp_path: Path) -> None:
    first, second = _files(tmp_path, [4096, 4096])
    pool = HashProcess()
    try:
        # The pool is busy with a larger file while ``first`` is swapped for another one.
        (big,) = _files_big(tmp_path)
        ahead = FileDigest(big, pool)
        digest = FileDigest(first, pool)
        os.replace(second, first)  # another inode under the name the child will open
        assert ahead.result() == hashlib.sha256(big.read_bytes()).hexdigest()
        with pytest.raises(InvalidWheel, match=r"^f0\.whl: changed on disk while it was being"):
            digest.result()
    finally:
        pool.shutdown()


def _files_big(tmp_path: Path) -> list[Path]:
    path = tmp_path / "big.whl"
    path.write_bytes(random.Random(3).randbytes(48 << 20))
    return [path]


def test_an_unreadable_file_is_one_line(tmp_path: Path) -> None:
    (path,) = _files(tmp_path, [100])
    pool = HashProcess()
    try:
        digest = FileDigest(path, pool)  # opened here; gone before the child opens it
        path.unlink()
        with pytest.raises(InvalidWheel, match=r"^f0\.whl: "):
            digest.result()
    finally:
        pool.shutdown()


def test_closing_a_hash_being_worked_on_stops_the_child_and_the_next_file_goes_on(
    tmp_path: Path,
) -> None:
    (big,) = _files_big(tmp_path)
    (small,) = _files(tmp_path, [1000])
    pool = HashProcess()
    try:
        stopped = FileDigest(big, pool)
        deadline = time.monotonic() + 30
        while pool._current is None and time.monotonic() < deadline:  # the child has it
            time.sleep(0.001)
        child = pool._child
        assert child is not None
        stopped.close()
        assert child.wait(timeout=30) != 0  # killed, not finished
        after = FileDigest(small, pool)
        assert after.result() == hashlib.sha256(small.read_bytes()).hexdigest()
        assert pool._child is not None
        assert pool._child.pid != child.pid  # a new child for the next file
    finally:
        pool.shutdown()


def test_a_child_that_died_while_idle_is_replaced(tmp_path: Path) -> None:
    first, second = _files(tmp_path, [2000, 3000])
    pool = HashProcess()
    try:
        assert FileDigest(first, pool).result() == hashlib.sha256(first.read_bytes()).hexdigest()
        child = pool._child
        assert child is not None
        child.kill()  # an OOM kill, say, between two files
        child.wait()
        assert FileDigest(second, pool).result() == hashlib.sha256(second.read_bytes()).hexdigest()
        assert pool._child is not None
        assert pool._child.pid != child.pid
    finally:
        pool.shutdown()


def test_giving_up_a_hash_already_answered_fails_nothing_after_it(tmp_path: Path) -> None:
    first, second = _files(tmp_path, [2000, 3000])
    pool = HashProcess()
    try:
        done = FileDigest(first, pool)
        assert done.result() == hashlib.sha256(first.read_bytes()).hexdigest()
        done.close()  # again, after its answer: nothing of the child is stopped
        assert FileDigest(second, pool).result() == hashlib.sha256(second.read_bytes()).hexdigest()
    finally:
        pool.shutdown()
