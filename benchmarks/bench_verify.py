"""Benchmark ``wheelpatch verify`` against installer's ``validate_record(validate_contents=True)``.

Both decompress every member and check it against RECORD; wheelpatch also checks every CRC-32
and the archive structure, with members checked in parallel threads (zlib and hashlib release the
GIL) and at most one chunk per thread in memory.

Each command is a child process timed and measured (peak RSS) by the same lean launcher as
``bench_patch.py``; runs are interleaved round-robin after one untimed warm-up each, on the
synthetic wheel of ``bench_patch.py`` and on the torch wheel it finds through pip's configuration
(or ``--wheel`` / ``$WHEELPATCH_BENCH_WHEEL``).

Targets (from the issue): at most 0.6x installer's time, peak RSS at most 100 MiB.

Run from the repository root::

    python benchmarks/bench_verify.py [--repeat N] [--wheel PATH] [--no-synthetic]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_patch

TARGET_VS_INSTALLER = 0.6
TARGET_RSS_MIB = 100.0

_INSTALLER = (
    "import sys\n"
    "from installer.sources import WheelFile\n"
    "with WheelFile.open(sys.argv[1]) as wheel:\n"
    "    wheel.validate_record(validate_contents=True)\n"
)


def _tools(wheel: Path, work: Path, repeat: int) -> list[bench_patch.Tool]:
    wheelpatch = bench_patch._find_exe("wheelpatch")
    if wheelpatch is None:
        raise SystemExit("wheelpatch is not installed in this environment")
    return [
        bench_patch.Tool("wheelpatch", [wheelpatch, "verify", str(wheel)], work / "wp", repeat),
        bench_patch.Tool(
            "installer", [sys.executable, "-c", _INSTALLER, str(wheel)], work / "inst", repeat
        ),
    ]


def _report(wheel: Path, tools: list[bench_patch.Tool]) -> None:
    print(f"\n{wheel.name}  [{wheel.stat().st_size / 1e6:.1f} MB]")
    print(f"  {'tool':<12} {'runs':>4} {'median s':>9} {'min s':>8} {'max s':>8} {'RSS MiB':>8}")
    medians: dict[str, float] = {}
    rss: dict[str, float] = {}
    for tool in tools:
        if not tool.samples:
            print(f"  {tool.name:<12} failed: {tool.error}")
            continue
        seconds = [s.seconds for s in tool.samples]
        peak = max((s.rss_kib or 0) for s in tool.samples) / 1024
        medians[tool.name] = statistics.median(seconds)
        rss[tool.name] = peak
        print(
            f"  {tool.name:<12} {len(seconds):>4} {medians[tool.name]:>9.3f} {min(seconds):>8.3f}"
            f" {max(seconds):>8.3f} {peak:>8.1f}"
        )
    if "wheelpatch" in medians and "installer" in medians:
        ratio = medians["wheelpatch"] / medians["installer"]
        verdict = "PASS" if ratio <= TARGET_VS_INSTALLER else "MISS"
        print(
            f"  wheelpatch / installer time   {ratio:5.2f}x  target <= {TARGET_VS_INSTALLER}x"
            f"  {verdict}"
        )
    if "wheelpatch" in rss:
        verdict = "PASS" if rss["wheelpatch"] <= TARGET_RSS_MIB else "MISS"
        print(
            f"  wheelpatch peak RSS      {rss['wheelpatch']:7.1f} MiB  target <= "
            f"{TARGET_RSS_MIB:.0f} MiB  {verdict}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per tool (default 5)")
    parser.add_argument(
        "--wheel",
        type=Path,
        action="append",
        default=[],
        metavar="PATH",
        help="a real wheel to verify (repeatable)",
    )
    parser.add_argument("--no-synthetic", action="store_true", help="skip the synthetic wheel")
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=bench_patch.DEFAULT_CACHE,
        help="where bench_patch.py keeps its synthetic wheel",
    )
    args = parser.parse_args(argv)
    print(f"command: {' '.join([sys.executable, *sys.argv])}")
    largest = sorted(bench_patch.discover_wheels(), key=lambda p: p.stat().st_size)[-1:]
    wheels = bench_patch.explicit_wheels(args.wheel) or largest
    if not args.no_synthetic:
        wheels.insert(0, bench_patch.synthetic_wheel(args.cache_dir))
    with tempfile.TemporaryDirectory(prefix="bench-verify-") as scratch:
        for wheel in wheels:
            work = Path(scratch) / wheel.stem
            work.mkdir()
            tools = _tools(wheel, work, args.repeat)
            for tool in tools:  # warm-up, untimed: the page cache holds the wheel for both
                bench_patch._run_once(tool, work / f"{tool.name}.log")
                tool.samples.clear()
            bench_patch.run_rounds(tools, args.repeat, work, wheel.stem[:20])
            _report(wheel, tools)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
