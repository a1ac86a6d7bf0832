"""Benchmark ``wheelpatch-install`` against installer, pip and uv installing large wheels.

What it measures
    For each wheel, the time to install it into a fresh, empty virtual environment
    (``python -m venv --without-pip``, made under the system temporary directory or
    ``--work-dir``; nothing is installed or deleted outside that run's ``bench-install-*``
    folder) with:

    * ``wheelpatch`` -- ``wheelpatch-install --config CFG --python VENV_PY --no-deps --no-compile
                        WHEEL``: the wheel is patched on the fly (local version label
                        ``stripe.2``; ``triton``, ``nvidia-*``, ``cuda-toolkit`` and
                        ``cuda-bindings`` requirements removed) while its members are written by
                        worker threads; with ``--no-deps`` and a wheel path it runs no pip;
    * ``installer``  -- ``python -c INSTALLER_SCRIPT SCHEME_JSON VENV_PY WHEEL``, run by this
                        script's interpreter: what ``python -m installer --no-compile-bytecode``
                        does (``installer.install(WheelFile, SchemeDictionaryDestination(...),
                        {})``, no RECORD validation), but with the scheme of VENV_PY's own
                        ``sysconfig`` (asked once, untimed) and VENV_PY in script shebangs.
                        installer's CLI cannot target another interpreter: it installs into the
                        environment running it (``--prefix`` would get the paths right but write
                        this interpreter into the shebangs), and the fresh venv has no installer;
    * ``pip``        -- ``python -m pip --python VENV_PY install --no-deps --no-compile
                        --no-index WHEEL`` (pip of this environment, run for VENV_PY);
    * ``uv``         -- ``uv pip install --no-deps --no-cache --offline --python VENV_PY WHEEL``
                        (with ``--no-cache`` uv extracts into a temporary cache, then copies);
    * ``unzip``      -- ``unzip -q -o WHEEL -d SITE_PACKAGES``: no RECORD, no scripts, no
                        checks; the floor for writing the members one after the other (a
                        reference, no target; leave it out with ``--tools``).

    No tool is told to compile bytecode. Every child runs in a hermetic environment: every
    ``PIP_*`` and ``UV_*`` variable is dropped, then ``PIP_CONFIG_FILE=/dev/null``,
    ``PIP_DISABLE_PIP_VERSION_CHECK=1``, ``UV_NO_CONFIG=1`` and ``UV_LINK_MODE=copy`` are set (and
    ``VIRTUAL_ENV`` unset); the Python tools cache their own bytecode as in ``bench_patch.py``.

    Each command runs through ``bench_patch.py``'s launcher, which times it and reaps it with
    ``os.wait4``: peak RSS is the largest of the tool and of the descendants it waited for (pip's
    ``--python`` child, wheelpatch's interpreter probe). Before every run the tool's venv is
    deleted and made anew; after it the venv is deleted again; both outside the timed region,
    each followed by ``sync`` so no write-back of one run lands in another. Each tool runs once
    untimed first (warm page cache for everyone); its result is checked then, with VENV_PY
    itself: exactly one ``.dist-info`` (wheelpatch's with the ``+stripe.2`` version and the
    patched Requires-Dist, the others' with the original ones), every file RECORD lists present,
    console scripts pointing at VENV_PY, and an import of the top-level package (torch cannot
    import without its dependencies: ``--no-deps``). The timed runs are then interleaved
    round-robin in a rotating order; medians are reported.

    On a small machine these are file-system benchmarks: every tool spends most of its time in
    the kernel creating and filling files, and wheelpatch's worker threads only pay off with a
    core to spare (run nothing else meanwhile).

Wheels
    ``bench_patch.py``'s: its synthetic ``bigdemo-1.0-py3-none-any.whl`` (>= 500 MB, > 10,000
    members, cached in ``--cache-dir``), and real wheels from ``--wheel PATH`` /
    ``$WHEELPATCH_BENCH_WHEEL``, else the largest ``torch-*.whl`` found through pip's
    configuration. The one CFG has an override for ``torch``, for ``bigdemo`` and for the project
    of every other wheel given, so each wheel is patched.

Targets
    ``wheelpatch`` at most 1.0x ``installer``'s median time and at most 0.6x ``pip``'s; the ratio to
    ``uv`` is reported with no target. A missed target prints ``MISS``; the exit status is still 0
    (this is a report, not a test).

Run (from the repository root, in an environment with wheelpatch, installer, pip and uv)::

    python benchmarks/bench_install.py                         # synthetic + torch, 5 repeats
    python benchmarks/bench_install.py --repeat 3 --tools wheelpatch,installer
    python benchmarks/bench_install.py --no-synthetic --wheel path/to/big.whl --json
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_patch
from bench_patch import Sample, Tool, ToolFailed, WheelInfo

LABEL = bench_patch.LABEL
REMOVE = ("triton", "nvidia-*", "cuda-toolkit", "cuda-bindings")
TOOLS = ("wheelpatch", "installer", "pip", "uv", "unzip")
#: Projects that always get an override in CFG (the real torch wheel and the synthetic one).
OVERRIDDEN = ("torch", bench_patch.SYNTHETIC_NAME)

TARGET_VS_INSTALLER = 1.0
TARGET_VS_PIP = 0.6

# Run by this script's interpreter (which has installer): `python -m installer
# --no-compile-bytecode WHEEL` for another interpreter's scheme. argv: scheme JSON, VENV_PY, WHEEL.
_INSTALLER = """\
import json, os, sys
import installer
from installer.destinations import SchemeDictionaryDestination
from installer.sources import WheelFile
paths, interpreter, wheel = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
with WheelFile.open(wheel) as source:
    scheme = {key: paths[key] for key in ("purelib", "platlib", "scripts", "data")}
    scheme["headers"] = os.path.join(paths["include"], source.distribution)
    destination = SchemeDictionaryDestination(
        scheme_dict=scheme,
        interpreter=interpreter,
        script_kind="posix",
        bytecode_optimization_levels=[],
    )
    installer.install(source, destination, {})
