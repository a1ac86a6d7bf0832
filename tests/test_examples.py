"""The examples under plugin_examples/ run as their READMEs say."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from wheelpatch.cli.wheelpatch import main
from wheelpatch.rules.config import read_toml

from .hermetic import hermetic_env
from .installed_wheels import wheelhouse_of_installed
from .servers import answers, free_port

ROOT = Path(__file__).parent.parent
EXAMPLES = ROOT / "plugin_examples"
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


DEAD_PROXY = "http://127.0.0.1:9"


def online_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The hermetic environment, but online for uv (no ``UV_OFFLINE``) so it can reach loopback
    servers; a private home and empty caches; anything but 127.0.0.1 goes to a dead proxy."""
    env = hermetic_env(
        HOME=str(tmp_path / "home"),
        UV_CACHE_DIR=str(tmp_path / "uv-cache"),
        HATCH_DATA_DIR=str(tmp_path / "home" / "hatch-data"),
        HATCH_CACHE_DIR=str(tmp_path / "home" / "hatch-cache"),
        PATH=os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")]),
        PIP_RETRIES="0",
        HTTP_PROXY=DEAD_PROXY,
        HTTPS_PROXY=DEAD_PROXY,
        ALL_PROXY=DEAD_PROXY,
        http_proxy=DEAD_PROXY,
        https_proxy=DEAD_PROXY,
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
    )
    for key in ("UV_OFFLINE", "UV_NO_CACHE"):
        env.pop(key)
    env.update(extra)
    return env


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


#: What hatchling asks for when it builds an editable wheel of the project in the current directory.
EDITABLE_REQUIRES = """\
import json, hatchling.build
print(json.dumps(hatchling.build.get_requires_for_build_editable()))
"""


def _installed_wheelhouse(project: Path, directory: Path) -> Path:
    """Wheels of the build requirements (editable included) and dependencies of ``project`` (on
    this interpreter), rebuilt from this environment: what ``pip install -e .`` needs, offline."""
    data = read_toml(project / "pyproject.toml")
    editable = subprocess.run(
        [sys.executable, "-c", EDITABLE_REQUIRES], cwd=project, capture_output=True, check=True
    )
    texts = [
        *data["build-system"]["requires"],
        *json.loads(editable.stdout),
        *data["project"].get("dependencies", []),
    ]
    names = []
    for text in texts:
        requirement = Requirement(text)
        if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
            names.append(requirement.name)
    directory.mkdir()
    wheelhouse_of_installed(names, directory)
    return directory


def _checkout_copy(destination: Path) -> Path:
    """The files of this checkout (tracked and not ignored), as a newcomer's clone has them."""
    listed = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        check=True,
        capture_output=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return destination


#: The first line of the README's quick start: everything inside the checkout, safe to run again.
QUICK_START = (ROOT / "README.md").read_text(encoding="utf-8").split("```console\n", 1)[1]
QUICK_START = QUICK_START.splitlines()[0]


@pytest.mark.slow
def test_quick_start_runs_twice_in_a_fresh_checkout(tmp_path: Path) -> None:
    checkout = _checkout_copy(tmp_path / "wheelpatch")
    wheels = _installed_wheelhouse(checkout, tmp_path / "wheels")
    # pip gets wheelpatch's build and runtime requirements from here, as from PyPI.
    env = online_env(tmp_path, PIP_NO_INDEX="1", PIP_FIND_LINKS=str(wheels))
    outputs = []
    for attempt in ("first", "second"):
        result = _run("bash", "-c", QUICK_START, cwd=checkout, env=env)
        assert result.returncode == 0, f"{attempt} run:\n{result.stdout}\n{result.stderr}"
        built = checkout / "build" / "wheelhouse"
        outputs.append({str(p.relative_to(built)): p.read_bytes() for p in built.rglob("*.whl")})
    assert sorted(p for p in outputs[0] if p.startswith("patched/")) == [
        "patched/torch-2.0.1+stripe.2-py3-none-any.whl",
        "patched/triton-2.0.0+stripe.2-py3-none-any.whl",
    ]
    assert sorted(p for p in outputs[0] if "/" not in p) == TORCH_WHEELHOUSE
    assert outputs[0] == outputs[1]  # the same wheels, byte for byte, the second time
    # Without --force, a run stops at the outputs of the last one (exit 3): what --force is for.
    again = _run("bash", "-c", QUICK_START.replace(" --force", ""), cwd=checkout, env=env)
    assert again.returncode == 3, again.stderr
    assert "already exists" in again.stderr


