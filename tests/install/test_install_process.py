"""``wheelpatch-install`` as a process: a stdout closed early, the progress line on a terminal,
a SIGKILLed run's temporary directory, a Python without ``fcntl`` and ``python -m``.

Each test runs the real console script (or ``python -m``) in a subprocess with the hermetic
environment, installing wheel files with ``--no-deps`` into ``--target`` directories.
"""

from __future__ import annotations

import fcntl
import os
import pty
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from wheelpatch import __version__
from wheelpatch.install.pipeline import WORKDIR_PREFIX
from wheelpatch.install.stash import PLATFORM_ERROR

from ..conftest import WheelSpec, build_wheel
from ..hermetic import hermetic_env
from .test_install import CONFIG, TORCH_FILES, _check_record, drain, torch_spec

INSTALL_SCRIPT = Path(sys.executable).with_name("wheelpatch-install")


def _config(tmp_path: Path) -> Path:
    config = tmp_path / "pyproject.toml"
    config.write_text(CONFIG, encoding="utf-8")
    return config


# --- item 8: a closed stdout never produces a false claim ------------------------------------


@pytest.mark.parametrize(
    "report", [pytest.param(("--json",), id="json"), pytest.param((), id="text")]
)
def test_stdout_closed_early_says_nothing_and_both_wheels_stay_installed(
    tmp_path: Path, report: tuple[str, ...]
) -> None:
    """``wheelpatch-install ... | head -1``: the report is printed once both wheels are
    installed; the reader having left is no failure and nothing is said to be rolled back."""
    torch = build_wheel(tmp_path, torch_spec())
    other = build_wheel(tmp_path, WheelSpec(name="other", files={"other/__init__.py": b"X = 1\n"}))
    target = tmp_path / "env"
    reader, writer = os.pipe()
    os.close(reader)  # the reader is gone before anything is written: every write gets EPIPE
    try:
        done = subprocess.run(
            [INSTALL_SCRIPT, "--config", _config(tmp_path), "--no-deps", "--target", target,
             *report, torch, other],
            stdout=writer, stderr=subprocess.PIPE, text=True, env=hermetic_env(), timeout=120,
            check=False,
        )  # fmt: skip
    finally:
        os.close(writer)
    assert (done.returncode, done.stderr) == (0, "")
    for dist_info in ("torch-2.0.1+stripe.2.dist-info", "other-1.0.dist-info"):
        assert _check_record(target, target / dist_info)
    assert (target / "other" / "__init__.py").read_bytes() == b"X = 1\n"
    assert not [p for p in target.iterdir() if p.name.startswith(".wheelpatch-stash-")]


def test_stderr_closed_too_changes_nothing(tmp_path: Path) -> None:
    """``wheelpatch-install ... 2>&1 | head -1`` with a configuration found upward (whose line on
    stderr comes before any work) and a misspelt table (a warning): the install still happens in
    full and its exit status is the real one, 0, then 1 for a wheel refused."""
    torch = build_wheel(tmp_path, torch_spec())
    (tmp_path / "pyproject.toml").write_text(
        CONFIG + '\n[tool.wheelpatch.overrides.pytorch]\nremove = ["x"]\n', encoding="utf-8"
    )
    target = tmp_path / "env"

    def run(*argv: str | Path) -> int:
        reader, writer = os.pipe()
        os.close(reader)
        try:
            return subprocess.run(
                [INSTALL_SCRIPT, *argv], stdout=writer, stderr=writer, env=hermetic_env(),
                cwd=tmp_path, timeout=120, check=False,
            ).returncode  # fmt: skip
        finally:
            os.close(writer)

    assert run("--no-deps", "--target", target, torch) == 0
    assert _check_record(target, target / "torch-2.0.1+stripe.2.dist-info")
    broken = tmp_path / "broken" / "other-1.0-py3-none-any.whl"
    broken.parent.mkdir()
    broken.write_bytes(b"no zip")
    assert run("--no-deps", "--target", tmp_path / "env2", broken) == 1
    assert not (tmp_path / "env2" / "other").exists()


# --- item 14: the progress line draws each state once ------------------------------------------


