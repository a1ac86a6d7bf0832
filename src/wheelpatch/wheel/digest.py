"""The source wheel's sha256, computed in the background while the wheel is planned and copied.

hashlib releases the GIL only while it hashes a buffer: a thread of this process needs the GIL
back between chunks, and gets it late while planning holds it. :class:`HashProcess` hashes in a
child Python process instead, which shares no GIL with the planning (torch, 554 MB: 0.63 s
against 0.74 s for the whole ``wheelpatch patch``, interleaved runs); a thread pool still serves
where a pool does other work too, and where no child can be started.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import os
import queue
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO

from ..errors import InvalidWheel
from . import hash_child

__all__ = ["FileDigest", "FollowingDigest", "HashProcess"]

_CHUNK = 4 << 20

_Identity = tuple[int, int, int, int]


class HashProcess:
    """Files hashed one after another, in the order submitted, by a child Python process.

    A thread of this process hands each file to the child and waits for its answer (it needs
    the GIL once a file, not once a chunk). A file whose hash is no longer wanted while the
    child hashes it stops the child; the next file starts another. Where no child can be
    started (no ``sys.executable``), the files are hashed on that thread instead."""

    def __init__(self, ahead: hash_child.Ahead | None = None) -> None:
        self._jobs: queue.SimpleQueue[
            tuple[Path, tuple[int, int] | None, concurrent.futures.Future[str]] | None
        ] = queue.SimpleQueue()
        #: The child, and the files (device, inode) it was asked for before this pool took it
        #: (``ahead``: started by the command line before wheelpatch was loaded), in order.
        self._child: hash_child.Child | None = ahead.child if ahead is not None else None
        self._pending: list[tuple[int, int]] = list(ahead.pending) if ahead is not None else []
        self._ahead = ahead
        self._current: concurrent.futures.Future[str] | None = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._serve, name="wheelpatch-hash", daemon=True)
        self._thread.start()

    def submit(
        self, path: Path, opened: tuple[int, int] | None = None
    ) -> concurrent.futures.Future[str]:
        """The future answer for ``path``: ``dev ino size mtime_ns sha256`` as the child says.
        ``opened``: the (device, inode) of the file the caller opened, which a child started
        ahead may be hashing already."""
        future: concurrent.futures.Future[str] = concurrent.futures.Future()
        self._jobs.put((path, opened, future))
        return future

    def cancel(self, future: concurrent.futures.Future[str]) -> None:
        """Give up ``future``: taken off the queue, or the child stopped if it hashes it now
        (and let go of: the next file gets a child of its own)."""
        if future.cancel():
            return
        with self._lock:
            if self._current is future and self._child is not None:
                self._child.kill()
                self._child = None  # _hash sees it was let go of, and reaps it

    def shutdown(self) -> None:
        """Wait for the files submitted, then end the child."""
        self._jobs.put(None)
        self._thread.join()

    def _serve(self) -> None:
        try:
            while (job := self._jobs.get()) is not None:
                path, opened, future = job
                if not future.set_running_or_notify_cancel():
                    continue
                try:
                    future.set_result(self._hash(path, opened, future))
                except BaseException as exc:  # handed to the waiter
                    future.set_exception(exc)
        finally:
            with self._lock:
                child, self._child = self._child, None
            if child is not None:
                # Every answer wanted is in: stopped, not left to wind its interpreter down
                # (5 ms the command would wait), nor to hash guesses nobody asked for.
                hash_child.stop(child)
            if self._ahead is not None:
                self._ahead.release()

    def _hash(
        self,
        path: Path,
        opened: tuple[int, int] | None,
        future: concurrent.futures.Future[str],
    ) -> str:
        """The child's answer for ``path``. A child that died on its own (killed while idle,
        or no Python after all) is replaced once; then the file is hashed on this thread."""
        asked = False  # the child started ahead is on it already
        with self._lock:
            if self._pending:
                asked = opened is not None and self._pending.pop(0) == opened
                if not asked and self._child is not None:  # a guess in another order
                    hash_child.stop(self._child)
                    self._child = None
        for _ in range(2):
            answer = ""
            with self._lock:  # the child first: cancel() kills the child of _current
                if self._child is not None and self._child.poll() is not None:
                    hash_child.end(self._child)
                    self._child = None
                if self._child is None:
                    self._pending.clear()
                    asked = False
                    self._child = hash_child.start()
                child = self._child
                self._current = future
            try:
                answer = _hash_here(path) if child is None else _ask(child, path, asked)
            finally:
                asked = False
                with self._lock:
                    self._current = None
                    let_go = child is not None and self._child is not child
                    if not answer and not let_go:
                        self._child = None  # it died: not used again
            if child is not None and (let_go or not answer):
                hash_child.end(child)
            if answer:
                return answer
            if let_go:
                raise InvalidWheel(f"{path.name}: hashing stopped")
        return _hash_here(path)


def _ask(child: hash_child.Child, path: Path, asked: bool) -> str:
    """Hand ``path`` to ``child`` (unless it was ``asked`` for it already) and read its answer;
    empty if the child is gone."""
    try:
        if not asked:
            hash_child.write_path(child, path)
        return child.stdout.readline().decode("ascii", "replace").strip()
    except (OSError, ValueError):
        return ""


def _hash_here(path: Path) -> str:
    """The child's answer, worked out on this thread."""
    try:
        with open(path, "rb", buffering=0) as f:
            info = os.fstat(f.fileno())
            digest = hashlib.sha256()
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
    except OSError as exc:
        return f"! {exc.strerror}"
    return f"{info.st_dev} {info.st_ino} {info.st_size} {info.st_mtime_ns} {digest.hexdigest()}"


