"""``wheelpatch check cycles`` end to end: the torch/triton stand-in wheelhouse and a
three-project cycle, read as a wheelhouse, resolved by the real pip from a requirements file,
and from a local index (``wheelpatch index`` served by ``python -m http.server`` on 127.0.0.1);
``--apply`` then the same command again; bad inputs, one line each.

The CLI runs in-process with the hermetic environment (the machine's pip configuration never
reaches pip) in a fresh working directory, so no configuration is found by searching upward.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ..conftest import CliResult, WheelSpec, build_wheel
from ..hermetic import hermetic_env
from ..index.test_clients import make_wheelhouse, static_server
from ..venvs import make_venv

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

COMMENTED = """\
# the team's settings
[project]
name = "app"  # our app

[tool.wheelpatch]
local-version = "stripe.2"  # the label
"""
TORCH_CYCLE = [
    "cycle 1: torch 2.0.1 -> triton 2.0.0 -> torch",
    '    torch -> triton: triton==2.0.0; platform_system == "Linux" and platform_machine == '
    '"x86_64"',
    "    triton -> torch: torch",
    "    remove triton -> torch: torch stays required: asked for directly",
    "    [tool.wheelpatch.overrides.triton]",
    '    versions = "==2.0.0"',
    '    remove = ["torch"]',
]
THREE_CYCLE = [
    "cycle 1: alpha 1.0 -> beta 1.0 -> gamma 1.0 -> alpha",
    "    alpha -> beta: beta",
    "    beta -> gamma: gamma>=1",
    "    gamma -> alpha: alpha",
    "    remove gamma -> alpha: alpha stays required: asked for directly",
    "    [tool.wheelpatch.overrides.gamma]",
    '    versions = "==1.0"',
    '    remove = ["alpha"]',
]
#: What each project asked for gives: the cycle printed, the table and list --apply writes.
EXPECTED = {
    "torch": (TORCH_CYCLE, "triton", ["torch"]),
    "alpha": (THREE_CYCLE, "gamma", ["alpha"]),
}
ON_LINUX_X86 = sys.platform == "linux" and os.uname().machine == "x86_64"


def spec(name: str, *requires: str) -> WheelSpec:
    module = name.replace("-", "_")
    return WheelSpec(name=name, files={f"{module}/__init__.py": b""}, requires=requires)


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example's torch-like wheelhouse, a three-project cycle, a project without a cycle
    (solo -> leaf) and one whose back edge holds only on Python 2 (host <-> plugin)."""
    directory = make_wheelhouse(tmp_path_factory.mktemp("cycles") / "wheelhouse")
    for item in [
        spec("alpha", "beta"),
        spec("beta", "gamma>=1"),
        spec("gamma", "alpha"),
        spec("solo", "leaf"),
        spec("leaf"),
        spec("host", "plugin"),
        spec("plugin", 'host; python_version < "3.0"'),
    ]:
        build_wheel(directory, item)
    return directory


