"""Wheels of distributions installed in the test environment, for offline build environments.

``hatch build`` makes a fresh build environment and installs ``build-system.requires`` into it.
The tests give it a find-links directory of wheels rebuilt here from what this environment has
installed (pure-Python distributions: their RECORD lists every file), so no index is needed.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import zipfile
from email.parser import BytesHeaderParser
from importlib.metadata import Distribution, distribution
from pathlib import Path, PurePosixPath

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

__all__ = ["runtime_requirements", "wheel_of_installed", "wheelhouse_of_installed"]

_SKIPPED_METADATA = {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"}


def _digest(data: bytes) -> str:
    encoded = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return "sha256=" + encoded.decode("ascii")


def _dist_info(dist: Distribution) -> str:
    files = dist.files or []
    for item in files:
        top = PurePosixPath(item).parts[0]
        if top.endswith(".dist-info"):
            return top
    raise ValueError(f"{dist.metadata['Name']}: no .dist-info in its RECORD")


def wheel_of_installed(name: str, directory: Path) -> Path:
    """Rebuild the wheel of installed pure-Python distribution ``name`` into ``directory``."""
    dist = distribution(name)
    dist_info = _dist_info(dist)
    wheel_text = dist.read_text("WHEEL") or ""
    if "Root-Is-Purelib: true" not in wheel_text:
        raise ValueError(f"{name}: not a pure-Python distribution")
    tags = [
        line.split(":", 1)[1].strip() for line in wheel_text.splitlines() if line.startswith("Tag:")
    ]
    rows: list[tuple[str, str, str]] = []
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for item in sorted(dist.files or [], key=str):
            path = PurePosixPath(str(item))
            if path.parts[0] == ".." or "__pycache__" in path.parts:
                continue  # scripts (rebuilt from entry_points.txt) and bytecode
            if path.parts[0] == dist_info and path.name in _SKIPPED_METADATA:
                continue
            data = Path(str(dist.locate_file(item))).read_bytes()
            archive.writestr(str(path), data)
            rows.append((str(path), _digest(data), str(len(data))))
        rows.append((f"{dist_info}/RECORD", "", ""))
        text = io.StringIO()
        csv.writer(text, lineterminator="\n").writerows(rows)
        archive.writestr(f"{dist_info}/RECORD", text.getvalue())
    stem = dist_info.removesuffix(".dist-info")
    tag = ".".join(sorted({t.split("-")[0] for t in tags})) + "-none-any"
    target = directory / f"{stem}-{tag}.whl"
    target.write_bytes(buffer.getvalue())
    assert canonicalize_name(stem.rpartition("-")[0]) == canonicalize_name(name)
    return target


def requirements_of(name: str) -> list[str]:
    """The projects the installed ``name`` requires here (no extras), from its metadata."""
    names = []
    for text in distribution(name).requires or []:
        requirement = Requirement(text)
        if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
            names.append(requirement.name)
    return names


def wheelhouse_of_installed(names: list[str], directory: Path) -> list[Path]:
    """Wheels of ``names`` and of everything they require here, transitively."""
    seen: set[str] = set()
    pending = list(names)
    wheels: list[Path] = []
    while pending:
        name = canonicalize_name(pending.pop())
        if name in seen:
            continue
        seen.add(name)
        wheels.append(wheel_of_installed(name, directory))
        pending.extend(requirements_of(name))
    return wheels


def runtime_requirements(wheel: Path) -> list[str]:
    """Names of what ``wheel`` requires on this interpreter (no extras)."""
    with zipfile.ZipFile(wheel) as archive:
        [metadata] = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        headers = BytesHeaderParser().parsebytes(archive.read(metadata))
    names = []
    for text in headers.get_all("Requires-Dist") or []:
        requirement = Requirement(text)
        if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
            names.append(requirement.name)
    return names
