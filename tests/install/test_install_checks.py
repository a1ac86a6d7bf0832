"""``wheelpatch-install`` refusing what cannot be installed, in one line, before anything is
written: wheels the target interpreter cannot use (tags, Requires-Python), wheels installer would
fail on midway (entry_points.txt, the .data layout), override tables that match nothing, and
``--python`` values that are no Python; and naming the configuration file it found.

The CLI runs in-process, into ``--target`` directories, with wheel files and ``--no-deps`` (no pip
runs); the cases installer would loop forever on run as a real process with a timeout.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from wheelpatch.cli.wheelpatch_install import main
from wheelpatch.errors import InvalidWheel
from wheelpatch.install.environment import probe
from wheelpatch.install.transaction import install_wheel
from wheelpatch.wheel.entrypoints import entry_point_problem, installer_problem
from wheelpatch.wheel.source_wheel import read_wheel

from ..conftest import CliResult, WheelSpec, build_wheel
from ..hermetic import hermetic_env
from .test_install import CONFIG, TORCH_FILES, torch_spec

INSTALL_SCRIPT = Path(sys.executable).with_name("wheelpatch-install")


@pytest.fixture
def run_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    """``main(argv)`` in-process; returns the exit code and what it printed."""

    def run(*argv: str | Path) -> CliResult:
        capsys.readouterr()
        try:
            code = main([str(a) for a in argv])
        except SystemExit as exc:
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture
def install(tmp_path: Path, run_cli: Callable[..., CliResult]) -> Callable[..., CliResult]:
    """``wheelpatch-install --config CONFIG --no-deps --target tmp_path/env ARGS``."""
    config = tmp_path / "pyproject.toml"
    config.write_text(CONFIG, encoding="utf-8")

    def run(*argv: str | Path) -> CliResult:
        return run_cli("--config", config, "--no-deps", "--target", tmp_path / "env", *argv)

    return run


# --- item 16: tags and Requires-Python against the target interpreter ---------------------------


def test_wheel_with_tags_the_target_does_not_support_is_refused(
    tmp_path: Path, make_wheel: Callable[..., Path], install: Callable[..., CliResult]
) -> None:
    wheel = make_wheel(torch_spec(tag="cp313-cp313-linux_aarch64"))
    env = probe(None)
    assert env.tags is not None
    result = install(wheel)
    assert (result.code, result.out) == (1, "")
    assert result.err == (
        f"error: {wheel.name}: not a supported wheel for {env.interpreter} (Python "
        f"{env.full_version}): its tags (cp313-cp313-linux_aarch64) are none of the "
        f"{len(env.tags)} it supports, the first being {env.tags[0]}; --ignore-platform "
        "installs it anyway\n"
    )
    assert not (tmp_path / "env").exists()
    forced = install("--ignore-platform", wheel)
    assert forced.code == 0, forced.err
    assert (tmp_path / "env" / "torch-2.0.1+stripe.2.dist-info").is_dir()
    # A compressed tag set (py2.py3) and the interpreter's own most specific tag pass.
    for tag in ("py2.py3-none-any", env.tags[0]):
        accepted = install("--force-reinstall", make_wheel(torch_spec(tag=tag)))
        assert accepted.code == 0, accepted.err


def test_requires_python_that_excludes_the_target_is_refused(
    tmp_path: Path, make_wheel: Callable[..., Path], install: Callable[..., CliResult]
) -> None:
    wheel = make_wheel(torch_spec(requires_python="<3"))
    env = probe(None)
    result = install(wheel)
    assert (result.code, result.out) == (1, "")
    assert result.err == (
        f"error: {wheel.name}: Requires-Python '<3' excludes Python {env.full_version} of "
        f"{env.interpreter}; --ignore-requires-python installs it anyway\n"
    )
    assert not (tmp_path / "env").exists()
    forced = install("--ignore-requires-python", wheel)
    assert forced.code == 0, forced.err


def test_invalid_requires_python_is_a_warning_as_in_pip(
    tmp_path: Path, make_wheel: Callable[..., Path], install: Callable[..., CliResult]
) -> None:
    """pip and uv install a wheel whose Requires-Python is no valid specifier (pip warns):
    wheelpatch-install too, saying it could not check it."""
    wheel = make_wheel(torch_spec(requires_python=">=3.6.*"))
    result = install(wheel)
    assert result.code == 0, result.err
    assert result.err == (
        f"warning: {wheel.name}: Requires-Python '>=3.6.*' is not a valid version specifier, so "
        "it was not checked (pip too installs such a wheel)\n"
    )
    assert (tmp_path / "env" / "torch-2.0.1+stripe.2.dist-info" / "RECORD").is_file()


def test_json_report_when_an_install_fails(
    tmp_path: Path, make_wheel: Callable[..., Path], install: Callable[..., CliResult]
) -> None:
    """--json prints one document on a failure too: what stays installed, and why the rest
    is not."""
    good = make_wheel(WheelSpec(name="other", files={"other/__init__.py": b"X = 1\n"}))
    bad = make_wheel(torch_spec(requires_python="<3"))
    result = install("--json", good, bad)
    assert result.code == 1
    document = json.loads(result.out)
    assert document["dry_run"] is False
    assert document["wheels"] == []  # the refusal came before anything was installed
    assert document["exit_code"] == 1
    assert document["error"].startswith(f"{bad.name}: Requires-Python '<3' excludes Python")
    # Broken midway (a member whose bytes no longer match RECORD): the first wheel stays.
    corrupt = tmp_path / "corrupt" / bad.name
    corrupt.parent.mkdir()
    fine = make_wheel(torch_spec())
    with zipfile.ZipFile(fine) as source, zipfile.ZipFile(corrupt, "w") as target:
        for info in source.infolist():
            data = source.read(info)
            same_size = b"def run():\n    return 'CORE'\n"  # so only its hash tells
            target.writestr(info, same_size if info.filename == "torch/core.py" else data)
    midway = install("--json", good, corrupt)
    assert midway.code == 1, midway.err
    document = json.loads(midway.out)
    assert [(w["name"], w["status"]) for w in document["wheels"]] == [("other", "installed")]
    assert document["error"].startswith(f"{corrupt.name}: member 'torch/core.py'")
    assert (tmp_path / "env" / "other" / "__init__.py").is_file()
    assert not (tmp_path / "env" / "torch").exists()
    usage = install("--json", tmp_path / "nope-1.0-py3-none-any.whl")
    assert usage.code == 2
    assert json.loads(usage.out) == {
        "dry_run": False,
        "wheels": [],
        "error": f"{tmp_path / 'nope-1.0-py3-none-any.whl'}: no such wheel file",
        "exit_code": 2,
    }


def test_requires_python_is_checked_as_patched(
    tmp_path: Path, make_wheel: Callable[..., Path], run_cli: Callable[..., CliResult]
) -> None:
    """An override that relaxes Requires-Python is what the target is checked against; one that
    tightens it refuses a wheel that would otherwise install."""
    config = tmp_path / "relax.toml"
    wheel = make_wheel(torch_spec(requires_python="<3"))
    config.write_text(
        '[tool.wheelpatch]\nlocal-version = "stripe.2"\n\n'
        '[tool.wheelpatch.overrides.torch]\nrequires-python = ">=3"\n',
        encoding="utf-8",
    )
    argv = ("--config", config, "--no-deps", "--target", tmp_path / "env")
    result = run_cli(*argv, wheel)
    assert result.code == 0, result.err
    config.write_text(
        '[tool.wheelpatch]\nlocal-version = "stripe.2"\n\n'
        '[tool.wheelpatch.overrides.other]\nrequires-python = ">=99"\n',
        encoding="utf-8",
    )
    other = make_wheel(WheelSpec(name="other", files={"other/__init__.py": b""}))
    refused = run_cli(*argv, other)
    assert refused.code == 1
    assert refused.err.startswith(f"error: {other.name}: Requires-Python '>=99' excludes Python ")


# --- item 15: what installer would fail on, refused with the wheel and member named -------------

ENTRY_POINTS_MEMBER = "torch-2.0.1.dist-info/entry_points.txt"
#: Refused by every installer (and so by patch and verify too: tests/test_hostile.py).
NOT_AN_ENTRY_POINT = (
    "is not an entry point of the form 'module:attr' (no installer can make a script of it)"
)
#: (entry_points.txt text, the problem named), each a way installer's parse_entrypoints fails:
#: its asserts (AssertionError) and configparser's errors (the ones pip accepts and only
#: wheelpatch-install refuses: no section, a duplicate, an interpolation).
BAD_ENTRY_POINTS = [
    pytest.param(
        b"[console_scripts]\ntorchrun = torch.core\n",
        f"[console_scripts] torchrun = 'torch.core' {NOT_AN_ENTRY_POINT}",
        id="no-attr",
    ),
    pytest.param(
        b"[console_scripts]\ntorchrun = torch core:run\n",
        f"[console_scripts] torchrun = 'torch core:run' {NOT_AN_ENTRY_POINT}",
        id="space-in-module",
    ),
    pytest.param(
        b"[gui_scripts]\ntorchrun =\n",
        f"[gui_scripts] torchrun = '' {NOT_AN_ENTRY_POINT}",
        id="empty-value",
    ),
    pytest.param(
        b"[console_scripts]\ntorchrun\n",
        "line 2: 'torchrun' in [console_scripts] is not 'name = module:attr'",
        id="no-equals",
    ),
    pytest.param(
        b"torchrun = torch.core:run\n",
        "line 1: 'torchrun = torch.core:run' comes before any [section] header",
        id="no-section",
    ),
    pytest.param(
        b"[console_scripts\ntorchrun = torch.core:run\n",
        "line 1: '[console_scripts' comes before any [section] header",
        id="unclosed-section",
    ),
    pytest.param(
        b"[console_scripts]\nt = torch.core:run\nt = torch.core:run\n",
        "line 3: 't' appears twice in [console_scripts]",
        id="duplicate-option",
    ),
    pytest.param(
        b"[console_scripts]\na = torch.core:run\n[console_scripts]\nb = torch.core:run\n",
        "line 3: section [console_scripts] appears twice",
        id="duplicate-section",
    ),
    pytest.param(
        b"[console_scripts]\nt = torch.core:%(x)s\n",
        f"[console_scripts] t = 'torch.core:%(x)s' {NOT_AN_ENTRY_POINT}",
        id="interpolation",
    ),
    pytest.param(
        b"[console_scripts]\n../../evil = torch.core:run\n",
        "[console_scripts] '../../evil' is not a file name a script can have",
        id="path-as-name",
    ),
    pytest.param(
        b"[DEFAULT]\nt = anything\n[console_scripts]\na = torch.core:run\n",
        "[DEFAULT] t = 'anything': installer reads [DEFAULT] entries into [console_scripts] too, "
        "where this is not an entry point of the form 'module:attr'",
        id="default-section",
    ),
]
DATA_LAYOUT = (
    "a file in the .data directory must be inside one of its scheme directories (purelib, "
    "platlib, headers, scripts, data)"
)


def _no_entry_points(**changes: object) -> WheelSpec:
    spec = torch_spec(**changes)
    spec.extra_dist_info = {}
    return spec


#: (wheel spec, member, problem) of every installer failure case.
INSTALLER_CASES = [
    *[
        pytest.param(
            torch_spec(extra_dist_info={"entry_points.txt": text}),
            ENTRY_POINTS_MEMBER,
            problem,
            id=f"entry-points-{param.id}",
        )
        for param in BAD_ENTRY_POINTS
        for text, problem in [param.values]
    ],
    # installer loops forever (appending to a list) on a file named like the .data directory,
    # and raises TypeError from posixpath.join() on one named like a scheme directory.
    pytest.param(
        _no_entry_points(files={**TORCH_FILES, "torch-2.0.1.data": b"not a directory\n"}),
        "torch-2.0.1.data",
        DATA_LAYOUT,
        id="file-named-like-the-data-directory",
    ),
    pytest.param(
        _no_entry_points(data={"scripts": b"#!python\n"}),
        "torch-2.0.1.data/scripts",
        DATA_LAYOUT,
        id="file-named-like-a-scheme-directory",
    ),
]


@pytest.mark.parametrize(("text", "problem"), BAD_ENTRY_POINTS)
def test_installer_problem_names_the_entry(text: bytes, problem: str) -> None:
    assert installer_problem(text.decode()) == problem
    # What every installer refuses, patch and verify refuse too; the rest only installer does.
    everyone = ("module:attr", "a file name a script can have")
    shared = any(p in problem for p in everyone) and not problem.startswith("[DEFAULT]")
    assert entry_point_problem(text.decode()) == (problem if shared else None)


def test_entry_points_installer_accepts_are_accepted() -> None:
    text = "[console_scripts]\na = x.y:z.w [extra]\n[other]\nq = anything at all\n"
    assert installer_problem(text) is None
    assert entry_point_problem(text) is None


def _limited() -> None:
    """In the child: at most 2 GiB of memory (installer's endless loop grows a list)."""
    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))


