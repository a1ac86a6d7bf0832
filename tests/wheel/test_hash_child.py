"""The hash child started ahead (before wheelpatch is loaded) on the wheels the arguments seem to
name: a :class:`HashProcess` that adopts it gets the same answers as one that starts its own,
whatever order the files are asked for in and whatever happened to them meanwhile, and a child
nobody adopts, or one still busy with guesses nobody asked for, is stopped."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import CliResult
from wheelpatch.cli import launch
from wheelpatch.errors import InvalidWheel
from wheelpatch.wheel import hash_child
from wheelpatch.wheel.digest import FileDigest, HashProcess


@pytest.fixture(autouse=True)
def _nothing_left_ahead() -> Iterator[None]:
    hash_child.discard()
    yield
    hash_child.discard()


def _files(tmp_path: Path, sizes: list[int]) -> list[Path]:
    rng = random.Random(5)
    paths = []
    for index, size in enumerate(sizes):
        path = tmp_path / f"w{index}.whl"
        path.write_bytes(rng.randbytes(size))
        paths.append(path)
    return paths


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _hashed_ahead_while(path: Path, change: Callable[[], object]) -> str:
    """The hash of ``path`` guessed ahead, with ``change`` made after the command opened it:
    the hex digest, or the error's line."""
    hash_child.start_ahead([str(path)])
    pool = HashProcess(hash_child.adopt())
    try:
        digest = FileDigest(path, pool)
        change()
        try:
            return digest.result()
        except InvalidWheel as exc:
            return str(exc)
    finally:
        pool.shutdown()


def test_guessed_wheels_are_answered_by_the_child_started_ahead(tmp_path: Path) -> None:
    paths = _files(tmp_path, [10, 1 << 20, 70000])
    asked = [paths[0], paths[1], paths[2], paths[1]]  # a wheel given twice is hashed twice
    hash_child.start_ahead([str(p) for p in asked])
    ahead = hash_child.adopt()
    assert ahead is not None
    assert hash_child.adopt() is None  # handed over once
    assert ahead.pending == [(p.stat().st_dev, p.stat().st_ino) for p in asked]
    assert len(ahead.pins) == 4  # held open: no other file can take their inode numbers
    pool = HashProcess(ahead)
    try:
        answers = [FileDigest(path, pool).result() for path in asked]
        assert pool._child is ahead.child  # no other child was needed
        assert pool._pending == []
    finally:
        pool.shutdown()
    assert answers == [_sha(p) for p in asked]
    assert ahead.child.returncode is not None  # ended with the pool
    assert ahead.pins == []  # let go with the pool


def test_guesses_stop_at_the_first_argument_that_is_no_file(tmp_path: Path) -> None:
    first, second = _files(tmp_path, [10, 20])
    (tmp_path / "dir.whl").mkdir()
    for stop in (tmp_path / "dir.whl", tmp_path / "missing.whl"):
        hash_child.start_ahead([str(first), str(stop), str(second)])
        ahead = hash_child.adopt()
        assert ahead is not None
        assert ahead.pending == [(first.stat().st_dev, first.stat().st_ino)]
        assert len(ahead.pins) == 1
        pool = HashProcess(ahead)
        pool.shutdown()
    hash_child.start_ahead([str(tmp_path / "missing.whl"), str(first)])
    assert hash_child.adopt() is None  # nothing to guess: no child


def test_thousands_of_wheels_are_guessed_only_as_far_as_the_pipes_hold(tmp_path: Path) -> None:
    # Every line written ahead and every answer must fit the pipes: the child answers the
    # first files while nobody reads, and the command asks for the rest later.
    paths = []
    for n in range(3000):
        path = tmp_path / f"wheel_with_a_fairly_long_name_{n:05d}-1.0-py3-none-any.whl"
        path.write_bytes(b"%d" % n)
        paths.append(path)
    hash_child.start_ahead([str(p) for p in paths])  # returns at once (no wait, no deadlock)
    ahead = hash_child.adopt()
    assert ahead is not None
    assert 0 < len(ahead.pending) <= hash_child.MAX_GUESSES
    pool = HashProcess(ahead)
    try:
        digests = [FileDigest(path, pool) for path in paths[:200]]
        assert [d.result() for d in digests] == [_sha(p) for p in paths[:200]]
    finally:
        pool.shutdown()


