"""``wheelpatch check cycles``: a thin adapter. It reads the resolution (wheel METADATA, or
pip's report through wheelpatch-install's resolver), hands it to :mod:`wheelpatch.check.cycles`
and prints, or writes with ``--apply``, the overrides that break the cycles."""

from __future__ import annotations

import argparse
import contextlib
import os
import stat
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, TextIO

from ..errors import EXIT_OK, ConfigError, OutputError, ResolutionError
from .terminal import add_index_options, dump, json_on_error

if TYPE_CHECKING:
    from packaging.utils import NormalizedName

    from ..check.cycles import CycleCheck
    from ..check.graph import Edge
    from ..check.overrides import OverrideEdit
    from ..check.pylock import LockedFile
    from ..install.environment import TargetEnvironment
    from ..install.resolve import PipOptions
    from ..rules.config import Config

__all__ = ["EXIT_CYCLES", "register", "run"]

#: Cycles were found (and not applied). A refused wheel exits 1 too (``InvalidWheel``), with an
#: ``error:`` line and nothing on stdout.
EXIT_CYCLES = 1

_DESCRIPTION = """\
Print every requirement cycle of a resolution (torch 2.0.1 -> triton 2.0.0 -> torch), with the
requirement, marker and extras on each leg, and for each the override that breaks it on its
cheapest leg, as TOML to paste into [tool.wheelpatch] (--apply writes it). The configured
overrides are applied first, so once the suggestion is in place the same command reports no
cycle. Requirements are evaluated for the target interpreter (--python): a leg whose marker is
false there is not a leg, and a leg in an extra counts only when that extra is asked for on the
way.
"""

_EPILOG = """\
INPUT is a wheel file, a wheelhouse directory (its *.whl files are the resolution), a
pylock.toml (PEP 751: its pins are resolved again by pip), or a requirement (torch==2.0.1).
With only wheels and directories, their METADATA is the resolution and pip is not run. With a
requirement, -r, a pylock.toml or an index option, pip resolves for the target interpreter
(pip install --dry-run --report, as if into an empty environment), through wheelpatch-install's
resolver: a project an override patches is shown to pip with its patched METADATA.

the leg to remove:
  The cheapest leg u -> v of a cycle is the one whose removal leaves every project still
  required by the roots: v is asked for directly, or something else still requires it (for
  torch <-> triton, asking for torch: triton's requirement on torch). The roots are the projects
  asked for (--root, else the requirements given; a pylock.toml, a fully pinned requirements
  file or a wheelhouse does not say, and then the roots are the projects that nothing outside
  their own cycle requires). Ties go to a leg into a root, then to the leg into the project with
  the most requirements of its own (the host a plug-in points back to), then alphabetically.
  Cycles are handled shortest first; one removal may break several.

exit codes:
  0    no cycle (with --apply: none left once the overrides were written)
  1    cycles found (and not applied); also: a wheel was refused (an error: line says which)
  2    usage or configuration error (bad TOML, a missing file, an invalid requirement, an
       override table whose versions exclude the version to patch or that relaxes, replaces
       or adds the name to remove; nothing is written)
  3    --apply could not write the configuration file
  4    pip could not resolve the requirements
  130  interrupted
"""


def register(checks: Any) -> None:
    """Add ``cycles`` to the ``check`` command's sub-parsers."""
    parser = checks.add_parser(
        "cycles",
        help="find requirement cycles and the override that breaks each",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "inputs",
        nargs="*",
        metavar="INPUT",
        help="a wheel file, a wheelhouse directory, a pylock.toml or a requirement (see below)",
    )
    parser.add_argument(
        "-r",
        "--requirement",
        action="append",
        default=[],
        type=Path,
        metavar="FILE",
        help="resolve the requirements listed in FILE (may be repeated)",
    )
    parser.add_argument(
        "--root",
        action="append",
        default=[],
        metavar="NAME[EXTRAS]",
        help="a project asked for directly, optionally with extras (may be repeated; default: "
        "the requirements given, see below)",
    )
    parser.add_argument(
        "--python",
        metavar="PY",
        help="the target interpreter markers and tags are evaluated for (default: the active "
        "virtual environment's, else the one running wheelpatch)",
    )
    parser.add_argument(
        "--config",
        type=Path,
        metavar="PATH",
        help="pyproject.toml whose [tool.wheelpatch] overrides apply, and which --apply edits "
        "(default: the nearest one with that table from the working directory upward; if none, "
        "no override applies and --apply writes ./pyproject.toml)",
    )
    parser.add_argument(
        "--apply",
        action="store_true",
        help="write the suggested overrides into the configuration file (comments and layout "
        "kept; an entry already there is not repeated), then check again",
    )
    add_index_options(parser)
    parser.add_argument(
        "--max-cycles",
        type=int,
        default=1000,
        metavar="N",
        help="stop after N cycles (default 1000; the overrides then break those found)",
    )
    parser.add_argument("--json", action="store_true", help="print a JSON report on stdout")
    parser.set_defaults(check_run=run)


