"""``wheelpatch-install``'s library check: after resolution, before anything is written, the
patched wheels whose overrides removed requirements are checked against what the environment
will hold (the resolution's wheels, the installed distributions that stay) and the system."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from ..check.elf import machine_of
from ..check.native import (
    LibraryReport,
    check_files,
    member_paths,
    planned_exists,
    removed_requirements,
    system_search,
    wheel_objects,
)
from .environment import TargetEnvironment
from .resolve import Prepared

__all__ = ["check_resolution"]


def check_resolution(
    plan: Sequence[Prepared],
    env: TargetEnvironment,
    *,
    system_dirs: Sequence[Path] | None = None,
) -> LibraryReport | None:
    """The library report of the patched wheels in ``plan`` that lost requirements, or None
    when there are none (or the target interpreter is no ELF file: nothing is checked)."""
    patched = [(p, removed_requirements(p.patch.changes)) for p in plan if p.patch is not None]
    patched = [(p, removed) for p, removed in patched if removed]
    if not patched:
        return None
    target = machine_of(Path(env.interpreter).resolve())
    if target is None:
        return None
    installing = {p.name for p in plan}
    planned: set[str] = set()
    paths = {}
    for prepared in plan:
        paths[id(prepared)] = member_paths(prepared.wheel, env.scheme(prepared.name))
        planned.update(paths[id(prepared)].values())
    for dist in env.distributions():
        if dist.name not in installing:
            planned.update(path.as_posix() for path in dist.files())
    checked = [
        dataclasses.replace(
            wheel_objects(p.wheel, paths[id(p)], target, f"{p.name} {p.version}"),
            removed=removed,
        )
        for p, removed in patched
    ]
    site_dirs = [d.as_posix() for d in env.site_dirs]
    return check_files(
        checked, planned_exists(planned, site_dirs), system_search(target, system_dirs), site_dirs
    )
