"""``wheelpatch-install`` as a library call: resolve with pip, then patch and install each wheel.

Every wheel is read, checked and planned before anything is written; each is then installed as
its own transaction (see :mod:`wheelpatch.installation`) while the environment is locked.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import Config
from .digest import FileDigest
from .environment import TargetEnvironment
from .installation import Installed, direct_url, install_wheel
from .plan import PROVENANCE_NAME
from .provenance import render_provenance
from .resolve import PipOptions, Prepared, mark_installed, resolve
from .stash import recover

__all__ = ["InstallOutcome", "install"]

#: Told each wheel as it starts (prepared, total uncompressed bytes); returns a callback that is
#: given the bytes of each member written.
ProgressFactory = Callable[[Prepared, int], Callable[[int], None] | None]


@dataclass(frozen=True, slots=True)
class InstallOutcome:
    prepared: Prepared
    #: None for a dry run or a wheel that was already installed.
    installed: Installed | None

    @property
    def status(self) -> str:
        if self.prepared.skip:
            return self.prepared.skip
        return "installed" if self.installed is not None else "would install"

    def as_json(self) -> dict[str, Any]:
        prepared = self.prepared
        patch = prepared.patch
        return {
            "name": prepared.name,
            "version": str(prepared.version),
            "source": prepared.origin or str(prepared.wheel.path),
            "status": self.status,
            "requested": prepared.requested,
            "patched": patch is not None,
            "original_version": str(prepared.wheel.version),
            "changes": [c.as_json() for c in patch.changes] if patch is not None else [],
            "replaced": list(self.installed.replaced) if self.installed is not None else [],
        }


def _source_date_epoch() -> str | None:
    value = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    return value if value.isdigit() else None


def install(
    *,
    wheels: Sequence[Path],
    requirements: Sequence[str],
    config: Config,
    env: TargetEnvironment,
    options: PipOptions | None = None,
    no_deps: bool = False,
    force_reinstall: bool = False,
    compile_bytecode: bool = True,
    dry_run: bool = False,
    strict: bool = False,
    progress: ProgressFactory | None = None,
    resolved: Callable[[list[Prepared]], None] | None = None,
    notify: Callable[[str], None] | None = None,
) -> list[InstallOutcome]:
    """Install ``wheels`` (files) and ``requirements`` (pip arguments) into ``env`` with
    ``config``'s overrides applied to every wheel installed."""
    # The sha256 of each source (provenance, direct_url.json) is hashed in the background from
    # the start, while pip resolves and while members are written.
    pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="wheelpatch-hash")
    digests: dict[Path, FileDigest] = {}
    if not dry_run:
        for path in wheels:
            with contextlib.suppress(OSError):  # reading the wheel reports the problem
                digests[path.absolute()] = FileDigest(path, pool)
    try:
        with tempfile.TemporaryDirectory(prefix="wheelpatch-install-") as workdir:
            plan = resolve(
                wheels=wheels,
                requirements=requirements,
                config=config,
                env=env,
                options=options or PipOptions(),
                workdir=Path(workdir),
                no_deps=no_deps,
                force_reinstall=force_reinstall,
                strict=strict,
            )
            if resolved is not None:
                resolved(plan)
            if dry_run:
                mark_installed(plan, env, force_reinstall=force_reinstall)
                return [InstallOutcome(p, None) for p in plan]
            for prepared in plan:
                path = prepared.wheel.path.absolute()
                if prepared.patch is not None and path not in digests:
                    digests[path] = FileDigest(path, pool)
            outcomes = []
            with env.lock():
                for note in recover(env.root):
                    if notify is not None:
                        notify(note)
                # Decided under the lock: another install may have just finished.
                mark_installed(plan, env, force_reinstall=force_reinstall)
                for prepared in plan:
                    installed = None
                    if prepared.skip is None:
                        digest = digests.get(prepared.wheel.path.absolute())
                        installed = _install_one(prepared, env, digest, compile_bytecode, progress)
                    outcomes.append(InstallOutcome(prepared, installed))
            return outcomes
    finally:
        for digest in digests.values():
            digest.close()
        pool.shutdown(wait=True)


def _install_one(
    prepared: Prepared,
    env: TargetEnvironment,
    digest: FileDigest | None,
    compile_bytecode: bool,
    progress: ProgressFactory | None,
) -> Installed:
    patch = prepared.patch

    def late() -> dict[str, bytes]:
        files: dict[str, bytes] = {}
        if digest is None:
            return files
        sha256 = digest.result()
        if patch is not None:
            files[PROVENANCE_NAME] = render_provenance(patch, sha256, _source_date_epoch())
        if prepared.given_path:
            files["direct_url.json"] = direct_url(prepared.wheel.path, sha256)
        return files

    wheel = prepared.wheel
    skipped = {wheel.record_path} | (patch.replaced if patch is not None else set())
    total = sum(m.file_size for m in wheel.archive.members if m.name not in skipped)
    callback = progress(prepared, total) if progress is not None else None
    return install_wheel(
        prepared.wheel,
        patch,
        env,
        requested=prepared.requested,
        late=late,
        compile_bytecode=compile_bytecode,
        progress=callback,
    )
