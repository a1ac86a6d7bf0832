"""Build a small torch-like wheelhouse, so this example runs anywhere in a second.

torch 2.0.1 requires triton 2.0.0 (on Linux) and nvidia-* / cuda-* packages; triton 2.0.0 requires
torch back: the cycle that Bazel's rules_python cannot resolve. filelock, typing-extensions and
sympy stand in for torch's other requirements, and small nvidia-* / cuda-* wheels for the CUDA
libraries (so the keep-cuda.toml configuration, which keeps them, installs offline too). Usage:

    python make_wheelhouse.py [DIR]      # default: ./wheelhouse

Running it again writes the same bytes over the same files, so it can be run any number of times.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from standin import build

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


def main() -> None:
    directory = Path(sys.argv[1] if len(sys.argv) > 1 else "wheelhouse")
    directory.mkdir(parents=True, exist_ok=True)
    wheels = [
        build(
            directory,
            "torch",
            "2.0.1",
            TORCH_REQUIRES,
            {"torch/__init__.py": b"__version__ = '2.0.1'\n", "torch/_C.so": bytes(4096)},
        ),
        build(directory, "triton", "2.0.0", ["torch"]),
        build(directory, "filelock", "3.13.1"),
        build(directory, "typing-extensions", "4.8.0", files={"typing_extensions.py": b""}),
        build(directory, "sympy", "1.13.3"),
        # The CUDA libraries torch's CUDA wheel requires (here a few bytes each, really ~3 GB).
        build(
            directory,
            "nvidia-cublas-cu12",
            "12.1.3.1",
            files={"nvidia/cublas/lib/libcublas.so.12": bytes(64)},
        ),
        build(
            directory,
            "nvidia-cudnn-cu12",
            "8.9.2.26",
            ["nvidia-cublas-cu12"],
            {"nvidia/cudnn/lib/libcudnn.so.8": bytes(64)},
        ),
        build(
            directory,
            "cuda-toolkit",
            "12.9.1",
            files={"cuda_toolkit/__init__.py": b""},
            extras=["cublas", "cudart"],
        ),
        build(directory, "cuda-bindings", "12.9.0", files={"cuda/bindings/__init__.py": b""}),
    ]
    for wheel in wheels:
        print(wheel)


if __name__ == "__main__":
    main()