def _console_commands(readme: Path, heading: str) -> list[str]:
    """The ``$ `` lines of the first console block under ``## heading`` in ``readme``."""
    section = readme.read_text(encoding="utf-8").split(f"\n## {heading}\n", 1)[1]
    block = section.split("```console\n", 1)[1].split("\n```", 1)[0]
    return [line[2:] for line in block.splitlines() if line.startswith("$ ")]


PUBLISHING = "Patching the wheels and publishing them to a private index"


@pytest.mark.slow
def test_publishing_to_a_private_index_as_the_readme_says(tmp_path: Path) -> None:
    """Every command of the README's publishing block, as written, with 8080 replaced by a free
    port and /tmp/ by this test's directory: patch, pypiserver, twine upload, pip and uv install."""
    commands = _console_commands(EXAMPLES / "torch-without-triton" / "README.md", PUBLISHING)
    assert commands[0] == "cd plugin_examples/torch-without-triton"
    assert commands[-1].startswith("kill %1")
    shutil.copytree(EXAMPLES, tmp_path / "plugin_examples", ignore=shutil.ignore_patterns("__py*"))
    example = tmp_path / "plugin_examples" / "torch-without-triton"
    env = online_env(tmp_path)
    server: subprocess.Popen[bytes] | None = None
    port = free_port()
    try:
        for command in commands[1:-1]:
            line = command.replace("8080", str(port)).replace("/tmp/", f"{tmp_path}/")
            if not line.endswith("&"):
                result = _run("bash", "-c", line, cwd=example, env=env)
                assert result.returncode == 0, f"{line}:\n{result.stdout}\n{result.stderr}"
                continue
            *before, start = line.removesuffix("&").strip().split(" && ")
            for part in before:
                assert _run("bash", "-c", part, cwd=example, env=env).returncode == 0, part
            with (tmp_path / "pypiserver.log").open("ab") as log:
                server = subprocess.Popen(
                    ["bash", "-c", f"exec {start}"], cwd=example, env=env, stdout=log, stderr=log
                )
            deadline = time.monotonic() + 30
            while not answers(f"http://127.0.0.1:{port}/simple/"):
                assert server.poll() is None, (tmp_path / "pypiserver.log").read_text()
                assert time.monotonic() < deadline, "pypiserver did not answer"
                time.sleep(0.05)
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=10)
    patched = sorted(p.name for p in (example / "patched").glob("*.whl"))
    assert patched == [
        "torch-2.0.1+stripe.2-py3-none-any.whl",
        "triton-2.0.0+stripe.2-py3-none-any.whl",
    ]
    for name in patched:  # uploaded as they were written
        assert (example / "packages" / name).read_bytes() == (
            example / "patched" / name
        ).read_bytes()
    for venv in ("app-pip", "app-uv"):
        python = tmp_path / venv / "bin" / "python"
        shown = subprocess.run(
            [python, "-c", INSTALLED], capture_output=True, text=True, check=True
        )
        installed = [
            pair for pair in json.loads(shown.stdout) if pair[0] not in {"pip", "setuptools"}
        ]
        assert installed == [
            ["filelock", "3.13.1"],
            ["sympy", "1.13.3"],
            ["torch", "2.0.1+stripe.2"],
            ["typing-extensions", "4.8.0"],
        ], venv
