"""What ``wheelpatch show`` reports: requirements and provenance of a wheel or installed dist."""

from __future__ import annotations

import json
import os
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from .archive import read_member
from .errors import InvalidWheel, WheelpatchError
from .metadata import MetadataDocument, MetadataError
from .plan import PROVENANCE_NAME
from .wheel import METADATA_CAP, read_wheel

__all__ = ["describe_target"]


def describe_target(target: str) -> dict[str, Any]:
    """Describe a wheel file (a path) or a distribution installed in this environment (a name)."""
    path = Path(target)
    if target.endswith(".whl") or path.is_file():
        return _describe_wheel(path)
    return _describe_installed(target)


def _summary(document: MetadataDocument, provenance: Any, source: str) -> dict[str, Any]:
    return {
        "source": source,
        "name": document.get("Name"),
        "version": document.get("Version"),
        "requires_python": document.get("Requires-Python"),
        "requires_dist": document.get_all("Requires-Dist"),
        "provenance": provenance,
    }


def _load_provenance(data: bytes | str, where: str) -> Any:
    try:
        return json.loads(data)
    except ValueError as exc:
        raise InvalidWheel(f"{where}: {PROVENANCE_NAME} is not valid JSON ({exc})") from None


def _describe_wheel(path: Path) -> dict[str, Any]:
    wheel = read_wheel(path)
    provenance = None
    name = f"{wheel.dist_info}/{PROVENANCE_NAME}"
    member = next((m for m in wheel.archive.members if m.name == name), None)
    if member is not None:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        try:
            provenance = _load_provenance(
                read_member(fd, member, wheel.filename, METADATA_CAP), wheel.filename
            )
        finally:
            os.close(fd)
    return _summary(wheel.metadata, provenance, str(path))


def _describe_installed(name: str) -> dict[str, Any]:
    try:
        dist = importlib_metadata.distribution(name)
    except importlib_metadata.PackageNotFoundError:
        raise WheelpatchError(
            f"{name}: no such wheel file, and no distribution of that name is installed in this "
            "environment"
        ) from None
    text = dist.read_text("METADATA") or dist.read_text("PKG-INFO")
    if text is None:
        raise WheelpatchError(f"{name}: the installed distribution has no METADATA")
    try:
        document = MetadataDocument.parse(text.encode("utf-8"))
    except MetadataError as exc:
        raise WheelpatchError(f"{name}: installed METADATA {exc}") from None
    raw = dist.read_text(PROVENANCE_NAME)
    provenance = None if raw is None else _load_provenance(raw, name)
    location = getattr(dist, "_path", None)
    return _summary(document, provenance, str(location) if location else name)
