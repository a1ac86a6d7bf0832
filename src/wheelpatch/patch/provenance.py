"""``{dist-info}/wheelpatch.json``: what was changed, from what, by which configuration.

The document is deterministic: keys in a fixed order, no wall-clock time unless
``SOURCE_DATE_EPOCH`` is set (then ``created`` holds that instant).

Schema (``"schema": 1``):

- ``wheelpatch``: the version that wrote it.
- ``source``: ``filename`` and ``sha256`` (hex) of the wheel that was patched.
- ``project``; ``version``: ``before`` and ``after``; ``filename``: the patched wheel's name.
- ``changes``: one object per edit of METADATA: ``field``, ``action`` (set, remove, replace,
  relax, add), ``before``, ``after`` (null where there is none) and ``rule`` (the TOML key).
- ``diff``: the unified diff of METADATA the edits make (null for a build: there was no
  METADATA before).
- ``config``: ``path`` (relative to its repository root, else its file name), ``override`` (the
  TOML key of the table applied) and ``digest`` (sha256 of that table and the label used).
- ``dropped``: members left out (signatures, which any change invalidates).
- ``git``: ``describe``, ``commit`` and ``dirty`` when the label came from git, else null.
- ``created``: ISO 8601 UTC time from ``SOURCE_DATE_EPOCH``, or null.
- ``history``: the records of the wheel that was patched, if wheelpatch patched or built it
  before: its own document without ``history``, after the records of its history, oldest first
  (see :mod:`.history`: only the keys listed here are carried on, at most 64 entries, and
  ``{"elided": n}`` second when records were left out); ``[]`` for a wheel with no earlier
  provenance. An entry ``{"unreadable": why, "sha256": hex}`` stands for an earlier document that
  was not one of these.

``diff`` and ``history`` were added without changing ``schema``: a reader of the other keys
reads them as before.

A wheel or sdist built by hatchling with the plugin carries the same document with ``source`` and
``filename`` null (nothing was patched; hatchling names the file), ``version.before`` the version
before labelling, ``git`` whenever the project is in a git repository with a tag, and one more key:

- ``build``: ``backend`` (``"hatchling"``), ``hatchling`` (its version), ``target`` (``wheel`` or
  ``sdist``) and ``from-sdist`` (true when the wheel was built from an unpacked sdist, whose
  document this one carries on).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from .. import __version__
from .plan import PROVENANCE_NAME
from .sbom import SBOM_NAME, render_sbom

if TYPE_CHECKING:
    from packaging.version import Version

    from ..rules.config import Override
    from ..rules.git import GitDescribe
    from ..wheel.metadata import Change
    from .plan import PatchPlan

__all__ = [
    "PROVENANCE_NAME",
    "SCHEMA_VERSION",
    "build_provenance_document",
    "encode",
    "provenance_document",
    "render_generated",
    "render_provenance",
]

SCHEMA_VERSION = 1


def _created(source_date_epoch: str | None) -> str | None:
    if not source_date_epoch:
        return None
    instant = datetime.fromtimestamp(int(source_date_epoch), timezone.utc)
    return instant.strftime("%Y-%m-%dT%H:%M:%SZ")


def encode(document: Mapping[str, Any]) -> bytes:
    """The document as written to ``wheelpatch.json``: indented UTF-8 JSON, one final newline."""
    text = json.dumps(document, indent=2, ensure_ascii=False, allow_nan=False)
    return (text + "\n").encode("utf-8")


def _document(
    *,
    source: Mapping[str, str] | None,
    project: str,
    before: Version,
    after: Version,
    filename: str | None,
    changes: Sequence[Change],
    config_path: str | None,
    override: Override | None,
    dropped: Sequence[str],
    git: Mapping[str, object] | None,
    source_date_epoch: str | None,
    diff: str | None = None,
    history: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """The keys every provenance document has, in their fixed order."""
    return {
        "schema": SCHEMA_VERSION,
        "wheelpatch": __version__,
        "source": dict(source) if source is not None else None,
        "project": project,
        "version": {"before": str(before), "after": str(after)},
        "filename": filename,
        "changes": [c.as_json() for c in changes],
        "diff": diff,
        "config": {
            "path": config_path,
            "override": override.key if override is not None else None,
            "digest": override.digest if override is not None else None,
        },
        "dropped": list(dropped),
        "git": dict(git) if git is not None else None,
        "created": _created(source_date_epoch),
        "history": [dict(record) for record in history],
    }


def build_provenance_document(
    *,
    project: str,
    before: Version,
    after: Version,
    changes: Sequence[Change],
    config_path: str | None,
    override: Override | None,
    git: GitDescribe | None,
    target: str,
    hatchling: str,
    from_sdist: bool = False,
    source_date_epoch: str | None = None,
) -> dict[str, Any]:
    """The provenance of a wheel or sdist hatchling builds with the plugin."""
    document = _document(
        source=None,
        project=project,
        before=before,
        after=after,
        filename=None,
        changes=changes,
        config_path=config_path,
        override=override,
        dropped=(),
        git=git.as_json() if git is not None else None,
        source_date_epoch=source_date_epoch,
    )
    document["build"] = {
        "backend": "hatchling",
        "hatchling": hatchling,
        "target": target,
        "from-sdist": from_sdist,
    }
    return document


def provenance_document(
    plan: PatchPlan, source_sha256: str, source_date_epoch: str | None = None
) -> dict[str, Any]:
    """The provenance of a patched wheel (a file, or a wheel being installed)."""
    return _document(
        source={"filename": plan.wheel.filename, "sha256": source_sha256},
        project=plan.wheel.name,
        before=plan.old_version,
        after=plan.new_version,
        filename=plan.filename,
        changes=plan.changes,
        config_path=plan.config_path,
        override=plan.override,
        dropped=plan.dropped,
        git=plan.git,
        source_date_epoch=source_date_epoch,
        diff=plan.metadata_diff(),
        history=plan.history,
    )


def render_provenance(
    plan: PatchPlan, source_sha256: str, source_date_epoch: str | None = None
) -> bytes:
    return encode(provenance_document(plan, source_sha256, source_date_epoch))


def render_generated(
    plan: PatchPlan, source_sha256: str, source_date_epoch: str | None = None
) -> dict[str, bytes]:
    """The files a patch writes into the ``.dist-info`` beside METADATA, by their path in it,
    in the order they are written: the SBOM, then ``wheelpatch.json``."""
    document = provenance_document(plan, source_sha256, source_date_epoch)
    metadata_sha256 = hashlib.sha256(plan.metadata).hexdigest()
    sbom = render_sbom(
        document,
        name=plan.wheel.metadata.get("Name") or plan.wheel.name,
        metadata=(plan.metadata_path, metadata_sha256),
        references=plan.kept_sboms(),
    )
    return {SBOM_NAME: sbom, PROVENANCE_NAME: encode(document)}
