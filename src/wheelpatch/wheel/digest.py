"""The source wheel's sha256, computed in the background while the wheel is planned and copied.

hashlib releases the GIL on large buffers, so hashing runs on another core while the main thread
parses the wheel and the kernel copies its members: hashing a large wheel then costs almost no
wall time.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import os
import queue
import threading
from pathlib import Path

from ..errors import InvalidWheel

__all__ = ["FileDigest", "StreamDigest"]

_CHUNK = 4 << 20


class FileDigest:
    """sha256 of ``path``, started at once; ``pool`` (one worker) queues several files in turn."""

    def __init__(self, path: Path, pool: concurrent.futures.ThreadPoolExecutor | None = None):
        self._path = path
        self._fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        info = os.fstat(self._fd)
        #: (device, inode, size, mtime_ns) of the file being hashed.
        self.identity = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)
        self._stop = threading.Event()
        self._own_pool = pool is None
        self._pool = pool or concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="wheelpatch-hash"
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
            return self._future.result()
        finally:
            self.close()

    def close(self) -> None:
        """Stop hashing (if still running) and release the file."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self._future.cancel()
        concurrent.futures.wait([self._future])
        if self._own_pool:
            self._pool.shutdown(wait=True)
        os.close(self._fd)


class StreamDigest:
    """sha256 of bytes fed to it as they arrive (a download), on a thread of its own so that
    receiving and hashing use two cores; with ``branch_at``, also the state of the hash after
    that many bytes (the start of another file that begins with the same bytes)."""

    def __init__(self, branch_at: int = -1) -> None:
        self._queue: queue.Queue[bytes | None] = queue.Queue(16)
        self._digest = hashlib.sha256()
        self._branch_at = branch_at
        self._branch: hashlib._Hash | None = self._digest.copy() if branch_at == 0 else None
        self._fed = 0
        self._thread = threading.Thread(target=self._run, name="wheelpatch-hash", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        position = 0
        at = self._branch_at
        while (chunk := self._queue.get()) is not None:
            end = position + len(chunk)
            if self._branch is None and position < at <= end:
                self._digest.update(chunk[: at - position])
                self._branch = self._digest.copy()
                self._digest.update(chunk[at - position :])
            else:
                self._digest.update(chunk)
            position = end

    def feed(self, chunk: bytes) -> None:
        self._fed += len(chunk)
        self._queue.put(chunk)

    def close(self) -> tuple[str, hashlib._Hash | None]:
        """Wait for the hash: the hex digest of all that was fed, and the state after
        ``branch_at`` bytes (None if fewer came)."""
        self._queue.put(None)
        self._thread.join()
        return self._digest.hexdigest(), self._branch
