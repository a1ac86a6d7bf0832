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
in at least one of the loads its file takes part in. ``LD_LIBRARY_PATH``, the executable's own RPATH
(python's) and libraries that another import loaded earlier are not counted on: what an
installation provides is checked, not the state of one shell or process.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name

from ..errors import WheelpatchError
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

#: ``wheelpatch check libraries`` and ``wheelpatch-install``: a library would be missing.
EXIT_MISSING_LIBRARIES = 6

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
    entries of ``ld.so.cache`` for the target's machine."""

    directories: Mapping[str, frozenset[str]]
    cache: Mapping[str, str]
    #: How it was made, for messages ("ld.so.cache and /lib, /usr/lib", or a test's directory).
    description: str

    def find(self, name: str) -> str | None:
        if name in self.cache:
            return self.cache[name]
        for directory, names in self.directories.items():
            if name in names:
                return posixpath.join(directory, name)
        return None


@dataclass(frozen=True, slots=True)
class Missing:
    """A needed library that resolves nowhere."""

    library: str
    needed_by: ElfObject
    #: The directories searched before the system's, in order: (as the tag says, expanded).
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


def _expand(entry: str, owner: ElfObject) -> str | None:
    """A RUNPATH/RPATH entry as a directory, or None where it cannot be known (relative to the
    working directory, or ``$PLATFORM``)."""
    value = entry.replace("${ORIGIN}", "$ORIGIN").replace("$ORIGIN", owner.directory)
    value = value.replace("${LIB}", "$LIB").replace(
        "$LIB", "lib64" if owner.facts.elf_class == 64 else "lib"
    )
    if "$" in value or not value.startswith("/"):
        return None
    return posixpath.normpath(value)


def _search_dirs(obj: ElfObject, chain: Sequence[ElfObject]) -> list[tuple[str, str]]:
    """The directories searched for ``obj``'s needs when it was loaded through ``chain`` (its
    loaders, nearest first)."""
    if obj.facts.runpath is not None:
        tagged = [(entry, obj) for entry in obj.facts.runpath]
    else:
        tagged = [
            (entry, loader)
            for loader in (obj, *chain)
            if loader.facts.runpath is None
            for entry in loader.facts.rpath or ()
        ]
    dirs: list[tuple[str, str]] = []
    for entry, owner in tagged:
        expanded = _expand(entry, owner)
        if expanded is not None and (entry, expanded) not in dirs:
            dirs.append((entry, expanded))
    return dirs


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
    #: For each unmet need, what was looked through when its file was loaded most directly.
    unmet: dict[tuple[str, str], tuple[int, Missing]] = {}
    for root in objects:
        loaded: set[str] = set()
        queue: list[tuple[ElfObject, tuple[ElfObject, ...]]] = [(root, ())]
        seen = {root.path}
        if root.facts.soname:
            loaded.add(root.facts.soname)
        while queue:
            obj, chain = queue.pop(0)
            for name in obj.facts.needed:
                key = (obj.path, name)
                if name in loaded:
                    met.add(key)
                    continue
                found, looked = _resolve(name, obj, chain, exists, system)
                if found is None:
                    if key not in unmet or unmet[key][0] > len(chain):
                        unmet[key] = (len(chain), Missing(name, obj, tuple(looked)))
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
        key=lambda key: (order[key[0]], by_path[key[0]].facts.needed.index(key[1])),
    )
    return tuple(unmet[key][1] for key in keys)


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
    looked = _search_dirs(obj, chain)
    for _, directory in looked:
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
    site-packages (``nvidia/cudnn/lib``) names it or one of its extras; None if none does."""
    places = {posixpath.join(directory, missing.library) for _, directory in missing.looked}
    for requirement in removed:
        files = records.get(canonicalize_name(requirement.name))
        if files is None:
            continue
        hit = sorted(places.intersection(files))
        if hit:
            relative = _under(posixpath.dirname(hit[0]), site_dirs)
            shown = f"site-packages/{relative}/{missing.library}" if relative else hit[0]
            return Provider((str(requirement),), "record", f"its wheel's RECORD lists {shown}")
    stem = _library_stem(missing.library)
    stem_tokens = {stem, *re.split(r"[-_.]", stem)}
    by_name = [r for r in removed if {t for t in stem_tokens if len(t) >= 3} & _tokens(r)]
    if by_name:
        exact = [r for r in by_name if stem in _tokens(r)]
        chosen = exact or by_name
        return Provider(
            tuple(str(r) for r in chosen), "likely", f"the library's name {missing.library!r}"
        )
    # A directory searched names a removed requirement: telling only when exactly one does (torch
    # searches nvidia/cudnn/lib, nvidia/nccl/lib, ... for every library it needs).
    by_directory: dict[str, tuple[str, str]] = {}
    for entry, directory in missing.looked:
        relative = _under(directory, site_dirs)
        if relative is None:
            continue
        parts = {p.lower() for p in relative.split("/") if p and not _GENERIC.match(p.lower())}
        for requirement in removed:
            if parts & _tokens(requirement):
                by_directory.setdefault(str(requirement), (entry, relative))
    if len(by_directory) == 1:
        ((text, (entry, relative)),) = by_directory.items()
        return Provider((text,), "likely", f"the search path {entry!r}, site-packages/{relative}")
    return None


def _under(directory: str, site_dirs: Sequence[str]) -> str | None:
    for site in site_dirs:
        if directory == site or directory.startswith(site.rstrip("/") + "/"):
            return directory[len(site.rstrip("/")) + 1 :]
    return None


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
    for _, directory in missing.looked:
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
