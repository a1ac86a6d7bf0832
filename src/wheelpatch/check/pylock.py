"""A ``pylock.toml`` (PEP 751) as the lock's own files, pinned for pip to resolve again.

A lock's ``dependencies`` entries, where a locker writes them at all, name packages but carry no
markers or extras, so the graph is not read from them: each ``[[packages]]`` entry whose
``marker`` holds on the target becomes a pin of the very file the lock names, the wheel the
target's tags prefer (else its sdist), as ``name @ URL#sha256=...``. A pin ``name==version``
would let pip take another file of that version from an index, with other metadata.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from packaging.markers import InvalidMarker, Marker
from packaging.utils import (
    InvalidName,
    InvalidWheelFilename,
    NormalizedName,
    canonicalize_name,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from ..errors import ConfigError, InvalidWheel
from ..rules.config import read_toml

__all__ = ["LockedFile", "is_pylock", "read_pylock"]

#: The hashes pip checks in a URL's fragment, strongest first.
_HASHES = ("sha512", "sha384", "sha256")
#: Markers only a lock's installer can evaluate: it alone knows the extras and groups asked for.
_LOCK_ONLY = re.compile(r"\b(extras|dependency_groups)\b")
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")


@dataclass(frozen=True, slots=True)
class LockedFile:
    """One package of a lock, as the file the lock names for the target."""

    name: NormalizedName
    version: Version
    #: The file: a local path (``path`` in the lock, made absolute), else the URL it is at.
    path: Path | None
    url: str | None
    #: The strongest hash pip checks, as ``(algorithm, hex digest)``; ``None`` if none given.
    digest: tuple[str, str] | None
    #: Where it is in the lock (``pylock.toml: packages[3].wheels[1]``).
    key: str

    @property
    def is_wheel(self) -> bool:
        return (self.path.name if self.path else self.url or "").endswith(".whl")

    @property
    def requirement(self) -> str:
        """``name @ URL#algorithm=digest``: pip takes this file and checks its hash."""
        uri = self.path.as_uri() if self.path is not None else str(self.url)
        if self.digest is not None:
            uri += f"#{self.digest[0]}={self.digest[1]}"
        return f"{self.name} @ {uri}"

    def verify(self) -> None:
        """Refuse the local file unless it has the lock's hash (read a MiB at a time)."""
        if self.path is None or self.digest is None:
            return
        algorithm, expected = self.digest
        try:
            hasher = hashlib.new(algorithm)
            with self.path.open("rb") as stream:
                while block := stream.read(1 << 20):
                    hasher.update(block)
            found = hasher.hexdigest()
        except OSError as exc:
            raise ConfigError(f"{self.key}: {self.path}: cannot read ({exc.strerror})") from None
        if found != expected.lower():
            raise InvalidWheel(
                f"{self.path.name}: {algorithm} {found} is not the {expected} of {self.key}; the "
                "file is not the one locked"
            )


def is_pylock(path: Path) -> bool:
    """``pylock.toml`` or ``pylock.<name>.toml``, the names PEP 751 gives lock files."""
    name = path.name
    return name == "pylock.toml" or (name.startswith("pylock.") and name.endswith(".toml"))


def read_pylock(
    path: Path, *, tags: Sequence[str] | None, markers: Mapping[str, str] | None
) -> tuple[LockedFile, ...]:
    """The files of the lock ``path`` for a target with ``tags`` (most preferred first) and the
    marker environment ``markers``: packages whose marker is false there are left out.
    :class:`ConfigError` naming each bad entry."""
    data = read_toml(path)
    problems: list[str] = []
    version = data.get("lock-version")
    if not isinstance(version, str) or not version.startswith("1."):
        problems.append(f"{path}: lock-version: must be '1.x', not {version!r}")
    packages = data.get("packages")
    if not isinstance(packages, list) or not packages:
        problems.append(f"{path}: packages: must be a non-empty array of tables")
        packages = []
    files: list[LockedFile] = []
    for index, entry in enumerate(packages):
        where = f"{path}: packages[{index}]"
        try:
            found = _package(path, where, entry, tags, markers)
        except ConfigError as exc:
            problems += exc.errors
            continue
        if found is not None:
            files.append(found)
    if problems:
        raise ConfigError(problems)
    return tuple(files)


