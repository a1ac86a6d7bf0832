"""The library check's I/O: the ELF files of wheels (read in parallel, each member only as far as
the loader's tables lie) and of installed distributions, where a wheel's members will be
installed, the system's search directories and ``ld.so.cache``; and the report that joins them
with the loader model of :mod:`.libraries`."""

from __future__ import annotations

import concurrent.futures
import os
import posixpath
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import NormalizedName

from ..wheel.source_wheel import SourceWheel
from .elf import (
    ElfFacts,
    FileKind,
    is_library_name,
    machine_of,
    read_file_facts,
    read_member_facts,
)
from .libraries import (
    ElfObject,
    Missing,
    Provider,
    SystemSearch,
    attribute,
    describe,
    find_missing,
)

__all__ = [
    "CheckedFiles",
    "LibraryReport",
    "check_files",
    "installed_objects",
    "member_paths",
    "planned_exists",
    "removed_requirements",
    "system_search",
    "wheel_objects",
]

#: (e_machine, ELF class) of the target interpreter: ELF files of another are not checked.
Target = tuple[str, int]

_TRIPLETS = {
    ("EM_X86_64", 64): "x86_64-linux-gnu",
    ("EM_AARCH64", 64): "aarch64-linux-gnu",
    ("EM_386", 32): "i386-linux-gnu",
    ("EM_PPC64", 64): "powerpc64le-linux-gnu",
    ("EM_S390", 64): "s390x-linux-gnu",
    ("EM_ARM", 32): "arm-linux-gnueabihf",
    ("EM_RISCV", 64): "riscv64-linux-gnu",
}
#: ``ldconfig -p`` tells each entry's ABI in parentheses: (libc6,x86-64).
_CACHE_FLAGS = {
    ("EM_X86_64", 64): "x86-64",
    ("EM_AARCH64", 64): "AArch64",
    ("EM_PPC64", 64): "64bit",
    ("EM_S390", 64): "64bit",
    ("EM_RISCV", 64): "64bit",
}


@dataclass(frozen=True, slots=True)
class CheckedFiles:
    """The ELF files of one wheel or installed distribution, and what of it was not checked."""

    source: str
    objects: tuple[ElfObject, ...]
    #: Requirements the overrides removed from it (those that may have provided a library).
    removed: tuple[Requirement, ...] = ()
    #: ELF files of another machine or class than the target's.
    foreign: tuple[str, ...] = ()
    #: Library-named members that are Mach-O, PE (DLL) or not executable formats at all.
    macho: tuple[str, ...] = ()
    pe: tuple[str, ...] = ()
    other: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class LibraryReport:
    checked: tuple[CheckedFiles, ...]
    missing: tuple[tuple[Missing, Provider | None], ...]
    lines: tuple[str, ...]
    notes: tuple[str, ...]
    system: str = ""
    removed: tuple[str, ...] = field(default=())

    @property
    def caused_by_removal(self) -> tuple[str, ...]:
        """The lines of libraries a removed requirement would have provided."""
        return tuple(
            line for line, (_, p) in zip(self.lines, self.missing, strict=True) if p is not None
        )

    @property
    def other_missing(self) -> tuple[str, ...]:
        return tuple(
            line for line, (_, p) in zip(self.lines, self.missing, strict=True) if p is None
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "checked": [
                {
                    "source": c.source,
                    "elf_files": [o.origin.split(": ", 1)[-1] for o in c.objects],
                    "removed": [str(r) for r in c.removed],
                    "not_checked": {
                        "other_machine": list(c.foreign),
                        "mach_o": list(c.macho),
                        "windows_dll": list(c.pe),
                        "not_elf": list(c.other),
                    },
                }
                for c in self.checked
            ],
            "missing": [
                {
                    "library": m.library,
                    "needed_by": m.needed_by.origin,
                    "needed_by_path": m.needed_by.path,
                    "looked_in": [{"entry": e, "directory": d or None} for e, d in m.looked],
                    "system": self.system,
                    "removed_requirement": None
                    if p is None
                    else {
                        "requirements": list(p.requirements),
                        "known_from": p.how,
                        "detail": p.detail,
                    },
                    "message": line,
                }
                for line, (m, p) in zip(self.lines, self.missing, strict=True)
            ],
            "notes": list(self.notes),
        }


