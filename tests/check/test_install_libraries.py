"""``wheelpatch-install`` runs the library check after resolution and before anything is written:
removing the provider of a library the consumer's extension needs is refused (exit 6) with the
environment untouched, unless the library comes from elsewhere or --allow-missing-libraries."""

from __future__ import annotations

import functools
import http.server
import os
import shlex
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from wheelpatch.cli.wheelpatch_install import main

from ..conftest import CliResult
from ..hermetic import hermetic_env
from ..install.test_install_e2e import INSTALL, changed, tree
from ..venvs import make_venv
from .conftest import Native


@pytest.fixture
def install(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., CliResult]:
    # A refusal asks pip for the removed requirements' wheels: never with this machine's pip
    # configuration, and from no index unless the test names one.
    for key, value in hermetic_env(PIP_NO_INDEX="1").items():
        monkeypatch.setenv(key, value)

    def run(*argv: str | Path) -> CliResult:
        capsys.readouterr()
        code = main([str(a) for a in argv])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


def _refusal_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("error: ")]


def test_removing_the_provider_is_refused_and_nothing_is_written(
    native: Native,
    install: Callable[..., CliResult],
    tmp_path: Path,
    make_wheel: Callable[..., Path],
) -> None:
    target = tmp_path / "target"
    assert install("--config", native.config, "--target", target, "--no-deps",
                   make_wheel()).code == 0  # fmt: skip
    before = tree(target)
    assert before
    result = install("--config", native.config, "--target", target, "--no-deps", native.consumer)
    assert result.code == 6, result.err
    assert result.out == ""
    first, last = _refusal_lines(result.err)
    assert first.startswith("error: libfoo.so: needed by consumer 1.0+nolib.1: consumer/_ext.so")
    assert "consumer/_ext_rpath.so" in first
    assert "looked for in site-packages/provider/lib" in first
    # No index: pip cannot fetch provider's wheel, so its RUNPATH entry names it.
    assert "likely provided by the removed requirement 'provider'" in first
    assert last == "error: --allow-missing-libraries installs anyway"
    assert changed(before, tree(target)) == []


def test_the_provider_is_known_from_its_wheel_when_pip_finds_it(
    native: Native, install: Callable[..., CliResult], tmp_path: Path
) -> None:
    target = tmp_path / "target"
    result = install("--config", native.config, "--target", target, "--no-deps",
                     "--find-links", native.directory / "wheels", native.consumer)  # fmt: skip
    assert result.code == 6, result.err
    first, _ = _refusal_lines(result.err)
    assert first.endswith(
        "the removed requirement 'provider' provides it (its wheel's RECORD lists "
        "site-packages/provider/lib/libfoo.so)"
    )
    assert not target.exists() or list(target.iterdir()) == []


def test_dry_run_is_refused_too(
    native: Native, install: Callable[..., CliResult], tmp_path: Path
) -> None:
    target = tmp_path / "target"
    result = install("--config", native.config, "--target", target, "--no-deps", "--dry-run",
                     native.consumer)  # fmt: skip
    assert result.code == 6
    assert not target.exists() or list(target.iterdir()) == []


def test_allow_missing_libraries_warns_and_installs(
    native: Native, install: Callable[..., CliResult], tmp_path: Path
) -> None:
    target = tmp_path / "target"
    result = install("--config", native.config, "--target", target, "--no-deps",
                     "--allow-missing-libraries", native.consumer)  # fmt: skip
    assert result.code == 0, result.err
    warnings = [line for line in result.err.splitlines() if line.startswith("warning: missing")]
    assert len(warnings) == 1
    assert warnings[0].startswith("warning: missing library libfoo.so: needed by consumer")
    assert (target / "consumer" / "_ext.so").is_file()


def test_another_distribution_in_the_environment_provides_it(
    native: Native, install: Callable[..., CliResult], tmp_path: Path
) -> None:
    target = tmp_path / "target"
    assert install("--config", native.config, "--target", target, "--no-deps",
                   native.foo_runtime).code == 0  # fmt: skip
    result = install("--config", native.config, "--target", target, "--no-deps", native.consumer)
    assert result.code == 0, result.err
    assert "missing" not in result.err


def test_a_system_library_directory_provides_it(
    native: Native, install: Callable[..., CliResult], tmp_path: Path
) -> None:
    target = tmp_path / "target"
    result = install("--config", native.config, "--target", target, "--no-deps",
                     "--system-library-dir", native.system_dir, native.consumer)  # fmt: skip
    assert result.code == 0, result.err
    assert "missing" not in result.err


