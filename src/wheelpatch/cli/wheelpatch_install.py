"""The ``wheelpatch-install`` command: a thin adapter over :func:`wheelpatch.install.install`.

Exit codes: 0 success; 1 a wheel was refused or failed verification (nothing of it installed);
2 usage or configuration error; 3 the environment could not be written (that wheel rolled back);
4 pip could not resolve or download the requirements; 6 a native library would be missing;
130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from .. import __version__
from ..errors import EXIT_INTERRUPTED, EXIT_OK, EXIT_OUTPUT, WheelpatchError
from .terminal import Parser, add_index_options, error, json_on_error, standard_streams

__all__ = ["main"]

_DESCRIPTION = """\
Install wheels with the [tool.wheelpatch] overrides applied on the fly: each wheel (and each
dependency pip resolves for it) is patched while installer writes it, with no patched wheel written
to disk. pip resolves the remaining requirements for the target interpreter, seeing the patched
requirements, so a requirement an override removed is never installed.
"""

_EPILOG = """\
TARGET is a wheel file, or a requirement (torch==2.14.1) fetched through pip with your pip
configuration; -r FILE reads requirements from a file. Without --python, --prefix or --target,
wheels go into the active virtual environment ($VIRTUAL_ENV), else the environment
wheelpatch-install runs in. Requirements are resolved by the pip installed beside wheelpatch (a
dependency of it), run with --python for the target; wheel files with --no-deps need no pip.
Without --config, the configuration file found is named on stderr. It runs on Linux and macOS
(it needs POSIX file locks), not on Windows.

exit codes:
  0    success
  1    a wheel was refused or failed verification (nothing of it was installed), or it does
       not suit the target interpreter (tags, Requires-Python); with --strict: an override
       matched no distribution being installed
  2    usage or configuration error; also: the Python running wheelpatch-install has no usable
       pip to resolve with, or the platform has no POSIX file locks (Windows)
  3    the environment could not be written (that wheel was rolled back)
  4    pip could not resolve or download the requirements
  6    a native library would be missing: a patched wheel's ELF file needs a library that a
       requirement the override removed would have provided (nothing was written; one line
       per library: the library, the file needing it, where it was looked for, the removed
       requirement); --allow-missing-libraries installs anyway, with those lines as warnings
  130  interrupted
