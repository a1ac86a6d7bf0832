"""A first download in flight: the response follows the file the build writes, as far as the
build says its bytes are final.

The build never waits for the client: it writes at the speed of the upstream and the disk, and
moves a mark forward (:meth:`Relay.advance`); the response reads the file up to the mark, a
chunk at a time, on threads the caller chooses. A client that stops reading costs nothing but
its connection. The response announces the wheel's length and ends short if the build fails,
so a client never takes a wheel that did not check out for a whole one."""

from __future__ import annotations

import os
import threading

__all__ = ["Relay"]

_CHUNK = 2 << 20


class Relay:
    def __init__(self, size: int, prefix: int) -> None:
        #: The patched wheel's length, for the response to announce.
        self.size = size
        #: How many of the first bytes may be sent while the upstream wheel still arrives.
        self.prefix = prefix
        self._changed = threading.Condition()
        self._fd = -1
        self._ready = 0
        self._error: BaseException | None = None
        self._done = False
        self._position = 0

    @property
    def attached(self) -> bool:
        return self._fd >= 0

    def attach(self, fd: int) -> None:
        """The file the wheel is being written to (a duplicate of ``fd`` is kept: it stays
        readable when the file is renamed into the cache, or evicted from it)."""
        with self._changed:
            if self._fd < 0:
                self._fd = os.dup(fd)
                self._changed.notify_all()

    def advance(self, ready: int) -> None:
        """The first ``ready`` bytes of the file are the wheel's own, for good."""
        with self._changed:
            if ready > self._ready:
                self._ready = min(ready, self.size)
                self._changed.notify_all()

    def finish(self, error: BaseException | None = None) -> None:
        """The end: every byte is ready, or ``error`` cut it short."""
        with self._changed:
            self._error = error
            self._done = True
            self._changed.notify_all()

    def next_chunk(self, wait: float = 1.0) -> bytes | None:
        """The next bytes to send; ``b""`` at the end, None when none came within ``wait``
        seconds (so that the caller can notice the client has left). Raises when the build
        failed before the last byte."""
        with self._changed:
            if self._ready <= self._position and not self._done:
                self._changed.wait(wait)
            ready, fd, done, error = self._ready, self._fd, self._done, self._error
        if self._position >= self.size:
            return b""
        if ready > self._position and fd >= 0:
            data = os.pread(fd, min(_CHUNK, ready - self._position), self._position)
            if data:
                self._position += len(data)
                return data
        if done:
            raise ConnectionAbortedError(
                f"the wheel did not check out ({error})" if error else "the wheel was cut short"
            )
        return None

    def close(self) -> None:
        with self._changed:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