def test_a_library_no_removal_explains_is_a_warning_beside_the_refusal(
    native: Native,
    install: Callable[..., CliResult],
    tmp_path: Path,
    make_wheel: Callable[..., Path],
) -> None:
    # _drv.so needs libdriver.so.1 (no RUNPATH), which no requirement provides, as torch needs
    # the GPU driver's libcuda.so.1.
    needs_driver = native.directory / "needs_driver.so"
    if not needs_driver.exists():
        (native.directory / "drv.c").write_text("int drv(void) { return 1; }\n")
        subprocess.run(["gcc", "-shared", "-fPIC", "-Wl,-soname,libdriver.so.1", "-o",
                        "libdriver.so.1", "drv.c"], cwd=native.directory, check=True)  # fmt: skip
        (native.directory / "use_drv.c").write_text(
            "int drv(void);\nint use(void) { return drv(); }\n"
        )
        subprocess.run(["gcc", "-shared", "-fPIC", "-o", "needs_driver.so", "use_drv.c", "-L.",
                        "-Wl,--no-as-needed", "-l:libdriver.so.1"], cwd=native.directory,
                       check=True)  # fmt: skip
    wheel = make_wheel(
        name="consumer",
        version="1.1",
        requires=("provider",),
        files={
            "consumer/__init__.py": b"",
            "consumer/_drv.so": needs_driver.read_bytes(),
            "consumer/_ext.so": native.ext_runpath.read_bytes(),
        },
    )
    result = install("--config", native.config, "--target", tmp_path / "t", "--no-deps", wheel)
    assert result.code == 6, result.err
    lines = result.err.splitlines()
    assert lines[0].startswith("warning: missing library libdriver.so.1: needed by consumer")
    assert lines[0].endswith("no requirement the overrides removed is known to provide it")
    assert lines[1].startswith("error: libfoo.so: needed by consumer 1.1+nolib.1: consumer/_ext.so")


# --- what the refusal asks an index for ----------------------------------------------------------


@dataclass
class Index:
    """A simple index on loopback (http.server's directory listings, which pip reads as simple
    pages), recording every path asked for."""

    url: str
    root: Path
    asked: list[str] = field(default_factory=list)

    def add(self, wheel: Path, project: str) -> None:
        (self.root / project).mkdir(exist_ok=True)
        shutil.copy(wheel, self.root / project / wheel.name)


@pytest.fixture
def index(tmp_path: Path) -> Iterator[Index]:
    root = tmp_path / "simple"
    root.mkdir()
    asked: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            super().do_GET()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=str(root))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Index(f"http://127.0.0.1:{server.server_address[1]}/", root, asked)
    finally:
        server.shutdown()
        server.server_close()