def test_progress_draws_each_state_once(tmp_path: Path) -> None:
    """On a terminal: one large member, then many empty ones (as torch has empty __init__.py
    files by the dozen), which reach no new state and so draw nothing; 100% is drawn once."""
    empty = {f"torch/sub{i:02d}/__init__.py": b"" for i in range(60)}
    wheel = build_wheel(
        tmp_path, torch_spec(files={**TORCH_FILES, "torch/big.bin": bytes(80 << 20), **empty})
    )
    leader, follower = pty.openpty()
    try:
        done = subprocess.run(
            [INSTALL_SCRIPT, "--config", _config(tmp_path), "--no-deps", "--no-compile",
             "--target", tmp_path / "env", wheel],
            stdout=subprocess.PIPE, stderr=follower, env=hermetic_env(), timeout=120, check=False,
        )  # fmt: skip
    finally:
        os.close(follower)
    err = drain(leader)
    assert done.returncode == 0, err
    draws = [part for part in err.split("\r") if part.startswith("installing ")]
    assert draws, err
    assert len(draws) == len(set(draws)), draws
    final = "installing torch 2.0.1+stripe.2: 100% (89/89 MiB)"
    assert [d for d in draws if " 100% " in d] == [final]
    assert draws[-1] == final
    assert err.endswith("\r\x1b[K")  # the line is cleared before the report


# --- item 14: a SIGKILLed run's temporary directory is swept by a later run -------------------


def test_sigkilled_runs_workdir_is_swept_by_the_next_run(tmp_path: Path) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = hermetic_env(TMPDIR=str(temp))
    config = _config(tmp_path)
    big = build_wheel(
        tmp_path, torch_spec(files={**TORCH_FILES, "torch/big.bin": bytes(200 << 20)})
    )
    small = build_wheel(tmp_path, WheelSpec(name="other", files={"other/__init__.py": b""}))

    process = subprocess.Popen(
        [INSTALL_SCRIPT, "--config", config, "--no-deps", "--target", tmp_path / "killed", big],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not list(temp.glob(f"{WORKDIR_PREFIX}*")) and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(0.05)
    assert process.poll() is None, "the install finished before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    [left] = temp.glob(f"{WORKDIR_PREFIX}*")

    # A live run's directory (its owner file locked by this process) and a directory whose
    # run has not named its owner file yet are not the sweeper's to remove.
    live = temp / f"{WORKDIR_PREFIX}live"
    live.mkdir()
    owner = os.open(live / "owner.lock", os.O_WRONLY | os.O_CREAT, 0o600)
    fcntl.flock(owner, fcntl.LOCK_EX)
    starting = temp / f"{WORKDIR_PREFIX}starting"
    starting.mkdir()
    try:
        later = subprocess.run(
            [INSTALL_SCRIPT, "--config", config, "--no-deps", "--target", tmp_path / "later",
             small],
            capture_output=True, text=True, env=env, timeout=120, check=False,
        )  # fmt: skip
        assert later.returncode == 0, later.stderr
        assert not left.exists()
        assert sorted(p.name for p in temp.iterdir()) == sorted([live.name, starting.name])
        assert (live / "owner.lock").exists()
    finally:
        os.close(owner)


# --- item 3: no fcntl (Windows) is one line and exit 2 -----------------------------------------


def test_without_fcntl_the_command_refuses_in_one_line(tmp_path: Path) -> None:
    """A sitecustomize on PYTHONPATH makes ``import fcntl`` fail, as on Windows."""
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(
        "import sys\nsys.modules['fcntl'] = None  # import fcntl raises ImportError\n",
        encoding="utf-8",
    )
    env = hermetic_env(PYTHONPATH=str(shim))
    probe = subprocess.run(
        [sys.executable, "-c", "import fcntl"], capture_output=True, env=env, check=False
    )
    assert probe.returncode == 1, "the shim does not take effect"
    wheel = build_wheel(tmp_path, torch_spec())
    target = tmp_path / "env"
    done = subprocess.run(
        [INSTALL_SCRIPT, "--config", _config(tmp_path), "--no-deps", "--target", target, wheel],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == f"error: {PLATFORM_ERROR}\n"
    assert PLATFORM_ERROR.startswith(
        "wheelpatch-install needs POSIX file locks (fcntl), which this Python does not have"
    )
    assert not target.exists()
    # --help and --version need no locks; the library still imports.
    version = subprocess.run(
        [INSTALL_SCRIPT, "--version"], capture_output=True, text=True, env=env, check=False
    )
    assert (version.returncode, version.stdout) == (0, f"wheelpatch {__version__}\n")


# --- item 14: python -m wheelpatch.cli.wheelpatch_install ------------------------------


def test_python_m_install_cli_runs_the_command(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "wheelpatch.cli.wheelpatch_install", "--version"],
        capture_output=True, text=True, env=hermetic_env(), cwd=tmp_path, check=False,
    )  # fmt: skip
    assert (done.returncode, done.stdout, done.stderr) == (0, f"wheelpatch {__version__}\n", "")
