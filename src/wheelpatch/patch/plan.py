"""The pure planning step: what patching one wheel would change, with nothing written.

A :class:`PatchPlan` holds the new version and file name, the renamed directories, the new METADATA
bytes, every change with its before and after text, and how RECORD is rewritten. The archive writer
and the installer carry a plan out; ``--dry-run`` just prints it.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from packaging.utils import NormalizedName
from packaging.version import Version

from ..errors import InvalidWheel
from ..rules.config import Config, Override
from ..rules.labels import relabel
from ..rules.requirements import edit_requirements
from ..wheel.metadata import Change, MetadataDocument
from ..wheel.record import Record, RecordRow, digest_bytes
from ..wheel.source_wheel import SourceWheel
from .history import earlier_records
from .sbom import SBOM_NAME, BomReference

__all__ = [
    "PROVENANCE_NAME",
    "SBOM_NAME",
    "Change",
    "MetadataPlan",
    "PatchPlan",
    "Unchanged",
    "patched_filename",
    "plan_metadata",
    "plan_patch",
]

#: The provenance document's name in a ``.dist-info`` directory (written by ``provenance``).
PROVENANCE_NAME = "wheelpatch.json"


@dataclass(frozen=True, slots=True)
class Unchanged:
    """A wheel that no override applies to: it is left as it is."""

    wheel: SourceWheel
    reason: str


@dataclass(frozen=True, slots=True)
class PatchPlan:
    wheel: SourceWheel
    override: Override
    config_path: str | None
    new_version: Version
    filename: str
    dist_info: str
    data_dir: str | None
    metadata: bytes
    changes: tuple[Change, ...]
    #: Source members left out of the output (signatures, which any change invalidates).
    dropped: tuple[str, ...]
    warnings: tuple[str, ...]
    git: Mapping[str, object] | None = field(default=None, compare=False)
    #: The source's earlier provenance records, oldest first (see :mod:`.history`).
    history: tuple[Mapping[str, Any], ...] = field(default=(), compare=False)

    @property
    def old_version(self) -> Version:
        return self.wheel.version

    @property
    def metadata_path(self) -> str:
        return f"{self.dist_info}/METADATA"

    @property
    def record_path(self) -> str:
        return f"{self.dist_info}/RECORD"

    @property
    def provenance_path(self) -> str:
        return f"{self.dist_info}/{PROVENANCE_NAME}"

    @property
    def sbom_path(self) -> str:
        return f"{self.dist_info}/{SBOM_NAME}"

    @property
    def replaced(self) -> frozenset[str]:
        """Source members not copied: written fresh, dropped, or superseded."""
        source = self.wheel
        return frozenset(
            {
                source.metadata_path,
                source.record_path,
                f"{source.dist_info}/{PROVENANCE_NAME}",
                f"{source.dist_info}/{SBOM_NAME}",
                *self.dropped,
            }
        )

    def kept_sboms(self) -> tuple[BomReference, ...]:
        """The source's other SBOMs (``.dist-info/sboms/``), copied as they are: each with its
        path in that directory and the digest RECORD gives it."""
        prefix = f"{self.wheel.dist_info}/sboms/"
        replaced = self.replaced
        rows = self.wheel.record.by_path()
        kept = []
        for member in self.wheel.archive.members:
            name = member.name
            if not name.startswith(prefix) or member.is_dir or name in replaced:
                continue
            row = rows.get(name)
            digest = (row.algorithm, row.digest.hex()) if row is not None and row.hash else None
            kept.append(BomReference(name[len(prefix) :], digest))
        return tuple(sorted(kept, key=lambda r: r.path))

    def rename(self, name: str) -> str:
        """Where source member ``name`` goes in the patched wheel."""
        top, sep, rest = name.partition("/")
        if top == self.wheel.dist_info:
            return f"{self.dist_info}{sep}{rest}"
        if top == self.wheel.data_dir and self.data_dir is not None:
            return f"{self.data_dir}{sep}{rest}"
        return name

    def record(self, generated: Mapping[str, bytes], head: bytes | None = None) -> bytes:
        """The new RECORD, given the files written into the ``.dist-info`` beside METADATA
        (the provenance and the SBOM), by their path in it; ``head`` is :meth:`record_head`,
        if the caller has it already."""
        source: Record = self.wheel.record
        rows: list[RecordRow] = []
        for name, data in generated.items():
            file_hash, file_size = digest_bytes(data)
            rows.append(source.row(f"{self.dist_info}/{name}", file_hash, file_size))
        rows.append(source.row(self.record_path, "", ""))
        return (self.record_head() if head is None else head) + Record.render(rows)

    def record_head(self) -> bytes:
        """The new RECORD's rows of the source's files (all but the generated ones and RECORD's
        own, which follow them): what can be written before the source's hash is known."""
        source: Record = self.wheel.record
        rows: list[RecordRow] = []
        meta_hash, meta_size = digest_bytes(self.metadata)
        replaced = self.replaced
        for row in source.rows:
            if row.path in replaced and row.path != self.wheel.metadata_path:
                continue
            new_path = self.rename(row.path)
            if row.path == self.wheel.metadata_path:
                rows.append(source.row(new_path, meta_hash, meta_size))
            elif new_path != row.path:
                rows.append(source.row(new_path, row.hash, row.size))
            else:
                rows.append(row)
        return Record.render(rows)

    def metadata_diff(self) -> str:
        """The unified diff of METADATA, as git writes it: lines end at ``\\n`` only (a form
        feed or U+2028 in a description is no line break), and a last line without one is
        followed by ``\\ No newline at end of file``."""
        lines = difflib.unified_diff(
            _lines(self.wheel.metadata_bytes.decode("utf-8")),
            _lines(self.metadata.decode("utf-8")),
            f"a/{self.wheel.metadata_path}",
            f"b/{self.metadata_path}",
        )
        return "".join(
            line if line.endswith("\n") else f"{line}\n\\ No newline at end of file\n"
            for line in lines
        )

    def change_lines(self) -> list[str]:
        """Every change but the version's, one line each, then the members dropped."""
        lines = [c.describe() for c in self.changes if c.field != "Version"]
        lines += [f"dropped {name} (a signature the change invalidates)" for name in self.dropped]
        return lines