"""

#: Show progress for wheels holding more than this many uncompressed bytes.
_PROGRESS_FROM = 64 << 20


def _parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="wheelpatch-install",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"wheelpatch {__version__}")
    parser.add_argument("targets", nargs="*", metavar="TARGET", help="wheel file or requirement")
    parser.add_argument(
        "-r",
        "--requirement",
        action="append",
        default=[],
        type=Path,
        metavar="FILE",
        help="install the requirements listed in FILE (may be repeated)",
    )
    parser.add_argument(
        "--config",
        type=Path,
        metavar="PATH",
        help="pyproject.toml with the [tool.wheelpatch] table (default: the nearest one from the "
        "current directory upward)",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--python",
        metavar="PY",
        help="install into this interpreter's environment (it needs no pip)",
    )
    where.add_argument("--prefix", type=Path, metavar="DIR", help="install under this prefix")
    where.add_argument(
        "--target",
        type=Path,
        metavar="DIR",
        help="install packages into DIR (scripts into DIR/bin), like pip install --target",
    )
    parser.add_argument("--no-deps", action="store_true", help="install only the named wheels")
    parser.add_argument(
        "--no-compile", action="store_true", help="do not compile Python modules to bytecode"
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print what would be installed and how each wheel would be patched; write nothing",
    )
    parser.add_argument(
        "--force-reinstall",
        action="store_true",
        help="reinstall wheels even when that version is already installed",
    )
    add_index_options(parser)
    parser.add_argument(
        "--ignore-requires-python",
        action="store_true",
        help="install wheels whose Requires-Python excludes the target interpreter (passed on "
        "to pip too)",
    )
    parser.add_argument(
        "--ignore-platform",
        action="store_true",
        help="install wheel files whose tags (interpreter, ABI, platform) the target "
        "interpreter does not support; pip still refuses them when it resolves dependencies",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="refuse a wheel when an override entry matches none of its requirements, and "
        "refuse to install when an override table matches no distribution being installed",
    )
    parser.add_argument(
        "--allow-missing-libraries",
        action="store_true",
        help="install even when a patched wheel's native library would be missing because an "
        "override removed the requirement providing it (a warning instead of exit code 6)",
    )
    parser.add_argument(
        "--system-library-dir",
        action="append",
        type=Path,
        metavar="DIR",
        help="the library check looks for system libraries in DIR (repeatable) instead of the "
        "default directories and ld.so.cache, e.g. the CUDA libraries of the image the "
        "environment will run in",
    )
    parser.add_argument("--json", action="store_true", help="print a JSON report on stdout")
    return parser


def _is_wheel(target: str) -> bool:
    return target.endswith(".whl") and "@" not in target


class _Progress:
    """One line on a terminal, rewritten as a large wheel's members are written."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.active = False

    def __call__(self, prepared: Any, total: int) -> Callable[[int], None] | None:
        if total < _PROGRESS_FROM:
            return None
        done = 0
        shown = 0.0
        drawn = ""
        label = f"{prepared.name} {prepared.version}"
        self.active = True

        def advance(size: int) -> None:
            nonlocal done, shown, drawn
            done += size
            # Each state is drawn once, at most ten a second; the last (100%) always.
            line = (
                f"\rinstalling {label}: {min(done, total) * 100 // max(total, 1):3d}% "
                f"({min(done, total) >> 20}/{total >> 20} MiB)"
            )
            now = time.monotonic()
            if line != drawn and (now - shown >= 0.1 or done >= total):
                shown = now
                drawn = line
                self.stream.write(line)
                self.stream.flush()

        return advance

    def clear(self) -> None:
        if self.active:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self.active = False


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if not args.targets and not args.requirement:
        _parser().error("give at least one TARGET (a wheel file or a requirement) or -r FILE")
    # A reader that leaves (`| head`, `2>&1 | head -1`) changes neither what is installed nor the
    # exit status: what is installed and what is said agree.
    with standard_streams() as out:
        return _main(args, out)


def _main(args: argparse.Namespace, out: TextIO) -> int:
    progress = _Progress(sys.stderr) if sys.stderr.isatty() and not args.json else None
    finished: list[Any] = []  # what is installed, should a later wheel fail
    try:
        if args.json:
            # On a failure the document says what stays installed, and why the rest is not.
            about = {"dry_run": args.dry_run, "wheels": finished}
            return json_on_error(lambda a, o: _run(a, o, progress, finished), args, out, about)
        return _run(args, out, progress, finished)
    except KeyboardInterrupt:
        error("interrupted")
        return EXIT_INTERRUPTED
    except WheelpatchError as exc:
        for line in getattr(exc, "errors", None) or [str(exc)]:
            error(line)
        return exc.exit_code
    except OSError as exc:  # a file system failure no check foresaw (install failures say more)
        where = f"{exc.filename}: " if exc.filename else ""
        error(f"{where}{exc.strerror or exc}")
        return EXIT_OUTPUT
    finally:
        if progress is not None:
            progress.clear()