class _Inputs(NamedTuple):
    """What INPUT and -r name. (Named tuples, not dataclasses, in this module: it is imported
    by every ``wheelpatch`` command, before ``patch`` starts hashing.)"""

    wheels: tuple[Path, ...]
    directories: tuple[Path, ...]
    requirements: tuple[str, ...]
    pylocks: tuple[Path, ...]

    def needs_pip(self, args: argparse.Namespace) -> bool:
        index = args.index_url or args.extra_index_url or args.find_links or args.no_index
        return bool(self.requirements or self.pylocks or index)


def _classify(args: argparse.Namespace) -> _Inputs:
    from packaging.requirements import InvalidRequirement, Requirement  # noqa: PLC0415

    from ..check.pylock import is_pylock  # noqa: PLC0415

    wheels: list[Path] = []
    directories: list[Path] = []
    requirements: list[str] = []
    pylocks: list[Path] = []
    problems: list[str] = []
    if not args.inputs and not args.requirement:
        raise ConfigError("give an INPUT (wheel, wheelhouse directory, pylock.toml, requirement)")
    for text in args.inputs:
        path = Path(text)
        if text.endswith(".whl") and "@" not in text:
            if path.is_file():
                wheels.append(path)
            else:
                problems.append(f"{text}: no such wheel file")
        elif path.is_dir():
            directories.append(path)
        elif is_pylock(path):
            if path.is_file():
                pylocks.append(path)
            else:
                problems.append(f"{text}: no such lock file")
        elif path.is_file():  # "reqs.txt" is a valid requirement name too
            problems.append(
                f"{text}: is a file, neither a wheel nor a pylock.toml; did you mean -r {text}?"
            )
        else:
            try:
                Requirement(text)
            except InvalidRequirement as exc:
                reason = (str(exc).splitlines() or ["invalid"])[0]
                problems.append(
                    f"{text!r} is neither a wheel file, a directory, a pylock.toml nor a valid "
                    f"requirement ({reason})"
                )
                continue
            requirements.append(text)
    for file in args.requirement:
        if not file.is_file():
            problems.append(f"-r {file}: no such file")
        elif not _lists_anything(file):
            problems.append(f"-r {file}: lists no requirement (only blank lines and comments)")
        requirements += ["-r", str(file)]
    inputs = _Inputs(tuple(wheels), tuple(directories), tuple(requirements), tuple(pylocks))
    if not problems and inputs.needs_pip(args):
        problems += [
            f"{d}: a wheelhouse directory is checked on its own, not with requirements; to "
            f"resolve from it, pass --find-links {d}"
            for d in directories
        ]
    if args.max_cycles < 1:
        problems.append(f"--max-cycles {args.max_cycles}: must be at least 1")
    if problems:
        raise ConfigError(problems)
    return inputs


def _lists_anything(file: Path) -> bool:
    """Whether a requirements file has a line that is neither blank nor a comment."""
    try:
        with file.open(encoding="utf-8", errors="replace") as stream:
            return any(line.strip() and not line.lstrip().startswith("#") for line in stream)
    except OSError:
        return True  # pip says why it cannot read it


