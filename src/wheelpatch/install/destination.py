"""An installer destination that writes members on worker threads and can undo everything.

installer hands over one file at a time. Members of a :class:`~wheelpatch.source.MemberStream`
are queued and written by a thread pool (zlib, hashlib and file writes release the GIL, so
extraction uses every core); their RECORD entries are filled in when written, and
:meth:`ParallelDestination.finalize_installation` waits for all of them before RECORD is written.

Every file and directory created is journaled, so :meth:`ParallelDestination.rollback` removes
exactly what this install added. A file already in the way (one of another distribution) is moved
to the stash rather than overwritten, so a rollback puts it back.
"""

from __future__ import annotations

import base64
import concurrent.futures
import contextlib
import hashlib
import io
import os
import subprocess
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from installer.destinations import SchemeDictionaryDestination
from installer.records import Hash, RecordEntry
from installer.utils import Scheme, copyfileobj_with_hashing

from ..errors import InvalidWheel
from ..wheel.archive import iter_member_data
from .stash import Stash
from .wheel_source import MemberStream, check_digest

__all__ = ["ParallelDestination"]

#: Queue small members in batches of about this much compressed data (or this many files), so
#: scheduling costs little per file.
_BATCH_BYTES = 4 << 20
_BATCH_FILES = 64

Progress = Callable[[int], None]


#: Run by the target interpreter: compile the modules listed on stdin, and die with the
#: installer (so that no bytecode is written after it was killed and its install rolled back).
_COMPILE = """
import os, sys
try:
    import ctypes
    ctypes.CDLL(None).prctl(1, 9, 0, 0, 0)  # PR_SET_PDEATHSIG, SIGKILL (Linux)
except Exception:
    pass
if os.getppid() != int(sys.argv[1]):
    sys.exit(1)
import compileall
sys.argv[1:] = ["-q", "-f", "-i", "-"]
sys.exit(compileall.main())
"""


