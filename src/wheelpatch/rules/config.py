"""The ``[tool.wheelpatch]`` table: found, parsed and checked into typed, frozen values.

Every problem is collected and reported at once, each naming its full TOML key and quoting the bad
value. Labels with ``{tag}``/``{major}``/``{commits}``/``{revision}`` are filled from
``git describe`` of the repository holding the configuration file here, so everything downstream
sees final labels.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import hashlib
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import InvalidName, NormalizedName, canonicalize_name
from packaging.version import Version

from ..errors import ConfigError
from ..wheel.metadata import find_line_break
from .git import GitDescribe, GitError, describe
from .labels import LabelMode, LabelTemplate

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

__all__ = [
    "Added",
    "Config",
    "NamePattern",
    "Override",
    "Replacement",
    "find_config",
    "invalid_requirement",
    "load_config",
    "parse_config",
    "read_toml",
]

_ROOT = "tool.wheelpatch"
_TOP_KEYS = frozenset({"local-version", "local-version-mode", "output-dir", "overrides"})
_OVERRIDE_KEYS = frozenset(
    {
        "versions",
        "remove",
        "add",
        "replace",
        "relax",
        "requires-python",
        "local-version",
        "local-version-mode",
    }
)
_MODES: tuple[LabelMode, ...] = ("append", "replace")
_GLOB_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-*?[]!")


@dataclass(frozen=True, slots=True)
class NamePattern:
    """A project name or glob, normalized, matched against normalized requirement names."""

    pattern: str
    key: str

    def matches(self, name: NormalizedName) -> bool:
        return fnmatch.fnmatchcase(name, self.pattern)


@dataclass(frozen=True, slots=True)
class Replacement:
    requirement: Requirement = field(compare=False)
    text: str
    key: str

    @property
    def name(self) -> NormalizedName:
        return canonicalize_name(self.requirement.name)


@dataclass(frozen=True, slots=True)
class Added:
    text: str
    key: str


@dataclass(frozen=True, slots=True)
class Override:
    """What to change in the wheels of one project, with every value already checked."""

    project: NormalizedName
    key: str
    versions: SpecifierSet | None
    remove: tuple[NamePattern, ...]
    add: tuple[Added, ...]
    replace: tuple[Replacement, ...]
    relax: tuple[NamePattern, ...]
    requires_python: str | None
    #: The final label (the override's own, else the global one), placeholders filled.
    label: str | None
    label_key: str | None
    label_mode: LabelMode
    #: sha256 of the override's table and effective label, recorded in the provenance.
    digest: str

    def applies_to(self, version: Version) -> bool:
        return self.versions is None or self.versions.contains(version, prereleases=True)


@dataclass(frozen=True, slots=True)
class Config:
    path: Path | None
    output_dir: Path | None
    overrides: tuple[Override, ...]
    git: GitDescribe | None = None
    #: The top-level ``local-version``, placeholders filled (``None`` if unset or not resolved).
    label: str | None = None
    label_key: str | None = None
    label_mode: LabelMode = "append"

    def override_for(self, project: str) -> Override | None:
        name = canonicalize_name(project)
        return next((o for o in self.overrides if o.project == name), None)

    def label_for(self, project: str, version: Version) -> tuple[str | None, str | None, LabelMode]:
        """The label, its TOML key and mode for a build of ``project`` at ``version``.

        The project's override table decides when it applies to ``version``; otherwise the
        top-level ``local-version`` does. (``wheelpatch patch`` labels only overridden wheels.)
        """
        override = self.override_for(project)
        if override is not None and override.applies_to(version):
            return override.label, override.label_key, override.label_mode
        return self.label, self.label_key, self.label_mode

    def unmatched_overrides(self, names: Iterable[str], what: str) -> list[str]:
        """A warning for each override table whose project is none of ``names``.

        ``what`` completes the sentence (``"no wheel given"``); a close name among ``names`` is
        suggested, since a misspelt project key is otherwise silently ignored.
        """
        known = sorted({canonicalize_name(n) for n in names})
        warnings = []
        for override in self.overrides:
            if override.project in known:
                continue
            close = difflib.get_close_matches(override.project, known, n=1, cutoff=0.8)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            warnings.append(f"{override.key}: matches {what}{hint}")
        return warnings

    @property
    def display_path(self) -> str | None:
        """The configuration file relative to its repository root (or its bare name)."""
        if self.path is None:
            return None
        for parent in self.path.parents:
            if (parent / ".git").exists():
                return self.path.relative_to(parent).as_posix()
        return self.path.name


def find_config(start: Path) -> Path:
    """The nearest pyproject.toml from ``start`` upward that has a ``[tool.wheelpatch]`` table."""
    for directory in (start, *start.parents):
        candidate = directory / "pyproject.toml"
        if candidate.is_file():
            data = read_toml(candidate)
            if isinstance(data.get("tool"), dict) and "wheelpatch" in data["tool"]:
                return candidate
    raise ConfigError(
        [
            f"no pyproject.toml with a [tool.wheelpatch] table in {start} or above; "
            "pass --config PATH"
        ]
    )


def read_toml(path: Path) -> dict[str, Any]:
    """A TOML file as a dict; :class:`ConfigError` naming the file if it cannot be read."""
    try:
        with path.open("rb") as stream:
            data: dict[str, Any] = tomllib.load(stream)
            return data
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read ({exc.strerror})"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: invalid TOML ({exc})"]) from None
    except UnicodeDecodeError as exc:  # TOML is UTF-8; tomllib lets the decoding error through
        raise ConfigError(
            [f"{path}: not UTF-8, which TOML must be ({exc.reason} at byte {exc.start})"]
        ) from None


def load_config(path: Path | None = None, *, start: Path | None = None) -> Config:
    """Load ``[tool.wheelpatch]`` from ``path``, else from the nearest pyproject.toml."""
    if path is None:
        path = find_config((start or Path.cwd()).resolve())
    path = path.resolve()
    data = read_toml(path)
    tool = data.get("tool", {})
    table = tool.get("wheelpatch") if isinstance(tool, dict) else None
    if table is None:
        raise ConfigError([f"{path}: has no [tool.wheelpatch] table"])
    try:
        return parse_config(table, path)
    except ConfigError as exc:  # name the file: it may have been found by searching upward
        raise ConfigError([f"{path}: {error}" for error in exc.errors]) from None


def parse_config(
    table: Any,
    path: Path | None,
    *,
    git: GitDescribe | None = None,
    resolve_labels: bool = True,
    global_label: bool = False,
) -> Config:
    """Check a ``[tool.wheelpatch]`` table; raise :class:`ConfigError` listing every problem.

    The top-level ``local-version`` is filled when an override uses it, or when ``global_label``
    says the caller needs it (a build labels its project even without an override table). With
    ``resolve_labels=False`` labels are checked but not filled (they stay ``None``) and git is
    never asked: for callers that only need the requirement overrides.
    """
    errors: list[str] = []
    if not isinstance(table, dict):
        raise ConfigError([f"{_ROOT}: must be a table, not {table!r}"])
    _unknown(table, _TOP_KEYS, _ROOT, errors)
    _check_strings(table, _ROOT, errors)
    top_label = _label(table, _ROOT, errors)
    global_mode = _mode(table, _ROOT, errors, "append")
    output_dir: Path | None = None
    raw_out = table.get("output-dir")
    if raw_out is not None:
        if isinstance(raw_out, str) and raw_out:
            base = path.parent if path is not None else Path.cwd()
            output_dir = base / raw_out
        else:
            errors.append(f"{_ROOT}.output-dir: must be a non-empty string, not {raw_out!r}")
    raw_overrides = table.get("overrides", {})
    if not isinstance(raw_overrides, dict):
        errors.append(
            f"{_ROOT}.overrides: must be a table of project tables, not {raw_overrides!r}"
        )
        raw_overrides = {}
    drafts: list[tuple[dict[str, Any], Override, LabelTemplate | None]] = []
    projects: dict[NormalizedName, str] = {}
    for project, raw in raw_overrides.items():
        key = f"{_ROOT}.overrides.{_key_part(project)}"
        try:
            name = canonicalize_name(project, validate=True)
        except InvalidName:
            errors.append(f"{key}: {project!r} is not a valid project name")
            continue
        if name in projects:
            errors.append(f"{key}: names the same project as {projects[name]}")
            continue
        projects[name] = key
        if not isinstance(raw, dict):
            errors.append(f"{key}: must be a table, not {raw!r}")
            continue
        drafted = _override(name, key, raw, top_label, global_mode, errors)
        if drafted is not None:
            drafts.append((raw, *drafted))
    templates = [t for _, _, t in drafts if t is not None]
    if top_label is not None and global_label and top_label not in templates:
        templates.append(top_label)
    if not resolve_labels:
        templates = []
    if git is None and any(t.placeholders for t in templates) and not errors:
        if path is None:
            keys = ", ".join(sorted({t.key for t in templates if t.placeholders}))
            errors.append(f"{keys}: placeholders need a configuration file in git")
        else:
            try:
                git = describe(path.parent)
            except GitError as exc:
                keys = ", ".join(sorted({t.key for t in templates if t.placeholders}))
                errors.append(
                    f"{keys}: {{tag}}/{{major}}/{{commits}}/{{revision}} need git describe: {exc}"
                )
    overrides: list[Override] = []
    label: str | None = None
    if not errors:
        for raw, override, template in drafts:
            try:
                rendered = template.render(git) if template and resolve_labels else None
            except ValueError as exc:
                errors.append(str(exc))
                continue
            overrides.append(_finish(override, raw, rendered))
        if top_label is not None and resolve_labels and (git or not top_label.placeholders):
            try:
                label = top_label.render(git)
            except ValueError as exc:
                if str(exc) not in errors:  # an override using it reported it already
                    errors.append(str(exc))
    if errors:
        raise ConfigError(errors)
    return Config(
        path=path,
        output_dir=output_dir,
        overrides=tuple(overrides),
        git=git,
        label=label,
        label_key=top_label.key if top_label is not None else None,
        label_mode=global_mode,
    )


def _finish(override: Override, raw: Mapping[str, Any], label: str | None) -> Override:
    payload = json.dumps(
        {"project": override.project, "table": raw, "label": label, "mode": override.label_mode},
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return dataclasses.replace(
        override, label=label, digest="sha256:" + hashlib.sha256(payload.encode()).hexdigest()
    )


def _key_part(name: str) -> str:
    return name if name.replace("-", "").replace("_", "").isalnum() else json.dumps(name)


def _unknown(table: Mapping[str, Any], known: frozenset[str], key: str, errors: list[str]) -> None:
    for name in table:
        if name not in known:
            errors.append(
                f"{key}.{_key_part(name)}: unknown key (known: {', '.join(sorted(known))})"
            )


def _check_strings(value: Any, key: str, errors: list[str]) -> None:
    """Refuse line breaks and control characters anywhere: values end up in METADATA."""
    if isinstance(value, str):
        bad = find_line_break(value)
        if bad is not None:
            errors.append(
                f"{key}: {value!r} contains the line-break or control character {bad!r} "
                "(it would inject headers into METADATA)"
            )
    elif isinstance(value, dict):
        for name, item in value.items():
            _check_strings(name, f"{key} (key name)", errors)
            _check_strings(item, f"{key}.{_key_part(name)}", errors)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_strings(item, f"{key}[{index}]", errors)


def _label(table: Mapping[str, Any], key: str, errors: list[str]) -> LabelTemplate | None:
    raw = table.get("local-version")
    if raw is None:
        return None
    label_key = f"{key}.local-version"
    if not isinstance(raw, str) or not raw:
        errors.append(f"{label_key}: must be a non-empty string, not {raw!r}")
        return None
    template = LabelTemplate(raw, label_key)
    problems = template.check()
    errors.extend(problems)
    return None if problems else template


def _mode(table: Mapping[str, Any], key: str, errors: list[str], default: LabelMode) -> LabelMode:
    raw = table.get("local-version-mode", default)
    for mode in _MODES:
        if raw == mode:
            return mode
    errors.append(f"{key}.local-version-mode: must be 'append' or 'replace', not {raw!r}")
    return default


def _string_list(raw: Mapping[str, Any], name: str, key: str, errors: list[str]) -> list[str]:
    value = raw.get(name, [])
    if isinstance(value, str):
        errors.append(f"{key}.{name}: must be a list of strings, e.g. [{value!r}]")
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        errors.append(f"{key}.{name}: must be a list of strings, not {value!r}")
        return []
    return value


def _patterns(values: Sequence[str], key: str, errors: list[str]) -> tuple[NamePattern, ...]:
    patterns: list[NamePattern] = []
    for index, value in enumerate(values):
        item_key = f"{key}[{index}]"
        pattern = canonicalize_name(value.strip())
        unbalanced = "[" in pattern and "]" not in pattern
        if not pattern or not set(pattern) <= _GLOB_CHARS or unbalanced:
            errors.append(
                f"{item_key}: {value!r} is not a project name or glob (letters, digits, '-', '_', "
                "'.', and the wildcards '*', '?', '[...]')"
            )
            continue
        patterns.append(NamePattern(pattern, item_key))
    return tuple(patterns)


def _override(
    project: NormalizedName,
    key: str,
    raw: Mapping[str, Any],
    global_label: LabelTemplate | None,
    global_mode: LabelMode,
    errors: list[str],
) -> tuple[Override, LabelTemplate | None] | None:
    before = len(errors)
    _unknown(raw, _OVERRIDE_KEYS, key, errors)
    versions: SpecifierSet | None = None
    if "versions" in raw:
        versions = _specifiers(raw["versions"], f"{key}.versions", errors)
    requires_python: str | None = None
    if "requires-python" in raw:
        spec = _specifiers(raw["requires-python"], f"{key}.requires-python", errors)
        requires_python = None if spec is None else str(raw["requires-python"]).strip()
    remove = _patterns(_string_list(raw, "remove", key, errors), f"{key}.remove", errors)
    relax = _patterns(_string_list(raw, "relax", key, errors), f"{key}.relax", errors)
    add: list[Added] = []
    for index, text in enumerate(_string_list(raw, "add", key, errors)):
        if _requirement(text, f"{key}.add[{index}]", errors) is not None:
            add.append(Added(text.strip(), f"{key}.add[{index}]"))
    replace: list[Replacement] = []
    for index, text in enumerate(_string_list(raw, "replace", key, errors)):
        item_key = f"{key}.replace[{index}]"
        requirement = _requirement(text, item_key, errors)
        if requirement is not None:
            replace.append(Replacement(requirement, text.strip(), item_key))
    seen: dict[str, str] = {}
    for item_key, name in [
        *((p.key, p.pattern) for p in remove),
        *((r.key, r.name) for r in replace),
        *((p.key, p.pattern) for p in relax),
    ]:
        if name in seen:
            errors.append(f"{item_key}: {name!r} is already named by {seen[name]}")
        seen.setdefault(name, item_key)
    template = _label(raw, key, errors) or global_label
    mode = _mode(raw, key, errors, global_mode)
    if len(errors) > before:
        return None
    override = Override(
        project=project,
        key=key,
        versions=versions,
        remove=remove,
        add=tuple(add),
        replace=tuple(replace),
        relax=relax,
        requires_python=requires_python,
        label=None,
        label_key=template.key if template else None,
        label_mode=mode,
        digest="",
    )
    return override, template


def _specifiers(raw: Any, key: str, errors: list[str]) -> SpecifierSet | None:
    if not isinstance(raw, str):
        errors.append(f"{key}: must be a string of version specifiers, not {raw!r}")
        return None
    try:
        return SpecifierSet(raw)
    except InvalidSpecifier as exc:
        errors.append(f"{key}: {raw!r} is not a valid version specifier set ({exc})")
        return None


def _requirement(text: str, key: str, errors: list[str]) -> Requirement | None:
    try:
        return Requirement(text)
    except InvalidRequirement as exc:
        errors.append(invalid_requirement(key, text, exc))
        return None


def invalid_requirement(key: str, text: str, exc: InvalidRequirement) -> str:
    """The one line naming a requirement that ``key`` gives and packaging cannot parse."""
    reason = (str(exc).splitlines() or ["invalid"])[0]
    return f"{key}: {text!r} is not a valid requirement ({reason})"
