"""The ``wheelpatch`` command: a thin adapter that parses arguments, calls the library and maps
errors to exit codes.

Exit codes: 0 success; 1 a wheel was refused or failed verification (or, with --strict, an
override entry matched nothing); 2 usage or configuration error; 3 the output could not be
written; 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TextIO

from . import __version__
from .config import Config, load_config
from .digest import FileDigest
from .errors import (
    EXIT_CONFIG,
    EXIT_INPUT,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_OUTPUT,
    InvalidWheel,
    OutputError,
    WheelpatchError,
)
from .plan import PatchPlan, Unchanged, plan_patch
from .wheel import read_wheel
from .writer import StagedWheel, stage_wheel

__all__ = ["main"]

_EPILOG = """\
exit codes:
  0    success
  1    a wheel was refused or failed verification (with --strict: an override entry matched
       nothing)
  2    usage or configuration error
  3    the output could not be written (exists without --force, disk full, read-only)
  130  interrupted
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # one line, exit code 2, like every other error
        self.exit(EXIT_CONFIG, f"{self.prog}: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="wheelpatch",
        description="Patch the dependency metadata and local version label of existing wheels, "
        "configured by [tool.wheelpatch] in pyproject.toml.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"wheelpatch {__version__}")
    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", required=True, parser_class=_Parser
    )

    patch = commands.add_parser(
        "patch",
        help="rewrite wheels with the configured overrides and local label",
        description="Rewrite each WHEEL with the override configured for its project: new local "
        "version label, edited Requires-Dist/Requires-Python, renamed .dist-info and .data, "
        "rewritten RECORD and a wheelpatch.json provenance. Unchanged members are copied as raw "
        "compressed bytes. Wheels no override applies to are reported and left alone. Nothing is "
        "written unless every wheel can be patched.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    patch.add_argument("wheels", nargs="+", metavar="WHEEL", type=Path)
    patch.add_argument(
        "--config",
        type=Path,
        metavar="PATH",
        help="pyproject.toml to read [tool.wheelpatch] from (default: the nearest "
        "one with that table, from the working directory upward)",
    )
    patch.add_argument(
        "-o",
        "--output-dir",
        type=Path,
        metavar="DIR",
        help="where patched wheels go (default: output-dir from the configuration, "
        "else the working directory); created if missing",
    )
    patch.add_argument(
        "--dry-run",
        action="store_true",
        help="print the new filename and the METADATA diff; write nothing",
    )
    patch.add_argument("--force", action="store_true", help="replace existing output files")
    patch.add_argument(
        "--strict",
        action="store_true",
        help="an override entry that matches nothing is an error, not a warning",
    )
    patch.add_argument("--json", action="store_true", help="print a JSON report on stdout")

    show = commands.add_parser(
        "show",
        help="print a wheel's or an installed distribution's requirements and provenance",
        description="Print name, version, Requires-Python, Requires-Dist and the wheelpatch "
        "provenance (if any) of a wheel file or of a distribution installed in this environment.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    show.add_argument("target", metavar="WHEEL|INSTALLED-NAME")
    show.add_argument("--json", action="store_true", help="print JSON on stdout")

    verify = commands.add_parser(
        "verify",
        help="check every CRC, RECORD hash and size, and the wheel's structure",
        description="Decompress every member (in parallel), checking its CRC-32 and its RECORD "
        "hash and size, after the structural checks patch makes. Every problem is named.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verify.add_argument("wheels", nargs="+", metavar="WHEEL", type=Path)
    verify.add_argument("--json", action="store_true", help="print a JSON report on stdout")
    return parser


def _error(message: str) -> None:
    print("error: " + message.replace("\n", " "), file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "patch":
            return _patch(args, sys.stdout)
        if args.command == "show":
            return _show(args, sys.stdout)
        return _verify(args, sys.stdout)
    except KeyboardInterrupt:
        _error("interrupted")
        return EXIT_INTERRUPTED
    except WheelpatchError as exc:
        for line in getattr(exc, "errors", None) or [str(exc)]:
            _error(line)
        return exc.exit_code
    except OSError as exc:  # a file system failure no check above foresaw: still one line
        where = f"{exc.filename}: " if exc.filename else ""
        _error(f"{where}{exc.strerror or exc}")
        return EXIT_OUTPUT


def _raise_open_file_limit(needed: int) -> None:
    """Each staged output stays open until the batch commits: allow that many files."""
    try:
        import resource  # noqa: PLC0415 - POSIX only
    except ImportError:  # pragma: no cover
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        limit = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))


def _patch(args: argparse.Namespace, out: TextIO) -> int:
    config = load_config(args.config)
    _raise_open_file_limit(2 * len(args.wheels) + 64)
    out_dir: Path = args.output_dir or config.output_dir or Path.cwd()
    # Hash each source in the background (one at a time) while wheels are read and planned.
    pool = None if args.dry_run else ThreadPoolExecutor(1, thread_name_prefix="wheelpatch-hash")
    digests: dict[int, FileDigest] = {}
    try:
        return _patch_all(args, config, out_dir, out, pool, digests)
    finally:
        for digest in digests.values():
            digest.close()
        if pool is not None:
            pool.shutdown(wait=True)


def _patch_all(
    args: argparse.Namespace,
    config: Config,
    out_dir: Path,
    out: TextIO,
    pool: ThreadPoolExecutor | None,
    digests: dict[int, FileDigest],
) -> int:
    plans: list[PatchPlan | Unchanged] = []
    failures: list[tuple[Path, WheelpatchError]] = []
    for path in args.wheels:
        if pool is not None:
            with contextlib.suppress(OSError):  # read_wheel reports the problem
                digests[len(plans)] = FileDigest(path, pool)
        try:
            plan = plan_patch(read_wheel(path), config, strict=args.strict)
        except WheelpatchError as exc:
            failures.append((path, exc))
            plan = None
        if not isinstance(plan, PatchPlan) and len(plans) in digests:
            digests.pop(len(plans)).close()
        if plan is not None:
            plans.append(plan)
    outputs: dict[str, Path] = {}
    for plan in plans:
        if isinstance(plan, PatchPlan):
            first = outputs.setdefault(plan.filename, plan.wheel.path)
            if first != plan.wheel.path:
                failures.append(
                    (
                        plan.wheel.path,
                        InvalidWheel(
                            f"{plan.wheel.filename}: would be written as {plan.filename}, "
                            f"like {first.name}; patch them in separate runs"
                        ),
                    )
                )
            for warning in plan.warnings:
                print(f"warning: {warning}", file=sys.stderr)
    if failures:
        for _, failure in failures:
            _error(str(failure))
        if args.json:
            _dump(
                out,
                [_plan_json(p, None, args.dry_run) for p in plans]
                + [{"source": str(p), "status": "error", "error": str(e)} for p, e in failures],
            )
        return max(e.exit_code for _, e in failures)
    written: dict[int, Path] = {}
    if not args.dry_run and any(isinstance(p, PatchPlan) for p in plans):
        written = _write_all(plans, out_dir, args.force, digests)
    report = [_plan_json(p, written.get(i), args.dry_run) for i, p in enumerate(plans)]
    if args.json:
        _dump(out, report)
        return EXIT_OK
    for plan, entry in zip(plans, report, strict=True):
        if isinstance(plan, Unchanged):
            print(f"{plan.wheel.filename}: unchanged ({plan.reason})", file=out)
            continue
        target = entry.get("output") or str(out_dir / plan.filename)
        verb = "would write" if args.dry_run else "->"
        print(
            f"{plan.wheel.filename} {verb} {target}: {plan.old_version} -> "
            f"{plan.new_version}; {plan.summary()}",
            file=out,
        )
        if args.dry_run:
            out.write(plan.metadata_diff())
    return EXIT_OK


def _write_all(
    plans: list[PatchPlan | Unchanged],
    out_dir: Path,
    force: bool,
    digests: dict[int, FileDigest],
) -> dict[int, Path]:
    """Stage every output, then move them all into place: a failure writes nothing."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(
            f"{out_dir}: cannot create the output directory ({exc.strerror})"
        ) from None
    staged: dict[int, StagedWheel] = {}
    done: dict[int, Path] = {}
    try:
        for index, plan in enumerate(plans):
            if isinstance(plan, PatchPlan):
                staged[index] = stage_wheel(
                    plan, out_dir, force=force, digest=digests.pop(index, None)
                )
        for index, item in list(staged.items()):
            done[index] = item.commit(force=force)
            del staged[index]
    finally:
        for item in staged.values():
            item.discard()
    return done


def _plan_json(plan: PatchPlan | Unchanged, output: Path | None, dry_run: bool) -> dict[str, Any]:
    if isinstance(plan, Unchanged):
        return {"source": str(plan.wheel.path), "status": "unchanged", "reason": plan.reason}
    return {
        "source": str(plan.wheel.path),
        "status": "would-patch" if dry_run else "patched",
        "output": str(output) if output else None,
        "filename": plan.filename,
        "old_version": str(plan.old_version),
        "new_version": str(plan.new_version),
        "changes": [
            {
                "field": c.field,
                "action": c.action,
                "before": c.before,
                "after": c.after,
                "rule": c.rule,
            }
            for c in plan.changes
        ],
        "dropped": list(plan.dropped),
        "warnings": list(plan.warnings),
    }


def _dump(out: TextIO, data: object) -> None:
    json.dump(data, out, indent=2)
    out.write("\n")


def _show(args: argparse.Namespace, out: TextIO) -> int:
    from .show import describe_target  # noqa: PLC0415 - only this command needs it

    info = describe_target(args.target)
    if args.json:
        _dump(out, info)
        return EXIT_OK
    print(f"Name: {info['name']}", file=out)
    print(f"Version: {info['version']}", file=out)
    if info["requires_python"]:
        print(f"Requires-Python: {info['requires_python']}", file=out)
    print("Requires-Dist:" if info["requires_dist"] else "Requires-Dist: (none)", file=out)
    for requirement in info["requires_dist"]:
        print(f"  {requirement}", file=out)
    provenance = info["provenance"]
    if provenance is None:
        print("Provenance: none (not patched by wheelpatch)", file=out)
    else:
        source = provenance.get("source", {})
        print(
            f"Provenance: patched by wheelpatch {provenance.get('wheelpatch')} from "
            f"{source.get('filename')} (sha256 {source.get('sha256')})",
            file=out,
        )
        for change in provenance.get("changes", []):
            print(
                f"  {change.get('action')} {change.get('field')}: {change.get('before')} -> "
                f"{change.get('after')} [{change.get('rule')}]",
                file=out,
            )
    return EXIT_OK


def _verify(args: argparse.Namespace, out: TextIO) -> int:
    from .verify import verify_wheel  # noqa: PLC0415 - only this command needs it

    reports = [verify_wheel(path) for path in args.wheels]
    if args.json:
        _dump(out, [r.as_json() for r in reports])
    else:
        for report in reports:
            if report.ok:
                print(f"{report.wheel}: OK ({report.files} files checked)", file=out)
            for problem in report.problems:
                _error(problem)
    return EXIT_OK if all(r.ok for r in reports) else EXIT_INPUT