@pytest.fixture(scope="module")
def index_url(wheelhouse: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The wheelhouse as a static simple repository, served on 127.0.0.1."""
    from wheelpatch.cli.wheelpatch import main

    site = tmp_path_factory.mktemp("site") / "site"
    assert main(["index", "-o", str(site), str(wheelhouse)]) == 0
    with static_server(site, site.parent / "http.log") as server:
        yield f"{server.url}/simple/"


@pytest.fixture
def hermetic(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The hermetic environment for pip, in a fresh working directory; returns it."""
    environment = hermetic_env()
    for key in set(os.environ) - set(environment):
        monkeypatch.delenv(key)
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


def config(directory: Path, text: str = COMMENTED) -> Path:
    path = directory / "pyproject.toml"
    path.write_text(text, "utf-8")
    return path


def how_args(how: str, project: str, wheelhouse: Path, work: Path, index: str) -> list[str]:
    if how == "wheelhouse":
        return [str(wheelhouse), "--root", project]
    pin = "torch==2.0.1" if project == "torch" else "alpha==1.0"
    if how == "requirements":
        requirements = work / "requirements.txt"
        requirements.write_text(f"# what the app needs\n{pin}\n", "utf-8")
        return ["-r", str(requirements), "--no-index", "--find-links", str(wheelhouse)]
    return ["--index-url", index, pin]


HOWS = [
    pytest.param("wheelhouse", id="wheelhouse"),
    pytest.param("requirements", id="requirements", marks=pytest.mark.slow),
    pytest.param("index", id="index", marks=pytest.mark.slow),
]


@pytest.fixture
def index_or_none(request: pytest.FixtureRequest) -> str:
    """The index URL, started only for the tests that use it."""
    if "index" in request.node.callspec.id:
        url: str = request.getfixturevalue("index_url")
        return url
    return ""


@pytest.mark.skipif(not ON_LINUX_X86, reason="torch requires triton on Linux x86_64 only")
@pytest.mark.parametrize("project", ["torch", "alpha"])
@pytest.mark.parametrize("how", HOWS)
def test_cycle_found_applied_then_gone(
    cli: Callable[..., CliResult],
    hermetic: Path,
    wheelhouse: Path,
    index_or_none: str,
    how: str,
    project: str,
) -> None:
    lines, table, removed = EXPECTED[project]
    path = config(hermetic)
    args = ["check", "cycles", "--config", path, *how_args(how, project, wheelhouse, hermetic,
                                                          index_or_none)]  # fmt: skip
    found = cli(*args)
    assert found.code == 1, found.err
    assert found.out.splitlines()[: len(lines)] == lines
    assert found.out.splitlines()[-1] == (
        "paste the overrides into [tool.wheelpatch] of pyproject.toml, or run again with --apply"
    )
    assert path.read_text("utf-8") == COMMENTED  # nothing written without --apply

    applied = cli(*args, "--apply")
    assert applied.code == 0, applied.err
    assert applied.out.splitlines() == [
        f"{path}: wrote [tool.wheelpatch.overrides.{table}] remove += {removed} "
        "(breaking 1 cycle(s))",
        applied.out.splitlines()[1],
    ]
    assert applied.out.splitlines()[1].startswith("no requirement cycle (")
    written = path.read_text("utf-8")
    assert written.startswith(COMMENTED)  # every comment and line kept, the table added after
    overrides = tomllib.loads(written)["tool"]["wheelpatch"]["overrides"]
    assert overrides == {table: {"versions": f"=={'2.0.0' if table == 'triton' else '1.0'}",
                                 "remove": removed}}  # fmt: skip

    again = cli(*args)
    assert again.code == 0, again.err
    assert again.out.startswith("no requirement cycle (")
    # A second --apply finds nothing to write.
    assert cli(*args, "--apply").code == 0
    assert path.read_text("utf-8") == written


@pytest.mark.parametrize("how", HOWS)
@pytest.mark.parametrize(
    "project",
    [
        pytest.param("solo", id="no-cycle"),
        # plugin requires host back only on Python 2: the edge vanishes on the target.
        pytest.param("host", id="marker-false-on-the-target"),
    ],
)
def test_no_cycle_exits_0(
    cli: Callable[..., CliResult],
    hermetic: Path,
    wheelhouse: Path,
    index_or_none: str,
    how: str,
    project: str,
) -> None:
    path = config(hermetic)
    pin = {"solo": "solo==1.0", "host": "host==1.0"}[project]
    if how == "wheelhouse":
        args = [str(wheelhouse), "--root", project]
    elif how == "requirements":
        (hermetic / "requirements.txt").write_text(pin + "\n", "utf-8")
        args = ["-r", "requirements.txt", "--no-index", "--find-links", str(wheelhouse)]
    else:
        args = ["--index-url", index_or_none, pin]
    result = cli("check", "cycles", "--config", path, "--json", *args)
    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert report["cycles"] == []
    assert report["exit_code"] == 0
    second = {"solo": "leaf", "host": "plugin"}[project]
    assert report["required"] == sorted([project, second])
    text = cli("check", "cycles", "--config", path, *args)
    assert text.code == 0
    assert text.out == f"no requirement cycle (2 project(s) required; roots asked for: {project})\n"
    assert path.read_text("utf-8") == COMMENTED


def test_the_python2_marker_edge_is_there_when_it_holds(
    cli: Callable[..., CliResult], hermetic: Path, tmp_path: Path
) -> None:
    """The contrast of the case above: the same back edge with a marker true here."""
    directory = tmp_path / "house"
    directory.mkdir()
    build_wheel(directory, spec("host", "plugin"))
    build_wheel(directory, spec("plugin", 'host; python_version >= "3.0"'))
    result = cli("check", "cycles", "--root", "host", directory)
    assert result.code == 1
    assert result.out.splitlines()[:3] == [
        "cycle 1: host 1.0 -> plugin 1.0 -> host",
        "    host -> plugin: plugin",
        '    plugin -> host: host; python_version >= "3.0"',
    ]


@pytest.mark.skipif(not ON_LINUX_X86, reason="torch requires triton on Linux x86_64 only")
def test_json_report_of_the_torch_cycle(
    cli: Callable[..., CliResult], hermetic: Path, wheelhouse: Path
) -> None:
    result = cli("check", "cycles", "--json", wheelhouse, "--root", "torch")
    assert result.code == 1, result.err
    report: dict[str, Any] = json.loads(result.out)
    (cycle,) = report["cycles"]
    assert cycle["cycle"] == "torch 2.0.1 -> triton 2.0.0 -> torch"
    assert [(e["from"], e["to"]) for e in cycle["edges"]] == [
        ("torch", "triton"),
        ("triton", "torch"),
    ]
    (requirement,) = cycle["edges"][0]["requirements"]
    assert requirement["marker"] == 'platform_system == "Linux" and platform_machine == "x86_64"'
    assert report["breaks"] == [
        {
            "from": "triton",
            "to": "torch",
            "lost": [],
            "reason": "torch stays required: asked for directly",
            "cycles": [0],
        }
    ]
    assert tomllib.loads(report["toml"]) == {
        "tool": {"wheelpatch": {"overrides": {"triton": {"versions": "==2.0.0",
                                                         "remove": ["torch"]}}}}
    }  # fmt: skip
    assert report["exit_code"] == 1


@pytest.mark.skipif(not ON_LINUX_X86, reason="torch requires triton on Linux x86_64 only")
def test_a_wheelhouse_without_roots_infers_them(
    cli: Callable[..., CliResult], hermetic: Path, tmp_path: Path, wheelhouse: Path
) -> None:
    torch_only = tmp_path / "torch-only"
    torch_only.mkdir()
    for wheel in wheelhouse.glob("*.whl"):
        if wheel.name.split("-")[0] not in {"alpha", "beta", "gamma", "solo", "leaf", "host",
                                            "plugin"}:  # fmt: skip
            (torch_only / wheel.name).write_bytes(wheel.read_bytes())
    result = cli("check", "cycles", torch_only)
    assert result.code == 1
    assert "    remove triton -> torch: torch stays required: inferred as a root" in result.out
    assert "; roots inferred: torch, triton" in result.out


OTHERS = {"alpha", "beta", "gamma", "solo", "leaf", "host", "plugin"}


def torch_lock(directory: Path, wheelhouse: Path, url: str | None = None) -> Path:
    """A pylock.toml of the torch stand-in's resolution: every wheel of it, by path (or at
    ``url``, with its sha256)."""
    entries = ""
    for wheel in sorted(wheelhouse.glob("*.whl")):
        name, version = wheel.name.split("-")[:2]
        if name in OTHERS:
            continue
        entries += f'[[packages]]\nname = "{name}"\nversion = "{version}"\n[[packages.wheels]]\n'
        if url is None:
            entries += f'path = "{wheel}"\n'
        else:
            digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
            entries += f'url = "{url}/{wheel.name}"\nhashes = {{sha256 = "{digest}"}}\n'
    lock = directory / "pylock.toml"
    lock.write_text(f'lock-version = "1.0"\ncreated-by = "test"\n{entries}', "utf-8")
    return lock


@pytest.mark.slow
@pytest.mark.skipif(not ON_LINUX_X86, reason="torch requires triton on Linux x86_64 only")
def test_a_pylock_is_resolved_again_by_pip(
    cli: Callable[..., CliResult], hermetic: Path, wheelhouse: Path
) -> None:
    lock = torch_lock(hermetic, wheelhouse)
    path = config(hermetic)
    result = cli("check", "cycles", "--config", path, "--no-index", lock)
    assert result.code == 1, result.err
    assert result.out.splitlines()[0] == "cycle 1: torch 2.0.1 -> triton 2.0.0 -> torch"
    # A lock does not say what was asked for: torch and triton, which nothing else requires.
    assert "    remove triton -> torch: torch stays required: inferred as a root" in result.out
    assert "roots were inferred and each leg chosen is a heuristic's guess" in result.out
    assert cli("check", "cycles", "--config", path, "--no-index", lock, "--apply").code == 0
    assert cli("check", "cycles", "--config", path, "--no-index", lock).code == 0


@pytest.mark.slow
@pytest.mark.skipif(not ON_LINUX_X86, reason="torch requires triton on Linux x86_64 only")
def test_a_pylock_of_urls_is_applied_then_gone(
    cli: Callable[..., CliResult], hermetic: Path, tmp_path: Path, wheelhouse: Path
) -> None:
    """The lock's wheels at URLs (a loopback server): pinned by URL and hash, and the one an
    override applies to downloaded and given to the resolver as a file (a URL pin would clash
    with its patched stand-in)."""
    with static_server(wheelhouse, tmp_path / "http.log") as server:
        lock = torch_lock(hermetic, wheelhouse, server.url)
        path = config(hermetic)
        args = ["check", "cycles", "--config", path, "--no-index", lock]
        found = cli(*args)
        assert found.code == 1, found.err
        assert found.out.splitlines()[0] == "cycle 1: torch 2.0.1 -> triton 2.0.0 -> torch"
        assert cli(*args, "--apply").code == 0
        again = cli(*args)
        assert again.code == 0, again.err
        assert again.out.startswith("no requirement cycle (")
        # A hash that is not the file's is pip's refusal, not a check of another file.
        text = lock.read_text("utf-8")
        start = text.index('sha256 = "') + len('sha256 = "')
        lock.write_text(text[:start] + "0" * 64 + text[start + 64 :], "utf-8")
        refused = cli(*args)
        assert refused.code == 4, refused.err
        assert "hash" in refused.err.lower()


@pytest.mark.slow
@pytest.mark.skipif(not ON_LINUX_X86, reason="torch requires triton on Linux x86_64 only")
def test_a_pylock_pins_its_own_files_not_an_index_s(
    cli: Callable[..., CliResult], hermetic: Path, tmp_path: Path, wheelhouse: Path
) -> None:
    """Another triton 2.0.0 that pip would prefer (a build tag), without the requirement on
    torch: the lock's own wheel is the one checked, so the cycle is there."""
    other = tmp_path / "other"
    other.mkdir()
    build_wheel(other, WheelSpec(name="triton", version="2.0.0", build="1",
                                 files={"triton/__init__.py": b""}))  # fmt: skip
    lock = torch_lock(hermetic, wheelhouse)
    result = cli("check", "cycles", "--no-index", "--find-links", other, lock)
    assert result.code == 1, result.err
    assert result.out.splitlines()[0] == "cycle 1: torch 2.0.1 -> triton 2.0.0 -> torch"


@pytest.mark.slow
@pytest.mark.parametrize("how", ["wheelhouse", "requirements"])
def test_another_interpreter_is_the_target(
    cli: Callable[..., CliResult], hermetic: Path, tmp_path: Path, wheelhouse: Path, how: str
) -> None:
    """--python: pip resolves for that interpreter (it has no pip of its own), the wheelhouse's
    markers are evaluated with its marker environment."""
    venv = make_venv(tmp_path / "target")
    args = how_args(how, "alpha", wheelhouse, hermetic, "")
    result = cli("check", "cycles", "--python", venv.python, "--json", *args)
    assert result.code == 1, result.err
    assert [c["cycle"] for c in json.loads(result.out)["cycles"]] == [
        "alpha 1.0 -> beta 1.0 -> gamma 1.0 -> alpha"
    ]
    broken = cli("check", "cycles", "--python", tmp_path / "no-python", *args)
    assert broken.code == 2
    assert broken.err.startswith(f"error: --python {tmp_path / 'no-python'}: cannot run it")


@pytest.mark.slow
def test_a_fully_pinned_requirements_file_says_nothing_of_roots(
    cli: Callable[..., CliResult], hermetic: Path, wheelhouse: Path
) -> None:
    """pip reports every pin as asked for; the roots are then inferred, as for a lock."""
    (hermetic / "requirements.txt").write_text("alpha==1.0\nbeta==1.0\ngamma==1.0\n", "utf-8")
    args = ["-r", "requirements.txt", "--no-index", "--find-links", str(wheelhouse)]
    result = cli("check", "cycles", *args)
    assert result.code == 1, result.err
    assert "; roots inferred: alpha, beta, gamma" in result.out
    # Every leg keeps all three required; the alphabetical order decides.
    assert "    remove alpha -> beta: beta stays required: inferred as a root" in result.out
    pinned = cli("check", "cycles", *args, "--root", "alpha")
    assert "    remove gamma -> alpha: alpha stays required: asked for directly" in pinned.out


@pytest.mark.skipif(not ON_LINUX_X86, reason="torch requires triton on Linux x86_64 only")
def test_apply_extends_an_existing_table(
    cli: Callable[..., CliResult], hermetic: Path, wheelhouse: Path
) -> None:
    text = COMMENTED + (
        "\n[tool.wheelpatch.overrides.triton]  # triton's own table\n"
        'remove = ["nvidia-*"]  # no CUDA wheels here\n'
    )
    path = config(hermetic, text)
    result = cli("check", "cycles", "--config", path, wheelhouse, "--root", "torch", "--apply")
    assert result.code == 0, result.err
    written = path.read_text("utf-8")
    assert "# triton's own table" in written
    assert 'remove = ["nvidia-*", "torch"]  # no CUDA wheels here' in written
    assert written.count("[tool.wheelpatch.overrides.triton]") == 1


@pytest.mark.skipif(not ON_LINUX_X86, reason="torch requires triton on Linux x86_64 only")
def test_apply_refuses_a_table_whose_versions_exclude_the_wheel(
    cli: Callable[..., CliResult], hermetic: Path, wheelhouse: Path
) -> None:
    text = COMMENTED + '\n[tool.wheelpatch.overrides.triton]\nversions = "<2"\nremove = ["x"]\n'
    path = config(hermetic, text)
    result = cli("check", "cycles", "--config", path, wheelhouse, "--root", "torch", "--apply")
    assert result.code == 2
    assert result.out == ""
    assert result.err == (
        f"error: {path}: tool.wheelpatch.overrides.triton.versions: '<2' excludes triton 2.0.0 "
        "of the resolution, so this table cannot remove its requirement on torch; widen "
        "versions or edit the table by hand\n"
    )
    assert path.read_text("utf-8") == text


def test_apply_without_a_configuration_writes_pyproject_here(
    cli: Callable[..., CliResult], hermetic: Path, tmp_path: Path
) -> None:
    directory = tmp_path / "house"
    directory.mkdir()
    build_wheel(directory, spec("alpha", "beta"))
    build_wheel(directory, spec("beta", "alpha"))
    result = cli("check", "cycles", directory, "--root", "alpha", "--apply")
    assert result.code == 0, result.err
    assert tomllib.loads((hermetic / "pyproject.toml").read_text("utf-8")) == {
        "tool": {"wheelpatch": {"overrides": {"beta": {"versions": "==1.0",
                                                       "remove": ["alpha"]}}}}
    }  # fmt: skip


def two_cycle(tmp_path: Path) -> Path:
    directory = tmp_path / "house"
    directory.mkdir()
    build_wheel(directory, spec("alpha", "beta"))
    build_wheel(directory, spec("beta", "alpha"))
    return directory


PROJECT = '# the app\r\n[project]\r\nname = "app"\r\nversion = "1"\r\n'


@pytest.mark.parametrize("newline", [pytest.param("\n", id="lf"), pytest.param("\r\n", id="crlf")])
def test_apply_edits_a_pyproject_here_without_the_table(
    cli: Callable[..., CliResult], hermetic: Path, tmp_path: Path, newline: str
) -> None:
    """./pyproject.toml without [tool.wheelpatch] is no configuration, but it is the file
    --apply edits: its [project] stays, and so do its line endings."""
    text = PROJECT.replace("\r\n", newline)
    path = hermetic / "pyproject.toml"
    path.write_bytes(text.encode())
    result = cli("check", "cycles", two_cycle(tmp_path), "--root", "alpha", "--apply")
    assert result.code == 0, result.err
    written = path.read_bytes().decode()
    assert written.startswith(text)
    assert written.count("\n") == written.count(newline)
    assert tomllib.loads(written) == {
        "project": {"name": "app", "version": "1"},
        "tool": {"wheelpatch": {"overrides": {"beta": {"versions": "==1.0",
                                                       "remove": ["alpha"]}}}},
    }  # fmt: skip


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("[project\n", "pyproject.toml: invalid TOML (", id="unparsable"),
        pytest.param(b"name = '\xff'\n", "pyproject.toml: not UTF-8", id="not-utf8"),
    ],
)
@pytest.mark.parametrize(
    "apply", [pytest.param([], id="check"), pytest.param(["--apply"], id="apply")]
)
def test_an_unreadable_pyproject_here_is_an_error_not_overwritten(
    cli: Callable[..., CliResult],
    hermetic: Path,
    tmp_path: Path,
    text: str | bytes,
    message: str,
    apply: list[str],
) -> None:
    path = hermetic / "pyproject.toml"
    data = text if isinstance(text, bytes) else text.encode()
    path.write_bytes(data)
    result = cli("check", "cycles", two_cycle(tmp_path), "--root", "alpha", *apply)
    assert result.code == 2
    assert result.out == ""
    (line,) = result.err.splitlines()
    assert line.startswith("error: "), line
    assert message in line, line
    assert path.read_bytes() == data


