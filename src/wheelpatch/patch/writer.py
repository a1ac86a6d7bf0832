"""Carrying out a :class:`~wheelpatch.plan.PatchPlan`: the patched wheel, written atomically.

Unchanged members are copied as raw compressed bytes (in the kernel where possible) while another
thread hashes the source for the provenance; only METADATA, the SBOM, ``wheelpatch.json`` and
RECORD are written fresh, last, with RECORD at the very end. The output is a temporary file in the
output directory, renamed into place only when complete; on any error it is removed.

:func:`patched_size` lays the same archive out without writing it, for an index that announces
the patched wheel's size before building it.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import os
import secrets
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError, InvalidWheel, OutputError
from ..wheel.archive import ArchiveWriter, Deflating, copy_range
from ..wheel.digest import FileDigest
from .plan import PatchPlan
from .provenance import render_generated

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no leftover sweeping
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "StagedWheel",
    "patched_size",
    "rewrite_in_place",
    "stage_wheel",
    "unchanged_prefix",
    "write_wheel",
]

#: A temporary file untouched for this long, and unlocked, was left by a killed run.
_LEFTOVER_AGE = 2.0


def _source_date_epoch() -> str | None:
    value = os.environ.get("SOURCE_DATE_EPOCH")
    if value is None or value == "":
        return None
    if not value.isdigit():
        raise ConfigError([f"SOURCE_DATE_EPOCH: {value!r} is not a whole number of seconds"])
    return value


@dataclass(slots=True)
class StagedWheel:
    """A complete patched wheel under a temporary name, waiting to be renamed into place.

    The temporary file stays open and locked until it is committed or discarded, so that a
    concurrent run never mistakes it for the leftover of a killed one."""

    plan: PatchPlan
    temp: Path
    target: Path
    fd: int = -1

    def commit(self, *, force: bool = False) -> Path:
        """Move the wheel to its final name; without ``force`` an existing file is an error.

        Whatever happens (an error, Ctrl-C), the temporary name is gone afterwards."""
        exists = OutputError(f"{self.target}: already exists (pass --force to replace it)")
        swapped = False
        try:
            if force:
                swapped = _exchange(self.temp, self.target)
                if swapped:
                    # The temporary name now holds the replaced wheel (unlocked: if its removal
                    # is cut short, the next run sweeps it as a killed run's leftover).
                    _remove_later(self.temp)
                else:
                    os.replace(self.temp, self.target)
            else:
                try:
                    os.link(self.temp, self.target)  # fails if the target exists: no clobbering
                except FileExistsError:
                    raise exists from None
                except OSError as exc:
                    if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EXDEV, errno.EMLINK):
                        raise
                    if self.target.exists():  # no hard links here: check, then rename
                        raise exists from None
                    os.replace(self.temp, self.target)
        except OutputError:
            raise
        except OSError as exc:
            raise OutputError(f"{self.target}: cannot write ({exc.strerror})") from None
        finally:
            if swapped:
                self._release()
            else:
                self.discard()
        return self.target

    def discard(self) -> None:
        # Not there (never created, already renamed) or not removable (a read-only directory,
        # where it could not have been created either): nothing more to do.
        with contextlib.suppress(OSError):
            os.unlink(self.temp)
        self._release()

    def _release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _exchange(new: Path, target: Path) -> bool:
    """Swap ``new`` and an existing ``target`` in one atomic step (Linux ``renameat2`` with
    ``RENAME_EXCHANGE``); False where ``target`` is not a regular file or there is no such
    call.

    ``--force`` replaces a file this way, not by renaming over it: ext4 (without
    ``noauto_da_alloc``) starts writing back the whole new file inside a rename that replaces
    one, 0.2 s for a 554 MB wheel, and then frees the old file's blocks, as long again."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        if not stat.S_ISREG(target.lstat().st_mode):  # a directory or a link: as os.replace does
            return False
    except OSError:
        return False
    try:
        import ctypes  # noqa: PLC0415 - only --force over an existing file needs it

        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):  # no renameat2 in this C library (glibc < 2.28, musl)
        return False
    at_fdcwd, rename_exchange = -100, 2
    done = renameat2(at_fdcwd, os.fsencode(new), at_fdcwd, os.fsencode(target), rename_exchange)
    return bool(done == 0)