class FileDigest:
    """sha256 of ``path``, started at once: in a :class:`HashProcess` or a one-worker thread
    ``pool`` (each queues several files in turn), else on a thread of its own."""

    def __init__(
        self,
        path: Path,
        pool: concurrent.futures.ThreadPoolExecutor | HashProcess | None = None,
    ):
        self._path = path
        self._fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        info = os.fstat(self._fd)
        #: (device, inode, size, mtime_ns) of the file being hashed.
        self.identity: _Identity = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)
        self._stop = threading.Event()
        self._process = pool if isinstance(pool, HashProcess) else None
        self._own_pool = pool is None
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        if self._process is not None:
            self._future = self._process.submit(path, (info.st_dev, info.st_ino))
        else:
            self._pool = (
                pool
                if isinstance(pool, concurrent.futures.ThreadPoolExecutor)
                else concurrent.futures.ThreadPoolExecutor(
                    max_workers=1, thread_name_prefix="wheelpatch-hash"
                )
            )
            self._future = self._pool.submit(self._run, info.st_size)
        self._closed = False

    def _run(self, size: int) -> str:
        digest = hashlib.sha256()
        offset = 0
        while offset < size:
            if self._stop.is_set():
                return ""
            chunk = os.pread(self._fd, min(_CHUNK, size - offset), offset)
            if not chunk:
                raise InvalidWheel(f"{self._path.name}: the file shrank while it was being read")
            digest.update(chunk)
            offset += len(chunk)
        return digest.hexdigest()

    def result(self) -> str:
        """Wait for the hex digest."""
        try:
            answer = self._future.result()
            if self._process is None:
                return answer
            return self._check(answer)
        finally:
            self.close()

    def _check(self, answer: str) -> str:
        """The hash from a child's answer, which must be about the file this one opened."""
        name = self._path.name
        if answer.startswith("! "):
            raise InvalidWheel(f"{name}: cannot be read to be hashed ({answer[2:]})")
        *numbers, said = answer.split(" ")
        if tuple(int(n) for n in numbers) != self.identity or said == "changed":
            raise InvalidWheel(f"{name}: changed on disk while it was being hashed")
        return said

    def close(self) -> None:
        """Stop hashing (if still running) and release the file."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        if self._process is not None:
            if not self._future.done():
                self._process.cancel(self._future)
        else:
            self._future.cancel()
        concurrent.futures.wait([self._future])
        if self._own_pool and self._pool is not None:
            self._pool.shutdown(wait=True)
        os.close(self._fd)


def follow(fd: int, commands: IO[bytes], answers: IO[bytes]) -> None:
    """The work of a :class:`FollowingDigest`, in its child process or on a thread: hash the
    file open as ``fd`` as the commands say it grows.

    ``branch N``: keep the state after N bytes (-1: none); ``mark N``: the first N bytes are
    written (never answered); ``done N``: they are all, answer the hex sha256 of them and
    whether the state after N bytes was kept (``1``) or not (``0``); ``tail START END``: answer
    the hex sha256 of that state followed by the file's bytes from START to END (as they are
    now). A read that fails answers ``! reason`` at the next ``done`` or ``tail``, and nothing
    more is read: marks are never answered, so that the parent, which reads only the answers it
    asks for, can never wait on a pipe the child has filled."""
    digest = hashlib.sha256()
    branch: hashlib._Hash | None = None
    position = 0
    at = -1
    failed: str | None = None

    def read(start: int, end: int, into: hashlib._Hash) -> int:
        nonlocal branch
        while start < end:
            piece = os.pread(fd, min(1 << 20, end - start), start)
            if not piece:
                raise EOFError(f"the file ends at {start}, before {end}")
            if branch is None and at >= 0 and start <= at <= start + len(piece):
                into.update(piece[: at - start])
                branch = into.copy()
                into.update(piece[at - start :])
            else:
                into.update(piece)
            start += len(piece)
        return start

    for line in commands:
        word, *numbers = line.split()
        try:
            if word == b"branch":
                at = int(numbers[0])
                if at == 0:
                    branch = digest.copy()
            elif word in (b"mark", b"done") and failed is None:
                position = read(position, int(numbers[0]), digest)
            elif word == b"tail" and failed is None:
                if branch is None:
                    raise EOFError("no state was kept to go on from")
                tail = branch.copy()
                read(int(numbers[0]), int(numbers[1]), tail)
                answers.write(tail.hexdigest().encode() + b"\n")
        except (EOFError, OSError) as exc:
            failed = str(exc)
        if word == b"done":
            if failed is None:
                kept = b"1" if branch is not None else b"0"
                answers.write(digest.hexdigest().encode() + b" " + kept + b"\n")
            else:
                answers.write(f"! {failed}\n".encode())
        elif word == b"tail" and failed is not None:
            answers.write(f"! {failed}\n".encode())
        if word in (b"done", b"tail"):
            answers.flush()


def _follow_in_child() -> None:  # pragma: no cover - runs in the child process
    fd = int(sys.argv[1])
    follow(fd, sys.stdin.buffer, sys.stdout.buffer)


class FollowingDigest:
    """sha256 of a file while it is being written (a download), worked out by a child process
    that reads it back as :meth:`advance` says it grows, so that hashing shares no GIL with the
    threads receiving and sending it; with ``branch_at``, also the hash of another file that
    begins with that many of its bytes (:meth:`extend`). Where no child can be started, a thread
    does the same work.

    A thread of this process fed by queue took 0.7 s longer than receiving alone on a 554 MB
    wheel (it waited for the GIL between pieces); the child reads from the page cache what was
    just written, one copy more, on the other core."""

    def __init__(self, fd: int, branch_at: int = -1) -> None:
        self._child: subprocess.Popen[bytes] | None = None
        self._thread: threading.Thread | None = None
        root = str(Path(__file__).resolve().parents[2])  # the wheelpatch being run
        code = (
            f"import sys; sys.path.append({root!r}); "  # after the standard library
            "from wheelpatch.wheel.digest import _follow_in_child; _follow_in_child()"
        )
        if sys.executable and os.name == "posix":
            try:
                self._child = subprocess.Popen(
                    [sys.executable, "-I", "-S", "-c", code, str(fd)],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                    pass_fds=(fd,),
                    start_new_session=True,  # a Ctrl-C is the parent's; close() stops it
                )
            except OSError:
                self._child = None
        if self._child is not None:
            assert self._child.stdin is not None
            assert self._child.stdout is not None
            self._commands: IO[bytes] = self._child.stdin
            self._answers: IO[bytes] = self._child.stdout
        else:
            read_commands, write_commands = os.pipe()
            read_answers, write_answers = os.pipe()
            commands = os.fdopen(read_commands, "rb")
            answers = os.fdopen(write_answers, "wb")
            self._commands = os.fdopen(write_commands, "wb")
            self._answers = os.fdopen(read_answers, "rb")
            self._thread = threading.Thread(
                target=self._run_here, args=(fd, commands, answers), daemon=True
            )
            self._thread.start()
        self._send(f"branch {branch_at}")

    @staticmethod
    def _run_here(fd: int, commands: IO[bytes], answers: IO[bytes]) -> None:
        # The parent closing its ends (close()) ends this thread, as a killed child.
        with commands, answers, contextlib.suppress(OSError, ValueError):
            follow(fd, commands, answers)

    def _send(self, command: str) -> None:
        try:
            self._commands.write(command.encode("ascii") + b"\n")
            self._commands.flush()
        except (BrokenPipeError, ValueError):
            pass  # the child is gone: the answer says so

    def _answer(self) -> str:
        line = self._answers.readline().decode("ascii", "replace").strip()
        if not line or line.startswith("!"):
            raise InvalidWheel(f"hashing the file being received failed ({line[2:] or 'ended'})")
        return line

    def advance(self, mark: int) -> None:
        """The first ``mark`` bytes of the file are written."""
        self._send(f"mark {mark}")

    def finish(self, size: int) -> tuple[str, bool]:
        """The file is complete at ``size`` bytes: its hex sha256, and whether the state after
        ``branch_at`` bytes was kept (for :meth:`extend`)."""
        self._send(f"done {size}")
        digest, kept = self._answer().split(" ")
        return digest, kept == "1"

    def extend(self, start: int, end: int) -> str:
        """The hex sha256 of the first ``branch_at`` bytes followed by the file's bytes from
        ``start`` to ``end`` as they are now (the file rewritten after ``branch_at``)."""
        self._send(f"tail {start} {end}")
        return self._answer()

    def close(self) -> None:
        """End the child (at once, whatever it was doing: on an error nothing more is wanted
        of it) or the thread; calling it again does nothing."""
        with contextlib.suppress(OSError, ValueError):
            self._commands.close()
        if self._child is not None:
            self._child.kill()
            self._child.wait()
        with contextlib.suppress(OSError, ValueError):
            self._answers.close()  # before the join: a thread blocked writing an answer ends
        if self._thread is not None:
            self._thread.join()
