"""Decide which wheels to install: pip resolves, wheelpatch's overrides shape what it sees.

pip is run for the target interpreter (``pip --python``, so markers are evaluated for it and the
target needs no pip of its own) in ``--dry-run --report`` mode. A project that an override patches
is shown to pip as a metadata-only stand-in wheel carrying the patched METADATA, pinned with a
constraint ``name @ file://stand-in``: pip then resolves against the patched requirements (a
requirement an override removed is never pulled in) while a constraint installs nothing on its
own. Overrides found on the way (on transitive dependencies) add stand-ins and pip resolves again,
until nothing new turns up. The stand-ins are never installed: the real wheel is, patched on the
fly.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import NormalizedName, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from ..check.graph import Package
from ..errors import ConfigError, InvalidWheel, ResolutionError
from ..patch.plan import PatchPlan, Unchanged, plan_patch
from ..rules.config import Config
from ..wheel.metadata import MetadataDocument
from ..wheel.source_wheel import SourceWheel, read_wheel
from .environment import InstalledDistribution, TargetEnvironment
from .wheel_source import check_installable

__all__ = [
    "PipOptions",
    "Prepared",
    "ResolvedPackages",
    "download_wheels",
    "mark_installed",
    "resolve",
    "resolve_packages",
]


@dataclass(frozen=True, slots=True)
class PipOptions:
    """The index options passed through to pip (the user's pip configuration applies too)."""

    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()
    no_index: bool = False
    #: Install wheels whose Requires-Python excludes the target interpreter (pip's option too).
    ignore_requires_python: bool = False
    #: Install wheel files whose tags the target interpreter does not support.
    ignore_platform: bool = False

    def args(self) -> list[str]:
        args = []
        if self.ignore_requires_python:
            args.append("--ignore-requires-python")
        if self.index_url:
            args += ["--index-url", self.index_url]
        for url in self.extra_index_urls:
            args += ["--extra-index-url", url]
        for link in self.find_links:
            args += ["--find-links", link]
        if self.no_index:
            args.append("--no-index")
        return args


@dataclass(slots=True)
class Prepared:
    """A wheel that will be installed: read, checked and planned."""

    wheel: SourceWheel
    plan: PatchPlan | Unchanged
    requested: bool = False
    #: Given on the command line as a file: gets ``direct_url.json``.
    given_path: bool = False
    #: Why it is not installed, if it is not ("already installed").
    skip: str | None = None
    #: Where it came from: the file given, or the URL pip found it at.
    origin: str = ""
    #: What its checks could not decide (an invalid Requires-Python, unknown target tags).
    warnings: tuple[str, ...] = ()

    @property
    def name(self) -> NormalizedName:
        return self.wheel.name

    @property
    def patch(self) -> PatchPlan | None:
        return self.plan if isinstance(self.plan, PatchPlan) else None

    @property
    def version(self) -> Version:
        return self.plan.new_version if isinstance(self.plan, PatchPlan) else self.wheel.version


@dataclass
class _State:
    config: Config
    env: TargetEnvironment
    options: PipOptions
    workdir: Path
    strict: bool
    #: Told of every wheel read and planned from a file (the library check starts reading it).
    on_prepared: Callable[[Prepared], None] | None = None
    #: Prepared wheels by every URL pip may report for them (the stand-in's and the original's).
    by_url: dict[str, Prepared] = field(default_factory=dict)
    constraints: list[str] = field(default_factory=list)
    settled: set[NormalizedName] = field(default_factory=set)
    #: The marker environment of pip's last report (the target interpreter's).
    environment: dict[str, str] = field(default_factory=dict)


#: The oldest pip with both ``--python`` (22.3) and ``install --dry-run --report`` (22.2).
_PIP_NEEDED = Version("22.3")


def _pip_base(env: TargetEnvironment) -> list[str]:
    """pip of the environment wheelpatch runs in (a dependency of wheelpatch), pointed at the
    target with ``--python``: the target needs no pip of its own."""
    try:
        found: str | None = importlib.metadata.version("pip")
    except importlib.metadata.PackageNotFoundError:
        found = None
    try:
        usable = found is not None and Version(found) >= _PIP_NEEDED
    except InvalidVersion:
        usable = False
    if not usable:
        what = "has no pip" if found is None else f"has pip {found}, older than {_PIP_NEEDED}"
        raise ConfigError(
            f"{sys.executable}: the Python wheelpatch-install runs in {what}, which it needs to "
            f"resolve requirements (pip>={_PIP_NEEDED} is a dependency of wheelpatch: reinstall "
            "wheelpatch, or install pip beside it); wheel files with --no-deps need no pip"
        )
    command = [sys.executable, "-m", "pip"]
    if not env.is_current:
        command += ["--python", env.interpreter]
    return command


def _layout_args(env: TargetEnvironment) -> list[str]:
    if env.layout == "prefix":
        return ["--prefix", str(env.root)]
    if env.layout == "target":
        return ["--target", str(env.root)]
    return []


def _run_pip(command: list[str], what: str) -> None:
    environment = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    done = subprocess.run(command, capture_output=True, text=True, check=False, env=environment)
    if done.returncode != 0:
        lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
        errors = [line.removeprefix("ERROR: ") for line in lines if line.startswith("ERROR:")]
        detail = "; ".join(errors or lines[-3:]) or f"exit code {done.returncode}"
        raise ResolutionError(f"pip could not {what}: {detail}")


def _file_path(url: str) -> Path | None:
    parsed = urlparse(url)
    if parsed.scheme != "file":
        return None
    return Path(unquote(parsed.path))


def _write_stand_in(plan: PatchPlan, directory: Path) -> Path:
    """A wheel holding only the patched ``.dist-info`` (METADATA, WHEEL, RECORD), for pip to
    read requirements from. It is never installed."""
    wheel = plan.wheel
    wheel_file = wheel.wheel_file
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / plan.filename
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{plan.dist_info}/METADATA", plan.metadata)
        archive.writestr(f"{plan.dist_info}/WHEEL", wheel_file)
        archive.writestr(f"{plan.dist_info}/RECORD", "")
    return path


def _plan(state: _State, wheel: SourceWheel) -> PatchPlan | Unchanged:
    """The wheel's patch plan, once installer is known to be able to install it."""
    plan = plan_patch(wheel, state.config, strict=state.strict)
    check_installable(wheel, plan if isinstance(plan, PatchPlan) else None)
    return plan


def check_compatible(
    wheel: SourceWheel, plan: PatchPlan | Unchanged, env: TargetEnvironment, options: PipOptions
) -> tuple[str, ...]:
    """Refuse a wheel file the target interpreter cannot use, as pip and uv do: none of its
    tags is supported there, or its (patched) Requires-Python excludes the interpreter. What
    cannot be decided is returned as warnings (pip, too, warns of an invalid Requires-Python and
    installs the wheel)."""
    warnings: list[str] = []
    if not options.ignore_platform and env.tags is None:
        warnings.append(
            f"{wheel.filename}: the tags {env.interpreter} supports are unknown (its Python is "
            "too old for the packaging wheelpatch uses), so they were not checked"
        )
    if not options.ignore_platform and env.tags is not None:
        supported = set(env.tags)
        if not any(str(tag) in supported for tag in wheel.tags):
            tags = ", ".join(sorted(str(tag) for tag in wheel.tags))
            raise InvalidWheel(
                f"{wheel.filename}: not a supported wheel for {env.interpreter} (Python "
                f"{env.full_version}): its tags ({tags}) are none of the {len(env.tags)} it "
                f"supports, the first being {env.tags[0]}; --ignore-platform installs it anyway"
            )
    if options.ignore_requires_python or not env.full_version:
        return tuple(warnings)
    metadata = (
        MetadataDocument.parse(plan.metadata) if isinstance(plan, PatchPlan) else wheel.metadata
    )
    text = metadata.get("Requires-Python")
    if text is None or not text.strip():
        return tuple(warnings)
    try:
        specifier = SpecifierSet(text)
    except InvalidSpecifier:
        warnings.append(
            f"{wheel.filename}: Requires-Python {text!r} is not a valid version specifier, so "
            "it was not checked (pip too installs such a wheel)"
        )
        return tuple(warnings)
    if not specifier.contains(Version(env.full_version), prereleases=True):
        raise InvalidWheel(
            f"{wheel.filename}: Requires-Python {text!r} excludes Python {env.full_version} of "
            f"{env.interpreter}; --ignore-requires-python installs it anyway"
        )
    return tuple(warnings)


def _prepare(
    state: _State, path: Path, *, requested: bool = False, given: bool = False
) -> Prepared:
    wheel = read_wheel(path)
    plan = _plan(state, wheel)
    warnings = check_compatible(wheel, plan, state.env, state.options) if given else ()
    prepared = Prepared(
        wheel, plan, requested=requested, given_path=given, origin=str(path), warnings=warnings
    )
    state.by_url[path.absolute().as_uri()] = prepared
    if isinstance(plan, PatchPlan):
        stand_in = _write_stand_in(plan, state.workdir / "stand-ins" / wheel.name)
        state.by_url[stand_in.as_uri()] = prepared
        prepared_uri = stand_in.as_uri()
    else:
        state.settled.add(wheel.name)
        prepared_uri = path.absolute().as_uri()
    if not given:
        state.constraints.append(f"{wheel.name} @ {prepared_uri}")
    if state.on_prepared is not None:
        state.on_prepared(prepared)
    return prepared


def _report(
    state: _State,
    requirements: Sequence[str],
    *,
    no_deps: bool,
    force_reinstall: bool,
    ignore_installed: bool,
) -> list[dict[str, Any]]:
    report_path = state.workdir / "report.json"
    constraints_path = state.workdir / "constraints.txt"
    constraints_path.write_text("".join(f"{line}\n" for line in state.constraints), "utf-8")
    command = [
        *_pip_base(state.env),
        "install",
        "--dry-run",
        "--quiet",
        "--report",
        str(report_path),
        "--constraint",
        str(constraints_path),
        *_layout_args(state.env),
        *state.options.args(),
    ]
    if no_deps:
        command.append("--no-deps")
    if force_reinstall:
        command.append("--force-reinstall")
    if ignore_installed:
        command.append("--ignore-installed")
    _run_pip([*command, *requirements], "resolve the requirements")
    document = json.loads(report_path.read_text("utf-8"))
    items: list[dict[str, Any]] = document.get("install", [])
    environment = document.get("environment")
    if isinstance(environment, dict):
        state.environment = {str(k): str(v) for k, v in environment.items()}
    return items


def download_wheels(
    requirements: Sequence[str],
    env: TargetEnvironment,
    options: PipOptions,
    directory: Path,
    *,
    timeout: float | None = None,
) -> list[Path]:
    """The wheels pip finds for ``requirements`` (each alone, without dependencies, for the
    target interpreter, with the user's index options); one pip cannot find is left out.

    The downloads run side by side; with ``timeout``, those not done that many seconds after
    the start are stopped and left out too (an unreachable index must not stall the caller)."""
    import time  # noqa: PLC0415 - only this function needs a clock

    try:
        base = _pip_base(env)
    except ConfigError:
        return []
    environment = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    started = time.monotonic()
    running: list[tuple[subprocess.Popen[bytes], Path]] = []
    wheels: list[Path] = []
    try:
        for index, requirement in enumerate(requirements):
            destination = directory / str(index)
            command = [
                *base,
                "download",
                "--quiet",
                "--no-deps",
                "--only-binary",
                ":all:",
                "--dest",
                str(destination),
                *options.args(),
                requirement,
            ]
            try:
                process = subprocess.Popen(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    env=environment,
                )
            except OSError:
                continue
            running.append((process, destination))
        for process, destination in running:
            left = None if timeout is None else max(0.0, started + timeout - time.monotonic())
            try:
                code = process.wait(left)
            except subprocess.TimeoutExpired:
                continue
            if code == 0:
                wheels += sorted(destination.glob("*.whl"))
    finally:
        for process, _ in running:
            if process.poll() is None:
                process.kill()
                process.wait()
    return wheels


def _fetch(state: _State, items: list[dict[str, Any]]) -> dict[str, Path]:
    """Local wheel files for report items: used in place when pip found them on disk, else
    fetched (and, for an sdist, built) with ``pip wheel --no-deps``."""
    found: dict[str, Path] = {}
    remote = []
    for item in items:
        url = item["download_info"]["url"]
        local = _file_path(url)
        if local is not None and local.suffix == ".whl" and local.is_file():
            found[url] = local
        else:
            remote.append(item)
    if remote:
        directory = state.workdir / "downloads" / str(len(list(state.workdir.glob("downloads/*"))))
        command = [
            *_pip_base(state.env),
            "wheel",
            "--quiet",
            "--no-deps",
            "--wheel-dir",
            str(directory),
            *state.options.args(),
        ]
        requirements = [
            f"{item['metadata']['name']} @ {item['download_info']['url']}" for item in remote
        ]
        _run_pip([*command, *requirements], "download " + ", ".join(requirements))
        files = list(directory.glob("*.whl"))
        for item in remote:
            name = canonicalize_name(item["metadata"]["name"])
            version = Version(item["metadata"]["version"])
            for file in files:
                wheel_name, wheel_version, _, _ = parse_wheel_filename(file.name)
                if wheel_name == name and wheel_version == version:
                    found[item["download_info"]["url"]] = file
                    break
            else:
                raise ResolutionError(f"pip wheel produced no wheel for {name} {version}")
    return found


def resolve(
    *,
    wheels: Sequence[Path],
    requirements: Sequence[str],
    config: Config,
    env: TargetEnvironment,
    options: PipOptions,
    workdir: Path,
    no_deps: bool = False,
    force_reinstall: bool = False,
    strict: bool = False,
    on_prepared: Callable[[Prepared], None] | None = None,
) -> list[Prepared]:
    """The wheels to install, in pip's order, each read, checked and planned.

    ``wheels`` are files named on the command line; ``requirements`` are pip arguments
    (requirement strings, or ``-r FILE`` pairs). With only wheels and ``no_deps``, pip is not run.
    ``on_prepared`` is told of each patched wheel read and planned, as soon as it is.
    """
    state = _State(config, env, options, workdir, strict, on_prepared)
    given = [_prepare(state, path, requested=True, given=True) for path in wheels]
    if no_deps and not requirements:
        return given
    arguments = [*_given_arguments(state, given), *requirements]
    # pip counts an installed project as satisfied even when it was installed without the
    # override that now applies to it (by pip, or with another configuration); then pip must
    # not take the environment into account, and what is already right is left alone below.
    ignore_installed = any(_stale(dist, config) for dist in env.distributions())
    items = _settle(
        state,
        arguments,
        no_deps=no_deps,
        force_reinstall=force_reinstall,
        ignore_installed=ignore_installed,
    )
    missing = [item for item in items if item["download_info"]["url"] not in state.by_url]
    paths = _fetch(state, missing)
    result = []
    for item in items:
        url = item["download_info"]["url"]
        known = state.by_url.get(url)
        if known is None:
            wheel = read_wheel(paths[url])
            plan = _plan(state, wheel)
            known = state.by_url[url] = Prepared(wheel, plan, origin=url)
        prepared = known
        prepared.requested = prepared.requested or bool(item.get("requested"))
        result.append(prepared)
    return result


@dataclass(frozen=True, slots=True)
class ResolvedPackages:
    """What pip resolved, as the requirement graph sees it."""

    packages: tuple[Package, ...]
    #: The projects pip reports as requested, with the extras requested.
    requested: dict[NormalizedName, frozenset[str]]
    #: The target interpreter's marker environment, from pip's report.
    environment: dict[str, str]


def resolve_packages(
    *,
    wheels: Sequence[Path],
    requirements: Sequence[str],
    config: Config,
    env: TargetEnvironment,
    options: PipOptions,
    workdir: Path,
) -> ResolvedPackages:
    """Every project pip resolves for ``requirements`` (and the wheel files ``wheels``) on the
    target interpreter, as if into an empty environment, the overrides applied (pip reads the
    stand-ins' patched METADATA). Only METADATA is read: no wheel is downloaded unless an
    override applies to it (its real METADATA is then needed to plan the stand-in)."""
    state = _State(config, env, options, workdir, strict=False)
    given = [_prepare(state, path, requested=True, given=True) for path in wheels]
    arguments = [*_given_arguments(state, given), *requirements]
    items = _settle(state, arguments, no_deps=False, force_reinstall=False, ignore_installed=True)
    packages = []
    requested: dict[NormalizedName, frozenset[str]] = {}
    for item in items:
        metadata = item["metadata"]
        name = canonicalize_name(metadata["name"])
        version = Version(metadata["version"])
        found = []
        for text in metadata.get("requires_dist") or []:
            try:
                found.append(Requirement(text))
            except InvalidRequirement as exc:
                reason = (str(exc).splitlines() or ["invalid"])[0]
                raise InvalidWheel(
                    f"{name} {version} ({item['download_info']['url']}): Requires-Dist {text!r} "
                    f"is not a valid requirement ({reason})"
                ) from None
        packages.append(Package(name, version, tuple(found)))
        if item.get("requested"):
            extras = item.get("requested_extras") or []
            requested[name] = frozenset(canonicalize_name(e) for e in extras)
    return ResolvedPackages(tuple(packages), requested, dict(state.environment))


def _given_arguments(state: _State, given: Sequence[Prepared]) -> list[str]:
    """pip arguments for the wheel files given: their stand-ins when patched."""
    top = []
    for prepared in given:
        patch = prepared.patch
        if patch is not None:
            uri = (state.workdir / "stand-ins" / prepared.name / patch.filename).as_uri()
        else:
            uri = prepared.wheel.path.absolute().as_uri()
        top.append(f"{prepared.name} @ {uri}")
    return top


def _settle(
    state: _State,
    arguments: Sequence[str],
    *,
    no_deps: bool,
    force_reinstall: bool,
    ignore_installed: bool,
) -> list[dict[str, Any]]:
    """pip's report once every override that applies to what it resolves has its stand-in."""
    discovered: list[str] = []
    for _ in range(len(state.config.overrides) + 3):
        try:
            items = _report(
                state,
                arguments,
                no_deps=no_deps,
                force_reinstall=force_reinstall,
                ignore_installed=ignore_installed,
            )
        except ResolutionError as exc:
            # A requirement an override removes may not exist on the index at all (a CPU-only
            # mirror has no nvidia-* wheels), so resolving the unpatched requirements fails. Find
            # the overridden projects among those asked for, without their dependencies, pin
            # their stand-ins, and resolve again.
            if discovered:
                raise ResolutionError(
                    f"{exc} (with the patched {', '.join(discovered)} pinned, as found without "
                    "their dependencies)"
                ) from None
            if no_deps:
                raise
            earlier = {id(prepared) for prepared in state.by_url.values()}
            direct = _report(
                state,
                arguments,
                no_deps=True,
                force_reinstall=force_reinstall,
                ignore_installed=ignore_installed,
            )
            if not _prepare_overridden(state, direct):
                raise
            discovered = sorted(
                {f"{p.name} {p.version}" for p in state.by_url.values() if id(p) not in earlier}
            )
            continue
        if not _prepare_overridden(state, items):
            break
        if no_deps:
            break  # nothing else is resolved, so patched requirements change nothing
    else:  # pragma: no cover - each round settles at least one override
        raise ResolutionError("resolution did not settle")
    return items


def _prepare_overridden(state: _State, items: list[dict[str, Any]]) -> bool:
    """Fetch and plan the report items an override applies to that are not known yet, so the
    next resolution sees their stand-ins. Says whether there were any."""
    new = []
    for item in items:
        url = item["download_info"]["url"]
        name = canonicalize_name(item["metadata"]["name"])
        if url in state.by_url or name in state.settled:
            continue
        override = state.config.override_for(name)
        if override is not None and override.applies_to(Version(item["metadata"]["version"])):
            new.append(item)
    if not new:
        return False
    paths = _fetch(state, new)
    for item in new:
        url = item["download_info"]["url"]
        prepared = _prepare(state, paths[url])
        prepared.origin = url
        state.by_url[url] = prepared
    return True


def _stale(dist: InstalledDistribution, config: Config) -> bool:
    """An installed project that an override applies to, not installed patched by it."""
    override = config.override_for(dist.name)
    if override is None or dist.version is None:
        return False
    if not override.applies_to(Version(dist.version.public)):
        return False
    return not dist.patched_with(override.digest)


def mark_installed(
    prepared: Sequence[Prepared], env: TargetEnvironment, *, force_reinstall: bool
) -> None:
    """Leave alone what is installed already: the same version, patched the same way."""
    for item in prepared:
        item.skip = None
        if force_reinstall:
            continue
        patch = item.patch
        for dist in env.installed(item.name):
            if dist.version != item.version:
                continue
            if patch is None or dist.patched_with(patch.override.digest):
                item.skip = "already installed"
