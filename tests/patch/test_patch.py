"""The engine end to end in-process: read -> plan -> write, checked member by member."""

from __future__ import annotations

import hashlib
import json
import os
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from installer.sources import WheelFile

from wheelpatch import InvalidWheel, OutputError, load_config, patch_wheel, plan_wheel
from wheelpatch.patch.plan import PatchPlan, Unchanged
from wheelpatch.rules.config import Config
from wheelpatch.wheel.verify import verify_wheel

from ..conftest import WheelSpec, build_wheel, settled_listing, snapshot

TORCH_CONFIG = """
[tool.wheelpatch]
local-version = "stripe.2"

[tool.wheelpatch.overrides.torch]
remove = ["triton", "nvidia-*"]
add = ["pytorch-triton==2.0.0; platform_system == 'Linux'"]
replace = ["sympy>=1.12"]
relax = ["networkx"]
requires-python = ">=3.9"
"""

TORCH_REQUIRES = (
    "filelock",
    'triton==2.0.0; platform_system == "Linux"',
    "torchvision>=0.15",
    'nvidia-cublas-cu11==11.10.3.66; platform_system == "Linux"',
    'sympy>=1.0; extra == "opt"',
    'networkx[default]<3,>=2; python_version >= "3.8"',
    "Triton_Nightly>=1",
)


def torch_spec(**changes: object) -> WheelSpec:
    spec = WheelSpec(
        name="torch",
        version="2.0.1",
        tag="cp311-cp311-linux_x86_64",
        files={
            "torch/__init__.py": b"import os\n",
            "torch/lib/libtorch.so": bytes(range(256)) * 64,
        },
        requires=TORCH_REQUIRES,
        requires_python=">=3.8.0",
        data={"scripts/torchrun": b"#!python\nprint('run')\n", "data/share/torch.txt": b"hi\n"},
    )
    for key, value in changes.items():
        setattr(spec, key, value)
    return spec


def members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}


def raw_entries(path: Path) -> dict[str, bytes]:
    """Each member's local header (minus offsets, which move) and compressed bytes."""
    out: dict[str, bytes] = {}
    with zipfile.ZipFile(path) as archive, path.open("rb") as stream:
        for info in archive.infolist():
            stream.seek(info.header_offset)
            header = stream.read(30)
            name_len, extra_len = struct.unpack("<HH", header[26:30])
            stream.seek(info.header_offset + 30 + name_len + extra_len)
            out[info.filename] = header + stream.read(info.compress_size)
    return out


@pytest.fixture
def torch_config(config_file: Callable[[str], Path]) -> Path:
    return config_file(TORCH_CONFIG)


@pytest.mark.parametrize("position", ["first", "middle", "last"])
@pytest.mark.parametrize("dir_entries", [False, True], ids=["files-only", "dir-entries"])
def test_patch_torch_like_wheel(
    tmp_path: Path, torch_config: Path, position: str, dir_entries: bool
) -> None:
    source = build_wheel(tmp_path, torch_spec(dist_info_position=position, dir_entries=dir_entries))
    before = source.read_bytes()
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    output = patch_wheel(source, out_dir, load_config(torch_config))

    assert output == out_dir / "torch-2.0.1+stripe.2-cp311-cp311-linux_x86_64.whl"
    assert source.read_bytes() == before
    new = members(output)
    old = members(source)
    info = "torch-2.0.1+stripe.2.dist-info"
    data = "torch-2.0.1+stripe.2.data"
    assert not any(n.startswith(("torch-2.0.1.dist-info", "torch-2.0.1.data")) for n in new)
    assert new[f"{data}/scripts/torchrun"] == old["torch-2.0.1.data/scripts/torchrun"]
    assert new["torch/lib/libtorch.so"] == old["torch/lib/libtorch.so"]
    metadata = new[f"{info}/METADATA"].decode()
    assert metadata == (
        "Metadata-Version: 2.1\nName: torch\nVersion: 2.0.1+stripe.2\nSummary: A demo project\n"
        "Requires-Python: >=3.9\n"
        "Requires-Dist: filelock\n"
        "Requires-Dist: torchvision>=0.15\n"
        'Requires-Dist: sympy>=1.12; extra == "opt"\n'
        'Requires-Dist: networkx[default]; python_version >= "3.8"\n'
        "Requires-Dist: Triton_Nightly>=1\n"
        "Requires-Dist: pytorch-triton==2.0.0; platform_system == 'Linux'\n"
        "\nA long description.\n\nIt has two paragraphs.\n"
    )
    # RECORD is last, the .dist-info closes the archive, and installer accepts every hash.
    names = list(new)
    assert names[-1] == f"{info}/RECORD"
    assert names[-2] == f"{info}/wheelpatch.json"
    assert names[-3] == f"{info}/sboms/wheelpatch.cdx.json"
    first_info = min(i for i, n in enumerate(names) if n.startswith(info))
    assert all(n.startswith(info) for n in names[first_info:])
    with WheelFile.open(output) as wheel:
        wheel.validate_record(validate_contents=True)
    assert verify_wheel(output).ok