def test_files_asked_for_in_another_order_get_a_child_of_their_own(tmp_path: Path) -> None:
    first, second = _files(tmp_path, [48 << 20, 5000])
    hash_child.start_ahead([str(first), str(second)])
    ahead = hash_child.adopt()
    assert ahead is not None
    pool = HashProcess(ahead)
    try:
        assert FileDigest(second, pool).result() == _sha(second)
        assert ahead.child.returncode is not None
        assert ahead.child.returncode < 0  # stopped in the middle of the guess
        assert pool._child is not None
        assert pool._child.pid != ahead.child.pid
        assert FileDigest(first, pool).result() == _sha(first)
    finally:
        pool.shutdown()


def test_a_guessed_file_replaced_before_it_is_opened_is_hashed_anew(tmp_path: Path) -> None:
    first, other = _files(tmp_path, [30000, 40000])
    hash_child.start_ahead([str(first)])
    ahead = hash_child.adopt()
    assert ahead is not None
    os.replace(other, first)  # the name now holds another file, which the command opens
    pool = HashProcess(ahead)
    try:
        assert FileDigest(first, pool).result() == _sha(first)  # not "changed on disk"
    finally:
        pool.shutdown()


def test_a_guessed_file_replaced_after_it_was_opened_is_never_given_the_new_hash(
    tmp_path: Path,
) -> None:
    first, other = _files(tmp_path, [30000, 40000])
    original, replacement = _sha(first), _sha(other)
    # Whether the child opened the original (the file the command opened) or the new one
    # (then its answer names another inode), the hash is never the new file's.
    answer = _hashed_ahead_while(first, lambda: os.replace(other, first))
    assert answer in (original, "w0.whl: changed on disk while it was being hashed")
    assert answer != replacement


def test_a_dead_child_started_ahead_is_replaced(tmp_path: Path) -> None:
    (path,) = _files(tmp_path, [9000])
    hash_child.start_ahead([str(path)])
    ahead = hash_child.adopt()
    assert ahead is not None
    ahead.child.kill()
    ahead.child.wait()
    pool = HashProcess(ahead)
    try:
        assert FileDigest(path, pool).result() == _sha(path)
        assert pool._child is not None
        assert pool._child.pid != ahead.child.pid
    finally:
        pool.shutdown()


def test_guesses_nobody_asked_for_are_stopped_at_shutdown(tmp_path: Path) -> None:
    asked, never = _files(tmp_path, [1000, 64 << 20])
    hash_child.start_ahead([str(asked), str(never)])
    ahead = hash_child.adopt()
    assert ahead is not None
    pool = HashProcess(ahead)
    assert FileDigest(asked, pool).result() == _sha(asked)
    pool.shutdown()
    assert ahead.child.returncode is not None
    assert ahead.child.returncode < 0  # killed, not left to hash 64 MiB nobody wants


def test_a_child_nobody_adopts_is_discarded(tmp_path: Path) -> None:
    (path,) = _files(tmp_path, [64 << 20])
    hash_child.start_ahead([str(path)])
    ahead = hash_child._ahead[0]
    hash_child.discard()
    assert hash_child.adopt() is None
    assert ahead.child.returncode is not None
    assert ahead.child.returncode < 0


def test_an_unreadable_guess_is_one_line(tmp_path: Path) -> None:
    (path,) = _files(tmp_path, [100])
    expected = _sha(path)
    # Gone before the child opens it, or not: either answer is right.
    answer = _hashed_ahead_while(path, path.unlink)
    assert answer == expected or answer.startswith("w0.whl: cannot be read to be hashed (")


@pytest.mark.parametrize(
    ("args", "guessed"),
    [
        (["patch", "W"], ["W"]),
        (["patch", "--force", "-o", "out", "W", "V"], ["W", "V"]),
        (["patch", "--config", "c.toml", "W", "--index", "site", "V"], ["W", "V"]),
        (["patch", "--conf", "c.toml", "--output-dir=out", "-oout", "W"], ["W"]),
        (["patch", "--json", "--", "-W"], ["-W"]),
        (["patch", "--dry-run", "W"], None),
        (["patch", "--dry", "W"], None),  # argparse's prefix of --dry-run
        (["patch", "-h", "W"], None),
        (["verify", "W"], None),
        (["show", "W"], None),
        ([], None),
    ],
)
def test_the_launcher_guesses_the_wheels_of_a_patch_that_hashes(
    monkeypatch: pytest.MonkeyPatch, args: list[str], guessed: list[str] | None
) -> None:
    seen: list[list[str]] = []
    monkeypatch.setattr(hash_child, "start_ahead", lambda paths: seen.append(list(paths)))
    monkeypatch.setattr("wheelpatch.cli.wheelpatch.main", lambda argv: 0)
    assert launch.main(args) == 0
    assert seen == ([] if guessed is None else [guessed])


