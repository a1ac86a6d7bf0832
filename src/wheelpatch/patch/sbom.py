"""``{dist-info}/sboms/wheelpatch.cdx.json``: the provenance as a CycloneDX 1.6 SBOM (PEP 770).

``wheelpatch.json`` is read by wheelpatch alone; scanners (syft, trivy, Dependency-Track) read
CycloneDX. The SBOM describes the patched wheel as a component whose ``pedigree`` names its
ancestor (the wheel it was patched from, by purl and sha256) and the patch applied (type
``unofficial``, the METADATA diff as its text, the TOML key of the override as the issue it
resolves). A wheel patched again has an ancestor with a pedigree of its own, back to the official
file. A build by the hatch plugin has no ancestor: its git commit is the pedigree's commit.
Only the direct ancestor is described by this run (its sha256 computed now); those before it come
from the earlier ``wheelpatch.json`` (read as :mod:`.history` says) and carry the property
``wheelpatch:claimed`` = ``true``, their patch texts cut at :data:`MAX_HISTORY_PATCH` characters.

The document is rendered from provenance documents alone (the current one and its ``history``),
by this small function rather than cyclonedx-python-lib: it is deterministic (keys in a fixed
order, a ``serialNumber`` derived from the content, ``metadata.timestamp`` only from
``SOURCE_DATE_EPOCH``), its size is known from the plan and the source's sha256 before the wheel
is built (``wheelpatch serve``), and it costs no import of a large library on every run. The
tests check it against the official 1.6 JSON schema.

The component carries no hash of the wheel file: the SBOM is inside that file, which cannot hold
its own digest (a property says so); RECORD lists the hash of every member, and the component
lists its METADATA with its sha256.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from .. import __version__

__all__ = ["SBOM_NAME", "SPEC_VERSION", "BomReference", "render_sbom", "sbom_document"]

#: The SBOM's path in a ``.dist-info`` directory (PEP 770's ``sboms`` directory).
SBOM_NAME = "sboms/wheelpatch.cdx.json"
SPEC_VERSION = "1.6"
_SCHEMA_URL = "http://cyclonedx.org/schema/bom-1.6.schema.json"
_NO_FILE_HASH = (
    "not given: this SBOM is inside the wheel it describes, which cannot contain its own "
    "sha256; see the index's hash of the file, and RECORD for every member's"
)
#: The longest patch text an SBOM takes from an earlier record (the whole one stays in
#: ``wheelpatch.json``); the patch made now is never cut.
MAX_HISTORY_PATCH = 1 << 16
_HASH_ALGORITHMS = {"sha256": "SHA-256", "sha384": "SHA-384", "sha512": "SHA-512"}


@dataclass(frozen=True, slots=True)
class BomReference:
    """Another SBOM in the same ``sboms`` directory (kept from the source wheel)."""

    #: Its path relative to the ``sboms`` directory, which is also its URL relative to ours.
    path: str
    #: ``(algorithm, hex digest)`` as RECORD gives it, if it does.
    digest: tuple[str, str] | None


def purl(project: str, version: str | None, filename: str | None = None) -> str:
    """The package URL of a PyPI distribution (purl spec, type ``pypi``): the name lowercased
    with ``_`` as ``-`` (as the spec and its reference implementation say: dots stay), the
    version and the ``file_name`` qualifier percent-encoded (``+`` is ``%2B``)."""
    text = f"pkg:pypi/{quote(project.lower().replace('_', '-'), safe='')}"
    if version:
        text += f"@{quote(version, safe='')}"
    if filename:
        text += f"?file_name={quote(filename, safe='')}"
    return text


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _versions(record: Mapping[str, Any]) -> tuple[str | None, str | None]:
    versions = _mapping(record.get("version"))
    return _text(versions.get("before")), _text(versions.get("after"))


def _change_lines(record: Mapping[str, Any]) -> str:
    """The header lines a record's changes removed and added, for a record with no diff (a
    build, whose METADATA before the override never existed as a file)."""
    lines = []
    changes = record.get("changes")
    for change in changes if isinstance(changes, list) else []:
        if not isinstance(change, Mapping):
            continue
        field = _text(change.get("field")) or "?"
        if _text(change.get("before")) is not None:
            lines.append(f"-{field}: {change['before']}\n")
        if _text(change.get("after")) is not None:
            lines.append(f"+{field}: {change['after']}\n")
    return "".join(lines)


def _cut(content: str) -> str:
    """A patch text from an earlier record cut to :data:`MAX_HISTORY_PATCH` characters, at a
    line's end, with a line saying what was left out."""
    if len(content) <= MAX_HISTORY_PATCH:
        return content
    kept = content[: content.rfind("\n", 0, MAX_HISTORY_PATCH) + 1]
    return kept + (
        f"[wheelpatch: {len(content) - len(kept)} more characters left out; the whole text is "
        "in wheelpatch.json's history]\n"
    )


