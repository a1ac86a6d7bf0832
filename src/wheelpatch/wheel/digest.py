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

from ..errors import InvalidWheel

__all__ = ["FileDigest", "HashProcess", "StreamDigest"]

_CHUNK = 4 << 20

#: The child of :class:`HashProcess`: for each hex-encoded path on stdin, a line
#: ``dev ino size mtime_ns sha256`` (the file as opened; ``changed`` instead of the hash when
#: it changed while it was read), or ``! reason``. Written for Python 3.10 (no file_digest).
_CHILD = r"""
import hashlib, os, sys
out = sys.stdout.buffer
buf = bytearray(1 << 20)
view = memoryview(buf)
for line in sys.stdin.buffer:
    try:
        with open(bytes.fromhex(line.decode("ascii")), "rb", buffering=0) as f:
            before = os.fstat(f.fileno())
            digest = hashlib.sha256()
            left = before.st_size
            while left > 0:
                n = f.readinto(view[: min(len(buf), left)])
                if not n:
                    break
                digest.update(view[:n])
                left -= n
            after = os.fstat(f.fileno())
        same = left == 0 and (after.st_size, after.st_mtime_ns) == (
            before.st_size, before.st_mtime_ns)
        said = digest.hexdigest() if same else "changed"
        fields = (before.st_dev, before.st_ino, before.st_size, before.st_mtime_ns, said)
        out.write(("%d %d %d %d %s\n" % fields).encode())
    except OSError as exc:
        out.write(("! %s\n" % exc.strerror).encode())
    out.flush()
"""

_Identity = tuple[int, int, int, int]


class HashProcess:
    """Files hashed one after another, in the order submitted, by a child Python process.

    A thread of this process hands each file to the child and waits for its answer (it needs
    the GIL once a file, not once a chunk). A file whose hash is no longer wanted while the
    child hashes it stops the child; the next file starts another. Where no child can be
    started (no ``sys.executable``), the files are hashed on that thread instead."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[tuple[Path, concurrent.futures.Future[str]] | None] = (
            queue.SimpleQueue()
        )
        self._child: subprocess.Popen[bytes] | None = None
        self._current: concurrent.futures.Future[str] | None = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._serve, name="wheelpatch-hash", daemon=True)
        self._thread.start()

    def submit(self, path: Path) -> concurrent.futures.Future[str]:
        """The future answer for ``path``: ``dev ino size mtime_ns sha256`` as the child says."""
        future: concurrent.futures.Future[str] = concurrent.futures.Future()
        self._jobs.put((path, future))
        return future

    def cancel(self, future: concurrent.futures.Future[str]) -> None:
        """Give up ``future``: taken off the queue, or the child stopped if it hashes it now."""
        if future.cancel():
            return
        with self._lock:
            if self._current is future and self._child is not None:
                self._child.kill()

    def shutdown(self) -> None:
        """Wait for the files submitted, then end the child."""
        self._jobs.put(None)
        self._thread.join()

    def _serve(self) -> None:
        try:
            while (job := self._jobs.get()) is not None:
                path, future = job
                if not future.set_running_or_notify_cancel():
                    continue
                try:
                    future.set_result(self._hash(path, future))
                except BaseException as exc:  # handed to the waiter
                    future.set_exception(exc)
        finally:
            self._stop_child()

    def _hash(self, path: Path, future: concurrent.futures.Future[str]) -> str:
        with self._lock:  # the child first: cancel() kills the child of _current
            child = self._child = self._child or _start_child()
            self._current = future
        try:
            if child is None:
                return _hash_here(path)
            assert child.stdin is not None
            assert child.stdout is not None
            try:
                child.stdin.write(os.fsencode(path).hex().encode("ascii") + b"\n")
                child.stdin.flush()
                answer = child.stdout.readline().decode("ascii", "replace").strip()
            except OSError:
                answer = ""
            if not answer:  # stopped by cancel(), or died: the next file gets a new child
                self._stop_child()
                raise InvalidWheel(f"{path.name}: hashing stopped")
            return answer
        finally:
            with self._lock:
                self._current = None

    def _stop_child(self) -> None:
        with self._lock:
            child, self._child = self._child, None
        if child is None:
            return
        for stream in (child.stdin, child.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        child.wait()


def _start_child() -> subprocess.Popen[bytes] | None:
    if not sys.executable:
        return None
    try:
        return subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", _CHILD],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
    except OSError:
        return None


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
            self._future = self._process.submit(path)
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


class StreamDigest:
    """sha256 of bytes fed to it as they arrive (a download), on a thread of its own so that
    receiving and hashing use two cores; with ``branch_at``, also the state of the hash after
    that many bytes (the start of another file that begins with the same bytes).

    Pieces are handed to the thread in batches of about 1 MiB (an HTTP client yields 64 KiB at
    a time): each hand-over costs both threads the GIL, once a batch rather than once a piece."""

    _BATCH = 1 << 20

    def __init__(self, branch_at: int = -1) -> None:
        self._queue: queue.Queue[list[bytes] | None] = queue.Queue(16)
        self._digest = hashlib.sha256()
        self._branch_at = branch_at
        self._branch: hashlib._Hash | None = self._digest.copy() if branch_at == 0 else None
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._thread = threading.Thread(target=self._run, name="wheelpatch-hash", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        position = 0
        at = self._branch_at
        while (batch := self._queue.get()) is not None:
            for chunk in batch:
                end = position + len(chunk)
                if self._branch is None and position < at <= end:
                    self._digest.update(chunk[: at - position])
                    self._branch = self._digest.copy()
                    self._digest.update(chunk[at - position :])
                else:
                    self._digest.update(chunk)
                position = end

    def feed(self, chunk: bytes) -> None:
        self._pending.append(chunk)
        self._pending_size += len(chunk)
        if self._pending_size >= self._BATCH:
            self._queue.put(self._pending)
            self._pending = []
            self._pending_size = 0

    def close(self) -> tuple[str, hashlib._Hash | None]:
        """Wait for the hash: the hex digest of all that was fed, and the state after
        ``branch_at`` bytes (None if fewer came)."""
        if self._pending:
            self._queue.put(self._pending)
            self._pending = []
        self._queue.put(None)
        self._thread.join()
        return self._digest.hexdigest(), self._branch