def test_unchanged_members_are_copied_raw(tmp_path: Path, torch_config: Path) -> None:
    source = build_wheel(tmp_path, torch_spec(dir_entries=True))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    output = patch_wheel(source, out_dir, load_config(torch_config))
    assert output is not None
    old, new = raw_entries(source), raw_entries(output)
    for name, raw in old.items():
        if name.startswith("torch-2.0.1."):
            continue
        assert new[name] == raw, name
    # A renamed .data member keeps its compressed bytes, CRC, sizes and timestamps.
    renamed_old = old["torch-2.0.1.data/scripts/torchrun"]
    renamed_new = new["torch-2.0.1+stripe.2.data/scripts/torchrun"]
    assert renamed_new[4:26] == renamed_old[4:26]
    assert renamed_new[30:] == renamed_old[30:]


def test_record_rows_only_change_where_needed(tmp_path: Path, torch_config: Path) -> None:
    source = build_wheel(tmp_path, torch_spec())
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    output = patch_wheel(source, out_dir, load_config(torch_config))
    assert output is not None
    old_rows = members(source)["torch-2.0.1.dist-info/RECORD"].decode().splitlines()
    new_rows = members(output)["torch-2.0.1+stripe.2.dist-info/RECORD"].decode().splitlines()
    assert [r for r in old_rows if r.startswith("torch/")] == [
        r for r in new_rows if r.startswith("torch/")
    ]
    assert new_rows[-1] == "torch-2.0.1+stripe.2.dist-info/RECORD,,"
    by_path = {row.split(",")[0]: row for row in new_rows}
    metadata = members(output)["torch-2.0.1+stripe.2.dist-info/METADATA"]
    digest = hashlib.sha256(metadata).digest()
    import base64

    encoded = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert by_path["torch-2.0.1+stripe.2.dist-info/METADATA"] == (
        f"torch-2.0.1+stripe.2.dist-info/METADATA,sha256={encoded},{len(metadata)}"
    )