@pytest.mark.parametrize(
    ("table", "message"),
    [
        pytest.param('relax = ["alpha"]', "beta.relax[0]: the table relaxes alpha", id="relax"),
        pytest.param('replace = ["alpha>=1"]', "beta.replace[0]: the table replaces alpha",
                     id="replace"),
        pytest.param('add = ["alpha"]', "beta.add[0]: the table adds alpha", id="add"),
    ],
)  # fmt: skip
def test_apply_refuses_a_table_that_keeps_the_name(
    cli: Callable[..., CliResult], hermetic: Path, tmp_path: Path, table: str, message: str
) -> None:
    text = COMMENTED + f"\n[tool.wheelpatch.overrides.beta]\n{table}\n"
    path = config(hermetic, text)
    args = ["check", "cycles", "--config", path, two_cycle(tmp_path), "--root", "alpha"]
    result = cli(*args, "--apply")
    assert result.code == 2, result.err
    assert result.out == ""
    (line,) = result.err.splitlines()
    assert line.startswith(f"error: {path}: tool.wheelpatch.overrides.{message}, so it cannot")
    assert path.read_bytes() == text.encode()
    warned = cli(*args)
    assert warned.code == 1
    assert f"warning: {path}: tool.wheelpatch.overrides.{message}" in warned.err


