"""The ELF facts of real files compiled by gcc, read from disk and from wheel members (deflated
and stored), and what is not ELF."""

from __future__ import annotations

import dataclasses
import os
import zipfile
from pathlib import Path
from typing import Any

import pytest

from wheelpatch.check import elf
from wheelpatch.check.elf import file_kind, is_library_name, read_file_facts, read_member_facts
from wheelpatch.errors import InvalidWheel
from wheelpatch.wheel.archive import read_archive

from .conftest import Native


def _member_facts(archive_path: Path, name: str) -> tuple[str, object]:
    fd = os.open(archive_path, os.O_RDONLY)
    try:
        archive = read_archive(fd, archive_path.name)
        member = next(m for m in archive.members if m.name == name)
        return read_member_facts(fd, member, f"{archive_path.name}: {name}")
    finally:
        os.close(fd)


def test_runpath_needed_and_soname_of_gcc_output(native: Native) -> None:
    kind, facts = read_file_facts(native.ext_runpath)
    assert kind == "elf"
    assert facts is not None
    assert "libfoo.so" in facts.needed
    assert facts.runpath == ("$ORIGIN/../provider/lib",)
    assert facts.rpath is None
    assert facts.elf_type == "ET_DYN"
    _, lib = read_file_facts(native.libfoo)
    assert lib is not None
    assert lib.soname == "libfoo.so"


def test_rpath_when_new_dtags_are_disabled(native: Native) -> None:
    _, facts = read_file_facts(native.ext_rpath)
    assert facts is not None
    assert facts.rpath == ("$ORIGIN/../provider/lib",)
    assert facts.runpath is None


@pytest.mark.parametrize(
    "method", [zipfile.ZIP_DEFLATED, zipfile.ZIP_STORED], ids=["deflated", "stored"]
)
@pytest.mark.parametrize("which", ["ext_runpath", "ext_rpath", "libfoo", "big"])
def test_a_member_reads_as_the_file_does(
    native: Native, tmp_path: Path, method: int, which: str
) -> None:
    source: Path = getattr(native, which)
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(zipfile.ZipInfo("pad.txt"), b"x" * 1000)
        zf.write(source, "pkg/lib.so", compress_type=method)
    assert _member_facts(archive, "pkg/lib.so") == read_file_facts(source)


def test_both_inflaters_are_tested() -> None:
    # The test extra installs isal (the `fast` extra), so members are read with it by default.
    assert elf.INFLATE_MODULES.keys() == {"zlib", "isal"}
    assert elf.inflater_name == "isal"


def test_big_library_has_its_dynamic_segment_past_the_head(native: Native) -> None:
    # The member read must go past the 4 MiB it keeps of its start (and still be right).
    assert native.big.stat().st_size > 8 << 20
    _, facts = read_file_facts(native.big)
    assert facts is not None
    assert facts.needed[0] == "libfoo.so"


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (b"\x7fELF\x02\x01", "elf"),
        (b"\xcf\xfa\xed\xfe....", "mach-o"),
        (b"\xca\xfe\xba\xbe....", "mach-o"),
        (b"MZ\x90\x00", "pe"),
        (b"INPUT ( libc.so.6 )", "other"),
        (b"", "other"),
    ],
    ids=["elf", "mach-o-64", "mach-o-fat", "pe", "linker-script", "empty"],
)
def test_file_kind(head: bytes, kind: str) -> None:
    assert file_kind(head) == kind


@pytest.mark.parametrize(
    ("name", "library"),
    [
        ("torch/lib/libc10.so", True),
        ("torch/lib/libgomp.so.1", True),
        ("pkg/_ext.cpython-311-x86_64-linux-gnu.so", True),
        ("pkg/lib.dylib", True),
        ("pkg/lib.DLL", True),
        ("pkg/mod.pyd", True),
        ("pkg/so.py", False),
        ("pkg/notes.sox", False),
    ],
)
def test_library_names(name: str, library: bool) -> None:
    assert is_library_name(name) is library


def test_a_text_file_named_like_a_library_is_not_elf(tmp_path: Path) -> None:
    path = tmp_path / "libc.so"
    path.write_bytes(b"/* GNU ld script */\nGROUP ( /lib/libc.so.6 )\n")
    assert read_file_facts(path) == ("other", None)


