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

    No tool compiles bytecode, unless ``--compile``: then wheelpatch-install and pip compile as
    they do by default, uv is given ``--compile-bytecode``, and installer and unzip sit out.
    Every child runs in a hermetic environment: every
    ``PIP_*`` and ``UV_*`` variable is dropped, then ``PIP_CONFIG_FILE=/dev/null``,
    ``PIP_DISABLE_PIP_VERSION_CHECK=1``, ``UV_NO_CONFIG=1`` and ``UV_LINK_MODE=copy`` are set (and
    ``VIRTUAL_ENV`` unset); the Python tools cache their own bytecode as in ``bench_patch.py``.

    Each command runs through ``harness.py``'s launcher, which times it and reaps it with
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
    ``bench_patch.py``'s: the synthetic ``bigdemo-1.0-py3-none-any.whl`` (>= 500 MB, > 10,000
    members, ``synthetic.py``, cached in ``--cache-dir``), and real wheels from ``--wheel PATH`` /
    ``$WHEELPATCH_BENCH_WHEEL``, else the largest ``torch-*.whl`` found through pip's
    configuration. The one CFG has an override for ``torch``, for ``bigdemo`` and for the project
    of every other wheel given, so each wheel is patched.

Targets
    ``wheelpatch`` at most 1.0x ``uv``'s median time (``uv pip install --no-cache --offline`` of
    the unpatched wheel), 1.0x ``installer``'s and 0.6x ``pip``'s, peak RSS at most 100 MiB; with
    ``--compile``, the ratios to pip and uv with no target. A missed target prints ``MISS``; the
    exit status is still 0 (this is a report, not a test).

Run (from the repository root, in an environment with wheelpatch, installer, pip and uv)::

    python benchmarks/bench_install.py                         # synthetic + torch, 5 repeats
    python benchmarks/bench_install.py --repeat 3 --tools wheelpatch,installer
    python benchmarks/bench_install.py --no-synthetic --wheel path/to/big.whl --json
