"""Install one wheel into an environment as one transaction.

The previous version (every file its RECORD lists, its bytecode and its ``.dist-info``) is moved
to a stash first; the wheel is then installed through :func:`installer.install` with the patch
applied on the fly. If anything fails, what was written is removed and the stash is put back, so
the previous version stays importable; on success the stash is deleted.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import installer
from installer.exceptions import InstallerError
from installer.records import InvalidRecordEntry

from ..errors import OutputError, WheelpatchError
from ..patch.plan import PatchPlan
from ..wheel.source_wheel import SourceWheel
from .destination import ParallelDestination
from .environment import InstalledDistribution, TargetEnvironment
from .stash import Stash
from .wheel_source import PatchedWheelSource, open_source

__all__ = ["INSTALLER_NAME", "Installed", "direct_url", "install_wheel"]

INSTALLER_NAME = b"wheelpatch\n"

#: What installer raises (itself or through configparser, posixpath, its asserts) when a wheel
#: is bad in a way nothing before it caught: each becomes one line naming the wheel and member.
_INSTALLER_FAILURES = (
    InstallerError,
    InvalidRecordEntry,
    configparser.Error,
    AssertionError,
    AttributeError,  # where an assert would fail, under python -O
    KeyError,
    TypeError,
    ValueError,
)
_INSTALLER_DIR = os.path.dirname(os.path.abspath(installer.__file__))
_OUR_DIR = os.path.dirname(os.path.abspath(__file__))


def _raised_by_installer(exc: BaseException) -> bool:
    """Whether installer's code, not wheelpatch's (its destination and source), is the last of
    the two on the way to where ``exc`` was raised."""
    last = None
    for frame in traceback.extract_tb(exc.__traceback__):
        directory = os.path.dirname(os.path.abspath(frame.filename))
        if directory in (_INSTALLER_DIR, _OUR_DIR):
            last = directory
    return last == _INSTALLER_DIR


#: installer's warning for a member it skips (``warnings.warn``, two lines on stderr).
_SKIPPED = re.compile(r"Skip installing (.+?) from .*__pycache__", re.DOTALL)


def _run_installer(
    source: PatchedWheelSource, destination: ParallelDestination, metadata: dict[str, bytes]
) -> list[str]:
    """Run installer; return one line per member it skipped with a warning."""
    skipped = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            installer.install(source, destination, metadata)
        for warning in caught:
            match = _SKIPPED.match(str(warning.message))
            if match is None:
                warnings.warn_explicit(
                    warning.message, warning.category, warning.filename, warning.lineno
                )
                continue
            skipped.append(
                f"{source.wheel.filename}: {match.group(1)}: not installed (a wheel must not "
                "contain __pycache__ directories: bytecode is compiled when installing)"
            )
    except _INSTALLER_FAILURES as exc:
        if isinstance(exc, WheelpatchError) or not _raised_by_installer(exc):
            raise
        raise source.installer_failure(exc) from None
    except OSError as exc:
        if isinstance(exc, WheelpatchError):
            raise
        where = exc.filename or source.wheel.filename
        raise OutputError(
            f"{where}: {exc.strerror or exc} ({source.wheel.filename} was rolled back)"
        ) from None
    return skipped


@dataclass(frozen=True, slots=True)
class Installed:
    """What one install did."""

    name: str
    version: str
    files: int
    #: Versions of the distribution that were replaced.
    replaced: tuple[str, ...]
    #: What installer left out, one line each (members in ``__pycache__``).
    warnings: tuple[str, ...] = ()


def direct_url(path: Path, sha256: str) -> bytes:
    """PEP 610 ``direct_url.json`` for a wheel installed from a file."""
    document = {
        "archive_info": {"hash": f"sha256={sha256}", "hashes": {"sha256": sha256}},
        "url": path.absolute().as_uri(),
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def _stash_distribution(
    dist: InstalledDistribution, env: TargetEnvironment, stash: Stash
) -> list[Path]:
    """Move an installed distribution's files aside; return the directories they were in."""
    root = Path(os.path.realpath(env.root))
    parents: set[Path] = set()
    caches: dict[Path, list[str]] = {}
    dist_info = dist.dist_info
    for path in dist.files():
        if path.parent == dist_info or dist_info in path.parents:
            continue  # the whole directory is moved below
        real_parent = Path(os.path.realpath(path.parent))
        if real_parent != root and root not in real_parent.parents:
            continue  # never touch anything outside the environment
        if os.path.lexists(path):
            stash.put(path)
            parents.add(path.parent)
        if path.suffix == ".py":
            cache = path.parent / "__pycache__"
            names = caches.get(cache)
            if names is None:
                try:
                    names = caches[cache] = os.listdir(cache)
                except OSError:
                    names = caches[cache] = []
            prefix = path.stem + "."
            for name in names:
                bytecode = name.startswith(prefix) and name.endswith(".pyc")
                if bytecode and name.count(".") == 2 and os.path.lexists(cache / name):
                    stash.put(cache / name)
                    parents.add(cache)
    stash.put(dist_info)
    return sorted(parents, key=lambda p: len(p.parts), reverse=True)


def _remove_empty(directories: list[Path], env: TargetEnvironment) -> None:
    """Remove directories the old version left empty, never a scheme directory or above."""
    stops = {env.root, env.purelib, env.platlib, env.scripts, env.data, env.include}
    for directory in directories:
        current = directory
        while current not in stops and env.root in current.parents:
            try:
                current.rmdir()
            except OSError:
                break
            current = current.parent


def install_wheel(
    wheel: SourceWheel,
    plan: PatchPlan | None,
    env: TargetEnvironment,
    *,
    requested: bool,
    late: Callable[[], dict[str, bytes]] | None = None,
    compile_bytecode: bool = True,
    progress: Callable[[int], None] | None = None,
) -> Installed:
    """Install ``wheel`` (patched by ``plan`` if given) into ``env``, replacing any installed
    version of it. ``late`` gives ``.dist-info`` files made once the members are written (the
    provenance, ``direct_url.json``). The caller holds the environment's lock."""
    existing = env.installed(wheel.name)
    metadata = {"INSTALLER": INSTALLER_NAME}
    if requested:
        metadata["REQUESTED"] = b""
    source, fd = open_source(wheel, plan, late)
    try:
        stash = Stash(env.root)
    except BaseException:
        os.close(fd)
        raise
    destination = ParallelDestination(
        scheme_dict=env.scheme(source.distribution),
        interpreter=env.interpreter,
        script_kind="posix",
        stash=stash,
        where=wheel.filename,
        compile_bytecode=compile_bytecode,
        cache_tag=env.cache_tag,
        progress=progress,
    )
    try:
        emptied: list[Path] = []
        for dist in existing:
            emptied += _stash_distribution(dist, env, stash)
        skipped = _run_installer(source, destination, metadata)
    except BaseException:
        destination.rollback()
        stash.restore()
        raise
    else:
        stash.commit()
        _remove_empty(emptied, env)
    finally:
        destination.close()
        os.close(fd)
    return Installed(
        name=wheel.name,
        version=source.version,
        files=len(destination.created_files),
        replaced=tuple(str(d.version) for d in existing),
        warnings=tuple(skipped),
    )