@pytest.mark.parametrize(("spec", "member", "problem"), INSTALLER_CASES)
def test_wheel_installer_would_fail_on_is_refused_in_one_line(
    tmp_path: Path, spec: WheelSpec, member: str, problem: str
) -> None:
    """A real process (installer may loop forever today): one line naming the wheel and the
    member, exit 1, nothing written, even with --dry-run. The wheel is built by the factory, so
    if read_wheel's own checks refuse it first, that message has the same shape."""
    wheel = build_wheel(tmp_path, spec)
    config = tmp_path / "pyproject.toml"
    config.write_text(CONFIG, encoding="utf-8")
    target = tmp_path / "env"
    for extra in ((), ("--dry-run",)):
        argv = [INSTALL_SCRIPT, "--config", config, "--no-deps", "--target", target, *extra]
        done = subprocess.run(
            [*argv, wheel],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env=hermetic_env(),
            preexec_fn=_limited,
        )
        assert (done.returncode, done.stdout) == (1, ""), done.stderr
        assert len(done.stderr.splitlines()) == 1, done.stderr
        assert done.stderr.startswith(f"error: {wheel.name}: {member}: "), done.stderr
        assert not target.exists()
    assert done.stderr == f"error: {wheel.name}: {member}: {problem}\n"


@pytest.mark.parametrize(("spec", "member", "problem"), INSTALLER_CASES)
def test_install_wheel_turns_installer_failures_into_one_line(
    tmp_path: Path, spec: WheelSpec, member: str, problem: str, request: pytest.FixtureRequest
) -> None:
    """The library call (no planning-time check before it): whatever installer raises on bad
    input becomes InvalidWheel naming the wheel and member, and the target is left as it was.
    (A script name that is a path reaches the destination, whose containment check refuses it.)"""
    wheel_path = build_wheel(tmp_path, spec)
    try:
        wheel = read_wheel(wheel_path)
    except InvalidWheel as exc:  # read_wheel's own checks refused it: the same shape
        refused: str | None = str(exc)
    else:
        refused = None
    if refused is not None:
        assert refused.startswith(f"{wheel_path.name}: {member}: ")
        return
    target = tmp_path / "env"
    env = probe(None, target=target)
    with pytest.raises(InvalidWheel) as caught:
        install_wheel(wheel, None, env, requested=True, compile_bytecode=False)
    if request.node.callspec.id == "entry-points-path-as-name":
        expected = f"{wheel_path.name}: '../../evil' would be written outside the scripts directory"
    else:
        expected = f"{wheel_path.name}: {member}: {problem}"
    assert str(caught.value) == expected
    assert [p for p in target.rglob("*") if not p.is_dir()] == []


