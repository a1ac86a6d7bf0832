"""Applying one project's override to its list of requirements.

The same function serves patched wheels (``Requires-Dist`` lines of METADATA), installs and the
hatch plugin (a project's ``dependencies``): it sees requirement strings, never files.
Names are compared after normalization, never by prefix, so removing ``torch`` leaves
``torchvision`` alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from .config import Override

__all__ = ["Action", "RequirementChange", "RequirementsEdit", "edit_requirements"]

Action = Literal["remove", "replace", "relax", "add"]


@dataclass(frozen=True, slots=True)
class RequirementChange:
    action: Action
    before: str | None
    after: str | None
    #: The full TOML key of the entry that caused the change.
    rule: str


@dataclass(frozen=True, slots=True)
class RequirementsEdit:
    #: Per input requirement, its new text (the input text when unchanged) or ``None`` if removed.
    results: tuple[str | None, ...]
    added: tuple[str, ...]
    changes: tuple[RequirementChange, ...]
    #: Keys of remove/replace/relax entries that matched no requirement.
    unmatched: tuple[str, ...]


def _without_marker(requirement: Requirement) -> str:
    copy = Requirement(str(requirement))
    copy.marker = None
    return str(copy)


def _replaced(original: Requirement, replacement: Requirement) -> str:
    """The replacement, keeping the original's marker (and so its extra)."""
    if original.marker is None:
        return str(replacement)
    if replacement.marker is None:
        return f"{_without_marker(replacement)}; {original.marker}"
    return f"{_without_marker(replacement)}; ({replacement.marker}) and ({original.marker})"


def _relaxed(requirement: Requirement) -> str:
    text = requirement.name
    if requirement.extras:
        text += "[" + ",".join(sorted(requirement.extras)) + "]"
    if requirement.marker is not None:
        text += f"; {requirement.marker}"
    return text


def edit_requirements(override: Override, requirements: Sequence[str]) -> RequirementsEdit:
    """Apply ``override``'s remove, replace, relax and add entries, in that order of precedence.

    Raises :class:`ValueError` naming a requirement that does not parse.
    """
    results: list[str | None] = []
    changes: list[RequirementChange] = []
    used: set[str] = set()
    for text in requirements:
        try:
            requirement = Requirement(text)
        except InvalidRequirement as exc:
            reason = (str(exc).splitlines() or ["invalid"])[0]  # packaging adds a caret diagram
            raise ValueError(f"requirement {text!r} is not valid ({reason})") from None
        name = canonicalize_name(requirement.name)
        removed = next((p for p in override.remove if p.matches(name)), None)
        if removed is not None:
            used.add(removed.key)
            results.append(None)
            changes.append(RequirementChange("remove", text, None, removed.key))
            continue
        replacement = next((r for r in override.replace if r.name == name), None)
        relaxed = next((p for p in override.relax if p.matches(name)), None)
        new_text = text
        action: Action | None = None
        rule: str | None = None
        if replacement is not None:
            used.add(replacement.key)
            new_text = _replaced(requirement, replacement.requirement)
            action, rule = "replace", replacement.key
        elif relaxed is not None:
            used.add(relaxed.key)
            new_text = _relaxed(requirement)
            action, rule = "relax", relaxed.key
        if action is not None and rule is not None and new_text != text:
            changes.append(RequirementChange(action, text, new_text, rule))
        results.append(new_text)
    for added in override.add:
        changes.append(RequirementChange("add", None, added.text, added.key))
    keys = [e.key for e in override.remove] + [e.key for e in override.replace]
    keys += [e.key for e in override.relax]
    unmatched = tuple(key for key in keys if key not in used)
    return RequirementsEdit(
        results=tuple(results),
        added=tuple(a.text for a in override.add),
        changes=tuple(changes),
        unmatched=unmatched,
    )
