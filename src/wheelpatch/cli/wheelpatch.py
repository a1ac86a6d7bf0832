"""The ``wheelpatch`` command: a thin adapter that parses arguments, calls the library and maps
errors to exit codes.

Exit codes: 0 success; 1 a wheel was refused or failed verification (or, with --strict, an
override entry matched nothing); 2 usage or configuration error; 3 the output could not be
written; 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from .. import __version__
from ..errors import (
    EXIT_INPUT,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_OUTPUT,
    ConfigError,
    InvalidWheel,
    WheelpatchError,
)
from ..wheel import hash_child
from ..wheel.digest import FileDigest, HashProcess
from . import check, serve
from .terminal import Parser, dump, error, json_on_error, message, standard_streams

if TYPE_CHECKING:
    from ..patch.batch import Batch

__all__ = ["main"]

_EPILOG = """\
exit codes:
  0    success
  1    a wheel was refused or failed verification (with --strict: an override entry or table
       matched nothing)
  2    usage or configuration error
  3    the output could not be written (exists without --force, disk full, read-only)
  130  interrupted
"""
_SHOW_EPILOG = """\
exit codes:
  0    success
  1    the wheel was refused, or no such distribution is installed
  2    usage error (or --python is not a working interpreter)
  130  interrupted
"""
_INDEX_EPILOG = """\
exit codes:
  0    success
  1    a file was refused (a broken wheel, two files for one distribution)
  2    usage error (no such directory)
  3    SITE could not be written
  130  interrupted
"""
_VERIFY_EPILOG = """\
exit codes:
  0    every wheel passed
  1    a wheel was refused or failed verification
  2    usage error
  130  interrupted
