"""Benchmark ``wheelpatch patch`` against ``cp``, ``wheel unpack`` + ``wheel pack`` and
``editwheel edit`` on large wheels.

What it measures
    For each wheel, the same edit (local version label ``stripe.2``; drop the ``triton``,
    ``nvidia-*`` and ``cuda-*`` requirements) is made by:

    * ``sha256``      -- a Python process (``-I -S``) that only hashes the file with
                         ``hashlib.file_digest``: the bound of wheelpatch's design, whose
                         provenance records the source's sha256 (the copy runs beside it);
    * ``cp``          -- copying the file: the floor for any tool that rewrites it;
    * ``wheelpatch``  -- ``wheelpatch patch --config PYPROJECT -o OUT --force WHEEL`` into an
                         empty OUT;
    * ``wheelpatch --force`` -- the same command over the output of an earlier run (put back
                         and synced before each run, untimed): what replacing costs;
    * ``editwheel``   -- ``editwheel edit WHEEL --version V --set-requires-dist ... -o OUT/``
                         (a Rust tool that also copies unchanged members as raw compressed
                         bytes);
    * ``unpack+pack`` -- ``wheel unpack``, rename the ``.dist-info``, edit METADATA, then
                         ``wheel pack``: one child process running all three steps.

    Every command is a child process, forked by ``harness.py``'s small launcher (``python -I -S
    -c``) that times it with ``time.perf_counter`` and reaps it with ``os.wait4``: peak RSS is
    that ``ru_maxrss``, on Linux the largest of the child and of every descendant it waited for
    (so the ``unpack+pack`` figure is the largest of its steps). The launcher exists because a
    child forked straight from this script would inherit its peak RSS as a floor (see
    ``harness._LAUNCHER``); the launcher's own floor is about 6 MiB, which only shows for ``cp``.

    Each tool runs once untimed first (so every tool sees a warm page cache; its output is
    checked then), then the timed runs are interleaved round-robin in a rotating order. Outputs
    are deleted, and dirty pages synced, between runs, outside the timed region.

Wheels
    * a synthetic ``bigdemo-1.0-py3-none-any.whl`` (>= 500 MB, > 10,000 members: deflated
      text-like modules, stored and deflated random blobs; ``synthetic.py``), built once into
      ``--cache-dir``;
    * real wheels from ``--wheel PATH`` and ``$WHEELPATCH_BENCH_WHEEL`` (paths separated by
      ``os.pathsep``); when neither is given, the largest ``torch-*.whl`` found through pip's
      configuration (``find-links`` directories, ``file://`` index URLs).

Targets
    ``wheelpatch`` at most 1.15x ``sha256``'s median time and 0.85x ``editwheel``'s, at least 30x
    faster than ``unpack+pack``, peak RSS at most 100 MiB; ``wheelpatch --force`` at most 1.05x
    ``wheelpatch``. A missed target prints ``MISS``; the exit status is
    still 0 (this is a report, not a test).

Run (from the repository root, in an environment with ``pip install -e .[bench]``)::

    python benchmarks/bench_patch.py                   # synthetic + discovered torch, 5 repeats
    python benchmarks/bench_patch.py --repeat 1 --skip-unpack-pack --no-synthetic
    python benchmarks/bench_patch.py --wheel path/to/big.whl --json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness
from harness import Target, Tool, WheelInfo, canonical, find_exe, is_removed, log

LABEL = "stripe.2"
REMOVE = ("triton", "nvidia-*", "cuda-*")
UNPACK_PACK_HELPER = "_unpack-pack"

TARGET_VS_EDITWHEEL = 0.85
#: Within 15% of a process that only hashes the source (the provenance needs the hash).
TARGET_VS_HASH = 1.15
#: Replacing an existing output costs no more than a fresh write (5% for noise).
TARGET_FORCE = 1.05
TARGET_VS_UNPACK_PACK = 30
TARGET_RSS_MIB = 100


# --------------------------------------------------------------------------- unpack + pack


def _edit_metadata(text: str, new_version: str, patterns: Sequence[str]) -> str:
    head, sep, body = text.partition("\n\n")
    lines: list[str] = []
    for line in head.split("\n"):
        key, _, value = line.partition(":")
        if key.strip().lower() == "version":
            line = f"Version: {new_version}"
        elif key.strip().lower() == "requires-dist" and is_removed(value, patterns):
            continue
        lines.append(line)
    return "\n".join(lines) + sep + body


def _edit_unpacked(root: Path, new_version: str, patterns: Sequence[str]) -> None:
    (dist_info,) = root.glob("*.dist-info")
    stem = dist_info.name.removesuffix(".dist-info")
    name = stem.rpartition("-")[0]
    metadata = dist_info / "METADATA"
    text = metadata.read_bytes().decode("utf-8")
    metadata.write_bytes(_edit_metadata(text, new_version, patterns).encode("utf-8"))
    dist_info.rename(root / f"{name}-{new_version}.dist-info")
    data = root / f"{stem}.data"
    if data.is_dir():
        data.rename(root / f"{name}-{new_version}.data")


def unpack_pack_main(argv: Sequence[str]) -> int:
    """The ``unpack+pack`` child: ``wheel unpack``, edit, ``wheel pack``, in one process."""
    parser = argparse.ArgumentParser(prog=f"bench_patch.py {UNPACK_PACK_HELPER}")
    parser.add_argument("wheel_exe")
    parser.add_argument("wheel", type=Path)
    parser.add_argument("scratch", type=Path)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("new_version")
    parser.add_argument("remove", nargs="*")
    args = parser.parse_args(argv)
    subprocess.run([args.wheel_exe, "unpack", "-d", str(args.scratch), str(args.wheel)], check=True)
    (root,) = (p for p in args.scratch.iterdir() if p.is_dir())
    _edit_unpacked(root, args.new_version, args.remove)
    subprocess.run([args.wheel_exe, "pack", "-d", str(args.out_dir), str(root)], check=True)
    return 0


# --------------------------------------------------------------------------- tools


def _write_config(wheel: WheelInfo, path: Path) -> None:
    remove = ", ".join(json.dumps(p) for p in REMOVE)
    path.write_text(
        "[tool.wheelpatch]\n"
        f'local-version = "{LABEL}"\n\n'
        f"[tool.wheelpatch.overrides.{json.dumps(canonical(wheel.project))}]\n"
        f"remove = [{remove}]\n",
        encoding="utf-8",
    )


def _editwheel_argv(exe: str, wheel: WheelInfo, out: Path) -> list[str]:
    kept = wheel.kept_requires(REMOVE)
    new_version = wheel.new_version(LABEL)
    if not any("," in r for r in kept):
        return [
            exe,
            *("edit", str(wheel.path), "--version", new_version),
            *("--set-requires-dist", ", ".join(kept), "-o", f"{out}{os.sep}"),
        ]
    # The CLI splits --set-requires-dist on commas; same engine through its Python API instead.
    log("  note: a kept requirement has a comma; editwheel runs through its Python API")
    code = (
        "import json, os, sys; from editwheel import WheelEditor\n"
        "e = WheelEditor(sys.argv[1]); e.version = sys.argv[2]\n"
        "e.requires_dist = json.loads(sys.argv[3]); e.save(os.path.join(sys.argv[4], e.filename))"
    )
    return [sys.executable, "-c", code, str(wheel.path), new_version, json.dumps(kept), str(out)]


#: The bound: a process that only hashes the file, as the provenance needs (``-I -S``: no site).
_HASH_ONLY = (
    "import hashlib, sys\n"
    "with open(sys.argv[1], 'rb') as f:\n"
    "    print(hashlib.file_digest(f, 'sha256').hexdigest())"
)


@dataclass
class Replacing(Tool):
    """``wheelpatch patch --force`` over the output of an earlier run: before each run (untimed)
    the output is put back in place, from a copy kept in ``scratch``, and synced; after it, the
    replaced file's removal in the background is waited for, so that no run pays for another's.
    """

    def prepare(self) -> None:
        assert self.scratch is not None
        harness.empty_dirs(self.out_dir)
        for kept in self.scratch.glob("*.whl"):
            shutil.copyfile(kept, self.out_dir / kept.name)
        os.sync()

    def finish(self) -> None:
        assert self.scratch is not None
        deadline = time.monotonic() + 60
        while any(p.name.startswith(".") for p in self.out_dir.iterdir()):
            if time.monotonic() > deadline:
                break
            time.sleep(0.02)
        if not any(self.scratch.glob("*.whl")):  # the first run's output: what later runs replace
            for output in self.out_dir.glob("*.whl"):
                shutil.copyfile(output, self.scratch / output.name)
        harness.empty_dirs(self.out_dir)


def build_tools(wheel: WheelInfo, work: Path, args: argparse.Namespace) -> list[Tool]:
    config = work / "pyproject.toml"
    _write_config(wheel, config)
    tools: list[Tool] = []
    out = work / "out-sha256"
    argv = [sys.executable, "-I", "-S", "-c", _HASH_ONLY, str(wheel.path)]
    tools.append(Tool("sha256", argv, out, args.repeat))
    cp = shutil.which("cp")
    if cp:
        out = work / "out-cp"
        tools.append(Tool("cp", [cp, str(wheel.path), str(out / "x.whl")], out, args.repeat))
    else:
        log("  cp not found: skipped")
    wheelpatch = find_exe("wheelpatch")
    if wheelpatch:
        out = work / "out-wheelpatch"
        argv = [wheelpatch, "patch", "--config", str(config), "-o", str(out), "--force"]
        tools.append(Tool("wheelpatch", [*argv, str(wheel.path)], out, args.repeat))
        out, kept = work / "out-wheelpatch-force", work / "kept-output"
        kept.mkdir()
        tools.append(
            Replacing("wheelpatch --force", [*argv, str(wheel.path)], out, args.repeat, kept)
        )
    else:
        log("  wheelpatch not found: skipped")
    editwheel = find_exe("editwheel")
    if editwheel:
        out = work / "out-editwheel"
        tools.append(Tool("editwheel", _editwheel_argv(editwheel, wheel, out), out, args.repeat))
    else:
        log("  editwheel not installed (pip install editwheel): skipped")
    wheel_exe = find_exe("wheel")
    if args.skip_unpack_pack:
        log("  unpack+pack: skipped (--skip-unpack-pack)")
    elif wheel_exe:
        out, scratch = work / "out-unpack-pack", work / "unpacked"
        argv = [sys.executable, str(Path(__file__).resolve()), UNPACK_PACK_HELPER, wheel_exe]
        argv += [str(wheel.path), str(scratch), str(out), wheel.new_version(LABEL), *REMOVE]
        runs = min(args.unpack_repeat, args.repeat)
        tools.append(Tool("unpack+pack", argv, out, runs, scratch=scratch))
    else:
        log("  wheel not installed (pip install wheel): unpack+pack skipped")
    return tools


# --------------------------------------------------------------------------- verification


def _check_output(tool: Tool, wheel: WheelInfo) -> str:
    """A one-line verdict on a tool's output after the warm-up run."""
    if tool.name == "sha256":
        return "OK (hashes the file, writes nothing)"
    outputs = sorted(tool.out_dir.glob("*.whl"))
    if len(outputs) != 1:
        return "no single output wheel"
    (output,) = outputs
    if tool.name == "cp":
        return "OK (same size)" if output.stat().st_size == wheel.size else "size differs"
    info = harness.read_wheel_info(output, "output")
    new_version = wheel.new_version(LABEL)
    problems = []
    if info.version != new_version:
        problems.append(f"Version {info.version!r}, expected {new_version!r}")
    kept = wheel.kept_requires(REMOVE)
    if sorted(map(canonical, info.requires_dist)) != sorted(map(canonical, kept)):
        problems.append(f"Requires-Dist {list(info.requires_dist)}")
    verdict = "; ".join(problems) or "OK (version and Requires-Dist as expected)"
    if tool.name.startswith("wheelpatch"):
        verdict += "; wheelpatch verify: " + _wheelpatch_verify(output)
    return f"{output.name}: {verdict}"


