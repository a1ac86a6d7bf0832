"""Local version labels: validating a template, filling it from git, applying it to a version."""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from typing import Literal

from packaging.version import InvalidVersion, Version

from .git import GitDescribe

__all__ = ["PLACEHOLDERS", "LabelMode", "LabelTemplate", "relabel"]

LabelMode = Literal["append", "replace"]
PLACEHOLDERS = ("tag", "commits", "revision")
#: A normalized PEP 440 local label: lowercase alphanumeric segments joined by dots.
_LOCAL_LABEL = re.compile(r"[a-z0-9]+(?:\.[a-z0-9]+)*")
_TAG_SEPARATORS = re.compile(r"[-_.]+")


@dataclass(frozen=True, slots=True)
class LabelTemplate:
    """A label as configured, e.g. ``stripe.2`` or ``stripe.{commits}.{revision}``."""

    text: str
    key: str

    @property
    def placeholders(self) -> frozenset[str]:
        return frozenset(
            field for _, field, _, _ in string.Formatter().parse(self.text) if field is not None
        )

    def check(self) -> list[str]:
        """Every problem with the template itself, each naming its key."""
        try:
            parts = list(string.Formatter().parse(self.text))
        except ValueError as exc:
            return [f"{self.key}: {self.text!r} is not a valid template ({exc})"]
        for _, field, spec, conversion in parts:
            if field is None:
                continue
            if field not in PLACEHOLDERS or spec or conversion:
                allowed = ", ".join("{" + p + "}" for p in PLACEHOLDERS)
                return [
                    f"{self.key}: {self.text!r} uses the placeholder {{{field}}}; "
                    f"only {allowed} are known"
                ]
        sample = self.text.format(tag="0", commits="0", revision="0")
        if not _LOCAL_LABEL.fullmatch(sample):
            return [
                f"{self.key}: {self.text!r} is not a valid local version label{_suggest(sample)}"
            ]
        return []

    def render(self, git: GitDescribe | None) -> str:
        """Fill the placeholders; ``git`` is needed only when there are some."""
        if not self.placeholders:
            return self.text
        if git is None:
            raise ValueError(f"{self.key}: {self.text!r} needs git describe")
        label = self.text.format(
            tag=_tag_label(git.tag, self.key),
            commits=str(git.commits),
            revision=git.revision,
        )
        if not _LOCAL_LABEL.fullmatch(label):
            raise ValueError(
                f"{self.key}: {self.text!r} gives {label!r}, not a valid local version label"
            )
        return label


def _tag_label(tag: str, key: str) -> str:
    label = _TAG_SEPARATORS.sub(".", tag.lower()).strip(".")
    if not _LOCAL_LABEL.fullmatch(label):
        raise ValueError(
            f"{key}: git tag {tag!r} cannot go into a local version label "
            "(only letters, digits, '.', '-' and '_')"
        )
    return label


def _suggest(label: str) -> str:
    try:
        normalized = Version(f"0+{label}").local
    except InvalidVersion:
        return " (lowercase letters and digits in dot-separated segments, e.g. 'stripe.2')"
    return f" (write it normalized: {normalized!r})"


def relabel(version: Version, label: str | None, mode: LabelMode) -> Version:
    """Give ``version`` the local ``label``: appended to an existing label, or replacing it."""
    if not label:
        return version
    public = version.public
    if mode == "append" and version.local:
        return Version(f"{public}+{version.local}.{label}")
    return Version(f"{public}+{label}")
