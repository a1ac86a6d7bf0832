"""One file of a simple repository: a wheel (read and checked as ``patch`` reads it) or an sdist,
and what its pages say of it."""

from __future__ import annotations

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
from packaging.version import Version

from ..errors import InvalidWheel
from ..wheel.source_wheel import read_wheel

__all__ = ["DISTRIBUTION_SUFFIXES", "IndexedFile", "identity_key", "read_distribution"]

#: What a directory given to ``wheelpatch index`` is searched for.
DISTRIBUTION_SUFFIXES = (".whl", ".tar.gz", ".zip")


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

    def as_manifest(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "version": str(self.version),
            "kind": self.kind,
            "size": self.size,
            "sha256": self.sha256,
            "requires_python": self.requires_python,
            "metadata_sha256": self.metadata_sha256,
        }

    @classmethod
    def from_manifest(cls, filename: str, data: dict[str, Any]) -> IndexedFile:
        return cls(
            project=NormalizedName(data["project"]),
            version=Version(data["version"]),
            filename=filename,
            kind=data["kind"],
            size=int(data["size"]),
            sha256=str(data["sha256"]),
            requires_python=data["requires_python"],
            metadata_sha256=data["metadata_sha256"],
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
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise InvalidWheel(f"{path}: cannot read ({exc.strerror})") from None
    indexed = IndexedFile(name, version, path.name, "sdist", size, "", None, None)
    return indexed, None
