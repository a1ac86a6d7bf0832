"""What ``wheelpatch show`` reports: requirements and provenance of a wheel or installed dist."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from ..errors import ConfigError, InvalidWheel, WheelpatchError
from ..wheel.archive import read_member
from ..wheel.metadata import MetadataDocument, MetadataError
from ..wheel.source_wheel import METADATA_CAP, read_wheel
from .plan import PROVENANCE_NAME

__all__ = ["describe_target"]


def describe_target(target: str, python: str | None = None) -> dict[str, Any]:
    """Describe a wheel file (a path) or a distribution installed in the environment of
    ``python`` (default: the interpreter running wheelpatch), found as that interpreter's own
    ``importlib.metadata`` finds it: system and user site-packages, ``.egg-info`` included."""
    path = Path(target)
    if target.endswith(".whl") or path.is_file():
        return _describe_wheel(path)
    return _describe_installed(target, python or sys.executable)


def _summary(document: MetadataDocument, provenance: Any, source: str) -> dict[str, Any]:
    return {
        "source": source,
        "name": document.get("Name"),
        "version": document.get("Version"),
        "requires_python": document.get("Requires-Python"),
        "requires_dist": document.get_all("Requires-Dist"),
        "provenance": provenance,
    }


def _load_provenance(data: bytes | str, where: str) -> Any:
    try:
        return json.loads(data)
    except ValueError as exc:
        raise InvalidWheel(f"{where}: {PROVENANCE_NAME} is not valid JSON ({exc})") from None


def _describe_wheel(path: Path) -> dict[str, Any]:
    wheel = read_wheel(path)
    provenance = None
    name = f"{wheel.dist_info}/{PROVENANCE_NAME}"
    member = next((m for m in wheel.archive.members if m.name == name), None)
    if member is not None:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        try:
            provenance = _load_provenance(
                read_member(fd, member, wheel.filename, METADATA_CAP), wheel.filename
            )
        finally:
            os.close(fd)
    return _summary(wheel.metadata, provenance, str(path))


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
    return _summary(document, provenance, where)
