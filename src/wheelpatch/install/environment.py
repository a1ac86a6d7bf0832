"""The environment ``wheelpatch-install`` writes into: its interpreter, install scheme and the
distributions already in it.

The scheme comes from the target interpreter's own ``sysconfig`` (it is asked in a subprocess), so
another Python's environment is installed into exactly as that Python lays it out. The target
interpreter does not need pip.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import packaging
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import InvalidVersion, Version

from ..errors import ConfigError, OutputError
from .stash import lock_file

__all__ = ["InstalledDistribution", "TargetEnvironment", "default_interpreter", "probe"]

Layout = Literal["environment", "prefix", "target"]

#: Run by the target interpreter: its scheme paths, what its bytecode files are called, its full
#: version and the wheel tags it supports (packaging's ``sys_tags``, imported from where
#: wheelpatch's own packaging is, since the target may have none).
_PROBE = r"""
import json, os, sys, sysconfig
layout, base, packaging_root = sys.argv[1], sys.argv[2], sys.argv[3]
try:
    import importlib.machinery, importlib.util
    # Only packaging comes from there: nothing else on that path shadows the target's modules.
    spec = importlib.machinery.PathFinder.find_spec("packaging", [packaging_root])
    module = importlib.util.module_from_spec(spec)
    sys.modules["packaging"] = module
    spec.loader.exec_module(module)
    from packaging.tags import sys_tags
    from packaging.markers import default_environment
    tags = [str(tag) for tag in sys_tags()]
    markers = default_environment()
except Exception:
    tags = markers = None
if layout == "prefix":
    scheme = "nt" if os.name == "nt" else "posix_prefix"
    keys = ("base", "platbase", "installed_base", "installed_platbase")
    paths = sysconfig.get_paths(scheme, vars=dict.fromkeys(keys, base))
else:
    paths = sysconfig.get_paths()
print(json.dumps({
    "executable": sys.executable,
    "prefix": sys.prefix,
    "in_venv": sys.prefix != sys.base_prefix,
    "version": "%d.%d" % sys.version_info[:2],
    "full_version": "%d.%d.%d" % sys.version_info[:3],
    "tags": tags,
    "markers": markers,
    "cache_tag": sys.implementation.cache_tag,
    "paths": paths,
}))
"""


def default_interpreter() -> str:
    """The interpreter of the active virtual environment, else the one running wheelpatch."""
    venv = os.environ.get("VIRTUAL_ENV")
    if venv:
        for name in ("bin/python", "Scripts/python.exe"):
            candidate = Path(venv, name)
            if candidate.exists():
                return str(candidate)
    return sys.executable


@dataclass(frozen=True, slots=True)
class InstalledDistribution:
    """A ``.dist-info`` directory found in the environment."""

    dist_info: Path
    name: NormalizedName
    version: Version | None

    @property
    def site(self) -> Path:
        return self.dist_info.parent

    def installer(self) -> str:
        try:
            return (self.dist_info / "INSTALLER").read_text("utf-8").strip()
        except (OSError, UnicodeDecodeError):
            return ""

    def provenance(self) -> dict[str, Any] | None:
        """The ``wheelpatch.json`` it was installed with, if any."""
        try:
            document = json.loads((self.dist_info / "wheelpatch.json").read_text("utf-8"))
        except (OSError, ValueError):
            return None
        return document if isinstance(document, dict) else None

    def patched_with(self, digest: str) -> bool:
        """Whether wheelpatch installed it, patched by an override whose digest is ``digest``."""
        provenance = self.provenance()
        if provenance is None or self.installer() != "wheelpatch":
            return False
        config = provenance.get("config")
        return isinstance(config, dict) and config.get("digest") == digest

    def files(self) -> list[Path]:
        """Every file its RECORD lists, as absolute paths (nothing is checked to exist)."""
        try:
            text = (self.dist_info / "RECORD").read_text("utf-8")
        except (OSError, UnicodeDecodeError):
            return []
        site = self.site
        return [
            Path(os.path.normpath(site / row[0])) for row in csv.reader(io.StringIO(text)) if row
        ]


@dataclass(frozen=True, slots=True)
class TargetEnvironment:
    """Where and for which interpreter a wheel is installed."""

    interpreter: str
    layout: Layout
    #: The environment's root: its prefix, or the ``--target`` directory. Nothing is written or
    #: removed outside it.
    root: Path
    version: str
    cache_tag: str | None
    purelib: Path
    platlib: Path
    scripts: Path
    data: Path
    include: Path
    #: Whether the interpreter is the one running wheelpatch (pip then needs no ``--python``).
    is_current: bool
    #: The interpreter's ``major.minor.micro``, for ``Requires-Python``.
    full_version: str = ""
    #: The wheel tags it supports, most specific first (None: they could not be computed).
    tags: tuple[str, ...] | None = None
    #: Its marker environment (PEP 508), as packaging computes it there (None: not computed).
    markers: Mapping[str, str] | None = field(default=None, compare=False)

    def scheme(self, project: str) -> dict[str, str]:
        """installer's scheme dictionary for ``project`` (headers go in a directory of its own)."""
        return {
            "purelib": str(self.purelib),
            "platlib": str(self.platlib),
            "scripts": str(self.scripts),
            "data": str(self.data),
            "headers": str(self.include / project),
        }

    @property
    def site_dirs(self) -> tuple[Path, ...]:
        return (self.purelib,) if self.purelib == self.platlib else (self.purelib, self.platlib)

    def installed(self, name: NormalizedName) -> list[InstalledDistribution]:
        """The distributions of ``name`` in this environment (normally at most one)."""
        return [dist for dist in self.distributions() if dist.name == name]

    def distributions(self) -> Iterator[InstalledDistribution]:
        for site in self.site_dirs:
            try:
                entries = sorted(os.listdir(site))
            except FileNotFoundError:
                continue
            for entry in entries:
                if not entry.endswith(".dist-info"):
                    continue
                stem = entry.removesuffix(".dist-info")
                name, _, version = stem.rpartition("-")
                if not name:
                    continue
                try:
                    parsed: Version | None = Version(version)
                except InvalidVersion:
                    parsed = None
                yield InstalledDistribution(site / entry, canonicalize_name(name), parsed)

    def lock(self) -> EnvironmentLock:
        return EnvironmentLock(self.root)