#: Run with python -O (asserts stripped: installer then fails with AttributeError instead).
_INSTALL_WHEEL = """
import sys
from pathlib import Path
from wheelpatch.install.environment import probe
from wheelpatch.errors import InvalidWheel
from wheelpatch.install.transaction import install_wheel
from wheelpatch.wheel.source_wheel import read_wheel
env = probe(None, target=Path(sys.argv[2]))
try:
    install_wheel(read_wheel(Path(sys.argv[1])), None, env, requested=True)
except InvalidWheel as exc:
    print(exc)
"""


@pytest.mark.parametrize(
    "options", [pytest.param((), id="plain"), pytest.param(("-O",), id="optimized")]
)
def test_bad_entry_point_under_python_optimize(tmp_path: Path, options: tuple[str, ...]) -> None:
    text = b"[console_scripts]\ntorchrun = torch.core\n"
    wheel = build_wheel(tmp_path, torch_spec(extra_dist_info={"entry_points.txt": text}))
    done = subprocess.run(
        [sys.executable, *options, "-c", _INSTALL_WHEEL, wheel, tmp_path / "env"],
        capture_output=True, text=True, env=hermetic_env(), timeout=60, check=False,
    )  # fmt: skip
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == (
        f"{wheel.name}: {ENTRY_POINTS_MEMBER}: [console_scripts] torchrun = 'torch.core' "
        f"{NOT_AN_ENTRY_POINT}\n"
    )


