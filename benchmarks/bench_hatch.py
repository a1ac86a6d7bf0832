"""Benchmark the build-time cost of wheelpatch's hatchling plugin.

What it measures
    Two copies of ``plugin_examples/hatch-fork`` are made in a temporary directory, each a git
    repository tagged ``v2.0.1`` with one commit after the tag, each with the same ~200 generated
    modules in ``src/tensorfork/ops/`` so hatchling has real file work to do:

    * ``with``    -- the example exactly: the ``wheelpatch`` version source (``git describe`` ->
                     ``2.0.1+stripe.2.1.REV``), metadata hook (the override on the requirements)
                     and build hook (``wheelpatch.json`` provenance);
    * ``without`` -- the same project with the plugin removed: static ``version = "2.0.1"``,
                     static ``dependencies`` and ``optional-dependencies`` equal to what the
                     plugin produces, no wheelpatch table or hook, ``build-system.requires``
                     hatchling only.

    For each copy, in the same run, interleaved (the pair's order alternating by round):

    * ``build --wheel``        -- ``python -m build --no-isolation --wheel --outdir OUT PROJECT``;
    * ``build --sdist --wheel``-- the same with ``--sdist --wheel`` (both from the source tree);
    * ``build_wheel() process``-- a fresh ``python -c`` in PROJECT calling
                                  ``hatchling.build.build_wheel(OUT)`` (no frontend, no
                                  dependency check; a process per call, so no plugin cache
                                  carries over);
    * ``build_wheel() call``   -- the same runs, timed inside the child around the call only (no
                                  interpreter start-up, no hatchling import: the plugin's import
                                  and work, and hatchling's);
    * ``get_requires() call``  -- ``hatchling.build.get_requires_for_build_wheel()`` timed the same
                                  way: the first hook a frontend calls, each in its own process
                                  (``build --wheel`` runs it and ``build_wheel``; ``--sdist
                                  --wheel`` runs four hooks). The plugin adds no requirement, but
                                  hatchling loads it here too.

    And, as context, for the ``with`` copy only:

    * ``import hatch_plugin``  -- ``import wheelpatch.build.hatch``, timed inside a fresh child
                                  that has imported hatchling's wheel builder and metadata first
                                  (what every build-backend hook process that loads the plugin
                                  pays, ``get_requires_for_build_*`` included);
    * ``git describe``         -- ``git describe --tags --long --dirty`` alone;
    * ``plugin's 3 git calls`` -- the git commands the plugin runs per build
                                  (``rev-parse --is-inside-work-tree``, ``describe --tags --long
                                  --dirty``, ``rev-parse HEAD``), in one ``sh -c``.

    The ``git`` column is how many git commands one build with the plugin ran (counted once,
    untimed, with ``GIT_TRACE``).

    Every command runs through ``harness.py``'s launcher (wall time with ``perf_counter``). The
    children get ``PIP_CONFIG_FILE=/dev/null``, ``PIP_DISABLE_PIP_VERSION_CHECK=1``, a fixed
    ``SOURCE_DATE_EPOCH`` and no other ``PIP_*`` variable; they cache their bytecode as in
    ``bench_patch.py``. Each command runs once untimed first; its outputs are checked then: the
    ``with`` wheel's name has ``+stripe.2.1.``, the ``without`` one is
    ``tensorfork-2.0.1-py3-none-any.whl``, their METADATA are the same but for ``Version``, only the
    ``with`` wheel has ``wheelpatch.json``; a failed check stops the run (exit status 1). Output
    directories are emptied (and ``sync`` run) between runs, outside the timed region. Medians are
    reported, with the ratio with/without and the overhead in ms.

Run (from the repository root, in an environment with wheelpatch, hatchling and build)::

    python benchmarks/bench_hatch.py --repeat 5
    python benchmarks/bench_hatch.py --repeat 3 --no-sdist --json
"""

from __future__ import annotations

import argparse
import email.parser
import importlib.metadata
import json
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness
from harness import ROOT, Column, Sample, ToolFailed