"""

# Run by VENV_PY: its scheme, as installer's CLI computes it for the interpreter running it.
_SCHEME = """\
import json, sys, sysconfig
paths = sysconfig.get_paths()
paths["include"] = sysconfig.get_path("include", vars={"installed_base": sys.prefix})
print(json.dumps(paths))
"""

# Run by VENV_PY (-I) after a tool's warm-up install: what landed in the venv. argv: project.
_CHECK = """\
import configparser, importlib.metadata as md, json, os, sys, sysconfig
name = sys.argv[1]
sites = sorted({sysconfig.get_paths()[key] for key in ("purelib", "platlib")})
infos = sorted(
    entry for site in sites if os.path.isdir(site)
    for entry in os.listdir(site) if entry.endswith(".dist-info")
)
dist = md.distribution(name)
files = dist.files or []
missing = [str(f) for f in files if not os.path.exists(f.locate())]
scripts = {}
for entry in dist.entry_points:
    if entry.group == "console_scripts":
        path = os.path.join(sysconfig.get_paths()["scripts"], entry.name)
        try:
            with open(path, "rb") as handle:
                scripts[entry.name] = handle.readline().decode(errors="replace").strip()
        except OSError as exc:
            scripts[entry.name] = f"missing ({exc.strerror})"
print(json.dumps({
    "dist_infos": infos,
    "version": dist.version,
    "requires": dist.requires or [],
    "files": len(files),
    "missing": missing[:3],
    "n_missing": len(missing),
    "installer": (dist.read_text("INSTALLER") or "").strip(),
    "scripts": scripts,
}))
"""

_IMPORT = """\
import importlib, sys
module = importlib.import_module(sys.argv[1])
print(getattr(module, "__file__", None))
"""


# --------------------------------------------------------------------------- environment


def hermetic_env() -> str:
    """Make the children's environment independent of the user's pip and uv configuration.

    Called after the wheels are found (``bench_patch.discover_wheels`` reads pip's configuration).
    """
    dropped = sorted(k for k in os.environ if k.startswith(("PIP_", "UV_")) or k == "VIRTUAL_ENV")
    for key in dropped:
        del os.environ[key]
    fixed = {
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "UV_NO_CONFIG": "1",
        "UV_LINK_MODE": "copy",
    }
    os.environ.update(fixed)
    shown = " ".join(f"{k}={v}" for k, v in fixed.items())
    return f"{shown}; unset: {', '.join(dropped) or 'nothing'}"


def _scratch_only(path: Path, work: Path) -> Path:
    """Refuse to create, install into or delete anything outside this run's scratch folder."""
    real, root = path.resolve(), work.resolve()
    if root not in real.parents or not root.name.startswith("bench-install-"):
        raise RuntimeError(f"refusing to touch {path}: not inside a bench-install-* folder")
    return path


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def make_venv(venv: Path, work: Path) -> None:
    _scratch_only(venv, work)
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)],
        check=True,
        stdin=subprocess.DEVNULL,
    )


