"""``{dist-info}/wheelpatch.json``: what was changed, from what, by which configuration.

The document is deterministic: keys in a fixed order, no wall-clock time unless
``SOURCE_DATE_EPOCH`` is set (then ``created`` holds that instant).

Schema (``"schema": 1``):

- ``wheelpatch``: the version that wrote it.
- ``source``: ``filename`` and ``sha256`` (hex) of the wheel that was patched.
- ``project``; ``version``: ``before`` and ``after``; ``filename``: the patched wheel's name.
- ``changes``: one object per edit of METADATA: ``field``, ``action`` (set, remove, replace,
  relax, add), ``before``, ``after`` (null where there is none) and ``rule`` (the TOML key).
- ``config``: ``path`` (relative to its repository root, else its file name), ``override`` (the
  TOML key of the table applied) and ``digest`` (sha256 of that table and the label used).
- ``dropped``: members left out (signatures, which any change invalidates).
- ``git``: ``describe``, ``commit`` and ``dirty`` when the label came from git, else null.
- ``created``: ISO 8601 UTC time from ``SOURCE_DATE_EPOCH``, or null.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from . import __version__
from .plan import PatchPlan

__all__ = ["SCHEMA_VERSION", "provenance_document", "render_provenance"]

SCHEMA_VERSION = 1


def provenance_document(
    plan: PatchPlan, source_sha256: str, source_date_epoch: str | None = None
) -> dict[str, Any]:
    created = None
    if source_date_epoch:
        created = datetime.fromtimestamp(int(source_date_epoch), timezone.utc).strftime(
            "%Y-%m-%dT%H:%M:%SZ"
        )
    git: Mapping[str, object] | None = plan.git
    return {
        "schema": SCHEMA_VERSION,
        "wheelpatch": __version__,
        "source": {"filename": plan.wheel.filename, "sha256": source_sha256},
        "project": plan.wheel.name,
        "version": {"before": str(plan.old_version), "after": str(plan.new_version)},
        "filename": plan.filename,
        "changes": [c.as_json() for c in plan.changes],
        "config": {
            "path": plan.config_path,
            "override": plan.override.key,
            "digest": plan.override.digest,
        },
        "dropped": list(plan.dropped),
        "git": dict(git) if git is not None else None,
        "created": created,
    }


def render_provenance(
    plan: PatchPlan, source_sha256: str, source_date_epoch: str | None = None
) -> bytes:
    document = provenance_document(plan, source_sha256, source_date_epoch)
    return (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
