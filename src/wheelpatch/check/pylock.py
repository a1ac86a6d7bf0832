"""A ``pylock.toml`` (PEP 751) as the pinned requirements pip resolves again.

A lock's ``dependencies`` entries, where a locker writes them at all, name packages but carry no
markers or extras, so the graph is not read from them: each ``[[packages]]`` entry becomes
``name==version`` (with its ``marker``), and pip's resolution of those pins, for the target
interpreter, gives the requirements with their markers. The directories of the lock's local
wheels (``wheels[].path``) are offered to pip as ``--find-links``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from packaging.markers import InvalidMarker, Marker
from packaging.utils import InvalidName, canonicalize_name
from packaging.version import InvalidVersion, Version

from ..errors import ConfigError
from ..rules.config import read_toml

__all__ = ["LockedRequirements", "is_pylock", "read_pylock"]


@dataclass(frozen=True, slots=True)
class LockedRequirements:
    requirements: tuple[str, ...]
    find_links: tuple[str, ...]


def is_pylock(path: Path) -> bool:
    """``pylock.toml`` or ``pylock.<name>.toml``, the names PEP 751 gives lock files."""
    name = path.name
    return name == "pylock.toml" or (name.startswith("pylock.") and name.endswith(".toml"))


def read_pylock(path: Path) -> LockedRequirements:
    """The pins of the lock file ``path``; :class:`ConfigError` naming each bad entry."""
    data = read_toml(path)
    problems: list[str] = []
    version = data.get("lock-version")
    if not isinstance(version, str) or not version.startswith("1."):
        problems.append(f"{path}: lock-version: must be '1.x', not {version!r}")
    packages = data.get("packages")
    if not isinstance(packages, list) or not packages:
        problems.append(f"{path}: packages: must be a non-empty array of tables")
        packages = []
    requirements: list[str] = []
    links: list[str] = []
    for index, entry in enumerate(packages):
        where = f"{path}: packages[{index}]"
        if not isinstance(entry, dict):
            problems.append(f"{where}: must be a table, not {entry!r}")
            continue
        name, pinned, marker = entry.get("name"), entry.get("version"), entry.get("marker")
        try:
            canonicalize_name(name if isinstance(name, str) else "", validate=True)
        except InvalidName:
            problems.append(f"{where}.name: {name!r} is not a valid project name")
            continue
        if not isinstance(pinned, str):
            problems.append(
                f"{where}.version: {name} has no version (a directory or VCS package), which "
                "cannot be pinned for pip"
            )
            continue
        try:
            Version(pinned)
        except InvalidVersion:
            problems.append(f"{where}.version: {pinned!r} is not a valid version")
            continue
        text = f"{name}=={pinned}"
        if marker is not None:
            try:
                Marker(marker if isinstance(marker, str) else "")
            except InvalidMarker:
                problems.append(f"{where}.marker: {marker!r} is not a valid marker")
                continue
            text += f"; {marker}"
        requirements.append(text)
        for wheel in entry.get("wheels") or []:
            local = wheel.get("path") if isinstance(wheel, dict) else None
            if isinstance(local, str):
                directory = str((path.parent / local).parent.resolve())
                if directory not in links:
                    links.append(directory)
    if problems:
        raise ConfigError(problems)
    return LockedRequirements(tuple(requirements), tuple(links))