def remove_venv(venv: Path, work: Path) -> None:
    _scratch_only(venv, work)
    shutil.rmtree(venv, ignore_errors=True)
    if hasattr(os, "sync"):
        os.sync()


# --------------------------------------------------------------------------- tools


def write_config(wheels: Sequence[WheelInfo], path: Path) -> None:
    projects = dict.fromkeys([*OVERRIDDEN, *(bench_patch._canonical(w.project) for w in wheels)])
    remove = ", ".join(json.dumps(p) for p in REMOVE)
    text = f'[tool.wheelpatch]\nlocal-version = "{LABEL}"\n'
    for project in projects:
        text += f"\n[tool.wheelpatch.overrides.{json.dumps(project)}]\nremove = [{remove}]\n"
    path.write_text(text, encoding="utf-8")


def _scheme_of(python: Path) -> str:
    result = subprocess.run(
        [str(python), "-I", "-c", _SCHEME], capture_output=True, text=True, check=True
    )
    return result.stdout.strip()


def build_tools(
    wheel: WheelInfo, work: Path, config: Path, names: Sequence[str], repeat: int
) -> list[Tool]:
    tools: list[Tool] = []
    for name in names:
        venv = _scratch_only(work / f"venv-{name}", work)
        python = str(venv_python(venv))
        if name == "wheelpatch":
            exe = bench_patch._find_exe("wheelpatch-install")
            if exe is None:
                _log_skip(name, "wheelpatch-install not found")
                continue
            argv = [exe, "--config", str(config), "--python", python, "--no-deps", "--no-compile"]
        elif name == "installer":
            if not _importable("installer"):
                _log_skip(name, "installer is not installed here (pip install installer)")
                continue
            make_venv(venv, work)  # to ask it for its scheme, once
            argv = [sys.executable, "-c", _INSTALLER, _scheme_of(venv_python(venv)), python]
        elif name == "pip":
            if not _importable("pip"):
                _log_skip(name, "pip is not installed here")
                continue
            argv = [sys.executable, "-m", "pip", "--python", python, "install"]
            argv += ["--no-deps", "--no-compile", "--no-index"]
        elif name == "uv":
            exe = bench_patch._find_exe("uv")
            if exe is None:
                _log_skip(name, "uv not found (pip install uv)")
                continue
            argv = [exe, "pip", "install", "--no-deps", "--no-cache", "--offline"]
            argv += ["--python", python]
        else:
            exe = shutil.which("unzip")
            if exe is None:
                _log_skip(name, "unzip not found")
                continue
            make_venv(venv, work)  # to ask it for its site-packages, once
            site = json.loads(_scheme_of(venv_python(venv)))["platlib"]
            argv = [exe, "-q", "-o", str(wheel.path), "-d", site]
            tools.append(Tool(name, argv, venv, repeat))
            continue
        tools.append(Tool(name, [*argv, str(wheel.path)], venv, repeat))
    return tools


def _log_skip(name: str, why: str) -> None:
    bench_patch._log(f"  {name}: skipped ({why})")


def _importable(module: str) -> bool:
    code = f"import {module}"
    return (
        subprocess.run([sys.executable, "-c", code], capture_output=True, check=False).returncode
        == 0
    )


# --------------------------------------------------------------------------- measuring


def run_once(tool: Tool, work: Path, keep: bool = False) -> Sample | None:
    """One install into a fresh venv; the venv is removed afterwards unless ``keep``."""
    make_venv(tool.out_dir, work)
    if hasattr(os, "sync"):
        os.sync()
    try:
        return bench_patch.run_measured(tool.argv, work / f"{tool.name}.log")
    except (ToolFailed, OSError) as exc:
        tool.error = str(exc)
        bench_patch._log(f"  {tool.name} FAILED, dropped: {exc}")
        return None
    finally:
        if not keep or tool.error is not None:
            remove_venv(tool.out_dir, work)


def run_rounds(tools: list[Tool], repeat: int, work: Path, label: str) -> None:
    """Timed runs, round-robin: each round runs every tool once, the order rotating."""
    for round_no in range(repeat):
        shift = round_no % len(tools)
        for tool in tools[shift:] + tools[:shift]:
            if not tool.active:
                continue
            sample = run_once(tool, work)
            if sample is None:
                continue
            tool.samples.append(sample)
            rss = bench_patch._mib(sample.rss_kib)
            rss_text = "-" if rss is None else f"{rss:.1f} MiB"
            bench_patch._log(
                f"  [{label} round {round_no + 1}/{repeat}] {tool.name:<10} "
                f"{sample.seconds:8.3f} s  {rss_text}"
            )


