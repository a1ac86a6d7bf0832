"""A first download in flight: the bytes of a patched wheel handed from the thread that builds
it to the response that sends them, as they come.

The response announces the wheel's length (known from the page) and ends short if the build
fails, so a client never takes a wheel that did not check out for a whole one. A client that
stops reading is let go: the build carries on into the cache, without it."""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Iterator

__all__ = ["Relay"]

_DONE = object()
_CHUNK = 1 << 20
#: Chunks waiting for a slow client, at most (so memory stays bounded).
_WAITING = 16


class Relay:
    def __init__(self, size: int, prefix: int, patience: float) -> None:
        #: The patched wheel's length, for the response to announce.
        self.size = size
        #: How many of the first bytes are sent on while the upstream wheel arrives.
        self.prefix = prefix
        self._patience = patience
        self._queue: queue.Queue[object] = queue.Queue(_WAITING)
        self._gone = threading.Event()
        #: Bytes handed on so far.
        self.sent = 0

    def put(self, data: bytes) -> None:
        """Hand ``data`` on; a client that has not taken anything for ``patience`` seconds is
        taken to have left."""
        self.sent += len(data)
        if self._gone.is_set():
            return
        try:
            self._queue.put(data, timeout=self._patience)
        except queue.Full:
            self._gone.set()

    def send_file(self, fd: int, start: int, end: int) -> None:
        """Hand on bytes ``start`` to ``end`` of the file open as ``fd``."""
        while start < end and not self._gone.is_set():
            data = os.pread(fd, min(_CHUNK, end - start), start)
            if not data:
                break
            self.put(data)
            start += len(data)

    def finish(self, error: BaseException | None = None) -> None:
        """The end: all was sent, or ``error`` cut it short."""
        if not self._gone.is_set():
            try:
                self._queue.put(error if error is not None else _DONE, timeout=self._patience)
            except queue.Full:
                self._gone.set()

    def __iter__(self) -> Iterator[bytes]:
        try:
            while True:
                item = self._queue.get()
                if item is _DONE:
                    return
                if isinstance(item, BaseException):
                    raise ConnectionAbortedError(f"the wheel did not check out ({item})")
                assert isinstance(item, bytes)
                yield item
        finally:
            self._gone.set()
