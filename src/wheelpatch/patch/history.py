"""The earlier provenance of a wheel wheelpatch already patched (or built): its history.

Patching such a wheel again appends to its history instead of replacing it: the new
``wheelpatch.json`` lists every earlier record, oldest first, under ``history``, so the sha256 of
the official file stays reachable however many times a wheel is re-patched.

A history keeps at most :data:`MAX_RECORDS` entries (the SBOM nests one ancestor per record): past
that, the first record (the patch of the official file, whose sha256 it holds) and the newest
ones are kept, and ``{"elided": n}`` in second place says how many records were left out between
them.

The earlier ``wheelpatch.json`` comes from the wheel, which may come from anywhere (an upstream
index of ``wheelpatch serve``), so it is read as untrusted input: only the keys wheelpatch writes
are carried on (another key is dropped, whatever it holds), each must have the type wheelpatch
writes (a string or null, a boolean, an object of such keys, a list of strings or of such
objects) and every sha256 must be 64 lowercase hex digits. A document that is not such a
provenance document (not RFC 8259 JSON, ``NaN`` included; not an object; another schema; a key of
the wrong type; a history longer than wheelpatch writes) does not stop the patch: nothing in it
is trusted, so it is recorded as ``{"unreadable": why, "sha256": its hash}`` with a warning, and
what came before it is unknown. Input is never called unreadable for what wheelpatch itself
writes.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["MAX_RECORDS", "earlier_records"]

#: The most entries a history keeps: the first record, ``{"elided": n}``, then the newest.
MAX_RECORDS = 64

_SHA256 = re.compile(r"[0-9a-f]{64}")
_Check = Callable[[Any, str], Any]


class _Unreadable(Exception):
    """What makes an earlier document no provenance document wheelpatch wrote."""


def _quoted(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


def _text(value: Any, key: str) -> str | None:
    """A string or null, encodable as UTF-8 (json.loads lets lone surrogates through)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise _Unreadable(f"{key} {_quoted(value)} is not a string")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _Unreadable(f"{key} is not UTF-8 text (it has a lone surrogate)") from None
    return value


def _flag(value: Any, key: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise _Unreadable(f"{key} {_quoted(value)} is not a boolean")


def _sha256(value: Any, key: str) -> str:
    if isinstance(value, str) and _SHA256.fullmatch(value):
        return value
    raise _Unreadable(f"{key} {_quoted(value)} is not a sha256 (64 lowercase hex digits)")


def _object(fields: Mapping[str, _Check]) -> _Check:
    """An object (or null) of which only ``fields`` are kept, each checked."""

    def check(value: Any, key: str) -> dict[str, Any] | None:
        if value is None:
            return None
        if not isinstance(value, dict):
            raise _Unreadable(f"{key} is not an object")
        return {k: fields[k](v, f"{key}.{k}") for k, v in value.items() if k in fields}

    return check


def _list(item: _Check) -> _Check:
    def check(value: Any, key: str) -> list[Any] | None:
        if value is None:
            return None
        if not isinstance(value, list):
            raise _Unreadable(f"{key} is not a list")
        return [item(v, f"{key}[{i}]") for i, v in enumerate(value)]

    return check


#: The keys of a record, as ``provenance._document`` writes them (``history`` apart).
_RECORD: dict[str, _Check] = {
    "wheelpatch": _text,
    "source": _object({"filename": _text, "sha256": _sha256}),
    "project": _text,
    "version": _object({"before": _text, "after": _text}),
    "filename": _text,
    "changes": _list(
        _object({"field": _text, "action": _text, "before": _text, "after": _text, "rule": _text})
    ),
    "diff": _text,
    "config": _object({"path": _text, "override": _text, "digest": _text}),
    "dropped": _list(_text),
    "git": _object({"describe": _text, "commit": _text, "dirty": _flag}),
    "created": _text,
    "build": _object({"backend": _text, "hatchling": _text, "target": _text, "from-sdist": _flag}),
}


def _record(value: Any, key: str) -> dict[str, Any]:
    """A record of schema 1 with only the keys wheelpatch writes, each of the type it writes."""
    if not isinstance(value, dict):
        raise _Unreadable(f"{key} is not a JSON object")
    schema = value.get("schema")
    if type(schema) is not int or schema != 1:  # True is an int, and is not schema 1
        raise _Unreadable(f"{key} schema {_quoted(schema)} is not 1")
    checked = {k: _RECORD[k](v, f"{key}.{k}") for k, v in value.items() if k in _RECORD}
    return {"schema": 1, **checked}


def _entry(value: Any, index: int) -> dict[str, Any]:
    """An entry of an earlier history: a record, or what wheelpatch writes in its place (an
    unreadable document, only first; the records elided, only second)."""
    key = f"history[{index}]"
    if isinstance(value, dict) and "unreadable" in value and index == 0:
        return {
            "unreadable": _text(value["unreadable"], f"{key}.unreadable") or "",
            "sha256": _sha256(value.get("sha256"), f"{key}.sha256"),
        }
    if isinstance(value, dict) and "elided" in value and index == 1:
        count = value["elided"]
        if type(count) is not int or count < 1:
            raise _Unreadable(f"{key}.elided {_quoted(count)} is not a positive integer")
        return {"elided": count}
    return _record(value, key)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON (RFC 8259)")


def _read(data: bytes) -> list[dict[str, Any]]:
    """The entries of the document's history, then the document itself, checked."""
    try:
        document = json.loads(data, parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _Unreadable(f"not valid JSON ({exc})") from None
    except RecursionError:
        raise _Unreadable("not valid JSON (nested too deeply)") from None
    if not isinstance(document, dict):
        raise _Unreadable("not a JSON object")
    schema = document.get("schema")
    if type(schema) is not int or schema != 1:
        raise _Unreadable(f"schema {_quoted(schema)} is not 1")
    history = document.get("history", [])
    if not isinstance(history, list) or not all(isinstance(r, dict) for r in history):
        raise _Unreadable("its history is not a list of objects")
    if len(history) > MAX_RECORDS:
        raise _Unreadable(f"its history has more than {MAX_RECORDS} records")
    entries = [_entry(value, index) for index, value in enumerate(history)]
    entries.append(_record(document, "the document"))
    return entries


def _elide(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """At most :data:`MAX_RECORDS` entries: the first, how many were left out, the newest."""
    if len(entries) <= MAX_RECORDS:
        return entries
    newest = MAX_RECORDS - 2
    left_out = entries[1:-newest]
    count = sum(e.get("elided", 1) for e in left_out)
    return [entries[0], {"elided": count}, *entries[-newest:]]


def earlier_records(
    data: bytes | None, where: str
) -> tuple[tuple[Mapping[str, Any], ...], str | None]:
    """The records a new provenance document's ``history`` carries, given the bytes of the
    source's ``wheelpatch.json`` (``None``: it has none), and a warning if they are unreadable.

    Each record is an earlier document without its own ``history``, oldest first."""
    if data is None:
        return (), None
    try:
        entries = _read(data)
    except _Unreadable as exc:
        problem = str(exc)
    except RecursionError:  # not expected of the checks above; a wheel must never crash a patch
        problem = "nested too deeply"
    else:
        return tuple(_elide(entries)), None
    sha256 = hashlib.sha256(data).hexdigest()
    record = {"unreadable": problem, "sha256": sha256}
    warning = f"{where}: {problem}; recorded in the new history as unreadable (sha256 {sha256})"
    return (record,), warning
