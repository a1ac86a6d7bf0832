"""Benchmark ``wheelpatch verify`` against installer's ``validate_record(validate_contents=True)``.

Both decompress every member and check it against RECORD; wheelpatch also checks every CRC-32
and the archive structure, with members checked in parallel threads (zlib and hashlib release the
GIL) and at most one chunk per thread in memory.

Each command is a child process timed and measured (peak RSS) by ``harness.py``'s lean launcher,
as in ``bench_patch.py``; runs are interleaved round-robin after one untimed warm-up each, on the
synthetic wheel (``synthetic.py``) and on the largest torch wheel found through pip's
configuration (or ``--wheel`` / ``$WHEELPATCH_BENCH_WHEEL``).

The bound of the machine runs beside them (``bound``): every member inflated (raw zlib) with
its CRC-32 and sha256 computed, by one process per core, members shared out by compressed size
and their data offsets worked out once; no RECORD, no structural checks, nothing else.

Targets: at most 0.6x installer's time and 1.3x the bound's, peak RSS at most 100 MiB.

Run from the repository root::

    python benchmarks/bench_verify.py [--repeat N] [--wheel PATH] [--no-synthetic] [--json]
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness
from harness import Column, Target, Tool, WheelInfo

TARGET_VS_INSTALLER = 0.6
TARGET_VS_BOUND = 1.3
TARGET_RSS_MIB = 100

_INSTALLER = (
    "import sys\n"
    "from installer.sources import WheelFile\n"
    "with WheelFile.open(sys.argv[1]) as wheel:\n"
    "    wheel.validate_record(validate_contents=True)\n"
)
#: The bound of this machine: every member inflated (raw deflate, zlib), its CRC-32 and sha256
#: computed, by one process per core (no GIL shared), each given members in turn by compressed
#: size, with their data offsets worked out once from the local headers; no RECORD, no
#: structural checks, nothing else. argv: the wheel.
_BOUND = (
    "import hashlib, os, struct, sys, zipfile, zlib\n"
    "from concurrent.futures import ProcessPoolExecutor\n"
    "def run(args):\n"
    "    path, items = args\n"
    "    fd = os.open(path, os.O_RDONLY)\n"
    "    for start, size, method in items:\n"
    "        digest, crc = hashlib.sha256(), 0\n"
    "        inflate = zlib.decompressobj(-15) if method == 8 else None\n"
    "        position, end = start, start + size\n"
    "        while position < end:\n"
    "            raw = os.pread(fd, min(1 << 20, end - position), position)\n"
    "            position += len(raw)\n"
    "            data = inflate.decompress(raw) if inflate else raw\n"
    "            crc = zlib.crc32(data, crc)\n"
    "            digest.update(data)\n"
    "if __name__ == '__main__':\n"
    "    n = os.cpu_count() or 1\n"
    "    fd = os.open(sys.argv[1], os.O_RDONLY)\n"
    "    with zipfile.ZipFile(sys.argv[1]) as archive:\n"
    "        infos = sorted(archive.infolist(), key=lambda i: -i.compress_size)\n"
    "    shares, sizes = [[] for _ in range(n)], [0] * n\n"
    "    for info in infos:\n"
    "        header = os.pread(fd, 30, info.header_offset)\n"
    "        name_len, extra_len = struct.unpack('<HH', header[26:30])\n"
    "        start = info.header_offset + 30 + name_len + extra_len\n"
    "        k = sizes.index(min(sizes))\n"
    "        shares[k].append((start, info.compress_size, info.compress_type))\n"
    "        sizes[k] += info.compress_size\n"
    "    with ProcessPoolExecutor(n) as pool:\n"
    "        list(pool.map(run, [(sys.argv[1], s) for s in shares]))\n"
)
# One RSS column, the largest of the runs.
COLUMNS = (*harness.TIMES, Column("RSS MiB", 8, ".1f", "max_rss_mib"))


def _tools(wheel: Path, work: Path, repeat: int) -> list[Tool]:
    wheelpatch = harness.find_exe("wheelpatch")
    if wheelpatch is None:
        raise SystemExit("wheelpatch is not installed in this environment")
    return [
        Tool("wheelpatch", [wheelpatch, "verify", str(wheel)], work / "wp", repeat),
        Tool("installer", [sys.executable, "-c", _INSTALLER, str(wheel)], work / "inst", repeat),
        Tool("bound", [sys.executable, "-c", _BOUND, str(wheel)], work / "bound", repeat),
    ]


def targets(results: dict[str, dict[str, Any]]) -> list[Target]:
    return [
        harness.time_target(
            results, "wheelpatch", "installer", limit=TARGET_VS_INSTALLER, goal="time_vs_installer"
        ),
        harness.time_target(
            results, "wheelpatch", "bound", limit=TARGET_VS_BOUND, goal="time_vs_bound"
        ),
        harness.rss_target(
            results, "wheelpatch", "wheelpatch peak RSS", limit=TARGET_RSS_MIB, goal="peak_rss"
        ),
    ]


def bench_wheel(wheel: WheelInfo, scratch: Path, repeat: int) -> dict[str, Any]:
    work = scratch / wheel.path.stem
    work.mkdir()
    tools = _tools(wheel.path, work, repeat)
    results = harness.measure(tools, repeat, work, wheel.path.stem[:20])
    figures = targets(results)
    print(f"\n{wheel.path.name}  [{wheel.size / 1e6:.1f} MB]")
    harness.print_tools(results, COLUMNS)
    for figure in figures:
        if figure.value is not None:
            print(figure.line())
    return harness.wheel_report(wheel, results, figures)


def main(argv: Sequence[str] | None = None) -> int:
    args = harness.parse(harness.base_parser(__doc__.splitlines()[0], wheels="verify"), argv)
    bytecode = harness.bytecode_env(args.cache_dir)
    host = harness.machine(["wheelpatch", "installer"])
    command = harness.print_context(host, bytecode=bytecode)
    wheels = harness.select_wheels(args)
    with tempfile.TemporaryDirectory(prefix="bench-verify-") as scratch:
        reports = [bench_wheel(wheel, Path(scratch), args.repeat) for wheel in wheels]
    if args.json:
        print(json.dumps({"command": command, "machine": host, "wheels": reports}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
