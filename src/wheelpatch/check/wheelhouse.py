"""A resolution read from wheel files and wheelhouse directories, overrides applied.

Each wheel's METADATA is read with the wheel readers (nothing else of the archive is) and the
configured override is planned on it, so the requirements are those the patched wheel would
have. Wheels the target interpreter cannot use (by their tags, or their Requires-Python) are left
out; of several wheels of one project that it can use, the one with its most preferred tag, then
the highest build tag, is kept, as pip would choose.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import BuildTag, NormalizedName
from packaging.version import InvalidVersion, Version

from ..errors import ConfigError, InvalidWheel
from ..patch.plan import MetadataPlan, plan_metadata
from ..rules.config import Config
from ..wheel.metadata import MetadataDocument
from ..wheel.source_wheel import SourceWheel, read_wheel
from .graph import Package

__all__ = ["Wheelhouse", "read_wheelhouse", "wheel_files"]


@dataclass(frozen=True, slots=True)
class Wheelhouse:
    packages: tuple[Package, ...]
    #: The wheels left out, each with why.
    skipped: tuple[str, ...]


def wheel_files(paths: Sequence[Path]) -> list[Path]:
    """The wheel files given, a directory standing for the ``*.whl`` files in it."""
    files: list[Path] = []
    problems: list[str] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.glob("*.whl") if p.is_file())
            if not found:
                problems.append(f"{path}: holds no wheel (*.whl)")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            problems.append(f"{path}: no such file or directory")
    if problems:
        raise ConfigError(problems)
    return files


def _requirements(wheel: SourceWheel, document: MetadataDocument) -> tuple[Requirement, ...]:
    found = []
    for text in document.get_all("Requires-Dist"):
        try:
            found.append(Requirement(text))
        except InvalidRequirement as exc:
            reason = (str(exc).splitlines() or ["invalid"])[0]
            raise InvalidWheel(
                f"{wheel.filename}: METADATA Requires-Dist {text!r} is not a valid requirement "
                f"({reason})"
            ) from None
    return tuple(found)


def read_wheelhouse(
    paths: Sequence[Path],
    config: Config,
    *,
    tags: Sequence[str] | None,
    python_version: str | None = None,
) -> Wheelhouse:
    """The packages of the wheels ``paths`` (files or directories) with ``config``'s overrides
    applied to their METADATA, for a target interpreter supporting ``tags`` (most preferred
    first; ``None``: unknown, every wheel is used) at Python ``python_version`` (a wheel whose
    Requires-Python, as patched, excludes it is left out; ``None``: not checked)."""
    rank = {tag: i for i, tag in enumerate(tags or ())}
    chosen: dict[NormalizedName, tuple[tuple[int, BuildTag], SourceWheel, MetadataDocument]] = {}
    skipped: list[str] = []
    for path in wheel_files(paths):
        wheel = read_wheel(path)
        if tags is not None:
            best = min((rank[str(t)] for t in wheel.tags if str(t) in rank), default=None)
            if best is None:
                skipped.append(f"{wheel.filename}: none of its tags suits the target interpreter")
                continue
        else:
            best = 0
        document = _patched(wheel, config)
        excluded = _excludes(document.get("Requires-Python"), python_version)
        if excluded:
            skipped.append(f"{wheel.filename}: {excluded}")
            continue
        # pip's order: the most preferred tag, then the highest build tag.
        order = (best, wheel.build)
        other = chosen.get(wheel.name)
        if other is not None and other[1].version != wheel.version:
            raise InvalidWheel(
                f"{wheel.filename}: {wheel.name} {wheel.version}, but {other[1].filename} is "
                f"{wheel.name} {other[1].version}; give the wheels of one resolution"
            )
        if other is None or _better(order, other[0]):
            if other is not None:
                skipped.append(f"{other[1].filename}: {wheel.filename} suits the target better")
            chosen[wheel.name] = (order, wheel, document)
        else:
            skipped.append(f"{wheel.filename}: {other[1].filename} suits the target better")
    packages = []
    for name in sorted(chosen):
        _, wheel, document = chosen[name]
        packages.append(Package(wheel.name, wheel.version, _requirements(wheel, document)))
    return Wheelhouse(tuple(packages), tuple(skipped))


def _better(order: tuple[int, BuildTag], other: tuple[int, BuildTag]) -> bool:
    """A better tag rank, or the same rank and a higher build tag (no build tag is lowest)."""
    return order[0] < other[0] or (order[0] == other[0] and order[1] > other[1])


def _patched(wheel: SourceWheel, config: Config) -> MetadataDocument:
    plan = plan_metadata(wheel.name, wheel.version, wheel.filename, wheel.metadata, config)
    return (
        MetadataDocument.parse(plan.metadata) if isinstance(plan, MetadataPlan) else wheel.metadata
    )


def _excludes(requires: str | None, python_version: str | None) -> str | None:
    """Why ``Requires-Python: requires`` excludes the target, or ``None`` (an invalid one is
    not held against the wheel, as pip only warns of it)."""
    if not requires or not requires.strip() or not python_version:
        return None
    try:
        if SpecifierSet(requires).contains(Version(python_version), prereleases=True):
            return None
    except (InvalidSpecifier, InvalidVersion):
        return None
    return f"Requires-Python {requires!r} excludes Python {python_version} of the target"
