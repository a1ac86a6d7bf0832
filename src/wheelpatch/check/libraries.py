"""A model of the dynamic loader, pure: given the ELF files that will be installed (with their
install paths), the files that will exist beside them and the system's libraries, which
``DT_NEEDED`` entries resolve nowhere, where they were looked for, and which requirement an
override removed would have provided them.

The rules are glibc's (``ld.so(8)``): a name with a ``/`` is a path; otherwise the needing file's
``DT_RUNPATH``, or when it has none, the ``DT_RPATH`` of the needing file and then of each file
that loaded it (those without a RUNPATH of their own), ``$ORIGIN`` being the directory of the file
whose tag it is; then ``ld.so.cache`` and the default directories. A library already loaded
satisfies a later need for its SONAME. Each file checked is loaded as a root of its own (it may be
imported or dlopened directly), breadth first as ld.so loads; a need counts as met when it resolves
in at least one of the loads its file takes part in. The executable's own ``DT_RPATH`` (a conda
python's ``$ORIGIN/../lib``) is searched after the loaders' for a file without a RUNPATH, as
glibc does, when the executable has no RUNPATH. ``LD_LIBRARY_PATH`` and libraries that another
import loaded earlier are not counted on: what an installation provides is checked, not the
state of one shell or process.

``$ORIGIN``, ``$LIB`` and ``$PLATFORM`` are expanded where glibc would (alone, braced, or
followed by ``/``); ``$LIB`` and ``$PLATFORM`` depend on how the system's glibc was built and are
not guessed: an entry using one that is not known is listed as unknown, not searched.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name

from ..errors import EXIT_MISSING_LIBRARIES, WheelpatchError
from .elf import ElfFacts

__all__ = [
    "EXIT_MISSING_LIBRARIES",
    "ElfObject",
    "Missing",
    "MissingLibraries",
    "Provider",
    "SystemSearch",
    "attribute",
    "describe",
    "find_missing",
]


#: Whether a file will exist at an absolute path once installed.
Exists = Callable[[str], bool]


@dataclass(frozen=True, slots=True)
class ElfObject:
    """An ELF file as it will be installed."""

    #: Its absolute install path (POSIX).
    path: str
    facts: ElfFacts
    #: Who ships it and under which name, for messages: ``consumer 1.0: consumer/_ext.so``.
    origin: str

    @property
    def directory(self) -> str:
        return posixpath.dirname(self.path)


@dataclass(frozen=True, slots=True)
class SystemSearch:
    """The system's part of the search: the default directories (their files listed) and the
    entries of ``ld.so.cache`` for the target's machine; and what the process brings: the
    target interpreter (the executable, whose RPATH is searched) and the values of ``$LIB`` and
    ``$PLATFORM`` when they are known (None: not known, entries using them are not searched)."""

    directories: Mapping[str, frozenset[str]]
    cache: Mapping[str, str]
    #: How it was made, for messages ("ld.so.cache and /lib, /usr/lib", or a test's directory).
    description: str
    #: Whether a file found in one of ``directories`` is one the loader would take (an ELF file
    #: of the target's class and machine): glibc skips another and searches on.
    usable: Callable[[str], bool] | None = None
    executable: ElfObject | None = None
    lib: str | None = None
    platform: str | None = None

    def find(self, name: str) -> str | None:
        if name in self.cache:
            return self.cache[name]
        for directory, names in self.directories.items():
            if name in names:
                path = posixpath.join(directory, name)
                if self.usable is None or self.usable(path):
                    return path
        return None


@dataclass(frozen=True, slots=True)
class Missing:
    """A needed library that resolves nowhere."""

    library: str
    needed_by: ElfObject
    #: The directories searched before the system's, in order: (as the tag says, expanded);
    #: the expanded directory is ``""`` for an entry that could not be expanded (``$LIB`` or
    #: ``$PLATFORM`` not known), which was therefore not searched.
    looked: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Provider:
    """The removed requirement that would have provided a missing library, and how that is
    known: from its wheel's RECORD, or guessed from the names (``likely``)."""

    requirements: tuple[str, ...]
    how: Literal["record", "likely"]
    detail: str


class MissingLibraries(WheelpatchError):
    """Libraries the installation would leave unresolved; ``errors`` holds one line each."""

    exit_code = EXIT_MISSING_LIBRARIES

    def __init__(self, errors: Sequence[str]) -> None:
        self.errors = tuple(errors)
        super().__init__("; ".join(self.errors))


#: A dynamic string token where glibc takes one: braced, or followed by ``/`` or the end
#: (``$ORIGIN_x`` is no token: its ``$`` stays literal).
_TOKEN = re.compile(r"\$(?:\{(ORIGIN|LIB|PLATFORM)\}|(ORIGIN|LIB|PLATFORM)(?=/|$))")
#: What :func:`_expand` gives for an entry whose ``$LIB`` or ``$PLATFORM`` is not known.
UNKNOWN = ""


