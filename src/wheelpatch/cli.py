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
import os
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TextIO

from . import __version__
from .digest import FileDigest
from .errors import (
    EXIT_CONFIG,
    EXIT_INPUT,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_OUTPUT,
    WheelpatchError,
)

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
    patch.add_argument(
        "--verify",
        action="store_true",
        help="before writing, decompress every member and check its CRC-32, size and RECORD "
        "hash (by default only the structure and RECORD coverage are checked, since members "
        "are copied without being decompressed)",
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
    except BrokenPipeError:  # `wheelpatch ... | head`: the reader left; say nothing more
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
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
    _raise_open_file_limit(2 * len(args.wheels) + 64)
    # Hash every source in the background (one at a time) from the very start: the provenance
    # needs it, and it then runs while the rest of wheelpatch loads and the wheels are planned.
    pool = None if args.dry_run else ThreadPoolExecutor(1, thread_name_prefix="wheelpatch-hash")
    digests: dict[int, FileDigest] = {}
    # The hashing thread needs the GIL between chunks while this thread plans in Python: hand it
    # over within 0.5 ms rather than the default 5 ms, or hashing crawls during planning.
    interval = sys.getswitchinterval()
    sys.setswitchinterval(0.0005)
    try:
        if pool is not None:
            for index, path in enumerate(args.wheels):
                with contextlib.suppress(OSError):  # reading the wheel reports the problem
                    digests[index] = FileDigest(path, pool)
        return _patch_all(args, out, digests)
    finally:
        for digest in digests.values():
            digest.close()
        if pool is not None:
            pool.shutdown(wait=True)
        sys.setswitchinterval(interval)


def _patch_all(args: argparse.Namespace, out: TextIO, digests: dict[int, FileDigest]) -> int:
    # Imported here, once the hashing has started.
    from .batch import plan_batch, result_json, write_batch  # noqa: PLC0415
    from .config import load_config  # noqa: PLC0415
    from .plan import Unchanged  # noqa: PLC0415

    config = load_config(args.config)
    out_dir: Path = args.output_dir or config.output_dir or Path.cwd()
    batch = plan_batch(args.wheels, config, strict=args.strict, verify=args.verify, digests=digests)
    for warning in batch.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if batch.failures:
        for failure in batch.failures.values():
            _error(str(failure))
        if args.json:
            report = [result_json(p, None, args.dry_run) for p in batch.plans.values()]
            report += [
                {"source": str(args.wheels[i]), "status": "error", "error": str(e)}
                for i, e in batch.failures.items()
            ]
            _dump(out, report)
        return max(e.exit_code for e in batch.failures.values())
    written: dict[int, Path] = {}
    if not args.dry_run and batch.to_write:
        written = write_batch(batch, out_dir, force=args.force, digests=digests)
    if args.json:
        _dump(out, [result_json(p, written.get(i), args.dry_run) for i, p in batch.plans.items()])
        return EXIT_OK
    for index, plan in batch.plans.items():
        if isinstance(plan, Unchanged):
            print(f"{plan.wheel.filename}: unchanged ({plan.reason})", file=out)
            continue
        target = written.get(index) or out_dir / plan.filename
        verb = "would write" if args.dry_run else "->"
        print(
            f"{plan.wheel.filename} {verb} {target}: {plan.old_version} -> "
            f"{plan.new_version}; {plan.summary()}",
            file=out,
        )
        if args.dry_run:
            out.write(plan.metadata_diff())
    return EXIT_OK


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
    elif not isinstance(provenance, dict):
        print("Provenance: unreadable (wheelpatch.json is not a JSON object)", file=out)
    else:
        source = provenance.get("source")
        build = provenance.get("build")
        if isinstance(source, dict):
            origin = f"patched by wheelpatch {provenance.get('wheelpatch')} from "
            origin += f"{source.get('filename')} (sha256 {source.get('sha256')})"
        elif isinstance(build, dict):
            origin = f"built by {build.get('backend')} {build.get('hatchling')} with the "
            origin += f"wheelpatch {provenance.get('wheelpatch')} plugin"
        else:
            origin = f"wheelpatch {provenance.get('wheelpatch')}"
        git = provenance.get("git")
        if isinstance(git, dict):
            origin += f"; git {git.get('describe')}" + (" (dirty)" if git.get("dirty") else "")
        print(f"Provenance: {origin}", file=out)
        changes = provenance.get("changes")
        for change in changes if isinstance(changes, list) else []:
            if not isinstance(change, dict):
                continue
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