def _patch(record: Mapping[str, Any], *, from_history: bool = False) -> dict[str, Any] | None:
    """The record's edit as a CycloneDX patch, ``None`` if it changed nothing."""
    diff = _text(record.get("diff"))
    if diff is not None:
        text = {"contentType": "text/x-diff", "content": diff}
    else:
        content = _change_lines(record)
        if not content:
            return None
        text = {"contentType": "text/plain", "content": content}
    if from_history:
        text["content"] = _cut(text["content"])
    config = _mapping(record.get("config"))
    keys: list[str] = []
    override = _text(config.get("override"))
    if override is not None:
        keys.append(override)
    else:
        changes = record.get("changes")
        for change in changes if isinstance(changes, list) else []:
            rule = _text(change.get("rule")) if isinstance(change, Mapping) else None
            if rule is not None and rule not in keys:
                keys.append(rule)
    resolves = []
    for key in keys:
        issue: dict[str, Any] = {"type": "enhancement", "id": key}
        digest = _text(config.get("digest"))
        issue["name"] = f"wheelpatch override {key}" + (f" ({digest})" if digest else "")
        path = _text(config.get("path"))
        if path is not None:
            issue["source"] = {"name": path}
        resolves.append(issue)
    patch: dict[str, Any] = {"type": "unofficial", "diff": {"text": text}}
    if resolves:
        patch["resolves"] = resolves
    return patch


def _git(record: Mapping[str, Any]) -> Mapping[str, Any]:
    return _mapping(record.get("git"))


def _claimed(component: dict[str, Any]) -> dict[str, Any]:
    """``component`` marked as known only from an earlier ``wheelpatch.json``: its hash was
    recorded by an earlier run, not computed by this one."""
    component["properties"] = [{"name": "wheelpatch:claimed", "value": "true"}]
    return component


def _pedigree(
    records: Sequence[Mapping[str, Any]], name: str, *, claimed: bool = False
) -> dict[str, Any] | None:
    """How the output of the last of ``records`` came about: its ancestor (the output of the
    records before it, recursively), its patch, and for a build its git commit. Only the
    direct ancestor of the wheel written now is described by this run (``claimed`` false)."""
    if not records:
        return None
    record = records[-1]
    if "unreadable" in record:
        return {"notes": f"an earlier wheelpatch.json could not be read: {record['unreadable']}"}
    if "elided" in record:
        return _elided(records, name, record["elided"])
    pedigree: dict[str, Any] = {}
    source = _mapping(record.get("source"))
    before, _ = _versions(record)
    if source:
        ancestor: dict[str, Any] = {"type": "library", "name": name}
        if before is not None:
            ancestor["version"] = before
            ancestor["purl"] = purl(name, before, _text(source.get("filename")))
        sha256 = _text(source.get("sha256"))
        if sha256 is not None:
            ancestor["hashes"] = [{"alg": "SHA-256", "content": sha256}]
        earlier = _pedigree(records[:-1], name, claimed=True)
        if earlier:
            ancestor["pedigree"] = earlier
        pedigree["ancestors"] = [_claimed(ancestor) if claimed else ancestor]
    git = _git(record)
    commit = _text(git.get("commit"))
    if commit is not None and not source:  # a build: the commit it was built from
        pedigree["commits"] = [{"uid": commit}]
    patch = _patch(record, from_history=claimed)
    if patch is not None:
        pedigree["patches"] = [patch]
    return pedigree or None


def _elided(records: Sequence[Mapping[str, Any]], name: str, count: Any) -> dict[str, Any]:
    """The pedigree of the oldest wheel a history keeps after ``{"elided": count}``: patches
    left out, from the output of the first record."""
    pedigree: dict[str, Any] = {
        "notes": f"{count} earlier patch record(s) left out: a history keeps the first record "
        "and the newest ones"
    }
    first = records[:-1]
    if not first or "unreadable" in first[-1]:
        earlier = _pedigree(first, name, claimed=True)
        if earlier and "notes" in earlier:
            pedigree["notes"] += f"; {earlier['notes']}"
        return pedigree
    _, after = _versions(first[-1])
    ancestor: dict[str, Any] = {"type": "library", "name": name}
    if after is not None:
        ancestor["version"] = after
        ancestor["purl"] = purl(name, after, _text(first[-1].get("filename")))
    earlier = _pedigree(first, name, claimed=True)
    if earlier:
        ancestor["pedigree"] = earlier
    pedigree["ancestors"] = [_claimed(ancestor)]
    return pedigree


