"""Checking the SBOMs wheelpatch writes: against the official CycloneDX 1.6 JSON schema (the
validator of cyclonedx-python-lib), and walking their pedigree."""

from __future__ import annotations

import difflib
import json
from typing import Any

from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

__all__ = ["SBOM", "ancestors", "metadata_diff", "patch_text", "validated_sbom"]

#: The SBOM's path in a ``.dist-info`` directory.
SBOM = "sboms/wheelpatch.cdx.json"
_VALIDATOR = JsonStrictValidator(SchemaVersion.V1_6)


def validated_sbom(data: bytes | str) -> dict[str, Any]:
    """The SBOM parsed, after the schema validator found nothing wrong with it."""
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    errors = _VALIDATOR.validate_str(text)
    assert errors is None, f"not a valid CycloneDX 1.6 document: {errors}"
    document: dict[str, Any] = json.loads(text)
    assert document["specVersion"] == "1.6"
    return document


def ancestors(document: dict[str, Any]) -> list[dict[str, Any]]:
    """The described component, then its ancestor, that one's ancestor... to the first."""
    chain = [document["metadata"]["component"]]
    while True:
        found = chain[-1].get("pedigree", {}).get("ancestors", [])
        if not found:
            return chain
        assert len(found) == 1
        chain.append(found[0])


def patch_text(component: dict[str, Any]) -> str:
    [patch] = component["pedigree"]["patches"]
    assert patch["type"] == "unofficial"
    text: str = patch["diff"]["text"]["content"]
    return text


def metadata_diff(before: bytes, after: bytes, old_path: str, new_path: str) -> str:
    """The unified diff between two METADATA files, worked out here from the files themselves."""
    return "".join(
        difflib.unified_diff(
            before.decode().splitlines(keepends=True),
            after.decode().splitlines(keepends=True),
            f"a/{old_path}",
            f"b/{new_path}",
        )
    )
