"""The pure planning step for a project that hatchling builds from source.

The hatch plugin hands over what the project declares (its name, its version before labelling and
its requirement fields); this says the labelled version, the edited fields and every change with
the TOML key that asked for it. The overrides are applied by :func:`~wheelpatch.rules
.edit_requirements`, the same code that patches wheels. Nothing is read or written here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from ..errors import ConfigError
from ..rules.config import Config, Override
from ..rules.labels import relabel
from ..rules.requirements import edit_requirements
from ..wheel.metadata import Change

__all__ = [
    "DEPENDENCIES",
    "OPTIONAL_DEPENDENCIES",
    "REQUIRES_PYTHON",
    "FieldsPlan",
    "ProjectFields",
    "VersionPlan",
    "plan_fields",
    "plan_version",
]

DEPENDENCIES = "dependencies"
OPTIONAL_DEPENDENCIES = "optional-dependencies"
REQUIRES_PYTHON = "requires-python"


@dataclass(frozen=True, slots=True)
class VersionPlan:
    project: NormalizedName
    base: Version
    version: Version
    #: The label applied (``None`` when there is none) and the TOML key it came from.
    label: str | None
    label_key: str | None
    change: Change | None
    warnings: tuple[str, ...] = ()


def plan_version(
    config: Config,
    project: str,
    base: Version,
    *,
    base_source: str = "regex",
    version_key: str = "tool.hatch.version",
) -> VersionPlan:
    """The version a build of ``project`` gets: ``base`` with the configured local label.

    ``base_source`` names the hatch version source ``base`` came from and ``version_key`` the
    table that configures it, for the warnings about a base version that makes a poor fork (a
    dev release, or one with a local label of its own)."""
    name = canonicalize_name(project)
    label, key, mode = config.label_for(name, base)
    version = relabel(base, label, mode)
    change = None
    warnings = list(_override_warnings(config, name, base))
    if version != base:
        change = Change("Version", "set", str(base), str(version), key)
    vcs = base_source == "vcs"
    where = f"{version_key}.base-source: {base_source!r} gives {base}"
    if base.is_devrelease:
        fix = (
            f'set version_scheme = "only-version" in {version_key}.raw-options'
            if vcs
            else "give it the version of the release the fork is based on"
        )
        warnings.append(
            f"{where}, a dev release: pip prefers upstream's releases to it and '==' or '<=' "
            f"pins of a release do not match it; {fix}"
        )
    if base.local is not None and label and mode == "append":
        if vcs:
            fix = f'set local_scheme = "no-local-version" in {version_key}.raw-options'
        else:
            table = (key or "tool.wheelpatch.local-version").rsplit(".", 1)[0]
            fix = f'set {table}.local-version-mode = "replace" to drop its label'
        warnings.append(
            f"{where}, which has a local label already, so the build is {version} and pins of "
            f"'=={base}' do not match it; {fix}"
        )
    return VersionPlan(name, base, version, label, key, change, tuple(warnings))


def _override_warnings(config: Config, project: str, version: Version) -> tuple[str, ...]:
    """What a build of ``project`` at ``version`` (before labelling) does not apply, and why:
    the override tables when none is this project's (a misspelt project key), or the project's
    own when its ``versions`` does not match."""
    name = canonicalize_name(project)
    override = config.override_for(name)
    if override is None:
        return tuple(config.unmatched_overrides([name], f"nothing in this build of {name}"))
    if override.applies_to(version):
        return ()
    return (
        f"{override.key}.versions: {str(override.versions)!r} does not match {name} {version}, "
        "so this override is not applied",
    )


@dataclass(frozen=True, slots=True)
class ProjectFields:
    """The requirement fields of a project as declared, and where each was declared.

    A field is ``None`` when the project does not declare it. ``keys`` names, per field, the TOML
    key it came from (``project.dependencies`` or the hook table's), for error messages.
    """

    dependencies: tuple[str, ...] | None
    optional_dependencies: Mapping[str, tuple[str, ...]] | None
    requires_python: str | None
    #: The fields listed in ``project.dynamic`` (so the build may set them).
    dynamic: frozenset[str]
    keys: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class FieldsPlan:
    #: The project's override when it applies to the version (``None`` when none does).
    override: Override | None
    #: ``[project]`` fields to set, with their new values (lists and tables as hatchling takes).
    updates: Mapping[str, Any]
    changes: tuple[Change, ...]
    warnings: tuple[str, ...]


def _with_extra(text: str, extra: str | None) -> str:
    """A requirement as METADATA writes it: an optional dependency carries its extra."""
    if extra is None:
        return text
    requirement = Requirement(text)
    marker = requirement.marker
    requirement.marker = None
    condition = f'extra == "{extra}"'
    if marker is None:
        return f"{requirement}; {condition}"
    return f"{requirement}; ({marker}) and {condition}"


def plan_fields(
    config: Config,
    project: str,
    version: Version,
    fields: ProjectFields,
    *,
    fixed: frozenset[str] = frozenset(),
) -> FieldsPlan:
    """Apply ``project``'s override (if it applies to ``version``, the version before labelling)
    to its requirement fields. Fields in ``fixed`` are left as they are: a build from an sdist
    takes them, already edited, from its PKG-INFO.

    Raises :class:`ConfigError` naming the TOML key when a requirement does not parse, or when the
    override would change a field that is static in ``[project]`` (a build backend must not).
    """
    name = canonicalize_name(project)
    dependencies = list(fields.dependencies or ())
    groups = {extra: list(values) for extra, values in (fields.optional_dependencies or {}).items()}
    # Dynamic fields given in the hook table are always set, changed or not.
    passed: dict[str, Any] = {}
    if fields.dependencies is not None and DEPENDENCIES in fields.dynamic:
        passed[DEPENDENCIES] = dependencies
    if fields.optional_dependencies is not None and OPTIONAL_DEPENDENCIES in fields.dynamic:
        passed[OPTIONAL_DEPENDENCIES] = groups
    override = config.override_for(name)
    if override is None or not override.applies_to(version):
        return FieldsPlan(None, passed, (), _override_warnings(config, name, version))

    changes: list[Change] = []
    rules: dict[str, list[str]] = {}
    unmatched: set[str] | None = None
    edited: dict[str | None, list[str]] = {}
    # One edit per list, so each change knows its extra; only the dependencies get the additions.
    lists: list[tuple[str | None, list[str]]] = []
    if DEPENDENCIES not in fixed:
        lists.append((None, dependencies))
    if OPTIONAL_DEPENDENCIES not in fixed:
        lists.extend(groups.items())
    for extra, texts in lists:
        rule_set = override if extra is None else dataclasses.replace(override, add=())
        try:
            edit = edit_requirements(rule_set, texts)
        except ValueError as exc:
            where = fields.keys.get(DEPENDENCIES if extra is None else OPTIONAL_DEPENDENCIES)
            raise ConfigError([f"{where or 'project'}: {exc}"]) from None
        edited[extra] = [text for text in edit.results if text is not None] + list(edit.added)
        unmatched = set(edit.unmatched) if unmatched is None else unmatched & set(edit.unmatched)
        target = DEPENDENCIES if extra is None else OPTIONAL_DEPENDENCIES
        for change in edit.changes:
            rules.setdefault(target, []).append(change.rule)
            changes.append(
                Change(
                    "Requires-Dist",
                    change.action,
                    None if change.before is None else _with_extra(change.before, extra),
                    None if change.after is None else _with_extra(change.after, extra),
                    change.rule,
                )
            )
    new_dependencies = edited.get(None, dependencies)
    new_groups = {extra: edited.get(extra, values) for extra, values in groups.items()}
    updates: dict[str, Any] = {}
    if new_dependencies != dependencies:
        updates[DEPENDENCIES] = new_dependencies
    if new_groups != groups:
        updates[OPTIONAL_DEPENDENCIES] = new_groups
    requires_python = override.requires_python
    if REQUIRES_PYTHON not in fixed and requires_python not in (None, fields.requires_python):
        updates[REQUIRES_PYTHON] = requires_python
        rule = f"{override.key}.requires-python"
        rules[REQUIRES_PYTHON] = [rule]
        changes.append(
            Change("Requires-Python", "set", fields.requires_python, requires_python, rule)
        )

    static = [name for name in updates if name not in fields.dynamic]
    if static:
        declared = {
            DEPENDENCIES: fields.dependencies is not None,
            OPTIONAL_DEPENDENCIES: fields.optional_dependencies is not None,
            REQUIRES_PYTHON: fields.requires_python is not None,
        }
        raise ConfigError(
            [
                f"{', '.join(dict.fromkeys(rules[name]))}: changes project.{name}, which is "
                + _static_fix(name, declared[name])
                for name in static
            ]
        )
    warnings = tuple(
        f"{key} matches no requirement of {name} {version}"
        for key in sorted(unmatched or (), key=_edit_keys(override).index)
    )
    return FieldsPlan(override, {**passed, **updates}, tuple(changes), warnings)


def _static_fix(name: str, declared: bool) -> str:
    """Why a field cannot be changed and how to let the hook change it."""
    hook = "[tool.hatch.metadata.hooks.wheelpatch]"
    if not declared:
        return (
            f"not set and not listed in project.dynamic; list {name!r} in project.dynamic, "
            f"with a {hook} table, for the hook to set it"
        )
    if name == REQUIRES_PYTHON:  # the hook takes no requires-python: the override gives it
        return (
            f"static; remove it from [project] and list {name!r} in project.dynamic, with a "
            f"{hook} table, for the hook to set it"
        )
    return f"static; list {name!r} in project.dynamic and move its value to {hook} {name}"


def _edit_keys(override: Override) -> list[str]:
    """The keys of an override's remove, replace and relax entries, in that order."""
    keys = [e.key for e in override.remove] + [e.key for e in override.replace]
    return keys + [e.key for e in override.relax]
