"""The ELF facts of real files compiled by gcc, read from disk and from wheel members (deflated
and stored), and what is not ELF."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

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
