"""``wheelpatch check libraries`` in-process, through ``wheelpatch``'s own ``main``."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from wheelpatch.check.libraries import EXIT_MISSING_LIBRARIES
from wheelpatch.cli.wheelpatch_install import main as install_main

from ..conftest import CliResult, snapshot
from .conftest import Native


@pytest.fixture
def check(cli: Callable[..., CliResult]) -> Callable[..., CliResult]:
    """``wheelpatch check libraries ARGS``, through the command line's own ``main``."""

    def run(*argv: str | Path) -> CliResult:
        return cli("check", "libraries", *argv)

    return run


def test_removing_the_provider_is_reported(native: Native, check: Callable[..., CliResult]) -> None:
    before = snapshot(native.directory / "wheels")
    result = check(native.consumer, "--config", native.config)
    assert result.code == EXIT_MISSING_LIBRARIES == 6, result.err
    lines = [line for line in result.out.splitlines() if line.startswith("missing ")]
    assert len(lines) == 1, result.out  # one line per library, both files named in it
    line = lines[0]
    assert line.startswith("missing libfoo.so: needed by consumer 1.0+nolib.1: consumer/_ext.so")
    assert "consumer/_ext_rpath.so" in line
    assert "site-packages/provider/lib" in line
    assert "likely provided by the removed requirement 'provider'" in line
    assert snapshot(native.directory / "wheels") == before


def test_without_the_removal_nothing_is_missing(
    native: Native, check: Callable[..., CliResult], tmp_path: Path
) -> None:
    config = tmp_path / "pyproject.toml"
    config.write_text('[tool.wheelpatch]\nlocal-version = "x.1"\n', encoding="utf-8")
    # The provider's wheel is checked with it: it installs libfoo.so where the RUNPATH looks.
    result = check(native.consumer, native.provider, "--config", config)
    assert result.code == 0, result.out + result.err
    assert "consumer 1.0: 2 ELF file(s) checked, nothing missing" in result.out
    assert "provider 1.0: 1 ELF file(s) checked, nothing missing" in result.out


def test_another_distribution_given_provides_it(
    native: Native, check: Callable[..., CliResult]
) -> None:
    result = check(native.consumer, native.foo_runtime, "--config", native.config)
    assert result.code == 0, result.out + result.err


def test_a_system_directory_provides_it(native: Native, check: Callable[..., CliResult]) -> None:
    result = check(
        native.consumer, "--config", native.config, "--system-library-dir", native.system_dir
    )
    assert result.code == 0, result.out + result.err
    empty = native.directory / "empty-system"
    empty.mkdir(exist_ok=True)
    result = check(native.consumer, "--config", native.config, "--system-library-dir", empty)
    assert result.code == 6
    assert f"the system directories {empty}" in result.out


def test_json_report(native: Native, check: Callable[..., CliResult]) -> None:
    result = check(native.consumer, "--config", native.config, "--json")
    assert result.code == 6
    document = json.loads(result.out)
    (missing,) = document["missing"]
    assert missing["library"] == "libfoo.so"
    assert missing["needed_by"] == "consumer 1.0+nolib.1: consumer/_ext.so"
    assert missing["removed_requirement"]["requirements"] == ["provider"]
    assert missing["removed_requirement"]["known_from"] == "likely"
    assert [p["entry"] for p in missing["looked_in"]] == ["$ORIGIN/../provider/lib"]
    assert document["exit_code"] == 6
    (checked,) = document["checked"]
    assert sorted(checked["elf_files"]) == ["consumer/_ext.so", "consumer/_ext_rpath.so"]


def test_an_environment_is_checked_with_its_removals_from_provenance(
    native: Native, check: Callable[..., CliResult], tmp_path: Path
) -> None:
    from ..venvs import make_venv

    venv = make_venv(tmp_path / "venv")
    code = install_main(
        ["--config", str(native.config), "--python", str(venv.python), "--no-deps",
         "--allow-missing-libraries", str(native.consumer)]
    )  # fmt: skip
    assert code == 0
    result = check("--python", venv.python)
    assert result.code == 6, result.out + result.err
    assert "missing libfoo.so: needed by consumer 1.0+nolib.1: consumer/_ext.so" in result.out
    assert "removed requirement 'provider'" in result.out
    assert install_main(["--python", str(venv.python), "--no-deps", str(native.foo_runtime),
                         "--config", str(native.config)]) == 0  # fmt: skip
    result = check("--python", venv.python)
    assert result.code == 0, result.out + result.err


def test_mach_o_and_dll_members_are_named_as_not_checked(
    make_wheel: Callable[..., Path], check: Callable[..., CliResult], native: Native
) -> None:
    wheel = make_wheel(
        name="mixed",
        files={
            "mixed/_mac.so": b"\xcf\xfa\xed\xfe" + bytes(60),
            "mixed/win.dll": b"MZ" + bytes(62),
            "mixed/libc.so": b"GROUP ( libc.so.6 )\n",
        },
    )
    result = check(wheel, "--config", native.config)
    assert result.code == 0, result.err
    assert "mixed 1.0: 0 ELF file(s) checked, nothing missing" in result.out
    assert "1 Mach-O files (@rpath, @loader_path: macOS libraries are not checked)" in result.err
    assert "1 Windows DLLs (PE files: not checked) not checked: mixed/win.dll" in result.err
    assert "1 library-named files that are not ELF not checked: mixed/libc.so" in result.err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ((), "give at least one WHEEL, or --python PY"),
        (("missing.whl", "--config", "{config}"), "missing.whl: no such file"),
        (
            ("{consumer}", "--config", "{config}", "--system-library-dir", "/no/such/dir"),
            "--system-library-dir /no/such/dir: no such directory",
        ),
    ],
    ids=["nothing", "no-wheel-file", "no-system-dir"],
)
def test_input_errors_are_one_line(
    native: Native, check: Callable[..., CliResult], argv: tuple[str, ...], message: str
) -> None:
    filled = [a.format(config=native.config, consumer=native.consumer) for a in argv]
    result = check(*filled)
    assert result.code in (1, 2)
    assert result.out == ""
    (line,) = result.err.splitlines()
    assert line.startswith("error: ")
    assert message in line


def test_a_broken_elf_member_is_refused_in_one_line(
    make_wheel: Callable[..., Path], check: Callable[..., CliResult], native: Native
) -> None:
    wheel = make_wheel(
        name="broken", files={"broken/_ext.so": native.ext_runpath.read_bytes()[:300]}
    )
    result = check(wheel, "--config", native.config)
    assert result.code == 1
    (line,) = result.err.splitlines()
    assert line.startswith("error: broken-1.0-py3-none-any.whl: broken/_ext.so: not a readable ELF")


def test_help_lists_every_exit_code(check: Callable[..., CliResult]) -> None:
    result = check("--help")
    assert result.code == 0
    codes = [line.split()[0] for line in result.out.split("exit codes:")[1].splitlines()[1:]]
    assert codes == ["0", "1", "2", "3", "6", "130"]
    assert "3    the report could not be written, or a file could not be read" in result.out