def test_the_console_script_with_sigchld_ignored(
    tmp_path: Path, make_wheel: Callable[..., Path], config_file: Callable[[str], Path]
) -> None:
    # SIGCHLD ignored survives exec: the system reaps the children, and waitpid says ECHILD.
    wheel = make_wheel(requires=["triton>=2"])
    config = config_file(
        '[tool.wheelpatch]\nlocal-version = "x.1"\n\n'
        '[tool.wheelpatch.overrides.demo]\nremove = ["triton"]\n'
    )
    base = [sys.executable, "-m", "wheelpatch", "patch", "--config", str(config)]

    def ignoring() -> None:
        signal.signal(signal.SIGCHLD, signal.SIG_IGN)

    for extra, code in ((["--force"], 0), (["--bogus"], 2)):
        done = subprocess.run(
            [*base, *extra, "-o", str(tmp_path / "out"), str(wheel), str(wheel)],
            capture_output=True,
            text=True,
            check=False,
            preexec_fn=ignoring,  # the point of the test
        )
        assert done.returncode == code, done.stderr
        assert "Traceback" not in done.stderr
        assert "Exception" not in done.stderr


def test_the_console_script_writes_what_the_library_call_writes(
    tmp_path: Path,
    make_wheel: Callable[..., Path],
    config_file: Callable[[str], Path],
    cli: Callable[..., CliResult],
) -> None:
    """``python -m wheelpatch patch`` (the launcher, hashing ahead) against the in-process
    main: byte-identical outputs, the source's sha256 in the provenance."""
    wheel = make_wheel(requires=["triton>=2", "numpy"])
    config = config_file(
        '[tool.wheelpatch]\nlocal-version = "x.1"\n\n'
        '[tool.wheelpatch.overrides.demo]\nremove = ["triton"]\n'
    )
    result = cli("patch", "--config", config, "-o", tmp_path / "a", wheel)
    assert result.code == 0, result.err
    argv = ["patch", "--config", str(config), "-o", str(tmp_path / "b"), str(wheel)]
    done = subprocess.run(
        [sys.executable, "-m", "wheelpatch", *argv],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    (a,) = (tmp_path / "a").iterdir()
    (b,) = (tmp_path / "b").iterdir()
    assert a.name == b.name == "demo-1.0+x.1-py3-none-any.whl"
    assert a.read_bytes() == b.read_bytes()
    with zipfile.ZipFile(b) as archive:
        provenance = json.loads(archive.read("demo-1.0+x.1.dist-info/wheelpatch.json"))
    assert _sha(wheel) in json.dumps(provenance)


def test_a_guessed_file_deleted_and_written_again_alike_is_hashed_anew(tmp_path: Path) -> None:
    # Same size, same mtime: only the inode tells them apart, and the pin keeps the old one's
    # number from being given to the new file.
    path = tmp_path / "w.whl"
    path.write_bytes(b"A" * 100_000)
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    hash_child.start_ahead([str(path)])
    ahead = hash_child.adopt()
    assert ahead is not None
    time.sleep(0.2)  # the child hashes it and closes it (without the pin, its inode is free)
    path.unlink()
    path.write_bytes(b"B" * 100_000)
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    pool = HashProcess(ahead)
    try:
        assert FileDigest(path, pool).result() == hashlib.sha256(b"B" * 100_000).hexdigest()
    finally:
        pool.shutdown()


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="lists descriptors in /proc")
def test_the_child_keeps_no_descriptor_of_the_parent(tmp_path: Path) -> None:
    (path,) = _files(tmp_path, [10])
    read_end, write_end = os.pipe()
    os.set_inheritable(write_end, True)  # posix_spawn would pass it on
    try:
        child = hash_child.start()
        assert child is not None
        try:
            hash_child.write_path(child, path)
            assert child.stdout.readline().split()[-1].decode() == _sha(path)
            assert sorted(os.listdir(f"/proc/{child.pid}/fd")) == ["0", "1", "2"]
        finally:
            hash_child.end(child)
        assert child.returncode == 0
    finally:
        os.close(read_end)
        os.close(write_end)