def _remove_later(path: Path) -> None:
    """Remove ``path`` in a process of its own that nobody waits for (``rm`` started in the
    background by ``sh``, which exits at once; no descriptor of ours is passed on, so that it
    holds no pipe of a caller reading our output); where that cannot be done, remove it now. A
    name left behind by a killed ``rm`` is swept as a killed run's temporary file is."""
    if os.name == "posix" and os.path.exists("/bin/sh"):
        try:
            started = subprocess.run(
                ["/bin/sh", "-c", 'rm -f -- "$1" &', "sh", str(path)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                close_fds=True,
                check=False,
            )
        except OSError:
            pass
        else:
            if started.returncode == 0:
                return
    with contextlib.suppress(OSError):
        os.unlink(path)


def _lock(fd: int) -> bool:
    """Take the exclusive lock of a temporary file; False if another process holds it."""
    if fcntl is None:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def _sweep_leftovers(out_dir: Path, filename: str) -> None:
    """Remove temporary files of ``filename`` left by a killed run: unlocked and not fresh."""
    if fcntl is None:
        return
    for path in out_dir.glob(f".{glob.escape(filename)}.*.tmp"):
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            if _lock(fd) and time.time() - os.fstat(fd).st_mtime > _LEFTOVER_AGE:
                with contextlib.suppress(OSError):
                    os.unlink(path)
        finally:
            os.close(fd)


def _target(plan: PatchPlan, out_dir: Path, force: bool) -> Path:
    target = out_dir / plan.filename
    if not out_dir.is_dir():
        raise OutputError(f"{out_dir}: output directory does not exist")
    with contextlib.suppress(FileNotFoundError):
        if target.samefile(plan.wheel.path):
            raise OutputError(
                f"{target}: the output would replace the input wheel; choose another -o directory"
            )
    if target.exists() and not force:
        raise OutputError(f"{target}: already exists (pass --force to replace it)")
    _sweep_leftovers(out_dir, plan.filename)
    return target


def stage_wheel(
    plan: PatchPlan, out_dir: Path, *, force: bool = False, digest: FileDigest | None = None
) -> StagedWheel:
    """Write the patched wheel to a temporary file in ``out_dir`` (the final name is checked
    first). Call :meth:`StagedWheel.commit` or :meth:`StagedWheel.discard` on the result.

    ``digest`` is the source's hash if the caller started it early; it is closed here."""
    try:
        epoch = _source_date_epoch()
        target = _target(plan, out_dir, force)
        source = plan.wheel
        try:
            if digest is None:
                digest = FileDigest(source.path)
            src = os.open(source.path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        except OSError as exc:
            raise InvalidWheel(f"{source.filename}: cannot open ({exc.strerror})") from None
        try:
            return _stage(plan, src, target, digest, epoch)
        finally:
            os.close(src)
    finally:
        if digest is not None:
            digest.close()


def _stage(
    plan: PatchPlan, src: int, target: Path, digest: FileDigest, epoch: str | None
) -> StagedWheel:
    source = plan.wheel
    info = os.fstat(src)
    identity = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)
    if identity != source.identity or digest.identity != source.identity:
        raise InvalidWheel(f"{source.filename}: changed on disk since it was read")
    temp = target.parent / f".{plan.filename}.{secrets.token_hex(4)}.tmp"
    # Registered before the file exists, so that an interruption right after its creation
    # still removes it.
    staged = StagedWheel(plan, temp, target)
    try:
        try:
            dst = staged.fd = os.open(
                temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666
            )
        except OSError as exc:
            raise OutputError(
                f"{target.parent}: cannot create a file there ({exc.strerror})"
            ) from None
        _lock(dst)
        _preallocate(dst, info.st_size)
        size = _write(plan, src, dst, digest, epoch)
        os.ftruncate(dst, size)  # give back what the preallocation over-estimated
    except BaseException as exc:
        staged.discard()
        if isinstance(exc, OSError) and not isinstance(exc, OutputError):
            raise OutputError(f"{target}: cannot write ({exc.strerror})") from None
        raise
    return staged


def _preallocate(fd: int, size: int) -> None:
    """Reserve the output's blocks up front (about the source's size): the file system allocates
    them in one go, which makes the copy faster and steadier, and a full disk fails here, early."""
    fallocate = getattr(os, "posix_fallocate", None)
    if fallocate is None:
        return
    try:
        fallocate(fd, 0, size)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
            raise
        # Not supported by this file system (EOPNOTSUPP, EINVAL, ...): write without it.


def _write(plan: PatchPlan, src: int, dst: int, digest: FileDigest, epoch: str | None) -> int:
    writer = ArchiveWriter(dst, where=plan.wheel.filename)
    # The hash is waited for only once every member is copied: it runs beside the copy.
    return _lay_out(plan, writer, src, digest.result, epoch)


def patched_size(plan: PatchPlan, source_sha256: str, epoch: str | None = None) -> int:
    """The exact size in bytes of the wheel :func:`write_wheel` writes for ``plan``.

    Nothing is read or written: the archive is laid out by a counting writer from what
    :func:`~wheelpatch.wheel.source_wheel.read_wheel` read, so a wheel read from its end alone
    (``known_from``) will do, as long as every member the writer renames or re-heads lies there.
    ``source_sha256`` is the hex sha256 of the whole source file and ``epoch`` the
    ``SOURCE_DATE_EPOCH`` the wheel will be written with (``write_wheel`` reads it from the
    environment), both recorded in the provenance document."""
    writer = ArchiveWriter(None, where=plan.wheel.filename)
    return _lay_out(plan, writer, -1, lambda: source_sha256, epoch)


def unchanged_prefix(plan: PatchPlan) -> int:
    """How many bytes the patched wheel shares with its source from the start: the members
    :func:`write_wheel` lays out first, copied as they are to the offset they had, up to the
    first that it renames, rewrites, drops or re-heads, or that it moves (a central directory
    in another order than the file). A proxy can send those bytes on as they arrive from the
    upstream, before the rest is known."""
    source = plan.wheel
    prefix = source.dist_info + "/"
    replaced = plan.replaced
    offset = 0
    for member in source.archive.members:  # the order _lay_out copies them in
        if member.name.startswith(prefix):
            continue  # laid out last, and always changed
        if (
            member.name in replaced
            or member.has_descriptor
            or plan.rename(member.name) != member.name
            or member.header_offset != offset
        ):
            break
        offset = member.end_offset if member.header_read else member.span_end
    return offset


def rewrite_in_place(plan: PatchPlan, fd: int, source_sha256: str, epoch: str | None) -> int:
    """Turn the source wheel, open read-write as ``fd`` (the file ``plan.wheel`` was read from),
    into the patched wheel in place: the bytes before :func:`unchanged_prefix` stay, the rest is
    laid out as :func:`write_wheel` lays it out, byte for byte, and the file is cut to its new
    size (returned). Raises :class:`~wheelpatch.wheel.archive.InPlaceError` when the layout
    would differ before that offset (the caller writes the wheel afresh)."""
    start = unchanged_prefix(plan)
    size = os.fstat(fd).st_size
    # What follows ``start`` is read before it is overwritten: a scratch copy at its own offsets.
    with tempfile.TemporaryFile(dir=Path(plan.wheel.path).parent) as scratch:
        src = scratch.fileno()
        os.ftruncate(src, size)
        os.lseek(src, start, os.SEEK_SET)
        copy_range(fd, src, start, size - start)
        os.lseek(fd, start, os.SEEK_SET)
        writer = ArchiveWriter(fd, where=plan.wheel.filename, in_place_before=start)
        new_size = _lay_out(plan, writer, src, lambda: source_sha256, epoch)
    os.ftruncate(fd, new_size)
    return new_size


def _lay_out(
    plan: PatchPlan,
    writer: ArchiveWriter,
    src: int,
    source_sha256: Callable[[], str],
    epoch: str | None,
) -> int:
    """Lay out the patched archive through ``writer`` and return its size: the one description of
    the output, for writing and for counting alike."""
    source = plan.wheel
    skipped = plan.replaced
    dist_info_prefix = source.dist_info + "/"
    tail = []
    for member in source.archive.members:
        if member.name.startswith(dist_info_prefix):
            tail.append(member)
        else:
            writer.copy(src, member, plan.rename(member.name))
    for member in tail:
        if member.name == source.metadata_path:
            writer.add(member, plan.metadata_path, plan.metadata)
        elif member.name not in skipped:
            writer.copy(src, member, plan.rename(member.name))
    record_member = source.member(source.record_path)
    # Before the source's hash is waited for: RECORD's rows of the source's files, compressed.
    head = plan.record_head()
    record = Deflating(record_member.method, head)
    generated = render_generated(plan, source_sha256(), epoch)
    for name, data in generated.items():
        writer.add(record_member, f"{plan.dist_info}/{name}", data)
    rest = plan.record(generated, head)[len(head) :]
    writer.add(record_member, plan.record_path, rest, ahead=record)
    writer.finish(source.archive.comment)
    return writer.size


def write_wheel(plan: PatchPlan, out_dir: Path, *, force: bool = False) -> Path:
    """Write the patched wheel into ``out_dir`` and return its path."""
    staged = stage_wheel(plan, out_dir, force=force)
    return staged.commit(force=force)