@pytest.mark.parametrize(
    "text",
    [
        pytest.param('[tool.wheelpatch]\noverrides.alpha.versions = ">=1"\n', id="dotted"),
        pytest.param('[tool]\nwheelpatch.overrides.alpha.versions = ">=1"\n', id="dotted-tool"),
        pytest.param('[tool.wheelpatch]\noverrides = { alpha = { versions = ">=1" } }\n',
                     id="inline"),
    ],
)  # fmt: skip
@pytest.mark.parametrize(
    "json_", [pytest.param([], id="text"), pytest.param(["--json"], id="json")]
)
def test_apply_into_dotted_and_inline_overrides(
    cli: Callable[..., CliResult], hermetic: Path, tmp_path: Path, text: str, json_: list[str]
) -> None:
    path = config(hermetic, text)
    args = ["check", "cycles", "--config", path, two_cycle(tmp_path), "--root", "alpha", *json_]
    result = cli(*args, "--apply")
    assert result.code == 0, result.err
    data = tomllib.loads(path.read_text("utf-8"))
    assert set(data) == {"tool"}
    assert data["tool"]["wheelpatch"]["overrides"] == {
        "alpha": {"versions": ">=1"},
        "beta": {"versions": "==1.0", "remove": ["alpha"]},
    }
    assert cli(*args).code == 0


