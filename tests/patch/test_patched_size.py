"""``patched_size``: the size of the wheel ``write_wheel`` writes, known before it is written and
without touching the source file."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from wheelpatch import parse_config
from wheelpatch.patch.plan import PatchPlan, plan_patch
from wheelpatch.patch.writer import patched_size, write_wheel
from wheelpatch.wheel.source_wheel import read_wheel

from ..conftest import WheelSpec, build_wheel
from ..sboms import SBOM, validated_sbom
from ..zipcraft import build_zip, wheel_entries, wheel_filename

CONFIG = parse_config(
    {
        "local-version": "p1",
        "overrides": {"demo": {"remove": ["triton"], "add": ["extra>=1"]}},
    },
    None,
)


def _crafted(directory: Path, *, descriptor: bool = False, zip64: bool = False) -> Path:
    entries = [
        dataclasses.replace(e, data_descriptor=descriptor and e.name == "demo/core.py", zip64=zip64)
        for e in wheel_entries(requires=["triton==2.0"])
    ]
    path = directory / wheel_filename()
    path.write_bytes(build_zip(entries, zip64=zip64, comment=b"an archive comment"))
    return path


def _re_patched(directory: Path, sha256: str) -> Path:
    earlier = {
        "schema": 1,
        "source": {"filename": "demo-0.whl", "sha256": sha256},
        "history": [{"schema": 1, "source": {"filename": "demo-00.whl", "sha256": "cd" * 32}}],
    }
    return build_wheel(
        directory,
        WheelSpec(
            requires=["triton==2.0"],
            extra_dist_info={
                "sboms/auditwheel.cdx.json": b'{"bomFormat": "CycloneDX"}\n',
                "wheelpatch.json": json.dumps(earlier).encode(),
            },
        ),
    )


WHEELS: dict[str, Callable[[Path], Path]] = {
    "deflated": lambda d: build_wheel(d, WheelSpec(requires=["triton==2.0", "keep"])),
    "stored-data-dirs": lambda d: build_wheel(
        d,
        WheelSpec(
            data={"scripts/demo": b"#!python\n", "headers/demo.h": b"int x;\n"},
            dir_entries=True,
            compression=zipfile.ZIP_STORED,
        ),
    ),
    "signed": lambda d: build_wheel(
        d, WheelSpec(extra_dist_info={"RECORD.jws": b"{}", "LICENSE": b"MIT\n" * 100})
    ),
    # An SBOM kept and referenced, and the earlier provenance carried on in the new history.
    "re-patched-with-sbom": lambda d: _re_patched(d, "ab" * 32),
    # An earlier provenance that is not wheelpatch's (a sha256 of 2 digits): recorded unreadable.
    "re-patched-unreadable": lambda d: _re_patched(d, "00"),
    "data-descriptor": lambda d: _crafted(d, descriptor=True),
    "zip64-records": lambda d: _crafted(d, zip64=True),
}


@pytest.mark.parametrize("epoch", [None, "1700000000"], ids=["no-epoch", "source-date-epoch"])
@pytest.mark.parametrize("wheel", list(WHEELS))
def test_patched_size_is_the_size_written(
    wheel: str, epoch: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if epoch is None:
        monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    else:
        monkeypatch.setenv("SOURCE_DATE_EPOCH", epoch)
    source_dir = tmp_path / "in"
    source_dir.mkdir()
    source = WHEELS[wheel](source_dir)
    sha256 = hashlib.sha256(source.read_bytes()).hexdigest()
    plan = plan_patch(read_wheel(source), CONFIG)
    assert isinstance(plan, PatchPlan)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    output = write_wheel(plan, out_dir)
    written = output.stat().st_size
    source.unlink()  # what patched_size needs was read with the plan
    with zipfile.ZipFile(output) as archive:
        validated_sbom(archive.read(f"{plan.dist_info}/{SBOM}"))
    assert patched_size(plan, sha256, epoch) == written
    other = None if epoch else "1700000000"
    assert patched_size(plan, sha256, other) != written  # the provenance's "created" counts
