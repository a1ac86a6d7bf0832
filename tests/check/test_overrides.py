"""The overrides a cycle check suggests: rendered as TOML, written into a file with tomlkit, and
accepted by the configuration parser; and pylock.toml read as pins."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from wheelpatch.check.cycles import Break, find_cycles
from wheelpatch.check.graph import Package, Resolution, build_graph
from wheelpatch.check.overrides import apply_edits, plan_edits, render_edits
from wheelpatch.check.pylock import is_pylock, read_pylock
from wheelpatch.errors import ConfigError, InvalidWheel
from wheelpatch.rules.config import Config, parse_config

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ENV = {str(k): str(v) for k, v in default_environment().items()}


def torch_breaks() -> list[Break]:
    packages = (
        Package(canonicalize_name("torch"), Version("2.0.1"), (Requirement("triton==2.0.0"),)),
        Package(canonicalize_name("triton"), Version("2.0.0"), (Requirement("torch"),)),
    )
    roots = {canonicalize_name("torch"): frozenset[str]()}
    return list(find_cycles(build_graph(Resolution(packages, roots, ENV))).breaks)


def config_of(text: str) -> Config:
    return parse_config(tomllib.loads(text)["tool"]["wheelpatch"], None, resolve_labels=False)


EMPTY = Config(None, None, ())

COMMENTED = """\
# the team's settings
[project]
name = "app"  # our app

[tool.wheelpatch]
local-version = "stripe.2"  # the label

