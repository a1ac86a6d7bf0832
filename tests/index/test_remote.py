"""Reading an upstream wheel from its end through range reads: the METADATA, the plan and the
patched size agree with what the whole file gives, in few requests, and broken bytes are refused
with one line naming the file, leaving no temporary file behind."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import random
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from wheelpatch import InvalidWheel, parse_config
from wheelpatch.index.remote import read_remote_wheel
from wheelpatch.patch.plan import PatchPlan, plan_patch
from wheelpatch.patch.writer import patched_size, write_wheel
from wheelpatch.rules.config import Config
from wheelpatch.wheel.source_wheel import read_wheel

from ..conftest import WheelSpec, build_wheel
from ..zipcraft import STORED, Entry, build_zip, wheel_entries, wheel_filename


def _noise(size: int, seed: int = 0) -> bytes:
    """Bytes that do not compress, the same on every run."""
    return random.Random(seed).randbytes(size)


def _config() -> Config:
    table = {"local-version": "p1", "overrides": {"demo": {"add": ["six>=1"]}}}
    return parse_config(table, None)


def _crafted(directory: Path, entries: list[Entry], *, zip64: bool = False) -> Path:
    path = directory / wheel_filename()
    path.write_bytes(build_zip(entries, zip64=zip64))
    return path


def _with(entries: list[Entry], name: str, **changes: Any) -> list[Entry]:
    """``entries`` with the one named ``name`` changed."""
    return [dataclasses.replace(e, **changes) if e.name == name else e for e in entries]


def _spec(directory: Path, **changes: object) -> Path:
    return build_wheel(directory, WheelSpec(), **changes)


def _descriptor_after_body(directory: Path) -> Path:
    files = {"demo/body.bin": _noise(300_000), "demo/core.py": b"x = 2\n" * 50}
    entries = _with(wheel_entries(files=files), "demo/core.py", data_descriptor=True)
    return _crafted(directory, entries)


def _descriptor_first(directory: Path) -> Path:
    files = {"demo/core.py": b"x = 2\n" * 50, "demo/body.bin": _noise(300_000)}
    entries = _with(wheel_entries(files=files), "demo/core.py", data_descriptor=True)
    return _crafted(directory, entries)


def _zip64(directory: Path) -> Path:
    files = {"demo/body.bin": _noise(300_000), "demo/__init__.py": b"VALUE = 1\n"}
    entries = [dataclasses.replace(e, zip64=True) for e in wheel_entries(files=files)]
    return _crafted(directory, entries, zip64=True)


@dataclass(frozen=True)
class Case:
    id: str
    build: Callable[[Path], Path]
    #: Range reads expected.
    calls: int
    #: Whether the whole file has to be read (a member needing its header comes first).
    whole: bool = False
    #: Whether at most a tenth of the file may be read.
    small_share: bool = False


CASES = [
    Case("small-pure", _spec, calls=1, whole=True),
    Case(
        "data-scripts",
        lambda d: _spec(
            d,
            files={"demo/body.bin": _noise(400_000), "demo/__init__.py": b""},
            data={"scripts/demo-tool": b"#!python\nprint('hi')\n", "data/share/demo.txt": b"hi\n"},
            compression=zipfile.ZIP_STORED,
        ),
        calls=1,
    ),
    Case(
        "data-before-body",
        lambda d: _spec(
            d,
            files={"demo/__init__.py": b""},
            data={"scripts/demo-tool": b"#!python\n", "purelib/demo/body.bin": _noise(400_000)},
        ),
        calls=2,  # the file from the .data directory on, after demo/__init__.py
    ),
    Case(
        "many-members",
        lambda d: _spec(d, files={f"demo/sub/module_{i:05}.py": b"x" * 40 for i in range(3000)}),
        calls=3,
    ),
    Case(
        "big-dist-info-file",
        lambda d: _spec(
            d,
            files={"demo/body.bin": _noise(1_000_000)},
            extra_dist_info={"LICENSE": _noise(200_000, seed=1)},
        ),
        calls=2,
    ),
    Case("descriptor-after-body", _descriptor_after_body, calls=1),
    Case("descriptor-first", _descriptor_first, calls=2, whole=True),
    Case(
        "unicode-names",
        lambda d: _spec(
            d,
            files={
                "demo/données.py": b"x = 1\n",
                "demo/body.bin": _noise(300_000),
                "demo/日本語.txt": "こんにちは\n".encode(),
            },
        ),
        calls=1,
    ),
    Case(
        "big-stored-body",
        lambda d: _spec(
            d, files={"demo/body.bin": _noise(2 << 20)}, compression=zipfile.ZIP_STORED
        ),
        calls=1,
        small_share=True,
    ),
    Case(
        "dist-info-first",
        lambda d: _spec(d, files={"demo/body.bin": _noise(300_000)}, dist_info_position="first"),
        calls=2,
        whole=True,
    ),
    Case("zip64-records", _zip64, calls=1),
]


class Ranges:
    """``read_range`` over the bytes of a file, counting the calls."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.calls: list[tuple[int, int]] = []

    def __call__(self, offset: int, length: int) -> bytes:
        assert offset >= 0
        assert length > 0
        assert offset + length <= len(self.data)
        self.calls.append((offset, length))
        return self.data[offset : offset + length]


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    path = tmp_path / "work"
    path.mkdir()
    return path


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_remote_wheel_plans_and_sizes_like_the_whole_file(
    case: Case, tmp_path: Path, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    source_dir = tmp_path / "in"
    source_dir.mkdir()
    source = case.build(source_dir)
    data = source.read_bytes()
    ranges = Ranges(data)

    remote = read_remote_wheel(source.name, len(data), ranges, workdir)

    with zipfile.ZipFile(source) as archive:
        assert remote.metadata == archive.read("demo-1.0.dist-info/METADATA")
    assert remote.wheel.metadata_bytes == remote.metadata
    assert len(ranges.calls) == case.calls
    assert remote.fetched == sum(length for _, length in ranges.calls)
    # What was read is the file from known_from to its end, each byte once.
    assert remote.known_from + remote.fetched == len(data)
    assert (remote.known_from == 0) == case.whole
    if case.small_share:
        assert remote.fetched < len(data) // 10
    assert list(workdir.iterdir()) == []

    local = read_wheel(source)
    assert remote.wheel.filename == local.filename
    assert remote.wheel.archive.members == local.archive.members or remote.known_from > 0
    plan_remote = plan_patch(remote.wheel, _config())
    plan_local = plan_patch(local, _config())
    assert isinstance(plan_remote, PatchPlan)
    assert isinstance(plan_local, PatchPlan)
    for field in ("filename", "metadata", "dist_info", "data_dir", "changes", "dropped"):
        assert getattr(plan_remote, field) == getattr(plan_local, field), field

    out_dir = tmp_path / "out"
    out_dir.mkdir()
    written = write_wheel(plan_local, out_dir)
    sha256 = hashlib.sha256(data).hexdigest()
    assert patched_size(plan_remote, sha256) == written.stat().st_size


def test_members_before_the_part_read_are_known_by_their_directory_entries(
    tmp_path: Path, workdir: Path
) -> None:
    source = _spec(tmp_path, files={"demo/body.bin": _noise(1_000_000), "demo/x.py": b"x\n"})
    data = source.read_bytes()
    remote = read_remote_wheel(source.name, len(data), Ranges(data), workdir)
    local = read_wheel(source)
    assert remote.known_from > 0
    for far, near in zip(remote.wheel.archive.members, local.archive.members, strict=True):
        if far.header_offset >= remote.known_from:
            assert far == near
        else:
            assert not far.header_read
            assert far.data_offset == -1
            assert far._replace(data_offset=near.data_offset, local_extra=near.local_extra) == near


def _raises(
    data: bytes, match: str, workdir: Path, *, size: int | None = None, filename: str = ""
) -> str:
    filename = filename or wheel_filename()
    with pytest.raises(InvalidWheel) as info:
        read_remote_wheel(filename, len(data) if size is None else size, Ranges(data), workdir)
    message = str(info.value)
    assert message.startswith(filename + ":")
    assert "\n" not in message
    assert match in message
    assert list(workdir.iterdir()) == []
    return message


def _body_wheel() -> list[Entry]:
    return wheel_entries(files={"demo/body.bin": _noise(300_000)}, method=STORED)


def test_truncated_tail_is_refused(workdir: Path) -> None:
    data = build_zip(_body_wheel())
    _raises(data[:-7], "no end of central directory record", workdir)


def test_size_larger_than_what_comes_back_is_refused(workdir: Path) -> None:
    data = build_zip(_body_wheel())

    def short(offset: int, length: int) -> bytes:
        return data[offset : offset + length - 3]

    with pytest.raises(InvalidWheel, match=r"^demo-1\.0-py3-none-any\.whl: .* came back"):
        read_remote_wheel(wheel_filename(), len(data), short, workdir)
    assert list(workdir.iterdir()) == []


def test_central_directory_past_the_end_is_refused(workdir: Path) -> None:
    data = build_zip(_body_wheel(), cd_offset=10_000_000)
    _raises(data, "central directory at 10000000", workdir)


def test_metadata_missing_is_refused(workdir: Path) -> None:
    entries = wheel_entries(
        files={"demo/body.bin": _noise(300_000)}, omit=["demo-1.0.dist-info/METADATA"]
    )
    _raises(build_zip(entries), "demo-1.0.dist-info/METADATA is missing", workdir)


def test_overlapping_members_before_the_part_read_are_refused(workdir: Path) -> None:
    files = {"demo/body.bin": _noise(300_000), "demo/alias.bin": b""}
    entries = _with(
        wheel_entries(files=files, method=STORED),
        "demo/alias.bin",
        skip_local=True,
        header_offset=0,
    )
    _raises(build_zip(entries), "overlapping members", workdir)


def test_not_a_wheel_filename_is_refused(workdir: Path) -> None:
    _raises(build_zip(_body_wheel()), "not a valid wheel filename", workdir, filename="demo.zip")


def test_read_range_errors_are_the_callers_and_leave_nothing_behind(workdir: Path) -> None:
    def failing(offset: int, length: int) -> bytes:
        raise ConnectionError("upstream went away")

    with pytest.raises(ConnectionError):
        read_remote_wheel(wheel_filename(), 1000, failing, workdir)
    assert list(workdir.iterdir()) == []


def test_the_source_wheel_cannot_be_written_from(tmp_path: Path, workdir: Path) -> None:
    """The sparse file is gone; even where it is not, the members before known_from refuse to be
    copied (their bytes were never read)."""
    source = _spec(tmp_path, files={"demo/body.bin": _noise(500_000)})
    data = source.read_bytes()
    remote = read_remote_wheel(source.name, len(data), Ranges(data), workdir)
    assert not os.path.exists(remote.wheel.path)
    plan = plan_patch(remote.wheel, _config())
    assert isinstance(plan, PatchPlan)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(InvalidWheel, match="cannot open"):
        write_wheel(plan, out_dir)