def test_a_local_wheel_with_no_deps_sends_nothing_to_an_index(
    native: Native,
    install: Callable[..., CliResult],
    index: Index,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The user's pip configuration names an index (which holds a "provider" that is not ours):
    # a --no-deps install of a wheel file resolves nothing there, so the refusal asks it nothing.
    index.add(native.foo_runtime, "provider")
    monkeypatch.delenv("PIP_NO_INDEX")
    monkeypatch.setenv("PIP_INDEX_URL", index.url)
    result = install("--config", native.config, "--target", tmp_path / "t", "--no-deps",
                     native.consumer)  # fmt: skip
    assert result.code == 6, result.err
    assert "likely provided by the removed requirement 'provider'" in result.err
    assert index.asked == []


def test_only_the_requirements_the_names_point_to_are_downloaded(
    native: Native,
    install: Callable[..., CliResult],
    index: Index,
    tmp_path: Path,
    make_wheel: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PIP_NO_INDEX")
    # consumer 1.2's override removes provider and a private requirement no missing library
    # points to; pip resolves its helper through the index (the patched consumer never names
    # the private one to it): the refusal fetches provider's wheel alone, whose RECORD confirms.
    config = tmp_path / "pyproject.toml"
    config.write_text(
        '[tool.wheelpatch]\nlocal-version = "nolib.1"\n\n[tool.wheelpatch.overrides.consumer]\n'
        'remove = ["provider", "acme-private-tools"]\n',
        encoding="utf-8",
    )
    consumer = make_wheel(
        name="consumer",
        version="1.2",
        requires=("provider", "acme-private-tools", "helper"),
        files={"consumer/__init__.py": b"", "consumer/_ext.so": native.ext_runpath.read_bytes()},
    )
    index.add(make_wheel(name="helper", version="1.0", files={"helper/__init__.py": b""}),
              "helper")  # fmt: skip
    index.add(native.provider, "provider")
    result = install("--config", config, "--target", tmp_path / "t", "--index-url", index.url,
                     consumer)  # fmt: skip
    assert result.code == 6, result.err
    assert "the removed requirement 'provider' provides it (its wheel's RECORD" in result.err
    assert any(path.startswith("/helper/") for path in index.asked), index.asked
    assert any(path.startswith("/provider/") for path in index.asked), index.asked
    assert not [path for path in index.asked if "acme" in path]


def test_a_wheel_the_override_does_not_strip_is_not_refused(
    native: Native, install: Callable[..., CliResult], tmp_path: Path
) -> None:
    # Nothing removed: libfoo.so is missing here too, but no removal of ours is the cause.
    config = tmp_path / "pyproject.toml"
    config.write_text('[tool.wheelpatch]\nlocal-version = "x.1"\n', encoding="utf-8")
    result = install("--config", config, "--target", tmp_path / "t", "--no-deps", native.consumer)
    assert result.code == 0, result.err


# --- end to end: a real venv, pip resolving from a local wheelhouse ---------------------------


def _wheelpatch_install(*argv: str | Path, expect: int) -> subprocess.CompletedProcess[str]:
    command = [*INSTALL, *map(str, argv)]
    done = subprocess.run(
        command, capture_output=True, text=True, env=hermetic_env(), timeout=300, check=False
    )
    assert done.returncode == expect, (
        f"{shlex.join(command)} exited {done.returncode}\n{done.stdout}\n{done.stderr}"
    )
    return done


@pytest.mark.slow
def test_end_to_end_refused_then_passes_with_another_distribution(
    native: Native, tmp_path: Path
) -> None:
    venv = make_venv(tmp_path / "venv")
    common = ("--config", native.config, "--python", venv.python, "--no-index",
              "--find-links", native.directory / "wheels")  # fmt: skip
    before = tree(venv.root)
    done = _wheelpatch_install(*common, "consumer==1.0", expect=6)
    assert "error: libfoo.so: needed by consumer 1.0+nolib.1: consumer/_ext.so" in done.stderr
    assert "the removed requirement 'provider' provides it (its wheel's RECORD" in done.stderr
    assert changed(before, tree(venv.root)) == []
    # The same resolution with foo-runtime in it: its libfoo.so lands where the RUNPATH looks.
    done = _wheelpatch_install(*common, "consumer==1.0", "foo-runtime", expect=0)
    assert "installed consumer 1.0+nolib.1" in done.stdout
    probe = subprocess.run(
        [venv.python, "-c", "import ctypes, consumer, os; "
         "lib = ctypes.CDLL(os.path.join(os.path.dirname(consumer.__file__), '_ext.so')); "
         "print(lib.ext())"],
        capture_output=True, text=True, env=hermetic_env(), timeout=60, check=False,
    )  # fmt: skip
    assert probe.stdout.strip() == "43", probe.stderr  # the loader agrees: libfoo.so is found


@pytest.mark.slow
def test_end_to_end_the_loader_fails_as_the_check_said(native: Native, tmp_path: Path) -> None:
    """With --allow-missing-libraries the extension indeed cannot be loaded: the refusal was
    right."""
    venv = make_venv(tmp_path / "venv")
    _wheelpatch_install("--config", native.config, "--python", venv.python, "--no-deps",
                        "--allow-missing-libraries", native.consumer, expect=0)  # fmt: skip
    probe = subprocess.run(
        [venv.python, "-c", "import ctypes, consumer, os; "
         "ctypes.CDLL(os.path.join(os.path.dirname(consumer.__file__), '_ext.so'))"],
        capture_output=True, text=True, env={**hermetic_env(), "LD_LIBRARY_PATH": ""},
        timeout=60, check=False,
    )  # fmt: skip
    assert probe.returncode != 0
    assert "libfoo.so: cannot open shared object file" in probe.stderr
    assert os.path.exists(venv.site / "consumer" / "_ext.so")
    assert sys.executable  # the interpreter running the tests was never installed into


def test_the_download_is_bounded_in_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket
    import time

    from wheelpatch.install.environment import probe
    from wheelpatch.install.resolve import PipOptions, download_wheels

    for key, value in hermetic_env().items():
        monkeypatch.setenv(key, value)
    # An index that takes the connection and never answers (as one behind a dead proxy).
    listener = socket.create_server(("127.0.0.1", 0))
    try:
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/"
        env = probe(sys.executable, target=tmp_path / "t")
        started = time.monotonic()
        found = download_wheels(["provider", "other"], env, PipOptions(index_url=url),
                                tmp_path / "d", timeout=2.0)  # fmt: skip
        elapsed = time.monotonic() - started
    finally:
        listener.close()
    assert found == []
    assert elapsed < 10, f"{elapsed:.1f} s (pip alone waits 15 s a try, 5 retries)"