def test_member_in_pycache_is_one_warning_line(
    tmp_path: Path, make_wheel: Callable[..., Path], install: Callable[..., CliResult]
) -> None:
    """installer skips a ``__pycache__`` member with a Python warning (two lines on stderr, an
    error under -W error): it is one ``warning:`` line naming the wheel and member instead."""
    member = f"torch/__pycache__/core.{sys.implementation.cache_tag}.pyc"
    wheel = make_wheel(torch_spec(files={**TORCH_FILES, member: b"not bytecode"}))
    result = install(wheel)
    assert result.code == 0, result.err
    assert result.err == (
        f"warning: {wheel.name}: {member}: not installed (a wheel must not contain __pycache__ "
        "directories: bytecode is compiled when installing)\n"
    )
    installed = tmp_path / "env" / member
    assert installed.read_bytes() != b"not bytecode"  # compiled from torch/core.py instead


# --- item 10: override tables that match no distribution being installed -------------------------

MISSPELT = """\
[tool.wheelpatch]
local-version = "stripe.2"

[tool.wheelpatch.overrides.pytorch]
remove = ["triton"]
"""
MISSPELT_MESSAGE = (
    "tool.wheelpatch.overrides.pytorch: matches no distribution being installed "
    "(did you mean 'torch'?)"
)


