"""One file of a simple repository: a wheel (read and checked as ``patch`` reads it) or an sdist,
and what its pages say of it."""

from __future__ import annotations

import re
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    NormalizedName,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from ..errors import InvalidWheel
from ..wheel.source_wheel import read_wheel

__all__ = ["DISTRIBUTION_SUFFIXES", "IndexedFile", "identity_key", "read_distribution"]

#: What a directory given to ``wheelpatch index`` is searched for.
DISTRIBUTION_SUFFIXES = (".whl", ".tar.gz", ".zip")
#: A normalized project name, as pages and paths use it.
_PROJECT = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class IndexedFile:
    """A distribution file as the index lists it; ``metadata`` is the sidecar's bytes (wheels)."""

    project: NormalizedName
    version: Version
    filename: str
    kind: Literal["wheel", "sdist"]
    size: int
    sha256: str
    requires_python: str | None
    metadata_sha256: str | None
    metadata_size: int | None = None

    def as_manifest(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "version": str(self.version),
            "kind": self.kind,
            "size": self.size,
            "sha256": self.sha256,
            "requires_python": self.requires_python,
            "metadata_sha256": self.metadata_sha256,
            "metadata_size": self.metadata_size,
        }

    @classmethod
    def from_manifest(cls, filename: str, data: Any) -> IndexedFile | None:
        """The entry a manifest records, or None if it is not one this tool wrote: a manifest
        is read from SITE, which anyone may have edited, and it says what may be removed."""
        key = identity_key(filename)
        if key is None or not isinstance(data, dict) or "/" in filename:
            return None
        try:
            project = data["project"]
            version = Version(data["version"])
            kind = data["kind"]
            size = data["size"]
            sha256 = data["sha256"]
            requires_python = data["requires_python"]
            metadata_sha256 = data["metadata_sha256"]
            metadata_size = data["metadata_size"]
        except (KeyError, TypeError, InvalidVersion):
            return None
        if (
            not isinstance(project, str)
            or not _PROJECT.fullmatch(project)
            or project != key[1]
            or kind != key[0]
            or not isinstance(size, int)
            or not isinstance(sha256, str)
            or not _SHA256.fullmatch(sha256)
            or not (requires_python is None or isinstance(requires_python, str))
            or not (metadata_sha256 is None or _SHA256.fullmatch(str(metadata_sha256)))
            or not (metadata_size is None or isinstance(metadata_size, int))
        ):
            return None
        return cls(
            NormalizedName(project),
            version,
            filename,
            kind,
            size,
            sha256,
            requires_python,
            metadata_sha256,
            metadata_size,
        )


def identity_key(filename: str) -> tuple[object, ...] | None:
    """What makes two files the same distribution (project, version, build and tags for wheels),
    whatever the spelling of their names; None for a name that is no distribution's."""
    try:
        if filename.endswith(".whl"):
            name, version, build, tags = parse_wheel_filename(filename)
            return ("wheel", name, version, build, tuple(sorted(map(str, tags))))
        name, version = parse_sdist_filename(filename)
    except (InvalidWheelFilename, InvalidSdistFilename):
        return None
    return ("sdist", name, version)


def read_distribution(path: Path) -> tuple[IndexedFile, bytes | None]:
    """The file as the index lists it, its sha256 still to fill (empty), and its METADATA bytes
    (wheels: the sidecar of PEP 658, byte for byte as inside the wheel).

    A wheel is read and checked by :func:`read_wheel`, so what ``patch`` refuses is refused here
    with the same line."""
    if path.name.endswith(".whl"):
        wheel = read_wheel(path)
        return (
            IndexedFile(
                project=wheel.name,
                version=wheel.version,
                filename=path.name,
                kind="wheel",
                size=wheel.identity[2],
                sha256="",
                requires_python=wheel.metadata.get("Requires-Python"),
                metadata_sha256=None,
            ),
            wheel.metadata_bytes,
        )
    try:
        name, version = parse_sdist_filename(path.name)
    except InvalidSdistFilename as exc:
        raise InvalidWheel(f"{path}: not a valid sdist filename ({exc})") from None
    if not _PROJECT.fullmatch(name):
        raise InvalidWheel(f"{path}: {name!r} is not a valid project name")
    try:
        size = path.stat().st_size
        archive = tarfile.is_tarfile(path) if path.name.endswith(".tar.gz") else None
        archive = zipfile.is_zipfile(path) if archive is None else archive
    except OSError as exc:
        raise InvalidWheel(f"{path}: cannot read ({exc.strerror})") from None
    if not archive:
        kind = "a tar archive" if path.name.endswith(".tar.gz") else "a zip archive"
        raise InvalidWheel(f"{path}: an sdist, but not {kind}")
    indexed = IndexedFile(name, version, path.name, "sdist", size, "", None, None)
    return indexed, None