def _wheelpatch_verify(output: Path) -> str:
    exe = find_exe("wheelpatch")
    if exe is None:
        return "wheelpatch not found"
    result = subprocess.run(
        [exe, "verify", str(output)], capture_output=True, text=True, check=False
    )
    text = (result.stdout + result.stderr).strip().replace("\n", " | ")
    return f"{'PASS' if result.returncode == 0 else 'FAIL'} ({text})"


# --------------------------------------------------------------------------- reporting


def targets(results: dict[str, dict[str, Any]]) -> list[Target]:
    return [
        harness.time_target(
            results, "wheelpatch", "editwheel", limit=TARGET_VS_EDITWHEEL, goal="time_vs_editwheel"
        ),
        harness.time_target(
            results,
            "unpack+pack",
            "wheelpatch",
            limit=TARGET_VS_UNPACK_PACK,
            goal="speedup_vs_unpack_pack",
            at_least=True,
        ),
        harness.rss_target(
            results,
            "wheelpatch",
            "wheelpatch peak RSS (max run)",
            limit=TARGET_RSS_MIB,
            goal="peak_rss",
        ),
        harness.time_target(
            results, "wheelpatch", "sha256", limit=TARGET_VS_HASH, goal="time_vs_hash_bound"
        ),
        harness.time_target(
            results,
            "wheelpatch --force",
            "wheelpatch",
            limit=TARGET_FORCE,
            goal="force_vs_fresh",
            note="(over an existing output)",
        ),
        harness.time_target(results, "wheelpatch", "cp", note="(cp: the floor)"),
    ]