def member_paths(wheel: SourceWheel, scheme: Mapping[str, str]) -> dict[str, str]:
    """Where each file member of ``wheel`` is installed with installer's ``scheme`` (purelib,
    platlib, scripts, data, headers), as an absolute POSIX path."""
    root_is_purelib = any(
        line.partition(":")[0].strip().lower() == "root-is-purelib"
        and line.partition(":")[2].strip().lower() == "true"
        for line in wheel.wheel_file.decode("utf-8", "replace").splitlines()
    )
    root = scheme["purelib" if root_is_purelib else "platlib"]
    paths = {}
    for member in wheel.archive.members:
        if member.is_dir:
            continue
        top, _, rest = member.name.partition("/")
        if wheel.data_dir is not None and top == wheel.data_dir:
            kind, _, inside = rest.partition("/")
            if kind in scheme and inside:
                paths[member.name] = posixpath.normpath(posixpath.join(scheme[kind], inside))
            continue
        paths[member.name] = posixpath.normpath(posixpath.join(root, member.name))
    return paths


def _classify(
    found: Iterable[tuple[str, str, FileKind, ElfFacts | None]], target: Target, source: str
) -> CheckedFiles:
    objects, foreign, macho, pe, other = [], [], [], [], []
    for name, path, kind, facts in found:
        if kind == "mach-o":
            macho.append(name)
        elif kind == "pe":
            pe.append(name)
        elif facts is None:
            other.append(name)
        elif (facts.machine, facts.elf_class) != target:
            foreign.append(name)
        else:
            objects.append(ElfObject(path, facts, f"{source}: {name}"))
    return CheckedFiles(
        source, tuple(objects), (), tuple(foreign), tuple(macho), tuple(pe), tuple(other)
    )


