"""The library entry points: read, plan and write in one call."""

from __future__ import annotations

from pathlib import Path

from ..rules.config import Config
from ..wheel.source_wheel import read_wheel
from .batch import check_members
from .plan import PatchPlan, Unchanged, plan_patch
from .writer import write_wheel

__all__ = ["patch_wheel", "plan_wheel"]


def plan_wheel(src: Path | str, config: Config, *, strict: bool = False) -> PatchPlan | Unchanged:
    """Read ``src`` and say what patching it would change, writing nothing."""
    return plan_patch(read_wheel(Path(src)), config, strict=strict)


def patch_wheel(
    src: Path | str,
    out_dir: Path | str,
    config: Config,
    *,
    force: bool = False,
    strict: bool = False,
    verify: bool = False,
) -> Path | None:
    """Patch ``src`` into ``out_dir``; return the new wheel's path, or ``None`` when no override
    applies to it (the wheel is then left as it is and nothing is written).

    ``verify`` checks every member's CRC-32, size and RECORD hash before writing."""
    plan = plan_wheel(src, config, strict=strict)
    if isinstance(plan, Unchanged):
        return None
    if verify:
        check_members(plan.wheel)
    return write_wheel(plan, Path(out_dir), force=force)
