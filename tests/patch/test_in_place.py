"""``rewrite_in_place``: the source wheel turned into the patched wheel where it lies, byte for
byte what ``write_wheel`` writes, with the bytes before ``unchanged_prefix`` never touched (a
proxy has already sent them on)."""

from __future__ import annotations

import hashlib
import os
import shutil
import zipfile
from pathlib import Path

import pytest

from wheelpatch.patch.plan import PatchPlan, plan_patch
from wheelpatch.patch.writer import rewrite_in_place, unchanged_prefix, write_wheel
from wheelpatch.wheel.source_wheel import read_wheel

from ..conftest import WheelSpec, build_wheel
from .test_patched_size import CONFIG, WHEELS


def _central_directory_reordered(directory: Path) -> Path:
    """A wheel whose central directory lists its first two members the other way round."""
    source = build_wheel(directory, WheelSpec(files={f"demo/m{i}.py": b"x" * i for i in range(5)}))
    with zipfile.ZipFile(source) as original:
        members = [(info, original.read(info)) for info in original.infolist()]
    with zipfile.ZipFile(source, "w") as archive:
        for info, data in members:
            archive.writestr(info, data)
        archive.filelist[0], archive.filelist[1] = archive.filelist[1], archive.filelist[0]
    return source


LAYOUTS = {
    **WHEELS,
    "central-directory-reordered": _central_directory_reordered,
    "dist-info-first": lambda d: build_wheel(d, WheelSpec(dist_info_position="first")),
    "dist-info-middle": lambda d: build_wheel(
        d,
        WheelSpec(dist_info_position="middle", files={f"demo/m{i}.py": b"x" * i for i in range(9)}),
    ),
}


@pytest.mark.parametrize("epoch", [None, "1700000000"], ids=["no-epoch", "source-date-epoch"])
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_rewriting_in_place_gives_what_write_wheel_writes(
    tmp_path: Path, layout: str, epoch: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    if epoch:
        monkeypatch.setenv("SOURCE_DATE_EPOCH", epoch)
    source = LAYOUTS[layout](tmp_path)
    plan = plan_patch(read_wheel(source), CONFIG)
    assert isinstance(plan, PatchPlan)
    out = tmp_path / "out"
    out.mkdir()
    expected = write_wheel(plan, out).read_bytes()

    copy = tmp_path / "copy" / source.name
    copy.parent.mkdir()
    shutil.copyfile(source, copy)
    in_place = plan_patch(read_wheel(copy), CONFIG)
    assert isinstance(in_place, PatchPlan)
    start = unchanged_prefix(in_place)
    original = source.read_bytes()
    sha = hashlib.sha256(original).hexdigest()
    fd = os.open(copy, os.O_RDWR)
    try:
        size = rewrite_in_place(in_place, fd, sha, epoch)
    finally:
        os.close(fd)
    rewritten = copy.read_bytes()
    assert size == len(rewritten)
    assert rewritten == expected
    assert rewritten[:start] == original[:start]
    if layout in ("dist-info-first", "central-directory-reordered"):
        assert start == 0
    else:
        assert start > 0