def _package(
    lock: Path,
    where: str,
    entry: Any,
    tags: Sequence[str] | None,
    markers: Mapping[str, str] | None,
) -> LockedFile | None:
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: must be a table, not {entry!r}")
    name, pinned, marker = entry.get("name"), entry.get("version"), entry.get("marker")
    try:
        project = canonicalize_name(name if isinstance(name, str) else "", validate=True)
    except InvalidName:
        raise ConfigError(f"{where}.name: {name!r} is not a valid project name") from None
    if not isinstance(pinned, str):
        raise ConfigError(
            f"{where}.version: {name} has no version (a directory or VCS package), which "
            "cannot be pinned for pip"
        )
    try:
        locked_version = Version(pinned)
    except InvalidVersion:
        raise ConfigError(f"{where}.version: {pinned!r} is not a valid version") from None
    if marker is not None:
        try:
            parsed = Marker(marker if isinstance(marker, str) else "")
        except InvalidMarker:
            raise ConfigError(f"{where}.marker: {marker!r} is not a valid marker") from None
        if _LOCK_ONLY.search(_QUOTED.sub("", str(parsed))):
            raise ConfigError(
                f"{where}.marker: {marker!r} depends on the extras or dependency groups an "
                "installer of the lock is asked for, which a check cannot know; lock without "
                "them, or give the requirements instead"
            )
        if markers is None:
            raise ConfigError(
                f"{where}.marker: the target's marker environment could not be computed (its "
                "Python is too old for the packaging wheelpatch uses)"
            )
        if not parsed.evaluate(dict(markers)):
            return None
    wheels = entry.get("wheels") or []
    if not isinstance(wheels, list):
        raise ConfigError(f"{where}.wheels: must be an array of tables, not {wheels!r}")
    if wheels:
        index, wheel = _best_wheel(where, wheels, project, tags)
        return _file(lock, f"{where}.wheels[{index}]", wheel, project, locked_version)
    sdist = entry.get("sdist")
    if isinstance(sdist, dict):
        return _file(lock, f"{where}.sdist", sdist, project, locked_version)
    raise ConfigError(
        f"{where}: {name} {pinned} has neither wheels nor an sdist, so no file of the lock can "
        "be pinned for pip"
    )


def _filename(item: Mapping[str, Any]) -> str:
    name = item.get("name")
    if isinstance(name, str):
        return name
    for key in ("path", "url"):
        value = item.get(key)
        if isinstance(value, str):
            return unquote(urlparse(value).path if key == "url" else value).rsplit("/", 1)[-1]
    return ""


def _best_wheel(
    where: str, wheels: list[Any], project: NormalizedName, tags: Sequence[str] | None
) -> tuple[int, Mapping[str, Any]]:
    """The wheel pip would prefer: its best tag's rank, then the highest build tag."""
    rank = {tag: i for i, tag in enumerate(tags or ())}
    best: tuple[int, tuple[()] | tuple[int, str], int, Mapping[str, Any]] | None = None
    for index, wheel in enumerate(wheels):
        key = f"{where}.wheels[{index}]"
        if not isinstance(wheel, dict):
            raise ConfigError(f"{key}: must be a table, not {wheel!r}")
        filename = _filename(wheel)
        try:
            wheel_name, _, build, wheel_tags = parse_wheel_filename(filename)
        except InvalidWheelFilename:
            raise ConfigError(f"{key}: {filename!r} is not a wheel file name") from None
        if wheel_name != project:
            raise ConfigError(f"{key}: {filename!r} is not a wheel of {project}")
        if tags is None:
            if len(wheels) > 1:
                raise ConfigError(
                    f"{where}.wheels: the target's tags could not be computed, so none of "
                    f"{len(wheels)} wheels can be chosen"
                )
            return index, wheel
        ranks = [rank[str(t)] for t in wheel_tags if str(t) in rank]
        if not ranks:
            continue
        if best is None or min(ranks) < best[0] or (min(ranks) == best[0] and build > best[1]):
            best = (min(ranks), build, index, wheel)
    if best is None:
        raise ConfigError(
            f"{where}.wheels: none of its {len(wheels)} wheel(s) suits the target interpreter "
            f"(by their tags; the first it supports is {tags[0] if tags else 'unknown'})"
        )
    return best[2], best[3]


def _file(
    lock: Path, key: str, item: Mapping[str, Any], project: NormalizedName, version: Version
) -> LockedFile:
    local, url = item.get("path"), item.get("url")
    path = url_ = None
    if isinstance(local, str):
        path = (lock.parent / local).resolve()
        if not path.is_file():
            raise ConfigError(f"{key}.path: {local!r}: no such file (from {lock.parent})")
    elif isinstance(url, str) and url:
        url_ = url
    else:
        raise ConfigError(f"{key}: has neither a path nor a url")
    hashes = item.get("hashes")
    digest = None
    if isinstance(hashes, dict):
        digest = next(
            ((a, str(hashes[a])) for a in _HASHES if isinstance(hashes.get(a), str)), None
        )
    return LockedFile(project, version, path, url_, digest, key)
