"""A source wheel, read and checked: its archive directory, ``.dist-info``, METADATA and RECORD.

Only the directory and the small ``.dist-info`` files are read; member data stays on disk until
the writer copies it. Every refusal names the wheel and the member or field concerned.

A wheel can also be read from its end alone (``known_from``), as fetched from an index with range
requests: enough to plan a patch and count the patched wheel's size, not to write it.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.tags import Tag
from packaging.utils import (
    BuildTag,
    InvalidWheelFilename,
    NormalizedName,
    canonicalize_name,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from ..errors import InvalidWheel
from .archive import Archive, ZipMember, read_archive, read_member
from .entrypoints import ENTRY_POINTS_CAP, entry_point_problem
from .metadata import CONTROLS, MetadataDocument, MetadataError
from .record import Record, RecordError

__all__ = [
    "DATA_SCHEMES",
    "METADATA_CAP",
    "RECORD_CAP",
    "SourceWheel",
    "read_metadata",
    "read_wheel",
]

#: The only directories a ``.data`` directory may hold.
DATA_SCHEMES = frozenset({"purelib", "platlib", "headers", "scripts", "data"})
#: Size caps for the files read into memory.
METADATA_CAP = 16 << 20
RECORD_CAP = 64 << 20
WHEEL_CAP = 1 << 20
_SIGNATURES = ("RECORD.jws", "RECORD.p7s")
#: Control characters (tab included) and Unicode line breaks, none of which a member name needs.
_NAME_CONTROL = re.compile(f"[\t{CONTROLS}]")
#: Over all names joined by newlines: an absolute, drive, empty, '.' or '..' path, a backslash.
_BAD_NAME = re.compile(r"\n/|\n[^/\n]:|//|/\.{1,2}(?:/|\n)|\n\.{1,2}(?:/|\n)|\n\n|\\")
_NOT_IN_WHEELS = ("INSTALLER", "REQUESTED", "direct_url.json")
#: The provenance an earlier run of wheelpatch left (``wheelpatch.patch.plan.PROVENANCE_NAME``).
_PROVENANCE = "wheelpatch.json"


@dataclass(frozen=True, slots=True)
class SourceWheel:
    path: Path
    name: NormalizedName
    version: Version
    build: BuildTag
    tags: frozenset[Tag]
    archive: Archive
    #: ``{name}-{version}.dist-info`` as spelled in the archive.
    dist_info: str
    #: ``{name}-{version}.data`` as spelled in the archive, if the wheel has one.
    data_dir: str | None
    metadata_bytes: bytes
    metadata: MetadataDocument
    #: The ``WHEEL`` file's bytes, checked (a stand-in for the resolver copies them).
    wheel_file: bytes
    record: Record
    #: (device, inode, size, mtime_ns) when read: the writer refuses a source that changed since.
    identity: tuple[int, int, int, int]
    #: The bytes of ``.dist-info/wheelpatch.json`` if an earlier run of wheelpatch left one
    #: (a re-patch carries its records on).
    provenance_bytes: bytes | None = None

    @property
    def filename(self) -> str:
        return self.path.name

    def member(self, name: str) -> ZipMember:
        return next(m for m in self.archive.members if m.name == name)

    @property
    def metadata_path(self) -> str:
        return f"{self.dist_info}/METADATA"

    @property
    def record_path(self) -> str:
        return f"{self.dist_info}/RECORD"

    def requirement_names(self) -> frozenset[NormalizedName]:
        """The projects its METADATA requires (any extra or marker); invalid lines are skipped."""
        names = set()
        for text in self.metadata.get_all("Requires-Dist"):
            with contextlib.suppress(InvalidRequirement):
                names.add(canonicalize_name(Requirement(text).name))
        return frozenset(names)

    @property
    def signatures(self) -> tuple[str, ...]:
        names = {m.name for m in self.archive.members}
        return tuple(
            f"{self.dist_info}/{s}" for s in _SIGNATURES if f"{self.dist_info}/{s}" in names
        )


def _split_dir(stem: str) -> tuple[str, str] | None:
    name, sep, version = stem.rpartition("-")
    return (name, version) if sep and name else None


def _check_name(member: ZipMember, where: str) -> None:
    name = member.name
    path = name[:-1] if name[-1:] == "/" else name
    wrapped = "/" + path + "/"
    if (
        "//" in wrapped
        or "/./" in wrapped
        or "/../" in wrapped
        or "\\" in path
        or path[1:2] == ":"
        or _NAME_CONTROL.search(path) is not None
    ):
        raise InvalidWheel(f"{where}: member {name!r} {_name_problem(path)}")
    if member.version_made_by >> 8 == 3:  # made on Unix: the high bits are a st_mode
        kind = stat.S_IFMT(member.external_attr >> 16)
        if kind and kind != stat.S_IFREG and kind != stat.S_IFDIR:
            problem = (
                "is a symlink" if kind == stat.S_IFLNK else "is a special file, not a regular file"
            )
            raise InvalidWheel(f"{where}: member {name!r} {problem}")


def _check_names(archive: Archive, where: str) -> None:
    """Every member name is safe, and no two collide once case and Unicode form are folded.

    The common case (every name fine) is decided on all names at once; a name that fails is
    then found and named one by one."""
    names = [m.name for m in archive.members]
    joined = "\n" + "\n".join(names) + "\n"
    unix_modes = [
        m.external_attr >> 16 & 0o170000 for m in archive.members if m.version_made_by >> 8 == 3
    ]
    if (
        joined.count("\n") != len(names) + 1  # a name with a newline of its own
        or _NAME_CONTROL.search(joined.replace("\n", "/")) is not None
        or _BAD_NAME.search(joined) is not None
        or not set(unix_modes) <= {0, stat.S_IFREG, stat.S_IFDIR}
    ):
        for member in archive.members:
            _check_name(member, where)
    # Control characters are gone, so folding the joined text folds each name on its own.
    folded = unicodedata.normalize("NFC", "\n".join(names)).casefold().split("\n")
    if len(set(folded)) != len(folded):
        seen: dict[str, str] = {}
        for name, key in zip(names, folded, strict=True):
            if key in seen:
                raise InvalidWheel(
                    f"{where}: members {seen[key]!r} and {name!r} collide on case-insensitive "
                    "file systems"
                )
            seen[key] = name


def _name_problem(path: str) -> str:
    if not path:
        return "is empty"
    if path.startswith("/") or path[1:2] == ":":
        return "is absolute"
    if "\\" in path:
        return "contains a backslash"
    if any(part in ("", ".", "..") for part in path.split("/")):
        return "has an empty, '.' or '..' component"
    return "contains a control character"


def read_wheel(path: Path, *, known_from: int = 0) -> SourceWheel:
    """Open ``path`` and check it is a wheel wheelpatch can patch; refuse it otherwise.

    Problems with the file itself name the path as given; problems inside it, the file name.

    With ``known_from``, only the file from that offset on is real (see
    :func:`~wheelpatch.wheel.archive.read_archive`): the ``.dist-info`` files read here must lie
    there, and the members before it can be counted by the writer but not copied."""
    where = path.name
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        raise InvalidWheel(f"{path}: no such file{_glob_hint(str(path))}") from None
    except IsADirectoryError:
        raise _directory(path) from None
    except OSError as exc:
        raise InvalidWheel(f"{path}: cannot open ({exc.strerror})") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise _directory(path)
        if not stat.S_ISREG(info.st_mode):
            raise InvalidWheel(f"{path}: not a regular file")
        try:
            name, version, build, tags = parse_wheel_filename(where)
        except InvalidWheelFilename as exc:
            raise InvalidWheel(f"{path}: not a valid wheel filename ({exc})") from None
        archive = read_archive(fd, where, known_from=known_from)
        return _read(path, fd, archive, name, version, build, tags, info, known_from)
    finally:
        os.close(fd)


def read_metadata(
    data: bytes, name: NormalizedName, version: Version, where: str, member: str = "METADATA"
) -> MetadataDocument:
    """A wheel's METADATA (``member``, or a PEP 658 sidecar of it), parsed and checked to be
    of the project and version the file name ``where`` says."""
    try:
        metadata = MetadataDocument.parse(data)
    except MetadataError as exc:
        raise InvalidWheel(f"{where}: {member} {exc}") from None
    meta_name = metadata.get("Name") or ""
    if canonicalize_name(meta_name) != name:
        raise InvalidWheel(
            f"{where}: METADATA Name {meta_name!r} does not match the filename's {name!r}"
        )
    meta_version = metadata.get("Version") or ""
    try:
        parsed = Version(meta_version)
    except InvalidVersion:
        raise InvalidWheel(f"{where}: METADATA Version {meta_version!r} is not valid") from None
    if parsed != version:
        raise InvalidWheel(
            f"{where}: METADATA Version {meta_version!r} does not match the filename's "
            f"{str(version)!r}"
        )
    return metadata


def _check_entry_points(data: bytes, where: str) -> None:
    """The scripts installers would make from ``entry_points.txt`` can be made (the rules
    ``wheelpatch-install``, pip and uv apply, so ``patch`` and ``verify`` refuse alike)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidWheel(f"{where}: not UTF-8 (byte {exc.start})") from None
    problem = entry_point_problem(text)
    if problem is not None:
        raise InvalidWheel(f"{where}: {problem}")


