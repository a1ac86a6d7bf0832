"""The core metadata file (METADATA / PKG-INFO), read and edited line by line.

An email or metadata object would reorder, re-fold or re-encode the file; wheelpatch instead keeps
each header's exact text and rewrites only the headers it is asked to, so everything else (order,
folding, line endings, the long description) stays byte-identical.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "CONTROLS",
    "LINE_BREAKS",
    "Change",
    "Header",
    "MetadataDocument",
    "MetadataError",
    "describe_change",
    "find_line_break",
]

#: Characters that some parser treats as a line break (``str.splitlines`` and the email package):
#: inside a header value they inject headers (CVE-2024-6923).
LINE_BREAKS = "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"

#: Fields that core metadata allows at most once (compared case-insensitively).
SINGLE_USE = frozenset(
    {
        "metadata-version",
        "name",
        "version",
        "summary",
        "description",
        "description-content-type",
        "home-page",
        "download-url",
        "author",
        "author-email",
        "maintainer",
        "maintainer-email",
        "license",
        "license-expression",
        "requires-python",
    }
)
_REQUIRED = ("Metadata-Version", "Name", "Version")
_FIELD_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")
_LINE = re.compile(r"[^\n]*\n|[^\n]+")


class MetadataError(ValueError):
    """METADATA breaks a rule; the message says which (the caller adds the wheel's name)."""


#: Control characters and Unicode line breaks, tab aside: as a regular expression's character set,
#: for header values here and (tab added) for member names in ``source_wheel``.
CONTROLS = "\x00-\x08\x0a-\x1f\x7f\x85\u2028\u2029"
_CONTROL = re.compile(f"[{CONTROLS}]")


def find_line_break(value: str) -> str | None:
    """Return the first line-break or other control character (tab aside) in ``value``."""
    match = _CONTROL.search(value)
    return match.group() if match else None


@dataclass(frozen=True, slots=True)
class Header:
    """One header exactly as written: ``raw`` holds its lines, continuation lines included."""

    name: str
    value: str
    raw: str

    @property
    def newline(self) -> str:
        if self.raw.endswith("\r\n"):
            return "\r\n"
        return "\n" if self.raw.endswith("\n") else ""


@dataclass(frozen=True, slots=True)
class MetadataDocument:
    """Headers in file order and everything after them (blank line and body) as written."""

    headers: tuple[Header, ...]
    rest: str
    newline: str

    @classmethod
    def parse(cls, data: bytes) -> MetadataDocument:
        """Parse METADATA bytes, refusing what would make the edit or an installer ambiguous."""
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MetadataError(f"is not valid UTF-8 (byte {exc.start})") from None
        if text.startswith("\ufeff"):
            raise MetadataError("starts with a byte order mark")
        headers: list[Header] = []
        lines: list[str] = []
        name = ""
        pos = 0
        rest = ""
        for match in _LINE.finditer(text):
            line = match.group()
            content = line.rstrip("\n")
            if content.endswith("\r"):
                content = content[:-1]
            if not content:
                rest = text[match.start() :]
                break
            bad = find_line_break(content)
            if bad is not None:
                raise MetadataError(
                    f"line {content!r} contains the line-break or control character {bad!r}"
                )
            if content[0] in " \t":
                if not lines:
                    raise MetadataError(f"starts with a continuation line {content!r}")
                lines.append(line)
            else:
                if lines:
                    headers.append(_header(name, lines))
                field, sep, _ = content.partition(":")
                if not sep or not _FIELD_NAME.fullmatch(field):
                    raise MetadataError(f"line {content!r} is not a 'Name: value' header")
                name = field
                lines = [line]
            pos = match.end()
        else:
            rest = text[pos:]
        if lines:
            headers.append(_header(name, lines))
        newline = next((h.newline for h in headers if h.newline), "\n")
        document = cls(headers=tuple(headers), rest=rest, newline=newline)
        document._check()
        return document

    def _check(self) -> None:
        seen: set[str] = set()
        for header in self.headers:
            key = header.name.lower()
            if key in SINGLE_USE and key in seen:
                raise MetadataError(f"repeats the single-use field {header.name!r}")
            seen.add(key)
        for field in _REQUIRED:
            if field.lower() not in seen:
                raise MetadataError(f"has no {field!r} field")

    def get(self, name: str) -> str | None:
        values = self.get_all(name)
        return values[0] if values else None

    def get_all(self, name: str) -> list[str]:
        key = name.lower()
        return [h.value for h in self.headers if h.name.lower() == key]

    def indices(self, name: str) -> list[int]:
        key = name.lower()
        return [i for i, h in enumerate(self.headers) if h.name.lower() == key]

    def render(
        self,
        replace: Mapping[int, str | None],
        insert: Mapping[int, Sequence[tuple[str, str]]] | None = None,
    ) -> bytes:
        """Return the file with header ``i`` given a new value (or dropped, for ``None``) per
        ``replace``, and new ``(name, value)`` headers placed after header ``i`` per ``insert``
        (``-1`` places them first). Every other byte is kept."""
        insert = insert or {}
        out: list[str] = []
        for name, value in insert.get(-1, ()):
            out.append(f"{name}: {value}{self.newline}")
        for index, header in enumerate(self.headers):
            if index in replace:
                new_value = replace[index]
                if new_value is not None:
                    out.append(f"{header.name}: {new_value}{header.newline or self.newline}")
            else:
                out.append(header.raw)
            added = insert.get(index, ())
            if added and not out[-1].endswith("\n"):
                out[-1] += self.newline
            for name, value in added:
                out.append(f"{name}: {value}{self.newline}")
        if out and not out[-1].endswith("\n") and self.rest:
            out[-1] += self.newline
        return ("".join(out) + self.rest).encode("utf-8")


def _header(name: str, lines: list[str]) -> Header:
    raw = "".join(lines)
    first = lines[0].rstrip("\r\n")
    value = first.partition(":")[2].lstrip(" \t")
    if len(lines) > 1:
        value += "\n" + "\n".join(line.rstrip("\r\n") for line in lines[1:])
    return Header(name=name, value=value, raw=raw)


ChangeAction = Literal["set", "remove", "replace", "relax", "add"]


@dataclass(frozen=True, slots=True)
class Change:
    """One edit of METADATA: ``field`` is the header, ``rule`` the TOML key that asked for it."""

    field: str
    action: ChangeAction
    before: str | None
    after: str | None
    rule: str | None

    def as_json(self) -> dict[str, str | None]:
        """The change as the provenance file and ``--json`` reports write it."""
        return {
            "field": self.field,
            "action": self.action,
            "before": self.before,
            "after": self.after,
            "rule": self.rule,
        }

    def describe(self) -> str:
        return describe_change(self.action, self.field, self.before, self.after)


_VERBS = {"set": "set", "remove": "removed", "replace": "replaced", "relax": "relaxed"}


def describe_change(action: str, field: str, before: str | None, after: str | None) -> str:
    """One change as a person reads it: ``removed Requires-Dist: triton==2.0.0``.

    Requirement text contains ``;`` and ``,``, so a change is never joined to another on a line.
    """
    if action == "add":
        return f"added {field}: {after}"
    if action == "remove":
        return f"removed {field}: {before}"
    verb = _VERBS.get(action, action)
    if before is None:
        return f"{verb} {field}: {after}"
    return f"{verb} {field}: {before} -> {after}"
