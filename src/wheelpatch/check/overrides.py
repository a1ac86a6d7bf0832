"""The overrides that carry out a cycle check's removals: as TOML to paste, and written into a
configuration file with its comments and layout kept (tomlkit).

Each removal u -> v becomes ``remove = ["v"]`` in ``[tool.wheelpatch.overrides.u]``: a new table
pinned to the version in the resolution (``versions = "==2.0.0"``, so a later release, which may
have dropped the requirement itself, is left alone), or the existing table of u, whose ``remove``
list gains the name.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomlkit
import tomlkit.exceptions
import tomlkit.items
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from ..errors import ConfigError
from ..rules.config import Config, Override, parse_config
from .cycles import Break

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

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
    project's table exists but its ``versions`` excludes the version resolved, or it relaxes,
    replaces or adds the name to remove)."""
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
        clashes = _clashes(override, names)
        if clashes:
            problems += clashes
            continue
        edits.append(
            OverrideEdit(project, version, tuple(names), tuple(p.pattern for p in override.remove))
        )
    return edits, problems


def _clashes(override: Override, names: Sequence[NormalizedName]) -> list[str]:
    """A problem for each name the table already relaxes, replaces or adds: the configuration
    refuses a name both removed and relaxed or replaced, and one added back keeps the cycle."""
    problems = []
    for name in names:
        if any(p.matches(name) for p in override.remove):
            continue
        found = [(p.key, "relaxes") for p in override.relax if p.matches(name)]
        found += [(r.key, "replaces") for r in override.replace if r.name == name]
        found += [(a.key, "adds") for a in override.add if _added_name(a.text) == name]
        problems += [
            f"{key}: the table {what} {name}, so it cannot also remove it (which breaks the "
            f"cycle); take {name} out of {key.rsplit('.', 1)[-1].split('[')[0]} or edit the "
            "table by hand"
            for key, what in found
        ]
    return problems


def _added_name(text: str) -> NormalizedName | None:
    try:
        return canonicalize_name(Requirement(text).name)
    except InvalidRequirement:
        return None


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


def _is_dotted(container: Any, key: str) -> bool:
    """Whether ``container``'s entry ``key`` was written with a dotted key (``a.b = 1``)."""
    body = container.body if isinstance(container, tomlkit.TOMLDocument) else container.value.body
    return any(k is not None and k.key == key and k.is_dotted() for k, _ in body)


@dataclass(slots=True)
class _Place:
    """Where the overrides go: ``container`` (``None``: not there yet), and, when a level is
    written with dotted keys, the table its keys are written in and their path from there."""

    container: Any
    anchor: Any
    dotted: list[str]
    inline: bool


def _overrides(document: Any, path: str) -> _Place:
    """The ``tool.wheelpatch.overrides`` table of ``document``, made if missing, in the form
    its file already uses: a header table, dotted keys, or an inline table."""
    place = _Place(document, document, [], inline=False)
    where: list[str] = []
    for key in _ROOT.split("."):
        where.append(key)
        container = place.container
        if container is not None and key not in container and place.inline:
            container[key] = tomlkit.inline_table()
        elif container is None or (key not in container and place.dotted):
            # tomlkit writes a table added under a dotted key as a header of its own, at the
            # wrong place: the new keys are written dotted from the anchor instead.
            place.dotted.append(key)
            place.container = None
            continue
        elif key not in container:
            container[key] = tomlkit.table(is_super_table=True)
        value = container[key]
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: {'.'.join(where)}: must be a table, not {value!r}")
        if isinstance(value, tomlkit.items.InlineTable):
            place.inline = True
        elif not place.inline and _is_dotted(container, key):
            place.dotted.append(key)
        elif not place.inline:
            place.anchor, place.dotted = value, []
        place.container = value
    return place


