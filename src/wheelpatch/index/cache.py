"""The files ``wheelpatch serve`` builds on first request (patched wheels, small METADATA and info
blobs), kept in a directory that every worker process and thread of the server shares.

Layout under ROOT::

    ROOT/entries/<key>/<name>            a stored file, served as it is
    ROOT/entries/<key>/.<name>.json      its sidecar: sha256, size, and the inode and mtime the
                                         file had when it was stored; its own mtime is the
                                         entry's last use (for LRU eviction)
    ROOT/locks/<key>-<h>.lock            the entry's lock (``h``: 16 hex digits of the name's
                                         sha256), held by whoever builds or removes the entry
    ROOT/locks/evict.lock                one eviction at a time, across processes
    ROOT/tmp/<key>-<h>.<random>/<name>   a build in progress, under the entry's lock

How it stays safe with many processes and threads:

* An entry is built under its lock (a thread lock within a process, then a ``filelock.FileLock``
  across processes), checked again once the lock is held, written in ``tmp/`` and renamed into
  place: N concurrent first requests make one build, and no reader ever sees half a file.
* A file is valid only if its sidecar names its inode, mtime and size; a reader that races a
  rebuild sees a mismatch, never another file's sha256. Each process also hashes a file the first
  time it uses it, so a file corrupted on disk while no server ran is rebuilt, not served.
* A build killed mid-way leaves only its ``tmp/`` directory, whose name says which entry lock it
  was built under: once that lock is free, no build of it runs, and the directory is removed.
* A file being served carries a shared ``flock`` (a :class:`Lease`); eviction removes only entries
  it can lock exclusively, under the entry's lock, so nothing is removed while a client reads it.

Hits take no lock: a sidecar read, one ``stat`` and a touch of the sidecar's mtime. Durability
needs no ``fsync``: a file left short or damaged by a crash fails these checks and is rebuilt.
POSIX only (``flock``).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from filelock import FileLock, Timeout

from ..errors import InvalidWheel, OutputError
from ..wheel.digest import FileDigest

__all__ = ["Cache", "CachedFile", "Lease", "parse_size"]

_log = logging.getLogger(__name__)

_KEY = re.compile(r"[0-9a-f]{16,64}")
#: Leaves room for the sidecar's ``.<name>.json`` within a 255-byte file name.
_NAME_MAX = 240
_LOCK_ID = r"[0-9a-f]{16,64}-[0-9a-f]{16}"
_TMP_DIR = re.compile(rf"({_LOCK_ID})\..+")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_SCHEMA = 1
_EVICT_LOCK = "evict"
_SIZE = re.compile(r"([0-9]+(?:\.[0-9]+)?|\.[0-9]+)\s*(?:([kmgt])i?)?b?", re.IGNORECASE)
_UNIT_POWERS = {"": 0, "K": 1, "M": 2, "G": 3, "T": 4}
#: An eviction may remove a key's directory between our mkdir and rename: try again.
_PUBLISH_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class CachedFile:
    """A stored file: where it is, and the sha256 and size it was stored with."""

    path: Path
    sha256: str
    size: int


class Lease:
    """A shared lock on a stored file while it is served: eviction, in any process, leaves the
    file in place until the lease is released. ``file`` is the file opened and locked (read it,
    or serve ``entry.path``, which stays until then)."""

    __slots__ = ("entry", "file")

    def __init__(self, entry: CachedFile, file: BinaryIO) -> None:
        self.entry = entry
        self.file = file

    def release(self) -> None:
        """Drop the lock (closing the file drops it); calling it again does nothing."""
        self.file.close()

    def __enter__(self) -> Lease:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()


def parse_size(text: str) -> int:
    """A size in bytes, for ``--cache-size``: a number (decimals allowed) with an optional unit
    K, M, G or T, written alone or with ``i``, ``B`` or ``iB`` (``10G``, ``10GB`` and ``10GiB``
    alike), in any case. Units are binary, as in pip: ``G`` is 2**30 bytes, not 10**9. The result
    is rounded down to whole bytes."""
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        raise ValueError(
            f"{text!r} is not a size: give a number of bytes with an optional unit K, M, G or T "
            "(powers of 1024), for example 500M, 10G or 1.5GiB"
        )
    number, unit = match.group(1), (match.group(2) or "").upper()
    return int(Decimal(number) * 1024 ** _UNIT_POWERS[unit])


class Cache:
    """The store (see the module's docstring). Safe to share between the threads of a process;
    each process makes its own (after any fork), as it keeps which files it has hashed."""

    def __init__(self, root: Path, max_bytes: int | None) -> None:
        """``max_bytes``: the most the stored files may take together (sidecars, locks and
        directories aside); ``None`` for no limit. Creates the directories and sweeps ``tmp/``.

        :raises OutputError: the directories cannot be created
        """
        if max_bytes is not None and max_bytes < 0:
            raise ValueError(f"max_bytes must be None or at least 0, not {max_bytes!r}")
        self._root = Path(root).absolute()
        self._max_bytes = max_bytes
        self._entries = self._root / "entries"
        self._tmp = self._root / "tmp"
        self._locks = _EntryLocks(self._root / "locks")
        #: (key, name) -> (inode, mtime_ns, sha256) of each file this process hashed and found
        #: to be the one its sidecar describes.
        self._verified: dict[tuple[str, str], tuple[int, int, str]] = {}
        self._verified_lock = threading.Lock()
        for directory in (self._entries, self._tmp, self._locks.directory):
            try:
                directory.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise OutputError(
                    f"{directory}: cannot create the cache directory ({exc})"
                ) from exc
        self.sweep()

    @property
    def root(self) -> Path:
        return self._root

    @property
    def max_bytes(self) -> int | None:
        return self._max_bytes

    # -- reading and building ---------------------------------------------------------------------

    @property
    def stored(self) -> Path:
        """The directory of the stored files, each at ``<key>/<name>`` below it (what a web
        server in front may be given to send them itself)."""
        return self._entries

    def get_or_build(self, key: str, name: str, build: Callable[[Path], object]) -> CachedFile:
        """The stored file ``name`` of ``key``, built first if it is missing or damaged.

        ``build(path)`` must write the complete file at ``path`` (in the cache's ``tmp/``, on the
        cache's file system; it may also replace it there by a rename). One build runs at a time
        for an entry across all processes and threads; the others wait for it and get its file.
        If ``build`` raises, nothing is kept and the exception propagates; the next call builds.
        A ``build`` that hashed the file as it wrote it may return the hex sha256, which is then
        recorded as it is (else the cache hashes the file). Evicts least recently used entries
        afterwards if the cache is over its size.

        :raises ValueError: ``key`` or ``name`` is not allowed
        :raises RuntimeError: ``build`` left no regular file at ``path``, or it asked the cache
            for the entry it is building
        """
        slot = self._slot(key, name)
        with contextlib.suppress(_Damaged):
            entry = self._inspect(slot, verify_unseen=False)
            if entry is not None:
                self._touch(slot)
                return entry
        with self._locks.hold(slot.lock_id):
            entry = self._inspect_or_discard(slot)
            if entry is not None:
                self._touch(slot)
                return entry
            entry = self._build(slot, build)
        self._evict_after_build(slot)
        return entry

    def get_or_build_bytes(self, key: str, name: str, build: Callable[[], bytes]) -> bytes:
        """The stored blob ``name`` of ``key`` (a few kilobytes: it is read whole and hashed on
        every call), built by ``build()`` first if it is missing or damaged; the single-build
        rule and size accounting are those of :meth:`get_or_build`.

        :raises ValueError: ``key`` or ``name`` is not allowed
        """
        slot = self._slot(key, name)
        with contextlib.suppress(_Damaged):
            data = self._read_blob(slot)
            if data is not None:
                self._touch(slot)
                return data
        with self._locks.hold(slot.lock_id):
            try:
                data = self._read_blob(slot)
            except _Damaged as damage:
                self._report_and_discard(slot, damage)
                data = None
            if data is not None:
                self._touch(slot)
                return data
            payload = build()
            self._build(slot, lambda path: path.write_bytes(payload))
        self._evict_after_build(slot)
        return payload

    def lookup(self, key: str, name: str, *, touch: bool = True) -> CachedFile | None:
        """The stored file if it is there and valid (hashed first if this process has not yet),
        else ``None``; never builds. ``touch=False`` leaves its last use as it was (a page that
        lists files does not use them).

        :raises ValueError: ``key`` or ``name`` is not allowed
        """
        slot = self._slot(key, name)
        try:
            entry = self._inspect(slot, verify_unseen=True)
        except _Damaged as damage:
            _log.debug("cache entry %s/%s: %s", key, name, damage)
            return None
        if entry is not None and touch:
            self._touch(slot)
        return entry

    def verify(self, key: str, name: str) -> bool:
        """Whether the stored file is there and hashes to its sidecar's sha256 (read whole, now:
        the check every other call makes only once per process)."""
        slot = self._slot(key, name)
        try:
            record = self._record(slot)
            if record is None:
                return False
            self._hash_check(slot, record)
        except _Damaged as damage:
            _log.warning("cache entry %s/%s is damaged (%s)", key, name, damage)
            self._forget(slot)
            return False
        return True

    def lease(self, entry: CachedFile) -> Lease:
        """Hold ``entry`` against eviction while it is served; release the lease (or use it as a
        context manager) once the last byte is sent.

        :raises FileNotFoundError: the entry was removed or replaced since it was returned; ask
            :meth:`get_or_build` again
        :raises ValueError: ``entry`` is not a file of this cache
        """
        slot: _Slot | None
        try:
            slot = self._slot(entry.path.parent.name, entry.path.name)
        except ValueError:
            slot = None
        if slot is None or slot.data != entry.path:
            raise ValueError(f"{entry.path}: not a file of the cache in {self._root}")
        gone = FileNotFoundError(
            errno.ENOENT,
            "the cache entry was removed or replaced; look it up again",
            str(slot.data),
        )
        try:
            fd = os.open(slot.data, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            raise gone from None
        file = os.fdopen(fd, "rb")
        try:
            # Blocks only while an eviction holds it exclusively, a moment before it unlinks it.
            fcntl.flock(fd, fcntl.LOCK_SH)
            info = os.fstat(fd)
            record = self._record(slot)
            if (
                info.st_nlink == 0
                or record is None
                or _mismatch(record, info) is not None
                or record.sha256 != entry.sha256
                or not os.path.samestat(info, os.stat(slot.data))
            ):
                raise gone
        except (_Damaged, FileNotFoundError):
            file.close()
            raise gone from None
        except BaseException:
            file.close()
            raise
        return Lease(entry, file)

    # -- removal ----------------------------------------------------------------------------------

    def evict(self) -> list[tuple[str, str]]:
        """Sweep ``tmp/``, then remove least recently used entries until the stored files fit in
        ``max_bytes``, skipping entries being built or served; the (key, name) pairs removed."""
        self.sweep()
        return self._evict(keep=None)

    def sweep(self) -> int:
        """Remove what killed builds left in ``tmp/``: a directory whose entry lock is free has no
        build running. The number removed."""
        removed = 0
        try:
            children = list(os.scandir(self._tmp))
        except FileNotFoundError:
            return 0
        for child in children:
            match = _TMP_DIR.fullmatch(child.name)
            if match is None:
                continue
            with self._locks.hold(match[1], wait=False) as held:
                if held:
                    _log.info("cache: removing %s, left by a build that did not finish", child.path)
                    _remove_tree(child.path)
                    removed += 1
                    self._locks.unlink_held(match[1])
        return removed

    # -- internals --------------------------------------------------------------------------------

    def _slot(self, key: str, name: str) -> _Slot:
        _check_key(key)
        _check_name(name)
        directory = self._entries / key
        name_digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:16]
        return _Slot(
            key=key,
            name=name,
            data=directory / name,
            sidecar=directory / f".{name}.json",
            lock_id=f"{key}-{name_digest}",
        )

    def _record(self, slot: _Slot) -> _Record | None:
        """The sidecar's record; ``None`` if there is no sidecar.

        :raises _Damaged: the sidecar cannot be read or is not a record
        """
        try:
            text = slot.sidecar.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise _Damaged(f"its sidecar cannot be read ({exc})") from exc
        try:
            data = json.loads(text)
        except ValueError:
            raise _Damaged("its sidecar is not JSON") from None
        if not isinstance(data, dict) or data.get("schema") != _SCHEMA:
            raise _Damaged("its sidecar is not a record of this cache")
        sha256 = data.get("sha256")
        if not isinstance(sha256, str) or _SHA256.fullmatch(sha256) is None:
            raise _Damaged(f"its sidecar's sha256 {sha256!r} is not a sha256")
        numbers: list[int] = []
        for field in ("size", "inode", "mtime_ns"):
            number = data.get(field)
            if not isinstance(number, int) or isinstance(number, bool) or number < 0:
                raise _Damaged(f"its sidecar's {field} {number!r} is not a number")
            numbers.append(number)
        size, inode, mtime_ns = numbers
        return _Record(sha256=sha256, size=size, inode=inode, mtime_ns=mtime_ns)

    def _inspect(self, slot: _Slot, *, verify_unseen: bool) -> CachedFile | None:
        """The entry if its file is the one its sidecar describes; ``None`` if it is absent, or
        if this process has not hashed it yet and ``verify_unseen`` is false.

        :raises _Damaged: it is there but not valid
        """
        record = self._record(slot)
        try:
            info = os.lstat(slot.data)
        except FileNotFoundError:
            if record is None:
                return None
            raise _Damaged("its file is missing") from None
        if record is None:
            raise _Damaged("its sidecar is missing")
        problem = _mismatch(record, info)
        if problem is not None:
            raise _Damaged(problem)
        with self._verified_lock:
            seen = self._verified.get(slot.ids) == (record.inode, record.mtime_ns, record.sha256)
        if not seen:
            if not verify_unseen:
                return None
            self._hash_check(slot, record)
        return CachedFile(slot.data, record.sha256, record.size)

    def _hash_check(self, slot: _Slot, record: _Record) -> None:
        """Hash the file (the one opened, whatever the path names meanwhile) against ``record``
        and remember it as verified in this process.

        :raises _Damaged: it is missing, unreadable, or not the file ``record`` describes
        """
        try:
            digest = FileDigest(slot.data)
            sha256 = digest.result()
        except FileNotFoundError:
            raise _Damaged("its file is missing") from None
        except (InvalidWheel, OSError) as exc:
            raise _Damaged(f"its file cannot be read ({exc})") from exc
        _device, inode, size, mtime_ns = digest.identity
        if (inode, size, mtime_ns) != (record.inode, record.size, record.mtime_ns):
            raise _Damaged("its file was replaced or modified after it was stored")
        if sha256 != record.sha256:
            raise _Damaged(f"its file's sha256 is {sha256}, its sidecar says {record.sha256}")
        with self._verified_lock:
            self._verified[slot.ids] = (inode, mtime_ns, sha256)

    def _read_blob(self, slot: _Slot) -> bytes | None:
        """The blob if it is there and intact (hashed on every read: it is small).

        :raises _Damaged: it is there but not valid
        """
        record = self._record(slot)
        try:
            fd = os.open(slot.data, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            if record is None:
                return None
            raise _Damaged("its file is missing") from None
        except OSError as exc:
            raise _Damaged(f"its file cannot be opened ({exc})") from exc
        with os.fdopen(fd, "rb") as file:
            if record is None:
                raise _Damaged("its sidecar is missing")
            problem = _mismatch(record, os.fstat(fd))
            if problem is not None:
                raise _Damaged(problem)
            data = file.read(record.size + 1)
        if len(data) != record.size or hashlib.sha256(data).hexdigest() != record.sha256:
            raise _Damaged("its content does not match its sidecar's sha256")
        return data

    def _inspect_or_discard(self, slot: _Slot) -> CachedFile | None:
        """Under the entry's lock: the valid entry, or ``None`` once a damaged one is removed."""
        try:
            return self._inspect(slot, verify_unseen=True)
        except _Damaged as damage:
            self._report_and_discard(slot, damage)
            return None

    def _report_and_discard(self, slot: _Slot, damage: _Damaged) -> None:
        _log.warning("cache entry %s/%s is damaged (%s): building it again", *slot.ids, damage)
        slot.sidecar.unlink(missing_ok=True)
        _remove_tree(str(slot.data))
        self._forget(slot)

    def _build(self, slot: _Slot, build: Callable[[Path], object]) -> CachedFile:
        """Under the entry's lock: build in ``tmp/``, hash, write the sidecar, rename both in."""
        self._remove_unfinished(slot)
        self._tmp.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f"{slot.lock_id}.", dir=self._tmp))
        try:
            target = work / slot.name
            said = build(target)
            try:
                built = os.lstat(target)
            except FileNotFoundError:
                raise RuntimeError(
                    f"the build of {slot.name!r} wrote nothing at {target}"
                ) from None
            if not stat.S_ISREG(built.st_mode):
                raise RuntimeError(f"the build of {slot.name!r} left no regular file at {target}")
            if isinstance(said, str) and _SHA256.fullmatch(said):
                # The builder hashed what it wrote as it wrote it: no second pass over it.
                sha256 = said
                inode, size, mtime_ns = built.st_ino, built.st_size, built.st_mtime_ns
            else:
                digest = FileDigest(target)
                sha256 = digest.result()
                _device, inode, size, mtime_ns = digest.identity
            sidecar = work / ".sidecar.json"
            record = {
                "schema": _SCHEMA,
                "sha256": sha256,
                "size": size,
                "inode": inode,
                "mtime_ns": mtime_ns,
            }
            sidecar.write_text(json.dumps(record), "utf-8")
            now = time.time_ns()
            os.utime(sidecar, ns=(now, now))
            self._publish(slot, target, sidecar)
        finally:
            _remove_tree(str(work))
        with self._verified_lock:
            self._verified[slot.ids] = (inode, mtime_ns, sha256)
        _log.info("cache: stored %s/%s (%d bytes, sha256 %s)", *slot.ids, size, sha256)
        return CachedFile(slot.data, sha256, size)

    def _publish(self, slot: _Slot, target: Path, sidecar: Path) -> None:
        # The file first: a sidecar then always names a file already in place.
        for attempt in range(_PUBLISH_ATTEMPTS):
            slot.data.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.replace(target, slot.data)
                break
            except FileNotFoundError:
                if attempt == _PUBLISH_ATTEMPTS - 1 or not target.exists():
                    raise
        os.replace(sidecar, slot.sidecar)

    def _remove_unfinished(self, slot: _Slot) -> None:
        """Under the entry's lock: what killed builds of this entry left in ``tmp/``."""
        with contextlib.suppress(FileNotFoundError), os.scandir(self._tmp) as children:
            for child in children:
                if child.name.startswith(f"{slot.lock_id}."):
                    _log.info("cache: removing %s, left by a build that did not finish", child.path)
                    _remove_tree(child.path)

    def _touch(self, slot: _Slot) -> None:
        """Record a use, for LRU: the sidecar's mtime (atime is unreliable under relatime)."""
        now = time.time_ns()
        try:
            os.utime(slot.sidecar, ns=(now, now))
        except OSError as exc:  # evicted meanwhile, or a read-only cache
            _log.debug("cache: cannot touch %s (%s)", slot.sidecar, exc)

    def _forget(self, slot: _Slot) -> None:
        with self._verified_lock:
            self._verified.pop(slot.ids, None)

    def _evict_after_build(self, slot: _Slot) -> None:
        """The build succeeded: a failing eviction is logged, not raised to its caller."""
        try:
            self._evict(keep=slot)
        except OSError as exc:
            _log.warning("cache: eviction failed (%s)", exc)

    def _evict(self, keep: _Slot | None) -> list[tuple[str, str]]:
        if self._max_bytes is None:
            return []
        removed: list[tuple[str, str]] = []
        with self._locks.hold(_EVICT_LOCK):
            stored = self._stored()
            total = sum(item.size for item in stored)
            for item in sorted(stored, key=lambda item: (item.used_ns, item.key, item.name)):
                if total <= self._max_bytes:
                    break
                if keep is not None and (item.key, item.name) == keep.ids:
                    continue
                if self._remove_idle(self._slot(item.key, item.name)):
                    _log.info("cache: evicted %s/%s (%d bytes)", item.key, item.name, item.size)
                    total -= item.size
                    removed.append((item.key, item.name))
            if total > self._max_bytes:
                _log.info(
                    "cache: %d bytes stored, over the %d allowed: the rest is in use",
                    total,
                    self._max_bytes,
                )
        return removed

    def _stored(self) -> list[_Stored]:
        """Every stored file, with its size and last use."""
        stored: list[_Stored] = []
        with os.scandir(self._entries) as keys:
            key_dirs = [each for each in keys if _KEY.fullmatch(each.name)]
        for key_dir in key_dirs:
            try:
                with os.scandir(key_dir.path) as entries:
                    children = {each.name: each for each in entries}
            except (FileNotFoundError, NotADirectoryError):
                continue
            for name, child in children.items():
                if _name_problem(name) is not None:
                    continue
                try:
                    info = child.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                used = info.st_mtime_ns
                sidecar = children.get(f".{name}.json")
                if sidecar is not None:
                    with contextlib.suppress(FileNotFoundError):
                        used = sidecar.stat(follow_symlinks=False).st_mtime_ns
                stored.append(_Stored(key_dir.name, name, info.st_size, used))
        return stored

    def _remove_idle(self, slot: _Slot) -> bool:
        """Remove the entry unless it is being built or removed (its lock is taken) or served
        (its file carries a lease); whether it was removed."""
        with self._locks.hold(slot.lock_id, wait=False) as held:
            if not held:
                return False
            try:
                fd: int | None = os.open(slot.data, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            except FileNotFoundError:
                fd = None
            except OSError:  # not a regular file: nothing can lease it
                fd = None
            try:
                if fd is not None:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except BlockingIOError:
                        return False
                # The sidecar first: a reader then sees the entry as absent, not as damaged.
                slot.sidecar.unlink(missing_ok=True)
                _remove_tree(str(slot.data))
            finally:
                if fd is not None:
                    os.close(fd)
            self._forget(slot)
            with contextlib.suppress(OSError):  # another name of the key is still there
                slot.data.parent.rmdir()
            self._locks.unlink_held(slot.lock_id)
        return True


@dataclass(frozen=True, slots=True)
class _Slot:
    """Where an entry's file, sidecar and lock are."""

    key: str
    name: str
    data: Path
    sidecar: Path
    lock_id: str

    @property
    def ids(self) -> tuple[str, str]:
        return self.key, self.name


@dataclass(frozen=True, slots=True)
class _Record:
    """A sidecar's content: the file as it was stored."""

    sha256: str
    size: int
    inode: int
    mtime_ns: int


@dataclass(frozen=True, slots=True)
class _Stored:
    """A stored file as eviction sees it."""

    key: str
    name: str
    size: int
    used_ns: int


class _Damaged(Exception):
    """An entry is there but cannot be served; the message says why."""


class _Thread:
    """A per-id thread lock and how many threads want it (to drop it once none does)."""

    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.users = 0


class _EntryLocks:
    """Exclusive locks by id: a thread lock among this process's threads, then a ``FileLock``
    (``flock``) among processes.

    A ``FileLock`` shared by threads with ``thread_local=False`` is reentrant across them (the
    second thread would just count up); a new ``FileLock`` per hold (thread-local, its own
    descriptor) does exclude other threads, but by polling. The thread lock lets them wait without
    polling and keeps one ``flock`` descriptor per id in the process.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._guard = threading.Lock()
        self._threads: dict[str, _Thread] = {}
        self._local = threading.local()

    def path(self, lock_id: str) -> Path:
        return self.directory / f"{lock_id}.lock"

    def _held_here(self) -> set[str]:
        held: set[str] | None = getattr(self._local, "held", None)
        if held is None:
            held = self._local.held = set()
        return held

    @contextlib.contextmanager
    def hold(self, lock_id: str, *, wait: bool = True) -> Iterator[bool]:
        """Hold the lock for the block, waiting for it, or (``wait=False``) only if it is free;
        yields whether it is held.

        :raises RuntimeError: the thread already holding it waits for it again (a deadlock)
        """
        held_here = self._held_here()
        if lock_id in held_here:
            if wait:
                raise RuntimeError(
                    f"cache lock {lock_id} is asked for again by the thread holding it "
                    "(does a build ask the cache for the entry it builds?)"
                )
            yield False
            return
        with self._guard:
            thread = self._threads.setdefault(lock_id, _Thread())
            thread.users += 1
        try:
            if not thread.lock.acquire(blocking=wait):
                yield False
                return
            try:
                # No soft fallback: a marker file left by a killed process would need breaking,
                # and leases rely on flock anyway.
                file_lock = FileLock(self.path(lock_id), blocking=wait, fallback_to_soft=False)
                try:
                    file_lock.acquire()
                except Timeout:
                    yield False
                    return
                held_here.add(lock_id)
                try:
                    yield True
                finally:
                    held_here.discard(lock_id)
                    file_lock.release()
            finally:
                thread.lock.release()
        finally:
            with self._guard:
                thread.users -= 1
                if not thread.users:
                    del self._threads[lock_id]

    def unlink_held(self, lock_id: str) -> None:
        """Remove a held lock's file, as the last step before releasing it: a process waiting on
        the old file finds it unlinked once it gets it and takes the new one (filelock checks),
        and one arriving meanwhile creates the new one, so nothing else may follow this step."""
        with contextlib.suppress(FileNotFoundError):
            self.path(lock_id).unlink()


def _check_key(key: str) -> None:
    if not isinstance(key, str) or _KEY.fullmatch(key) is None:
        raise ValueError(f"cache key {key!r} is not 16 to 64 lowercase hexadecimal digits")


def _check_name(name: str) -> None:
    problem = _name_problem(name)
    if problem is not None:
        raise ValueError(f"cache file name {name!r} {problem}")


def _name_problem(name: str) -> str | None:
    if not isinstance(name, str) or not name:
        return "is not a file name"
    if "/" in name or "\\" in name or "\0" in name:
        return "is not a plain file name (it holds '/', '\\' or NUL)"
    if name.startswith("."):
        return "starts with '.'"
    try:
        encoded = name.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid UTF-8"
    if len(encoded) > _NAME_MAX:
        return f"is longer than {_NAME_MAX} bytes"
    return None


def _mismatch(record: _Record, info: os.stat_result) -> str | None:
    """Why the file ``info`` describes is not the one ``record`` does, if it is not."""
    if not stat.S_ISREG(info.st_mode):
        return "its file is not a regular file"
    if info.st_size != record.size:
        return f"its file has {info.st_size} bytes, its sidecar says {record.size}"
    if (info.st_ino, info.st_mtime_ns) != (record.inode, record.mtime_ns):
        return "its file was replaced or modified after it was stored"
    return None


def _remove_tree(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
