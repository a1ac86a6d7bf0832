"""Files moved aside during an install, to be put back if it fails or deleted once it succeeds.

The previous version of a distribution (and any file of another one that the new wheel
overwrites) is renamed into a hidden directory next to it on the same file system, so moving it
away and back is atomic per file and costs no copy. Until :meth:`Stash.discard`, the old version is
complete on disk.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from pathlib import Path

__all__ = ["Stash"]

STASH_PREFIX = ".wheelpatch-stash-"


class Stash:
    """Files moved from their place into a directory under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._dir: Path | None = None
        #: (original path, stashed path), in the order they were moved.
        self.moved: list[tuple[Path, Path]] = []

    def _directory(self) -> Path:
        if self._dir is None:
            self.root.mkdir(parents=True, exist_ok=True)
            self._dir = Path(tempfile.mkdtemp(prefix=STASH_PREFIX, dir=self.root))
        return self._dir

    def put(self, path: Path) -> None:
        """Move ``path`` (a file, a symlink or a whole directory) aside."""
        stashed = self._directory() / str(len(self.moved))
        try:
            os.rename(path, stashed)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            shutil.move(os.fspath(path), stashed)  # another file system: copy, then delete
        self.moved.append((path, stashed))

    def restore(self) -> None:
        """Put everything back where it was, the last moved first."""
        for original, stashed in reversed(self.moved):
            original.parent.mkdir(parents=True, exist_ok=True)
            if original.is_dir() and not original.is_symlink():
                with contextlib.suppress(OSError):
                    original.rmdir()  # left empty by the rollback of the failed install
            else:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(original)
            try:
                os.rename(stashed, original)
            except OSError as exc:
                if exc.errno != errno.EXDEV:
                    raise
                shutil.move(os.fspath(stashed), original)
        self.moved.clear()
        self._remove_dir()

    def discard(self) -> None:
        """Delete what was moved aside: the install it made room for succeeded."""
        self.moved.clear()
        self._remove_dir()

    def _remove_dir(self) -> None:
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