def _pool_size() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def wheel_objects(
    wheel: SourceWheel,
    paths: Mapping[str, str],
    target: Target,
    source: str | None = None,
    cancel: threading.Event | None = None,
) -> CheckedFiles:
    """The library-named members of ``wheel`` (``paths``: where each is installed), read in
    parallel, largest first (inflating runs outside the GIL); once ``cancel`` is set, reading
    stops at the next block with :class:`~wheelpatch.check.elf.Cancelled`."""
    members = sorted(
        (m for m in wheel.archive.members if m.name in paths and is_library_name(m.name)),
        key=lambda m: (-m.file_size, m.name),
    )
    label = source or f"{wheel.name} {wheel.version}"
    fd = os.open(wheel.path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    try:
        with concurrent.futures.ThreadPoolExecutor(_pool_size()) as pool:
            results = list(
                pool.map(
                    lambda m: read_member_facts(fd, m, f"{wheel.filename}: {m.name}", cancel),
                    members,
                )
            )
    finally:
        os.close(fd)
    found = sorted(
        (
            (m.name, paths[m.name], kind, facts)
            for m, (kind, facts) in zip(members, results, strict=True)
        ),
        key=lambda item: item[0],
    )
    return _classify(found, target, label)


def installed_objects(
    files: Iterable[Path], site: Path, target: Target, source: str
) -> CheckedFiles:
    """The library-named files among ``files`` (an installed distribution's, by RECORD)."""
    chosen = sorted({f for f in files if is_library_name(f.name) and f.is_file()})
    with concurrent.futures.ThreadPoolExecutor(_pool_size()) as pool:
        results = list(pool.map(read_file_facts, chosen))
    found = []
    for path, (kind, facts) in zip(chosen, results, strict=True):
        try:
            name = path.relative_to(site).as_posix()
        except ValueError:
            name = str(path)
        found.append((name, path.as_posix(), kind, facts))
    return _classify(found, target, source)


def _ldconfig_cache(target: Target) -> dict[str, str] | None:
    """``ld.so.cache``'s entries for the target's ABI, as ``ldconfig -p`` prints them."""
    ldconfig = shutil.which("ldconfig") or next(
        (p for p in ("/sbin/ldconfig", "/usr/sbin/ldconfig") if os.path.exists(p)), None
    )
    if ldconfig is None:
        return None
    try:
        done = subprocess.run(
            [ldconfig, "-p"], capture_output=True, text=True, check=False, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    flag = _CACHE_FLAGS.get(target)
    cache: dict[str, str] = {}
    for line in done.stdout.splitlines()[1:]:
        name, sep, rest = line.strip().partition(" (")
        flags, arrow, path = rest.partition(") => ")
        if not sep or not arrow:
            continue
        abi = flags.split(",")
        if flag is not None and flag not in abi:
            continue
        if flag is None and target[1] == 32 and any("64" in part for part in abi[1:]):
            continue
        cache.setdefault(name, path.strip())
    return cache


def _listing(directory: str) -> frozenset[str]:
    try:
        return frozenset(os.listdir(directory))
    except OSError:
        return frozenset()


def _of_target(target: Target) -> Callable[[str], bool]:
    """Whether a file found in a system directory is an ELF file of the target's machine and
    class (glibc passes over a 32-bit /usr/lib/libz.so.1 for a 64-bit process), read once."""
    seen: dict[str, bool] = {}

    def usable(path: str) -> bool:
        if path not in seen:
            seen[path] = machine_of(Path(path)) == target
        return seen[path]

    return usable


def _executable(interpreter: Path | None, target: Target) -> ElfObject | None:
    """The target interpreter as the loader's executable (its RPATH is searched)."""
    if interpreter is None:
        return None
    resolved = Path(os.path.realpath(interpreter))
    _, facts = read_file_facts(resolved)
    if facts is None or (facts.machine, facts.elf_class) != target:
        return None
    return ElfObject(resolved.as_posix(), facts, f"the interpreter {resolved}")


def system_search(
    target: Target, directories: Sequence[Path] | None = None, interpreter: Path | None = None
) -> SystemSearch:
    """The system's libraries for ``target``: ``ld.so.cache`` and the default directories
    (multiarch, lib64, lib), or, when ``directories`` is given, those directories alone; a file
    in them of another class or machine is passed over. ``interpreter`` (the target's
    ``sys.executable``) is the executable whose RPATH the loader searches too."""
    executable = _executable(interpreter, target)
    usable = _of_target(target)
    if directories is not None:
        dirs = [os.path.abspath(d) for d in directories]
        shown = ", ".join(dirs) or "no system directory"
        return SystemSearch(
            {d: _listing(d) for d in dirs},
            {},
            f"the system directories {shown}",
            usable,
            executable,
        )
    triplet = _TRIPLETS.get(target)
    dirs = [f"/lib/{triplet}", f"/usr/lib/{triplet}"] if triplet else []
    if target[1] == 64:
        dirs += ["/lib64", "/usr/lib64"]
    dirs += ["/lib", "/usr/lib"]
    cache = _ldconfig_cache(target)
    description = (
        "ld.so.cache and the default directories"
        if cache is not None
        else ("the default directories (ld.so.cache could not be read: no ldconfig)")
    )
    return SystemSearch(
        {d: _listing(d) for d in dirs}, cache or {}, description, usable, executable
    )


def removed_requirements(changes: Iterable[Any]) -> tuple[Requirement, ...]:
    """The requirements a patch removed, from its changes (``Change`` values or their JSON)."""
    removed = []
    for change in changes:
        get = change.get if isinstance(change, dict) else lambda key, c=change: getattr(c, key)
        if get("field") != "Requires-Dist" or get("action") not in ("removed", "remove"):
            continue
        before = get("before")
        if not isinstance(before, str):
            continue
        try:
            removed.append(Requirement(before))
        except InvalidRequirement:
            continue
    return tuple(removed)


def check_files(
    checked: Sequence[CheckedFiles],
    exists: Callable[[str], bool],
    system: SystemSearch,
    site_dirs: Sequence[str],
    records: Mapping[NormalizedName, Iterable[str]] | None = None,
) -> LibraryReport:
    """Run the loader model over every checked file and say what is missing and why."""
    objects = [obj for files in checked for obj in files.objects]
    removed_by = {id(obj): files.removed for files in checked for obj in files.objects}
    found = find_missing(objects, exists, system)
    record_sets = {name: set(paths) for name, paths in (records or {}).items()}
    # One line per library: the first file needing it is told in full, the others named.
    grouped: dict[str, list[Missing]] = {}
    for item in found:
        grouped.setdefault(item.library, []).append(item)
    pairs = []
    lines = []
    for items in grouped.values():
        first = items[0]
        provider = None
        for item in items:
            provider = attribute(item, removed_by[id(item.needed_by)], record_sets, site_dirs)
            if provider is not None:
                first = item
                break
        others = [item.needed_by for item in items if item is not first]
        pairs.append((first, provider))
        lines.append(describe(first, provider, system, site_dirs, others))
    notes = []
    for files in checked:
        for what, names in (
            ("ELF files of another machine or class than the target interpreter's", files.foreign),
            ("Mach-O files (@rpath, @loader_path: macOS libraries are not checked)", files.macho),
            ("Windows DLLs (PE files: not checked)", files.pe),
            ("library-named files that are not ELF", files.other),
        ):
            if names:
                shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
                notes.append(f"{files.source}: {len(names)} {what} not checked: {shown}")
    removed = sorted({str(r) for files in checked for r in files.removed})
    return LibraryReport(
        tuple(checked),
        tuple(pairs),
        tuple(lines),
        tuple(notes),
        system.description,
        tuple(removed),
    )


def planned_exists(planned: Iterable[str], model_roots: Sequence[str]) -> Callable[[str], bool]:
    """Whether a file will exist: the ``planned`` paths (what is installed and stays) decide
    under ``model_roots`` (the environment's site directories, whose files on disk may be
    replaced); elsewhere, the file system as it is."""
    known = set(planned)
    roots = [r.rstrip("/") + "/" for r in model_roots]

    def exists(path: str) -> bool:
        if path in known:
            return True
        if any(path.startswith(root) for root in roots):
            return False
        return os.path.exists(path)

    return exists
