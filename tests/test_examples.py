"""The examples under plugin_examples/ run as their READMEs say."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from wheelpatch.cli import main

EXAMPLES = Path(__file__).parent.parent / "plugin_examples"


def test_torch_without_triton(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    example = EXAMPLES / "torch-without-triton"
    subprocess.run(
        [sys.executable, str(example / "make_wheelhouse.py"), str(tmp_path / "wheelhouse")],
        check=True,
        capture_output=True,
    )
    wheels = sorted((tmp_path / "wheelhouse").glob("*.whl"))
    assert [w.name for w in wheels] == [
        "torch-2.0.1-py3-none-any.whl",
        "triton-2.0.0-py3-none-any.whl",
    ]
    monkeypatch.chdir(example)  # the example's pyproject.toml is found from here
    code = main(["patch", "--strict", "--json", "-o", str(tmp_path / "patched"), *map(str, wheels)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    report = json.loads(captured.out)
    assert [r["filename"] for r in report] == [
        "torch-2.0.1+stripe.2-py3-none-any.whl",
        "triton-2.0.0+stripe.2-py3-none-any.whl",
    ]
    removed = [c["before"].split(";")[0] for c in report[0]["changes"] if c["action"] == "remove"]
    assert removed == [
        "triton==2.0.0",
        "nvidia-cublas-cu12==12.1.3.1",
        "nvidia-cudnn-cu12==8.9.2.26",
        "cuda-toolkit[cublas,cudart]==12.9.1",
        "cuda-bindings>=12.9",
    ]
    assert [c["before"] for c in report[1]["changes"] if c["action"] == "remove"] == ["torch"]
    assert main(["verify", *map(str, sorted((tmp_path / "patched").glob("*.whl")))]) == 0