[tool.ruff]
line-length = 100
"""


def test_a_new_table_pinned_to_the_version_resolved() -> None:
    edits, problems = plan_edits(torch_breaks(), EMPTY)
    assert problems == []
    text = render_edits(edits)
    assert text == (
        '[tool.wheelpatch.overrides.triton]\nversions = "==2.0.0"\nremove = ["torch"]\n'
    )
    config = config_of(text)
    (override,) = config.overrides
    assert override.project == "triton"
    assert override.applies_to(Version("2.0.0"))
    assert not override.applies_to(Version("2.1.0"))
    assert [p.pattern for p in override.remove] == ["torch"]


def test_written_with_comments_and_layout_kept() -> None:
    edits, _ = plan_edits(torch_breaks(), EMPTY)
    written = apply_edits(COMMENTED, "pyproject.toml", edits)
    for line in COMMENTED.splitlines():
        assert line in written.splitlines()
    assert written.startswith(COMMENTED.split("[tool.ruff]", maxsplit=1)[0])
    data = tomllib.loads(written)
    assert data["tool"]["wheelpatch"]["overrides"] == {
        "triton": {"versions": "==2.0.0", "remove": ["torch"]}
    }
    assert data["tool"]["ruff"] == {"line-length": 100}
    parse_config(data["tool"]["wheelpatch"], None, resolve_labels=False)
    # Writing it again changes nothing: no entry is repeated.
    assert apply_edits(written, "pyproject.toml", edits) == written


def test_an_existing_table_gains_the_name_once() -> None:
    text = (
        "[tool.wheelpatch.overrides.Triton]  # spelled as the team spells it\n"
        'remove = ["nvidia-*"]  # keep this comment\n'
    )
    edits, problems = plan_edits(torch_breaks(), config_of(text))
    assert problems == []
    assert render_edits(edits) == (
        '# in the existing [tool.wheelpatch.overrides.triton]:\nremove = ["nvidia-*", "torch"]\n'
    )
    written = apply_edits(text, "pyproject.toml", edits)
    assert "# spelled as the team spells it" in written
    assert "# keep this comment" in written
    assert tomllib.loads(written)["tool"]["wheelpatch"]["overrides"] == {
        "Triton": {"remove": ["nvidia-*", "torch"]}
    }
    assert apply_edits(written, "pyproject.toml", edits) == written


def test_an_existing_inline_table_gains_remove() -> None:
    text = '[tool.wheelpatch.overrides]\ntriton = {versions = ">=2"}  # inline\n'
    edits, _ = plan_edits(torch_breaks(), config_of(text))
    written = apply_edits(text, "pyproject.toml", edits)
    assert tomllib.loads(written)["tool"]["wheelpatch"]["overrides"]["triton"] == {
        "versions": ">=2",
        "remove": ["torch"],
    }
    assert "# inline" in written


def test_a_table_whose_versions_exclude_the_resolved_one_is_a_problem() -> None:
    text = '[tool.wheelpatch.overrides.triton]\nversions = "<2"\nremove = ["nvidia-*"]\n'
    edits, problems = plan_edits(torch_breaks(), config_of(text))
    assert edits == []
    assert problems == [
        "tool.wheelpatch.overrides.triton.versions: '<2' excludes triton 2.0.0 of the "
        "resolution, so this table cannot remove its requirement on torch; widen versions or "
        "edit the table by hand"
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("[tool\n", r"^x\.toml: invalid TOML \(", id="unparsable"),
        pytest.param('tool = "x"\n', r"^x\.toml: tool: must be a table, not 'x'", id="tool-str"),
        pytest.param(
            "[tool]\nwheelpatch = 3\n",
            r"^x\.toml: tool\.wheelpatch: must be a table, not 3",
            id="wheelpatch-int",
        ),
    ],
)
def test_a_file_that_cannot_take_the_table_is_refused(text: str, message: str) -> None:
    edits, _ = plan_edits(torch_breaks(), EMPTY)
    with pytest.raises(ConfigError, match=message) as caught:
        apply_edits(text, "x.toml", edits)
    assert len(caught.value.errors) == 1
    assert "\n" not in caught.value.errors[0]


# -- pylock.toml ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        pytest.param("pylock.toml", True, id="plain"),
        pytest.param("pylock.dev.toml", True, id="named"),
        pytest.param("pyproject.toml", False, id="pyproject"),
        pytest.param("pylock.txt", False, id="txt"),
    ],
)
def test_lock_file_names(name: str, expected: bool) -> None:
    assert is_pylock(Path(name)) is expected


TAGS = ["cp311-cp311-manylinux_2_17_x86_64", "cp311-abi3-manylinux_2_17_x86_64", "py3-none-any"]
LINUX = {**ENV, "platform_system": "Linux", "sys_platform": "linux"}


def lock_of(tmp_path: Path, body: str, *files: str) -> Path:
    for name in files:
        (tmp_path / "wheels").mkdir(exist_ok=True)
        (tmp_path / "wheels" / name).write_bytes(b"wheel")
    lock = tmp_path / "pylock.toml"
    lock.write_text(f'lock-version = "1.0"\ncreated-by = "test"\n{body}', "utf-8")
    return lock


def test_a_lock_becomes_its_own_files(tmp_path: Path) -> None:
    """Each package is pinned to the lock's file (pip cannot take another of that version from
    an index), the wheel the target's tags prefer; a marker false on the target drops it."""
    lock = lock_of(
        tmp_path,
        '[[packages]]\nname = "torch"\nversion = "2.0.1"\n'
        '[[packages.wheels]]\npath = "wheels/torch-2.0.1-py3-none-any.whl"\n'
        'hashes = {sha256 = "00ff"}\n'
        '[[packages.wheels]]\nname = "torch-2.0.1-cp311-cp311-manylinux_2_17_x86_64.whl"\n'
        'url = "https://files.example/torch-2.0.1-cp311-cp311-manylinux_2_17_x86_64.whl"\n'
        'hashes = {md5 = "11", sha256 = "aa", sha512 = "bb"}\n'
        '[[packages]]\nname = "Triton"\nversion = "2.0.0"\n'
        "marker = \"platform_system == 'Linux'\"\n"
        '[[packages.wheels]]\npath = "wheels/triton-2.0.0-py3-none-any.whl"\n'
        '[[packages]]\nname = "pywin"\nversion = "1"\nmarker = "sys_platform == \'win32\'"\n'
        '[[packages.wheels]]\npath = "wheels/nope-1-py3-none-any.whl"\n'
        '[[packages]]\nname = "plain"\nversion = "1.0"\n'
        '[packages.sdist]\nurl = "https://files.example/plain-1.0.tar.gz"\n'
        'hashes = {sha256 = "cc"}\n',
        "torch-2.0.1-py3-none-any.whl",
        "triton-2.0.0-py3-none-any.whl",
    )
    locked = read_pylock(lock, tags=TAGS, markers=LINUX)
    wheels = (tmp_path / "wheels").resolve()
    assert [f.requirement for f in locked] == [
        "torch @ https://files.example/torch-2.0.1-cp311-cp311-manylinux_2_17_x86_64.whl#sha512=bb",
        f"triton @ {(wheels / 'triton-2.0.0-py3-none-any.whl').as_uri()}",
        "plain @ https://files.example/plain-1.0.tar.gz#sha256=cc",
    ]
    assert [f.key for f in locked] == [
        f"{lock}: packages[0].wheels[1]",
        f"{lock}: packages[1].wheels[0]",
        f"{lock}: packages[3].sdist",
    ]
    assert [f.is_wheel for f in locked] == [True, True, False]
    # Where only the pure wheel suits, it is the local file, with its hash.
    (torch, *_) = read_pylock(lock, tags=["py3-none-any"], markers={**LINUX})
    assert torch.requirement == (
        f"torch @ {(wheels / 'torch-2.0.1-py3-none-any.whl').as_uri()}#sha256=00ff"
    )
    assert [f.name for f in read_pylock(lock, tags=TAGS, markers=ENV | {"platform_system": "x"})
            ] == ["torch", "plain"]  # fmt: skip