EXAMPLE = ROOT / "plugin_examples" / "hatch-fork"
PROJECT = "tensorfork"
TAG = "v2.0.1"
SOURCE_DATE_EPOCH = "1714521600"  # 2024-05-01 00:00:00 UTC
WITH_MARK = "+stripe.2.1."
WITHOUT_WHEEL = "tensorfork-2.0.1-py3-none-any.whl"
WITHOUT_SDIST = "tensorfork-2.0.1.tar.gz"
GIT = (
    "git",
    *("-c", "user.name=b", "-c", "user.email=b@example.invalid"),
    *("-c", "init.defaultBranch=main", "-c", "commit.gpgsign=false", "-c", "tag.gpgsign=false"),
)
VARIANTS = ("with", "without")
DESCRIBE = ("describe", "--tags", "--long", "--dirty")
PLUGIN_GIT = (("rev-parse", "--is-inside-work-tree"), DESCRIBE, ("rev-parse", "HEAD"))

# The example with the plugin removed: what the plugin makes of it, written down statically.
WITHOUT_PYPROJECT = """\
[build-system]
requires = ["hatchling>=1.21"]
build-backend = "hatchling.build"

[project]
name = "tensorfork"
version = "2.0.1"
description = "A fork of an upstream project, built with the wheelpatch hatch plugin."
requires-python = ">=3.10"
dependencies = ["filelock", "numpy>=1.24", "sympy"]

[project.optional-dependencies]
cuda = []

[tool.hatch.build.targets.wheel]
packages = ["src/tensorfork"]
"""

# Run in a fresh process: chdir PROJECT, then time one hatchling backend hook alone:
# build_wheel(OUT) or get_requires_for_build_wheel(). argv: HOOK PROJECT TIMING_JSON [OUT].
_BACKEND = """\
import json, os, sys, time
hook, project, timing, *out = sys.argv[1:]
os.chdir(project)
import hatchling.build
start = time.perf_counter()
result = getattr(hatchling.build, hook)(*out)
seconds = time.perf_counter() - start
with open(timing, "w") as stream:
    json.dump({"seconds": seconds, "result": result}, stream)
"""


# Run in a fresh process: import what a hatchling wheel build imports, then time the import of
# the plugin module alone. argv: TIMING_JSON.
_IMPORT = """\
import json, sys, time
import hatchling.build, hatchling.builders.wheel, hatchling.metadata.core
start = time.perf_counter()
import wheelpatch.build.hatch
seconds = time.perf_counter() - start
with open(sys.argv[1], "w") as stream:
    json.dump({"seconds": seconds}, stream)
"""


# --------------------------------------------------------------------------- data


@dataclass
class Case:
    """One measured command for one copy of the project."""

    mode: str
    variant: str
    argv: list[str]
    out_dir: Path
    log: Path
    timing: Path | None = None  # where the child writes the time it measured itself
    call_row: str | None = None  # the row for that time
    wall_row: bool = True  # whether the child's wall time gets a row
    samples: list[Sample] = field(default_factory=list)
    in_call: list[float] = field(default_factory=list)


# --------------------------------------------------------------------------- projects


def _module_text(index: int) -> str:
    return (
        f'"""tensorfork.ops.op_{index:03d}: generated by bench_hatch.py."""\n\n'
        "from __future__ import annotations\n\n"
        f"SCALE = {index % 17 + 1}\n"
        f'NAME = "op_{index:03d}"\n\n\n'
        f"def forward_{index}(x: float, bias: float = 0.0) -> float:\n"
        f'    """Scale ``x`` by {index % 17 + 1} and add ``bias``."""\n'
        "    return x * SCALE + bias\n\n\n"
        f"def backward_{index}(grad: float) -> float:\n"
        '    """The gradient of ``forward`` with respect to ``x``."""\n'
        "    return grad * SCALE\n\n\n"
        f"class Op{index:03d}:\n"
        f'    """Operator {index} as an object."""\n\n'
        "    def __init__(self, bias: float = 0.0) -> None:\n"
        "        self.bias = bias\n\n"
        "    def __call__(self, x: float) -> float:\n"
        f"        return forward_{index}(x, self.bias)\n"
    )


def _git(project: Path, *args: str) -> None:
    subprocess.run([*GIT, "-C", str(project), *args], check=True, capture_output=True)


def make_project(project: Path, variant: str, modules: int) -> None:
    """A copy of the example (with or without the plugin) in a git repository tagged TAG."""
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns("__pycache__", "*.py[cod]"))
    if variant == "without":
        (project / "pyproject.toml").write_text(WITHOUT_PYPROJECT, encoding="utf-8")
    ops = project / "src" / PROJECT / "ops"
    ops.mkdir()
    (ops / "__init__.py").write_text('"""Generated operators."""\n', encoding="utf-8")
    for index in range(modules):
        (ops / f"op_{index:03d}.py").write_text(_module_text(index), encoding="utf-8")
    _git(project, "init", "-q")
    _git(project, "add", "-A")
    _git(project, "commit", "-q", "-m", "import")
    _git(project, "tag", TAG)
    (project / "NEWS.md").write_text("# Changes\n\n- one commit after the tag\n", "utf-8")
    _git(project, "add", "-A")
    _git(project, "commit", "-q", "-m", "news")


