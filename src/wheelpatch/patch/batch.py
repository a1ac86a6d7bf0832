"""Patching many wheels as one transaction: plan every wheel, write every output, then move them
all into place. A wheel that cannot be patched means nothing is written."""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InvalidWheel, OutputError, WheelpatchError
from ..rules.config import Config
from ..wheel.digest import FileDigest
from ..wheel.source_wheel import SourceWheel, read_wheel
from ..wheel.verify import verify_members
from .plan import PatchPlan, Unchanged, plan_patch
from .writer import StagedWheel, stage_wheel

__all__ = ["Batch", "check_members", "plan_batch", "result_json", "write_batch"]


@dataclass(slots=True)
class Batch:
    """What each wheel (by its position in the input) would become, and what went wrong."""

    plans: dict[int, PatchPlan | Unchanged] = field(default_factory=dict)
    failures: dict[int, WheelpatchError] = field(default_factory=dict)
    #: The outputs moved into place so far (all of them once :func:`write_batch` returns).
    written: dict[int, Path] = field(default_factory=dict)

    @property
    def warnings(self) -> list[str]:
        return [w for p in self.plans.values() if isinstance(p, PatchPlan) for w in p.warnings]

    @property
    def to_write(self) -> dict[int, PatchPlan]:
        return {i: p for i, p in self.plans.items() if isinstance(p, PatchPlan)}


def plan_batch(
    paths: Iterable[Path],
    config: Config,
    *,
    strict: bool = False,
    verify: bool = False,
    digests: MutableMapping[int, FileDigest] | None = None,
) -> Batch:
    """Read and plan every wheel; the hashes of wheels that will not be written are stopped.

    With ``verify``, every member of a wheel to be patched is decompressed and checked first
    (copying raw compressed bytes checks no CRC)."""
    batch = Batch()
    outputs: dict[str, Path] = {}
    for index, path in enumerate(paths):
        try:
            plan = plan_patch(read_wheel(path), config, strict=strict)
            if verify and isinstance(plan, PatchPlan):
                check_members(plan.wheel)
        except WheelpatchError as exc:
            batch.failures[index] = exc
            continue
        batch.plans[index] = plan
        if isinstance(plan, PatchPlan):
            first = outputs.setdefault(plan.filename, plan.wheel.path)
            if first != plan.wheel.path:
                batch.failures[index] = InvalidWheel(
                    f"{plan.wheel.filename}: would be written as {plan.filename}, like "
                    f"{first.name}; patch them in separate runs"
                )
    if digests is not None:
        for index in list(digests):
            if index not in batch.to_write:
                digests.pop(index).close()
    return batch


def check_members(wheel: SourceWheel) -> None:
    """Raise :class:`InvalidWheel` naming every member whose data is not what it claims."""
    problems = verify_members(wheel)
    if problems:
        raise InvalidWheel("; ".join(problems))


def write_batch(
    batch: Batch,
    out_dir: Path,
    *,
    force: bool = False,
    digests: MutableMapping[int, FileDigest] | None = None,
) -> dict[int, Path]:
    """Stage every output, then move them all into place.

    A failure is recorded in ``batch.failures`` under the wheel it concerns, then raised;
    ``batch.written`` then says which outputs are in place (none, unless moving one failed)."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(
            f"{out_dir}: cannot create the output directory ({exc.strerror})"
        ) from None
    staged: dict[int, StagedWheel] = {}
    digests = digests if digests is not None else {}
    index = -1
    try:
        for index, plan in batch.to_write.items():
            staged[index] = stage_wheel(plan, out_dir, force=force, digest=digests.pop(index, None))
        for index, item in list(staged.items()):
            batch.written[index] = item.commit(force=force)
            del staged[index]
    except WheelpatchError as exc:
        batch.failures[index] = exc
        raise
    finally:
        for item in staged.values():
            item.discard()
    return dict(batch.written)


def result_json(
    plan: PatchPlan | Unchanged,
    output: Path | None,
    dry_run: bool,
    not_written: str | None = None,
) -> dict[str, Any]:
    """One wheel's outcome as the ``--json`` reports print it.

    ``not_written`` says why a wheel that would have been patched was not (a failure elsewhere in
    the batch); its status is then ``not-written``."""
    if isinstance(plan, Unchanged):
        return {"source": str(plan.wheel.path), "status": "unchanged", "reason": plan.reason}
    status = "would-patch" if dry_run else "patched" if output else "not-written"
    result: dict[str, Any] = {
        "source": str(plan.wheel.path),
        "status": status,
        "output": str(output) if output else None,
        "filename": plan.filename,
        "old_version": str(plan.old_version),
        "new_version": str(plan.new_version),
        "changes": [c.as_json() for c in plan.changes],
        "dropped": list(plan.dropped),
        "warnings": list(plan.warnings),
    }
    if status == "not-written":
        result["reason"] = not_written or "not written"
    return result