def _run(
    args: argparse.Namespace, out: TextIO, progress: _Progress | None, finished: list[Any]
) -> int:
    from packaging.requirements import InvalidRequirement, Requirement  # noqa: PLC0415

    from ..errors import ConfigError  # noqa: PLC0415
    from ..install.environment import probe  # noqa: PLC0415
    from ..install.pipeline import install  # noqa: PLC0415
    from ..install.resolve import PipOptions  # noqa: PLC0415
    from ..install.stash import require_file_locks  # noqa: PLC0415
    from ..rules.config import load_config  # noqa: PLC0415

    require_file_locks()
    wheels = [Path(t) for t in args.targets if _is_wheel(t)]
    requirements: list[str] = []
    problems = []
    for target in args.targets:
        if _is_wheel(target):
            if not Path(target).is_file():
                problems.append(f"{target}: no such wheel file")
            continue
        try:
            Requirement(target)
        except InvalidRequirement as exc:
            problems.append(f"{target!r} is neither a wheel file nor a valid requirement ({exc})")
            continue
        requirements.append(target)
    for file in args.requirement:
        if not file.is_file():
            problems.append(f"-r {file}: no such file")
        requirements += ["-r", str(file)]
    if problems:
        raise ConfigError(problems)
    config = load_config(args.config)
    if args.config is None:
        print(f"wheelpatch-install: using configuration {config.path}", file=sys.stderr)
    env = probe(args.python, prefix=args.prefix, target=args.target)
    options = PipOptions(
        index_url=args.index_url,
        extra_index_urls=tuple(args.extra_index_url),
        find_links=tuple(args.find_links),
        no_index=args.no_index,
        ignore_requires_python=args.ignore_requires_python,
        ignore_platform=args.ignore_platform,
    )
    outcomes = install(
        wheels=wheels,
        requirements=requirements,
        config=config,
        env=env,
        options=options,
        no_deps=args.no_deps,
        force_reinstall=args.force_reinstall,
        compile_bytecode=not args.no_compile,
        dry_run=args.dry_run,
        strict=args.strict,
        allow_missing_libraries=args.allow_missing_libraries,
        system_library_dirs=args.system_library_dir,
        progress=progress,
        notify=lambda note: print(f"note: {note} in {env.root}", file=sys.stderr),
        warn=lambda warning: print(f"warning: {warning}", file=sys.stderr),
        done=lambda outcome: finished.append(outcome.as_json()),
    )
    if progress is not None:
        progress.clear()
    for outcome in outcomes:
        for warning in outcome.prepared.warnings:
            print(f"warning: {warning}", file=sys.stderr)
        patch = outcome.prepared.patch
        for warning in patch.warnings if patch is not None else ():
            print(f"warning: {warning}", file=sys.stderr)
        for warning in outcome.installed.warnings if outcome.installed is not None else ():
            print(f"warning: {warning}", file=sys.stderr)
    if args.json:
        document = {
            "dry_run": args.dry_run,
            "environment": {
                "python": env.interpreter,
                "purelib": str(env.purelib),
                "scripts": str(env.scripts),
            },
            "wheels": [o.as_json() for o in outcomes],
        }
        json.dump(document, out, indent=2)
        out.write("\n")
        out.flush()  # a reader that left is found here, not at exit
        return EXIT_OK
    for outcome in outcomes:
        prepared = outcome.prepared
        patch = prepared.patch
        how = ""
        if patch is not None:
            how = f" (patched from {patch.old_version})"
        replaced = ""
        if outcome.installed is not None and outcome.installed.replaced:
            replaced = f", replacing {', '.join(outcome.installed.replaced)}"
        if prepared.skip is not None:
            print(f"left alone {prepared.name} {prepared.version} ({prepared.skip})", file=out)
        else:
            print(f"{outcome.status} {prepared.name} {prepared.version}{how}{replaced}", file=out)
            for line in patch.change_lines() if patch is not None else ():
                print(f"    {line}", file=out)
    if not outcomes:
        print(f"nothing to install: the requirements are already met in {env.root}", file=out)
        out.flush()
        return EXIT_OK
    done = [o for o in outcomes if o.prepared.skip is None]
    patched = sum(1 for o in done if o.prepared.patch is not None)
    verb = "would install" if args.dry_run else "installed"
    left = len(outcomes) - len(done)
    tail = f", {left} left alone" if left else ""
    print(f"{verb} {len(done)} wheel(s), {patched} patched{tail} into {env.root}", file=out)
    out.flush()
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