BAD_TOML = "[tool.wheelpatch\n"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param(["nope.whl"], "error: nope.whl: no such wheel file", id="missing-wheel"),
        pytest.param(["-r", "nope.txt"], "error: -r nope.txt: no such file", id="missing-r"),
        pytest.param(["pylock.toml"], "error: pylock.toml: no such lock file", id="missing-lock"),
        pytest.param(
            ["torch>>1"],
            "error: 'torch>>1' is neither a wheel file, a directory, a pylock.toml nor a valid "
            "requirement (",
            id="bad-requirement",
        ),
        pytest.param(
            ["{house}", "--config", "bad.toml"],
            "error: bad.toml: invalid TOML (",
            id="bad-toml",
        ),
        pytest.param(
            ["{house}", "--config", "bad.toml", "--apply"],
            "error: bad.toml: invalid TOML (",
            id="bad-toml-apply",
        ),
        pytest.param(
            ["{house}", "--config", "unknown.toml"],
            "error: unknown.toml: tool.wheelpatch.overrides.x.rmove: unknown key",
            id="unknown-key",
        ),
        pytest.param(
            ["{house}", "--config", "missing.toml"],
            "error: missing.toml: cannot read (No such file or directory)",
            id="missing-config",
        ),
        pytest.param(
            ["{house}", "--root", "a>1"],
            "error: --root 'a>1': only a name and extras, like torch[opt-einsum]",
            id="bad-root",
        ),
        pytest.param(
            ["{house}", "--root", "nope"],
            "error: --root nope: no such project in the resolution",
            id="unknown-root",
        ),
        pytest.param(
            ["{house}", "alpha"],
            "error: {house}: a wheelhouse directory is checked on its own",
            id="directory-with-requirement",
        ),
        pytest.param(["{empty}"], "error: {empty}: holds no wheel (*.whl)", id="empty-directory"),
        pytest.param(
            ["reqs.txt"],
            "error: reqs.txt: is a file, neither a wheel nor a pylock.toml; did you mean -r "
            "reqs.txt?",
            id="requirements-file-as-input",
        ),
        pytest.param(
            ["-r", "blank.txt"],
            "error: -r blank.txt: lists no requirement (only blank lines and comments)",
            id="empty-r",
        ),
        pytest.param(
            ["grouped/pylock.toml"],
            "error: grouped/pylock.toml: packages[0].marker: \"'dev' in dependency_groups\" "
            "depends on the extras or dependency groups",
            id="lock-group-marker",
        ),
        pytest.param(
            ["{broken}"],
            "error: broken-1.0-py3-none-any.whl: METADATA Name 'other' does not match",
            id="broken-wheel",
        ),
    ],
)
def test_bad_input_is_one_line(
    cli: Callable[..., CliResult], hermetic: Path, argv: list[str], message: str
) -> None:
    house = hermetic / "house"
    house.mkdir()
    build_wheel(house, spec("alpha", "beta"))
    build_wheel(house, spec("beta"))
    (hermetic / "empty").mkdir()
    (hermetic / "broken").mkdir()
    build_wheel(
        hermetic / "broken",
        spec("broken"),
        metadata=b"Metadata-Version: 2.1\nName: other\nVersion: 1.0\n",
    )
    (hermetic / "bad.toml").write_text(BAD_TOML, "utf-8")
    (hermetic / "reqs.txt").write_text("alpha\n", "utf-8")
    (hermetic / "blank.txt").write_text("# nothing yet\n\n", "utf-8")
    (hermetic / "grouped").mkdir()
    (hermetic / "grouped" / "pylock.toml").write_text(
        'lock-version = "1.0"\n[[packages]]\nname = "alpha"\nversion = "1.0"\n'
        "marker = \"'dev' in dependency_groups\"\n",
        "utf-8",
    )
    (hermetic / "unknown.toml").write_text(
        '[tool.wheelpatch.overrides.x]\nrmove = ["y"]\n', "utf-8"
    )
    places = {"house": str(house), "empty": str(hermetic / "empty"),
              "broken": str(hermetic / "broken")}  # fmt: skip
    before = {p: p.read_bytes() for p in hermetic.rglob("*") if p.is_file()}
    result = cli("check", "cycles", *[a.format(**places) for a in argv])
    expected = message.format(**places)
    assert result.code == (1 if "broken" in argv[0] else 2), result.err
    assert result.out == ""
    lines = result.err.splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith(expected), result.err
    assert {p: p.read_bytes() for p in hermetic.rglob("*") if p.is_file()} == before


