"""The ``[tool.wheelpatch]`` table: typed values, every problem reported at once, discovery."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from wheelpatch.errors import ConfigError
from wheelpatch.rules.config import (
    Added,
    Config,
    NamePattern,
    find_config,
    load_config,
    parse_config,
)

from ..conftest import CliResult, snapshot

ConfigFile = Callable[[str], Path]
Cli = Callable[..., CliResult]

ROOT = "tool.wheelpatch"
TORCH = "tool.wheelpatch.overrides.torch"
TOP_KNOWN = "(known: local-version, local-version-mode, output-dir, overrides)"
OVERRIDE_KNOWN = (
    "(known: add, local-version, local-version-mode, relax, remove, replace, requires-python, "
    "versions)"
)
GLOB_RULE = (
    "is not a project name or glob (letters, digits, '-', '_', '.', and the wildcards '*', '?', "
    "'[...]')"
)
INJECTION = "(it would inject headers into METADATA)"

FULL = """
[project]
name = "someone-elses-wheels"

[tool.wheelpatch]
local-version = "stripe.2"
output-dir = "wheelhouse"
local-version-mode = "append"

[tool.wheelpatch.overrides.torch]
versions = ">=2.0,<2.1"
remove = ["triton", "Nvidia_*"]
add = ["pytorch-triton==2.0.0; platform_system == 'Linux'"]
replace = ["SymPy>=1.12"]
relax = ["setuptools"]
requires-python = ">=3.9"
local-version = "stripe.3"
local-version-mode = "replace"