# --------------------------------------------------------------------------- versions


def versions() -> dict[str, str]:
    found: dict[str, str] = {}
    for name in ("wheelpatch", "hatchling", "build"):
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "not installed"
    git = subprocess.run(["git", "--version"], capture_output=True, text=True, check=False)
    found["git"] = git.stdout.strip().removeprefix("git version ")
    return found


# --------------------------------------------------------------------------- cases


def build_cases(projects: dict[str, Path], work: Path, sdist: bool) -> list[Case]:
    """The measured commands, ordered so each mode's two variants are next to each other."""
    python = sys.executable
    cases: list[Case] = []
    modes = ["build --wheel", *(["build --sdist --wheel"] if sdist else [])]
    modes += ["build_wheel()", "get_requires()"]
    for index, mode in enumerate(modes):
        for variant in VARIANTS:
            project = projects[variant]
            out = work / f"out-{index}-{variant}"
            log = work / f"{index}-{variant}.log"
            timing = work / f"{index}-{variant}.json"
            backend = [python, "-c", _BACKEND]
            if mode == "build_wheel()":
                argv = [*backend, "build_wheel", str(project), str(timing), str(out)]
                process, call = f"{mode} process", f"{mode} call"
                cases.append(Case(process, variant, argv, out, log, timing, call))
                continue
            if mode == "get_requires()":
                argv = [*backend, "get_requires_for_build_wheel", str(project), str(timing)]
                cases.append(Case(mode, variant, argv, out, log, timing, f"{mode} call", False))
                continue
            targets = ["--sdist", "--wheel"] if "sdist" in mode else ["--wheel"]
            argv = [python, "-m", "build", "--no-isolation", *targets, "--outdir", str(out)]
            cases.append(Case(mode, variant, [*argv, str(project)], out, log))
    timing = work / "import.json"
    argv = [python, "-c", _IMPORT, str(timing)]
    out, log = work / "out-import", work / "import.log"
    cases.append(Case("import", "with", argv, out, log, timing, "import hatch_plugin", False))
    git_dir = str(projects["with"])
    describe = ["git", "-C", git_dir, *DESCRIBE]
    cases.append(Case("git describe", "with", describe, work / "out-git", work / "git.log"))
    script = " && ".join(shlex.join(["git", "-C", git_dir, *args]) for args in PLUGIN_GIT)
    cases.append(
        Case("plugin's 3 git calls", "with", ["sh", "-c", script], work / "out-git3", work / "g3")
    )
    return cases


def run_case(case: Case) -> Sample:
    if case.timing is not None:
        case.timing.unlink(missing_ok=True)
    harness.empty_dirs(case.out_dir)
    try:
        sample = harness.run_measured(case.argv, case.log)
    except (ToolFailed, OSError) as exc:
        raise SystemExit(f"bench_hatch: {case.mode} ({case.variant}) failed: {exc}") from None
    if case.timing is not None:
        case.in_call.append(json.loads(case.timing.read_text(encoding="utf-8"))["seconds"])
    return sample


def run_rounds(cases: list[Case], repeat: int) -> None:
    """Timed runs: each round runs every case once; a mode's pair alternates A,B / B,A."""
    pairs: list[list[Case]] = []
    for case in cases:
        if pairs and pairs[-1][0].mode == case.mode:
            pairs[-1].append(case)
        else:
            pairs.append([case])
    for round_no, case in harness.interleave(pairs, repeat):
        sample = run_case(case)
        case.samples.append(sample)
        in_call = f"  (in child {case.in_call[-1]:.3f} s)" if case.timing else ""
        harness.log(
            f"  [round {round_no + 1}/{repeat}] {case.mode:<22} {case.variant:<8}"
            f" {sample.seconds:8.3f} s{in_call}"
        )


# --------------------------------------------------------------------------- checks


def _expect(ok: bool, message: str) -> None:
    if not ok:
        raise SystemExit(f"bench_hatch: check failed: {message}")


