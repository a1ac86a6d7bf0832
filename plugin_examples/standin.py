"""Build small stand-in wheels, so the examples here run anywhere, offline, in a second.

Each stand-in has the name, version and requirements of the real project and a few bytes of code;
the examples' ``make_wheelhouse.py`` scripts use it. The bytes depend only on the arguments (fixed
timestamps and permissions), and each wheel is written under a temporary name and renamed into
place, so running a script again recreates the same wheels over the old ones.
"""

from __future__ import annotations

import base64
import hashlib
import os
import zipfile
from pathlib import Path

__all__ = ["build"]


def _hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def build(
    directory: Path,
    name: str,
    version: str,
    requires: list[str] | None = None,
    files: dict[str, bytes] | None = None,
    extras: list[str] | None = None,
) -> Path:
    """Write ``{name}-{version}-py3-none-any.whl`` into ``directory`` and return its path.

    ``extras`` are declared as ``Provides-Extra`` (requirements may name them in markers)."""
    module = name.replace("-", "_")
    files = files if files is not None else {f"{module}/__init__.py": b""}
    info = f"{module}-{version}.dist-info"
    metadata = "".join(
        [
            "Metadata-Version: 2.1\n",
            f"Name: {name}\n",
            f"Version: {version}\n",
            f"Summary: A small stand-in for {name}\n",
            "Requires-Python: >=3.8.0\n",
            *(f"Provides-Extra: {e}\n" for e in extras or ()),
            *(f"Requires-Dist: {r}\n" for r in requires or ()),
            f"\nThis wheel only stands in for the real {name} in a wheelpatch example.\n",
        ]
    ).encode()
    wheel = b"Wheel-Version: 1.0\nGenerator: standin\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    members = [*files.items(), (f"{info}/METADATA", metadata), (f"{info}/WHEEL", wheel)]
    record = "".join(f"{path},{_hash(data)},{len(data)}\n" for path, data in members)
    members.append((f"{info}/RECORD", (record + f"{info}/RECORD,,\n").encode()))
    path = directory / f"{module}-{version}-py3-none-any.whl"
    partial = path.with_name(f".{path.name}.partial")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
        for member, data in members:
            entry = zipfile.ZipInfo(member, (2023, 5, 8, 0, 0, 0))
            entry.external_attr = 0o644 << 16
            entry.create_system = 3
            entry.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(entry, data)
    os.replace(partial, path)
    return path
