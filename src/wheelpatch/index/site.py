"""Writing a simple repository to a directory, SITE, incrementally and atomically.

Layout::

    SITE/simple/index.html, index.json                 the project list (PEP 503, PEP 691)
    SITE/simple/<project>/index.html, index.json       each project's files
    SITE/files/<project>/<file>                        each file (a copy: what is served never
                                                       changes with the input)
    SITE/files/<project>/<file>.metadata               a wheel's METADATA (PEP 658)
    SITE/.wheelpatch-index.json                        the manifest: what is known of each file

Every file is written under a temporary name and renamed into place, so a server never serves half
a page; a page whose bytes would not change is not written at all. A file whose identity (device,
inode, size, modification and change times) the manifest already knows, and whose copy and sidecar
in SITE are there at their sizes, is not read again: re-indexing after adding one wheel hashes that
wheel alone and touches only its project's pages. Projects and files no longer given are removed
(only what the manifest says this tool wrote, checked to be a distribution's file in SITE).
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import json
import os
import shutil
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, InvalidWheel, OutputError
from ..wheel.digest import FileDigest
from .distribution import DISTRIBUTION_SUFFIXES, IndexedFile, identity_key, read_distribution
from .pages import project_pages, root_pages

__all__ = [
    "MANIFEST_NAME",
    "IndexReport",
    "collect_inputs",
    "site_files",
    "site_lock",
    "site_settings",
    "write_site",
]

MANIFEST_NAME = ".wheelpatch-index.json"
_SCHEMA = 1


@dataclass(slots=True)
class IndexReport:
    """What indexing did: the files read and hashed, those known already, pages written."""

    site: Path
    projects: int = 0
    files: int = 0
    hashed: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    written: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "site": str(self.site),
            "projects": self.projects,
            "files": self.files,
            "hashed": self.hashed,
            "reused": self.reused,
            "written": self.written,
            "removed": self.removed,
        }


def collect_inputs(paths: Iterable[Path]) -> list[Path]:
    """The distribution files named or found (not recursively) in the directories named.

    Two different files with one name, or two whose names spell one distribution differently
    (``Torch-2.0.1-...`` and ``torch-2.0.1-...``), are refused: an index can list only one."""
    found: dict[str, Path] = {}
    keys: dict[tuple[object, ...], str] = {}
    for path in paths:
        if path.is_dir():
            try:
                listed = sorted(path.iterdir())
            except OSError as exc:
                raise InvalidWheel(f"{path}: cannot list ({exc.strerror})") from None
            # Files only: a directory named like a distribution is none.
            candidates = [
                p for p in listed if p.name.endswith(DISTRIBUTION_SUFFIXES) and not p.is_dir()
            ]
        elif path.exists() or path.is_symlink():
            candidates = [path]
        else:
            raise ConfigError(f"{path}: no such file or directory")
        for candidate in candidates:
            name = candidate.name
            if name in found:
                if found[name].resolve() != candidate.resolve() and not _same_bytes(
                    found[name], candidate
                ):
                    raise InvalidWheel(
                        f"{name}: two different files of that name: {found[name]} and {candidate}"
                    )
                continue
            key = identity_key(name)
            if key is not None and key in keys:
                raise InvalidWheel(
                    f"{name}: names the same distribution as {keys[key]}, spelt otherwise; "
                    "an index lists one of them"
                )
            if key is not None:
                keys[key] = name
            found[name] = candidate
    return [found[name] for name in sorted(found)]


def site_settings(site: Path) -> tuple[str | None, dict[str, str]]:
    """The ``--base-url`` and ``--yank`` SITE was last written with (none for a new SITE)."""
    manifest = _existing_manifest(site)
    base_url = manifest.get("base_url")
    yanked = manifest.get("yanked")
    return (
        base_url if isinstance(base_url, str) else None,
        {str(k): str(v) for k, v in yanked.items()} if isinstance(yanked, dict) else {},
    )


def site_files(site: Path) -> list[Path]:
    """The files SITE lists already (those its manifest knows and that are there)."""
    known = _existing_manifest(site).get("files", {})
    paths = [site / "files" / entry.project / name for name, (entry, _) in known.items()]
    return sorted((p for p in paths if p.is_file()), key=lambda p: p.name)


def _existing_manifest(site: Path) -> dict[str, Any]:
    """The manifest of a SITE that is to be added to: refused when SITE has content but no
    manifest that can be read (adding to it would drop what it lists from its pages)."""
    manifest = _read_manifest(site)
    if manifest is None or (not manifest and (site / "simple").exists()):
        raise OutputError(
            f"{site}: its {MANIFEST_NAME} is missing or cannot be read, so what it lists is "
            "unknown; write it again with 'wheelpatch index ... -o SITE'"
        )
    return manifest


@contextlib.contextmanager
def site_lock(site: Path) -> Iterator[None]:
    """Hold SITE's lock (when SITE exists and the platform has ``flock``): runs into one SITE
    take turns, so that none works from a manifest another is about to replace."""
    try:
        import fcntl  # noqa: PLC0415 - POSIX only
    except ImportError:  # pragma: no cover - Windows: runs are not serialised
        yield
        return
    if not site.is_dir():
        yield
        return
    fd = os.open(site, os.O_RDONLY)  # the directory itself: no lock file to serve or leave
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _same_bytes(a: Path, b: Path) -> bool:
    return a.stat().st_size == b.stat().st_size and (
        FileDigest(a).result() == FileDigest(b).result()
    )


def write_site(
    inputs: Sequence[Path],
    site: Path,
    *,
    base_url: str | None = None,
    yanked: Mapping[str, str] | None = None,
    link: bool = False,
) -> IndexReport:
    """Make ``site`` the simple repository of exactly ``inputs`` (see :func:`collect_inputs`).

    New files are copied into SITE; with ``link``, hard-linked where the file system allows (the
    input must then only ever be replaced, never written into).

    Every input is read and checked before anything is written; a refusal writes nothing."""
    report = IndexReport(site)
    known = (_read_manifest(site) or {}).get("files", {})  # unreadable: read everything again
    entries: dict[str, IndexedFile] = {}
    sidecars: dict[str, bytes] = {}
    identities: dict[str, list[int]] = {}
    pending: dict[str, FileDigest] = {}
    workers = _hash_workers()
    # hashlib and the kernel's copy release the GIL: files are hashed and copied on every core
    # while this thread reads and checks the next.
    pool = ThreadPoolExecutor(2 * workers, thread_name_prefix="wheelpatch-index")
    in_flight: deque[str] = deque()  # at most a few files open at once, whatever their number
    # New files are copied into a staging directory beside SITE (one file system, so that they
    # can be renamed into place), and only once every input is read, checked and copied.
    staging = site.parent / f".{site.name}.staging-{os.getpid()}"
    copies: list[Future[None]] = []

    def finish(name: str) -> None:
        entry = entries[name]
        metadata = sidecars.get(name)
        entries[name] = dataclasses.replace(
            entry,
            sha256=pending.pop(name).result(),
            metadata_sha256=hashlib.sha256(metadata).hexdigest() if metadata else None,
            metadata_size=len(metadata) if metadata else None,
        )

    try:
        try:
            for path in inputs:
                name = path.name
                try:
                    info = os.stat(path)
                except OSError as exc:
                    raise InvalidWheel(f"{path}: cannot read ({exc.strerror})") from None
                identity = [
                    info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns
                ]  # fmt: skip
                identities[name] = identity
                previous, recorded = known.get(name, (None, None))
                if previous is not None and recorded == identity and _placed(site, previous):
                    entries[name] = previous
                    report.reused.append(name)
                    continue
                indexed, metadata = read_distribution(path)  # patch's refusal, first
                entries[name] = indexed
                if metadata is not None:
                    sidecars[name] = metadata
                try:
                    pending[name] = FileDigest(path, pool)
                except OSError as exc:
                    raise InvalidWheel(f"{path}: cannot open ({exc.strerror})") from None
                if not _is_in(site, path):
                    staging.mkdir(parents=True, exist_ok=True)
                    place = _link if link else _copy
                    copies.append(pool.submit(place, path, staging / name))
                in_flight.append(name)
                while len(in_flight) > 2 * workers:
                    finish(in_flight.popleft())
                report.hashed.append(name)
            while in_flight:
                finish(in_flight.popleft())
            for copy in copies:
                copy.result()
        finally:
            for digest in pending.values():
                digest.close()
            for copy in copies:
                copy.cancel()
            pool.shutdown(wait=True)
        by_path = {p.name: p for p in inputs}
        try:
            _write(
                site, entries, by_path, staging, sidecars, identities, known, base_url, yanked,
                report,
            )  # fmt: skip
        except OSError as exc:
            where = exc.filename or site
            raise OutputError(f"{where}: cannot write ({exc.strerror or exc})") from None
    except OSError as exc:  # a copy that failed: name its file
        if isinstance(exc, OutputError):
            raise
        where = exc.filename or site
        raise OutputError(f"{where}: cannot write ({exc.strerror or exc})") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    report.projects = len({e.project for e in entries.values()})
    report.files = len(entries)
    return report


def _hash_workers() -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(4, cores or 1))


def _placed(site: Path, previous: IndexedFile) -> bool:
    """The file the manifest knows is in SITE at its size, with its sidecar at its size."""
    directory = site / "files" / previous.project
    try:
        if (directory / previous.filename).stat().st_size != previous.size:
            return False
        if previous.metadata_sha256 is None:
            return True
        sidecar = (directory / f"{previous.filename}.metadata").stat().st_size
    except OSError:
        return False
    return sidecar == previous.metadata_size


def _write(
    site: Path,
    entries: Mapping[str, IndexedFile],
    sources: Mapping[str, Path],
    staging: Path,
    sidecars: Mapping[str, bytes],
    identities: Mapping[str, list[int]],
    known: Mapping[str, tuple[IndexedFile, Any]],
    base_url: str | None,
    yanked: Mapping[str, str] | None,
    report: IndexReport,
) -> None:
    files_dir = site / "files"
    simple = site / "simple"
    for name, entry in entries.items():
        if name in report.reused:
            continue
        directory = files_dir / entry.project
        directory.mkdir(parents=True, exist_ok=True)
        if not _is_in(site, sources[name]):  # else it is SITE's own file, indexed again
            os.replace(staging / name, directory / name)
        if name in sidecars:
            _write_bytes(directory / f"{name}.metadata", sidecars[name], report, site)
    projects: dict[str, list[IndexedFile]] = {}
    for entry in entries.values():
        projects.setdefault(entry.project, []).append(entry)
    for project, files in sorted(projects.items()):
        page, document = project_pages(project, files, base_url, yanked)
        directory = simple / project
        directory.mkdir(parents=True, exist_ok=True)
        _write_bytes(directory / "index.html", page, report, site)
        _write_bytes(directory / "index.json", document, report, site)
    page, document = root_pages(projects)
    simple.mkdir(parents=True, exist_ok=True)
    _write_bytes(simple / "index.html", page, report, site)
    _write_bytes(simple / "index.json", document, report, site)
    # What this tool wrote before and is no longer given: its files, sidecars and pages (the
    # manifest's entries are checked names of distributions, so nothing outside SITE is touched).
    for name, (previous, _) in sorted(known.items()):
        if name in entries:
            continue
        directory = files_dir / previous.project
        for stale in (directory / name, directory / f"{name}.metadata"):
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()
                report.removed.append(str(stale.relative_to(site)))
        with contextlib.suppress(OSError):
            directory.rmdir()  # only when empty
    for gone in sorted({p.project for p, _ in known.values()} - set(projects)):
        for page_name in ("index.html", "index.json"):
            with contextlib.suppress(FileNotFoundError):
                (simple / gone / page_name).unlink()
                report.removed.append(f"simple/{gone}/{page_name}")
        with contextlib.suppress(OSError):
            (simple / gone).rmdir()
    manifest = {
        "schema": _SCHEMA,
        # How the pages were made, for a later run that adds files (patch --index) to keep.
        "base_url": base_url,
        "yanked": dict(sorted((yanked or {}).items())),
        "files": {
            name: {**entries[name].as_manifest(), "identity": identities[name]}
            for name in sorted(entries)
        },
    }
    _write_bytes(site / MANIFEST_NAME, _encode(manifest), report, site, listed=False)


def _encode(document: object) -> bytes:
    return (json.dumps(document, indent=1, sort_keys=True) + "\n").encode("utf-8")


def _read_manifest(site: Path) -> dict[str, Any] | None:
    """SITE's manifest; ``{}`` for a SITE without one, None for one that cannot be read. Entries
    that are not what this tool writes are left out (their files are then read again)."""
    path = site / MANIFEST_NAME
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("schema") != _SCHEMA:
        return None
    files = data.get("files")
    if not isinstance(files, dict):
        return None
    known = {}
    for name, entry in files.items():
        indexed = IndexedFile.from_manifest(name, entry)
        identity = entry.get("identity") if isinstance(entry, dict) else None
        if indexed is not None:
            known[name] = (indexed, identity)
    return {**data, "files": known}


def _write_bytes(
    path: Path, data: bytes, report: IndexReport, site: Path, *, listed: bool = True
) -> None:
    """Write ``path`` atomically, and only when its bytes change."""
    try:
        if path.read_bytes() == data:
            return
    except OSError:
        pass
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with temp.open("wb") as stream:
            stream.write(data)
        os.replace(temp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
    if listed:
        report.written.append(str(path.relative_to(site)))


def _copy(source: Path, target: Path) -> None:
    """A copy made by the kernel (``copy_file_range`` or ``sendfile``). Not a hard link: writing
    into the input later (``cp`` over it) would change what is served under the page's hash."""
    shutil.copyfile(source, target)


def _link(source: Path, target: Path) -> None:
    """A hard link to the file ``source`` names (its target, for a symlink), else a copy."""
    try:
        os.link(os.path.realpath(source), target)
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
            raise
        _copy(source, target)


def _is_in(site: Path, path: Path) -> bool:
    """Whether ``path`` is a file SITE serves already (SITE's own files, indexed again)."""
    files = site / "files"
    try:
        return files.exists() and path.resolve().is_relative_to(files.resolve())
    except (OSError, ValueError):
        return False