def apply_edits(text: str, path: str, edits: Sequence[OverrideEdit]) -> str:
    """``text`` (the file ``path``) with ``edits`` written in; comments, layout and line endings
    kept. Pure.

    A name already in a ``remove`` list is not added again. The text written is parsed again
    with the configuration's own parser, and refused (:class:`ConfigError`, nothing to write)
    unless every removal is in force and nothing else changed.
    """
    try:
        document = tomlkit.parse(text)
    except tomlkit.exceptions.TOMLKitError as exc:
        raise ConfigError(f"{path}: invalid TOML ({exc})") from None
    try:
        _edit(document, path, edits)
        written = tomlkit.dumps(document)
    except ConfigError:
        raise
    except (tomlkit.exceptions.TOMLKitError, ValueError) as exc:
        reason = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise ConfigError(
            f"{path}: --apply refused, nothing written: tomlkit cannot add the tables here "
            f"({reason}); add them by hand"
        ) from None
    if written.endswith("\n\n") and not text.endswith("\n\n"):
        written = written.rstrip("\n") + "\n"  # the blank line kept after a new table
    if "\r\n" in text and text.count("\n") == text.count("\r\n"):
        written = written.replace("\r\n", "\n").replace("\n", "\r\n")
    _check_written(text, written, path, edits)
    return written


def _edit(document: Any, path: str, edits: Sequence[OverrideEdit]) -> None:
    place = _overrides(document, path)
    overrides = place.container
    for edit in edits:
        key = None
        if overrides is not None:
            key = next((k for k in overrides if canonicalize_name(k) == edit.project), None)
        if key is None:
            if place.dotted:
                prefix = [*place.dotted, edit.project]
                place.anchor.append(tomlkit.key([*prefix, "versions"]), f"=={edit.version}")
                place.anchor.append(tomlkit.key([*prefix, "remove"]), list(edit.remove))
                continue
            table: Any = tomlkit.inline_table() if place.inline else tomlkit.table()
            table["versions"] = f"=={edit.version}"
            table["remove"] = list(edit.remove)
            if not place.inline:
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


def _wheelpatch(data: dict[str, Any]) -> dict[str, Any]:
    tool = data.get("tool")
    table = tool.get("wheelpatch") if isinstance(tool, dict) else None
    return table if isinstance(table, dict) else {}


def _check_written(before: str, written: str, path: str, edits: Sequence[OverrideEdit]) -> None:
    """Refuse ``written`` unless the configuration parser accepts it, every removal of
    ``edits`` is in force there, and the rest of the file means what it meant."""
    refused = f"{path}: --apply refused, nothing written"
    try:
        old, new = tomllib.loads(before), tomllib.loads(written)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{refused}: the edited file would not parse ({exc})") from None
    try:
        config = parse_config(_wheelpatch(new), Path(path), resolve_labels=False)
    except ConfigError as exc:
        raise ConfigError(f"{refused}: the edited file would be invalid: {exc}") from None
    for edit in edits:
        override = config.override_for(edit.project)
        if override is None or not override.applies_to(edit.version):
            raise ConfigError(
                f"{refused}: the edited file would have no {edit.key} table applying to "
                f"{edit.project} {edit.version} (tomlkit put it elsewhere); add it by hand"
            )
        missing = [n for n in edit.remove if not any(p.matches(n) for p in override.remove)]
        if missing:
            raise ConfigError(
                f"{refused}: the edited file would not remove {', '.join(missing)} from "
                f"{edit.project}; edit {edit.key} by hand"
            )
    edited = {edit.project for edit in edits}
    for data in (old, new):
        overrides = _wheelpatch(data).get("overrides")
        if isinstance(overrides, dict):
            for name in [n for n in overrides if canonicalize_name(n) in edited]:
                del overrides[name]
            if not overrides:
                del _wheelpatch(data)["overrides"]
    if _prune(old) != _prune(new):
        raise ConfigError(
            f"{refused}: the edit would change more of the file than {_ROOT} (tomlkit); add "
            "the tables by hand"
        )


def _prune(value: Any) -> Any:
    """``value`` without empty tables (the levels --apply may create)."""
    if isinstance(value, dict):
        pruned = {k: _prune(v) for k, v in value.items()}
        return {k: v for k, v in pruned.items() if v != {}}
    return value
