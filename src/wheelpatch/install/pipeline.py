"""``wheelpatch-install`` as a library call: resolve with pip, then patch and install each wheel.

Every wheel is read, checked and planned before anything is written; each is then installed as
its own transaction (see :mod:`wheelpatch.installation`) while the environment is locked.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..check.libraries import MissingLibraries
from ..errors import EXIT_INPUT, WheelpatchError
from ..patch.provenance import render_generated
from ..rules.config import Config
from ..wheel.digest import FileDigest, HashProcess
from .environment import TargetEnvironment
from .libraries import LibraryCheck
from .resolve import PipOptions, Prepared, mark_installed, resolve
from .stash import lock_file, recover
from .transaction import Installed, direct_url, install_wheel

__all__ = ["WORKDIR_PREFIX", "InstallOutcome", "UnmatchedOverrides", "install"]

#: The temporary directory of each run (pip's report, stand-ins, downloads) is named so.
WORKDIR_PREFIX = "wheelpatch-install-"
#: In each such directory: a file its run holds an ``flock`` on while it lives.
_OWNER = "owner.lock"


class UnmatchedOverrides(WheelpatchError):
    """``--strict``: override tables that match no distribution being installed."""

    exit_code = EXIT_INPUT

    def __init__(self, errors: Sequence[str]) -> None:
        self.errors = tuple(errors)
        super().__init__("; ".join(self.errors))


def sweep_workdirs(parent: Path | None = None) -> list[Path]:
    """Remove the temporary directories of runs that died (SIGKILL, OOM) without removing their
    own; return them. A directory is its run's while the run holds the lock on its owner file,
    which it takes before the file gets that name, so a live run's is never removed."""
    swept: list[Path] = []
    directory = Path(parent or tempfile.gettempdir())
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return swept
    uid = os.getuid() if hasattr(os, "getuid") else None
    for entry in entries:
        if not entry.name.startswith(WORKDIR_PREFIX):
            continue
        try:
            if not entry.is_dir(follow_symlinks=False):
                continue
            if uid is not None and entry.stat(follow_symlinks=False).st_uid != uid:
                continue
            fd = os.open(os.path.join(entry.path, _OWNER), os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            continue  # not one of ours, or its run has not named its owner file yet
        try:
            if lock_file(fd, wait=False):
                shutil.rmtree(entry.path, ignore_errors=True)
                swept.append(Path(entry.path))
        finally:
            os.close(fd)
    return swept


@contextlib.contextmanager
def _workdir() -> Iterator[Path]:
    """A temporary directory for this run, locked as its own, removed at the end; the leftovers
    of dead runs are removed first."""
    sweep_workdirs()
    directory = Path(tempfile.mkdtemp(prefix=WORKDIR_PREFIX))
    try:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(directory / f"{_OWNER}.new", flags, 0o600)
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    try:
        lock_file(fd, wait=True)
        os.rename(directory / f"{_OWNER}.new", directory / _OWNER)
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)
        os.close(fd)


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
    allow_missing_libraries: bool = False,
    system_library_dirs: Sequence[Path] | None = None,
    progress: ProgressFactory | None = None,
    resolved: Callable[[list[Prepared]], None] | None = None,
    notify: Callable[[str], None] | None = None,
    warn: Callable[[str], None] | None = None,
    done: Callable[[InstallOutcome], None] | None = None,
) -> list[InstallOutcome]:
    """Install ``wheels`` (files) and ``requirements`` (pip arguments) into ``env`` with
    ``config``'s overrides applied to every wheel installed.

    Once resolved, each override table that matches no distribution being installed (nor one
    installed already) is a warning given to ``warn``; with ``strict``, it is an
    :class:`UnmatchedOverrides` error before anything is installed.

    Then the patched wheels that lost requirements are checked for native libraries the removal
    leaves unresolved (see :mod:`wheelpatch.install.libraries`; ``system_library_dirs`` replaces
    the system's directories and ld.so.cache): such a library is a
    :class:`~wheelpatch.check.libraries.MissingLibraries` error before anything is written, or
    with ``allow_missing_libraries`` a warning; a missing library no removed requirement is known
    to provide is a warning either way."""
    # The sha256 of each source (provenance, direct_url.json) is hashed in the background from
    # the start, while pip resolves and while members are written.
    pool = HashProcess()
    digests: dict[Path, FileDigest] = {}
    if not dry_run:
        for path in wheels:
            with contextlib.suppress(OSError):  # reading the wheel reports the problem
                digests[path.absolute()] = FileDigest(path, pool)
    try:
        with _workdir() as workdir, LibraryCheck(env, system_library_dirs) as libraries:
            plan = resolve(
                wheels=wheels,
                requirements=requirements,
                config=config,
                env=env,
                options=options or PipOptions(),
                workdir=workdir,
                no_deps=no_deps,
                force_reinstall=force_reinstall,
                strict=strict,
                on_prepared=libraries.start,
            )
            # A table matches when its project is being installed, is installed already, or is
            # required by what is (triton, which the torch override removes, is no misspelling).
            names = [p.name for p in plan] + [d.name for d in env.distributions()]
            names += [n for p in plan for n in p.wheel.requirement_names()]
            unmatched = config.unmatched_overrides(names, "no distribution being installed")
            if unmatched and strict:
                raise UnmatchedOverrides(unmatched)
            if warn is not None:
                for warning in unmatched:
                    warn(warning)
            report = libraries.report(plan)
            if report is not None and report.missing and not allow_missing_libraries:
                # Which removed requirement provided a missing library: known from its wheel's
                # RECORD when pip can fetch that wheel, else guessed from the names.
                records = libraries.records(report, options or PipOptions(), workdir / "removed")
                if records:
                    report = libraries.report(plan, records)
            if report is not None:
                refused = report.caused_by_removal
                refusing = bool(refused) and not allow_missing_libraries
                # Missing without a removal of ours to blame (a GPU driver): warned of, not
                # refused; then the removal's own, as warnings when allowed.
                warned = [*report.other_missing] if refusing else [*refused, *report.other_missing]
                if warn is not None:
                    for line in warned:
                        warn(f"missing library {line}")
                if refusing:
                    raise MissingLibraries([*refused, "--allow-missing-libraries installs anyway"])
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
                    if done is not None:  # the caller can say what stays installed on a failure
                        done(outcomes[-1])
            return outcomes
    finally:
        for digest in digests.values():
            digest.close()
        pool.shutdown()


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
            files.update(render_generated(patch, sha256, _source_date_epoch()))
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
