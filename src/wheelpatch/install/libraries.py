"""``wheelpatch-install``'s library check: after resolution, before anything is written, the
patched wheels whose overrides removed requirements are checked against what the environment
will hold (the resolution's wheels, the installed distributions that stay) and the system.

Reading a wheel's ELF files is most of the check's time (the torch wheel's libraries must be
inflated nearly whole), so it starts in the background as soon as resolution has read and
planned a patched wheel, while pip resolves the rest.

On a refusal, the wheels of the removed requirements the names point to (only those) may be
downloaded to read their RECORDs: see :meth:`LibraryCheck.records` for when."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import threading
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

__all__ = ["DOWNLOAD_TIMEOUT", "LibraryCheck"]

#: Seconds the removed requirements' wheels may take to download, all together; those not
#: there by then are left out (their libraries stay guessed from the names).
DOWNLOAD_TIMEOUT = 60.0


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
        #: Set when the install ends: a read still under way stops at its next block.
        self._cancel = threading.Event()
        #: Whether pip found any wheel of the install (on an index or in --find-links); known
        #: after :meth:`report`.
        self._resolved_by_pip = False

    def __enter__(self) -> LibraryCheck:
        return self

    def __exit__(self, *exc: object) -> None:
        # An install that fails or is interrupted does not wait for the torch wheel's inflate.
        self._cancel.set()
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
                wheel_objects, prepared.wheel, paths, self._target, label, self._cancel
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
        self._resolved_by_pip = any(not p.given_path for p in plan)
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
            system_search(self._target, self._system_dirs, Path(self._env.interpreter)),
            site_dirs,
            records,
        )

    def records(
        self, report: LibraryReport, options: PipOptions, directory: Path
    ) -> dict[NormalizedName, list[str]]:
        """Where the wheels of the removed requirements ``report`` guesses provided a missing
        library would install their files: those wheels (no other) are downloaded by pip,
        without dependencies and within :data:`DOWNLOAD_TIMEOUT` seconds, read and checked; one
        that cannot be found, read or downloaded in time is left out.

        pip is asked only where the install itself asked it: when pip found a wheel of the
        install, with the user's index options (never with ``--no-index`` and no
        ``--find-links``); for wheel files given with ``--no-deps`` (pip not run), only the
        ``--find-links`` given, with ``--no-index``. A private requirement's name is then never
        sent to an index the install did not use, nor a public project of that name taken for
        it."""
        records: dict[NormalizedName, list[str]] = {}
        wanted = list(
            dict.fromkeys(
                requirement
                for _, provider in report.missing
                if provider is not None and provider.how == "likely"
                for requirement in provider.requirements
            )
        )
        if not wanted or (options.no_index and not options.find_links):
            return records
        if not self._resolved_by_pip:
            if not options.find_links:
                return records
            options = PipOptions(
                find_links=options.find_links,
                no_index=True,
                ignore_requires_python=options.ignore_requires_python,
            )
        found = download_wheels(wanted, self._env, options, directory, timeout=DOWNLOAD_TIMEOUT)
        for path in found:
            try:
                wheel = read_wheel(path)
            except InvalidWheel:
                continue
            paths = member_paths(wheel, self._env.scheme(wheel.name))
            records.setdefault(wheel.name, []).extend(paths.values())
        return records