def _roots(texts: Sequence[str]) -> dict[NormalizedName, frozenset[str]] | None:
    from packaging.requirements import InvalidRequirement, Requirement  # noqa: PLC0415
    from packaging.utils import canonicalize_name  # noqa: PLC0415

    if not texts:
        return None
    roots: dict[NormalizedName, frozenset[str]] = {}
    problems = []
    for text in texts:
        try:
            requirement = Requirement(text)
        except InvalidRequirement as exc:
            reason = (str(exc).splitlines() or ["invalid"])[0]
            problems.append(f"--root {text!r}: not a project name with extras ({reason})")
            continue
        if requirement.specifier or requirement.marker or requirement.url:
            problems.append(f"--root {text!r}: only a name and extras, like torch[opt-einsum]")
            continue
        name = canonicalize_name(requirement.name)
        extras = frozenset(canonicalize_name(e) for e in requirement.extras)
        roots[name] = roots.get(name, frozenset()) | extras
    if problems:
        raise ConfigError(problems)
    return roots


class _Configuration(NamedTuple):
    """The configuration in force, and the file --apply edits."""

    config: Config
    path: Path
    exists: bool


def _configuration(option: Path | None, *, apply: bool) -> _Configuration:
    from ..rules.config import Config, parse_config, read_toml  # noqa: PLC0415

    none = Config(None, None, ())
    if option is None:
        path = _find_config(Path.cwd().resolve())
        if path is None:  # no table anywhere: no override applies yet; --apply edits ./
            here = Path("pyproject.toml")
            if here.exists():
                read_toml(here)  # refused if it cannot be read or parsed, never overwritten
            return _Configuration(none, here, here.exists())
        print(f"wheelpatch: using configuration {path}", file=sys.stderr)
    else:
        path = option
        if not path.exists() and apply:
            return _Configuration(none, path, False)
    data = read_toml(path)
    tool = data.get("tool", {})
    table = tool.get("wheelpatch", {}) if isinstance(tool, dict) else {}
    try:
        # Labels do not change requirements: they are neither filled nor asked of git here.
        config = parse_config(table, path.resolve(), resolve_labels=False)
    except ConfigError as exc:
        raise ConfigError([f"{path}: {error}" for error in exc.errors]) from None
    return _Configuration(config, path, True)


def _find_config(start: Path) -> Path | None:
    """The nearest pyproject.toml from ``start`` upward with a ``[tool.wheelpatch]`` table;
    ``None`` if there is none. One that cannot be read or parsed is an error, not "none"."""
    from ..rules.config import read_toml  # noqa: PLC0415

    for directory in (start, *start.parents):
        candidate = directory / "pyproject.toml"
        if candidate.is_file():
            tool = read_toml(candidate).get("tool")
            if isinstance(tool, dict) and "wheelpatch" in tool:
                return candidate
    return None


def _read_text(path: Path) -> str:
    """The file as it is, line endings included (``newline=""``)."""
    try:
        with path.open(encoding="utf-8", newline="") as stream:
            return stream.read()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 ({exc.reason} at byte {exc.start})") from None


def _check(
    args: argparse.Namespace, inputs: _Inputs, config: Config, env: TargetEnvironment
) -> tuple[CycleCheck, tuple[str, ...]]:
    """The cycle check of the resolution the inputs give, ``config``'s overrides applied."""
    from ..check.cycles import find_cycles  # noqa: PLC0415
    from ..check.graph import Resolution, build_graph  # noqa: PLC0415

    roots = _roots(args.root)
    skipped: tuple[str, ...] = ()
    if inputs.needs_pip(args):
        from ..check.pylock import read_pylock  # noqa: PLC0415
        from ..install.resolve import PipOptions, resolve_packages  # noqa: PLC0415

        requirements = list(inputs.requirements)
        options = PipOptions(
            index_url=args.index_url,
            extra_index_urls=tuple(args.extra_index_url),
            find_links=tuple(args.find_links),
            no_index=args.no_index,
        )
        import tempfile  # noqa: PLC0415 - not on every command's start

        with tempfile.TemporaryDirectory(prefix="wheelpatch-check-") as workdir:
            wheels = list(inputs.wheels)
            for lock in inputs.pylocks:
                for locked in read_pylock(lock, tags=env.tags, markers=env.markers):
                    given = _locked_wheel(locked, config, env, options, Path(workdir))
                    if given is None:
                        requirements.append(locked.requirement)
                    else:
                        wheels.append(given)
            resolved = resolve_packages(
                wheels=wheels,
                requirements=requirements,
                config=config,
                env=env,
                options=options,
                workdir=Path(workdir),
            )
        everything = {p.name for p in resolved.packages} <= set(resolved.requested)
        if roots is None and not inputs.pylocks and not everything:
            roots = resolved.requested
        resolution = Resolution(resolved.packages, roots, resolved.environment)
    else:
        from ..check.wheelhouse import read_wheelhouse  # noqa: PLC0415

        house = read_wheelhouse(
            [*inputs.wheels, *inputs.directories],
            config,
            tags=env.tags,
            python_version=env.full_version or None,
        )
        skipped = house.skipped
        markers = env.markers
        if markers is None:
            raise ConfigError(
                f"--python {env.interpreter}: its marker environment could not be computed (its "
                "Python is too old for the packaging wheelpatch uses)"
            )
        resolution = Resolution(house.packages, roots, markers)
    graph = build_graph(resolution)
    if graph.unknown_roots:
        raise ConfigError(
            [f"--root {name}: no such project in the resolution" for name in graph.unknown_roots]
        )
    return find_cycles(graph, limit=args.max_cycles), skipped