def _directory(path: Path) -> InvalidWheel:
    return InvalidWheel(f"{path}: is a directory (give the wheels in it: {path}/*.whl)")


def _glob_hint(typed: str) -> str:
    """A missing path with glob characters in it is most likely a pattern that matched nothing."""
    return " (a pattern that matched no file?)" if any(c in typed for c in "*?[") else ""


def _read(
    path: Path,
    fd: int,
    archive: Archive,
    name: NormalizedName,
    version: Version,
    build: BuildTag,
    tags: frozenset[Tag],
    info: os.stat_result,
    known_from: int,
) -> SourceWheel:
    where = path.name
    _check_names(archive, where)
    tops = {member.name.split("/", 1)[0] for member in archive.members}
    dist_infos = sorted(t for t in tops if t.endswith(".dist-info"))
    if len(dist_infos) != 1:
        found = ", ".join(repr(d) for d in dist_infos) or "none"
        raise InvalidWheel(f"{where}: a wheel has exactly one .dist-info directory (found {found})")
    dist_info = dist_infos[0]
    _check_dir_name(dist_info, ".dist-info", name, version, where)
    data_dirs = sorted(t for t in tops if t.endswith(".data") and _belongs(t, name))
    if len(data_dirs) > 1:
        raise InvalidWheel(f"{where}: more than one .data directory: {', '.join(data_dirs)}")
    data_dir = data_dirs[0] if data_dirs else None
    names = {m.name: m for m in archive.members}
    if data_dir is not None:
        _check_dir_name(data_dir, ".data", name, version, where)
        for member in archive.members:
            parts = member.name.split("/")
            if (
                parts[0] == data_dir
                and len(parts) > 1
                and parts[1]
                and parts[1] not in DATA_SCHEMES
            ):
                raise InvalidWheel(
                    f"{where}: member {member.name!r} is in unknown .data scheme {parts[1]!r} "
                    f"(allowed: {', '.join(sorted(DATA_SCHEMES))})"
                )
    for extra in _NOT_IN_WHEELS:
        if f"{dist_info}/{extra}" in names:
            raise InvalidWheel(
                f"{where}: member {dist_info}/{extra} is written by installers and must not be "
                "inside a wheel"
            )

    def small(member_name: str, cap: int) -> bytes:
        member = names.get(member_name)
        if member is None or member.is_dir:
            raise InvalidWheel(f"{where}: {member_name} is missing")
        if not member.header_read:
            raise InvalidWheel(
                f"{where}: {member_name} at offset {member.header_offset} lies before offset "
                f"{known_from}, where the part of the wheel that was read begins"
            )
        return read_member(fd, member, where, cap)

    wheel_doc = small(f"{dist_info}/WHEEL", WHEEL_CAP)
    _check_wheel_file(wheel_doc, f"{where}: {dist_info}/WHEEL")
    metadata_bytes = small(f"{dist_info}/METADATA", METADATA_CAP)
    metadata = read_metadata(metadata_bytes, name, version, where, f"{dist_info}/METADATA")
    record_path = f"{dist_info}/RECORD"
    try:
        record = Record.parse(small(record_path, RECORD_CAP), record_path)
    except RecordError as exc:
        raise InvalidWheel(f"{where}: {record_path} {exc}") from None
    _check_coverage(archive, record, dist_info, where)
    entry_points = f"{dist_info}/entry_points.txt"
    if entry_points in names and not names[entry_points].is_dir:
        _check_entry_points(small(entry_points, ENTRY_POINTS_CAP), f"{where}: {entry_points}")
    provenance = f"{dist_info}/{_PROVENANCE}"
    earlier = None
    if provenance in names and not names[provenance].is_dir:
        earlier = small(provenance, METADATA_CAP)
    return SourceWheel(
        path=path,
        name=name,
        version=version,
        build=build,
        tags=tags,
        archive=archive,
        dist_info=dist_info,
        data_dir=data_dir,
        metadata_bytes=metadata_bytes,
        metadata=metadata,
        wheel_file=wheel_doc,
        record=record,
        identity=(info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns),
        provenance_bytes=earlier,
    )


