"""What ``wheelpatch show`` reports: requirements and provenance of a wheel or installed dist."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import unicodedata
from pathlib import Path
from typing import Any

from ..errors import ConfigError, InvalidWheel, WheelpatchError
from ..wheel.metadata import MetadataDocument, MetadataError, describe_change
from ..wheel.source_wheel import read_wheel
from .plan import PROVENANCE_NAME

__all__ = ["describe_target", "pedigree", "pedigree_lines", "printable"]


def describe_target(target: str, python: str | None = None) -> dict[str, Any]:
    """Describe a wheel file (a path) or a distribution installed in the environment of
    ``python`` (default: the interpreter running wheelpatch), found as that interpreter's own
    ``importlib.metadata`` finds it: system and user site-packages, ``.egg-info`` included."""
    path = Path(target)
    if target.endswith(".whl") or path.is_file():
        return _describe_wheel(path)
    return _describe_installed(target, python or sys.executable)


def _summary(
    document: MetadataDocument, provenance: Any, source: str, sboms: list[str]
) -> dict[str, Any]:
    return {
        "source": source,
        "name": document.get("Name"),
        "version": document.get("Version"),
        "requires_python": document.get("Requires-Python"),
        "requires_dist": document.get_all("Requires-Dist"),
        "provenance": provenance,
        "pedigree": pedigree(provenance),
        "sboms": sboms,
    }


def pedigree(provenance: Any) -> dict[str, Any] | None:
    """Where a wheel came from, as its provenance records it: ``upstream`` (``filename`` and
    ``sha256`` of the file the first patch started from; ``None`` for a build, or when the
    first record is unreadable) and ``steps``, every record (patch or build) oldest first.
    ``None`` without a provenance document (or with one that is not a JSON object)."""
    if not isinstance(provenance, dict):
        return None
    history = provenance.get("history")
    steps = [r for r in history if isinstance(r, dict)] if isinstance(history, list) else []
    steps.append({k: v for k, v in provenance.items() if k != "history"})
    first = steps[0].get("source")
    upstream = None
    if isinstance(first, dict):
        upstream = {"filename": first.get("filename"), "sha256": first.get("sha256")}
    return {"upstream": upstream, "steps": steps}


#: How deep a provenance document ``show`` prints may nest (wheelpatch's nest 4 deep): the JSON
#: encoder recurses once per level.
_MAX_DEPTH = 64


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON (RFC 8259)")


def _depth(value: Any) -> int:
    """How deeply ``value`` nests, counted without recursion (up to ``_MAX_DEPTH + 1``)."""
    deepest, stack = 0, [(value, 1)]
    while stack and deepest <= _MAX_DEPTH:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            deepest = max(deepest, depth)
            children = node.values() if isinstance(node, dict) else node
            stack.extend((child, depth + 1) for child in children)
    return deepest


def _load_provenance(data: bytes | str, where: str) -> Any:
    try:
        document = json.loads(data, parse_constant=_no_constant)
    except ValueError as exc:
        raise InvalidWheel(f"{where}: {PROVENANCE_NAME} is not valid JSON ({exc})") from None
    except RecursionError:
        raise InvalidWheel(
            f"{where}: {PROVENANCE_NAME} is not valid JSON (nested too deeply)"
        ) from None
    if _depth(document) > _MAX_DEPTH:
        raise InvalidWheel(
            f"{where}: {PROVENANCE_NAME} is nested too deeply (more than {_MAX_DEPTH} levels)"
        )
    return document


def _describe_wheel(path: Path) -> dict[str, Any]:
    wheel = read_wheel(path)
    provenance = None
    if wheel.provenance_bytes is not None:
        provenance = _load_provenance(wheel.provenance_bytes, wheel.filename)
    prefix = f"{wheel.dist_info}/sboms/"
    sboms = sorted(
        m.name[len(wheel.dist_info) + 1 :]
        for m in wheel.archive.members
        if m.name.startswith(prefix) and not m.is_dir
    )
    return _summary(wheel.metadata, provenance, str(path), sboms)


#: Run by the target interpreter: its own importlib.metadata finds the distribution (any Python
#: 3.8 or newer; nothing of wheelpatch is imported there).
_LOOKUP = """\
import json, sys
from importlib import metadata
try:
    dist = metadata.distribution(sys.argv[1])
except metadata.PackageNotFoundError:
    print("null")