def _expand(entry: str, owner: ElfObject, system: SystemSearch) -> str | None:
    """A RUNPATH/RPATH entry as a directory; :data:`UNKNOWN` when it uses ``$LIB`` or
    ``$PLATFORM`` and their value is not known; None when it is relative to the working
    directory (not knowable here)."""
    values = {"ORIGIN": owner.directory, "LIB": system.lib, "PLATFORM": system.platform}
    unknown = False

    def substitute(match: re.Match[str]) -> str:
        nonlocal unknown
        value = values[match.group(1) or match.group(2)]
        if value is None:
            unknown = True
            return ""
        return value

    value = _TOKEN.sub(substitute, entry)
    if unknown:
        return UNKNOWN
    if not value.startswith("/"):
        return None
    return posixpath.normpath(value)


def _search_dirs(
    obj: ElfObject, chain: Sequence[ElfObject], system: SystemSearch
) -> list[tuple[str, str]]:
    """The directories searched for ``obj``'s needs when it was loaded through ``chain`` (its
    loaders, nearest first), then, for a file without RUNPATH, the executable's RPATH."""
    if obj.facts.runpath is not None:
        tagged = [(entry, obj) for entry in obj.facts.runpath]
    else:
        tagged = [
            (entry, loader)
            for loader in (obj, *chain)
            if loader.facts.runpath is None
            for entry in loader.facts.rpath or ()
        ]
        executable = system.executable
        if executable is not None and executable.facts.runpath is None:
            tagged += [(entry, executable) for entry in executable.facts.rpath or ()]
    dirs: dict[tuple[str, str], None] = {}
    for entry, owner in tagged:
        expanded = _expand(entry, owner, system)
        if expanded is not None:
            dirs.setdefault((entry, expanded))
    return list(dirs)


def find_missing(
    objects: Sequence[ElfObject],
    exists: Exists,
    system: SystemSearch,
    *,
    more: Mapping[str, ElfObject] | None = None,
) -> tuple[Missing, ...]:
    """Every need of ``objects`` that resolves nowhere, in the order of ``objects`` and of their
    ``DT_NEEDED`` entries. ``exists`` says whether a file will exist at a path; ``more`` gives
    the facts of other ELF files by path, followed when a library resolves to one of them."""
    by_path = {**(more or {}), **{obj.path: obj for obj in objects}}
    met: set[tuple[str, str]] = set()
    #: For each unmet need, what was looked through when its file was loaded most directly, and
    #: where the need stands in its file's DT_NEEDED (the report's order).
    unmet: dict[tuple[str, str], tuple[int, int, Missing]] = {}
    for root in objects:
        loaded: set[str] = set()
        queue: list[tuple[ElfObject, tuple[ElfObject, ...]]] = [(root, ())]
        seen = {root.path}
        if root.facts.soname:
            loaded.add(root.facts.soname)
        while queue:
            obj, chain = queue.pop(0)
            for position, name in enumerate(obj.facts.needed):
                key = (obj.path, name)
                if name in loaded:
                    met.add(key)
                    continue
                found, looked = _resolve(name, obj, chain, exists, system)
                if found is None:
                    if key not in unmet or unmet[key][0] > len(chain):
                        first = unmet[key][1] if key in unmet else position
                        unmet[key] = (len(chain), first, Missing(name, obj, tuple(looked)))
                    continue
                met.add(key)
                loaded.add(name)
                target = by_path.get(found)
                if target is not None and target.path not in seen:
                    seen.add(target.path)
                    if target.facts.soname:
                        loaded.add(target.facts.soname)
                    queue.append((target, (obj, *chain)))
    order = {obj.path: index for index, obj in enumerate(objects)}
    keys = sorted(
        (key for key in unmet if key not in met),
        key=lambda key: (order.get(key[0], len(order)), unmet[key][1]),
    )
    return tuple(unmet[key][2] for key in keys)


def _resolve(
    name: str,
    obj: ElfObject,
    chain: Sequence[ElfObject],
    exists: Exists,
    system: SystemSearch,
) -> tuple[str | None, list[tuple[str, str]]]:
    if "/" in name:
        if not name.startswith("/"):
            return name, []  # relative to the working directory: not knowable here
        path = posixpath.normpath(name)
        return (path if exists(path) else None), []
    looked = _search_dirs(obj, chain, system)
    for _, directory in looked:
        if directory == UNKNOWN:
            continue
        candidate = posixpath.join(directory, name)
        if exists(candidate):
            return candidate, looked
    return system.find(name), looked


# --- which removed requirement would have provided it -----------------------------------------

_GENERIC = re.compile(r"^(?:nvidia|lib|lib64|libs|bin|python|cuda|cu\d+|\.libs|.*\.libs)$")


def _library_stem(name: str) -> str:
    base = name.rsplit("/", 1)[-1].lower()
    stem = base.split(".so", 1)[0].split(".dylib", 1)[0]
    return stem.removeprefix("lib")