class EnvironmentLock:
    """An exclusive ``flock`` on the environment's root directory, so that concurrent installs
    into one environment run one after another. Nothing is left on disk."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._fd: int | None = None

    def __enter__(self) -> EnvironmentLock:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.root, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        except OSError as exc:
            raise OutputError(
                f"{self.root}: cannot open the environment ({exc.strerror})"
            ) from None
        try:
            if not lock_file(fd, wait=False):
                print(
                    f"waiting for another install into {self.root} to finish...",
                    file=sys.stderr,
                    flush=True,
                )
                lock_file(fd, wait=True)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing releases the lock
            self._fd = None


def probe(
    interpreter: str | None = None, *, prefix: Path | None = None, target: Path | None = None
) -> TargetEnvironment:
    """Ask ``interpreter`` (default: :func:`default_interpreter`) for its install scheme."""
    python = interpreter or default_interpreter()
    layout: Layout = (
        "prefix" if prefix is not None else "target" if target is not None else "environment"
    )
    base = str((prefix or target or Path()).absolute())
    packaging_root = str(Path(packaging.__file__).parent.parent)
    try:
        done = subprocess.run(
            [python, "-I", "-c", _PROBE, layout, base, packaging_root],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigError(f"--python {python}: cannot run it ({exc})") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ConfigError(f"--python {python}: it is not a working Python ({last})")
    try:
        info = json.loads(done.stdout)
        if not isinstance(info, dict):
            raise ValueError("not a JSON object")
    except ValueError:
        first = (done.stdout.strip().splitlines() or [""])[0][:80]
        raise ConfigError(
            f"--python {python}: it is not a working Python (it answered {first!r} to a Python "
            "program)"
        ) from None
    paths = {key: Path(value) for key, value in info["paths"].items()}
    executable = info["executable"] or python
    tags = tuple(info["tags"]) if isinstance(info.get("tags"), list) else None
    raw_markers = info.get("markers")
    markers = (
        {str(k): str(v) for k, v in raw_markers.items()} if isinstance(raw_markers, dict) else None
    )
    is_current = os.path.realpath(info["prefix"]) == os.path.realpath(sys.prefix) and (
        os.path.realpath(executable) == os.path.realpath(sys.executable)
    )
    if target is not None:
        root = target.absolute()
        return TargetEnvironment(
            interpreter=executable,
            layout="target",
            root=root,
            version=info["version"],
            cache_tag=info["cache_tag"],
            purelib=root,
            platlib=root,
            scripts=root / "bin",
            data=root,
            include=root / "include",
            is_current=is_current,
            full_version=info["full_version"],
            tags=tags,
            markers=markers,
        )
    if prefix is not None:
        root = prefix.absolute()
        include = paths["include"]
    else:
        root = Path(info["prefix"])
        include = (
            root / "include" / "site" / f"python{info['version']}"
            if info["in_venv"]
            else paths["include"]
        )
    return TargetEnvironment(
        interpreter=executable,
        layout=layout,
        root=root,
        version=info["version"],
        cache_tag=info["cache_tag"],
        purelib=paths["purelib"],
        platlib=paths["platlib"],
        scripts=paths["scripts"],
        data=paths["data"],
        include=include,
        is_current=is_current,
        full_version=info["full_version"],
        tags=tags,
        markers=markers,
    )