def _lines(text: str) -> list[str]:
    """``text`` split after each ``\\n``, which each line keeps (the last may have none)."""
    lines = text.split("\n")
    return [f"{line}\n" for line in lines[:-1]] + ([lines[-1]] if lines[-1] else [])


def patched_filename(filename: str, version: Version) -> str:
    """The wheel file name ``filename`` takes with ``version``: only the version part changes,
    spelled as the other parts were (a proxy lists it before any wheel is read)."""
    stem = filename.removesuffix(".whl")
    name, _, rest = stem.split("-", 2)
    return f"{name}-{version}-{rest}.whl"


def _rename_dir(directory: str, version: Version, suffix: str) -> str:
    name = directory.removesuffix(suffix).rpartition("-")[0]
    return f"{name}-{version}{suffix}"


@dataclass(frozen=True, slots=True)
class MetadataPlan:
    """What an override changes in one wheel's METADATA: all a proxy needs to list the patched
    wheel from the METADATA alone (a PEP 658 sidecar), before the wheel is read."""

    override: Override
    new_version: Version
    filename: str
    metadata: bytes
    changes: tuple[Change, ...]
    warnings: tuple[str, ...]


def plan_metadata(
    name: NormalizedName,
    version: Version,
    filename: str,
    document: MetadataDocument,
    config: Config,
    *,
    strict: bool = False,
) -> MetadataPlan | str:
    """What patching the wheel ``filename`` (of ``name`` and ``version``, METADATA ``document``)
    changes in its METADATA, or why nothing changes. Pure.

    Raises :class:`InvalidWheel` for METADATA the override cannot be applied to, and, with
    ``strict``, for override entries that match nothing.
    """
    where = filename
    override = config.override_for(name)
    if override is None:
        return f"no override for {name!r}"
    if not override.applies_to(version):
        return f"version {version} is outside {override.key}.versions {override.versions}"
    replace: dict[int, str | None] = {}
    insert: dict[int, list[tuple[str, str]]] = {}
    changes: list[Change] = []

    new_version = relabel(version, override.label, override.label_mode)
    version_index = document.indices("Version")[0]
    if new_version != version:
        replace[version_index] = str(new_version)
        changes.append(
            Change(
                "Version",
                "set",
                document.headers[version_index].value,
                str(new_version),
                override.label_key,
            )
        )

    dist_indices = document.indices("Requires-Dist")
    values = [document.headers[i].value for i in dist_indices]
    try:
        edit = edit_requirements(override, values)
    except ValueError as exc:
        raise InvalidWheel(f"{where}: METADATA {exc}") from None
    for index, result in zip(dist_indices, edit.results, strict=True):
        if result != document.headers[index].value:
            replace[index] = result
    for change in edit.changes:
        changes.append(
            Change("Requires-Dist", change.action, change.before, change.after, change.rule)
        )
    if edit.added:
        anchor = dist_indices[-1] if dist_indices else len(document.headers) - 1
        insert.setdefault(anchor, []).extend(("Requires-Dist", text) for text in edit.added)

    if override.requires_python is not None:
        rp_indices = document.indices("Requires-Python")
        rule = f"{override.key}.requires-python"
        if rp_indices:
            before = document.headers[rp_indices[0]].value
            if before != override.requires_python:
                replace[rp_indices[0]] = override.requires_python
                changes.append(
                    Change("Requires-Python", "set", before, override.requires_python, rule)
                )
        else:
            insert.setdefault(version_index, []).insert(
                0, ("Requires-Python", override.requires_python)
            )
            changes.append(Change("Requires-Python", "set", None, override.requires_python, rule))

    warnings = tuple(
        f"{where}: {key} matches no Requires-Dist of {name} {version}" for key in edit.unmatched
    )
    if strict and warnings:
        raise InvalidWheel("; ".join(warnings) + " (--strict)")
    if not changes:
        return f"{override.key} changes nothing in {name} {version}"
    return MetadataPlan(
        override=override,
        new_version=new_version,
        filename=patched_filename(filename, new_version),
        metadata=document.render(replace, insert),
        changes=tuple(changes),
        warnings=warnings,
    )