def _belongs(top: str, name: NormalizedName) -> bool:
    split = _split_dir(top.removesuffix(".data"))
    return split is not None and canonicalize_name(split[0]) == name


def _check_dir_name(
    directory: str, suffix: str, name: NormalizedName, version: Version, where: str
) -> None:
    split = _split_dir(directory.removesuffix(suffix))
    if split is None:
        raise InvalidWheel(f"{where}: {directory!r} is not named {{name}}-{{version}}{suffix}")
    dir_name, dir_version = split
    if canonicalize_name(dir_name) != name:
        raise InvalidWheel(
            f"{where}: {directory!r} names project {dir_name!r}, the filename {name!r}"
        )
    try:
        matches = Version(dir_version) == version
    except InvalidVersion:
        matches = False
    if not matches:
        raise InvalidWheel(
            f"{where}: {directory!r} has version {dir_version!r}, the filename {str(version)!r}"
        )


def _check_wheel_file(data: bytes, where: str) -> None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidWheel(f"{where} is not valid UTF-8") from None
    values = [
        line.partition(":")[2].strip()
        for line in text.splitlines()
        if line.partition(":")[0].strip().lower() == "wheel-version"
    ]
    if len(values) != 1:
        raise InvalidWheel(f"{where} must have exactly one Wheel-Version field")
    major = values[0].split(".")[0]
    if major != "1":
        raise InvalidWheel(
            f"{where}: Wheel-Version {values[0]!r} is not 1.x, which is all wheelpatch understands"
        )


def _check_coverage(archive: Archive, record: Record, dist_info: str, where: str) -> None:
    rows = record.by_path()
    record_path = f"{dist_info}/RECORD"
    files = {m.name: m for m in archive.members if m.name[-1:] != "/"}
    exempt = {record_path, *(f"{dist_info}/{s}" for s in _SIGNATURES)}
    if not files.keys() - exempt <= rows.keys():
        for member_name in files:
            if member_name not in rows and member_name not in exempt:
                raise InvalidWheel(f"{where}: member {member_name!r} is not listed in RECORD")
    if not rows.keys() <= files.keys():
        for path in rows:
            if path not in files:
                raise InvalidWheel(f"{where}: RECORD lists {path!r}, which is not in the wheel")
    for path, row in rows.items():
        if row.size and int(row.size) != files[path].file_size:
            raise InvalidWheel(
                f"{where}: RECORD gives {path!r} {row.size} bytes, the archive "
                f"{files[path].file_size}"
            )