def _metadata_without_version(wheel: Path) -> tuple[str, str]:
    """(Version, METADATA without its Version line) of a wheel."""
    with zipfile.ZipFile(wheel) as archive:
        (name,) = (n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        text = archive.read(name).decode("utf-8")
    version = email.parser.HeaderParser().parsestr(text)["Version"]
    rest = "".join(line for line in text.splitlines(True) if not line.startswith("Version:"))
    return version, rest


def _has_provenance(wheel: Path) -> bool:
    with zipfile.ZipFile(wheel) as archive:
        return any(n.endswith(".dist-info/wheelpatch.json") for n in archive.namelist())


def _sdist_has_provenance(sdist: Path) -> bool:
    with tarfile.open(sdist) as archive:
        return any(n.endswith("/.wheelpatch.json") for n in archive.getnames())


def check_outputs(cases: list[Case]) -> list[str]:
    """Check the warm-up outputs (run before this): one line per case; raise on a failure."""
    lines: list[str] = []
    by_mode: dict[str, dict[str, Case]] = {}
    for case in cases:
        by_mode.setdefault(case.mode, {})[case.variant] = case
    for mode, pair in by_mode.items():
        if len(pair) != 2 or not mode.startswith("build"):
            continue
        wheels = {v: sorted(c.out_dir.glob("*.whl")) for v, c in pair.items()}
        for variant, found in wheels.items():
            _expect(len(found) == 1, f"{mode} ({variant}) made {len(found)} wheels, expected one")
        with_wheel, without_wheel = wheels["with"][0], wheels["without"][0]
        _expect(
            WITH_MARK in with_wheel.name,
            f"{mode}: the wheel with the plugin is {with_wheel.name}, its name should contain "
            f"{WITH_MARK!r} (label from git describe: tag {TAG}, one commit after it)",
        )
        _expect(
            without_wheel.name == WITHOUT_WHEEL,
            f"{mode}: the wheel without the plugin is {without_wheel.name}, not {WITHOUT_WHEEL}",
        )
        with_version, with_rest = _metadata_without_version(with_wheel)
        _, without_rest = _metadata_without_version(without_wheel)
        _expect(
            with_rest == without_rest,
            f"{mode}: METADATA differs beyond Version:\n--- with\n{with_rest}--- without\n"
            f"{without_rest}",
        )
        _expect(_has_provenance(with_wheel), f"{mode}: {with_wheel.name} has no wheelpatch.json")
        _expect(
            not _has_provenance(without_wheel), f"{mode}: {without_wheel.name} has wheelpatch.json"
        )
        sdist_note = ""
        if "sdist" in mode:
            sdists = {v: sorted(c.out_dir.glob("*.tar.gz")) for v, c in pair.items()}
            _expect(
                [p.name for p in sdists["with"]] == [f"{PROJECT}-{with_version}.tar.gz"]
                and [p.name for p in sdists["without"]] == [WITHOUT_SDIST],
                f"{mode}: sdists {sdists}, expected {PROJECT}-{with_version}.tar.gz and "
                f"{WITHOUT_SDIST}",
            )
            _expect(
                _sdist_has_provenance(sdists["with"][0]),
                f"{mode}: the sdist with the plugin has no .wheelpatch.json",
            )
            sdist_note = " + sdist"
        lines.append(
            f"{mode:<22} OK: {with_wheel.name} vs {without_wheel.name}{sdist_note}; METADATA "
            "equal but for Version; wheelpatch.json only in the first"
        )
    return lines


def count_plugin_git(cases: list[Case], work: Path) -> dict[str, int]:
    """How many git commands each build with the plugin runs (GIT_TRACE, untimed)."""
    counts: dict[str, int] = {}
    paired = {c.mode for c in cases if c.variant == "without"}
    for case in cases:
        if case.variant != "with" or case.mode not in paired:
            continue
        trace = work / "git-trace.txt"
        trace.unlink(missing_ok=True)
        os.environ["GIT_TRACE"] = str(trace)
        try:
            run_case(case)
        finally:
            del os.environ["GIT_TRACE"]
        lines = trace.read_text().splitlines() if trace.is_file() else []
        counts[case.mode] = sum("trace: built-in: git " in line for line in lines)
        if case.call_row is not None:
            counts[case.call_row] = counts[case.mode]
    return counts


# --------------------------------------------------------------------------- reporting


def summarize(cases: list[Case], git_calls: dict[str, int]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    groups: dict[str, dict[str, list[float]]] = {}
    for case in cases:
        if case.wall_row:
            groups.setdefault(case.mode, {})[case.variant] = [s.seconds for s in case.samples]
        if case.call_row is not None:
            groups.setdefault(case.call_row, {})[case.variant] = case.in_call
    for mode, by_variant in groups.items():
        with_s = by_variant.get("with", [])
        without_s = by_variant.get("without", [])
        with_med, without_med = harness.median(with_s), harness.median(without_s)
        row: dict[str, Any] = {
            "mode": mode,
            "runs": len(with_s),
            "git_commands": git_calls.get(mode),
            "with_median_s": with_med,
            "with_min_s": min(with_s) if with_s else None,
            "without_median_s": without_med,
            "without_min_s": min(without_s) if without_s else None,
            "with_s": with_s,
            "without_s": without_s,
        }
        if with_med is not None and without_med:
            row["ratio"] = with_med / without_med
            row["overhead_ms"] = (with_med - without_med) * 1000
        rows.append(row)
    return rows


COLUMNS = (
    Column("measurement", 22, key="mode"),
    Column("runs", 4, key="runs"),
    Column("with s", 8, ".3f", "with_median_s"),
    Column("(min)", 7, ".3f", "with_min_s"),
    Column("without s", 10, ".3f", "without_median_s"),
    Column("(min)", 7, ".3f", "without_min_s"),
    Column("ratio", 7, ".2f", "ratio", suffix="x"),
    Column("overhead ms", 12, "+.0f", "overhead_ms"),
    Column("git", 4, "d", "git_commands"),
)


def print_table(rows: list[dict[str, Any]]) -> None:
    print()
    harness.print_table(COLUMNS, rows)
    print(
        "  (s: seconds, median and min; ratio and overhead: with / minus without, medians; "
        "git: git commands one build with the plugin ran)"
    )


# --------------------------------------------------------------------------- main


def _parser() -> argparse.ArgumentParser:
    parser = harness.base_parser(
        "Time hatchling builds of the hatch-fork example with and without the wheelpatch plugin.",
        per="case",
    )
    parser.add_argument(
        "--modules",
        type=harness.at_least_0,
        default=200,
        help="generated modules added to src/tensorfork/ops/ (default 200)",
    )
    parser.add_argument(
        "--no-sdist", action="store_true", help="skip the 'build --sdist --wheel' measurement"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = harness.parse(_parser(), argv)
    environment = harness.hermetic_env(
        names=("GIT_TRACE",), fixed={"SOURCE_DATE_EPOCH": SOURCE_DATE_EPOCH}
    )
    bytecode = harness.bytecode_env(args.cache_dir)
    host = {**harness.machine(), **versions()}
    source = harness.source_state()
    command = harness.print_context(host, source=source, environment=environment, bytecode=bytecode)
    with tempfile.TemporaryDirectory(prefix="bench-hatch-") as tmp:
        work = Path(tmp)
        projects = {v: work / f"{v}-plugin" / PROJECT for v in VARIANTS}
        for variant, project in projects.items():
            make_project(project, variant, args.modules)
        files = sum(1 for p in (projects["with"] / "src").rglob("*.py"))
        print(
            f"project: {EXAMPLE.relative_to(ROOT)} + {args.modules} generated modules "
            f"({files} .py files), git tag {TAG} + 1 commit; copies in {work}"
        )
        cases = build_cases(projects, work, sdist=not args.no_sdist)
        scripts = {_BACKEND: "BACKEND_HOOK_SCRIPT", _IMPORT: "IMPORT_SCRIPT"}
        for case in cases:
            if case.variant == "with":
                shown = [scripts.get(arg, arg) for arg in case.argv]
                print(f"  $ {shlex.join(shown)}")
        print(f"  (without: the same commands for {projects['without']})")
        harness.log("warm-up (untimed) and output check:")
        for case in cases:
            run_case(case)
        checks = check_outputs(cases)
        git_calls = count_plugin_git(cases, work)
        for line in checks:
            print(f"  check {line}")
        for case in cases:
            case.in_call.clear()
        run_rounds(cases, args.repeat)
    rows = summarize(cases, git_calls)
    print_table(rows)
    if args.json:
        document = {
            "command": command,
            "machine": host,
            "source": source,
            "modules": args.modules,
            "results": rows,
        }
        print(json.dumps(document, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
