"""One install's undo log: files moved aside, files and directories created, and whether it
finished.

The previous version of a distribution (and any file of another one that the new wheel
overwrites) is renamed into a hidden directory in the environment's root, on the same file system,
so moving it away and back is atomic per file and costs no copy. Every step is appended to a
journal in that directory *before* it is taken, and the journal stays locked while the install
runs. If the process dies (SIGKILL, power cut, OOM), the next install into the environment finds
the unlocked journal and replays it backwards (:func:`recover`): the previous version is back, and
nothing of the interrupted install is left, unless the journal says it had finished.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from pathlib import Path

from ..errors import ConfigError

__all__ = ["PLATFORM_ERROR", "STASH_PREFIX", "Stash", "lock_file", "recover", "require_file_locks"]

#: Why ``wheelpatch-install`` refuses to start where there is no ``fcntl`` (Windows).
PLATFORM_ERROR = (
    "wheelpatch-install needs POSIX file locks (fcntl), which this Python does not have: it "
    "runs on Linux and macOS, not on Windows (there, patch the wheels with 'wheelpatch patch' "
    "and install them with pip or uv)"
)

STASH_PREFIX = ".wheelpatch-stash-"
_JOURNAL = "journal"


def require_file_locks() -> None:
    """Refuse to start (one line, exit 2) where ``fcntl`` cannot be imported."""
    try:
        import fcntl  # noqa: F401, PLC0415 - imported where used: there is none on Windows
    except ImportError:
        raise ConfigError(PLATFORM_ERROR) from None


def lock_file(fd: int, *, wait: bool) -> bool:
    """Take an exclusive ``flock`` on ``fd``; without ``wait``, say whether it was free."""
    try:
        import fcntl  # noqa: PLC0415 - imported where used: there is none on Windows
    except ImportError:
        require_file_locks()
        raise
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        return False
    return True


def _move(source: Path, target: Path) -> None:
    try:
        os.rename(source, target)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        shutil.move(os.fspath(source), target)  # another file system: copy, then delete


class Stash:
    """The undo log of one install into the environment rooted at ``root``."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.dir = Path(tempfile.mkdtemp(prefix=STASH_PREFIX, dir=root))
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)
        self._journal: int | None = os.open(self.dir / _JOURNAL, flags, 0o600)
        lock_file(self._journal, wait=True)  # held until the install is over
        #: (original path, stashed path), in the order they were moved.
        self.moved: list[tuple[Path, Path]] = []

    def _log(self, *fields: str) -> None:
        assert self._journal is not None, "the stash is closed"
        # One write per entry, O_APPEND: entries from worker threads never interleave.
        os.write(self._journal, (json.dumps(fields) + "\n").encode("utf-8", "surrogateescape"))

    def put(self, path: Path) -> None:
        """Move ``path`` (a file, a symlink or a whole directory) aside."""
        stashed = self.dir / str(len(self.moved))
        self._log("moved", os.fspath(path), os.fspath(stashed))
        _move(path, stashed)
        self.moved.append((path, stashed))

    def created(self, path: str | Path) -> None:
        """Say that ``path`` is about to be created by the install."""
        self._log("created", os.fspath(path))

    def created_dir(self, path: str | Path) -> None:
        self._log("dir", os.fspath(path))

    def restore(self) -> None:
        """Put everything back where it was, the last moved first (the caller has removed what
        the install created)."""
        for original, stashed in reversed(self.moved):
            _put_back(original, stashed)
        self.moved.clear()
        self._close()

    def commit(self) -> None:
        """The install succeeded: delete what was moved aside."""
        self._log("done")
        self.moved.clear()
        self._close()

    def _close(self) -> None:
        if self._journal is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            os.close(self._journal)
            self._journal = None


def _put_back(original: Path, stashed: Path) -> None:
    if not os.path.lexists(stashed):
        return  # the move itself never happened
    original.parent.mkdir(parents=True, exist_ok=True)
    if original.is_dir() and not original.is_symlink():
        with contextlib.suppress(OSError):
            original.rmdir()  # left empty by the rollback of the failed install
    else:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(original)
    _move(stashed, original)


def recover(root: Path) -> list[str]:
    """Undo installs into ``root`` that died midway; return one line per install undone.

    The caller holds the environment's lock, so a journal nobody has locked is abandoned.
    """
    notes: list[str] = []
    try:
        candidates = sorted(p for p in root.iterdir() if p.name.startswith(STASH_PREFIX))
    except OSError:
        return notes
    for directory in candidates:
        journal = directory / _JOURNAL
        try:
            fd = os.open(journal, os.O_RDONLY)
        except OSError:
            shutil.rmtree(directory, ignore_errors=True)  # died before its first entry
            continue
        try:
            if not lock_file(fd, wait=False):
                continue  # still running (outside this lock's protection): leave it be
            with os.fdopen(os.dup(fd), "rb") as stream:
                lines = stream.read().decode("utf-8", "surrogateescape").splitlines()
            entries = []
            for line in lines:
                with contextlib.suppress(ValueError):
                    entries.append(json.loads(line))  # a torn last line is skipped
            if ["done"] in entries:
                notes.append(f"removed what a finished install left in {directory.name}")
            else:
                _undo(entries)
                notes.append(f"rolled back an interrupted install ({directory.name})")
            shutil.rmtree(directory, ignore_errors=True)
        finally:
            os.close(fd)
    return notes


def _undo(entries: list[list[str]]) -> None:
    for entry in reversed(entries):
        kind, *paths = entry
        if kind == "created":
            with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                os.unlink(paths[0])
            if paths[0].endswith(".pyc"):
                _remove_temporaries(Path(paths[0]))
        elif kind == "dir":
            with contextlib.suppress(OSError):
                os.rmdir(paths[0])
        elif kind == "moved":
            _put_back(Path(paths[0]), Path(paths[1]))


def _remove_temporaries(cached: Path) -> None:
    """A compiler killed while writing ``x.pyc`` leaves ``x.pyc.<digits>`` (importlib writes to a
    temporary name, then renames)."""
    prefix = cached.name + "."
    with contextlib.suppress(OSError):
        for name in os.listdir(cached.parent):
            if name.startswith(prefix) and name[len(prefix) :].isdigit():
                with contextlib.suppress(OSError):
                    os.unlink(cached.parent / name)
