"""The source wheel's sha256, computed in the background while the wheel is planned and copied.

hashlib releases the GIL on large buffers, so hashing runs on another core while the main thread
parses the wheel and the kernel copies its members: hashing a large wheel then costs almost no
wall time.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import os
import threading
from pathlib import Path

from ..errors import InvalidWheel

__all__ = ["FileDigest"]

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