[tool.wheelpatch.overrides.Jinja2_Extras]
relax = ["markupsafe"]
"""


def load_errors(config_file: ConfigFile, text: str) -> tuple[str, ...]:
    """The errors loading ``text`` gives, each checked to name the file first, without it."""
    path = config_file(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    prefix = f"{path.resolve()}: "
    assert all(e.startswith(prefix) for e in info.value.errors), info.value.errors
    return tuple(e.removeprefix(prefix) for e in info.value.errors)


def toml_string(value: str) -> str:
    """``value`` as a TOML basic string, every character outside printable ASCII escaped."""
    out = []
    for char in value:
        if char in '"\\' or not " " <= char <= "~":
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


# --- a valid configuration ----------------------------------------------------------------------


def test_full_config_parses_into_typed_values(config_file: ConfigFile) -> None:
    path = config_file(FULL)
    config = load_config(path)

    assert isinstance(config, Config)
    assert config.path == path.resolve()
    assert config.output_dir == path.resolve().parent / "wheelhouse"
    assert config.git is None
    assert [o.project for o in config.overrides] == ["torch", "jinja2-extras"]

    torch = config.override_for("Torch")
    assert torch is not None
    assert torch.key == TORCH
    assert isinstance(torch.versions, SpecifierSet)
    assert torch.versions == SpecifierSet(">=2.0,<2.1")
    assert torch.remove == (
        NamePattern("triton", f"{TORCH}.remove[0]"),
        NamePattern("nvidia-*", f"{TORCH}.remove[1]"),
    )
    assert torch.add == (
        Added("pytorch-triton==2.0.0; platform_system == 'Linux'", f"{TORCH}.add[0]"),
    )
    assert len(torch.replace) == 1
    replacement = torch.replace[0]
    assert replacement.text == "SymPy>=1.12"
    assert replacement.name == "sympy"
    assert replacement.key == f"{TORCH}.replace[0]"
    assert str(replacement.requirement.specifier) == ">=1.12"
    assert torch.relax == (NamePattern("setuptools", f"{TORCH}.relax[0]"),)
    assert torch.requires_python == ">=3.9"
    assert torch.label == "stripe.3"
    assert torch.label_key == f"{TORCH}.local-version"
    assert torch.label_mode == "replace"
    assert torch.digest.startswith("sha256:")
    assert len(torch.digest) == len("sha256:") + 64

    extras = config.override_for("jinja2.extras")
    assert extras is not None
    assert extras.key == "tool.wheelpatch.overrides.Jinja2_Extras"
    assert extras.versions is None
    assert (extras.remove, extras.add, extras.replace) == ((), (), ())
    assert extras.relax == (NamePattern("markupsafe", f"{extras.key}.relax[0]"),)
    assert extras.requires_python is None
    assert extras.label == "stripe.2"
    assert extras.label_key == f"{ROOT}.local-version"
    assert extras.label_mode == "append"

    assert config.override_for("numpy") is None


@pytest.mark.parametrize(
    ("version", "applies"),
    [
        pytest.param("2.0.0", True, id="lower-bound"),
        pytest.param("2.0.1+cu118", True, id="local"),
        pytest.param("2.0.1rc1", True, id="prerelease"),
        pytest.param("2.1.0", False, id="upper-bound"),
        pytest.param("1.13.1", False, id="below"),
    ],
)
def test_versions_select_what_is_patched(
    config_file: ConfigFile, version: str, applies: bool
) -> None:
    torch = load_config(config_file(FULL)).override_for("torch")
    assert torch is not None
    assert torch.applies_to(Version(version)) is applies


@pytest.mark.parametrize(
    ("pattern", "name", "matches"),
    [
        pytest.param("nvidia-*", "nvidia-cublas-cu11", True, id="star"),
        pytest.param("nvidia-*", "triton", False, id="star-miss"),
        pytest.param("nvidia-*", "nvidia", False, id="star-needs-dash"),
        pytest.param("triton", "triton", True, id="exact"),
        pytest.param("triton", "pytorch-triton", False, id="exact-is-whole-name"),
        pytest.param("py?", "pyz", True, id="question-mark"),
        pytest.param("lib[ab]", "liba", True, id="class"),
        pytest.param("lib[ab]", "libc", False, id="class-miss"),
    ],
)
def test_name_pattern_matches(pattern: str, name: str, matches: bool) -> None:
    assert NamePattern(pattern, "k").matches(canonicalize_name(name)) is matches


@pytest.mark.parametrize(
    ("written", "normalized"),
    [
        pytest.param("Nvidia_*", "nvidia-*", id="case-and-underscore"),
        pytest.param("zope.Interface", "zope-interface", id="dot"),
        pytest.param("  triton  ", "triton", id="surrounding-spaces"),
        pytest.param("a__-._b", "a-b", id="separator-run"),
    ],
)
def test_patterns_are_normalized(config_file: ConfigFile, written: str, normalized: str) -> None:
    config = load_config(
        config_file(f"[tool.wheelpatch.overrides.torch]\nremove = [{toml_string(written)}]\n")
    )
    assert config.overrides[0].remove == (NamePattern(normalized, f"{TORCH}.remove[0]"),)


@pytest.mark.parametrize(
    ("top", "override", "label", "label_key", "mode"),
    [
        pytest.param("", "", None, None, "append", id="nothing"),
        pytest.param(
            'local-version = "stripe.2"',
            "",
            "stripe.2",
            f"{ROOT}.local-version",
            "append",
            id="global-label",
        ),
        pytest.param(
            'local-version = "stripe.2"\nlocal-version-mode = "replace"',
            "",
            "stripe.2",
            f"{ROOT}.local-version",
            "replace",
            id="global-mode-inherited",
        ),
        pytest.param(
            'local-version = "stripe.2"\nlocal-version-mode = "replace"',
            'local-version = "stripe.3"\nlocal-version-mode = "append"',
            "stripe.3",
            f"{TORCH}.local-version",
            "append",
            id="override-wins",
        ),
        pytest.param(
            "",
            'local-version = "stripe.3"',
            "stripe.3",
            f"{TORCH}.local-version",
            "append",
            id="override-only",
        ),
    ],
)
def test_label_and_mode_resolution(
    config_file: ConfigFile,
    top: str,
    override: str,
    label: str | None,
    label_key: str | None,
    mode: str,
) -> None:
    config = load_config(
        config_file(f"[tool.wheelpatch]\n{top}\n\n[tool.wheelpatch.overrides.torch]\n{override}\n")
    )
    (torch,) = config.overrides
    assert (torch.label, torch.label_key, torch.label_mode) == (label, label_key, mode)


def test_empty_table_is_valid(config_file: ConfigFile) -> None:
    config = load_config(config_file("[tool.wheelpatch]\n"))
    assert config.overrides == ()
    assert config.output_dir is None


def test_absolute_output_dir_is_kept(config_file: ConfigFile, tmp_path: Path) -> None:
    target = tmp_path / "elsewhere" / "wheels"
    config = load_config(config_file(f"[tool.wheelpatch]\noutput-dir = {toml_string(str(target))}"))
    assert config.output_dir == target


# --- digest -------------------------------------------------------------------------------------


def digests(config_file: ConfigFile, text: str) -> dict[str, str]:
    return {o.project: o.digest for o in load_config(config_file(text)).overrides}


def test_digest_is_stable_across_loads(config_file: ConfigFile) -> None:
    first = digests(config_file, FULL)
    second = digests(config_file, FULL)
    assert first == second
    assert first["torch"] != first["jinja2-extras"]


@pytest.mark.parametrize(
    ("old", "new", "changed"),
    [
        pytest.param('"triton", "Nvidia_*"]', '"triton"]', {"torch"}, id="remove-entry"),
        pytest.param(
            'versions = ">=2.0,<2.1"', 'versions = ">=2.0,<2.2"', {"torch"}, id="versions"
        ),
        pytest.param(
            'local-version = "stripe.3"', 'local-version = "stripe.4"', {"torch"}, id="own-label"
        ),
        pytest.param(
            'local-version-mode = "replace"',
            'local-version-mode = "append"',
            {"torch"},
            id="own-mode",
        ),
        pytest.param(
            'relax = ["markupsafe"]', 'relax = ["jinja2"]', {"jinja2-extras"}, id="other-table"
        ),
        pytest.param(
            # The effective label is part of the digest: the global one reaches Jinja2_Extras only.
            'local-version = "stripe.2"',
            'local-version = "stripe.5"',
            {"jinja2-extras"},
            id="global-label",
        ),
        pytest.param(
            'local-version-mode = "append"',
            'local-version-mode = "replace"',
            {"jinja2-extras"},
            id="global-mode",
        ),
    ],
)
def test_digest_changes_with_the_table(
    config_file: ConfigFile, old: str, new: str, changed: set[str]
) -> None:
    assert FULL.count(old) == 1
    before = digests(config_file, FULL)
    after = digests(config_file, FULL.replace(old, new))
    assert {name for name in before if before[name] != after[name]} == changed


# --- one problem at a time ----------------------------------------------------------------------


def over(body: str, project: str = "torch") -> str:
    return f"[tool.wheelpatch.overrides.{project}]\n{body}\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # unknown keys
        pytest.param(
            '[tool.wheelpatch]\nlocal_version = "stripe.2"',
            f"{ROOT}.local_version: unknown key {TOP_KNOWN}",
            id="unknown-top-key",
        ),
        pytest.param(
            over('remvoe = ["triton"]'),
            f"{TORCH}.remvoe: unknown key {OVERRIDE_KNOWN}",
            id="unknown-override-key",
        ),
        pytest.param(
            over("[tool.wheelpatch.overrides.torch.extras]\nx = 1"),
            f"{TORCH}.extras: unknown key {OVERRIDE_KNOWN}",
            id="unknown-override-subtable",
        ),
        pytest.param(
            '[tool.wheelpatch]\n"out dir" = "x"',
            f'{ROOT}."out dir": unknown key {TOP_KNOWN}',
            id="unknown-key-quoted",
        ),
        # wrong types
        pytest.param(
            "[tool]\nwheelpatch = 3",
            f"{ROOT}: must be a table, not 3",
            id="root-not-a-table",
        ),
        pytest.param(
            "[tool.wheelpatch]\nlocal-version = 2",
            f"{ROOT}.local-version: must be a non-empty string, not 2",
            id="label-int",
        ),
        pytest.param(
            '[tool.wheelpatch]\nlocal-version = ""',
            f"{ROOT}.local-version: must be a non-empty string, not ''",
            id="label-empty",
        ),
        pytest.param(
            over('local-version = ["stripe"]'),
            f"{TORCH}.local-version: must be a non-empty string, not ['stripe']",
            id="override-label-list",
        ),
        pytest.param(
            '[tool.wheelpatch]\nlocal-version-mode = "prepend"',
            f"{ROOT}.local-version-mode: must be 'append' or 'replace', not 'prepend'",
            id="mode-unknown",
        ),
        pytest.param(
            over("local-version-mode = true"),
            f"{TORCH}.local-version-mode: must be 'append' or 'replace', not True",
            id="override-mode-bool",
        ),
        pytest.param(
            "[tool.wheelpatch]\noutput-dir = 1",
            f"{ROOT}.output-dir: must be a non-empty string, not 1",
            id="output-dir-int",
        ),
        pytest.param(
            '[tool.wheelpatch]\noutput-dir = ""',
            f"{ROOT}.output-dir: must be a non-empty string, not ''",
            id="output-dir-empty",
        ),
        pytest.param(
            '[tool.wheelpatch]\noverrides = "torch"',
            f"{ROOT}.overrides: must be a table of project tables, not 'torch'",
            id="overrides-not-a-table",
        ),
        pytest.param(
            '[tool.wheelpatch]\noverrides = { torch = "remove" }',
            f"{TORCH}: must be a table, not 'remove'",
            id="override-not-a-table",
        ),
        pytest.param(
            over("versions = 2"),
            f"{TORCH}.versions: must be a string of version specifiers, not 2",
            id="versions-int",
        ),
        pytest.param(
            over('versions = [">=2.0"]'),
            f"{TORCH}.versions: must be a string of version specifiers, not ['>=2.0']",
            id="versions-list",
        ),
        pytest.param(
            over("requires-python = 3.9"),
            f"{TORCH}.requires-python: must be a string of version specifiers, not 3.9",
            id="requires-python-float",
        ),
        pytest.param(
            over('remove = "triton"'),
            f"{TORCH}.remove: must be a list of strings, e.g. ['triton']",
            id="remove-bare-string",
        ),
        pytest.param(
            over('add = ["pytorch-triton", 1]'),
            f"{TORCH}.add: must be a list of strings, not ['pytorch-triton', 1]",
            id="add-mixed-list",
        ),
        pytest.param(
            over("replace = [true]"),
            f"{TORCH}.replace: must be a list of strings, not [True]",
            id="replace-bool-list",
        ),
        pytest.param(
            over("relax = { setuptools = 1 }"),
            f"{TORCH}.relax: must be a list of strings, not {{'setuptools': 1}}",
            id="relax-table",
        ),
        # invalid requirements, specifiers and names
        pytest.param(
            over('versions = ">=2.0,<<2.1"'),
            f"{TORCH}.versions: '>=2.0,<<2.1' is not a valid version specifier set (",
            id="versions-invalid",
        ),
        pytest.param(
            over('requires-python = "3.9"'),
            f"{TORCH}.requires-python: '3.9' is not a valid version specifier set (",
            id="requires-python-invalid",
        ),
        pytest.param(
            over('add = ["pytorch-triton==2.0.0", "pytorch-triton=2.0.0"]'),
            f"{TORCH}.add[1]: 'pytorch-triton=2.0.0' is not a valid requirement (",
            id="add-invalid",
        ),
        pytest.param(
            over('add = ["triton; os_name == \'nt"]'),
            f'{TORCH}.add[0]: "triton; os_name == \'nt" is not a valid requirement (',
            id="add-invalid-marker",
        ),
        pytest.param(
            over('replace = ["sympy>>1.12"]'),
            f"{TORCH}.replace[0]: 'sympy>>1.12' is not a valid requirement (",
            id="replace-invalid",
        ),
        pytest.param(
            over('remove = ["triton", "nvidia cublas"]'),
            f"{TORCH}.remove[1]: 'nvidia cublas' {GLOB_RULE}",
            id="remove-space",
        ),
        pytest.param(
            over('remove = ["triton>=2"]'),
            f"{TORCH}.remove[0]: 'triton>=2' {GLOB_RULE}",
            id="remove-requirement-not-name",
        ),
        pytest.param(
            over('remove = ["nvidia-[ab"]'),
            f"{TORCH}.remove[0]: 'nvidia-[ab' {GLOB_RULE}",
            id="remove-unbalanced-bracket",
        ),
        pytest.param(
            over('relax = [""]'),
            f"{TORCH}.relax[0]: '' {GLOB_RULE}",
            id="relax-empty",
        ),
        pytest.param(
            over('relax = ["   "]'),
            f"{TORCH}.relax[0]: '   ' {GLOB_RULE}",
            id="relax-blank",
        ),
        pytest.param(
            over("remove = [1]", project='"zope.interface"'),
            'tool.wheelpatch.overrides."zope.interface".remove: must be a list of strings, not [1]',
            id="project-key-quoted",
        ),
        # invalid labels
        pytest.param(
            '[tool.wheelpatch]\nlocal-version = "Stripe.2"',
            f"{ROOT}.local-version: 'Stripe.2' is not a valid local version label "
            "(write it normalized: 'stripe.2')",
            id="label-uppercase",
        ),
        pytest.param(
            over('local-version = "stripe_3"'),
            f"{TORCH}.local-version: 'stripe_3' is not a valid local version label "
            "(write it normalized: 'stripe.3')",
            id="override-label-underscore",
        ),
        pytest.param(
            '[tool.wheelpatch]\nlocal-version = "stripe..2"',
            f"{ROOT}.local-version: 'stripe..2' is not a valid local version label (",
            id="label-empty-segment",
        ),
        pytest.param(
            '[tool.wheelpatch]\nlocal-version = "stripe.{branch}"',
            f"{ROOT}.local-version: 'stripe.{{branch}}' uses the unknown placeholder {{branch}} "
            "(known: {tag}, {major}, {commits}, {revision})",
            id="label-unknown-placeholder",
        ),
        pytest.param(
            over('local-version = "stripe.{commits:03}"'),
            f"{TORCH}.local-version: 'stripe.{{commits:03}}' formats the placeholder {{commits}}; "
            "write {tag}, {major}, {commits}, {revision} bare",
            id="label-format-spec",
        ),
        # the same project or requirement named twice
        pytest.param(
            over("", "Foo_Bar") + over("", "foo-bar"),
            "tool.wheelpatch.overrides.foo-bar: names the same project as "
            "tool.wheelpatch.overrides.Foo_Bar",
            id="duplicate-project",
        ),
        pytest.param(
            over("", "Foo_Bar") + over("", '"foo.bar"'),
            'tool.wheelpatch.overrides."foo.bar": names the same project as '
            "tool.wheelpatch.overrides.Foo_Bar",
            id="duplicate-project-quoted",
        ),
        pytest.param(
            over('remove = ["setuptools"]\nrelax = ["setuptools"]'),
            f"{TORCH}.relax[0]: 'setuptools' is already named by {TORCH}.remove[0]",
            id="remove-and-relax",
        ),
        pytest.param(
            over('remove = ["Zope_Interface"]\nreplace = ["zope.interface>=5"]'),
            f"{TORCH}.replace[0]: 'zope-interface' is already named by {TORCH}.remove[0]",
            id="remove-and-replace-normalized",
        ),
        pytest.param(
            over('replace = ["sympy>=1.12"]\nrelax = ["SymPy"]'),
            f"{TORCH}.relax[0]: 'sympy' is already named by {TORCH}.replace[0]",
            id="replace-and-relax",
        ),
        pytest.param(
            over('remove = ["triton", "Triton"]'),
            f"{TORCH}.remove[1]: 'triton' is already named by {TORCH}.remove[0]",
            id="remove-twice",
        ),
    ],
)
def test_each_problem_names_key_and_value(config_file: ConfigFile, text: str, message: str) -> None:
    errors = load_errors(config_file, text)
    assert [e for e in errors if message in e], errors
    assert len(errors) == 1, errors


def test_every_problem_is_reported_at_once(config_file: ConfigFile) -> None:
    text = """