def test_of_equal_tags_the_higher_build_tag_wins(tmp_path: Path) -> None:
    names = ["a-1-py3-none-any.whl", "a-1-2-py3-none-any.whl", "a-1-10-py3-none-any.whl"]
    wheels = "".join(f'[[packages.wheels]]\npath = "wheels/{n}"\n' for n in names)
    lock = lock_of(tmp_path, f'[[packages]]\nname = "a"\nversion = "1"\n{wheels}', *names)
    (locked,) = read_pylock(lock, tags=TAGS, markers=ENV)
    assert locked.path == (tmp_path / "wheels" / "a-1-10-py3-none-any.whl").resolve()


def test_a_local_file_is_checked_against_the_lock_hash(tmp_path: Path) -> None:
    name = "a-1-py3-none-any.whl"
    good = hashlib.sha256(b"wheel").hexdigest()
    for digest, refused in [(good, False), ("00" * 32, True)]:
        lock = lock_of(
            tmp_path,
            f'[[packages]]\nname = "a"\nversion = "1"\n[[packages.wheels]]\n'
            f'path = "wheels/{name}"\nhashes = {{sha256 = "{digest}"}}\n',
            name,
        )
        (locked,) = read_pylock(lock, tags=TAGS, markers=ENV)
        if not refused:
            locked.verify()
            continue
        with pytest.raises(InvalidWheel, match=rf"^{name}: sha256 {good} is not the 0+ of "):
            locked.verify()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        pytest.param('lock-version = "2.0"\n[[packages]]\nname = "a"\nversion = "1"\n'
                     'sdist = {url = "https://x/a-1.tar.gz"}\n',
                     "lock-version: must be '1.x', not '2.0'", id="version"),
        pytest.param('lock-version = "1.0"\n', "packages: must be a non-empty array", id="empty"),
        pytest.param('lock-version = "1.0"\n[[packages]]\nname = "a b"\nversion = "1"\n',
                     "packages[0].name: 'a b' is not a valid project name", id="name"),
        pytest.param('lock-version = "1.0"\n[[packages]]\nname = "a"\n',
                     "packages[0].version: a has no version", id="no-version"),
        pytest.param('lock-version = "1.0"\n[[packages]]\nname = "a"\nversion = "x!"\n',
                     "packages[0].version: 'x!' is not a valid version", id="bad-version"),
        pytest.param(
            'lock-version = "1.0"\n[[packages]]\nname = "a"\nversion = "1"\nmarker = "nope"\n',
            "packages[0].marker: 'nope' is not a valid marker", id="marker"),
        pytest.param("lock-version = \n", "invalid TOML", id="toml"),
        pytest.param(
            'lock-version = "1.0"\n[[packages]]\nname = "a"\nversion = "1"\n'
            "marker = \"'dev' in dependency_groups\"\n",
            "packages[0].marker: \"'dev' in dependency_groups\" depends on the extras or "
            "dependency groups an installer of the lock is asked for", id="groups"),
        pytest.param(
            'lock-version = "1.0"\n[[packages]]\nname = "a"\nversion = "1"\n'
            "marker = \"'gpu' in extras and python_version > '3'\"\n",
            "packages[0].marker: \"'gpu' in extras and python_version > '3'\" depends on",
            id="extras"),
        pytest.param(
            'lock-version = "1.0"\n[[packages]]\nname = "a"\nversion = "1"\n'
            "marker = \"platform_release != 'extras'\"\n",
            "packages[0]: a 1 has neither wheels nor an sdist", id="extras-as-a-value"),
        pytest.param(
            'lock-version = "1.0"\n[[packages]]\nname = "a"\nversion = "1"\n'
            '[[packages.wheels]]\npath = "a-1-py3-none-any.whl"\n',
            "packages[0].wheels[0].path: 'a-1-py3-none-any.whl': no such file", id="no-file"),
        pytest.param(
            'lock-version = "1.0"\n[[packages]]\nname = "a"\nversion = "1"\n'
            '[[packages.wheels]]\nurl = "https://x/a-1-cp27-none-win32.whl"\n',
            "packages[0].wheels: none of its 1 wheel(s) suits the target interpreter",
            id="no-wheel-suits"),
        pytest.param(
            'lock-version = "1.0"\n[[packages]]\nname = "a"\nversion = "1"\n'
            '[[packages.wheels]]\nurl = "https://x/b-1-py3-none-any.whl"\n',
            "packages[0].wheels[0]: 'b-1-py3-none-any.whl' is not a wheel of a", id="other"),
    ],
)  # fmt: skip
def test_a_bad_lock_is_refused_naming_the_entry(tmp_path: Path, body: str, message: str) -> None:
    lock = tmp_path / "pylock.toml"
    lock.write_text(body, "utf-8")
    with pytest.raises(ConfigError) as caught:
        read_pylock(lock, tags=TAGS, markers=ENV)
    (error,) = caught.value.errors
    assert error.startswith(f"{lock}: ")
    assert message in error


