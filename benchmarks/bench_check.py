"""Benchmark the native-library check (``wheelpatch check libraries``, which
``wheelpatch-install`` runs) on the CUDA torch wheel: 13 ELF libraries, 1 GB uncompressed, whose
dynamic string tables patchelf moved to their ends, so nearly all of them must be inflated.

Measured, each a median of ``--repeat`` runs (at least 7) after one untimed warm-up:

- the check as a library call (read the wheel, plan the override removing nvidia-*, read the
  ELF facts of its libraries, run the loader model), with ISA-L's inflate and with zlib's;
- with ``--install-repeat N`` (default 5; 0 skips it), ``wheelpatch-install --no-deps
  --no-compile --target DIR`` of the wheel with an override that removes nothing (no check
  runs) and with one removing nvidia-* (the check runs; --allow-missing-libraries), alternated,
  each after a ``sync`` (untimed): the difference is what the check adds to an install.

Target (from the issue): the check adds under 1 s to an install.

Run from the repository root::

    python benchmarks/bench_check.py [--wheel PATH] [--repeat N] [--install-repeat N] [--json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TORCH = Path("/opt/pypi-more/files/torch-2.14.1-cp311-cp311-manylinux_2_28_x86_64.whl")
TARGET_S = 1.0
_CONFIG = '[tool.wheelpatch]\nlocal-version = "bench.1"\n[tool.wheelpatch.overrides.torch]\n'


def check_once(wheel: Path, config: Path) -> tuple[float, int]:
    """One check as ``wheelpatch-install`` runs it; returns (seconds, missing libraries)."""
    from wheelpatch.check import elf
    from wheelpatch.check.native import (
        check_files,
        member_paths,
        planned_exists,
        removed_requirements,
        system_search,
        wheel_objects,
    )
    from wheelpatch.patch.plan import PatchPlan, plan_patch
    from wheelpatch.rules.config import load_config
    from wheelpatch.wheel.source_wheel import read_wheel

    start = time.perf_counter()
    source = read_wheel(wheel)
    plan = plan_patch(source, load_config(config))
    assert isinstance(plan, PatchPlan)
    target = elf.machine_of(Path(sys.executable).resolve())
    assert target is not None
    site = "/bench/site-packages"
    scheme = {"purelib": site, "platlib": site, "scripts": "/bench/bin", "data": "/bench",
              "headers": "/bench/include"}  # fmt: skip
    paths = member_paths(source, scheme)
    files = dataclasses.replace(
        wheel_objects(source, paths, target), removed=removed_requirements(plan.changes)
    )
    report = check_files(
        [files],
        planned_exists(paths.values(), [site]),
        system_search(target, None, Path(sys.executable)),  # its RPATH searched, as installs do
        [site],
    )
    return time.perf_counter() - start, len(report.missing)


def install_once(wheel: Path, config: Path, target: Path) -> float:
    shutil.rmtree(target, ignore_errors=True)
    script = Path(sys.executable).parent / "wheelpatch-install"
    command = [str(script), "--config", str(config), "--target", str(target), "--no-deps",
               "--no-compile", "--allow-missing-libraries", str(wheel)]  # fmt: skip
    # Untimed: the previous run's files written back and their blocks freed, so that no run
    # pays for another's (installing this wheel writes 1 GB; removing it frees as much).
    os.sync()
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    elapsed = time.perf_counter() - start
    shutil.rmtree(target, ignore_errors=True)
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wheel", type=Path, default=Path(os.environ.get(
        "WHEELPATCH_BENCH_WHEEL", TORCH)))  # fmt: skip
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--install-repeat", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.repeat < 7:
        parser.error("--repeat must be at least 7")
    if not args.wheel.is_file():
        parser.error(f"{args.wheel}: no such wheel")
    from wheelpatch.check import elf

    results: dict[str, Any] = {
        "wheel": str(args.wheel),
        "machine": {
            "nproc": os.cpu_count(),
            "python": platform.python_version(),
            "load_average": os.getloadavg(),
        },
    }
    with tempfile.TemporaryDirectory(prefix="bench-check-") as work:
        strip = Path(work, "strip.toml")
        strip.write_text(_CONFIG + 'remove = ["nvidia-*"]\n', encoding="utf-8")
        keep = Path(work, "keep.toml")
        keep.write_text(_CONFIG + "relax = []\n", encoding="utf-8")
        default = elf.inflater_name
        for name in sorted(elf.INFLATE_MODULES, key=lambda n: n != default):
            elf.inflater_name = name
            check_once(args.wheel, strip)  # warm-up: the page cache, imports
            runs = [check_once(args.wheel, strip) for _ in range(args.repeat)]
            times = [t for t, _ in runs]
            results[f"check_{name}"] = {"median_s": statistics.median(times), "runs_s": times,
                                        "missing": runs[0][1]}  # fmt: skip
            print(f"check ({name} inflate): median {statistics.median(times):.3f} s of "
                  f"{len(times)} runs, min {min(times):.3f} s, max {max(times):.3f} s; "
                  f"{runs[0][1]} libraries missing", flush=True)  # fmt: skip
        elf.inflater_name = default
        if args.install_repeat:
            target = Path(work, "target")
            install_once(args.wheel, keep, target)  # warm-up
            plain, checked = [], []
            for _ in range(args.install_repeat):
                plain.append(install_once(args.wheel, keep, target))
                checked.append(install_once(args.wheel, strip, target))
            added = statistics.median(checked) - statistics.median(plain)
            results["install"] = {
                "without_check_median_s": statistics.median(plain),
                "with_check_median_s": statistics.median(checked),
                "added_s": added, "runs_without_s": plain, "runs_with_s": checked,
            }  # fmt: skip
            print(f"wheelpatch-install --no-deps --no-compile --target: median "
                  f"{statistics.median(plain):.3f} s with no removal (no check), "
                  f"{statistics.median(checked):.3f} s removing nvidia-* (check runs) of "
                  f"{len(plain)} runs each: the check adds {added:+.3f} s", flush=True)  # fmt: skip
        check = results[f"check_{default}"]["median_s"]
        verdict = "PASS" if check < TARGET_S else "MISS"
        print(f"target: the check under {TARGET_S:.1f} s: {check:.3f} s ({default}): {verdict}")
        results["target"] = {"limit_s": TARGET_S, "check_s": check, "verdict": verdict}
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at the end")
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