else:
    print(json.dumps({
        "path": str(getattr(dist, "_path", "")),
        "metadata": dist.read_text("METADATA") or dist.read_text("PKG-INFO"),
        "provenance": dist.read_text(sys.argv[2]),
        "sboms": sorted(
            "/".join(f.parts[1:]) for f in dist.files or ()
            if len(f.parts) == 3 and f.parts[0].endswith(".dist-info") and f.parts[1] == "sboms"
        ),
    }))
"""


def _describe_installed(name: str, python: str) -> dict[str, Any]:
    try:
        done = subprocess.run(
            [python, "-c", _LOOKUP, name, PROVENANCE_NAME],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
            env={**os.environ, "PYTHONSAFEPATH": "1"},  # not the working directory's modules
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigError(f"--python {python}: cannot run it ({exc})") from None
    try:
        found: Any = json.loads(done.stdout) if done.returncode == 0 else ...
    except ValueError:
        found = ...
    if not (found is None or isinstance(found, dict)):
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ConfigError(f"--python {python}: it is not a working Python ({last})")
    if found is None:
        raise WheelpatchError(
            f"{name}: no such wheel file, and no distribution of that name is installed in the "
            f"environment of {python}"
        )
    where = found["path"] or name
    if not found["metadata"]:
        raise WheelpatchError(f"{where}: the installed distribution has no METADATA")
    try:
        document = MetadataDocument.parse(found["metadata"].encode("utf-8"))
    except MetadataError as exc:
        raise WheelpatchError(f"{where}: installed METADATA {exc}") from None
    raw = found["provenance"]
    provenance = None if raw is None else _load_provenance(raw, where)
    return _summary(document, provenance, where, found.get("sboms") or [])


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _step_line(number: int, step: dict[str, Any]) -> str:
    if "elided" in step:
        return (
            f"{number}. {step['elided']} record(s) left out: a history keeps the first record "
            "and the newest ones"
        )
    if "unreadable" in step:
        return (
            f"{number}. an unreadable wheelpatch.json (sha256 {step.get('sha256')}): "
            f"{step['unreadable']}; what came before it is unknown"
        )
    config = _dict(step.get("config"))
    versions = _dict(step.get("version"))
    by = config.get("override") or "the label only"
    if config.get("path"):
        by += f" of {config['path']}"
    build = step.get("build")
    if isinstance(build, dict):
        line = f"{number}. built by {build.get('backend')} {build.get('hatchling')}"
        git = step.get("git")
        if isinstance(git, dict):
            line += f" from git {git.get('describe')} ({git.get('commit')})"
            line += " (dirty)" if git.get("dirty") else ""
        return line + f" as {versions.get('after')}, with {by}"
    source = _dict(step.get("source"))
    return (
        f"{number}. {source.get('filename')} (sha256 {source.get('sha256')}) patched into "
        f"{step.get('filename')} with {by}, by wheelpatch {step.get('wheelpatch')}"
    )


#: Unicode categories escaped in printed text: control, format (bidirectional overrides among
#: them) and line and paragraph separators.
_UNPRINTABLE = frozenset({"Cc", "Cf", "Zl", "Zp"})


def printable(text: str) -> str:
    """``text`` with control, format and separator characters escaped (``\\x1b``, ``\\u202e``):
    what a wheel's provenance says is printed, never obeyed by the terminal."""
    return "".join(
        (f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}")
        if unicodedata.category(c) in _UNPRINTABLE
        else c
        for c in text
    )


def pedigree_lines(found: dict[str, Any] | None) -> list[str]:
    """:func:`pedigree` as ``wheelpatch show`` prints it: the upstream file and its digest,
    then every step, oldest first, each with its changes (control characters escaped)."""
    return [printable(line) for line in _pedigree_lines(found)]


def _pedigree_lines(found: dict[str, Any] | None) -> list[str]:
    if found is None:
        return []
    upstream = found["upstream"]
    lines = ["Pedigree (oldest first):"]
    if upstream is not None:
        lines.append(f"  upstream: {upstream['filename']} (sha256 {upstream['sha256']})")
    for number, step in enumerate(found["steps"], 1):
        lines.append(f"  {_step_line(number, step)}")
        changes = step.get("changes")
        for change in changes if isinstance(changes, list) else []:
            if isinstance(change, dict):
                text = describe_change(
                    str(change.get("action")),
                    str(change.get("field")),
                    change.get("before"),
                    change.get("after"),
                )
                rule = change.get("rule")
                lines.append(f"     {text}" + (f"  ({rule})" if rule else ""))
    return lines