def _tokens(requirement: Requirement) -> set[str]:
    """The words naming a requirement: its name, the parts of it that are not generic (nvidia,
    cuda, cu13, ...: the driver's libcuda.so.1 is no part of cuda-toolkit) and its extras."""
    name = canonicalize_name(requirement.name)
    parts = {part for part in name.split("-") if not _GENERIC.match(part)}
    return {name, *parts, *(canonicalize_name(e) for e in requirement.extras)}


def attribute(
    missing: Missing,
    removed: Sequence[Requirement],
    records: Mapping[NormalizedName, Iterable[str]],
    site_dirs: Sequence[str],
) -> Provider | None:
    """Which requirement in ``removed`` would have provided ``missing``: known when the install
    paths ``records`` lists for it (from its wheel's RECORD) include a place the loader looked,
    else likely when the library's name (``libcudnn.so.9``: cudnn) or a directory searched under
    site-packages (``nvidia/cudnn/lib``) names it or one of its extras; None if none does.

    A requirement whose RECORD is known and lists none of those places is not guessed at: the
    library would be missing with it installed too."""
    places = {
        posixpath.join(directory, missing.library)
        for _, directory in missing.looked
        if directory != UNKNOWN
    }
    guessable = []
    for requirement in removed:
        files = records.get(canonicalize_name(requirement.name))
        if files is None:
            guessable.append(requirement)
            continue
        hit = sorted(places.intersection(files))
        if hit:
            relative = _under(posixpath.dirname(hit[0]), site_dirs)
            shown = f"site-packages/{relative}/{missing.library}" if relative else hit[0]
            return Provider((str(requirement),), "record", f"its wheel's RECORD lists {shown}")
    stem = _library_stem(missing.library)
    stem_tokens = {stem, *re.split(r"[-_.]", stem)}
    by_name = [r for r in guessable if {t for t in stem_tokens if len(t) >= 3} & _tokens(r)]
    if by_name:
        exact = [r for r in by_name if stem in _tokens(r)]
        chosen = exact or by_name
        return Provider(
            tuple(str(r) for r in chosen), "likely", f"the library's name {missing.library!r}"
        )
    # A directory searched names a removed requirement: telling only when exactly one does (torch
    # searches nvidia/cudnn/lib, nvidia/nccl/lib, ... for every library it needs), and that one
    # is not cleared by its RECORD (one cleared still counts: it leaves the others unsure).
    by_directory: dict[str, tuple[str, str]] = {}
    for entry, directory in missing.looked:
        relative = _under(directory, site_dirs)
        if relative is None:
            continue
        parts = {p.lower() for p in relative.split("/") if p and not _GENERIC.match(p.lower())}
        for requirement in removed:
            if parts & _tokens(requirement):
                by_directory.setdefault(str(requirement), (entry, relative))
    if len(by_directory) == 1 and any(str(r) in by_directory for r in guessable):
        ((text, (entry, relative)),) = by_directory.items()
        return Provider((text,), "likely", f"the search path {entry!r}, site-packages/{relative}")
    return None


def _under(directory: str, site_dirs: Sequence[str]) -> str | None:
    for site in site_dirs:
        if directory == site or directory.startswith(site.rstrip("/") + "/"):
            return directory[len(site.rstrip("/")) + 1 :]
    return None


def _unknown_tokens(entry: str, system: SystemSearch) -> str:
    known = {"ORIGIN", *(["LIB"] if system.lib else []), *(["PLATFORM"] if system.platform else [])}
    names = sorted({m.group(1) or m.group(2) for m in _TOKEN.finditer(entry)} - known)
    return " and ".join(f"${name}" for name in names) or "its value"


def describe(
    missing: Missing,
    provider: Provider | None,
    system: SystemSearch,
    site_dirs: Sequence[str],
    others: Sequence[ElfObject] = (),
) -> str:
    """One line: the library, the file that needs it (and how many more do), where it was looked
    for, and the removed requirement that would have put it there."""
    places = []
    for entry, directory in missing.looked:
        if directory == UNKNOWN:
            places.append(f"{entry!r} (not searched: {_unknown_tokens(entry, system)} not known)")
            continue
        relative = _under(directory, site_dirs)
        places.append(f"site-packages/{relative}" if relative is not None else directory)
    where = ", ".join([*places, system.description])
    needed_by = missing.needed_by.origin
    if others:
        names = ", ".join(o.origin.split(": ", 1)[-1] for o in others[:3])
        more = ", ..." if len(others) > 3 else ""
        needed_by += f" (and {len(others)} more: {names}{more})"
    line = f"{missing.library}: needed by {needed_by}; looked for in {where}"
    if provider is None:
        return line + "; no requirement the overrides removed is known to provide it"
    names = " or ".join(repr(r) for r in provider.requirements)
    if provider.how == "record":
        return line + f"; the removed requirement {names} provides it ({provider.detail})"
    return line + f"; likely provided by the removed requirement {names} (from {provider.detail})"