# --------------------------------------------------------------------------- verification


def _same_requirements(a: Sequence[str], b: Sequence[str]) -> bool:
    def key(items: Sequence[str]) -> list[str]:
        return sorted("".join(r.split()).lower() for r in items)

    return key(a) == key(b)


def check_install(tool: Tool, wheel: WheelInfo, file_members: int) -> dict[str, Any]:
    """What the warm-up run installed, asked of VENV_PY: a verdict and the facts behind it."""
    python = str(venv_python(tool.out_dir))
    result = subprocess.run(
        [python, "-I", "-c", _CHECK, wheel.project], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        tail = (result.stderr.strip().splitlines() or ["?"])[-1]
        return {"ok": False, "verdict": f"FAIL: metadata check failed: {tail}"}
    facts = json.loads(result.stdout)
    patched = tool.name == "wheelpatch"
    version = wheel.new_version if patched else wheel.version
    requires = (
        [r for r in wheel.requires_dist if not bench_patch._is_removed(r, REMOVE)]
        if patched
        else list(wheel.requires_dist)
    )
    problems = []
    infos = facts["dist_infos"]
    if len(infos) != 1 or not infos[0].endswith(f"-{version}.dist-info"):
        problems.append(f".dist-info {infos}, expected one for {version}")
    if facts["version"] != version:
        problems.append(f"Version {facts['version']}, expected {version}")
    if not _same_requirements(facts["requires"], requires):
        problems.append(f"Requires-Dist {facts['requires']}, expected {requires}")
    if facts["n_missing"]:
        problems.append(f"{facts['n_missing']} RECORD files missing, e.g. {facts['missing']}")
    if facts["files"] < file_members:
        problems.append(f"RECORD lists {facts['files']} files, the wheel has {file_members}")
    wrong = {n: s for n, s in facts["scripts"].items() if s != f"#!{python}"}
    if wrong and tool.name != "unzip":  # unzip makes no scripts
        problems.append(f"scripts not pointing at VENV_PY: {wrong}")
    top = bench_patch._canonical(wheel.project).replace("-", "_")
    imported = subprocess.run(
        [python, "-I", "-c", _IMPORT, top], capture_output=True, text=True, check=False
    )
    if imported.returncode == 0:
        import_text = f"import {top} OK"
    else:
        last = (imported.stderr.strip().splitlines() or [f"exit {imported.returncode}"])[-1]
        import_text = f"import {top}: {last}"
        if "No module named" not in last or f"'{top}'" in last:
            problems.append(import_text)
    scripts = ", ".join(facts["scripts"]) or "none"
    if tool.name == "unzip":
        scripts = "not made (unzip)"
    verdict = (
        f"{'FAIL: ' + '; '.join(problems) if problems else 'OK'} -- {infos[0] if infos else '-'},"
        f" {facts['files']:,} RECORD files present, Requires-Dist "
        f"{'patched' if patched else 'original'} ({len(facts['requires'])}), scripts {scripts}, "
        f"INSTALLER {facts['installer'] or '-'}; {import_text}"
    )
    return {"ok": not problems, "verdict": verdict, **facts, "import": import_text}


def warm_up_and_verify(
    tools: list[Tool], wheel: WheelInfo, file_members: int, work: Path
) -> dict[str, Any]:
    bench_patch._log("  warm-up (untimed) and install check:")
    checks: dict[str, Any] = {}
    for tool in tools:
        if run_once(tool, work, keep=True) is None:
            checks[tool.name] = {"ok": False, "verdict": "FAIL: the warm-up run failed"}
            continue
        try:
            checks[tool.name] = check_install(tool, wheel, file_members)
        finally:
            remove_venv(tool.out_dir, work)
        bench_patch._log(f"    {tool.name:<10} {checks[tool.name]['verdict']}")
    return checks


# --------------------------------------------------------------------------- reporting


def assess(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    ratio = bench_patch._ratio
    vs_installer = ratio(results, "wheelpatch", "installer")
    vs_pip = ratio(results, "wheelpatch", "pip")

    def verdict(value: float | None, target: float) -> str:
        return "n/a" if value is None else ("PASS" if value <= target else "MISS")

    return {
        "wheelpatch_vs_installer": vs_installer,
        "wheelpatch_vs_pip": vs_pip,
        "wheelpatch_vs_uv": ratio(results, "wheelpatch", "uv"),
        "wheelpatch_vs_unzip": ratio(results, "wheelpatch", "unzip"),
        "targets": {
            "time_vs_installer": verdict(vs_installer, TARGET_VS_INSTALLER),
            "time_vs_pip": verdict(vs_pip, TARGET_VS_PIP),
        },
    }


def print_report(
    wheel: WheelInfo,
    unpacked: int,
    tools: list[Tool],
    checks: dict[str, Any],
    results: dict[str, dict[str, Any]],
    verdict: dict[str, Any],
) -> None:
    removed = len(wheel.requires_dist) - sum(
        not bench_patch._is_removed(r, REMOVE) for r in wheel.requires_dist
    )
    print(
        f"\n{wheel.path.name}  [{wheel.kind}; {wheel.size / 1e6:.1f} MB, "
        f"{unpacked / 1e6:.1f} MB unpacked, {wheel.members:,} members; wheelpatch installs "
        f"{wheel.new_version} ({removed} Requires-Dist removed), the others {wheel.version}]"
    )
    for tool in tools:
        print(f"  $ {shlex.join(_shown_argv(tool.argv))}")
    for name, check in checks.items():
        print(f"  check {name:<10} {check['verdict']}")
    fmt = bench_patch._fmt
    print(
        f"  {'tool':<12} {'runs':>4} {'median s':>9} {'min s':>8} {'max s':>8} "
        f"{'RSS MiB (med)':>13} {'RSS MiB (max)':>13}"
    )
    for name, r in results.items():
        if not r["runs"]:
            print(f"  {name:<12} {0:>4}  failed: {(r['error'] or '').splitlines()[0]}")
            continue
        print(
            f"  {name:<12} {r['runs']:>4} {r['median_s']:>9.3f} {r['min_s']:>8.3f} "
            f"{r['max_s']:>8.3f} {fmt(r.get('median_rss_mib'), '13.1f')} "
            f"{fmt(r.get('max_rss_mib'), '13.1f')}"
        )
    targets = verdict["targets"]
    line = bench_patch._target_line
    print(
        line(
            "wheelpatch / installer time",
            verdict["wheelpatch_vs_installer"],
            "x",
            f"target <= {TARGET_VS_INSTALLER}x",
            targets["time_vs_installer"],
        )
    )
    print(
        line(
            "wheelpatch / pip time",
            verdict["wheelpatch_vs_pip"],
            "x",
            f"target <= {TARGET_VS_PIP}x",
            targets["time_vs_pip"],
        )
    )
    print(line("wheelpatch / uv time", verdict["wheelpatch_vs_uv"], "x", "(no target)", ""))
    if "unzip" in results:
        unzip = verdict["wheelpatch_vs_unzip"]
        print(line("wheelpatch / unzip time", unzip, "x", "(unzip: the floor)", ""))


def _shown_argv(argv: Sequence[str]) -> list[str]:
    """The command as printed: the installer script and its scheme JSON abbreviated."""
    shown = list(argv)
    if len(shown) > 3 and shown[1] == "-c" and shown[2] == _INSTALLER:
        shown[2:4] = ["INSTALLER_SCRIPT", "SCHEME_JSON"]
    return shown


def _archive_stats(path: Path) -> tuple[int, int]:
    """(uncompressed bytes, file members: directory entries left out)."""
    with zipfile.ZipFile(path) as archive:
        files = [info for info in archive.infolist() if not info.is_dir()]
    return sum(info.file_size for info in files), len(files)


def source_state() -> str:
    """The wheelpatch source measured: its commit, and whether the work tree has changes."""
    root = Path(__file__).resolve().parent.parent
    try:
        result = subprocess.run(
            ["git", "-C", str(root), "describe", "--always", "--dirty", "--tags"],
            capture_output=True,
            text=True,
            check=False,
        )
        changed = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--", "src"],
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError:
        return "unknown (no git)"
    files = [line[3:] for line in changed.stdout.splitlines()]
    tail = f"; uncommitted changes in {', '.join(files)}" if files else ""
    return (result.stdout.strip() or "unknown") + tail


def machine() -> dict[str, Any]:
    info = bench_patch.machine()
    for name in ("editwheel", "wheel"):
        info.pop(name, None)
    for name, argv in (
        ("installer", [sys.executable, "-c", "import installer; print(installer.__version__)"]),
        ("pip", [sys.executable, "-m", "pip", "--version"]),
        ("uv", [bench_patch._find_exe("uv") or "uv", "--version"]),
    ):
        try:
            result = subprocess.run(argv, capture_output=True, text=True, check=False)
        except OSError:
            continue
        if result.returncode == 0:
            info[name] = result.stdout.strip().split(" from ")[0]
    return info


# --------------------------------------------------------------------------- main


def _tool_list(value: str) -> list[str]:
    names = [n.strip() for n in value.split(",") if n.strip()]
    unknown = [n for n in names if n not in TOOLS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown tool(s) {unknown}; choose from {TOOLS}")
    return names


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Time wheelpatch-install against installer, pip and uv on large wheels.",
    )
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per tool (default 5)")
    parser.add_argument(
        "--wheel",
        type=Path,
        action="append",
        default=[],
        metavar="PATH",
        help=f"a real wheel to install (repeatable; also ${bench_patch.ENV_WHEELS}); without "
        "one, the largest torch-*.whl reachable through pip's configuration is used",
    )
    parser.add_argument(
        "--no-discover",
        action="store_true",
        help="do not look for a torch wheel through pip's configuration",
    )
    parser.add_argument("--no-synthetic", action="store_true", help="skip the synthetic wheel")
    parser.add_argument(
        "--tools",
        type=_tool_list,
        action="append",
        metavar="LIST",
        help=f"comma-separated subset of {','.join(TOOLS)} (repeatable; default all)",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=bench_patch.DEFAULT_CACHE,
        metavar="DIR",
        help="where bench_patch.py keeps its synthetic wheel (default benchmarks/.cache)",
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="where the scratch venvs are made (default: the system temporary directory)",
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON too")
    return parser


def bench_wheel(
    wheel: WheelInfo, config: Path, names: Sequence[str], args: argparse.Namespace
) -> dict[str, Any]:
    bench_patch._log(f"\n== {wheel.path} ({wheel.size / 1e6:.1f} MB, {wheel.members:,} members)")
    unpacked, file_members = _archive_stats(wheel.path)
    with tempfile.TemporaryDirectory(prefix="bench-install-", dir=args.work_dir) as tmp:
        work = Path(tmp)
        tools = build_tools(wheel, work, config, names, args.repeat)
        checks = warm_up_and_verify(tools, wheel, file_members, work)
        active = [t for t in tools if t.active]
        if active:
            run_rounds(active, args.repeat, work, bench_patch._canonical(wheel.project))
    results = {t.name: bench_patch.summarize(t) for t in tools}
    verdict = assess(results)
    print_report(wheel, unpacked, tools, checks, results, verdict)
    return {
        "wheel": str(wheel.path),
        "kind": wheel.kind,
        "size": wheel.size,
        "unpacked": unpacked,
        "members": wheel.members,
        "version": wheel.version,
        "new_version": wheel.new_version,
        "checks": checks,
        "results": results,
        **verdict,
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)  # keep the report in step with progress
    if args.repeat < 1:
        _parser().error("--repeat must be at least 1")
    names = [n for n in TOOLS if args.tools is None or any(n in group for group in args.tools)]
    wheels = bench_patch.select_wheels(args)  # before hermetic_env: it reads pip's config
    environment = hermetic_env()
    bytecode = bench_patch.prepare_child_env(args.cache_dir)
    host = machine()
    command = shlex.join(getattr(sys, "orig_argv", [sys.executable, *sys.argv]))
    print(f"command: {command}")
    print("machine: " + ", ".join(f"{k}={v}" for k, v in host.items()))
    print(f"source: {source_state()}")
    print(f"environment: {environment}")
    print(f"bytecode: {bytecode}")
    print(f"patch: local version label {LABEL!r}; remove Requires-Dist {', '.join(REMOVE)}")
    if not wheels:
        print("nothing to benchmark: no synthetic wheel and no real wheel")
        return 2
    print("wheels: " + ", ".join(f"{w.path} ({w.kind})" for w in wheels))
    print(f"tools: {', '.join(names)}")
    with tempfile.TemporaryDirectory(prefix="bench-install-config-") as tmp:
        config = Path(tmp) / "pyproject.toml"
        write_config(wheels, config)
        print("config (CFG): " + config.read_text(encoding="utf-8").replace("\n", " | "))
        reports = [bench_wheel(wheel, config, names, args) for wheel in wheels]
    if args.json:
        document = {
            "command": command,
            "machine": host,
            "source": source_state(),
            "tools": names,
            "wheels": reports,
        }
        print(json.dumps(document, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
