"""The overrides that carry out a cycle check's removals: as TOML to paste, and written into a
configuration file with its comments and layout kept (tomlkit).

Each removal u -> v becomes ``remove = ["v"]`` in ``[tool.wheelpatch.overrides.u]``: a new table
pinned to the version in the resolution (``versions = "==2.0.0"``, so a later release, which may
have dropped the requirement itself, is left alone), or the existing table of u, whose ``remove``
list gains the name.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import tomlkit
import tomlkit.exceptions
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from ..errors import ConfigError
from ..rules.config import Config
from .cycles import Break

__all__ = ["OverrideEdit", "apply_edits", "plan_edits", "render_edits"]

_ROOT = "tool.wheelpatch.overrides"


@dataclass(frozen=True, slots=True)
class OverrideEdit:
    """What one project's override table gains."""

    project: NormalizedName
    version: Version
    #: Names added to its ``remove`` list, in order.
    remove: tuple[NormalizedName, ...]
    #: The table's ``remove`` list as configured, if the table exists (``None``: a new table).
    existing: tuple[str, ...] | None

    @property
    def key(self) -> str:
        return f"{_ROOT}.{self.project}"

    def as_json(self) -> dict[str, Any]:
        return {
            "table": self.key,
            "new_table": self.existing is None,
            "versions": f"=={self.version}" if self.existing is None else None,
            "remove": list(self.remove),
        }


def plan_edits(breaks: Sequence[Break], config: Config) -> tuple[list[OverrideEdit], list[str]]:
    """The edits carrying out ``breaks`` on ``config``, and the problems that prevent one (the
    project's table exists but its ``versions`` excludes the version resolved)."""
    by_project: dict[NormalizedName, tuple[Version, list[NormalizedName]]] = {}
    for item in breaks:
        source = item.edge.source
        version, names = by_project.setdefault(source.name, (source.version, []))
        if item.edge.target.name not in names:
            names.append(item.edge.target.name)
    edits: list[OverrideEdit] = []
    problems: list[str] = []
    for project, (version, names) in sorted(by_project.items()):
        override = config.override_for(project)
        if override is None:
            edits.append(OverrideEdit(project, version, tuple(names), None))
            continue
        if not override.applies_to(version):
            problems.append(
                f"{override.key}.versions: {str(override.versions)!r} excludes {project} "
                f"{version} of the resolution, so this table cannot remove its requirement on "
                f"{', '.join(names)}; widen versions or edit the table by hand"
            )
            continue
        edits.append(
            OverrideEdit(project, version, tuple(names), tuple(p.pattern for p in override.remove))
        )
    return edits, problems


def _toml_list(values: Sequence[str]) -> str:
    return "[" + ", ".join(json.dumps(v) for v in values) + "]"


def render_edits(edits: Sequence[OverrideEdit]) -> str:
    """The edits as TOML to paste into pyproject.toml."""
    blocks = []
    for edit in edits:
        if edit.existing is None:
            blocks.append(
                f"[{edit.key}]\n"
                f"versions = {json.dumps(f'=={edit.version}')}\n"
                f"remove = {_toml_list(edit.remove)}\n"
            )
        else:
            blocks.append(
                f"# in the existing [{edit.key}]:\n"
                f"remove = {_toml_list([*edit.existing, *edit.remove])}\n"
            )
    return "\n".join(blocks)


def _table(container: Any, key: str, where: str, *, super_table: bool) -> Any:
    """``container[key]``, made a table if missing; refused if it is something else."""
    if key not in container:
        container[key] = tomlkit.table(is_super_table=super_table)
    value = container[key]
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: must be a table, not {value!r}")
    return value


def apply_edits(text: str, path: str, edits: Sequence[OverrideEdit]) -> str:
    """``text`` (the file ``path``) with ``edits`` written in; comments and layout kept. Pure.

    A name already in a ``remove`` list is not added again.
    """
    try:
        document = tomlkit.parse(text)
    except tomlkit.exceptions.TOMLKitError as exc:
        raise ConfigError(f"{path}: invalid TOML ({exc})") from None
    tool = _table(document, "tool", f"{path}: tool", super_table=True)
    wheelpatch = _table(tool, "wheelpatch", f"{path}: tool.wheelpatch", super_table=True)
    overrides = _table(wheelpatch, "overrides", f"{path}: {_ROOT}", super_table=True)
    for edit in edits:
        key = next((k for k in overrides if canonicalize_name(k) == edit.project), None)
        if key is None:
            table = tomlkit.table()
            table["versions"] = f"=={edit.version}"
            table["remove"] = list(edit.remove)
            table.add(tomlkit.nl())
            overrides[edit.project] = table
            continue
        table = overrides[key]
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: {_ROOT}.{key}: must be a table, not {table!r}")
        if "remove" not in table:
            table["remove"] = list(edit.remove)
            continue
        present = table["remove"]
        if not isinstance(present, list):
            raise ConfigError(f"{path}: {_ROOT}.{key}.remove: must be a list, not {present!r}")
        known = {canonicalize_name(str(v)) for v in present}
        for name in edit.remove:
            if name not in known:
                present.append(name)
    written = tomlkit.dumps(document)
    if written.endswith("\n\n") and not text.endswith("\n\n"):
        written = written.rstrip("\n") + "\n"  # the blank line kept after a new table
    return written
