"""``wheelpatch-install``'s library check: after resolution, before anything is written, the
patched wheels whose overrides removed requirements are checked against what the environment
will hold (the resolution's wheels, the installed distributions that stay) and the system.

Reading a wheel's ELF files is most of the check's time (the torch wheel's libraries must be
inflated nearly whole), so it starts in the background as soon as resolution has read and
planned a patched wheel, while pip resolves the rest."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import posixpath
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from packaging.utils import NormalizedName

from ..check.elf import machine_of
from ..check.native import (
    CheckedFiles,
    LibraryReport,
    check_files,
    member_paths,
    planned_exists,
    removed_requirements,
    system_search,
    wheel_objects,
)
from ..errors import InvalidWheel
from ..wheel.source_wheel import read_wheel
from .environment import TargetEnvironment
from .resolve import PipOptions, Prepared, download_wheels

__all__ = ["LibraryCheck"]


class LibraryCheck:
    """The library check of one install: :meth:`start` reads a prepared wheel's ELF files in
    the background, :meth:`report` joins them with the rest once resolution is done; use it as
    a context manager (the background thread is waited for at the end)."""

    def __init__(self, env: TargetEnvironment, system_dirs: Sequence[Path] | None = None) -> None:
        self._env = env
        self._system_dirs = system_dirs
        self._target = machine_of(Path(env.interpreter).resolve())
        self._pool = concurrent.futures.ThreadPoolExecutor(
            1, thread_name_prefix="wheelpatch-libraries"
        )
        self._reads: dict[Path, concurrent.futures.Future[CheckedFiles]] = {}
        #: The directories that will hold files once installed (known after :meth:`report`).
        self._planned_dirs: set[str] = set()

    def __enter__(self) -> LibraryCheck:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def start(self, prepared: Prepared) -> None:
        """Begin reading the ELF files of ``prepared`` if its patch removed requirements (no
        target machine: nothing is checked)."""
        patch = prepared.patch
        if self._target is None or patch is None or not removed_requirements(patch.changes):
            return
        path = prepared.wheel.path.absolute()
        if path not in self._reads:
            paths = member_paths(prepared.wheel, self._env.scheme(prepared.name))
            label = f"{prepared.name} {prepared.version}"
            self._reads[path] = self._pool.submit(
                wheel_objects, prepared.wheel, paths, self._target, label
            )

    def report(
        self,
        plan: Sequence[Prepared],
        records: Mapping[NormalizedName, Iterable[str]] | None = None,
    ) -> LibraryReport | None:
        """The report of the patched wheels in ``plan`` that lost requirements, or None when
        there are none (or the target interpreter is no ELF file: nothing is checked).
        ``records`` gives the install paths of removed requirements' wheels, by project."""
        for prepared in plan:
            self.start(prepared)
        patched = [p for p in plan if p.wheel.path.absolute() in self._reads]
        if not patched or self._target is None:
            return None
        installing = {p.name for p in plan}
        planned: set[str] = set()
        for prepared in plan:
            planned.update(member_paths(prepared.wheel, self._env.scheme(prepared.name)).values())
        for dist in self._env.distributions():
            if dist.name not in installing:
                planned.update(path.as_posix() for path in dist.files())
        self._planned_dirs = {posixpath.dirname(path) for path in planned}
        checked = []
        for prepared in patched:
            assert prepared.patch is not None
            files = self._reads[prepared.wheel.path.absolute()].result()
            checked.append(
                dataclasses.replace(files, removed=removed_requirements(prepared.patch.changes))
            )
        site_dirs = [d.as_posix() for d in self._env.site_dirs]
        return check_files(
            checked,
            planned_exists(planned, site_dirs),
            system_search(self._target, self._system_dirs),
            site_dirs,
            records,
        )

    def records(
        self, report: LibraryReport, options: PipOptions, directory: Path
    ) -> dict[NormalizedName, list[str]]:
        """Where the wheels of the requirements ``report`` says were removed would install their
        files: the wheels are downloaded by pip (without dependencies, from the user's indexes),
        read and checked; one that cannot be found or read is left out.

        pip is asked only when a missing library was looked for in a directory of site-packages
        that nothing installed will hold, the sign that a removed distribution would have made
        it: the driver's libcuda.so.1, looked for where torch's CUDA wheels put their
        libraries, does not send pip after triton when only triton was removed."""
        records: dict[NormalizedName, list[str]] = {}
        site_dirs = [d.as_posix().rstrip("/") + "/" for d in self._env.site_dirs]
        if not any(
            directory.startswith(tuple(site_dirs)) and directory not in self._planned_dirs
            for missing, _ in report.missing
            for _, directory in missing.looked
        ):
            return records
        for path in download_wheels(report.removed, self._env, options, directory):
            try:
                wheel = read_wheel(path)
            except InvalidWheel:
                continue
            paths = member_paths(wheel, self._env.scheme(wheel.name))
            records.setdefault(wheel.name, []).extend(paths.values())
        return records
