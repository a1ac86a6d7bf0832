"""The requirement graph and its cycles, from typed values alone: no wheel, no pip."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from wheelpatch.check.cycles import find_cycles
from wheelpatch.check.graph import Package, Resolution, build_graph
from wheelpatch.errors import InvalidWheel

ENV = {str(k): str(v) for k, v in default_environment().items()}
LINUX = {**ENV, "platform_system": "Linux", "platform_machine": "x86_64"}
MAC = {**ENV, "platform_system": "Darwin", "platform_machine": "arm64"}
TORCH_ON_LINUX = 'triton==2.0.0; platform_system == "Linux" and platform_machine == "x86_64"'


def resolution(
    packages: Mapping[str, Sequence[str]],
    roots: Sequence[str] | None,
    environment: Mapping[str, str] = ENV,
) -> Resolution:
    """``{"torch": ["triton", ...]}``; roots like ``"torch[extra]"`` (None: inferred)."""
    parsed = tuple(
        Package(canonicalize_name(name), Version("1.0"), tuple(Requirement(r) for r in reqs))
        for name, reqs in packages.items()
    )
    asked = None
    if roots is not None:
        asked = {
            canonicalize_name(Requirement(r).name): frozenset(Requirement(r).extras) for r in roots
        }
    return Resolution(parsed, asked, environment)


def summary(
    packages: Mapping[str, Sequence[str]],
    roots: Sequence[str] | None,
    environment: Mapping[str, str] = ENV,
) -> tuple[list[str], list[str]]:
    """Each cycle as ``a>b>c``, and each removal as ``u>v``."""
    check = find_cycles(build_graph(resolution(packages, roots, environment)))
    cycles = [">".join(cycle.names) for cycle in check.cycles]
    breaks = [f"{b.edge.source.name}>{b.edge.target.name}" for b in check.breaks]
    return cycles, breaks


TORCH = {
    "torch": ["filelock", "sympy", TORCH_ON_LINUX, 'opt-einsum; extra == "opt-einsum"'],
    "triton": ["torch"],
    "filelock": [],
    "sympy": [],
}

CASES = [
    pytest.param(TORCH, ["torch"], LINUX, ["torch>triton"], ["triton>torch"], id="torch-asked"),
    pytest.param(TORCH, ["triton"], LINUX, ["torch>triton"], ["torch>triton"], id="triton-asked"),
    # Nothing says what was asked for: torch and triton both count as roots, and the leg into
    # the project with more requirements of its own (torch) goes.
    pytest.param(TORCH, None, LINUX, ["torch>triton"], ["triton>torch"], id="torch-inferred"),
    pytest.param(TORCH, ["torch"], MAC, [], [], id="marker-false-on-the-target"),
    pytest.param(
        {"a": ["b"], "b": ["c"], "c": ["a"]}, ["a"], ENV, ["a>b>c"], ["c>a"], id="three-projects"
    ),
    pytest.param(
        {"a": ["b"], "b": ["c"], "c": ["a"]}, ["b"], ENV, ["a>b>c"], ["a>b"], id="three-from-b"
    ),
    pytest.param({"a": ["b"], "b": ["c"], "c": []}, ["a"], ENV, [], [], id="no-cycle"),
    pytest.param(
        {"a": ["b"], "b": ['a; python_version < "3.0"']}, ["a"], ENV, [], [], id="py2-marker"
    ),
    pytest.param(
        {"a": ["b"], "b": ['a; python_version >= "3.0"']},
        ["a"],
        ENV,
        ["a>b"],
        ["b>a"],
        id="py3-marker",
    ),
    # An edge in an extra counts only when the extra is asked for on the way.
    pytest.param(
        {"a": ["b"], "b": ['a; extra == "back"']}, ["a"], ENV, [], [], id="extra-not-asked"
    ),
    pytest.param(
        {"a": ["b[back]"], "b": ['a; extra == "back"']},
        ["a"],
        ENV,
        ["a>b"],
        ["b>a"],
        id="extra-asked-on-the-edge",
    ),
    pytest.param(
        {"a": ['b; extra == "x"'], "b": ["a"]}, ["a"], ENV, [], [], id="root-extra-not-asked"
    ),
    pytest.param(
        {"a": ['b; extra == "x"'], "b": ["a"]},
        ["a[x]"],
        ENV,
        ["a>b"],
        ["b>a"],
        id="root-extra-asked",
    ),
    pytest.param({"a": ["a[x]", 'b; extra == "x"'], "b": []}, ["a"], ENV, [], [], id="self"),
    # A project nothing requires is not part of the install, nor are its cycles.
    pytest.param(
        {"a": [], "b": ["c"], "c": ["b"]}, ["a"], ENV, [], [], id="cycle-outside-the-roots"
    ),
    # Two cycles, two removals, each keeping everything required.
    pytest.param(
        {"a": ["b"], "b": ["a", "c"], "c": ["b"]},
        ["a"],
        ENV,
        ["a>b", "b>c"],
        ["b>a", "c>b"],
        id="two-cycles",
    ),
    # One removal breaks both cycles (b -> a is on both).
    pytest.param(
        {"a": ["b", "c"], "b": ["a"], "c": ["b"]},
        ["a"],
        ENV,
        ["a>b", "a>c>b"],
        ["b>a"],
        id="one-removal-two-cycles",
    ),
]


@pytest.mark.parametrize(("packages", "roots", "environment", "cycles", "breaks"), CASES)
def test_cycles_and_the_leg_removed(
    packages: Mapping[str, Sequence[str]],
    roots: Sequence[str] | None,
    environment: Mapping[str, str],
    cycles: list[str],
    breaks: list[str],
) -> None:
    assert summary(packages, roots, environment) == (cycles, breaks)


def test_every_removal_keeps_everything_required_and_breaks_every_cycle() -> None:
    graph = build_graph(
        resolution({"a": ["b"], "b": ["a", "c"], "c": ["b", "d"], "d": ["a"]}, ["a"])
    )
    check = find_cycles(graph)
    removed = [b.edge.key for b in check.breaks]
    assert all(not b.lost for b in check.breaks)
    assert graph.removing(removed) == graph.required
    assert all(any(e.key in removed for e in cycle.edges) for cycle in check.cycles)


def complete(n: int) -> dict[str, list[str]]:
    names = [f"p{i}" for i in range(n)]
    return {name: [other for other in names if other != name] for name in names}


@pytest.mark.parametrize(
    ("n", "count"),
    # Elementary cycles of the complete directed graph: sum over k of C(n, k) * (k - 1)!.
    [pytest.param(2, 1, id="k2"), pytest.param(3, 5, id="k3"), pytest.param(4, 20, id="k4")],
)
def test_every_elementary_cycle_once(n: int, count: int) -> None:
    check = find_cycles(build_graph(resolution(complete(n), ["p0"])))
    names = [cycle.names for cycle in check.cycles]
    assert len(names) == count
    assert len({frozenset(zip(c, c[1:] + c[:1], strict=True)) for c in names}) == count
    assert all(c[0] == min(c) for c in names)  # each starts at its first name
    assert not check.truncated


def test_the_search_stops_at_the_limit() -> None:
    check = find_cycles(build_graph(resolution(complete(5), ["p0"])), limit=7)
    assert len(check.cycles) == 7
    assert check.truncated


def test_the_order_does_not_depend_on_the_order_given() -> None:
    forward = {"a": ["b", "c"], "b": ["a", "c"], "c": ["a", "b"]}
    backward = {name: list(reversed(reqs)) for name, reqs in reversed(forward.items())}
    assert summary(forward, ["a"]) == summary(backward, ["a"])


def test_each_edge_carries_its_markers_and_extras() -> None:
    graph = build_graph(
        resolution(
            {"torch": [TORCH_ON_LINUX, 'triton[tools]; extra == "compile"'], "triton": ["torch"]},
            ["torch[compile]"],
            LINUX,
        )
    )
    edge = graph.edges[(canonicalize_name("torch"), canonicalize_name("triton"))]
    assert [(a.text, a.through_extras) for a in edge.requirements] == [
        (TORCH_ON_LINUX, ()),
        ('triton[tools]; extra == "compile"', ("compile",)),
    ]
    assert edge.requirements[1].describe().endswith("(through the extra 'compile')")
    check = find_cycles(graph)
    assert check.cycles[0].describe() == "torch 1.0 -> triton 1.0 -> torch"
    assert check.breaks[0].reason == "torch stays required: asked for directly"


def test_two_versions_of_one_project_are_refused() -> None:
    packages = (
        Package(canonicalize_name("a"), Version("1.0"), ()),
        Package(canonicalize_name("a"), Version("2.0"), ()),
    )
    with pytest.raises(InvalidWheel, match=r"^a: the resolution holds two versions, 1\.0 and 2\.0"):
        build_graph(Resolution(packages, None, ENV))


def test_a_marker_that_cannot_be_evaluated_is_named() -> None:
    with pytest.raises(
        InvalidWheel,
        match=r"^a 1\.0: Requires-Dist 'b; python_version ~= \"3\"': its marker cannot be "
        r"evaluated \(Undefined",
    ):
        build_graph(resolution({"a": ['b; python_version ~= "3"'], "b": []}, ["a"]))


def test_an_unknown_root_is_reported() -> None:
    graph = build_graph(resolution({"a": []}, ["a", "nope"]))
    assert graph.unknown_roots == ("nope",)


def test_the_reason_names_what_still_requires_the_target() -> None:
    check = find_cycles(build_graph(resolution({"r": ["a"], "a": ["b"], "b": ["a"]}, ["r"])))
    (item,) = check.breaks
    assert item.edge.key == ("b", "a")
    assert item.reason == "a stays required by r"