[tool.wheelpatch]
local-version = "Stripe.2"
colour = "red"

[tool.wheelpatch.overrides.torch]
versions = ">=2.0,<<2.1"
remove = ["triton", "nvidia cublas"]
add = ["pytorch-triton=2.0.0"]

[tool.wheelpatch.overrides.numpy]
relax = "setuptools"
local-version-mode = "prepend"

[tool.wheelpatch.overrides.Foo_Bar]
[tool.wheelpatch.overrides.foo-bar]
"""
    expected = [
        f"{ROOT}.local-version: 'Stripe.2' is not a valid local version label "
        "(write it normalized: 'stripe.2')",
        f"{ROOT}.colour: unknown key {TOP_KNOWN}",
        f"{TORCH}.versions: '>=2.0,<<2.1' is not a valid version specifier set (",
        f"{TORCH}.remove[1]: 'nvidia cublas' {GLOB_RULE}",
        f"{TORCH}.add[0]: 'pytorch-triton=2.0.0' is not a valid requirement (",
        "tool.wheelpatch.overrides.numpy.relax: must be a list of strings, e.g. ['setuptools']",
        "tool.wheelpatch.overrides.numpy.local-version-mode: must be 'append' or 'replace', "
        "not 'prepend'",
        "tool.wheelpatch.overrides.foo-bar: names the same project as "
        "tool.wheelpatch.overrides.Foo_Bar",
    ]
    with pytest.raises(ConfigError) as info:
        load_config(config_file(text))
    errors = info.value.errors
    for message in expected:
        assert [e for e in errors if message in e], (message, errors)
    assert len(errors) == len(expected), errors
    assert str(info.value) == "; ".join(errors)


def test_parse_config_refuses_a_non_table() -> None:
    with pytest.raises(ConfigError, match=r"^tool\.wheelpatch: must be a table"):
        parse_config(["stripe.2"], None)


# --- line breaks and control characters (header injection) --------------------------------------

BAD_CHARACTERS = [
    pytest.param("\n", id="LF"),
    pytest.param("\r", id="CR"),
    pytest.param("\v", id="VT"),
    pytest.param("\f", id="FF"),
    pytest.param("\x1c", id="FS"),
    pytest.param("\x1d", id="GS"),
    pytest.param("\x1e", id="RS"),
    pytest.param("\x85", id="NEL"),
    pytest.param("\u2028", id="LSEP"),
    pytest.param("\u2029", id="PSEP"),
    pytest.param("\x00", id="NUL"),
    pytest.param("\x08", id="BS"),
    pytest.param("\x1b", id="ESC"),
    pytest.param("\x1f", id="US"),
    pytest.param("\x7f", id="DEL"),
]


@pytest.mark.parametrize("char", BAD_CHARACTERS)
@pytest.mark.parametrize(
    ("template", "key", "value"),
    [
        pytest.param(
            "[tool.wheelpatch]\nlocal-version = {}",
            f"{ROOT}.local-version",
            "stripe.2{}",
            id="label",
        ),
        pytest.param(
            "[tool.wheelpatch]\noutput-dir = {}", f"{ROOT}.output-dir", "wheel{}house", id="out"
        ),
        pytest.param(
            "[tool.wheelpatch]\nlocal-version-mode = {}",
            f"{ROOT}.local-version-mode",
            "append{}",
            id="mode",
        ),
        pytest.param(over("versions = {}"), f"{TORCH}.versions", ">=2.0,{}<2.1", id="versions"),
        pytest.param(
            over("requires-python = {}"),
            f"{TORCH}.requires-python",
            ">=3.9{}",
            id="requires-python",
        ),
        pytest.param(
            over('remove = ["triton", {}]'), f"{TORCH}.remove[1]", "nvidia-*{}", id="remove"
        ),
        pytest.param(
            over("add = [{}]"),
            f"{TORCH}.add[0]",
            "pytorch-triton==2.0.0{}Requires-Dist: evil",
            id="add",
        ),
        pytest.param(over("replace = [{}]"), f"{TORCH}.replace[0]", "sympy>=1.12{}", id="replace"),
        pytest.param(over("relax = [{}]"), f"{TORCH}.relax[0]", "{}setuptools", id="relax"),
        pytest.param(
            over("local-version = {}"),
            f"{TORCH}.local-version",
            "stripe.3{}",
            id="override-label",
        ),
        pytest.param(
            "[tool.wheelpatch.overrides.{}]\nremove = []",
            "tool.wheelpatch.overrides (key name)",
            "torch{}",
            id="project-key",
        ),
    ],
)
def test_line_breaks_and_controls_are_refused(
    config_file: ConfigFile, template: str, key: str, value: str, char: str
) -> None:
    bad = value.format(char)
    errors = load_errors(config_file, template.format(toml_string(bad)))
    message = f"{key}: {bad!r} contains the line-break or control character {char!r} {INJECTION}"
    assert message in errors, errors


def test_tab_is_not_a_line_break(config_file: ConfigFile) -> None:
    config = load_config(config_file(over('versions = ">=2.0,\\t<2.1"')))
    assert config.overrides[0].versions == SpecifierSet(">=2.0,<2.1")


# --- the file itself ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("[tool.wheelpatch\nlocal-version = 'x'\n", id="unclosed-header"),
        pytest.param('[tool.wheelpatch]\nlocal-version = "stripe\n"\n', id="raw-newline-in-string"),
        pytest.param('[tool.wheelpatch]\nlocal-version = "a\x0bb"\n', id="raw-control-in-string"),
        pytest.param("[tool.wheelpatch]\nlocal-version = 'a'\nlocal-version = 'b'\n", id="dup-key"),
    ],
)
def test_bad_toml(config_file: ConfigFile, text: str) -> None:
    errors = load_errors(config_file, text)
    assert len(errors) == 1
    assert errors[0].startswith("invalid TOML (")
    assert "\n" not in errors[0]


@pytest.mark.parametrize(
    "text",
    [
        pytest.param('[project]\nname = "x"\n', id="no-tool"),
        pytest.param("[tool.ruff]\nline-length = 100\n", id="other-tool"),
        pytest.param("", id="empty-file"),
    ],
)
def test_missing_table(config_file: ConfigFile, text: str) -> None:
    errors = load_errors(config_file, text)
    assert errors == ("has no [tool.wheelpatch] table",)


def test_a_file_not_in_utf8_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "pyproject.toml"
    path.write_bytes(b"[tool.wheelpatch]\nlocal-version = '\xe9t\xe9'\n")  # Latin-1
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.errors == (
        f"{path}: not UTF-8, which TOML must be (invalid continuation byte at byte 35)",
    )


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope" / "pyproject.toml"
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.errors == (f"{path}: cannot read (No such file or directory)",)


# --- discovery ----------------------------------------------------------------------------------

WITH_TABLE = '[tool.wheelpatch]\noutput-dir = "out"\n'
WITHOUT_TABLE = '[project]\nname = "x"\n\n[tool.ruff]\nline-length = 100\n'


@pytest.mark.parametrize(
    ("files", "start", "found"),
    [
        pytest.param({"": WITH_TABLE}, "", "", id="in-start"),
        pytest.param({"": WITH_TABLE}, "a/b/c", "", id="three-up"),
        pytest.param({"": WITH_TABLE, "a": WITHOUT_TABLE}, "a/b", "", id="skips-without-table"),
        pytest.param({"": WITH_TABLE, "a": "[tool]\n"}, "a", "", id="skips-empty-tool"),
        pytest.param({"": WITH_TABLE, "a/b": WITH_TABLE}, "a/b/c", "a/b", id="nearest-wins"),
        pytest.param({"": WITH_TABLE, "a/b": WITH_TABLE}, "a", "", id="not-below"),
        pytest.param({"": "[tool.wheelpatch]\n"}, "a", "", id="empty-table-counts"),
    ],
)
def test_find_config_walks_upward(
    tmp_path: Path, files: dict[str, str], start: str, found: str
) -> None:
    root = tmp_path / "root"
    for directory, text in files.items():
        (root / directory).mkdir(parents=True, exist_ok=True)
        (root / directory / "pyproject.toml").write_text(text, encoding="utf-8")
    (root / start).mkdir(parents=True, exist_ok=True)
    expected = (root / found / "pyproject.toml").resolve()

    assert find_config((root / start).resolve()) == expected
    config = load_config(None, start=root / start)
    assert config.path == expected
    if config.output_dir is not None:
        assert config.output_dir == expected.parent / "out"


def test_find_config_uses_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "pyproject.toml").write_text(WITH_TABLE, encoding="utf-8")
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    config = load_config()
    assert config.path == (tmp_path / "pyproject.toml").resolve()
    assert config.output_dir == tmp_path.resolve() / "out"


def test_find_config_without_any_table(tmp_path: Path) -> None:
    start = tmp_path / "a" / "b"
    start.mkdir(parents=True)
    (tmp_path / "a" / "pyproject.toml").write_text(WITHOUT_TABLE, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(None, start=start)
    assert info.value.errors == (
        f"no pyproject.toml with a [tool.wheelpatch] table in {start.resolve()} or above; "
        "pass --config PATH",
    )


# --- the command line ---------------------------------------------------------------------------

CLI_BAD = """
[tool.wheelpatch]
local-version = "Stripe.2"
output-dir = "wheelhouse"