def test_truncated_elf_member_is_one_line_naming_it(native: Native, tmp_path: Path) -> None:
    archive = tmp_path / "a.zip"
    data = native.ext_runpath.read_bytes()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("pkg/lib.so", data[:200])
    with pytest.raises(InvalidWheel) as caught:
        _member_facts(archive, "pkg/lib.so")
    message = str(caught.value)
    assert message.startswith("a.zip: pkg/lib.so: not a readable ELF file")
    assert "\n" not in message


# --- hand-made ELF files: what the loader takes of several tables, and too many entries --------

_TAGS = {"DT_NULL": 0, "DT_NEEDED": 1, "DT_STRTAB": 5, "DT_STRSZ": 10, "DT_RPATH": 15}


def _elf(*segments: list[tuple[str, int]], strings: bytes) -> bytes:
    """A little-endian ELF64 shared object whose PT_DYNAMIC segments hold ``segments`` (tag
    name, value; DT_STRTAB's value is an offset into ``strings``, placed after them)."""
    import struct

    phnum = 1 + len(segments)
    dynamic_at = 64 + 56 * phnum
    blobs = []
    at = dynamic_at
    for tags in segments:
        blobs.append((at, len(tags) * 16))
        at += len(tags) * 16
    strings_at = at
    body = b"".join(
        struct.pack("<qQ", _TAGS[name], strings_at + value if name == "DT_STRTAB" else value)
        for tags in segments
        for name, value in tags
    )
    size = strings_at + len(strings)
    header = (
        b"\x7fELF\x02\x01\x01"
        + bytes(9)
        + struct.pack("<HHIQQQIHHHHHH", 3, 62, 1, 0, 64, 0, 0, 64, 56, phnum, 64, 0, 0)
    )
    phdrs = struct.pack("<IIQQQQQQ", 1, 4, 0, 0, 0, size, size, 4096)  # PT_LOAD, all of it
    for offset, length in blobs:
        phdrs += struct.pack("<IIQQQQQQ", 2, 4, offset, offset, offset, length, length, 8)
    return header + phdrs + body + strings


STRINGS = b"\0liba.so\0libb.so\0/first\0/last\0"
A, B, FIRST, LAST = 1, 9, 17, 24


def _table(*tags: tuple[str, int]) -> list[tuple[str, int]]:
    return [*tags, ("DT_STRSZ", len(STRINGS)), ("DT_NULL", 0)]


def test_the_last_pt_dynamic_counts(tmp_path: Path) -> None:
    path = tmp_path / "two.so"
    path.write_bytes(
        _elf(
            _table(("DT_STRTAB", 0), ("DT_NEEDED", A)),
            _table(("DT_STRTAB", 0), ("DT_NEEDED", B)),
            strings=STRINGS,
        )
    )
    _, facts = read_file_facts(path)
    assert facts is not None
    assert facts.needed == ("libb.so",)


def test_the_last_strtab_and_rpath_count(tmp_path: Path) -> None:
    # The first DT_STRTAB points one byte past the table's start: its strings read wrong.
    path = tmp_path / "tags.so"
    path.write_bytes(
        _elf(
            _table(
                ("DT_STRTAB", 1),
                ("DT_STRTAB", 0),
                ("DT_NEEDED", A),
                ("DT_RPATH", FIRST),
                ("DT_RPATH", LAST),
            ),
            strings=STRINGS,
        )
    )
    _, facts = read_file_facts(path)
    assert facts is not None
    assert facts.needed == ("liba.so",)
    assert facts.rpath == ("/last",)


def test_too_many_dynamic_entries_are_one_line(tmp_path: Path) -> None:
    path = tmp_path / "many.so"
    needs = [("DT_NEEDED", A)] * (elf.DYNAMIC_CAP + 10)
    path.write_bytes(_elf(_table(("DT_STRTAB", 0), *needs), strings=STRINGS))
    with pytest.raises(InvalidWheel) as caught:
        read_file_facts(path)
    message = str(caught.value)
    assert message == (
        f"{path}: not a readable ELF file (its dynamic segment has more than "
        f"{elf.DYNAMIC_CAP} entries (not believed))"
    )
    fine = tmp_path / "fine.so"
    fine.write_bytes(_elf(_table(("DT_STRTAB", 0), *needs[:1000]), strings=STRINGS))
    _, facts = read_file_facts(fine)
    assert facts is not None
    assert len(facts.needed) == 1000