def bench_wheel(wheel: WheelInfo, args: argparse.Namespace) -> dict[str, Any]:
    log(f"\n== {wheel.path} ({wheel.size / 1e6:.1f} MB, {wheel.members:,} members)")
    with tempfile.TemporaryDirectory(prefix="bench-patch-") as tmp:
        work = Path(tmp)
        tools = build_tools(wheel, work, args)
        results = harness.measure(
            tools, args.repeat, work, wheel.project, lambda tool: _check_output(tool, wheel)
        )
    figures = targets(results)
    new_version = wheel.new_version(LABEL)
    removed = len(wheel.requires_dist) - len(wheel.kept_requires(REMOVE))
    print(
        f"\n{wheel.path.name}  [{wheel.kind}; {wheel.size / 1e6:.1f} MB, "
        f"{wheel.members:,} members; {wheel.version} -> {new_version}, "
        f"{removed} Requires-Dist removed]"
    )
    harness.print_tools(results)
    for figure in figures:
        print(figure.line())
    return harness.wheel_report(wheel, results, figures, new_version=new_version)


# --------------------------------------------------------------------------- main


def _parser() -> argparse.ArgumentParser:
    parser = harness.base_parser(
        "Time wheelpatch patch against cp, wheel unpack+pack and editwheel edit.",
        wheels="measure",
    )
    parser.add_argument(
        "--unpack-repeat",
        type=harness.at_least_1,
        default=3,
        help="timed runs of unpack+pack (default 3)",
    )
    parser.add_argument(
        "--skip-unpack-pack",
        action="store_true",
        help="do not run wheel unpack + wheel pack (slow)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == [UNPACK_PACK_HELPER]:
        return unpack_pack_main(argv[1:])
    args = harness.parse(_parser(), argv)
    bytecode = harness.bytecode_env(args.cache_dir)
    host = harness.machine(["wheelpatch", "editwheel", "wheel"])
    command = harness.print_context(
        host,
        bytecode=bytecode,
        edit=f"local version label {LABEL!r}; remove Requires-Dist {', '.join(REMOVE)}",
    )
    wheels = harness.select_wheels(args)
    if not wheels:
        print("nothing to benchmark: no synthetic wheel and no real wheel")
        return 2
    print("wheels: " + ", ".join(f"{w.path} ({w.kind})" for w in wheels))
    reports = [bench_wheel(wheel, args) for wheel in wheels]
    if args.json:
        print(json.dumps({"command": command, "machine": host, "wheels": reports}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