def _compile_all(interpreter: str, files: list[Path], processes: int) -> None:
    """Compile ``files`` with ``interpreter`` in ``processes`` parallel single-process runs of
    compileall (its own ``-j`` workers would outlive a killed installer)."""
    count = max(1, min(processes, len(files) // 64 or 1))
    slices = [files[index::count] for index in range(count)]
    children = []
    for part in slices:
        child = subprocess.Popen(
            [interpreter, "-c", _COMPILE, str(os.getpid())],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        children.append((child, "".join(f"{path}\n" for path in part)))
    for child, listing in children:
        child.communicate(listing.encode("utf-8", "surrogateescape"))


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@dataclass
class ParallelDestination(SchemeDictionaryDestination):
    """installer's scheme destination, parallel, journaled and contained."""

    stash: Stash | None = None
    #: Name used in error messages (the wheel's file name).
    where: str = ""
    workers: int = 0
    #: Compile bytecode with the target interpreter (in parallel) before RECORD is written.
    compile_bytecode: bool = False
    cache_tag: str | None = None
    #: Called with the uncompressed size of each member once it is written.
    progress: Progress | None = None
    created_files: list[str] = field(default_factory=list)
    created_dirs: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._mode = 0o666 & ~_umask()
        self._exec_mode = self._mode | 0o111 | ((self._mode & 0o444) >> 2)
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=self.workers or max(2, os.cpu_count() or 1),
            thread_name_prefix="wheelpatch-install",
        )
        self._futures: list[concurrent.futures.Future[None]] = []
        self._batch: list[tuple[RecordEntry, str, MemberStream, bool]] = []
        self._batch_bytes = 0
        #: Directories made ready, and whether this install created them.
        self._dirs: dict[str, bool] = {}
        self._bases: dict[str, str] = {}
        self._roots: dict[str, str] = {}
        self._targets: set[str] = set()
        self._lock = threading.Lock()

    # -- where files go ------------------------------------------------------------------------

    def _base(self, scheme: Scheme) -> str:
        """The scheme's directory (created, journaled, if missing)."""
        base = self._bases.get(scheme)
        if base is None:
            base = os.path.abspath(self.scheme_dict[scheme])
            self._make_dirs(base, base)
            self._bases[scheme] = base
            self._roots[scheme] = os.path.realpath(base)
        return base

    def _target(self, scheme: Scheme, path: str) -> str:
        """Where ``path`` of ``scheme`` goes, its directory made, anything in the way stashed.

        Plain strings, not pathlib: this runs for every member of wheels with tens of thousands.
        """
        base = self._base(scheme)
        target = os.path.normpath(os.path.join(base, path))
        if not target.startswith(base + os.sep):
            raise InvalidWheel(
                f"{self.where}: {path!r} would be written outside the {scheme} directory"
            )
        fresh = self._prepare_parent(scheme, os.path.dirname(target), path)
        if target in self._targets:
            raise InvalidWheel(f"{self.where}: two members install to {target}")
        self._targets.add(target)
        # A directory this install created holds only what it wrote: nothing can be in the way.
        if not fresh and os.path.lexists(target):
            if os.path.isdir(target) and not os.path.islink(target):
                raise InvalidWheel(f"{self.where}: {path!r} would replace the directory {target}")
            self._stash().put(Path(target))
        return target

    def _prepare_parent(self, scheme: Scheme, parent: str, path: str) -> bool:
        """Create the missing directories above a file, journaled, and refuse a parent that
        resolves (through a symlink already on disk) outside the scheme's directory. Return
        whether this install created ``parent``."""
        fresh = self._dirs.get(parent)
        if fresh is not None:
            return fresh
        existing = self._make_dirs(parent, None)
        real = os.path.realpath(existing)
        root = self._roots[scheme]
        if real != root and not real.startswith(root + os.sep):
            raise InvalidWheel(
                f"{self.where}: {path!r} would be written through {existing}, which leads "
                f"outside the {scheme} directory"
            )
        fresh = existing != parent
        if fresh:
            self._make_dirs(parent, parent)
        self._dirs[parent] = fresh
        return fresh

    def _make_dirs(self, directory: str, create: str | None) -> str:
        """Return the nearest existing path at or above ``directory``; with ``create``, first
        make the missing directories (journaled)."""
        missing = []
        existing = directory
        while not os.path.lexists(existing):
            missing.append(existing)
            existing = os.path.dirname(existing)
        if create is not None:
            for created in reversed(missing):
                self._stash().created_dir(created)
                try:
                    os.mkdir(created)
                except FileExistsError:
                    continue
                self.created_dirs.append(created)
        return existing

    def _stash(self) -> Stash:
        if self.stash is None:
            raise TypeError("ParallelDestination needs a stash")
        return self.stash

    def _create(self, target: str, executable: bool) -> int:
        # Journaled first: a rollback (or a recovery after a crash) may find it absent.
        self._stash().created(target)
        self.created_files.append(target)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(target, flags | getattr(os, "O_BINARY", 0), 0o666)
        if executable:
            os.fchmod(fd, self._exec_mode)
        return fd

    # -- installer's interface -----------------------------------------------------------------

    def write_to_fs(
        self, scheme: Scheme, path: str, stream: BinaryIO, is_executable: bool
    ) -> RecordEntry:
        target = self._target(scheme, path)
        with os.fdopen(self._create(target, is_executable), "wb") as file:
            hash_, size = copyfileobj_with_hashing(stream, file, self.hash_algorithm)
        return RecordEntry(path, Hash(self.hash_algorithm, hash_), size)

    def write_file(
        self, scheme: Scheme, path: str | os.PathLike[str], stream: BinaryIO, is_executable: bool
    ) -> RecordEntry:
        path_ = os.fspath(path)
        if not isinstance(stream, MemberStream):
            return super().write_file(scheme, path_, stream, is_executable)
        if scheme == "scripts":
            # The shebang rewrite needs a seekable stream: scripts are small, read them whole.
            # Like pip and uv, and unlike installer, a script is executable whatever its mode
            # in the archive says.
            data = b"".join(iter(lambda: stream.read(1 << 20), b""))
            entry = super().write_file(scheme, path_, io.BytesIO(data), True)
            if self.progress is not None:
                with self._lock:
                    self.progress(len(data))
            return entry
        target = self._target(scheme, path_)
        entry = RecordEntry(path_, None, None)
        member = stream.member
        self._batch.append((entry, target, stream, is_executable))
        self._batch_bytes += member.compress_size
        if self._batch_bytes >= _BATCH_BYTES or len(self._batch) >= _BATCH_FILES:
            self._submit()
        return entry

    def _submit(self) -> None:
        if self._batch:
            self._futures.append(self._pool.submit(self._write_batch, self._batch))
            self._batch = []
            self._batch_bytes = 0

    def _write_batch(self, batch: list[tuple[RecordEntry, str, MemberStream, bool]]) -> None:
        algorithm = self.hash_algorithm
        for entry, target, stream, executable in batch:
            member, row = stream.member, stream.row
            output = hashlib.new(algorithm)
            check = (
                None if not row.hash or row.algorithm == algorithm else hashlib.new(row.algorithm)
            )
            fd = self._create(target, executable)
            try:
                for piece in iter_member_data(stream.fd, member, stream.where):
                    output.update(piece)
                    if check is not None:
                        check.update(piece)
                    view = memoryview(piece)
                    while view:
                        view = view[os.write(fd, view) :]
            except OSError as exc:
                raise OSError(exc.errno, exc.strerror, target) from None
            finally:
                os.close(fd)
            if row.hash:
                digest = output.digest() if check is None else check.digest()
                check_digest(digest, row, member.name, stream.where)
            encoded = base64.urlsafe_b64encode(output.digest()).decode("ascii").rstrip("=")
            entry.hash_ = Hash(algorithm, encoded)
            entry.size = member.file_size
            if self.progress is not None:
                with self._lock:
                    self.progress(member.file_size)

    def finalize_installation(
        self,
        scheme: Scheme,
        record_file_path: str,
        records: Iterable[tuple[Scheme, RecordEntry]],
    ) -> None:
        self.wait()
        record_list = list(records)
        if self.compile_bytecode:
            record_list[-1:-1] = self._compile(record_list)
        super().finalize_installation(scheme, record_file_path, record_list)

    def wait(self) -> None:
        """Wait for every queued member; raise the first failure once none is running."""
        self._submit()
        try:
            for future in concurrent.futures.as_completed(self._futures):
                if future.exception() is not None:
                    for other in self._futures:
                        other.cancel()
                    concurrent.futures.wait(self._futures)
                    future.result()
        finally:
            self._futures.clear()

    def close(self) -> None:
        for future in self._futures:
            future.cancel()
        self._pool.shutdown(wait=True)

    # -- bytecode --------------------------------------------------------------------------------

    def _compile(
        self, records: list[tuple[Scheme, RecordEntry]]
    ) -> list[tuple[Scheme, RecordEntry]]:
        """Compile the installed modules with the target interpreter, all cores at once, and
        return RECORD entries for the bytecode files written."""
        sources = [
            (scheme, record.path)
            for scheme, record in records
            if scheme in ("purelib", "platlib") and record.path.endswith(".py")
        ]
        if not sources or self.cache_tag is None:
            return []
        absolute = [self._path_with_destdir(scheme, path) for scheme, path in sources]
        stash = self._stash()
        for directory in sorted({path.parent / "__pycache__" for path in absolute}):
            if not directory.exists():
                stash.created_dir(directory)
                self.created_dirs.append(os.fspath(directory))
        expected = [
            file.parent / "__pycache__" / f"{file.stem}.{self.cache_tag}.pyc" for file in absolute
        ]
        for cached in expected:
            stash.created(cached)
            self.created_files.append(os.fspath(cached))
        _compile_all(self.interpreter, absolute, self.workers or max(2, os.cpu_count() or 1))
        entries = []
        for (scheme, path), cached in zip(sources, expected, strict=True):
            try:
                data = cached.read_bytes()
            except FileNotFoundError:
                continue  # a module that does not compile: Python reports it on import
            digest = base64.urlsafe_b64encode(hashlib.new(self.hash_algorithm, data).digest())
            relative = path.rpartition("/")[0]
            name = (
                f"{relative}/__pycache__/{cached.name}"
                if relative
                else f"__pycache__/{cached.name}"
            )
            entries.append(
                (
                    scheme,
                    RecordEntry(
                        name, Hash(self.hash_algorithm, digest.decode().rstrip("=")), len(data)
                    ),
                )
            )
        return entries

    # -- undo ------------------------------------------------------------------------------------

    def rollback(self) -> None:
        """Remove every file and directory this install created (the stash is the caller's)."""
        for future in self._futures:
            future.cancel()
        concurrent.futures.wait(self._futures)
        self._futures.clear()
        for path in reversed(self.created_files):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        for directory in reversed(self.created_dirs):
            with contextlib.suppress(OSError):
                os.rmdir(directory)  # not empty: something else lives there too
        self.created_files.clear()
        self.created_dirs.clear()
