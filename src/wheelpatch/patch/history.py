"""The earlier provenance of a wheel wheelpatch already patched (or built): its history.

Patching such a wheel again appends to its history instead of replacing it: the new
``wheelpatch.json`` lists every earlier record, oldest first, under ``history``, so the sha256 of
the official file stays reachable however many times a wheel is re-patched.

An earlier ``wheelpatch.json`` that is not a wheelpatch provenance document (not JSON, not an
object, another schema) does not stop the patch: the file is not trusted, so it is recorded as
``{"unreadable": why, "sha256": its hash}`` with a warning, and what came before it is unknown.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

__all__ = ["MAX_RECORDS", "earlier_records"]

#: The most records a history keeps (the SBOM nests one ancestor per record): a longer one is no
#: real wheel's, and is recorded as unreadable.
MAX_RECORDS = 64


def earlier_records(
    data: bytes | None, where: str
) -> tuple[tuple[Mapping[str, Any], ...], str | None]:
    """The records a new provenance document's ``history`` carries, given the bytes of the
    source's ``wheelpatch.json`` (``None``: it has none), and a warning if they are unreadable.

    Each record is an earlier document without its own ``history``, oldest first."""
    if data is None:
        return (), None
    problem = None
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        problem = f"not valid JSON ({exc})"
    except RecursionError:
        problem = "not valid JSON (nested too deeply)"
    else:
        if not isinstance(document, dict):
            problem = "not a JSON object"
        elif document.get("schema") != 1:
            problem = f"schema {document.get('schema')!r} is not 1"
        elif not isinstance(document.get("history", []), list) or not all(
            isinstance(r, dict) for r in document.get("history", [])
        ):
            problem = "its history is not a list of objects"
        elif len(document.get("history", [])) >= MAX_RECORDS:
            problem = f"its history has more than {MAX_RECORDS - 1} records"
    if problem is not None:
        sha256 = hashlib.sha256(data).hexdigest()
        record = {"unreadable": problem, "sha256": sha256}
        warning = f"{where}: {problem}; recorded in the new history as unreadable (sha256 {sha256})"
        return (record,), warning
    earlier = list(document.pop("history", []))
    return (*earlier, document), None