def _locked_wheel(
    locked: LockedFile,
    config: Config,
    env: TargetEnvironment,
    options: PipOptions,
    workdir: Path,
) -> Path | None:
    """The lock's wheel file when an override applies to it, else ``None`` (pip is given
    ``name @ URL``). An overridden wheel is given to the resolver as a file, which pip then sees
    as its patched stand-in: a ``name @ URL`` requirement would conflict with the stand-in."""
    from ..install.resolve import download_wheels  # noqa: PLC0415

    override = config.override_for(locked.name)
    if override is None or not override.applies_to(locked.version) or not locked.is_wheel:
        return None
    if locked.path is not None:
        locked.verify()
        return locked.path
    directory = workdir / "locked" / locked.name
    found = download_wheels([locked.requirement], env, options, directory)
    if not found:
        raise ResolutionError(f"{locked.key}: pip could not download {locked.url}")
    return found[0]


def _write(path: Path, text: str) -> None:
    """Replace ``path`` by ``text`` at once (a temporary file renamed), keeping its mode."""
    directory = path.parent if str(path.parent) else Path()
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        mode = 0o644
    try:
        import tempfile  # noqa: PLC0415 - not on every command's start

        fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
    except OSError as exc:
        raise OutputError(f"{path}: cannot write ({exc.strerror})") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as stream:
            stream.write(text)
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise OutputError(f"{path}: cannot write ({exc.strerror})") from None


def run(args: argparse.Namespace, out: TextIO) -> int:
    if args.json:
        return json_on_error(_run, args, out, {"cycles": None})
    code: int = _run(args, out)
    return code


def _run(args: argparse.Namespace, out: TextIO) -> int:
    from ..check.overrides import apply_edits  # noqa: PLC0415
    from ..install.environment import probe  # noqa: PLC0415

    inputs = _classify(args)
    _roots(args.root)  # refused before anything runs
    found = _configuration(args.config, apply=args.apply)
    env = probe(args.python)
    config = found.config
    check, skipped = _check(args, inputs, config, env)
    for line in skipped:
        print(f"note: skipped {line}", file=sys.stderr)
    edits, problems = _plan(check, config, found.path)
    applied: dict[str, Any] | None = None
    before = check
    if args.apply and check.cycles:
        if problems:
            raise ConfigError(problems)
        text = _read_text(found.path) if found.exists else ""
        _write(found.path, apply_edits(text, str(found.path), edits))
        applied = {"path": str(found.path), "tables": [e.as_json() for e in edits]}
        again = _configuration(found.path, apply=False)
        config = again.config
        check, skipped = _check(args, inputs, config, env)
        edits, problems = _plan(check, config, found.path)
    code = EXIT_CYCLES if check.cycles else EXIT_OK
    if args.json:
        dump(out, _as_json(check, edits, problems, applied, before, code))
        return code
    if applied is not None:
        tables = ", ".join(f"[{e['table']}] remove += {e['remove']}" for e in applied["tables"])
        print(f"{found.path}: wrote {tables} (breaking {len(before.cycles)} cycle(s))", file=out)
    _print(check, config, edits, problems, out)
    return code


