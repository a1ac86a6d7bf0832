"""The ``wheelpatch`` command, run in-process: output, exit codes, and what it writes."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from ..conftest import CliResult, WheelSpec, build_wheel, settled_listing, snapshot

Cli = Callable[..., CliResult]
USING = "wheelpatch: using configuration"
NO_DEMO = "tool.wheelpatch.overrides.demo: matches no wheel given"

CONFIG = """
[tool.wheelpatch]
local-version = "stripe.2"
output-dir = "wheelhouse"

[tool.wheelpatch.overrides.torch]
remove = ["triton"]

[tool.wheelpatch.overrides.demo]
add = ["extra-dep>=1"]
"""


@pytest.fixture
def project(tmp_path: Path, config_file: Callable[[str], Path]) -> Path:
    config_file(CONFIG)
    return tmp_path


def wheelhouse(directory: Path) -> list[Path]:
    source = directory / "in"
    source.mkdir()
    return [
        build_wheel(
            source, WheelSpec(name="torch", version="2.0.1", requires=("triton==2.0.0", "filelock"))
        ),
        build_wheel(source, WheelSpec(name="demo", version="3.1")),
        build_wheel(source, WheelSpec(name="other", version="0.1")),
    ]


def test_patch_a_wheelhouse(cli: Cli, project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project)
    wheels = wheelhouse(project)
    result = cli("patch", *wheels)
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    out = project / "wheelhouse"
    assert lines == [
        f"torch-2.0.1-py3-none-any.whl -> {out}/torch-2.0.1+stripe.2-py3-none-any.whl "
        "(2.0.1 -> 2.0.1+stripe.2)",
        "    removed Requires-Dist: triton==2.0.0",
        f"demo-3.1-py3-none-any.whl -> {out}/demo-3.1+stripe.2-py3-none-any.whl "
        "(3.1 -> 3.1+stripe.2)",
        "    added Requires-Dist: extra-dep>=1",
        "other-0.1-py3-none-any.whl: unchanged (no override for 'other')",
    ]
    assert sorted(p.name for p in out.iterdir()) == [
        "demo-3.1+stripe.2-py3-none-any.whl",
        "torch-2.0.1+stripe.2-py3-none-any.whl",
    ]
    # Found by searching upward, so the file used is named.
    assert result.err == f"{USING} {(project / 'pyproject.toml').resolve()}\n"


def test_config_found_from_a_subdirectory(
    cli: Cli, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wheels = wheelhouse(project)
    sub = project / "deep" / "er"
    sub.mkdir(parents=True)
    monkeypatch.chdir(sub)
    result = cli("patch", "-o", "here", wheels[0])
    assert result.code == 0, result.err
    assert (sub / "here" / "torch-2.0.1+stripe.2-py3-none-any.whl").is_file()


def test_dry_run_prints_diff_and_writes_nothing(
    cli: Cli, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project)
    wheels = wheelhouse(project)
    before = snapshot(project)
    result = cli("patch", "--dry-run", wheels[0])
    assert result.code == 0, result.err
    assert snapshot(project) == before
    assert "would be written as" in result.out
    assert "-Version: 2.0.1\n+Version: 2.0.1+stripe.2\n" in result.out
    assert "-Requires-Dist: triton==2.0.0\n" in result.out
    assert "+++ b/torch-2.0.1+stripe.2.dist-info/METADATA" in result.out


def test_json_report(cli: Cli, project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project)
    wheels = wheelhouse(project)
    result = cli("patch", "--json", "-o", project / "o", *wheels)
    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert [r["status"] for r in report] == ["patched", "patched", "unchanged"]
    assert report[0]["new_version"] == "2.0.1+stripe.2"
    assert report[0]["changes"][1] == {
        "field": "Requires-Dist",
        "action": "remove",
        "before": "triton==2.0.0",
        "after": None,
        "rule": "tool.wheelpatch.overrides.torch.remove[0]",
    }
    assert Path(report[1]["output"]).is_file()


def test_one_bad_wheel_writes_nothing(
    cli: Cli, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project)
    wheels = wheelhouse(project)
    broken = project / "in" / "broken-1.0-py3-none-any.whl"
    broken.write_bytes(b"not a zip at all, just some text" * 4)
    before = snapshot(project)
    result = cli("patch", *wheels, broken)
    assert result.code == 1
    assert result.err.splitlines()[1:] == [
        "error: broken-1.0-py3-none-any.whl: not a zip archive "
        "(no end of central directory record at its end)"
    ]
    assert snapshot(project) == before
    # The JSON report says the same: nothing was written, and why.
    report = json.loads(cli("patch", "--json", *wheels, broken).out)
    assert [(r["status"], r.get("output")) for r in report] == [
        ("not-written", None),
        ("not-written", None),
        ("unchanged", None),
        ("error", None),
    ]
    assert report[0]["reason"] == (
        "not written: another wheel failed, and a batch is written whole or not at all"
    )
    assert report[3]["error"].startswith("broken-1.0-py3-none-any.whl: not a zip archive")
    assert snapshot(project) == before


def test_existing_output_needs_force(
    cli: Cli, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project)
    wheels = wheelhouse(project)
    assert cli("patch", wheels[0]).code == 0
    again = cli("patch", wheels[0])
    assert again.code == 3
    target = project / "wheelhouse" / "torch-2.0.1+stripe.2-py3-none-any.whl"
    exists = f"{target}: already exists (pass --force to replace it)"
    assert again.err.splitlines()[1:] == [f"warning: {NO_DEMO}", f"error: {exists}"]
    # --json prints a report on this exit path too.
    reported = cli("patch", "--json", *wheels[:2])
    assert reported.code == 3
    assert json.loads(reported.out) == [
        {"source": str(wheels[0]), "status": "error", "error": exists},
        {
            **json.loads(cli("patch", "--json", "--dry-run", wheels[1]).out)[0],
            "status": "not-written",
            "output": None,
            "reason": "not written: another wheel failed, and a batch is written whole or not "
            "at all",
        },
    ]
    assert not (target.parent / "demo-3.1+stripe.2-py3-none-any.whl").exists()
    assert cli("patch", "--force", wheels[0]).code == 0
    assert settled_listing(target.parent) == [target.name]


def test_strict_turns_warnings_into_errors(
    cli: Cli, tmp_path: Path, config_file: Callable[[str], Path]
) -> None:
    config = config_file('[tool.wheelpatch.overrides.demo]\nremove = ["trition"]\nadd = ["x"]\n')
    wheel = build_wheel(tmp_path, WheelSpec())
    lenient = cli("patch", "--config", config, "-o", tmp_path / "a", wheel)
    assert lenient.code == 0
    assert lenient.err == (
        "warning: demo-1.0-py3-none-any.whl: tool.wheelpatch.overrides.demo.remove[0] matches "
        "no Requires-Dist of demo 1.0\n"
    )
    strict = cli("patch", "--config", config, "-o", tmp_path / "b", "--strict", wheel)
    assert strict.code == 1
    assert strict.err.startswith("error: demo-1.0-py3-none-any.whl: tool.wheelpatch.overrides")
    assert not (tmp_path / "b").exists()


def test_bad_config_reports_every_problem(
    cli: Cli, tmp_path: Path, config_file: Callable[[str], Path]
) -> None:
    config = config_file(
        '[tool.wheelpatch]\nlocal-version = "Stripe_2"\nbogus = 1\n'
        '[tool.wheelpatch.overrides.demo]\nremove = "triton"\nadd = ["not a requirement!!"]\n'
    )
    wheel = build_wheel(tmp_path, WheelSpec())
    result = cli("patch", "--config", config, wheel)
    assert result.code == 2
    errors = result.err.splitlines()
    assert len(errors) == 4, result.err
    assert all(line.startswith(f"error: {config.resolve()}: tool.wheelpatch.") for line in errors)
    assert "Traceback" not in result.err


def test_show_wheel_and_provenance(cli: Cli, project: Path) -> None:
    wheels = wheelhouse(project)
    assert (
        cli("patch", "--config", project / "pyproject.toml", "-o", project / "o", wheels[0]).code
        == 0
    )
    patched = project / "o" / "torch-2.0.1+stripe.2-py3-none-any.whl"
    result = cli("show", patched)
    assert result.code == 0, result.err
    assert result.out.splitlines()[:4] == [
        "Name: torch",
        "Version: 2.0.1+stripe.2",
        "Requires-Dist:",
        "  filelock",
    ]
    assert "Provenance: patched by wheelpatch" in result.out
    lines = result.out.splitlines()
    start = lines.index("Pedigree (oldest first):")
    assert lines[start - 2 : start] == [
        "  set Version: 2.0.1 -> 2.0.1+stripe.2  (tool.wheelpatch.local-version)",
        "  removed Requires-Dist: triton==2.0.0  (tool.wheelpatch.overrides.torch.remove[0])",
    ]
    digest = hashlib.sha256(wheels[0].read_bytes()).hexdigest()
    assert lines[start + 1] == f"  upstream: {wheels[0].name} (sha256 {digest})"
    assert lines[start + 2].startswith(f"  1. {wheels[0].name} (sha256 {digest}) patched into ")
    assert lines[start + 3 : start + 5] == [
        "     set Version: 2.0.1 -> 2.0.1+stripe.2  (tool.wheelpatch.local-version)",
        "     removed Requires-Dist: triton==2.0.0  (tool.wheelpatch.overrides.torch.remove[0])",
    ]
    assert lines[-1] == "SBOMs: sboms/wheelpatch.cdx.json"
    assert "None" not in result.out
    original = cli("show", "--json", wheels[0])
    data = json.loads(original.out)
    assert data["provenance"] is None
    assert data["requires_dist"] == ["triton==2.0.0", "filelock"]


@pytest.mark.parametrize(
    ("earlier", "problem"),
    [
        pytest.param(
            b"[" * 100_000, "is not valid JSON (nested too deeply)", id="deeper-than-json"
        ),
        pytest.param(
            b'{"schema": 1, "x": ' + b"[" * 500 + b"]" * 500 + b"}",
            "is nested too deeply (more than 64 levels)",
            id="deeper-than-show-prints",
        ),
        pytest.param(
            b'{"schema": 1, "created": NaN}',
            "is not valid JSON (NaN is not JSON (RFC 8259))",
            id="nan",
        ),
    ],
)
@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_show_of_a_bad_provenance_is_one_line(
    cli: Cli, tmp_path: Path, earlier: bytes, problem: str, as_json: bool
) -> None:
    wheel = build_wheel(tmp_path, WheelSpec(extra_dist_info={"wheelpatch.json": earlier}))
    result = cli("show", *(["--json"] if as_json else []), wheel)
    assert result.code == 1
    assert result.err == f"error: {wheel.name}: wheelpatch.json {problem}\n"
    if as_json:
        assert json.loads(result.out)["error"] == f"{wheel.name}: wheelpatch.json {problem}"


def test_show_escapes_control_characters_of_the_provenance(cli: Cli, tmp_path: Path) -> None:
    """A provenance from anywhere may hold terminal escapes: show prints them escaped."""
    provenance = {
        "schema": 1,
        "source": {"filename": "demo-0.whl\x1b[2J", "sha256": "ab" * 32},
        "filename": "demo\u202e.whl",
        "config": {"override": "tool.wheelpatch.overrides.demo\n2. forged"},
        "changes": [{"action": "set", "field": "Version", "before": "0", "after": "1\x07"}],
    }
    wheel = build_wheel(
        tmp_path, WheelSpec(extra_dist_info={"wheelpatch.json": json.dumps(provenance).encode()})
    )
    result = cli("show", wheel)
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert "\x1b" not in result.out
    assert "\u202e" not in result.out
    assert "\x07" not in result.out
    # The lines before the pedigree (the provenance and its changes) are escaped too.
    assert (
        f"Provenance: patched by wheelpatch None from demo-0.whl\\x1b[2J (sha256 {'ab' * 32})"
        in lines
    )
    start = lines.index("Pedigree (oldest first):")
    assert lines[start + 1 :] == [
        f"  upstream: demo-0.whl\\x1b[2J (sha256 {'ab' * 32})",
        f"  1. demo-0.whl\\x1b[2J (sha256 {'ab' * 32}) patched into demo\\u202e.whl with "
        "tool.wheelpatch.overrides.demo\\x0a2. forged, by wheelpatch None",
        "     set Version: 0 -> 1\\x07",
    ]


def test_show_installed_distribution(cli: Cli) -> None:
    result = cli("show", "--json", "packaging")
    assert result.code == 0, result.err
    assert json.loads(result.out)["name"] == "packaging"
    missing = cli("show", "no-such-dist-xyz")
    assert missing.code == 1
    assert missing.err.startswith("error: no-such-dist-xyz: no such wheel file")


def test_verify_names_the_bad_member(cli: Cli, tmp_path: Path) -> None:
    good = build_wheel(tmp_path, WheelSpec())
    assert cli("verify", good).out == "demo-1.0-py3-none-any.whl: OK (5 files checked)\n"
    # Same archive, one member's content changed with its RECORD row left alone.
    bad = tmp_path / "bad" / good.name
    bad.parent.mkdir()
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(bad, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "demo/core.py":
                data = b"x = 3\n"
            dst.writestr(info, data)
    result = cli("verify", "--json", bad)
    assert result.code == 1
    report = json.loads(result.out)
    assert report == [
        {
            "wheel": "demo-1.0-py3-none-any.whl",
            "ok": False,
            "files": 5,
            "problems": [
                "demo-1.0-py3-none-any.whl: member 'demo/core.py' does not match its RECORD hash"
            ],
        }
    ]


def test_verify_reports_crc_errors(cli: Cli, tmp_path: Path) -> None:
    good = build_wheel(tmp_path, WheelSpec(compression=zipfile.ZIP_STORED))
    data = bytearray(good.read_bytes())
    offset = data.index(b"VALUE = 1")
    data[offset] = ord("W")
    good.write_bytes(bytes(data))
    result = cli("verify", good)
    assert result.code == 1
    assert result.err == (
        "error: demo-1.0-py3-none-any.whl: member 'demo/__init__.py': CRC-32 "
        f"{zipfile.crc32(b'WALUE = 1' + chr(10).encode()):08x} does not match the declared "
        f"{zipfile.crc32(b'VALUE = 1' + chr(10).encode()):08x}\n"
    )


@pytest.mark.parametrize("command", ["patch", "show", "verify"])
def test_help_explains(cli: Cli, command: str) -> None:
    result = cli(command, "--help")
    assert result.code == 0
    assert "exit codes:" in result.out
    assert "--json" in result.out


def test_usage_error_is_one_line_exit_2(cli: Cli) -> None:
    result = cli("patch")
    assert result.code == 2
    assert result.err.strip().splitlines()[-1].startswith("wheelpatch patch: error:")


def test_console_script_and_module_entry(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "wheelpatch", "--version"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0
    assert result.stdout.startswith("wheelpatch ")


def test_two_wheels_with_the_same_output_name_write_nothing(
    cli: Cli, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project)
    wheels = wheelhouse(project)
    copy = project / "copy"
    copy.mkdir()
    twin = copy / wheels[0].name
    twin.write_bytes(wheels[0].read_bytes())
    result = cli("patch", wheels[0], twin)
    assert result.code == 1
    assert result.err.splitlines()[1:] == [
        f"warning: {NO_DEMO}",
        "error: torch-2.0.1-py3-none-any.whl: would be written as "
        "torch-2.0.1+stripe.2-py3-none-any.whl, like torch-2.0.1-py3-none-any.whl; "
        "patch them in separate runs",
    ]
    assert not (project / "wheelhouse").exists()


def test_patch_verify_checks_member_data(cli: Cli, tmp_path: Path) -> None:
    config = tmp_path / "pyproject.toml"
    config.write_text('[tool.wheelpatch]\nlocal-version = "v1"\n[tool.wheelpatch.overrides.demo]\n')
    wheel = build_wheel(tmp_path, WheelSpec(compression=zipfile.ZIP_STORED))
    data = bytearray(wheel.read_bytes())
    data[data.index(b"VALUE = 1")] = ord("W")
    wheel.write_bytes(bytes(data))
    # Without --verify the member is copied as it is (its CRC is not read)...
    plain = cli("patch", "--config", config, "-o", tmp_path / "plain", wheel)
    assert plain.code == 0, plain.err
    # ...with it, the broken member is named and nothing is written.
    checked = cli("patch", "--verify", "--config", config, "-o", tmp_path / "checked", wheel)
    assert checked.code == 1
    assert checked.err.startswith(
        "error: demo-1.0-py3-none-any.whl: member 'demo/__init__.py': CRC-32 "
    )
    assert not (tmp_path / "checked").exists()


# --- issue 10: output that tells the truth --------------------------------------------------------


def test_json_report_on_a_configuration_error(
    cli: Cli, tmp_path: Path, config_file: Callable[[str], Path]
) -> None:
    config = config_file('[tool.wheelpatch]\nlocal-version = "Stripe_2"\n')
    wheel = build_wheel(tmp_path, WheelSpec())
    result = cli("patch", "--json", "--config", config, wheel)
    assert result.code == 2
    message = (
        f"{config.resolve()}: tool.wheelpatch.local-version: 'Stripe_2' is not a valid local "
        "version label (write it normalized: 'stripe.2')"
    )
    assert result.err == f"error: {message}\n"
    assert json.loads(result.out) == [
        {"source": str(wheel), "status": "not-written", "reason": f"not written: {message}"}
    ]


def test_json_report_with_strict_and_an_unmatched_table(
    cli: Cli, tmp_path: Path, config_file: Callable[[str], Path]
) -> None:
    config = config_file('[tool.wheelpatch]\n[tool.wheelpatch.overrides.pytorch]\nremove = ["x"]\n')
    wheel = build_wheel(tmp_path, WheelSpec(name="torch", requires=("x",)))
    result = cli("patch", "--json", "--strict", "--config", config, "-o", tmp_path / "o", wheel)
    assert result.code == 1
    message = (
        "tool.wheelpatch.overrides.pytorch: matches no wheel given (did you mean 'torch'?) "
        "(--strict)"
    )
    assert result.err == f"error: {message}\n"
    assert json.loads(result.out) == [
        {"source": str(wheel), "status": "unchanged", "reason": "no override for 'torch'"}
    ]
    assert not (tmp_path / "o").exists()


def test_misspelt_override_table_is_named(
    cli: Cli, tmp_path: Path, config_file: Callable[[str], Path]
) -> None:
    config = config_file(
        '[tool.wheelpatch]\nlocal-version = "stripe.2"\n'
        '[tool.wheelpatch.overrides.pytorch]\nremove = ["triton"]\n'
    )
    wheel = build_wheel(tmp_path, WheelSpec(name="torch", requires=("triton",)))
    result = cli("patch", "--config", config, "-o", tmp_path / "o", wheel)
    assert result.code == 0
    assert result.out == "torch-1.0-py3-none-any.whl: unchanged (no override for 'torch')\n"
    assert result.err == (
        "warning: tool.wheelpatch.overrides.pytorch: matches no wheel given "
        "(did you mean 'torch'?)\n"
    )


FILE_PROBLEMS = [
    pytest.param("nope.whl", "nope.whl: no such file", id="missing"),
    pytest.param("in/nope.whl", "in/nope.whl: no such file", id="missing-relative"),
    pytest.param("in/*.whl", "in/*.whl: no such file (a pattern that matched no file?)", id="glob"),
    pytest.param("in", "in: is a directory (give the wheels in it: in/*.whl)", id="directory"),
    pytest.param(
        "in/notes.txt",
        "in/notes.txt: not a valid wheel filename (Invalid wheel filename (extension must be "
        "'.whl'): 'notes.txt')",
        id="not-a-wheel-name",
    ),
]


@pytest.mark.parametrize(
    ("command", "typed", "message"),
    [
        pytest.param(command, *case.values, id=f"{command}-{case.id}")
        for command in ("patch", "verify", "show")
        for case in FILE_PROBLEMS
        # show takes an argument that is no wheel name as an installed distribution's name
        if command != "show" or str(case.values[0]).endswith(".whl")
    ],
)
def test_file_problems_name_the_path_as_typed(
    cli: Cli,
    project: Path,
    monkeypatch: pytest.MonkeyPatch,
    command: str,
    typed: str,
    message: str,
) -> None:
    monkeypatch.chdir(project)
    (project / "in").mkdir()
    (project / "in" / "notes.txt").write_text("hello\n")
    args = ["--config", "pyproject.toml"] if command == "patch" else []
    before = snapshot(project)
    result = cli(command, *args, typed)
    assert result.code == 1
    assert result.err.splitlines()[-1] == f"error: {message}"
    assert "Traceback" not in result.err
    assert snapshot(project) == before


@pytest.mark.parametrize("command", ["show", "verify"])
def test_help_lists_only_what_applies(cli: Cli, command: str) -> None:
    result = cli(command, "--help")
    assert result.code == 0
    assert "--strict" not in result.out
    assert "\n  3 " not in result.out
    assert "\n  1 " in result.out


def test_explicit_config_is_not_announced(cli: Cli, project: Path) -> None:
    wheels = wheelhouse(project)
    result = cli("patch", "--config", project / "pyproject.toml", "-o", project / "o", wheels[2])
    assert result.code == 0
    assert USING not in result.err


def test_closed_stdout_and_stderr_change_neither_the_work_nor_the_exit_status(
    project: Path,
) -> None:
    """``wheelpatch patch ... 2>&1 | head -1``: the configuration line on stderr comes first, yet
    every output is written and the status is the real one (``verify`` of a broken wheel: 1)."""
    wheels = wheelhouse(project)

    def run(*argv: str | Path) -> int:
        reader, writer = os.pipe()
        os.close(reader)  # gone before anything is written: every write gets EPIPE
        try:
            return subprocess.run(
                [sys.executable, "-m", "wheelpatch", *map(str, argv)], stdout=writer,
                stderr=writer, cwd=project, timeout=120, check=False,
            ).returncode  # fmt: skip
        finally:
            os.close(writer)

    assert run("patch", *wheels) == 0
    assert sorted(p.name for p in (project / "wheelhouse").iterdir()) == [
        "demo-3.1+stripe.2-py3-none-any.whl",
        "torch-2.0.1+stripe.2-py3-none-any.whl",
    ]
    assert run("patch", "--json", *wheels) == 3  # the outputs exist now
    broken = project / "in" / "broken-1.0-py3-none-any.whl"
    broken.write_bytes(b"no zip")
    assert run("verify", wheels[0], broken) == 1


def test_a_table_for_a_requirement_of_the_wheels_given_is_no_misspelling(
    cli: Cli, tmp_path: Path, config_file: Callable[[str], Path]
) -> None:
    """The torch wheelhouse's configuration has a triton table; patching torch alone (which
    requires triton) warns of nothing, and --strict passes."""
    config = config_file(
        '[tool.wheelpatch]\nlocal-version = "stripe.2"\n'
        '[tool.wheelpatch.overrides.torch]\nremove = ["triton"]\n'
        '[tool.wheelpatch.overrides.triton]\nremove = ["torch"]\n'
    )
    wheel = build_wheel(tmp_path, WheelSpec(name="torch", requires=("triton",)))
    result = cli("patch", "--strict", "--config", config, "-o", tmp_path / "o", wheel)
    assert (result.code, result.err) == (0, "")
