"""Writing a simple repository to a directory, SITE, incrementally and atomically.

Layout::

    SITE/simple/index.html, index.json                 the project list (PEP 503, PEP 691)
    SITE/simple/<project>/index.html, index.json       each project's files
    SITE/files/<project>/<file>                        each file (a hard link where possible)
    SITE/files/<project>/<file>.metadata               a wheel's METADATA (PEP 658)
    SITE/.wheelpatch-index.json                        the manifest: what is known of each file

Every file is written under a temporary name and renamed into place, so a server never serves half
a page; a page whose bytes would not change is not written at all. A file whose size and
modification time the manifest already knows (and whose copy in SITE is there) is not read again:
re-indexing after adding one wheel hashes that wheel alone and touches only its project's pages.
Projects and files no longer given are removed (only what the manifest says this tool wrote).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
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
            candidates = sorted(p for p in path.iterdir() if p.name.endswith(DISTRIBUTION_SUFFIXES))
        elif path.exists():
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
    manifest = _read_manifest(site)
    base_url = manifest.get("base_url")
    yanked = manifest.get("yanked")
    return (
        base_url if isinstance(base_url, str) else None,
        {str(k): str(v) for k, v in yanked.items()} if isinstance(yanked, dict) else {},
    )


def site_files(site: Path) -> list[Path]:
    """The files SITE lists already (those its manifest knows and that are there)."""
    known = _read_manifest(site).get("files", {})
    paths = [site / "files" / str(data.get("project")) / name for name, data in known.items()]
    return sorted((p for p in paths if p.is_file()), key=lambda p: p.name)


def _same_bytes(a: Path, b: Path) -> bool:
    return a.stat().st_size == b.stat().st_size and _sha256(a) == _sha256(b)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def write_site(
    inputs: Sequence[Path],
    site: Path,
    *,
    base_url: str | None = None,
    yanked: Mapping[str, str] | None = None,
) -> IndexReport:
    """Make ``site`` the simple repository of exactly ``inputs`` (see :func:`collect_inputs`)."""
    report = IndexReport(site)
    manifest = _read_manifest(site)
    known: dict[str, dict[str, Any]] = manifest.get("files", {})
    entries: dict[str, IndexedFile] = {}
    sidecars: dict[str, bytes] = {}
    identities: dict[str, list[int]] = {}
    pending: dict[str, FileDigest] = {}
    # hashlib releases the GIL: files are hashed on every core while this thread reads the next.
    pool = ThreadPoolExecutor(_hash_workers(), thread_name_prefix="wheelpatch-index-hash")
    try:
        for path in inputs:
            name = path.name
            stat = os.stat(path)
            identity = [stat.st_size, stat.st_mtime_ns]
            identities[name] = identity
            previous = known.get(name)
            if (
                previous is not None
                and previous.get("identity") == identity
                and _placed(site, previous, name)
            ):
                entries[name] = IndexedFile.from_manifest(name, previous)
                report.reused.append(name)
                continue
            pending[name] = FileDigest(path, pool)  # hashed while the next ones are read
            indexed, metadata = read_distribution(path)
            entries[name] = indexed
            if metadata is not None:
                sidecars[name] = metadata
            report.hashed.append(name)
        for name, digest in pending.items():
            entry = entries[name]
            metadata = sidecars.get(name)
            entries[name] = IndexedFile(
                project=entry.project,
                version=entry.version,
                filename=name,
                kind=entry.kind,
                size=entry.size,
                sha256=digest.result(),
                requires_python=entry.requires_python,
                metadata_sha256=hashlib.sha256(metadata).hexdigest() if metadata else None,
            )
    finally:
        for digest in pending.values():
            digest.close()
        pool.shutdown(wait=True)
    by_path = {p.name: p for p in inputs}
    try:
        _write(site, entries, by_path, sidecars, identities, known, base_url, yanked, report)
    except OSError as exc:
        where = exc.filename or site
        raise OutputError(f"{where}: cannot write ({exc.strerror or exc})") from None
    report.projects = len({e.project for e in entries.values()})
    report.files = len(entries)
    return report


def _hash_workers() -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(4, cores or 1))


def _placed(site: Path, previous: Mapping[str, Any], name: str) -> bool:
    """The file the manifest knows is in SITE, at its size, with its sidecar if it has one."""
    directory = site / "files" / str(previous.get("project"))
    try:
        if (directory / name).stat().st_size != previous.get("size"):
            return False
    except OSError:
        return False
    return previous.get("metadata_sha256") is None or (directory / f"{name}.metadata").is_file()


def _write(
    site: Path,
    entries: Mapping[str, IndexedFile],
    sources: Mapping[str, Path],
    sidecars: Mapping[str, bytes],
    identities: Mapping[str, list[int]],
    known: Mapping[str, Mapping[str, Any]],
    base_url: str | None,
    yanked: Mapping[str, str] | None,
    report: IndexReport,
) -> None:
    files_dir = site / "files"
    simple = site / "simple"
    for name, entry in entries.items():
        directory = files_dir / entry.project
        target = directory / name
        if name in sidecars or name not in report.reused:
            directory.mkdir(parents=True, exist_ok=True)
            _place(sources[name], target)
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
    # What this tool wrote before and is no longer given: its files, sidecars and pages.
    for name, previous in sorted(known.items()):
        if name in entries:
            continue
        directory = files_dir / str(previous.get("project"))
        for stale in (directory / name, directory / f"{name}.metadata"):
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()
                report.removed.append(str(stale.relative_to(site)))
        with contextlib.suppress(OSError):
            directory.rmdir()  # only when empty
    for gone in sorted({str(p.get("project")) for p in known.values()} - set(projects)):
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


def _read_manifest(site: Path) -> dict[str, Any]:
    path = site / MANIFEST_NAME
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        return {}  # unreadable: index from scratch (every file is read again)
    if not isinstance(data, dict) or data.get("schema") != _SCHEMA:
        return {}
    files = data.get("files")
    return data if isinstance(files, dict) else {}


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


def _place(source: Path, target: Path) -> None:
    """``target`` holds ``source``'s bytes: a hard link where the file system allows, else a copy;
    either under a temporary name, then renamed into place."""
    with contextlib.suppress(FileNotFoundError):
        if os.path.samefile(source, target):
            return
    temp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        temp.unlink()
    try:
        os.link(source, temp)
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
            raise
        shutil.copyfile(source, temp)
    try:
        os.replace(temp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