def plan_patch(
    wheel: SourceWheel, config: Config, *, strict: bool = False
) -> PatchPlan | Unchanged:
    """Say what patching ``wheel`` with ``config`` changes. Pure: reads and writes nothing.

    Raises :class:`InvalidWheel` as :func:`plan_metadata` does.
    """
    edit = plan_metadata(
        wheel.name, wheel.version, wheel.filename, wheel.metadata, config, strict=strict
    )
    if isinstance(edit, str):
        return Unchanged(wheel, edit)
    history, warning = earlier_records(
        wheel.provenance_bytes, f"{wheel.filename}: {wheel.dist_info}/{PROVENANCE_NAME}"
    )
    return PatchPlan(
        wheel=wheel,
        override=edit.override,
        config_path=config.display_path,
        new_version=edit.new_version,
        filename=edit.filename,
        dist_info=_rename_dir(wheel.dist_info, edit.new_version, ".dist-info"),
        data_dir=None
        if wheel.data_dir is None
        else _rename_dir(wheel.data_dir, edit.new_version, ".data"),
        metadata=edit.metadata,
        changes=edit.changes,
        dropped=wheel.signatures,
        warnings=(*edit.warnings, warning) if warning else edit.warnings,
        git=config.git.as_json() if config.git is not None else None,
        history=history,
    )
