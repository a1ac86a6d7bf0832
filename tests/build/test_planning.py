"""The pure planning step of the hatch plugin: the labelled version and the edited fields."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from packaging.version import Version

from wheelpatch.build.hatch import project_fields
from wheelpatch.build.planning import ProjectFields, plan_fields, plan_version
from wheelpatch.errors import ConfigError
from wheelpatch.rules.config import Config, parse_config
from wheelpatch.rules.labels import relabel, unlabel

KEY = "tool.wheelpatch.overrides.fork"


def config(table: dict[str, Any]) -> Config:
    return parse_config(table, None, global_label=True)


def fields(
    dependencies: list[str] | None = None,
    optional: dict[str, list[str]] | None = None,
    requires_python: str | None = None,
    dynamic: tuple[str, ...] = ("dependencies", "optional-dependencies", "requires-python"),
) -> ProjectFields:
    return ProjectFields(
        dependencies=None if dependencies is None else tuple(dependencies),
        optional_dependencies=None
        if optional is None
        else {extra: tuple(values) for extra, values in optional.items()},
        requires_python=requires_python,
        dynamic=frozenset(dynamic),
    )


@pytest.mark.parametrize(
    ("table", "base", "expected", "key"),
    [
        pytest.param({}, "2.0.1", "2.0.1", None, id="no-label"),
        pytest.param(
            {"local-version": "stripe.2"},
            "2.0.1",
            "2.0.1+stripe.2",
            "tool.wheelpatch.local-version",
            id="top-level-label-without-override",
        ),
        pytest.param(
            {"local-version": "stripe.2", "overrides": {"fork": {"local-version": "fork.1"}}},
            "2.0.1",
            "2.0.1+fork.1",
            f"{KEY}.local-version",
            id="override-label",
        ),
        pytest.param(
            {
                "local-version": "stripe.2",
                "overrides": {"fork": {"versions": "<2", "local-version": "fork.1"}},
            },
            "2.0.1",
            "2.0.1+stripe.2",
            "tool.wheelpatch.local-version",
            id="override-outside-its-versions",
        ),
        pytest.param(
            {"local-version": "stripe.2", "local-version-mode": "replace"},
            "2.0.1+cpu",
            "2.0.1+stripe.2",
            "tool.wheelpatch.local-version",
            id="replace-mode",
        ),
        pytest.param(
            {"local-version": "stripe.2"},
            "2.0.1+cpu",
            "2.0.1+cpu.stripe.2",
            "tool.wheelpatch.local-version",
            id="append-mode",
        ),
    ],
)
def test_plan_version(table: dict[str, Any], base: str, expected: str, key: str | None) -> None:
    plan = plan_version(config(table), "Fork", Version(base))
    assert plan.project == "fork"
    assert str(plan.version) == expected
    if expected == base:
        assert plan.change is None
    else:
        assert plan.change is not None
        assert (plan.change.before, plan.change.after, plan.change.rule) == (base, expected, key)
        if table.get("local-version-mode") != "replace":  # replacing drops the old label
            assert unlabel(plan.version, plan.label) == Version(base)


def test_plan_fields_edits_every_list_with_the_shared_rules() -> None:
    table = {
        "overrides": {
            "fork": {
                "remove": ["triton", "nvidia-*"],
                "replace": ["sympy>=1.13"],
                "relax": ["numpy"],
                "add": ["filelock"],
                "requires-python": ">=3.10",
            }
        }
    }
    given = fields(
        ["triton==2.0.0; sys_platform == 'linux'", "sympy==1.11", "numpy<2"],
        {"cuda": ["nvidia-cudnn-cu12==8.9", "numpy==1.26; python_version < '3.12'"], "x": []},
        ">=3.8",
    )
    plan = plan_fields(config(table), "fork", Version("2.0.1"), given)
    assert plan.updates == {
        "dependencies": ["sympy>=1.13", "numpy", "filelock"],
        "optional-dependencies": {"cuda": ['numpy; python_version < "3.12"'], "x": []},
        "requires-python": ">=3.10",
    }
    assert [(c.field, c.action, c.before, c.after, c.rule) for c in plan.changes] == [
        (
            "Requires-Dist",
            "remove",
            "triton==2.0.0; sys_platform == 'linux'",
            None,
            f"{KEY}.remove[0]",
        ),
        ("Requires-Dist", "replace", "sympy==1.11", "sympy>=1.13", f"{KEY}.replace[0]"),
        ("Requires-Dist", "relax", "numpy<2", "numpy", f"{KEY}.relax[0]"),
        ("Requires-Dist", "add", None, "filelock", f"{KEY}.add[0]"),
        (
            "Requires-Dist",
            "remove",
            'nvidia-cudnn-cu12==8.9; extra == "cuda"',
            None,
            f"{KEY}.remove[1]",
        ),
        (
            "Requires-Dist",
            "relax",
            'numpy==1.26; (python_version < "3.12") and extra == "cuda"',
            'numpy; (python_version < "3.12") and extra == "cuda"',
            f"{KEY}.relax[0]",
        ),
        ("Requires-Python", "set", ">=3.8", ">=3.10", f"{KEY}.requires-python"),
    ]
    assert plan.warnings == ()


def test_plan_fields_without_an_override_passes_the_hook_fields_through() -> None:
    given = fields(["a"], {"x": ["b"]})
    plan = plan_fields(config({}), "fork", Version("1"), given)
    assert plan.updates == {"dependencies": ["a"], "optional-dependencies": {"x": ["b"]}}
    assert plan.changes == ()


def test_plan_fields_refuses_to_change_static_fields() -> None:
    table = {"overrides": {"fork": {"remove": ["a"], "requires-python": ">=3.12"}}}
    with pytest.raises(ConfigError) as caught:
        plan_fields(config(table), "fork", Version("1"), fields(["a", "b"], None, ">=3.8", ()))
    assert caught.value.errors == (
        f"{KEY}.remove[0]: changes project.dependencies, which is static; list 'dependencies' "
        "in project.dynamic and move its value to [tool.hatch.metadata.hooks.wheelpatch] "
        "dependencies",
        # The hook table takes no requires-python: there is nowhere to move it to.
        f"{KEY}.requires-python: changes project.requires-python, which is static; remove it "
        "from [project] and list 'requires-python' in project.dynamic, with a "
        "[tool.hatch.metadata.hooks.wheelpatch] table, for the hook to set it",
    )


def test_plan_fields_refuses_to_set_undeclared_static_fields() -> None:
    """A field the project does not declare has no value to move: the message says so."""
    table = {"overrides": {"fork": {"add": ["a"], "requires-python": ">=3.12"}}}
    with pytest.raises(ConfigError) as caught:
        plan_fields(config(table), "fork", Version("1"), fields(None, dynamic=()))
    assert caught.value.errors == tuple(
        f"{KEY}.{key}: changes project.{name}, which is not set and not listed in "
        f"project.dynamic; list {name!r} in project.dynamic, with a "
        "[tool.hatch.metadata.hooks.wheelpatch] table, for the hook to set it"
        for key, name in [("add[0]", "dependencies"), ("requires-python", "requires-python")]
    )


def test_plan_fields_leaves_static_fields_it_does_not_change() -> None:
    table = {"overrides": {"fork": {"remove": ["gone"]}}}
    plan = plan_fields(config(table), "fork", Version("1"), fields(["a"], dynamic=()))
    assert plan.updates == {}
    assert plan.warnings == (f"{KEY}.remove[0] matches no requirement of fork 1",)


def test_unmatched_means_unmatched_in_every_list() -> None:
    table = {"overrides": {"fork": {"remove": ["only-in-extra", "nowhere"], "relax": ["x"]}}}
    given = fields(["x>1"], {"e": ["only-in-extra"]})
    plan = plan_fields(config(table), "fork", Version("1"), given)
    assert plan.warnings == (f"{KEY}.remove[1] matches no requirement of fork 1",)


def test_override_outside_its_versions_changes_nothing_and_says_so() -> None:
    table = {"overrides": {"fork": {"versions": ">=3", "remove": ["a"]}}}
    plan = plan_fields(config(table), "fork", Version("2.0.1+stripe.1"), fields(["a"]))
    assert plan.updates == {"dependencies": ["a"]}
    assert plan.changes == ()
    assert plan.override is None  # so the provenance names no override
    assert plan.warnings == (
        f"{KEY}.versions: '>=3' does not match fork 2.0.1+stripe.1, so this override is not "
        "applied",
    )
    version_plan = plan_version(config(table), "fork", Version("2.0.1+stripe.1"))
    assert version_plan.warnings == plan.warnings


@pytest.mark.parametrize(
    ("projects", "warnings"),
    [
        pytest.param(
            ["urllib-3"],
            [
                "tool.wheelpatch.overrides.urllib-3: matches nothing in this build of urllib3 "
                "(did you mean 'urllib3'?)"
            ],
            id="misspelt",
        ),
        pytest.param(
            ["numpy", "urlib3"],
            [
                "tool.wheelpatch.overrides.numpy: matches nothing in this build of urllib3",
                "tool.wheelpatch.overrides.urlib3: matches nothing in this build of urllib3 "
                "(did you mean 'urllib3'?)",
            ],
            id="each-table",
        ),
        pytest.param(["urllib3", "numpy"], [], id="one-matches"),
    ],
)
def test_override_tables_that_match_nothing_are_named(
    projects: list[str], warnings: list[str]
) -> None:
    table = {"overrides": {project: {"remove": ["a"]} for project in projects}}
    plan = plan_fields(config(table), "urllib3", Version("2.2.3"), fields(["a"]))
    assert plan.warnings == tuple(warnings)
    assert plan_version(config(table), "urllib3", Version("2.2.3")).warnings == tuple(warnings)


@pytest.mark.parametrize(
    ("table", "base", "source", "warnings"),
    [
        pytest.param(
            {"local-version": "stripe.2"},
            "2.2.4.dev3+g0aac03ad0",
            "vcs",
            [
                "tool.hatch.version.base-source: 'vcs' gives 2.2.4.dev3+g0aac03ad0, a dev "
                "release: pip prefers upstream's releases to it and '==' or '<=' pins of a "
                'release do not match it; set version_scheme = "only-version" in '
                "tool.hatch.version.raw-options",
                "tool.hatch.version.base-source: 'vcs' gives 2.2.4.dev3+g0aac03ad0, which has a "
                "local label already, so the build is 2.2.4.dev3+g0aac03ad0.stripe.2 and pins of "
                "'==2.2.4.dev3+g0aac03ad0' do not match it; set local_scheme = "
                '"no-local-version" in tool.hatch.version.raw-options',
            ],
            id="hatch-vcs-defaults",
        ),
        pytest.param({"local-version": "stripe.2"}, "2.2.3", "vcs", [], id="hatch-vcs-release"),
        pytest.param(
            {"local-version": "stripe.2"},
            "2.0.2.dev0",
            "regex",
            [
                "tool.hatch.version.base-source: 'regex' gives 2.0.2.dev0, a dev release: pip "
                "prefers upstream's releases to it and '==' or '<=' pins of a release do not "
                "match it; give it the version of the release the fork is based on"
            ],
            id="dev-from-a-file",
        ),
        pytest.param(
            {"overrides": {"fork": {"local-version": "stripe.2"}}},
            "2.0.1+cpu",
            "regex",
            [
                "tool.hatch.version.base-source: 'regex' gives 2.0.1+cpu, which has a local "
                "label already, so the build is 2.0.1+cpu.stripe.2 and pins of '==2.0.1+cpu' do "
                "not match it; set tool.wheelpatch.overrides.fork.local-version-mode = "
                '"replace" to drop its label'
            ],
            id="append-to-a-local-label",
        ),
        pytest.param(
            {"local-version": "stripe.2", "local-version-mode": "replace"},
            "2.0.1+cpu",
            "regex",
            [],
            id="replace-a-local-label",
        ),
        pytest.param({}, "2.0.1+cpu", "regex", [], id="no-label"),
    ],
)
def test_plan_version_warns_of_a_base_version_that_makes_a_poor_fork(
    table: dict[str, Any], base: str, source: str, warnings: list[str]
) -> None:
    plan = plan_version(config(table), "fork", Version(base), base_source=source)
    assert plan.warnings == tuple(warnings)


@pytest.mark.parametrize(
    ("hook", "project", "errors"),
    [
        pytest.param(
            {"requires": []},
            {"dynamic": []},
            [
                "tool.hatch.metadata.hooks.wheelpatch.requires: unknown key (known: "
                "dependencies, optional-dependencies)"
            ],
            id="unknown-key",
        ),
        pytest.param(
            {"dependencies": "a"},
            {"dynamic": ["dependencies"]},
            [
                "tool.hatch.metadata.hooks.wheelpatch.dependencies: must be a list of "
                "requirement strings, not 'a'"
            ],
            id="not-a-list",
        ),
        pytest.param(
            {"dependencies": ["ok", "bad=="]},
            {"dynamic": ["dependencies"]},
            [
                "tool.hatch.metadata.hooks.wheelpatch.dependencies[1]: 'bad==' is not a valid "
                "requirement ("  # then packaging's reason
            ],
            id="invalid-requirement",
        ),
        pytest.param(
            {"dependencies": []},
            {"dynamic": ["version"]},
            [
                "tool.hatch.metadata.hooks.wheelpatch.dependencies: project.dynamic must list "
                "'dependencies' for the hook to set it"
            ],
            id="not-dynamic",
        ),
        pytest.param(
            {},
            {"optional-dependencies": ["a"]},
            ["project.optional-dependencies: must be a table of lists, not ['a']"],
            id="optional-not-a-table",
        ),
        pytest.param(
            {"optional-dependencies": {"e": [1]}},
            {"dynamic": ["optional-dependencies"]},
            [
                "tool.hatch.metadata.hooks.wheelpatch.optional-dependencies.e: must be a list of "
                "requirement strings, not [1]"
            ],
            id="optional-not-strings",
        ),
    ],
)
def test_project_fields_errors_name_the_key(
    hook: dict[str, Any], project: dict[str, Any], errors: list[str]
) -> None:
    with pytest.raises(ConfigError) as caught:
        project_fields(hook, project)
    assert len(caught.value.errors) == len(errors)
    for got, expected in zip(caught.value.errors, errors, strict=True):
        assert got.startswith(expected), got


def test_project_fields_prefers_the_hook_table() -> None:
    got = project_fields(
        {"dependencies": ["a"]},
        {
            "dynamic": ["dependencies"],
            "optional-dependencies": {"x": ["b"]},
            "requires-python": ">=3",
        },
    )
    assert got.dependencies == ("a",)
    assert got.optional_dependencies == {"x": ("b",)}
    assert got.requires_python == ">=3"
    assert got.keys == {
        "dependencies": "tool.hatch.metadata.hooks.wheelpatch.dependencies",
        "optional-dependencies": "project.optional-dependencies",
    }


def test_project_fields_expand_hatchling_context_fields(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hatchling.utils.context import Context

    monkeypatch.setenv("WHEELPATCH_TEST_MIN", "2.1")
    got = project_fields(
        {"dependencies": ["local @ {root:uri}/vendor/local", "b>={env:WHEELPATCH_TEST_MIN:1}"]},
        {"dynamic": ["dependencies"]},
        Context(str(tmp_path)).format,
    )
    assert got.dependencies == (f"local @ {tmp_path.as_uri()}/vendor/local", "b>=2.1")
    with pytest.raises(ConfigError) as caught:
        project_fields(
            {"dependencies": ["c>={env:WHEELPATCH_TEST_UNSET}"]},
            {"dynamic": ["dependencies"]},
            Context(str(tmp_path)).format,
        )
    [error] = caught.value.errors
    assert error.startswith(
        "tool.hatch.metadata.hooks.wheelpatch.dependencies[0]: 'c>={env:WHEELPATCH_TEST_UNSET}' "
        "cannot be expanded ("
    )


@pytest.mark.parametrize(
    ("version", "label", "expected"),
    [
        ("2.0.1+stripe.2", "stripe.2", "2.0.1"),
        ("2.0.1+cpu.stripe.2", "stripe.2", "2.0.1+cpu"),
        ("2.0.1+cpu", "stripe.2", "2.0.1+cpu"),
        ("2.0.1+xstripe.2", "stripe.2", "2.0.1+xstripe.2"),
        ("2.0.1", None, "2.0.1"),
    ],
)
def test_unlabel_undoes_relabel(version: str, label: str | None, expected: str) -> None:
    assert unlabel(Version(version), label) == Version(expected)
    if label and expected != version:
        assert relabel(Version(expected), label, "append") == Version(version)


def test_top_level_label_needs_git_only_when_used(tmp_path: Path) -> None:
    table = {"local-version": "stripe.{commits}", "overrides": {"a": {"local-version": "a.1"}}}
    path = tmp_path / "pyproject.toml"
    assert parse_config(table, path).label is None  # `patch` never uses it here
    with pytest.raises(ConfigError) as caught:
        parse_config(table, path, global_label=True)
    [error] = caught.value.errors
    assert error.startswith(
        "tool.wheelpatch.local-version: {tag}/{major}/{commits}/{revision} need git"
    )
    unresolved = parse_config(table, path, global_label=True, resolve_labels=False)
    assert unresolved.label is None
    assert unresolved.overrides[0].label is None