[tool.wheelpatch.overrides.demo]
remove = ["triton", "nvidia cublas"]
add = ["evil\\r\\nRequires-Dist: x", "ok\\u2028"]
relax = ["setuptools"]
replace = ["setuptools>=60"]
"""


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(CLI_BAD, id="many-problems"),
        pytest.param("[tool.wheelpatch\n", id="bad-toml"),
        pytest.param('[project]\nname = "x"\n', id="no-table"),
    ],
)
def test_cli_reports_each_problem_on_one_line(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    config_file: ConfigFile,
    make_wheel: Callable[..., Path],
    cli: Cli,
    text: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    path = config_file(text)
    wheel = make_wheel()
    with pytest.raises(ConfigError) as info:
        load_config(path)
    before = snapshot(tmp_path)

    result = cli("patch", "--config", path, wheel)

    assert result.code == 2
    assert result.out == ""
    assert "Traceback" not in result.err
    assert result.err.splitlines() == [f"error: {e}" for e in info.value.errors]
    assert result.err.count("\n") == len(info.value.errors)
    assert snapshot(tmp_path) == before
    assert not (tmp_path / "wheelhouse").exists()


def test_cli_many_problems_lists_them_all(
    tmp_path: Path,
    config_file: ConfigFile,
    make_wheel: Callable[..., Path],
    cli: Cli,
) -> None:
    config = config_file(CLI_BAD)
    result = cli("patch", "--config", config, make_wheel(), "-o", tmp_path / "o")
    demo = "tool.wheelpatch.overrides.demo"
    error = f"error: {config.resolve()}:"
    expected = [
        f"{error} {ROOT}.local-version: 'Stripe.2' is not a valid local version label",
        f"{error} {demo}.remove[1]: 'nvidia cublas' {GLOB_RULE}",
        f"{error} {demo}.add[0]: 'evil\\r\\nRequires-Dist: x' contains the line-break or control "
        f"character '\\r' {INJECTION}",
        f"{error} {demo}.add[1]: 'ok\\u2028' contains the line-break or control character "
        f"'\\u2028' {INJECTION}",
        f"{error} {demo}.relax[0]: 'setuptools' is already named by {demo}.replace[0]",
    ]
    lines = result.err.splitlines()
    for message in expected:
        assert [line for line in lines if line.startswith(message)], (message, lines)
    assert all(line.startswith("error: ") for line in lines)
    assert result.code == 2
    assert not (tmp_path / "o").exists()


def test_cli_without_any_config(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    make_wheel: Callable[..., Path],
    cli: Cli,
) -> None:
    wheel = make_wheel()
    monkeypatch.chdir(tmp_path)
    before = snapshot(tmp_path)
    result = cli("patch", wheel)
    assert result.code == 2
    assert result.err == (
        f"error: no pyproject.toml with a [tool.wheelpatch] table in {tmp_path.resolve()} or "
        "above; pass --config PATH\n"
    )
    assert snapshot(tmp_path) == before


def test_override_project_must_be_a_valid_name(config_file: ConfigFile) -> None:
    errors = load_errors(config_file, '[tool.wheelpatch.overrides."torch>=2"]\nremove = ["x"]\n')
    assert errors == (f"{ROOT}.overrides.\"torch>=2\": 'torch>=2' is not a valid project name",)


@pytest.mark.parametrize(
    ("keys", "names", "expected"),
    [
        pytest.param(
            ["pytorch"],
            ["torch", "numpy"],
            ["tool.wheelpatch.overrides.pytorch: matches no wheel given (did you mean 'torch'?)"],
            id="close-name",
        ),
        pytest.param(
            ["urllib-3"],
            ["urllib3"],
            [f"{ROOT}.overrides.urllib-3: matches no wheel given (did you mean 'urllib3'?)"],
            id="separator",
        ),
        pytest.param(
            ["scipy"],
            ["torch"],
            ["tool.wheelpatch.overrides.scipy: matches no wheel given"],
            id="far",
        ),
        pytest.param(
            ["torchaudio"],
            ["torch"],
            ["tool.wheelpatch.overrides.torchaudio: matches no wheel given"],
            id="another-project-is-no-typo",
        ),
        pytest.param(["Torch"], ["torch"], [], id="normalized-match"),
        pytest.param(["torch"], ["Torch"], [], id="normalized-name"),
    ],
)
def test_unmatched_overrides(
    config_file: ConfigFile, keys: list[str], names: list[str], expected: list[str]
) -> None:
    text = "[tool.wheelpatch]\n" + "".join(
        f'[tool.wheelpatch.overrides.{key}]\nremove = ["triton"]\n' for key in keys
    )
    config = load_config(config_file(text))
    assert config.unmatched_overrides(names, "no wheel given") == expected
