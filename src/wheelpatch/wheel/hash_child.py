"""The child Python process that hashes source wheels, and the one started ahead.

The sha256 of a source wheel is the bound of ``wheelpatch patch`` (its provenance records it,
and hashing 554 MB takes longer than copying the members). Loading wheelpatch and parsing the
arguments took about 60 ms before the child could start on the first file; :func:`start_ahead`
starts it from the command's first lines (this module imports only what the interpreter has
loaded anyway) with the wheels the arguments seem to name, and the
:class:`~wheelpatch.wheel.digest.HashProcess` created later adopts it (:func:`adopt`). A guess
costs nothing but the other core: every answer names the file the child opened (device, inode,
size, mtime), which the waiter checks against the file it opened itself, and a file the command
asks for in another order than guessed gets a child of its own.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing alone takes 8 ms to import
    from collections.abc import Sequence
    from typing import Any, BinaryIO

__all__ = [
    "Ahead",
    "Child",
    "adopt",
    "discard",
    "end",
    "start",
    "start_ahead",
    "stop",
    "write_path",
]

#: For each hex-encoded path on stdin, a line ``dev ino size mtime_ns sha256`` (the file as
#: opened; ``changed`` instead of the hash when it changed while it was read), or
#: ``! reason``. Written for Python 3.10 (no file_digest).
CODE = r"""
import hashlib, os, sys
os.closerange(3, 1 << 16)  # posix_spawn passes on what the parent let be inherited
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


class Child:
    """A running child: its pipes, and the calls of :class:`subprocess.Popen` that the hashing
    needs. Spawned with :func:`os.posix_spawn` where there is one (importing subprocess alone
    takes 9 ms of the startup this module exists to save), else by :mod:`subprocess`."""

    def __init__(self, argv: list[str]) -> None:
        self.returncode: int | None = None
        self._popen: Any = None
        if not hasattr(os, "posix_spawn"):  # pragma: no cover - Windows
            import subprocess  # noqa: PLC0415

            self._popen = subprocess.Popen(
                argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
            )
            self.pid: int = self._popen.pid
            self.stdin: BinaryIO = self._popen.stdin
            self.stdout: BinaryIO = self._popen.stdout
            return
        read_in, write_in = os.pipe()  # both non-inheritable: dup2 below makes the child's
        read_out, write_out = os.pipe()
        try:
            self.pid = os.posix_spawn(
                argv[0],
                argv,
                os.environ,
                file_actions=[
                    (os.POSIX_SPAWN_DUP2, read_in, 0),
                    (os.POSIX_SPAWN_DUP2, write_out, 1),
                    (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0),
                ],
                setsid=True,  # a Ctrl-C is the parent's to handle; it stops the child
            )
        except BaseException:
            for fd in (write_in, read_out):
                os.close(fd)
            raise
        finally:
            os.close(read_in)
            os.close(write_out)
        self.stdin = os.fdopen(write_in, "wb")
        self.stdout = os.fdopen(read_out, "rb")

    def poll(self) -> int | None:
        """The exit status if the child has ended (reaped), else None."""
        if self._popen is not None:  # pragma: no cover - Windows
            self.returncode = self._popen.poll()
        elif self.returncode is None:
            self._reap(os.WNOHANG)
        return self.returncode

    def kill(self) -> None:
        if self._popen is not None:  # pragma: no cover - Windows
            self._popen.kill()
        elif self.returncode is None:
            import signal  # noqa: PLC0415 - 3 ms (enum), rarely needed

            try:  # noqa: SIM105 - contextlib is one import more on the way to the first hash
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:  # pragma: no cover - reaped already
                pass

    def wait(self, timeout: float | None = None) -> int:
        """Reap the child and return its exit status (negative: the signal that ended it);
        with ``timeout``, raise :class:`TimeoutError` if it has not ended by then."""
        if self._popen is not None:  # pragma: no cover - Windows
            self.returncode = self._popen.wait(timeout)
        elif timeout is not None:
            import time  # noqa: PLC0415

            deadline = time.monotonic() + timeout
            while self.poll() is None:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"child {self.pid} still running after {timeout} s")
                time.sleep(0.005)
        elif self.returncode is None:
            self._reap(0)
        assert self.returncode is not None
        return self.returncode

    def _reap(self, options: int) -> None:
        """``waitpid`` with ``options``; sets the exit status if the child is reaped."""
        try:
            pid, status = os.waitpid(self.pid, options)
        except ChildProcessError:  # reaped by the system (SIGCHLD ignored), as Popen says
            self.returncode = 0
        else:
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)