def test_a_six_byte_elf_member_says_it_is_too_short(tmp_path: Path) -> None:
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("pkg/lib.so", b"\x7fELF\x02\x01")
    with pytest.raises(InvalidWheel) as caught:
        _member_facts(archive, "pkg/lib.so")
    assert str(caught.value) == (
        "a.zip: pkg/lib.so: not a readable ELF file (6 bytes, shorter than an ELF header "
        "(64 bytes))"
    )


def test_a_cancelled_read_stops_between_blocks(native: Native, tmp_path: Path) -> None:
    import threading

    archive = tmp_path / "big.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(native.big, "pkg/big.so")
    fd = os.open(archive, os.O_RDONLY)
    try:
        member = next(m for m in read_archive(fd, archive.name).members if m.name == "pkg/big.so")
        cancel = threading.Event()
        cancel.set()
        with pytest.raises(elf.Cancelled):
            read_member_facts(fd, member, "big.zip: pkg/big.so", cancel)
    finally:
        os.close(fd)


# --- the system search reads the ELF header of what it finds, and the interpreter's RPATH -----


def test_a_system_file_of_another_machine_is_passed_over(native: Native, tmp_path: Path) -> None:
    from wheelpatch.check.native import system_search

    foreign, right = tmp_path / "foreign", tmp_path / "right"
    foreign.mkdir()
    right.mkdir()
    data = bytearray(native.libfoo.read_bytes())
    data[18:20] = (183).to_bytes(2, "little")  # e_machine: EM_AARCH64
    (foreign / "libfoo.so").write_bytes(bytes(data))
    (right / "libfoo.so").write_bytes(native.libfoo.read_bytes())
    target = ("EM_X86_64", 64)
    assert system_search(target, [foreign, right]).find("libfoo.so") == str(right / "libfoo.so")
    assert system_search(target, [foreign]).find("libfoo.so") is None
    (foreign / "libbar.so").write_text("/* GNU ld script */\n")  # not ELF: no library either
    assert system_search(target, [foreign]).find("libbar.so") is None