"""


def _parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="wheelpatch",
        description="Patch the dependency metadata and local version label of existing wheels, "
        "configured by [tool.wheelpatch] in pyproject.toml.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"wheelpatch {__version__}")
    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", required=True, parser_class=Parser
    )

    patch = commands.add_parser(
        "patch",
        help="rewrite wheels with the configured overrides and local label",
        description="Rewrite each WHEEL with the override configured for its project: new local "
        "version label, edited Requires-Dist/Requires-Python, renamed .dist-info and .data, "
        "rewritten RECORD, a wheelpatch.json provenance and a CycloneDX SBOM "
        "(.dist-info/sboms/wheelpatch.cdx.json). A wheel wheelpatch patched before keeps its "
        "history: the earlier records are carried on, back to the official file's sha256. "
        "Unchanged members (SBOMs the wheel ships included) are copied as raw compressed bytes. "
        "Wheels no override applies to are reported and left alone. Nothing is written unless "
        "every wheel can be patched.",
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
        help="an override entry that matches nothing, or an override table that matches no "
        "wheel given, is an error, not a warning",
    )
    patch.add_argument(
        "--verify",
        action="store_true",
        help="before writing, decompress every member and check its CRC-32, size and RECORD "
        "hash (by default only the structure and RECORD coverage are checked, since members "
        "are copied without being decompressed)",
    )
    patch.add_argument("--json", action="store_true", help="print a JSON report on stdout")
    patch.add_argument(
        "--index",
        type=Path,
        metavar="SITE",
        help="then add the patched wheels to the simple repository SITE (see 'wheelpatch index'; "
        "what SITE already lists stays)",
    )

    show = commands.add_parser(
        "show",
        help="print a wheel's or an installed distribution's requirements and provenance",
        description="Print name, version, Requires-Python, Requires-Dist and the wheelpatch "
        "provenance (if any) of a wheel file or of a distribution installed in an environment: "
        "the one of --python, else the active virtual environment ($VIRTUAL_ENV), else the one "
        "wheelpatch runs in. The pedigree follows: the upstream file and its sha256, then every "
        "patch (or build) oldest first, from wheelpatch.json and its history; then the SBOMs in "
        ".dist-info/sboms/. --json gives all of it (keys provenance, pedigree, sboms).",
        epilog=_SHOW_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    show.add_argument("target", metavar="WHEEL|INSTALLED-NAME")
    show.add_argument(
        "--python",
        metavar="PY",
        help="look up INSTALLED-NAME in that interpreter's environment",
    )
    show.add_argument("--json", action="store_true", help="print JSON on stdout")

    verify = commands.add_parser(
        "verify",
        help="check every CRC, RECORD hash and size, and the wheel's structure",
        description="Decompress every member (in parallel), checking its CRC-32 and its RECORD "
        "hash and size, after the structural checks patch makes. Every problem is named.",
        epilog=_VERIFY_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verify.add_argument("wheels", nargs="+", metavar="WHEEL", type=Path)
    verify.add_argument("--json", action="store_true", help="print a JSON report on stdout")

    index = commands.add_parser(
        "index",
        help="write a static simple repository (PEP 503/691/658) of wheels and sdists",
        description="Write SITE as a simple repository of every wheel and sdist in the "
        "directories (or files) given: SITE/simple/ holds the HTML (PEP 503) and JSON (PEP 691) "
        "pages, SITE/files/ the files with each wheel's METADATA beside it (PEP 658), so that "
        "pip, uv, Poetry and PDM resolve without downloading wheels. Serve SITE from any web "
        "server or object store. Re-indexing reads only files it does not know yet, and "
        "removes what is no longer given.",
        epilog=_INDEX_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    index.add_argument("inputs", nargs="+", metavar="DIR", type=Path)
    index.add_argument(
        "-o", "--output", required=True, type=Path, metavar="SITE", help="the site to write"
    )
    _index_options(index)
    index.add_argument(
        "--link",
        action="store_true",
        help="hard-link the files into SITE instead of copying them (fastest; only for inputs "
        "that are replaced, never written into: a write into an input would change a served "
        "file under its old hash)",
    )
    index.add_argument("--json", action="store_true", help="print a JSON report on stdout")
    serve.add_commands(commands)
    check.add_commands(commands)
    return parser


def _index_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--base-url",
        metavar="URL",
        help="link the files under URL (where SITE/files/ is served, e.g. an object store) "
        "instead of relatively",
    )
    parser.add_argument(
        "--yank",
        action="append",
        default=[],
        metavar="FILE[=REASON]",
        help="list FILE as yanked (PEP 592), with an optional reason (repeatable)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    with standard_streams() as out:
        return _main(args, out)


def _main(args: argparse.Namespace, out: TextIO) -> int:
    try:
        if args.command == "show" and args.json:
            return json_on_error(_show, args, out, {"target": args.target})
        if args.command == "patch":
            return _patch(args, out)
        if args.command == "show":
            return _show(args, out)
        if args.command == "index":
            return _index(args, out)
        if args.command in ("serve", "warm"):
            return serve.run(args, out)
        if args.command == "check":
            return check.run(args, out)
        return _verify(args, out)
    except KeyboardInterrupt:
        error("interrupted")
        return EXIT_INTERRUPTED
    except WheelpatchError as exc:
        for line in getattr(exc, "errors", None) or [str(exc)]:
            error(line)
        return exc.exit_code
    except OSError as exc:  # a file system failure no check above foresaw: still one line
        where = f"{exc.filename}: " if exc.filename else ""
        error(f"{where}{exc.strerror or exc}")
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
    pool = None if args.dry_run else HashProcess(hash_child.adopt())
    digests: dict[int, FileDigest] = {}
    report = _PatchReport(args.wheels, args.dry_run)
    try:
        if pool is not None:
            for index, path in enumerate(args.wheels):
                with contextlib.suppress(OSError):  # reading the wheel reports the problem
                    digests[index] = FileDigest(path, pool)
        return _patch_all(args, out, digests, report)
    except (WheelpatchError, OSError, KeyboardInterrupt) as exc:
        if args.json:
            dump(out, report.failed(exc))
        raise
    finally:
        for digest in digests.values():
            digest.close()
        if pool is not None:
            pool.shutdown()


class _PatchReport:
    """What ``patch --json`` says, whichever way the command ends: one entry per wheel given."""

    def __init__(self, wheels: Sequence[Path], dry_run: bool) -> None:
        self.wheels = wheels
        self.dry_run = dry_run
        self.batch: Batch | None = None

    def done(self) -> list[dict[str, Any]]:
        return self.failed(None)

    def failed(self, error: BaseException | None) -> list[dict[str, Any]]:
        from ..patch.batch import result_json  # noqa: PLC0415

        batch = self.batch
        failures = batch.failures if batch is not None else {}
        if error is None:
            reason = None
        elif isinstance(error, KeyboardInterrupt):
            reason = "not written: interrupted"
        elif failures:
            reason = "not written: another wheel failed, and a batch is written whole or not at all"
        else:
            reason = f"not written: {message(error)}"
        entries: list[dict[str, Any]] = []
        for index, path in enumerate(self.wheels):
            if index in failures:
                entries.append(
                    {"source": str(path), "status": "error", "error": str(failures[index])}
                )
            elif batch is not None and index in batch.plans:
                written = batch.written.get(index)
                entries.append(result_json(batch.plans[index], written, self.dry_run, reason))
            else:
                entries.append({"source": str(path), "status": "not-written", "reason": reason})
        return entries


def _project_names(paths: Sequence[Path]) -> list[str]:
    """The projects of the wheels given, from their file names (a refused wheel's too)."""
    from packaging.utils import InvalidWheelFilename, parse_wheel_filename  # noqa: PLC0415

    names: list[str] = []
    for path in paths:
        with contextlib.suppress(InvalidWheelFilename):
            names.append(parse_wheel_filename(path.name)[0])
    return names


def _patch_all(
    args: argparse.Namespace, out: TextIO, digests: dict[int, FileDigest], report: _PatchReport
) -> int:
    # Imported here, once the hashing has started.
    from ..patch.batch import plan_batch, write_batch  # noqa: PLC0415
    from ..patch.plan import Unchanged  # noqa: PLC0415
    from ..rules.config import load_config  # noqa: PLC0415

    config = load_config(args.config)
    if args.config is None:
        print(f"wheelpatch: using configuration {config.path}", file=sys.stderr)
    out_dir: Path = args.output_dir or config.output_dir or Path.cwd()
    batch = plan_batch(args.wheels, config, strict=args.strict, verify=args.verify, digests=digests)
    report.batch = batch
    # A table matches a wheel given or a project one of them requires (the config of a torch
    # wheelhouse has a triton table, and patching torch alone does not misspell it).
    names = _project_names(args.wheels)
    names += [n for plan in batch.plans.values() for n in plan.wheel.requirement_names()]
    unmatched = config.unmatched_overrides(names, "no wheel given")
    if args.strict and unmatched and not batch.failures:
        raise InvalidWheel("; ".join(unmatched) + " (--strict)")
    for warning in [*batch.warnings, *unmatched]:
        print(f"warning: {warning}", file=sys.stderr)
    if batch.failures:
        for failure in batch.failures.values():
            error(str(failure))
        if args.json:
            dump(out, report.failed(next(iter(batch.failures.values()))))
        return max(e.exit_code for e in batch.failures.values())
    if not args.dry_run and batch.to_write:
        try:
            write_batch(batch, out_dir, force=args.force, digests=digests)
        except WheelpatchError as exc:
            error(str(exc))
            if args.json:
                dump(out, report.failed(exc))
            return exc.exit_code
    indexed = None
    if args.index is not None and not args.dry_run:
        from ..index.site import site_files, site_lock, site_settings, write_site  # noqa: PLC0415

        outputs = list(batch.written.values())
        given = {p.name for p in outputs}
        with site_lock(args.index):
            kept = [p for p in site_files(args.index) if p.name not in given]
            inputs = sorted(kept + outputs, key=lambda p: p.name)
            # The site keeps the base URL and yanks it was written with.
            base_url, yanked = site_settings(args.index)
            indexed_names = {p.name for p in inputs}
            yanked = {name: reason for name, reason in yanked.items() if name in indexed_names}
            indexed = write_site(inputs, args.index, base_url=base_url, yanked=yanked)
    if args.json:
        dump(out, report.done())
        return EXIT_OK
    for index, plan in batch.plans.items():
        if isinstance(plan, Unchanged):
            print(f"{plan.wheel.filename}: unchanged ({plan.reason})", file=out)
            continue
        target = batch.written.get(index) or out_dir / plan.filename
        verb = "would be written as" if args.dry_run else "->"
        print(
            f"{plan.wheel.filename} {verb} {target} ({plan.old_version} -> {plan.new_version})",
            file=out,
        )
        for line in plan.change_lines():
            print(f"    {line}", file=out)
        if args.dry_run:
            out.write(plan.metadata_diff())
    if indexed is not None:
        print(
            f"{args.index}: {indexed.files} file(s) of {indexed.projects} project(s) indexed; "
            f"{len(indexed.written)} written",
            file=out,
        )
    return EXIT_OK


def _show(args: argparse.Namespace, out: TextIO) -> int:
    from ..patch.show import describe_target, pedigree_lines, printable  # noqa: PLC0415
    from ..wheel.metadata import describe_change  # noqa: PLC0415 - only this command needs them

    if args.python is None and not (args.target.endswith(".whl") or Path(args.target).is_file()):
        from ..install.environment import default_interpreter  # noqa: PLC0415

        args.python = default_interpreter()  # the active virtual environment's, as installs do
    info = describe_target(args.target, args.python)
    if args.json:
        dump(out, info)
        return EXIT_OK

    def say(text: str) -> None:  # what a wheel says is printed, never obeyed by the terminal
        print(printable(text), file=out)

    say(f"Name: {info['name']}")
    say(f"Version: {info['version']}")
    if info["requires_python"]:
        say(f"Requires-Python: {info['requires_python']}")
    say("Requires-Dist:" if info["requires_dist"] else "Requires-Dist: (none)")
    for requirement in info["requires_dist"]:
        say(f"  {requirement}")
    provenance = info["provenance"]
    if provenance is None:
        say("Provenance: none (not patched by wheelpatch)")
    elif not isinstance(provenance, dict):
        say("Provenance: unreadable (wheelpatch.json is not a JSON object)")
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
        say(f"Provenance: {origin}")
        changes = provenance.get("changes")
        for change in changes if isinstance(changes, list) else []:
            if not isinstance(change, dict):
                continue
            line = describe_change(
                str(change.get("action")),
                str(change.get("field")),
                change.get("before"),
                change.get("after"),
            )
            rule = change.get("rule")
            say(f"  {line}" + (f"  ({rule})" if rule else ""))
    for line in pedigree_lines(info["pedigree"]):
        say(line)
    if info["sboms"]:
        say(f"SBOMs: {', '.join(info['sboms'])}")
    return EXIT_OK


def _yanked(values: Sequence[str]) -> dict[str, str]:
    yanked = {}
    for value in values:
        name, _, reason = value.partition("=")
        yanked[name.strip()] = reason.strip()
    return yanked


def _index(args: argparse.Namespace, out: TextIO) -> int:
    from ..index.site import collect_inputs, site_lock, write_site  # noqa: PLC0415

    inputs = collect_inputs(args.inputs)
    yanked = _yanked(args.yank)
    unknown = sorted(set(yanked) - {p.name for p in inputs})
    if unknown:
        raise ConfigError([f"--yank {name}: no such file among those indexed" for name in unknown])
    with site_lock(args.output):
        report = write_site(
            inputs, args.output, base_url=args.base_url, yanked=yanked, link=args.link
        )
    if args.json:
        dump(out, report.as_json())
        return EXIT_OK
    print(
        f"{args.output}: {report.files} file(s) of {report.projects} project(s); "
        f"{len(report.hashed)} read, {len(report.reused)} known already; "
        f"{len(report.written)} written, {len(report.removed)} removed",
        file=out,
    )
    return EXIT_OK


def _verify(args: argparse.Namespace, out: TextIO) -> int:
    from ..wheel.verify import verify_wheel  # noqa: PLC0415 - only this command needs it

    reports = [verify_wheel(path) for path in args.wheels]
    if args.json:
        dump(out, [r.as_json() for r in reports])
    else:
        for report in reports:
            if report.ok:
                print(f"{report.wheel}: OK ({report.files} files checked)", file=out)
            for problem in report.problems:
                error(problem)
    return EXIT_OK if all(r.ok for r in reports) else EXIT_INPUT
