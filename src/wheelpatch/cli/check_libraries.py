"""``wheelpatch check libraries``: a thin adapter over :mod:`wheelpatch.check.native`.

``register(subparsers)`` adds the ``libraries`` sub-command to the ``check`` command's
sub-parsers (its handler is :func:`run`, set as the parser's ``check_run`` default, as
``wheelpatch check`` calls every check).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path
from typing import Any, TextIO

from ..errors import (
    EXIT_MISSING_LIBRARIES,
    EXIT_OK,
    EXIT_OUTPUT,
    ConfigError,
)
from .terminal import dump, json_on_error

__all__ = ["register", "run"]

_DESCRIPTION = """\
Check that the native libraries the ELF files of each WHEEL need (their DT_NEEDED entries) will
be found once it is installed patched with the configured overrides: through the file's own
RUNPATH (or RPATH), $ORIGIN being where the file will be installed; among the other wheels given
and, with --python, the distributions installed in that environment; then in the system's
default directories and ld.so.cache. Each library that resolves nowhere is reported with the
file that needs it, where it was looked for, and the requirement the overrides removed that
would have provided it. With --python and no WHEEL, every installed distribution is checked
against that environment.

Only ELF (Linux) files are checked: macOS Mach-O files (@rpath, @loader_path) and Windows DLLs
are counted and named as not checked. LD_LIBRARY_PATH is not used: what the installation
provides is checked, not one shell's setting.
"""

_EPILOG = f"""\
exit codes:
  0    no library is missing
  1    a wheel was refused (broken, hostile, or an ELF file that cannot be read)
  2    usage or configuration error (or --python is not a working interpreter)
  {EXIT_OUTPUT}    the report could not be written, or a file could not be read (one line)
  {EXIT_MISSING_LIBRARIES}    a needed library resolves nowhere (one line each)
  130  interrupted
"""


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``libraries`` to the ``check`` command's sub-parsers; returns its parser."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "libraries",
        help="native libraries the wheels (or an environment) would leave unresolved",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("wheels", nargs="*", metavar="WHEEL", type=Path)
    parser.add_argument(
        "--config",
        type=Path,
        metavar="PATH",
        help="pyproject.toml to read [tool.wheelpatch] from (default: the nearest one with that "
        "table, from the working directory upward)",
    )
    parser.add_argument(
        "--python",
        metavar="PY",
        help="the environment the wheels go into (its distributions count as installed); "
        "with no WHEEL, check that environment's own distributions",
    )
    parser.add_argument(
        "--system-library-dir",
        action="append",
        type=Path,
        metavar="DIR",
        help="look for system libraries in DIR (repeatable) instead of the default directories "
        "and ld.so.cache",
    )
    parser.add_argument("--json", action="store_true", help="print a JSON report on stdout")
    parser.set_defaults(check_run=run)
    return parser


def run(args: argparse.Namespace, out: TextIO) -> int:
    """Run the check, its report on ``out``; ``wheelpatch``'s main turns errors into lines."""
    if args.json:
        about = {"wheels": [str(w) for w in args.wheels], "python": args.python}
        return json_on_error(_run, args, out, about)
    return _run(args, out)


def _run(args: argparse.Namespace, out: TextIO) -> int:
    from ..check.elf import machine_of  # noqa: PLC0415
    from ..check.native import (  # noqa: PLC0415
        check_files,
        installed_objects,
        member_paths,
        planned_exists,
        removed_requirements,
        system_search,
        wheel_objects,
    )
    from ..install.environment import probe  # noqa: PLC0415
    from ..patch.plan import PatchPlan, plan_patch  # noqa: PLC0415
    from ..rules.config import load_config  # noqa: PLC0415
    from ..wheel.source_wheel import read_wheel  # noqa: PLC0415

    if not args.wheels and args.python is None:
        raise ConfigError("give at least one WHEEL, or --python PY to check an environment")
    for directory in args.system_library_dir or ():
        if not directory.is_dir():
            raise ConfigError(f"--system-library-dir {directory}: no such directory")
    env = probe(args.python)
    target = machine_of(Path(env.interpreter).resolve())
    if target is None:
        raise ConfigError(
            f"--python {env.interpreter}: not an ELF executable, so there is no Linux loader to "
            "check against (only ELF files are checked)"
        )
    site_dirs = [d.as_posix() for d in env.site_dirs]
    system = system_search(target, args.system_library_dir, Path(env.interpreter))
    checked = []
    if args.wheels:
        config = load_config(args.config)
        if args.config is None:
            print(f"wheelpatch: using configuration {config.path}", file=sys.stderr)
        wheels = [read_wheel(path) for path in args.wheels]
        planned: set[str] = set()
        plans = []
        for wheel in wheels:
            plan = plan_patch(wheel, config)
            paths = member_paths(wheel, env.scheme(wheel.name))
            planned.update(paths.values())
            plans.append((wheel, plan, paths))
        if args.python is not None:
            given = {wheel.name for wheel in wheels}
            for dist in env.distributions():
                if dist.name not in given:
                    planned.update(p.as_posix() for p in dist.files())
        for wheel, plan, paths in plans:
            removed = removed_requirements(plan.changes) if isinstance(plan, PatchPlan) else ()
            version = plan.new_version if isinstance(plan, PatchPlan) else wheel.version
            files = wheel_objects(wheel, paths, target, f"{wheel.name} {version}")
            checked.append(dataclasses.replace(files, removed=removed))
        exists = planned_exists(planned, site_dirs)
    else:
        for dist in env.distributions():
            provenance = dist.provenance() or {}
            changes = provenance.get("changes")
            removed = removed_requirements(changes if isinstance(changes, list) else [])
            files = installed_objects(
                dist.files(), dist.site, target, f"{dist.name} {dist.version}"
            )
            checked.append(dataclasses.replace(files, removed=removed))
        exists = os.path.exists
    report = check_files(checked, exists, system, site_dirs)
    if args.json:
        dump(out, {**report.as_json(), "exit_code": _code(report)})
        return _code(report)
    for note in report.notes:
        print(f"note: {note}", file=sys.stderr)
    for files in report.checked:
        count = sum(1 for m, _ in report.missing if m.needed_by in files.objects)
        state = f"{count} missing" if count else "nothing missing"
        print(f"{files.source}: {len(files.objects)} ELF file(s) checked, {state}", file=out)
    for line in report.lines:
        print(f"missing {line}", file=out)
    return _code(report)


def _code(report: Any) -> int:
    return EXIT_MISSING_LIBRARIES if report.missing else EXIT_OK