def _plan(check: CycleCheck, config: Config, path: Path) -> tuple[list[OverrideEdit], list[str]]:
    """The edits and problems of the check, each problem naming the configuration file."""
    from ..check.overrides import plan_edits  # noqa: PLC0415

    edits, problems = plan_edits(check.breaks, config)
    return edits, [f"{path}: {problem}" for problem in problems]


def _names(check: CycleCheck) -> str:
    graph = check.graph
    roots = ", ".join(
        name + (f"[{','.join(sorted(extras))}]" if extras else "")
        for name, extras in sorted(graph.roots.items())
    )
    how = "inferred" if graph.roots_inferred else "asked for"
    return f"{len(graph.required)} project(s) required; roots {how}: {roots or 'none'}"


def _print(
    check: CycleCheck,
    config: Config,
    edits: Sequence[OverrideEdit],
    problems: list[str],
    out: TextIO,
) -> None:
    from ..check.overrides import plan_edits, render_edits  # noqa: PLC0415

    if not check.cycles:
        print(f"no requirement cycle ({_names(check)})", file=out)
        return
    for number, cycle in enumerate(check.cycles, 1):
        print(f"cycle {number}: {cycle.describe()}", file=out)
        for edge in cycle.edges:
            for active in edge.requirements:
                print(
                    f"    {edge.source.name} -> {edge.target.name}: {active.describe()}", file=out
                )
        item = check.breaks[cycle.broken_by]
        leg = f"{item.edge.source.name} -> {item.edge.target.name}"
        if item.cycles[0] != number - 1:
            print(f"    broken by removing {leg} (cycle {item.cycles[0] + 1})", file=out)
            continue
        print(f"    remove {leg}: {item.reason}", file=out)
        single, _ = plan_edits([item], config)
        for line in render_edits(single).splitlines():
            print(f"    {line}" if line else "", file=out)
    summary = f"{len(check.cycles)} cycle(s)"
    if check.truncated:
        summary += f" (the search stopped at {len(check.cycles)}: --max-cycles)"
    print(f"{summary}; {_names(check)}", file=out)
    if check.graph.roots_inferred:
        print(
            "note: nothing said what was asked for, so the roots were inferred and each leg "
            "chosen is a heuristic's guess; --root NAME says what is asked for",
            file=out,
        )
    if len(check.breaks) > 1 and edits:
        print("all the overrides together:", file=out)
        out.write(render_edits(edits))
    for problem in problems:
        print(f"warning: {problem}", file=sys.stderr)
    if edits:
        print(
            "paste the overrides into [tool.wheelpatch] of pyproject.toml, or run again with "
            "--apply",
            file=out,
        )


def _as_json(
    check: CycleCheck,
    edits: Sequence[OverrideEdit],
    problems: list[str],
    applied: dict[str, Any] | None,
    before: CycleCheck,
    code: int,
) -> dict[str, Any]:
    from ..check.overrides import render_edits  # noqa: PLC0415

    def edge_json(edge: Edge) -> dict[str, Any]:
        return {
            "from": edge.source.name,
            "from_version": str(edge.source.version),
            "to": edge.target.name,
            "to_version": str(edge.target.version),
            "requirements": [
                {
                    "requirement": a.text,
                    "marker": None if a.requirement.marker is None else str(a.requirement.marker),
                    "extras": sorted(a.requirement.extras),
                    "through_extras": list(a.through_extras),
                }
                for a in edge.requirements
            ],
        }

    graph = check.graph
    return {
        "cycles": [
            {
                "cycle": cycle.describe(),
                "projects": list(cycle.names),
                "edges": [edge_json(e) for e in cycle.edges],
                "broken_by": cycle.broken_by,
            }
            for cycle in check.cycles
        ],
        "breaks": [
            {
                "from": b.edge.source.name,
                "to": b.edge.target.name,
                "lost": list(b.lost),
                "reason": b.reason,
                "cycles": list(b.cycles),
            }
            for b in check.breaks
        ],
        "overrides": [e.as_json() for e in edits],
        "toml": render_edits(edits) if edits else None,
        "problems": problems,
        "truncated": check.truncated,
        "required": sorted(graph.required),
        "roots": {name: sorted(extras) for name, extras in sorted(graph.roots.items())},
        "roots_inferred": graph.roots_inferred,
        "applied": applied,
        "cycles_before_apply": len(before.cycles) if applied is not None else None,
        "exit_code": code,
    }
