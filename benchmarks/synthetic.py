"""The synthetic wheel measured by ``bench_patch.py``, ``bench_install.py`` and ``bench_verify.py``.

``bigdemo-1.0-py3-none-any.whl``: >= 500 MB, > 10,000 members (deflated text-like modules,
stored and deflated random blobs), a seeded recipe built once into the cache directory. Its
requirements include ``triton``, ``nvidia-*`` and ``cuda-*`` ones, for the benchmarks to remove.
"""

from __future__ import annotations

import hashlib
import os
import random
import sys
import time
import zipfile
from base64 import urlsafe_b64encode
from collections.abc import Iterator
from pathlib import Path

# Bump when the recipe changes: the cache is keyed by it.
SYNTHETIC_KEY = "v1"
SYNTHETIC_NAME = "bigdemo"
SYNTHETIC_VERSION = "1.0"
SYNTHETIC_SEED = 20240501
SYNTHETIC_TEXT_PACKAGES = 100
SYNTHETIC_TEXT_MODULES = 100  # per package: 10,000 text members
SYNTHETIC_SMALL_BLOBS = 200  # 64 KiB random, stored
SYNTHETIC_LARGE_BLOBS = 24  # 16-32 MiB random, alternately stored and deflated (level 1)
SYNTHETIC_REQUIRES = (
    "numpy>=1.24",
    "packaging>=23",
    'typing-extensions>=4.10; python_version < "3.12"',
    'triton==3.0.0; platform_system == "Linux"',
    "nvidia-cublas==13.0",
    'nvidia-cudnn-cu13==9.24.0.43; platform_system == "Linux"',
    "cuda-bindings>=13.0.3",
    'rich>=13; extra == "cli"',
)
# The recipe's first home, kept in WHEEL so that wheels cached under SYNTHETIC_KEY stay valid.
_GENERATOR = "bench_patch.py"
_ZIP_DATE = (2024, 5, 1, 0, 0, 0)
_MIB = 1024 * 1024


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _record_hash(data: bytes) -> str:
    digest = urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest}"


def _text_corpus(rng: random.Random, size: int) -> str:
    """Python-looking text that deflates about 3-5x, like real modules."""
    words = [
        "".join(rng.choices("abcdefghijklmnopqrstuvwxyz_", k=rng.randint(3, 10)))
        for _ in range(400)
    ]
    lines: list[str] = []
    length = 0
    n = 0
    while length < size:
        a, b, c = rng.choices(words, k=3)
        line = (
            f"def {a}_{n}({b}, {c}=None):\n"
            f'    """Return {a} of {b} and {c}."""\n'
            f"    return {b} * {n % 97} + ({c} or {rng.randint(0, 9999)})  # {a} {b}\n\n"
        )
        lines.append(line)
        length += len(line)
        n += 1
    return "".join(lines)


def _synthetic_members(rng: random.Random) -> Iterator[tuple[str, bytes, int]]:
    """(archive path, content, compress type) for the package part, in archive order."""
    corpus = _text_corpus(rng, 1 << 20)
    yield f"{SYNTHETIC_NAME}/__init__.py", b'__version__ = "1.0"\n', zipfile.ZIP_DEFLATED
    for p in range(SYNTHETIC_TEXT_PACKAGES):
        for m in range(SYNTHETIC_TEXT_MODULES):
            size = rng.randint(2 << 10, 24 << 10)
            start = rng.randrange(0, len(corpus) - size)
            text = f"# {SYNTHETIC_NAME}.pkg{p:03d}.mod{m:03d}\n" + corpus[start : start + size]
            path = f"{SYNTHETIC_NAME}/pkg{p:03d}/mod{m:03d}.py"
            yield path, text.encode(), zipfile.ZIP_DEFLATED
    for i in range(SYNTHETIC_SMALL_BLOBS):
        yield f"{SYNTHETIC_NAME}/data/blob{i:03d}.bin", rng.randbytes(64 << 10), zipfile.ZIP_STORED
    for i in range(SYNTHETIC_LARGE_BLOBS):
        kind = zipfile.ZIP_STORED if i % 2 else zipfile.ZIP_DEFLATED
        data = rng.randbytes(rng.randint(16, 32) * _MIB)
        yield f"{SYNTHETIC_NAME}/lib/libblob{i:02d}.so", data, kind


def _synthetic_dist_info() -> list[tuple[str, bytes]]:
    dist_info = f"{SYNTHETIC_NAME}-{SYNTHETIC_VERSION}.dist-info"
    metadata = [
        "Metadata-Version: 2.1",
        f"Name: {SYNTHETIC_NAME}",
        f"Version: {SYNTHETIC_VERSION}",
        "Summary: Synthetic wheel for benchmarking wheelpatch",
        "Requires-Python: >=3.9",
        *(f"Requires-Dist: {r}" for r in SYNTHETIC_REQUIRES),
        "Provides-Extra: cli",
        "",
        "A synthetic wheel: large, many members, compressible and incompressible.",
        "",
    ]
    wheel = [
        "Wheel-Version: 1.0",
        f"Generator: {_GENERATOR}",
        "Root-Is-Purelib: true",
        "Tag: py3-none-any",
        "",
    ]
    return [
        (f"{dist_info}/METADATA", "\n".join(metadata).encode()),
        (f"{dist_info}/WHEEL", "\n".join(wheel).encode()),
        (f"{dist_info}/top_level.txt", f"{SYNTHETIC_NAME}\n".encode()),
    ]


def _zip_info(path: str, compress_type: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(path, date_time=_ZIP_DATE)
    info.compress_type = compress_type
    info.external_attr = 0o100644 << 16
    return info


def _write_synthetic(target: Path) -> None:
    rng = random.Random(SYNTHETIC_SEED)
    record: list[str] = []
    dist_info = f"{SYNTHETIC_NAME}-{SYNTHETIC_VERSION}.dist-info"
    with zipfile.ZipFile(target, "w") as archive:
        for path, data, kind in _synthetic_members(rng):
            archive.writestr(_zip_info(path, kind), data, compresslevel=1)
            record.append(f"{path},{_record_hash(data)},{len(data)}")
        for path, data in _synthetic_dist_info():
            archive.writestr(_zip_info(path, zipfile.ZIP_DEFLATED), data, compresslevel=1)
            record.append(f"{path},{_record_hash(data)},{len(data)}")
        record.append(f"{dist_info}/RECORD,,")
        body = ("\n".join(record) + "\n").encode()
        archive.writestr(_zip_info(f"{dist_info}/RECORD", zipfile.ZIP_DEFLATED), body)


def synthetic_wheel(cache_dir: Path) -> Path:
    """The synthetic wheel, built into ``cache_dir`` the first time (keyed by SYNTHETIC_KEY)."""
    directory = cache_dir / f"synthetic-{SYNTHETIC_KEY}"
    target = directory / f"{SYNTHETIC_NAME}-{SYNTHETIC_VERSION}-py3-none-any.whl"
    if target.is_file():
        return target
    directory.mkdir(parents=True, exist_ok=True)
    _log(f"building the synthetic wheel {target} (once) ...")
    start = time.perf_counter()
    partial = target.with_suffix(".partial")
    try:
        _write_synthetic(partial)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    _log(f"built in {time.perf_counter() - start:.1f} s")
    return target
