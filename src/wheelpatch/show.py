"""What ``wheelpatch show`` reports: requirements and provenance of a wheel or installed dist."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from packaging.utils import InvalidName, canonicalize_name

from .archive import read_member
from .errors import InvalidWheel, WheelpatchError
from .metadata import MetadataDocument, MetadataError
from .plan import PROVENANCE_NAME
from .wheel import METADATA_CAP, read_wheel

__all__ = ["describe_target"]


def describe_target(target: str, python: str | None = None) -> dict[str, Any]:
    """Describe a wheel file (a path) or a distribution installed in the environment of
    ``python`` (default: the active virtual environment, else the one running wheelpatch)."""
    path = Path(target)
    if target.endswith(".whl") or path.is_file():
        return _describe_wheel(path)
    return _describe_installed(target, python)


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


def _describe_installed(name: str, python: str | None) -> dict[str, Any]:
    from .environment import probe  # noqa: PLC0415 - only installed distributions need it

    environment = probe(python)
    try:
        project = canonicalize_name(name, validate=True)
    except InvalidName:
        raise WheelpatchError(
            f"{name}: no such wheel file, and not a valid project name either"
        ) from None
    found = environment.installed(project)
    if not found:
        raise WheelpatchError(
            f"{name}: no such wheel file, and no distribution of that name is installed in the "
            f"environment of {environment.interpreter}"
        )
    dist_info = found[0].dist_info
    try:
        text = (dist_info / "METADATA").read_bytes()
    except OSError as exc:
        raise WheelpatchError(f"{dist_info}/METADATA: cannot read ({exc.strerror})") from None
    try:
        document = MetadataDocument.parse(text)
    except MetadataError as exc:
        raise WheelpatchError(f"{dist_info}/METADATA: {exc}") from None
    try:
        raw: bytes | None = (dist_info / PROVENANCE_NAME).read_bytes()
    except FileNotFoundError:
        raw = None
    except OSError as exc:
        raise WheelpatchError(
            f"{dist_info}/{PROVENANCE_NAME}: cannot read ({exc.strerror})"
        ) from None
    provenance = None if raw is None else _load_provenance(raw, str(dist_info))
    return _summary(document, provenance, str(dist_info))