def test_provenance(tmp_path: Path, torch_config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = build_wheel(tmp_path, torch_spec())
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    output = patch_wheel(source, out_dir, load_config(torch_config))
    assert output is not None
    document = json.loads(members(output)["torch-2.0.1+stripe.2.dist-info/wheelpatch.json"])
    assert document["schema"] == 1
    assert document["source"] == {
        "filename": source.name,
        "sha256": hashlib.sha256(source.read_bytes()).hexdigest(),
    }
    assert document["version"] == {"before": "2.0.1", "after": "2.0.1+stripe.2"}
    assert document["config"]["path"] == "pyproject.toml"
    assert document["config"]["override"] == "tool.wheelpatch.overrides.torch"
    assert document["config"]["digest"].startswith("sha256:")
    assert document["created"] is None
    actions = [
        (c["field"], c["action"], c["before"], c["after"], c["rule"]) for c in document["changes"]
    ]
    assert actions == [
        ("Version", "set", "2.0.1", "2.0.1+stripe.2", "tool.wheelpatch.local-version"),
        (
            "Requires-Dist",
            "remove",
            'triton==2.0.0; platform_system == "Linux"',
            None,
            "tool.wheelpatch.overrides.torch.remove[0]",
        ),
        (
            "Requires-Dist",
            "remove",
            'nvidia-cublas-cu11==11.10.3.66; platform_system == "Linux"',
            None,
            "tool.wheelpatch.overrides.torch.remove[1]",
        ),
        (
            "Requires-Dist",
            "replace",
            'sympy>=1.0; extra == "opt"',
            'sympy>=1.12; extra == "opt"',
            "tool.wheelpatch.overrides.torch.replace[0]",
        ),
        (
            "Requires-Dist",
            "relax",
            'networkx[default]<3,>=2; python_version >= "3.8"',
            'networkx[default]; python_version >= "3.8"',
            "tool.wheelpatch.overrides.torch.relax[0]",
        ),
        (
            "Requires-Dist",
            "add",
            None,
            "pytorch-triton==2.0.0; platform_system == 'Linux'",
            "tool.wheelpatch.overrides.torch.add[0]",
        ),
        (
            "Requires-Python",
            "set",
            ">=3.8.0",
            ">=3.9",
            "tool.wheelpatch.overrides.torch.requires-python",
        ),
    ]
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    again = patch_wheel(source, out_dir, load_config(torch_config), force=True)
    assert again is not None
    stamped = json.loads(members(again)["torch-2.0.1+stripe.2.dist-info/wheelpatch.json"])
    assert stamped["created"] == "2023-11-14T22:13:20Z"


def test_output_is_deterministic(tmp_path: Path, torch_config: Path) -> None:
    source = build_wheel(tmp_path, torch_spec(dir_entries=True))
    digests = []
    for run in ("a", "b"):
        out_dir = tmp_path / run
        out_dir.mkdir()
        output = patch_wheel(source, out_dir, load_config(torch_config))
        assert output is not None
        digests.append(hashlib.sha256(output.read_bytes()).hexdigest())
    assert digests[0] == digests[1]


@pytest.mark.parametrize(
    ("version", "mode", "expected"),
    [
        pytest.param("2.13.0+cpu", "append", "2.13.0+cpu.stripe.2", id="append-to-label"),
        pytest.param("2.13.0+cpu", "replace", "2.13.0+stripe.2", id="replace-label"),
        pytest.param("2.13.0", "replace", "2.13.0+stripe.2", id="replace-without-label"),
    ],
)
def test_existing_local_label(
    tmp_path: Path, config_file: Callable[[str], Path], version: str, mode: str, expected: str
) -> None:
    config = config_file(
        f'[tool.wheelpatch]\nlocal-version = "stripe.2"\nlocal-version-mode = "{mode}"\n'
        '[tool.wheelpatch.overrides.torch]\nremove = ["triton"]\n'
    )
    source = build_wheel(tmp_path, torch_spec(version=version))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    output = patch_wheel(source, out_dir, load_config(config))
    assert output is not None
    assert output.name == f"torch-{expected}-cp311-cp311-linux_x86_64.whl"
    assert f"torch-{expected}.dist-info/METADATA" in members(output)
    assert f"torch-{expected}.data/scripts/torchrun" in members(output)


def test_remove_never_matches_by_prefix(tmp_path: Path, config_file: Callable[[str], Path]) -> None:
    config = config_file('[tool.wheelpatch.overrides.demo]\nremove = ["torch"]\n')
    source = build_wheel(
        tmp_path, WheelSpec(requires=("torchvision>=0.1", "Torch>=2; extra == 'gpu'", "torch_x"))
    )
    plan = plan_wheel(source, load_config(config))
    assert isinstance(plan, PatchPlan)
    assert plan.new_version == plan.old_version
    assert [c.before for c in plan.changes] == ["Torch>=2; extra == 'gpu'"]


def test_unmatched_entry_warns_and_strict_refuses(
    tmp_path: Path, config_file: Callable[[str], Path]
) -> None:
    config = load_config(
        config_file(
            '[tool.wheelpatch]\nlocal-version = "x"\n'
            '[tool.wheelpatch.overrides.demo]\nremove = ["trition"]\n'
        )
    )
    source = build_wheel(tmp_path, WheelSpec(requires=("triton",)))
    plan = plan_wheel(source, config)
    assert isinstance(plan, PatchPlan)
    assert plan.warnings == (
        "demo-1.0-py3-none-any.whl: tool.wheelpatch.overrides.demo.remove[0] matches no "
        "Requires-Dist of demo 1.0",
    )
    with pytest.raises(InvalidWheel, match=r"remove\[0\] matches no Requires-Dist.*--strict"):
        plan_wheel(source, config, strict=True)


def test_wheel_without_override_is_left_alone(
    tmp_path: Path, config_file: Callable[[str], Path]
) -> None:
    config = load_config(config_file('[tool.wheelpatch.overrides.other]\nremove = ["x"]\n'))
    source = build_wheel(tmp_path, WheelSpec())
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    assert patch_wheel(source, out_dir, config) is None
    assert list(out_dir.iterdir()) == []
    plan = plan_wheel(source, config)
    assert isinstance(plan, Unchanged)
    assert plan.reason == "no override for 'demo'"


def test_versions_filter(tmp_path: Path, config_file: Callable[[str], Path]) -> None:
    config = load_config(
        config_file(
            '[tool.wheelpatch]\nlocal-version = "s"\n'
            '[tool.wheelpatch.overrides.torch]\nversions = ">=2.0,<2.1"\n'
        )
    )
    inside = plan_wheel(build_wheel(tmp_path, torch_spec(version="2.0.1")), config)
    outside = plan_wheel(build_wheel(tmp_path, torch_spec(version="2.1.0")), config)
    prerelease = plan_wheel(build_wheel(tmp_path, torch_spec(version="2.0.2rc1")), config)
    assert isinstance(inside, PatchPlan)
    assert isinstance(prerelease, PatchPlan)
    assert isinstance(outside, Unchanged)
    assert "outside tool.wheelpatch.overrides.torch.versions" in outside.reason


def test_signatures_are_dropped_and_recorded(tmp_path: Path, torch_config: Path) -> None:
    spec = torch_spec(extra_dist_info={"RECORD.jws": b"{}", "RECORD.p7s": b"sig"})
    source = build_wheel(tmp_path, spec)
    plan = plan_wheel(source, load_config(torch_config))
    assert isinstance(plan, PatchPlan)
    assert plan.dropped == ("torch-2.0.1.dist-info/RECORD.jws", "torch-2.0.1.dist-info/RECORD.p7s")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    output = patch_wheel(source, out_dir, load_config(torch_config))
    assert output is not None
    names = members(output)
    assert not any(n.endswith((".jws", ".p7s")) for n in names)
    document = json.loads(names["torch-2.0.1+stripe.2.dist-info/wheelpatch.json"])
    assert document["dropped"] == list(plan.dropped)


def test_crlf_metadata_and_folded_headers_stay_byte_identical(
    tmp_path: Path, config_file: Callable[[str], Path]
) -> None:
    metadata = (
        b"Metadata-Version: 2.1\r\nName: demo\r\nVersion: 1.0\r\n"
        b"Description: first line\r\n        |second line\r\n"
        b"Classifier: A\r\nRequires-Dist: triton\r\nRequires-Dist: keep>=1\r\n\r\nBody\r\n"
    )
    config = load_config(
        config_file(
            '[tool.wheelpatch]\nlocal-version = "p1"\n'
            '[tool.wheelpatch.overrides.demo]\nremove = ["triton"]\n'
        )
    )
    source = build_wheel(tmp_path, WheelSpec(metadata=metadata))
    plan = plan_wheel(source, config)
    assert isinstance(plan, PatchPlan)
    assert plan.metadata == metadata.replace(b"Version: 1.0", b"Version: 1.0+p1").replace(
        b"Requires-Dist: triton\r\n", b""
    )


def test_zip64_archive_with_more_than_65535_members(
    tmp_path: Path, config_file: Callable[[str], Path]
) -> None:
    files = {f"demo/m{i}.py": b"" for i in range(66_000)}
    source = build_wheel(tmp_path, WheelSpec(files=files, compression=zipfile.ZIP_STORED))
    config = load_config(
        config_file('[tool.wheelpatch]\nlocal-version = "z"\n[tool.wheelpatch.overrides.demo]\n')
    )
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    output = patch_wheel(source, out_dir, config)
    assert output is not None
    with zipfile.ZipFile(output) as archive:
        # METADATA, WHEEL, sboms/wheelpatch.cdx.json, wheelpatch.json, RECORD
        assert len(archive.infolist()) == 66_000 + 5
        assert archive.testzip() is None
    raw = output.read_bytes()
    assert b"PK\x06\x06" in raw[-200:]  # the ZIP64 end record is there
    assert verify_wheel(output).ok


def _patched_once(tmp_path: Path, torch_config: Path) -> tuple[Path, Path, Config, Path]:
    """The torch stand-in patched once into ``out/``: (source, out/, config, the output)."""
    source = build_wheel(tmp_path, torch_spec())
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    config = load_config(torch_config)
    first = patch_wheel(source, out_dir, config)
    assert first is not None
    return source, out_dir, config, first


def test_refuses_to_overwrite_without_force(tmp_path: Path, torch_config: Path) -> None:
    source, out_dir, config, first = _patched_once(tmp_path, torch_config)
    first.write_bytes(b"old")
    with pytest.raises(OutputError, match="already exists"):
        patch_wheel(source, out_dir, config)
    assert first.read_bytes() == b"old"
    assert patch_wheel(source, out_dir, config, force=True) == first
    assert first.read_bytes() != b"old"
    assert settled_listing(out_dir) == [first.name]


def test_force_swaps_the_new_wheel_in_and_removes_the_old_one_afterwards(
    tmp_path: Path, torch_config: Path
) -> None:
    source, out_dir, config, first = _patched_once(tmp_path, torch_config)
    new_bytes = first.read_bytes()
    first.write_bytes(b"old")
    keep = tmp_path / "kept-link"
    os.link(first, keep)  # another name of the file being replaced
    assert patch_wheel(source, out_dir, config, force=True) == first
    assert first.read_bytes() == new_bytes
    assert verify_wheel(first).ok
    assert keep.read_bytes() == b"old"  # replaced by name, never written through
    assert settled_listing(out_dir) == [first.name]
    assert keep.stat().st_nlink == 1  # the old file's name in out/ is gone


def test_force_does_not_replace_a_directory(tmp_path: Path, torch_config: Path) -> None:
    source, out_dir, config, first = _patched_once(tmp_path, torch_config)
    first.unlink()
    first.mkdir()
    (first / "inside").write_text("kept")
    with pytest.raises(OutputError, match="cannot write"):
        patch_wheel(source, out_dir, config, force=True)
    assert (first / "inside").read_text() == "kept"
    assert sorted(p.name for p in out_dir.iterdir()) == [first.name]


def test_output_never_replaces_input(tmp_path: Path, config_file: Callable[[str], Path]) -> None:
    config = load_config(
        config_file(
            '[tool.wheelpatch]\nlocal-version = "cpu"\nlocal-version-mode = "replace"\n'
            '[tool.wheelpatch.overrides.demo]\nremove = ["x"]\n'
        )
    )
    source = build_wheel(tmp_path, WheelSpec(version="1.0+cpu", requires=("x",)))
    before = source.read_bytes()
    with pytest.raises(OutputError, match="would replace the input wheel"):
        patch_wheel(source, source.parent, config, force=True)
    assert source.read_bytes() == before


def test_failure_leaves_input_and_output_dir_untouched(tmp_path: Path, torch_config: Path) -> None:
    source = build_wheel(tmp_path, torch_spec())
    data = bytearray(source.read_bytes())
    # Corrupt the end record's central directory offset: the archive is refused.
    data[-6:-2] = struct.pack("<I", 12345)
    source.write_bytes(bytes(data))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    before = snapshot(tmp_path)
    with pytest.raises(InvalidWheel, match=r"^torch-2\.0\.1-cp311-cp311-linux_x86_64\.whl: "):
        patch_wheel(source, out_dir, load_config(torch_config))
    assert snapshot(tmp_path) == before