def test_misspelt_override_warns(
    tmp_path: Path, make_wheel: Callable[..., Path], run_cli: Callable[..., CliResult]
) -> None:
    config = tmp_path / "misspelt.toml"
    config.write_text(MISSPELT, encoding="utf-8")
    wheel = make_wheel(torch_spec())
    result = run_cli("--config", config, "--no-deps", "--target", tmp_path / "env", wheel)
    assert result.code == 0, result.err
    assert result.err == f"warning: {MISSPELT_MESSAGE}\n"
    assert "installed torch 2.0.1\n" in result.out  # unpatched: the override matched nothing
    # Spelt right, an override of a distribution installed already is no warning, even with
    # --strict, when another project is installed.
    config.write_text(CONFIG, encoding="utf-8")
    other = make_wheel(WheelSpec(name="other", files={"other/__init__.py": b""}))
    again = run_cli(
        "--config", config, "--no-deps", "--strict", "--target", tmp_path / "env", other
    )
    assert (again.code, again.err) == (0, "")


def test_misspelt_override_with_strict_refuses_before_anything_is_installed(
    tmp_path: Path, make_wheel: Callable[..., Path], run_cli: Callable[..., CliResult]
) -> None:
    config = tmp_path / "misspelt.toml"
    config.write_text(MISSPELT, encoding="utf-8")
    wheel = make_wheel(torch_spec())
    target = tmp_path / "env"
    result = run_cli("--config", config, "--no-deps", "--strict", "--target", target, wheel)
    assert (result.code, result.out) == (1, "")
    assert result.err == f"error: {MISSPELT_MESSAGE}\n"
    assert not target.exists()


# --- item 12: the configuration file found by searching upward is named ------------------------


def test_configuration_found_upward_is_named_on_stderr(
    tmp_path: Path,
    make_wheel: Callable[..., Path],
    run_cli: Callable[..., CliResult],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (tmp_path / "pyproject.toml").write_text(CONFIG, encoding="utf-8")
    below = tmp_path / "a" / "b"
    below.mkdir(parents=True)
    monkeypatch.chdir(below)
    wheel = make_wheel(torch_spec())
    result = run_cli("--no-deps", "--target", tmp_path / "env", "--dry-run", wheel)
    assert result.code == 0, result.err
    path = (tmp_path / "pyproject.toml").resolve()
    assert result.err == f"wheelpatch-install: using configuration {path}\n"
    assert path.is_absolute()
    named = run_cli(
        "--config", tmp_path / "pyproject.toml", "--no-deps", "--target", tmp_path / "env",
        "--dry-run", wheel,
    )  # fmt: skip
    assert (named.code, named.err) == (0, "")


# --- item 14: a --python that is no Python is a usage error (exit 2) ---------------------------


def _fake_python(directory: Path, body: str) -> Path:
    path = directory / "fake-python"
    path.write_text(f"#!/bin/sh\n{body}\n", encoding="utf-8")
    path.chmod(0o755)
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        pytest.param(
            lambda d: Path("/no/such/python"),
            "error: --python /no/such/python: cannot run it ([Errno 2] No such file or "
            "directory: '/no/such/python')\n",
            id="missing",
        ),
        pytest.param(
            lambda d: _fake_python(d, "echo 'boom' >&2; exit 3"),
            "error: --python {python}: it is not a working Python (boom)\n",
            id="fails",
        ),
        pytest.param(
            lambda d: _fake_python(d, "echo 'hello there'"),
            "error: --python {python}: it is not a working Python (it answered 'hello there' to "
            "a Python program)\n",
            id="not-json",
        ),
        pytest.param(
            lambda d: d,
            "error: --python {python}: cannot run it ([Errno 13] Permission denied: '{python}')\n",
            id="directory",
        ),
    ],
)
def test_python_that_is_no_python_exits_2(
    tmp_path: Path,
    make_wheel: Callable[..., Path],
    run_cli: Callable[..., CliResult],
    make: Callable[[Path], Path],
    message: str,
) -> None:
    python = make(tmp_path)
    config = tmp_path / "pyproject.toml"
    config.write_text(CONFIG, encoding="utf-8")
    result = run_cli("--config", config, "--python", python, "--no-deps", make_wheel(torch_spec()))
    assert (result.code, result.out) == (2, "")
    assert result.err == message.format(python=python)
    assert os.path.exists(config)