def test_bad_input_with_json_still_prints_a_document(
    cli: Callable[..., CliResult], hermetic: Path
) -> None:
    result = cli("check", "cycles", "--json", "nope.whl")
    assert result.code == 2
    assert json.loads(result.out) == {
        "cycles": None,
        "error": "nope.whl: no such wheel file",
        "exit_code": 2,
    }


def test_no_input_is_a_usage_error(cli: Callable[..., CliResult], hermetic: Path) -> None:
    result = cli("check", "cycles")
    assert result.code == 2
    assert result.err == (
        "error: give an INPUT (wheel, wheelhouse directory, pylock.toml, requirement)\n"
    )


def test_help_explains_the_rule_and_the_exit_codes(cli: Callable[..., CliResult]) -> None:
    result = cli("check", "cycles", "--help")
    assert result.code == 0
    assert "the leg to remove:" in result.out
    assert "0    no cycle" in result.out
    assert "1    cycles found (and not applied)" in result.out
    assert cli("check", "--help").out.count("cycles") >= 1


def test_the_nearest_configuration_is_found_and_named(
    cli: Callable[..., CliResult],
    hermetic: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    directory = tmp_path / "house"
    directory.mkdir()
    build_wheel(directory, spec("alpha", "beta"))
    build_wheel(directory, spec("beta", "alpha"))
    path = config(hermetic, COMMENTED + '\n[tool.wheelpatch.overrides.beta]\nremove = ["alpha"]\n')
    (hermetic / "sub").mkdir()
    monkeypatch.chdir(hermetic / "sub")
    result = cli("check", "cycles", directory, "--root", "alpha")
    assert result.code == 0, result.err
    assert result.err == f"wheelpatch: using configuration {path.resolve()}\n"
    assert result.out == "no requirement cycle (2 project(s) required; roots asked for: alpha)\n"


def test_of_a_project_s_wheels_the_one_pip_would_take_counts(
    cli: Callable[..., CliResult], hermetic: Path, tmp_path: Path
) -> None:
    """Same tags: the higher build tag wins, as in pip; a wheel whose Requires-Python excludes
    the target is left out, whatever its build tag."""
    houses = [tmp_path / name for name in ("h1", "h2", "h3")]
    for house in houses:
        house.mkdir()
    plain = build_wheel(houses[0], spec("alpha"))
    cyclic = build_wheel(houses[1], WheelSpec(name="alpha", build="1", requires=("beta",),
                                              files={"alpha/__init__.py": b""}))  # fmt: skip
    future = build_wheel(houses[2], WheelSpec(name="alpha", build="2", requires_python=">=4",
                                              files={"alpha/__init__.py": b""}))  # fmt: skip
    beta = build_wheel(houses[0], spec("beta", "alpha"))
    result = cli("check", "cycles", plain, cyclic, future, beta, "--root", "alpha")
    assert result.code == 1, result.err
    assert result.out.splitlines()[0] == "cycle 1: alpha 1.0 -> beta 1.0 -> alpha"
    version = ".".join(str(part) for part in sys.version_info[:3])
    assert result.err.splitlines() == [
        f"note: skipped {plain.name}: {cyclic.name} suits the target better",
        f"note: skipped {future.name}: Requires-Python '>=4' excludes Python {version} of the "
        "target",
    ]