# -- files --apply must not get wrong ----------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(
            '[tool.wheelpatch]\noverrides.torch.versions = ">=1"\n\n[tool.ruff]\nx = 1\n',
            id="dotted-overrides",
        ),
        pytest.param(
            '[tool]\nwheelpatch.overrides.torch.versions = ">=1"\n', id="dotted-wheelpatch"
        ),
        pytest.param('[tool]\nwheelpatch.local-version = "x"\n', id="dotted-no-overrides"),
        pytest.param(
            '[tool.wheelpatch]\noverrides = { torch = { versions = ">=1" } }\n', id="inline"
        ),
        pytest.param('tool = { wheelpatch = { local-version = "x" } }\n', id="inline-tool"),
        pytest.param(
            '[tool.wheelpatch]\noverrides.triton.versions = ">=1"  # dotted\n',
            id="dotted-existing",
        ),
    ],
)
def test_a_new_table_goes_where_the_file_keeps_its_overrides(text: str) -> None:
    edits, problems = plan_edits(torch_breaks(), config_of_any(text))
    assert problems == []
    written = apply_edits(text, "pyproject.toml", edits)
    data = tomllib.loads(written)
    assert "overrides" not in data
    assert "wheelpatch" not in data
    triton = data["tool"]["wheelpatch"]["overrides"]["triton"]
    assert triton["remove"] == ["torch"]
    before = tomllib.loads(text)
    before_overrides = before["tool"]["wheelpatch"].get("overrides", {})
    assert data["tool"]["wheelpatch"]["overrides"].get("torch") == before_overrides.get("torch")
    if "{" not in text:  # an inline table is one line, which gains the new one
        for line in text.splitlines():
            assert line in written.splitlines()
    parse_config(data["tool"]["wheelpatch"], None, resolve_labels=False)


def config_of_any(text: str) -> Config:
    return parse_config(
        tomllib.loads(text).get("tool", {}).get("wheelpatch", {}), None, resolve_labels=False
    )


def test_crlf_line_endings_are_kept() -> None:
    text = COMMENTED.replace("\n", "\r\n")
    edits, _ = plan_edits(torch_breaks(), EMPTY)
    written = apply_edits(text, "pyproject.toml", edits)
    assert written == apply_edits(COMMENTED, "pyproject.toml", edits).replace("\n", "\r\n")
    assert "[tool.wheelpatch.overrides.triton]\r\n" in written


@pytest.mark.parametrize(
    ("entry", "key", "what"),
    [
        pytest.param('relax = ["torch"]', "relax[0]", "relaxes", id="relax"),
        pytest.param('relax = ["nvidia-*", "to*"]', "relax[1]", "relaxes", id="relax-glob"),
        pytest.param('replace = ["torch>=2"]', "replace[0]", "replaces", id="replace"),
        pytest.param("add = [\"Torch; python_version > '3'\"]", "add[0]", "adds", id="add"),
    ],
)
def test_a_name_the_table_relaxes_replaces_or_adds_is_a_problem(
    entry: str, key: str, what: str
) -> None:
    text = f"[tool.wheelpatch.overrides.triton]\n{entry}\n"
    edits, problems = plan_edits(torch_breaks(), config_of(text))
    assert edits == []
    assert problems == [
        f"tool.wheelpatch.overrides.triton.{key}: the table {what} torch, so it cannot also "
        f"remove it (which breaks the cycle); take torch out of {key.split('[', maxsplit=1)[0]} "
        "or edit the table by hand"
    ]


def test_a_written_table_the_parser_refuses_is_not_written() -> None:
    """The check after the edit: the plan given here ignores the table's relax (as plan_edits
    did before it knew), and the edited text, refused by the parser, is never returned."""
    text = '[tool.wheelpatch.overrides.triton]\nrelax = ["torch"]\n'
    edits, _ = plan_edits(torch_breaks(), EMPTY)
    with pytest.raises(ConfigError) as caught:
        apply_edits(text, "x.toml", edits)
    (error,) = caught.value.errors
    assert error.startswith("x.toml: --apply refused, nothing written: the edited file would be")
    assert "is already named by" in error
