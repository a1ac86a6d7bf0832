"""Applying an override to a list of requirements."""

from __future__ import annotations

from pathlib import Path

import pytest

from wheelpatch.rules.config import parse_config
from wheelpatch.rules.requirements import edit_requirements


def override(**table: object):  # type: ignore[no-untyped-def]
    return parse_config({"overrides": {"demo": table}}, Path("/nowhere/pyproject.toml")).overrides[
        0
    ]


@pytest.mark.parametrize(
    ("table", "requirements", "results"),
    [
        pytest.param(
            {"remove": ["torch"]},
            ["torchvision", "torch>=2", "Torch_Audio"],
            ["torchvision", None, "Torch_Audio"],
            id="remove-is-exact-after-normalizing",
        ),
        pytest.param(
            {"remove": ["nvidia-*"]},
            ["nvidia_cublas_cu11==1", "NVIDIA.cudnn", "nvidia"],
            [None, None, "nvidia"],
            id="remove-glob",
        ),
        pytest.param(
            {"remove": ["Foo.Bar"]}, ["foo-bar; extra == 'x'"], [None], id="remove-normalized"
        ),
        pytest.param(
            {"replace": ["sympy>=1.12"]},
            ['sympy>=1.0; extra == "opt"', "sympy"],
            ['sympy>=1.12; extra == "opt"', "sympy>=1.12"],
            id="replace-keeps-extra",
        ),
        pytest.param(
            {"replace": ["sympy>=1.12; python_version >= '3.9'"]},
            ['sympy; extra == "opt"'],
            ['sympy>=1.12; (python_version >= "3.9") and (extra == "opt")'],
            id="replace-merges-markers",
        ),
        pytest.param(
            {"relax": ["setuptools"]},
            ['setuptools[core]<70,>=60; python_version < "3.12"', "setuptools @ file:///x"],
            ['setuptools[core]; python_version < "3.12"', "setuptools"],
            id="relax",
        ),
        pytest.param({"relax": ["flat"]}, ["flat"], ["flat"], id="relax-noop"),
    ],
)
def test_results(
    table: dict[str, object], requirements: list[str], results: list[str | None]
) -> None:
    edit = edit_requirements(override(**table), requirements)
    assert list(edit.results) == results
    assert edit.unmatched == ()


def test_add_and_unmatched() -> None:
    edit = edit_requirements(
        override(add=["new>=1; os_name == 'posix'"], remove=["trition", "x"], relax=["y"]), ["x"]
    )
    assert edit.added == ("new>=1; os_name == 'posix'",)
    assert edit.unmatched == (
        "tool.wheelpatch.overrides.demo.remove[0]",
        "tool.wheelpatch.overrides.demo.relax[0]",
    )
    assert [(c.action, c.rule) for c in edit.changes] == [
        ("remove", "tool.wheelpatch.overrides.demo.remove[1]"),
        ("add", "tool.wheelpatch.overrides.demo.add[0]"),
    ]


def test_invalid_requirement_is_named() -> None:
    with pytest.raises(ValueError, match="requirement 'not valid!!' is not valid"):
        edit_requirements(override(remove=["x"]), ["not valid!!"])
