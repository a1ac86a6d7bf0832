"""Build a small torch-like wheelhouse, so this example runs anywhere in a second.

torch 2.0.1 requires triton 2.0.0 (on Linux) and nvidia-* / cuda-* packages; triton 2.0.0 requires
torch back: the cycle that Bazel's rules_python cannot resolve. Usage:

    python make_wheelhouse.py [DIR]      # default: ./wheelhouse
"""

from __future__ import annotations

import base64
import hashlib
import sys
import zipfile
from pathlib import Path

TORCH_REQUIRES = [
    "filelock",
    "typing-extensions>=4.8.0",
    "sympy>=1.13.3",
    'triton==2.0.0; platform_system == "Linux" and platform_machine == "x86_64"',
    'nvidia-cublas-cu12==12.1.3.1; platform_system == "Linux"',
    'nvidia-cudnn-cu12==8.9.2.26; platform_system == "Linux"',
    'cuda-toolkit[cublas,cudart]==12.9.1; platform_system == "Linux"',
    'cuda-bindings>=12.9; platform_system == "Linux"',
    'opt-einsum>=3.3; extra == "opt-einsum"',
]


def _hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def build(
    directory: Path, name: str, version: str, requires: list[str], files: dict[str, bytes]
) -> Path:
    info = f"{name}-{version}.dist-info"
    metadata = "".join(
        [
            "Metadata-Version: 2.1\n",
            f"Name: {name}\n",
            f"Version: {version}\n",
            f"Summary: A small stand-in for {name}\n",
            "Requires-Python: >=3.8.0\n",
            *(f"Requires-Dist: {r}\n" for r in requires),
            f"\nThis wheel only stands in for the real {name} in the wheelpatch example.\n",
        ]
    ).encode()
    wheel = (
        b"Wheel-Version: 1.0\nGenerator: make_wheelhouse\nRoot-Is-Purelib: true\n"
        b"Tag: py3-none-any\n"
    )
    members = [*files.items(), (f"{info}/METADATA", metadata), (f"{info}/WHEEL", wheel)]
    record = "".join(f"{path},{_hash(data)},{len(data)}\n" for path, data in members)
    members.append((f"{info}/RECORD", (record + f"{info}/RECORD,,\n").encode()))
    path = directory / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for member, data in members:
            entry = zipfile.ZipInfo(member, (2023, 5, 8, 0, 0, 0))
            entry.external_attr = 0o644 << 16
            entry.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(entry, data)
    return path


def main() -> None:
    directory = Path(sys.argv[1] if len(sys.argv) > 1 else "wheelhouse")
    directory.mkdir(parents=True, exist_ok=True)
    torch = build(
        directory,
        "torch",
        "2.0.1",
        TORCH_REQUIRES,
        {"torch/__init__.py": b"__version__ = '2.0.1'\n", "torch/_C.so": bytes(4096)},
    )
    triton = build(directory, "triton", "2.0.0", ["torch"], {"triton/__init__.py": b""})
    print(torch)
    print(triton)


if __name__ == "__main__":
    main()
