"""The examples under plugin_examples/ run as their READMEs say."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from wheelpatch.cli import main

from .hermetic import hermetic_env

EXAMPLES = Path(__file__).parent.parent / "plugin_examples"
ENV = hermetic_env()


#: The wheels make_wheelhouse.py writes for torch-without-triton.
TORCH_WHEELHOUSE = [
    "cuda_bindings-12.9.0-py3-none-any.whl",
    "cuda_toolkit-12.9.1-py3-none-any.whl",
    "filelock-3.13.1-py3-none-any.whl",
    "nvidia_cublas_cu12-12.1.3.1-py3-none-any.whl",
    "nvidia_cudnn_cu12-8.9.2.26-py3-none-any.whl",
    "sympy-1.13.3-py3-none-any.whl",
    "torch-2.0.1-py3-none-any.whl",
    "triton-2.0.0-py3-none-any.whl",
    "typing_extensions-4.8.0-py3-none-any.whl",
]
CUDA_REQUIRES = [
    "nvidia-cublas-cu12==12.1.3.1",
    "nvidia-cudnn-cu12==8.9.2.26",
    "cuda-toolkit[cublas,cudart]==12.9.1",
    "cuda-bindings>=12.9",
]
#: (configuration file, the requirements its torch override removes).
TORCH_CONFIGS = [
    pytest.param("pyproject.toml", ["triton==2.0.0", *CUDA_REQUIRES], id="cuda-from-the-system"),
    pytest.param("keep-cuda.toml", ["triton==2.0.0"], id="keep-cuda"),
]


def test_make_wheelhouse_runs_again_with_the_same_bytes(tmp_path: Path) -> None:
    make = EXAMPLES / "torch-without-triton" / "make_wheelhouse.py"
    wheelhouse = tmp_path / "wheelhouse"
    runs = []
    for _ in range(2):
        result = _run(sys.executable, make, wheelhouse, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        runs.append({p.name: p.read_bytes() for p in sorted(wheelhouse.iterdir())})
    assert list(runs[0]) == TORCH_WHEELHOUSE  # no temporary file left behind
    assert runs[0] == runs[1]


@pytest.mark.parametrize(("config", "removed"), TORCH_CONFIGS)
def test_torch_without_triton(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    config: str,
    removed: list[str],
) -> None:
    example = EXAMPLES / "torch-without-triton"
    subprocess.run(
        [sys.executable, str(example / "make_wheelhouse.py"), str(tmp_path / "wheelhouse")],
        check=True,
        capture_output=True,
    )
    wheels = sorted((tmp_path / "wheelhouse").glob("*.whl"))
    assert [w.name for w in wheels] == TORCH_WHEELHOUSE
    wheels = [w for w in wheels if w.name.startswith(("torch", "triton"))]
    monkeypatch.chdir(example)
    code = main(
        ["patch", "--strict", "--json", "--config", config, "-o", str(tmp_path / "patched"),
         *map(str, wheels)]
    )  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    report = json.loads(captured.out)
    assert [r["filename"] for r in report] == [
        "torch-2.0.1+stripe.2-py3-none-any.whl",
        "triton-2.0.0+stripe.2-py3-none-any.whl",
    ]
    dropped = [c["before"].split(";")[0] for c in report[0]["changes"] if c["action"] == "remove"]
    assert dropped == removed
    assert [c["before"] for c in report[1]["changes"] if c["action"] == "remove"] == ["torch"]
    assert main(["verify", *map(str, sorted((tmp_path / "patched").glob("*.whl")))]) == 0


def _tool(name: str) -> str:
    """A console script installed beside the interpreter running the tests."""
    path = Path(sys.executable).parent / name
    assert path.is_file(), f"{name} is installed with the test extras"
    return str(path)


def _run(
    *args: str | Path, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=env or ENV,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _answers(url: str) -> bool:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=2) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


@contextlib.contextmanager
def pypi_server(
    directory: Path, command: Sequence[str | Path] | None = None
) -> Iterator[tuple[str, Path]]:
    """A real pypiserver on a free 127.0.0.1 port serving ``directory`` (uploads need no password,
    unknown projects are not redirected to PyPI); yields its URL and its log, stopped by PID.

    ``command`` is how it is started (default ``python -m pypiserver``); ``run -p PORT ...`` is
    appended."""
    log = directory.parent / f"{directory.name}-pypiserver.log"
    prefix = [str(a) for a in command or (sys.executable, "-m", "pypiserver")]
    for _ in range(3):  # another process may take the free port before the server binds it
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        argv = [
            *prefix, "run", "-p", str(port), "-i", "127.0.0.1", "-a", ".", "-P", ".",
            "--disable-fallback", str(directory),
        ]  # fmt: skip
        with log.open("ab") as out:
            process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=ENV)
        deadline = time.monotonic() + 30
        while process.poll() is None and time.monotonic() < deadline:
            if _answers(f"{url}/simple/"):
                break
            time.sleep(0.05)
        else:
            if process.poll() is None:
                process.kill()
            process.wait()
            continue
        try:
            yield url, log
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return
    pytest.fail(f"pypiserver did not start; its log:\n{log.read_text(errors='replace')}")


INSTALLED = """\
import importlib.metadata, json
dists = importlib.metadata.distributions()
print(json.dumps(sorted((d.metadata["Name"], d.version) for d in dists)))
"""


#: What ``torch==2.0.1`` installs with each configuration (on Linux, where torch's CUDA
#: requirements apply).
INSTALLED_WITH = {
    "pyproject.toml": [
        ["filelock", "3.13.1"],
        ["sympy", "1.13.3"],
        ["torch", "2.0.1+stripe.2"],
        ["typing-extensions", "4.8.0"],
    ],
    "keep-cuda.toml": [
        ["cuda-bindings", "12.9.0"],
        ["cuda-toolkit", "12.9.1"],
        ["filelock", "3.13.1"],
        ["nvidia-cublas-cu12", "12.1.3.1"],
        ["nvidia-cudnn-cu12", "8.9.2.26"],
        ["sympy", "1.13.3"],
        ["torch", "2.0.1+stripe.2"],
        ["typing-extensions", "4.8.0"],
    ],
}


@pytest.mark.skipif(sys.platform != "linux", reason="torch's CUDA requirements are Linux-only")
@pytest.mark.parametrize("config", list(INSTALLED_WITH))
def test_torch_without_triton_at_install_time(tmp_path: Path, config: str) -> None:
    example = EXAMPLES / "torch-without-triton"
    wheelhouse = tmp_path / "wheelhouse"
    _run(sys.executable, example / "make_wheelhouse.py", wheelhouse, cwd=tmp_path)
    env = tmp_path / "cuda-env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", env], check=True)
    python = env / "bin" / "python"
    result = _run(
        _tool("wheelpatch-install"), "--config", config,
        "--python", python, "--no-index", "--find-links", wheelhouse, "torch==2.0.1",
        cwd=example,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    installed = json.loads(subprocess.run([python, "-c", INSTALLED], capture_output=True,
                                          text=True, check=True).stdout)  # fmt: skip
    assert installed == INSTALLED_WITH[config]
    [provenance] = (env / "lib").glob("python*/site-packages/torch-*.dist-info/wheelpatch.json")
    assert json.loads(provenance.read_text())["version"]["after"] == "2.0.1+stripe.2"


def test_relax_pins(tmp_path: Path) -> None:
    example = EXAMPLES / "relax-pins"
    wheelhouse = tmp_path / "wheelhouse"
    assert (
        _run(sys.executable, example / "make_wheelhouse.py", wheelhouse, cwd=tmp_path).returncode
        == 0
    )
    resolve = [
        sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--report", "-",
        "--ignore-installed", "--no-index", "--find-links", wheelhouse,
    ]  # fmt: skip
    before = _run(*resolve, "legacyclient", cwd=tmp_path)
    assert before.returncode != 0
    assert "requests==2.25.1" in before.stderr
    patched = tmp_path / "patched"
    legacy = wheelhouse / "legacyclient-1.4.0-py3-none-any.whl"
    original = legacy.read_bytes()
    patch = _run(_tool("wheelpatch"), "patch", "--strict", "-o", patched, legacy, cwd=example)
    assert patch.returncode == 0, patch.stderr
    assert legacy.read_bytes() == original
    [wheel] = patched.glob("*.whl")
    assert wheel.name == "legacyclient-1.4.0+relaxed.1-py3-none-any.whl"
    assert _run(_tool("wheelpatch"), "verify", wheel, cwd=tmp_path).returncode == 0
    after = _run(*resolve, "--find-links", patched, "legacyclient", cwd=tmp_path)
    assert after.returncode == 0, after.stderr
    report = json.loads(after.stdout)
    resolved = sorted(
        (item["metadata"]["name"], item["metadata"]["version"]) for item in report["install"]
    )
    assert resolved == [
        ("idna", "3.7"),
        ("legacyclient", "1.4.0+relaxed.1"),
        ("requests", "2.32.3"),
        ("urllib3", "2.2.3"),
    ]
    # The same, patched on the fly, with no patched wheel written.
    dry = _run(
        _tool("wheelpatch-install"), "--dry-run", "--json", "--target", tmp_path / "target",
        "--no-index", "--find-links", wheelhouse, "legacyclient",
        cwd=example,
    )  # fmt: skip
    assert dry.returncode == 0, dry.stderr
    assert "legacyclient" in dry.stdout
    assert "1.4.0+relaxed.1" in dry.stdout
    assert not (tmp_path / "target").exists()


def test_torch_install_still_unresolvable_says_what_was_pinned(tmp_path: Path) -> None:
    example = EXAMPLES / "torch-without-triton"
    wheelhouse = tmp_path / "wheelhouse"
    _run(sys.executable, example / "make_wheelhouse.py", wheelhouse, cwd=tmp_path)
    (wheelhouse / "sympy-1.13.3-py3-none-any.whl").unlink()  # missing even once patched
    result = _run(
        _tool("wheelpatch-install"), "--dry-run", "--target", tmp_path / "target",
        "--no-index", "--find-links", wheelhouse, "torch==2.0.1",
        cwd=example,
    )  # fmt: skip
    assert result.returncode == 4
    [line] = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert "sympy>=1.13.3" in line
    assert line.endswith(
        "(with the patched torch 2.0.1+stripe.2 pinned, as found without their dependencies)"
    )
    assert not (tmp_path / "target").exists()