def _properties(record: Mapping[str, Any], is_build: bool) -> list[dict[str, str]]:
    properties = [{"name": "wheelpatch:file-sha256", "value": _NO_FILE_HASH}]
    git = _git(record)
    if _text(git.get("describe")) is not None:
        # A build's git is the component's source; a patch's, the configuration's (its label).
        prefix = "wheelpatch:git" if is_build else "wheelpatch:config-git"
        properties.append({"name": f"{prefix}-describe", "value": git["describe"]})
        dirty = "true" if git.get("dirty") is True else "false"
        properties.append({"name": f"{prefix}-dirty", "value": dirty})
    properties.append({"name": "wheelpatch:provenance", "value": "wheelpatch.json"})
    return properties


def sbom_document(
    provenance: Mapping[str, Any],
    *,
    name: str,
    metadata: tuple[str, str] | None = None,
    references: Sequence[BomReference] = (),
) -> dict[str, Any]:
    """The SBOM of the wheel (or installed distribution) ``provenance`` describes.

    ``name`` is the project's name as METADATA spells it; ``metadata`` the path and hex sha256
    of its METADATA, where known; ``references`` the other SBOMs beside this one."""
    history = provenance.get("history")
    records = [r for r in history if isinstance(r, Mapping)] if isinstance(history, list) else []
    records.append(provenance)
    _, after = _versions(provenance)
    is_build = isinstance(provenance.get("build"), Mapping)
    component: dict[str, Any] = {"type": "library"}
    identity = purl(name, after, _text(provenance.get("filename")))
    component["bom-ref"] = identity
    component["name"] = name
    if after is not None:
        component["version"] = after
    component["purl"] = identity
    if metadata is not None:
        component["components"] = [
            {
                "type": "file",
                "name": metadata[0],
                "hashes": [{"alg": "SHA-256", "content": metadata[1]}],
            }
        ]
    pedigree = _pedigree(records, name)
    if pedigree:
        component["pedigree"] = pedigree
    component["properties"] = _properties(provenance, is_build)
    meta: dict[str, Any] = {}
    created = _text(provenance.get("created"))
    if created is not None:
        meta["timestamp"] = created
    meta["lifecycles"] = [{"phase": "build" if is_build else "post-build"}]
    meta["tools"] = {
        "components": [
            {
                "type": "application",
                "name": "wheelpatch",
                "version": __version__,
                "purl": purl("wheelpatch", __version__),
            }
        ]
    }
    meta["component"] = component
    refs = [_reference(reference) for reference in references]
    body: dict[str, Any] = {"version": 1, "metadata": meta}
    if refs:
        body["externalReferences"] = refs
    # A serial number from the content: the same wheel always gets the same one.
    digest = hashlib.sha256(_encode(body)).hexdigest()
    serial = uuid.uuid5(uuid.NAMESPACE_URL, f"urn:sha256:{digest}")
    return {
        "$schema": _SCHEMA_URL,
        "bomFormat": "CycloneDX",
        "specVersion": SPEC_VERSION,
        "serialNumber": f"urn:uuid:{serial}",
        **body,
    }


def _reference(reference: BomReference) -> dict[str, Any]:
    """A kept SBOM as an external reference of type ``bom``: its URL relative to this file
    (the ``sboms`` directory, whatever the ``.dist-info`` is renamed to), with its hash."""
    ref: dict[str, Any] = {
        "url": quote(reference.path),
        "comment": "an SBOM kept byte-identical from the wheel that was patched "
        f"(.dist-info/sboms/{reference.path})",
        "type": "bom",
    }
    if reference.digest is not None and reference.digest[0] in _HASH_ALGORITHMS:
        ref["hashes"] = [
            {"alg": _HASH_ALGORITHMS[reference.digest[0]], "content": reference.digest[1]}
        ]
    return ref


def _encode(document: Mapping[str, Any]) -> bytes:
    text = json.dumps(document, indent=2, ensure_ascii=False, allow_nan=False)
    return (text + "\n").encode("utf-8")


def render_sbom(
    provenance: Mapping[str, Any],
    *,
    name: str,
    metadata: tuple[str, str] | None = None,
    references: Sequence[BomReference] = (),
) -> bytes:
    """:func:`sbom_document` as written to ``sboms/wheelpatch.cdx.json``: indented UTF-8 JSON."""
    return _encode(sbom_document(provenance, name=name, metadata=metadata, references=references))