"""

from __future__ import annotations

import argparse
import json
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

import harness
from harness import Target, Tool, WheelInfo, canonical, find_exe, log
from synthetic import SYNTHETIC_NAME

LABEL = "stripe.2"
REMOVE = ("triton", "nvidia-*", "cuda-toolkit", "cuda-bindings")
TOOLS = ("wheelpatch", "installer", "pip", "uv", "unzip")
#: Projects that always get an override in CFG (the real torch wheel and the synthetic one).
OVERRIDDEN = ("torch", SYNTHETIC_NAME)

TARGET_VS_UV = 1.0
TARGET_VS_INSTALLER = 1.0
TARGET_VS_PIP = 0.6
TARGET_RSS_MIB = 100

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
    harness.sync()


class Installer(Tool):
    """A tool installing into its own venv, ``out_dir``: made anew before every run and deleted
    after it, never outside the run's bench-install-* folder (the venv's parent)."""

    def prepare(self) -> None:
        make_venv(self.out_dir, self.out_dir.parent)
        harness.sync()

    def finish(self) -> None:
        remove_venv(self.out_dir, self.out_dir.parent)


# --------------------------------------------------------------------------- tools


def write_config(wheels: Sequence[WheelInfo], path: Path) -> None:
    projects = dict.fromkeys([*OVERRIDDEN, *(canonical(w.project) for w in wheels)])
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
    wheel: WheelInfo,
    work: Path,
    config: Path,
    names: Sequence[str],
    repeat: int,
    compile_bytecode: bool = False,
) -> list[Tool]:
    tools: list[Tool] = []
    for name in names:
        venv = _scratch_only(work / f"venv-{name}", work)
        python = str(venv_python(venv))
        if compile_bytecode and name in ("installer", "unzip"):
            _log_skip(name, "--compile: only wheelpatch, pip and uv are compared")
            continue
        if name == "wheelpatch":
            exe = find_exe("wheelpatch-install")
            if exe is None:
                _log_skip(name, "wheelpatch-install not found")
                continue
            argv = [exe, "--config", str(config), "--python", python, "--no-deps"]
            if not compile_bytecode:
                argv.append("--no-compile")
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
            argv += (
                ["--no-deps", "--no-index"]
                if compile_bytecode
                else ["--no-deps", "--no-compile", "--no-index"]
            )
        elif name == "uv":
            exe = find_exe("uv")
            if exe is None:
                _log_skip(name, "uv not found (pip install uv)")
                continue
            argv = [exe, "pip", "install", "--no-deps", "--no-cache", "--offline"]
            argv += ["--python", python, *(["--compile-bytecode"] if compile_bytecode else [])]
        else:
            exe = shutil.which("unzip")
            if exe is None:
                _log_skip(name, "unzip not found")
                continue
            make_venv(venv, work)  # to ask it for its site-packages, once
            site = json.loads(_scheme_of(venv_python(venv)))["platlib"]
            argv = [exe, "-q", "-o", str(wheel.path), "-d", site]
            tools.append(Installer(name, argv, venv, repeat))
            continue
        tools.append(Installer(name, [*argv, str(wheel.path)], venv, repeat))
    return tools


def _log_skip(name: str, why: str) -> None:
    log(f"  {name}: skipped ({why})")


def _importable(module: str) -> bool:
    code = f"import {module}"
    return (
        subprocess.run([sys.executable, "-c", code], capture_output=True, check=False).returncode
        == 0
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
    version = wheel.new_version(LABEL) if patched else wheel.version
    requires = list(wheel.kept_requires(REMOVE) if patched else wheel.requires_dist)
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
    top = canonical(wheel.project).replace("-", "_")
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


# --------------------------------------------------------------------------- reporting


def targets(results: dict[str, dict[str, Any]], compile_bytecode: bool = False) -> list[Target]:
    def versus(peer: str, **target: Any) -> Target:
        return harness.time_target(results, "wheelpatch", peer, **target)

    rss = harness.rss_target(
        results, "wheelpatch", "wheelpatch peak RSS (max run)", limit=TARGET_RSS_MIB, goal="rss"
    )
    if compile_bytecode:  # issue 14: compared, with no target
        return [versus("pip", note="(no target)"), versus("uv", note="(no target)"), rss]
    return [
        versus("uv", limit=TARGET_VS_UV, goal="time_vs_uv"),
        versus("installer", limit=TARGET_VS_INSTALLER, goal="time_vs_installer"),
        versus("pip", limit=TARGET_VS_PIP, goal="time_vs_pip"),
        rss,
        versus("unzip", note="(unzip: the floor)"),
    ]


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


# --------------------------------------------------------------------------- main


def _tool_list(value: str) -> list[str]:
    names = [n.strip() for n in value.split(",") if n.strip()]
    unknown = [n for n in names if n not in TOOLS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown tool(s) {unknown}; choose from {TOOLS}")
    return names


def _parser() -> argparse.ArgumentParser:
    parser = harness.base_parser(
        "Time wheelpatch-install against installer, pip and uv on large wheels.",
        wheels="install",
    )
    parser.add_argument(
        "--tools",
        type=_tool_list,
        action="append",
        metavar="LIST",
        help=f"comma-separated subset of {','.join(TOOLS)} (repeatable; default all)",
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="where the scratch venvs are made (default: the system temporary directory)",
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        help="compile bytecode: wheelpatch-install and pip by default, uv --compile-bytecode "
        "(installer and unzip left out)",
    )
    return parser


def bench_wheel(
    wheel: WheelInfo, config: Path, names: Sequence[str], args: argparse.Namespace
) -> dict[str, Any]:
    log(f"\n== {wheel.path} ({wheel.size / 1e6:.1f} MB, {wheel.members:,} members)")
    unpacked, file_members = _archive_stats(wheel.path)
    checks: dict[str, Any] = {}

    def check(tool: Tool) -> str:
        checks[tool.name] = check_install(tool, wheel, file_members)
        return str(checks[tool.name]["verdict"])

    with tempfile.TemporaryDirectory(prefix="bench-install-", dir=args.work_dir) as tmp:
        work = Path(tmp)
        tools = build_tools(wheel, work, config, names, args.repeat, args.compile)
        label = canonical(wheel.project)
        results = harness.measure(tools, args.repeat, work, label, check, "install", width=10)
    failed = {"ok": False, "verdict": "FAIL: the warm-up run failed"}
    checks = {t.name: checks.get(t.name, failed) for t in tools}
    figures = targets(results, args.compile)
    removed = len(wheel.requires_dist) - len(wheel.kept_requires(REMOVE))
    print(
        f"\n{wheel.path.name}  [{wheel.kind}; {wheel.size / 1e6:.1f} MB, "
        f"{unpacked / 1e6:.1f} MB unpacked, {wheel.members:,} members; wheelpatch installs "
        f"{wheel.new_version(LABEL)} ({removed} Requires-Dist removed), the others "
        f"{wheel.version}]"
    )
    for tool in tools:
        print(f"  $ {shlex.join(_shown_argv(tool.argv))}")
    for name, verdict in checks.items():
        print(f"  check {name:<10} {verdict['verdict']}")
    harness.print_tools(results)
    for figure in figures:
        if figure.key != "wheelpatch_vs_unzip" or "unzip" in results:
            print(figure.line())
    return harness.wheel_report(
        wheel,
        results,
        figures,
        unpacked=unpacked,
        new_version=wheel.new_version(LABEL),
        checks=checks,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = harness.parse(_parser(), argv)
    names = [n for n in TOOLS if args.tools is None or any(n in group for group in args.tools)]
    wheels = harness.select_wheels(args)  # before hermetic_env: it reads pip's config
    environment = harness.hermetic_env(
        prefixes=("PIP_", "UV_"),
        names=("VIRTUAL_ENV",),
        fixed={"UV_NO_CONFIG": "1", "UV_LINK_MODE": "copy"},
    )
    bytecode = harness.bytecode_env(args.cache_dir)
    host = harness.machine(["wheelpatch", "installer", "pip", "uv"])
    command = harness.print_context(
        host,
        source=harness.source_state(),
        environment=environment,
        bytecode=bytecode,
        patch=f"local version label {LABEL!r}; remove Requires-Dist {', '.join(REMOVE)}",
    )
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
            "source": harness.source_state(),
            "tools": names,
            "wheels": reports,
        }
        print(json.dumps(document, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