def test_the_interpreters_rpath_is_searched(native: Native, tmp_path: Path) -> None:
    import shutil
    import subprocess

    from wheelpatch.check.libraries import ElfObject, find_missing
    from wheelpatch.check.native import system_search

    # A conda-like layout: bin/python has RPATH $ORIGIN/../lib, where libfoo.so lies.
    (tmp_path / "main.c").write_text("int foo(void);\nint main(void) { return foo() - 42; }\n")
    (tmp_path / "bin").mkdir()
    (tmp_path / "lib").mkdir()
    shutil.copy(native.libfoo, tmp_path / "lib" / "libfoo.so")
    subprocess.run(
        ["gcc", "-o", "bin/python", "main.c", "-Llib", "-lfoo", "-Wl,-rpath,$ORIGIN/../lib",
         "-Wl,--disable-new-dtags"], cwd=tmp_path, check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    (tmp_path / "python3").symlink_to(tmp_path / "bin" / "python")  # resolved: bin/
    _, facts = read_file_facts(native.ext_rpath)
    assert facts is not None
    # ext_rpath.so's own RPATH ($ORIGIN/../provider/lib) finds nothing where it lies.
    ext = ElfObject((tmp_path / "site" / "consumer" / "_ext.so").as_posix(), facts, "ext")
    target = ("EM_X86_64", 64)
    empty = tmp_path / "empty"
    empty.mkdir()
    with_python = system_search(target, [empty], tmp_path / "python3")
    assert find_missing([ext], os.path.exists, with_python) == ()
    (missing,) = find_missing([ext], os.path.exists, system_search(target, [empty]))
    assert missing.library == "libfoo.so"


def test_too_many_search_path_directories_are_one_line(tmp_path: Path) -> None:
    many = b":".join(b"/d%d" % n for n in range(elf.PATH_CAP + 1))
    strings = STRINGS + many + b"\0"
    path = tmp_path / "paths.so"
    path.write_bytes(
        _elf(
            [("DT_STRTAB", 0), ("DT_RPATH", len(STRINGS)), ("DT_STRSZ", len(strings)),
             ("DT_NULL", 0)],
            strings=strings,
        )
    )  # fmt: skip
    with pytest.raises(InvalidWheel) as caught:
        read_file_facts(path)
    assert str(caught.value) == (
        f"{path}: not a readable ELF file (its RUNPATH or RPATH lists more than "
        f"{elf.PATH_CAP} directories (not believed))"
    )
    # Empty entries do not count (the working directory for glibc, never searched here).
    fine = b"::".join(b"/d%d" % n for n in range(elf.PATH_CAP)) + b":::"
    strings = STRINGS + fine + b"\0"
    path.write_bytes(
        _elf(
            [("DT_STRTAB", 0), ("DT_RPATH", len(STRINGS)), ("DT_STRSZ", len(strings)),
             ("DT_NULL", 0)],
            strings=strings,
        )
    )  # fmt: skip
    _, facts = read_file_facts(path)
    assert facts is not None
    assert facts.rpath is not None
    assert len(facts.rpath) == elf.PATH_CAP


# --- a range far into a member is inflated from a deflate block boundary before it ----------


def _member(library: Path, tmp_path: Path) -> Path:
    archive = tmp_path / "lib.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(zipfile.ZipInfo("pad.txt"), b"x" * 1000)
        zf.write(library, "pkg/lib.so")
    return archive


def _seeks_spied(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Ranges 1 MiB or more ahead read from block boundaries; what each read gave, listed."""
    from wheelpatch.wheel import deflate_tail

    given: list[object] = []
    real = deflate_tail.inflate_range

    def spying(*args: Any, **kwargs: Any) -> deflate_tail.Inflated | None:
        found = real(*args, **kwargs)
        given.append(found)
        return found

    monkeypatch.setattr(deflate_tail, "inflate_range", spying)
    monkeypatch.setattr(elf, "SEEK_AHEAD", 1 << 20)
    return given


def test_a_dynamic_segment_far_in_is_read_from_a_block_boundary(
    native: Native, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:

    archive = _member(native.far, tmp_path)
    given = _seeks_spied(monkeypatch)  # far.so's segment is 6 MiB in
    facts = _member_facts(archive, "pkg/lib.so")
    assert facts == read_file_facts(native.far)
    assert facts[1] is not None
    assert "libfoo.so" in facts[1].needed  # type: ignore[attr-defined]
    assert given
    assert all(found is not None for found in given)


def test_a_boundary_inside_zeros_gives_nothing_and_the_member_is_read_from_its_start(
    native: Native, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # big.so's 8 MiB of zeros compress to a few blocks that copy zeros from before: from any
    # boundary in them, every byte after may come from the unknown window.

    archive = _member(native.big, tmp_path)
    given = _seeks_spied(monkeypatch)
    assert _member_facts(archive, "pkg/lib.so") == read_file_facts(native.big)
    assert given == [None]


def test_bytes_a_boundary_misplaced_are_not_believed(
    native: Native, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A stream changed after the range can inflate to another length from a boundary: the
    # bytes are then placed where they are not. Such bytes make no dynamic segment, and the
    # member is read from its start instead.
    from wheelpatch.wheel import deflate_tail

    archive = _member(native.far, tmp_path)
    real = deflate_tail.inflate_range
    calls: list[int] = []

    def misplacing(*args: Any, **kwargs: Any) -> deflate_tail.Inflated | None:
        found = real(*args, **kwargs)
        assert found is not None
        calls.append(1)
        shift = 24  # the bytes as if the stream had inflated 24 bytes fewer
        misplaced = dataclasses.replace(
            found,
            start=found.start + shift,
            tail_start=found.tail_start + shift,
            agreed_from=found.agreed_from + shift,
        )
        wanted = args[4:6]
        assert misplaced.get(*wanted) not in (None, found.get(*wanted))  # what is read
        return misplaced

    monkeypatch.setattr(deflate_tail, "inflate_range", misplacing)
    monkeypatch.setattr(elf, "SEEK_AHEAD", 1 << 20)
    assert _member_facts(archive, "pkg/lib.so") == read_file_facts(native.far)
    assert calls == [1]  # tried once, then never again for that member
