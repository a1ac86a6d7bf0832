"""Local version labels: validating a template, filling it from git, applying it to a version."""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from typing import Literal

from packaging.version import InvalidVersion, Version

from .git import GitDescribe

__all__ = ["PLACEHOLDERS", "LabelMode", "LabelTemplate", "relabel", "unlabel"]

LabelMode = Literal["append", "replace"]
PLACEHOLDERS = ("tag", "major", "commits", "revision")
#: A normalized PEP 440 local label: lowercase alphanumeric segments joined by dots.
_LOCAL_LABEL = re.compile(r"[a-z0-9]+(?:\.[a-z0-9]+)*")
_TAG_SEPARATORS = re.compile(r"[-_.]+")
_FIRST_NUMBER = re.compile(r"[0-9]+")


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
        """Every problem with the template itself, each naming its key.

        The literal text must already be normalized (``stripe.2``, not ``Stripe_02``), so that the
        label written in the configuration is the one the wheel carries."""
        try:
            parts = list(string.Formatter().parse(self.text))
        except ValueError as exc:
            return [f"{self.key}: {self.text!r} is not a valid template ({exc})"]
        allowed = ", ".join("{" + p + "}" for p in PLACEHOLDERS)
        for _, field, spec, conversion in parts:
            if field is None:
                continue
            if field not in PLACEHOLDERS:
                return [
                    f"{self.key}: {self.text!r} uses the unknown placeholder {{{field}}} "
                    f"(known: {allowed})"
                ]
            if spec or conversion:
                return [
                    f"{self.key}: {self.text!r} formats the placeholder {{{field}}}; "
                    f"write {allowed} bare"
                ]
        # A sentinel per placeholder: letters only, so normalization cannot change it.
        sentinels = {name: f"zzplaceholder{name}zz" for name in PLACEHOLDERS}
        sample = self.text.format(**sentinels)
        normalized = _normalized(sample)
        if normalized == sample and _LOCAL_LABEL.fullmatch(sample):
            return []
        if normalized is None:
            hint = " (lowercase letters and digits in dot-separated segments, e.g. 'stripe.2')"
        else:
            for name, sentinel in sentinels.items():
                normalized = normalized.replace(sentinel, "{" + name + "}")
            hint = f" (write it normalized: {normalized!r})"
        return [f"{self.key}: {self.text!r} is not a valid local version label{hint}"]

    def render(self, git: GitDescribe | None) -> str:
        """Fill the placeholders; ``git`` is needed only when there are some.

        Filled values are normalized as PEP 440 does (``2024.01`` -> ``2024.1``; an all-digit
        revision loses leading zeros), so the label is exactly what the version will show."""
        if not self.placeholders:
            return self.text
        if git is None:
            raise ValueError(f"{self.key}: {self.text!r} needs git describe")
        fields = self.placeholders
        label = self.text.format(
            tag=_tag_label(git.tag, self.key) if "tag" in fields else "",
            major=_tag_major(git.tag, self.key) if "major" in fields else "",
            commits=str(git.commits),
            revision=git.revision,
        )
        normalized = _normalized(label)
        if normalized is None:
            raise ValueError(
                f"{self.key}: {self.text!r} gives {label!r}, not a valid local version label"
            )
        return normalized


def _normalized(label: str) -> str | None:
    """The PEP 440 normal form of a local label, or None if it is not one."""
    try:
        local = Version(f"0+{label}").local
    except InvalidVersion:
        return None
    return local if local is not None and _LOCAL_LABEL.fullmatch(local) else None


def _tag_label(tag: str, key: str) -> str:
    label = _TAG_SEPARATORS.sub(".", tag.lower()).strip(".")
    if not _LOCAL_LABEL.fullmatch(label):
        raise ValueError(
            f"{key}: git tag {tag!r} cannot go into a local version label "
            "(only letters, digits, '.', '-' and '_')"
        )
    return label


def _tag_major(tag: str, key: str) -> str:
    """The tag's major version: its first number (``v2.0.1`` -> ``2``, ``stripe-3`` -> ``3``)."""
    match = _FIRST_NUMBER.search(tag)
    if match is None:
        raise ValueError(f"{key}: git tag {tag!r} has no number to fill {{major}}")
    return str(int(match[0]))


def relabel(version: Version, label: str | None, mode: LabelMode) -> Version:
    """Give ``version`` the local ``label``: appended to an existing label, or replacing it."""
    if not label:
        return version
    public = version.public
    if mode == "append" and version.local:
        if unlabel(version, label) != version:
            return version  # already labelled: patching again changes nothing
        return Version(f"{public}+{version.local}.{label}")
    return Version(f"{public}+{label}")


def unlabel(version: Version, label: str | None) -> Version:
    """``version`` without the trailing local ``label`` that :func:`relabel` gave it."""
    local = version.local
    if not label or local is None:
        return version
    if local == label:
        return Version(version.public)
    if local.endswith(f".{label}"):
        return Version(f"{version.public}+{local.removesuffix(f'.{label}')}")
    return version