def start() -> Child | None:
    """A new child, or None where none can be started (no ``sys.executable``)."""
    if not sys.executable:
        return None
    try:
        return Child([sys.executable, "-I", "-S", "-c", CODE])
    except (OSError, NotImplementedError):  # no setsid for posix_spawn on this system
        return None


def _line(path: str | os.PathLike[str]) -> bytes:
    """What asks the child for the hash of ``path``."""
    return os.fsencode(path).hex().encode("ascii") + b"\n"


def write_path(child: Child, path: str | os.PathLike[str]) -> None:
    """Ask ``child`` for the hash of ``path`` (its answer is the next line it writes)."""
    child.stdin.write(_line(path))
    child.stdin.flush()


class Ahead:
    """A child started ahead, and the files it was asked for, as (device, inode), in order:
    their answers are the next lines it writes. ``pins`` hold each file open until the answers
    are no longer wanted, so that no other file can take its inode number meanwhile (a file
    deleted and written again, same size and mtime, would otherwise pass for the one hashed)."""

    def __init__(self, child: Child, pending: list[tuple[int, int]], pins: list[int]):
        self.child = child
        self.pending = pending
        self.pins = pins

    def release(self) -> None:
        """Close the pins (calling it again does nothing)."""
        pins, self.pins = self.pins, []
        for fd in pins:
            os.close(fd)


#: The child started ahead, until adopted or discarded (at most one).
_ahead: list[Ahead] = []

#: At most this many files are guessed, and this many bytes of their lines written: each line
#: and each answer then fits the pipes' buffers (64 KiB on Linux, 16 KiB on macOS), so that
#: neither side ever waits for the other before the command reads the answers.
MAX_GUESSES = 64
_MAX_LINES = 12 << 10


def start_ahead(paths: Sequence[str]) -> None:
    """Start the child now on ``paths`` (the wheels the command will ask for, in its order;
    up to the first that is not a regular file, or :data:`MAX_GUESSES`), for the next
    :func:`adopt`. Does nothing if there is none, or no child starts."""
    if _ahead:
        return
    lines: list[bytes] = []
    pending: list[tuple[int, int]] = []
    pins: list[int] = []
    try:
        for path in paths[:MAX_GUESSES]:
            line = _line(path)
            if sum(map(len, lines)) + len(line) > _MAX_LINES:
                break
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except (OSError, ValueError):
                break
            pins.append(fd)
            info = os.fstat(fd)
            if (info.st_mode & 0o170000) != 0o100000:  # not a regular file
                os.close(pins.pop())
                break
            lines.append(line)
            pending.append((info.st_dev, info.st_ino))
        child = start() if lines else None
    except BaseException:
        for fd in pins:
            os.close(fd)
        raise
    if child is None:
        for fd in pins:
            os.close(fd)
        return
    ahead = Ahead(child, pending, pins)
    try:
        child.stdin.write(b"".join(lines))
        child.stdin.flush()
    except OSError:
        _drop(ahead)
        return
    except BaseException:
        _drop(ahead)
        raise
    _ahead.append(ahead)


def adopt() -> Ahead | None:
    """The child started ahead, handed over once (then it is the caller's to end)."""
    return _ahead.pop() if _ahead else None


def discard() -> None:
    """Stop the child started ahead if nobody adopted it (the command ended without hashing:
    a usage error, a dry run)."""
    ahead = adopt()
    if ahead is not None:
        _drop(ahead)


def _drop(ahead: Ahead) -> None:
    stop(ahead.child)
    ahead.release()


def stop(child: Child) -> None:
    """Kill ``child`` and reap it, whatever it was doing."""
    child.kill()
    end(child)


def end(child: Child) -> None:
    """Close a child's pipes and reap it (it ends when its stdin closes, if not killed)."""
    for stream in (child.stdin, child.stdout):
        try:  # noqa: SIM105 - as above
            stream.close()
        except OSError:
            pass
    child.wait()
