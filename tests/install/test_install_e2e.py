"""End to end: ``wheelpatch-install`` against a real package index, into real environments.

A torch-like wheelhouse (torch requires triton, which requires torch back, and nvidia packages)
is served by a real pypiserver on 127.0.0.1. ``wheelpatch-install`` runs as a separate process,
as a user runs it, into fresh virtual environments made without pip (it needs none in the target);
pip, uv and the installed console scripts then read back what it wrote.

Every process gets a hermetic environment: no pip, uv or twine configuration of the machine (its
find-links, file:// indexes and constraints), no proxy, no cache. Every install names where it goes
(``--python`` of a fresh venv, ``--target`` or ``--prefix`` in tmp_path): nothing is ever installed
into the interpreter running the tests.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import hashlib
import io
import json
import os
import resource
import shlex
import signal
import stat
import subprocess
import sys
import sysconfig
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from packaging.version import Version

from wheelpatch.cli.wheelpatch import main as wheelpatch_main
from wheelpatch.cli.wheelpatch_install import main as install_main

from .. import venvs
from ..conftest import WheelSpec, build_wheel
from ..hermetic import hermetic_env
from ..installed_wheels import wheelhouse_of_installed
from ..servers import pypi_server

pytestmark = pytest.mark.slow

LABEL = "stripe.2"
VERSION = "2.0.1"
PATCHED = f"{VERSION}+{LABEL}"
TAG = "py3-none-any"
TORCH_WHEEL = f"torch-{VERSION}-{TAG}.whl"
CONFIG = f"""\
[tool.wheelpatch]
local-version = "{LABEL}"

[tool.wheelpatch.overrides.torch]
remove = ["triton", "nvidia-*", "cuda-toolkit", "cuda-bindings"]

[tool.wheelpatch.overrides.triton]
remove = ["torch"]
"""
RUN_PY = b"def main():\n    print('torchrun ok')\n"
ENTRY_POINTS = b"[console_scripts]\ntorchrun = torch.run:main\n"
TORCH = WheelSpec(
    name="torch",
    version=VERSION,
    files={"torch/__init__.py": f"VERSION = {VERSION!r}\n".encode(), "torch/run.py": RUN_PY},
    requires=("triton==2.0.0", "filelock", "sympy>=1.13", "nvidia-cublas-cu12"),
    extra_headers=("Summary: Tensors and dynamic neural networks",),
    extra_dist_info={"entry_points.txt": ENTRY_POINTS},
)
#: (name, version, requirements) of the rest of the wheelhouse.
OTHERS = [
    ("triton", "2.0.0", ("torch",)),  # the cycle
    ("filelock", "3.13.1", ()),
    ("sympy", "1.13.3", ("mpmath>=1.1.0,<1.4",)),
    ("mpmath", "1.3.0", ()),
    ("nvidia-cublas-cu12", "12.1.3.1", ()),
    ("app", "1.0", ("torch",)),
]
#: What ``torch==2.0.1`` installs once the override has cut triton and the nvidia packages.
RESOLVED = {"torch": PATCHED, "filelock": "3.13.1", "sympy": "1.13.3", "mpmath": "1.3.0"}
PATCH_SUMMARY = f"patched from {VERSION}"
#: How the patch of torch is told, a change a line, after the line naming the wheel.
CHANGE_LINES = [
    "    removed Requires-Dist: triton==2.0.0",
    "    removed Requires-Dist: nvidia-cublas-cu12",
]
PY = f"python{sys.version_info.major}.{sys.version_info.minor}"
CACHE_TAG = sys.implementation.cache_tag

#: Run by a venv's interpreter: what the import system and importlib.metadata see of torch.
INSPECT = """\
import importlib.metadata, json, sys
import torch, torch.run
json.dump(
    {"version": importlib.metadata.version("torch"), "module": torch.VERSION,
     "file": torch.__file__, "requires": importlib.metadata.requires("torch")},
    sys.stdout,
)
"""


# --- a hermetic environment for every process -------------------------------------------------


ENV = hermetic_env()


def run(
    *argv: str | Path,
    expect: int = 0,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    preexec_fn: Any = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command with the hermetic environment; fail the test with its output unless it
    exits with ``expect``."""
    command = [str(a) for a in argv]
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        env=env or ENV,
        cwd=cwd,
        timeout=180,
        check=False,
        preexec_fn=preexec_fn,
    )
    assert result.returncode == expect, (
        f"{shlex.join(command)} exited {result.returncode}, expected {expect}\n"
        f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
    )
    return result


def _install_command() -> list[str]:
    """``wheelpatch-install`` of the interpreter running the tests (its console script)."""
    script = Path(sys.executable).parent / "wheelpatch-install"
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from wheelpatch.cli.wheelpatch_install import main; "
            "sys.exit(main())"]  # fmt: skip


INSTALL = _install_command()
_WHERE = ("--python", "--target", "--prefix")


def _check_contained(argv: tuple[str | Path, ...]) -> None:
    """Refuse to run an install that does not name its destination: without one it would write
    into the interpreter running the tests."""
    assert any(str(a) in _WHERE for a in argv), f"no --python/--target/--prefix in {argv}"


def pip(*argv: str | Path, expect: int = 0) -> subprocess.CompletedProcess[str]:
    """The test environment's pip driving another environment (``--python``/``--target``).

    ``--prefix`` alone is refused: pip then still counts the packages of the interpreter running
    it as installed, and uninstalls one from there when the prefix needs another version."""
    words = {str(a) for a in argv}
    if {"install", "uninstall"} & words:
        assert words & {"--python", "--target"}, f"pip {argv} would touch the test interpreter"
    return run(sys.executable, "-m", "pip", *argv, expect=expect)


def uv_binary() -> Path:
    from uv import find_uv_bin

    path = Path(find_uv_bin())
    assert path.is_file(), f"uv not found at {path}"
    return path


# --- environments -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Venv(venvs.Venv):
    def inspect(self) -> dict[str, Any]:
        out = run(self.python, "-c", INSPECT, cwd=self.root)
        data: dict[str, Any] = json.loads(out.stdout)
        return data


def make_venv(root: Path) -> Venv:
    return venvs.make_venv(root, Venv)


def tree(root: Path) -> dict[str, tuple[int, int, bytes]]:
    """Every directory, file and symlink below ``root``: (mode, mtime of files, content or link
    target). Symlinked directories are not followed."""
    entries: dict[str, tuple[int, int, bytes]] = {}
    for directory, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            path = Path(directory, name)
            info = path.lstat()
            if stat.S_ISLNK(info.st_mode):
                entry = (info.st_mode, 0, os.readlink(path).encode())
            elif stat.S_ISDIR(info.st_mode):
                entry = (info.st_mode, 0, b"")
            else:
                entry = (info.st_mode, info.st_mtime_ns, path.read_bytes())
            entries[str(path.relative_to(root))] = entry
    return entries


def changed(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    return sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))


def record_rows(dist_info: Path) -> list[list[str]]:
    text = (dist_info / "RECORD").read_text("utf-8")
    return [row for row in csv.reader(io.StringIO(text)) if row]


def assert_record_true(dist_info: Path) -> set[Path]:
    """Every file RECORD lists exists with the hash and size given; returns the listed paths."""
    site = dist_info.parent
    listed = set()
    for path, digest, size in record_rows(dist_info):
        target = Path(os.path.normpath(site / path))
        listed.add(target)
        assert target.is_file(), f"{dist_info.name}/RECORD lists {path}, which does not exist"
        if digest:
            algorithm, _, value = digest.partition("=")
            data = target.read_bytes()
            assert hashlib.new(algorithm, data).digest() == _unb64(value), path
            assert int(size) == len(data), path
    return listed


def _unb64(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def public(version: str) -> str:
    return Version(version).public


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- the wheelhouse and the index ---------------------------------------------------------------


@dataclass(frozen=True)
class Wheelhouse:
    directory: Path
    config: Path

    @property
    def torch(self) -> Path:
        return self.directory / TORCH_WHEEL

    def file(self, name: str, version: str) -> Path:
        """The source wheel of ``name`` (the patched version maps to torch's source)."""
        path = self.directory / f"{name.replace('-', '_')}-{public(version)}-{TAG}.whl"
        assert path.is_file(), path
        return path


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Wheelhouse:
    root = tmp_path_factory.mktemp("wheelhouse")
    directory = root / "packages"
    directory.mkdir()
    build_wheel(directory, TORCH)
    for name, version, requires in OTHERS:
        spec = WheelSpec(name=name, version=version, requires=requires)
        package = "nvidia/cublas" if name.startswith("nvidia") else spec.dist_name
        spec.files = {f"{package}/__init__.py": f"NAME = {name!r}\n".encode()}
        build_wheel(directory, spec)
    config = root / "pyproject.toml"
    config.write_text(CONFIG, encoding="utf-8")
    return Wheelhouse(directory, config)


@dataclass(frozen=True)
class Index:
    url: str
    directory: Path

    @property
    def simple(self) -> str:
        return f"{self.url}/simple/"


@contextlib.contextmanager
def pypiserver(directory: Path) -> Iterator[Index]:
    """pypiserver serving ``directory``; an upload may replace a file of the same name."""
    with pypi_server(directory, options=("--overwrite",)) as (url, _):
        yield Index(url, directory)


@pytest.fixture(scope="session")
def index(wheelhouse: Wheelhouse) -> Iterator[Index]:
    with pypiserver(wheelhouse.directory) as server:
        yield server


# --- running wheelpatch-install -----------------------------------------------------------------


def install_cmd(wheelhouse: Wheelhouse, *argv: str | Path) -> list[str]:
    _check_contained(argv)
    return [*INSTALL, "--config", str(wheelhouse.config), *(str(a) for a in argv)]


def wheelpatch_install(
    wheelhouse: Wheelhouse,
    *argv: str | Path,
    expect: int = 0,
    env: dict[str, str] | None = None,
    preexec_fn: Any = None,
) -> subprocess.CompletedProcess[str]:
    command = install_cmd(wheelhouse, *argv)
    return run(
        *command, expect=expect, cwd=wheelhouse.config.parent, env=env, preexec_fn=preexec_fn
    )


def from_index(index: Index, venv: Venv, *argv: str | Path) -> list[str | Path]:
    return ["--python", venv.python, "--index-url", index.simple, *argv]


# --- a requirement from the index ---------------------------------------------------------------


def test_requirement_from_index_installs_patched_torch_without_triton(
    wheelhouse: Wheelhouse, index: Index, tmp_path: Path
) -> None:
    venv = make_venv(tmp_path / "venv")
    result = wheelpatch_install(wheelhouse, *from_index(index, venv, f"torch=={VERSION}"))
    assert sorted(result.stdout.splitlines()) == sorted(
        [
            f"installed torch {PATCHED} ({PATCH_SUMMARY})",
            *CHANGE_LINES,
            "installed filelock 3.13.1",
            "installed sympy 1.13.3",
            "installed mpmath 1.3.0",
            f"installed 4 wheel(s), 1 patched into {venv.root}",
        ]
    )
    # Exactly the four: no triton, no nvidia package.
    assert venv.dist_infos() == sorted(f"{n}-{v}.dist-info" for n, v in RESOLVED.items())
    listed = json.loads(pip("--python", venv.python, "list", "--format", "json").stdout)
    assert {p["name"]: p["version"] for p in listed} == RESOLVED
    assert pip("--python", venv.python, "check").stdout == "No broken requirements found.\n"

    dist_info = venv.dist_info("torch", PATCHED)
    metadata = (dist_info / "METADATA").read_text("utf-8")
    assert f"Version: {PATCHED}\n" in metadata
    assert "Requires-Dist: filelock\nRequires-Dist: sympy>=1.13\n" in metadata
    assert "triton" not in metadata
    assert "nvidia" not in metadata
    for name, version in RESOLVED.items():
        installed = venv.dist_info(name, version)
        assert (installed / "INSTALLER").read_bytes() == b"wheelpatch\n", name
        assert (installed / "REQUESTED").exists() == (name == "torch"), name
        assert not (installed / "direct_url.json").exists(), name
        assert (installed / "wheelpatch.json").exists() == (name == "torch"), name
        listed_files = assert_record_true(installed)
        package = venv.site / name
        assert {p for p in package.rglob("*") if p.is_file()} <= listed_files, name

    provenance = json.loads((dist_info / "wheelpatch.json").read_text("utf-8"))
    assert provenance["schema"] == 1
    assert provenance["project"] == "torch"
    assert provenance["source"] == {
        "filename": TORCH_WHEEL,
        "sha256": sha256(index.directory / TORCH_WHEEL),
    }
    assert provenance["version"] == {"before": VERSION, "after": PATCHED}
    assert [(c["field"], c["action"], c["before"]) for c in provenance["changes"]] == [
        ("Version", "set", VERSION),
        ("Requires-Dist", "remove", "triton==2.0.0"),
        ("Requires-Dist", "remove", "nvidia-cublas-cu12"),
    ]
    assert provenance["config"]["override"] == "tool.wheelpatch.overrides.torch"

    info = venv.inspect()
    assert info["version"] == PATCHED
    assert info["module"] == VERSION
    assert info["requires"] == ["filelock", "sympy>=1.13"]
    assert Path(info["file"]) == venv.site / "torch" / "__init__.py"
    assert (venv.site / "torch" / "__pycache__" / f"__init__.{CACHE_TAG}.pyc").is_file()

    show = pip("--python", venv.python, "show", "torch").stdout
    assert f"Version: {PATCHED}\n" in show
    assert "Requires: filelock, sympy\n" in show
    uv_list = run(uv_binary(), "pip", "list", "--python", venv.python).stdout.split()
    assert uv_list[uv_list.index("torch") + 1] == PATCHED
    assert uv_list[uv_list.index("mpmath") + 1] == "1.3.0"
    assert "triton" not in uv_list

    script = venv.bin / "torchrun"
    assert script.read_bytes().startswith(f"#!{venv.python}\n".encode())
    assert "../../../bin/torchrun" in {row[0] for row in record_rows(dist_info)}
    assert run(script, cwd=tmp_path).stdout == "torchrun ok\n"


def test_transitive_override_patches_a_dependency(
    wheelhouse: Wheelhouse, index: Index, tmp_path: Path
) -> None:
    """``app`` requires torch: the override reaches torch although it was not named, and the
    JSON report says what happened to each wheel; the same torch given again is left alone."""
    venv = make_venv(tmp_path / "venv")
    result = wheelpatch_install(wheelhouse, *from_index(index, venv, "--json", "app"))
    document = json.loads(result.stdout)
    assert document["dry_run"] is False
    assert document["environment"]["python"] == str(venv.python)
    assert Path(document["environment"]["purelib"]) == venv.site
    assert Path(document["environment"]["scripts"]) == venv.bin
    wheels = {w["name"]: w for w in document["wheels"]}
    assert {n: (w["version"], w["status"]) for n, w in wheels.items()} == {
        "app": ("1.0", "installed"),
        **{n: (v, "installed") for n, v in RESOLVED.items()},
    }
    torch = wheels["torch"]
    assert (torch["requested"], torch["patched"], torch["original_version"]) == (
        False,
        True,
        VERSION,
    )
    assert [(c["action"], c["before"]) for c in torch["changes"]] == [
        ("set", VERSION),
        ("remove", "triton==2.0.0"),
        ("remove", "nvidia-cublas-cu12"),
    ]
    assert torch["replaced"] == []
    assert (wheels["app"]["requested"], wheels["app"]["patched"]) == (True, False)
    assert venv.dist_infos() == sorted(
        f"{n}-{v}.dist-info" for n, v in {"app": "1.0", **RESOLVED}.items()
    )
    assert not (venv.dist_info("torch", PATCHED) / "REQUESTED").exists()
    assert (venv.dist_info("app", "1.0") / "REQUESTED").exists()
    assert pip("--python", venv.python, "check").stdout == "No broken requirements found.\n"

    # The same torch given as a file is already there: left alone, with that status.
    argv = ("--python", venv.python, "--no-deps", wheelhouse.torch)
    again = wheelpatch_install(wheelhouse, *argv, "--json")
    assert [(w["name"], w["version"], w["status"]) for w in json.loads(again.stdout)["wheels"]] == [
        ("torch", PATCHED, "already installed")
    ]
    assert wheelpatch_install(wheelhouse, *argv).stdout.splitlines() == [
        f"left alone torch {PATCHED} (already installed)",
        f"installed 0 wheel(s), 0 patched, 1 left alone into {venv.root}",
    ]


def test_wheel_file_target_gets_direct_url(
    wheelhouse: Wheelhouse, index: Index, tmp_path: Path
) -> None:
    """A wheel given as a file is patched on the fly, its dependencies come from the index, and
    PEP 610's direct_url.json points at the file."""
    venv = make_venv(tmp_path / "venv")
    wheelpatch_install(wheelhouse, *from_index(index, venv, wheelhouse.torch))
    assert venv.dist_infos() == sorted(f"{n}-{v}.dist-info" for n, v in RESOLVED.items())
    dist_info = venv.dist_info("torch", PATCHED)
    direct_url = json.loads((dist_info / "direct_url.json").read_text("utf-8"))
    digest = sha256(wheelhouse.torch)
    assert direct_url == {
        "url": wheelhouse.torch.as_uri(),
        "archive_info": {"hash": f"sha256={digest}", "hashes": {"sha256": digest}},
    }
    assert (dist_info / "REQUESTED").exists()
    assert not (venv.dist_info("sympy", "1.13.3") / "direct_url.json").exists()
    assert_record_true(dist_info)


def test_pip_uninstall_removes_every_file(wheelhouse: Wheelhouse, tmp_path: Path) -> None:
    venv = make_venv(tmp_path / "venv")
    before = tree(venv.root)
    wheelpatch_install(wheelhouse, "--python", venv.python, "--no-deps", wheelhouse.torch)
    assert (venv.bin / "torchrun").is_file()
    assert (venv.site / "torch" / "__pycache__").is_dir()
    result = pip("--python", venv.python, "uninstall", "-y", "torch")
    assert f"Successfully uninstalled torch-{PATCHED}" in result.stdout
    assert not (venv.site / "torch").exists()
    assert not (venv.site / f"torch-{PATCHED}.dist-info").exists()
    assert not (venv.bin / "torchrun").exists()
    assert [p.name for p in venv.site.iterdir() if "torch" in p.name] == []
    # Nothing at all is left behind: the venv is as it was made.
    assert changed(before, tree(venv.root)) == []


@pytest.mark.parametrize(
    "options",
    [pytest.param((), id="plain"), pytest.param(("--force-reinstall",), id="force-reinstall")],
)
def test_reinstall_over_unpatched_version(
    wheelhouse: Wheelhouse, index: Index, tmp_path: Path, options: tuple[str, ...]
) -> None:
    """pip put the unpatched torch 2.0.1 (and its dependencies, triton included) there; asked for
    ``torch==2.0.1`` again, wheelpatch-install replaces it with the patched build."""
    venv = make_venv(tmp_path / "venv")
    pip("--python", venv.python, "install", "--index-url", index.simple, f"torch=={VERSION}")
    old = venv.dist_info("torch", VERSION)
    assert (old / "INSTALLER").read_text() == "pip\n"
    assert "triton-2.0.0.dist-info" in venv.dist_infos()

    result = wheelpatch_install(
        wheelhouse, *from_index(index, venv, "--no-deps", *options, f"torch=={VERSION}")
    )
    assert f"installed torch {PATCHED} ({PATCH_SUMMARY}), replacing {VERSION}\n" in result.stdout
    assert not old.exists()
    assert [d for d in venv.dist_infos() if d.startswith("torch-")] == [
        f"torch-{PATCHED}.dist-info"
    ]
    dist_info = venv.dist_info("torch", PATCHED)
    assert (dist_info / "INSTALLER").read_bytes() == b"wheelpatch\n"
    listed = assert_record_true(dist_info)
    leftovers = {p for p in (venv.site / "torch").rglob("*") if p.is_file()} - listed
    assert leftovers == set()
    assert venv.bin / "torchrun" in listed
    assert [p.name for p in venv.root.iterdir() if p.name.startswith(".wheelpatch")] == []
    assert pip("--python", venv.python, "check").stdout == "No broken requirements found.\n"
    assert venv.inspect()["version"] == PATCHED
    assert run(venv.bin / "torchrun").stdout == "torchrun ok\n"


# --- faults: the installed version survives a failed install -----------------------------------


def _corrupt(wheel: Path, member: str) -> None:
    """Change ``member``'s bytes (same size, valid CRC) and leave RECORD alone: only its hash
    no longer matches, which nothing finds before the member is written."""
    rewritten = wheel.with_suffix(".tmp")
    with zipfile.ZipFile(wheel) as source, zipfile.ZipFile(rewritten, "w") as target:
        for info in source.infolist():
            data = source.read(info)
            if info.filename == member:
                data = bytes(reversed(data.upper()))
                assert len(data) == info.file_size
            target.writestr(info, data)
    rewritten.replace(wheel)


def _second_version(directory: Path, files: dict[str, bytes]) -> Path:
    spec = WheelSpec(
        name="torch",
        version="2.0.2",
        files={"torch/__init__.py": b"VERSION = '2.0.2'\n", "torch/run.py": RUN_PY, **files},
        requires=TORCH.requires,
        extra_dist_info={"entry_points.txt": ENTRY_POINTS},
    )
    directory.mkdir(exist_ok=True)
    return build_wheel(directory, spec)


def _installed_v1(wheelhouse: Wheelhouse, tmp_path: Path) -> Venv:
    venv = make_venv(tmp_path / "venv")
    wheelpatch_install(wheelhouse, "--python", venv.python, "--no-deps", wheelhouse.torch)
    assert venv.inspect()["version"] == PATCHED
    return venv


def _assert_v1_intact(venv: Venv, before: dict[str, Any]) -> None:
    assert changed(before, tree(venv.root)) == []
    info = venv.inspect()
    assert (info["version"], info["module"]) == (PATCHED, VERSION)
    assert run(venv.bin / "torchrun").stdout == "torchrun ok\n"
    assert_record_true(venv.dist_info("torch", PATCHED))


def test_hash_mismatch_midway_keeps_the_installed_version(
    wheelhouse: Wheelhouse, tmp_path: Path
) -> None:
    venv = _installed_v1(wheelhouse, tmp_path)
    # 300 members of one size, so they are written in archive order, in several batches;
    # mod_150 does not match its RECORD hash.
    modules = {f"torch/mod_{i:03d}.py": f"X = {i:03d}\n".encode() for i in range(300)}
    wheel = _second_version(tmp_path / "v2", modules)
    bad = "torch/mod_150.py"
    _corrupt(wheel, bad)
    # Reading and planning accept it (member data is only checked as it is written).
    planned = wheelpatch_install(
        wheelhouse, "--python", venv.python, "--no-deps", "--dry-run", wheel
    )
    assert f"would install torch 2.0.2+{LABEL} (patched from 2.0.2)\n    removed " in planned.stdout
    before = tree(venv.root)
    result = wheelpatch_install(wheelhouse, "--python", venv.python, "--no-deps", wheel, expect=1)
    lines = _error_lines(result.stderr)
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), result.stderr
    assert f"'{bad}'" in lines[0]
    assert "RECORD" in lines[0]
    _assert_v1_intact(venv, before)


def _error_lines(stderr: str) -> list[str]:
    """stderr's lines. The triton table is no misspelling, though only torch is installed: torch
    requires triton (before the override removes it), so no warning names it."""
    lines = stderr.splitlines()
    assert not [line for line in lines if "overrides.triton" in line], stderr
    return lines


def _small_disk() -> None:
    """In the child before exec: files may not grow past 8 MiB (EFBIG, as on a full disk)."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (8 << 20, 8 << 20))


def test_full_disk_midway_keeps_the_installed_version(
    wheelhouse: Wheelhouse, tmp_path: Path
) -> None:
    venv = _installed_v1(wheelhouse, tmp_path)
    modules = {f"torch/mod_{i:03d}.py": f"X = {i:03d}\n".encode() for i in range(100)}
    wheel = _second_version(tmp_path / "v2", {**modules, "torch/_C.so": bytes(24 << 20)})
    before = tree(venv.root)
    result = wheelpatch_install(
        wheelhouse, "--python", venv.python, "--no-deps", wheel, expect=3, preexec_fn=_small_disk
    )
    lines = _error_lines(result.stderr)
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), result.stderr
    assert "File too large" in lines[0]
    assert "rolled back" in lines[0]
    _assert_v1_intact(venv, before)


def test_full_disk_error_names_what_could_not_be_written(
    wheelhouse: Wheelhouse, tmp_path: Path
) -> None:
    """Like every other error (see wheelpatch.errors, and ``wheelpatch patch``'s "PATH: cannot
    write (File too large)"), the one-line message says where: the wheel or the file."""
    venv = make_venv(tmp_path / "venv")
    wheel = _second_version(tmp_path / "v2", {"torch/_C.so": bytes(24 << 20)})
    before = tree(venv.root)
    result = wheelpatch_install(
        wheelhouse, "--python", venv.python, "--no-deps", wheel, expect=3, preexec_fn=_small_disk
    )
    assert changed(before, tree(venv.root)) == []
    lines = _error_lines(result.stderr)
    assert len(lines) == 1, result.stderr
    assert wheel.name in lines[0] or "_C.so" in lines[0], lines[0]


# --- other layouts, dry run, concurrency --------------------------------------------------------


def _files(root: Path) -> set[str]:
    """Relative paths of every file below ``root``; a ``.dist-info`` directory stands for its
    contents, with ``+label`` dropped from its name (to compare with pip's)."""
    files = set()
    for path in root.rglob("*"):
        parts = path.relative_to(root).parts
        for depth, part in enumerate(parts):
            if part.endswith(".dist-info"):
                files.add("/".join([*parts[:depth], part.replace(f"+{LABEL}", "")]))
                break
        else:
            if path.is_file():
                files.add("/".join(parts))
    return files


def test_target_layout_matches_pip(wheelhouse: Wheelhouse, index: Index, tmp_path: Path) -> None:
    """``--target DIR`` (pip resolving for a target directory): files land exactly where
    ``pip install --target`` puts the same projects, and ``PYTHONPATH=DIR`` imports them. Without
    ``--python`` the interpreter is the one running wheelpatch; its own environment is untouched
    (pip isolates a target from the packages installed there)."""
    ours, theirs = tmp_path / "wheelpatch", tmp_path / "pip"
    own_site = Path(sysconfig.get_paths()["purelib"])
    own_before = sorted(os.listdir(own_site))
    wheelpatch_install(
        wheelhouse, "--target", ours, "--index-url", index.simple, f"torch=={VERSION}"
    )
    pip(
        "install", "--target", theirs, "--no-deps", "--index-url", index.simple,
        *(f"{n}=={public(v)}" for n, v in RESOLVED.items()),
    )  # fmt: skip
    assert sorted(os.listdir(own_site)) == own_before
    assert _files(ours) == _files(theirs)
    assert "torch/__init__.py" in _files(ours)
    assert "bin/torchrun" in _files(ours)
    assert (ours / f"torch-{PATCHED}.dist-info" / "wheelpatch.json").is_file()
    assert not (ours / "triton").exists()
    _assert_runs_from(ours, ours / "bin" / "torchrun", tmp_path)


def test_prefix_layout(wheelhouse: Wheelhouse, tmp_path: Path) -> None:
    """``--prefix DIR``: the running interpreter's ``posix_prefix`` scheme under DIR, as pip lays
    it out. (Wheel files with ``--no-deps``: pip's own ``--prefix`` resolution counts the running
    interpreter's packages as installed, which would make the outcome depend on them.)"""
    prefix = tmp_path / "prefix"
    wheels = [wheelhouse.file(n, v) for n, v in RESOLVED.items()]
    wheelpatch_install(wheelhouse, "--prefix", prefix, "--no-deps", *wheels)
    site = f"lib/{PY}/site-packages"
    files = _files(prefix)
    for name, version in RESOLVED.items():
        assert f"{site}/{name}/__init__.py" in files
        assert f"{site}/{name}/__pycache__/__init__.{CACHE_TAG}.pyc" in files
        assert f"{site}/{name}-{public(version)}.dist-info" in files
    assert f"{site}/torch/run.py" in files
    assert "bin/torchrun" in files
    # Per project __init__.py, its bytecode and the dist-info; torch's run.py and its bytecode;
    # the script. Nothing else.
    assert len(files) == 4 * 3 + 2 + 1
    _assert_runs_from(prefix / site, prefix / "bin" / "torchrun", tmp_path)


def _assert_runs_from(site: Path, script: Path, cwd: Path) -> None:
    """The patched torch imports from ``site`` on PYTHONPATH and its console script runs."""
    shebang = script.read_bytes().split(b"\n", 1)[0].decode()
    assert Path(shebang.removeprefix("#!")).resolve() == Path(sys.executable).resolve()
    env = {**ENV, "PYTHONPATH": str(site)}
    info = json.loads(run(sys.executable, "-c", INSPECT, env=env, cwd=cwd).stdout)
    assert (info["version"], Path(info["file"])) == (PATCHED, site / "torch" / "__init__.py")
    assert run(script, env=env, cwd=cwd).stdout == "torchrun ok\n"


def test_dry_run_writes_nothing(wheelhouse: Wheelhouse, index: Index, tmp_path: Path) -> None:
    venv = make_venv(tmp_path / "venv")
    before = tree(venv.root)
    result = wheelpatch_install(
        wheelhouse, *from_index(index, venv, "--dry-run", f"torch=={VERSION}")
    )
    assert sorted(result.stdout.splitlines()) == sorted(
        [
            f"would install torch {PATCHED} ({PATCH_SUMMARY})",
            *CHANGE_LINES,
            "would install filelock 3.13.1",
            "would install sympy 1.13.3",
            "would install mpmath 1.3.0",
            f"would install 4 wheel(s), 1 patched into {venv.root}",
        ]
    )
    assert changed(before, tree(venv.root)) == []


def test_two_concurrent_installs_into_one_venv(wheelhouse: Wheelhouse, tmp_path: Path) -> None:
    """Two runs writing the same four wheels at once (given as files, so neither waits for pip):
    the environment lock puts one after the other, and the result is one consistent install."""
    venv = make_venv(tmp_path / "venv")
    wheels = [wheelhouse.file(n, v) for n, v in RESOLVED.items()]
    command = install_cmd(wheelhouse, "--python", venv.python, "--no-deps", *wheels)
    processes = [
        subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=ENV,
            cwd=tmp_path,
        )
        for _ in range(2)
    ]
    outputs = [process.communicate(timeout=180) for process in processes]
    for process, (out, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, f"--- stdout ---\n{out}\n--- stderr ---\n{err}"
    assert venv.dist_infos() == sorted(f"{n}-{v}.dist-info" for n, v in RESOLVED.items())
    for name, version in RESOLVED.items():
        listed = assert_record_true(venv.dist_info(name, version))
        assert {p for p in (venv.site / name).rglob("*") if p.is_file()} <= listed
    assert [p.name for p in venv.root.iterdir() if p.name.startswith(".wheelpatch")] == []
    assert pip("--python", venv.python, "check").stdout == "No broken requirements found.\n"
    assert venv.inspect()["version"] == PATCHED


# --- the other way: patch, publish to a private index, install with plain pip ------------------


def test_patched_wheel_published_to_private_index(
    wheelhouse: Wheelhouse, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "patched"
    code = wheelpatch_main(
        ["patch", "--config", str(wheelhouse.config), "-o", str(out), str(wheelhouse.torch)]
    )
    assert code == 0, capsys.readouterr()
    patched = out / f"torch-{PATCHED}-{TAG}.whl"
    assert [p.name for p in out.iterdir()] == [patched.name]
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    with pypiserver(uploads) as private:
        run(
            sys.executable, "-m", "twine", "upload", "--non-interactive", "--disable-progress-bar",
            "--config-file", os.devnull, "--repository-url", f"{private.url}/", "-u", "x",
            "-p", "x", patched,
        )  # fmt: skip
        assert (uploads / patched.name).read_bytes() == patched.read_bytes()
        venv = make_venv(tmp_path / "venv")
        result = pip(
            "--python", venv.python, "install", "--index-url", private.simple, "--no-deps",
            f"torch=={PATCHED}",
        )  # fmt: skip
    assert f"Successfully installed torch-{PATCHED}" in result.stdout
    assert venv.dist_infos() == [f"torch-{PATCHED}.dist-info"]
    dist_info = venv.dist_info("torch", PATCHED)
    assert (dist_info / "INSTALLER").read_text() == "pip\n"
    assert json.loads((dist_info / "wheelpatch.json").read_text())["source"] == {
        "filename": TORCH_WHEEL,
        "sha256": sha256(wheelhouse.torch),
    }
    info = venv.inspect()
    assert (info["version"], info["requires"]) == (PATCHED, ["filelock", "sympy>=1.13"])


# --- errors -------------------------------------------------------------------------------------


def test_unknown_requirement_exits_4(wheelhouse: Wheelhouse, index: Index, tmp_path: Path) -> None:
    venv = make_venv(tmp_path / "venv")
    before = tree(venv.root)
    result = wheelpatch_install(
        wheelhouse, *from_index(index, venv, "no-such-project==1.0"), expect=4
    )
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: pip could not resolve"), result.stderr
    assert "no-such-project" in lines[0]
    assert result.stdout == ""
    assert changed(before, tree(venv.root)) == []


def test_missing_wheel_file_exits_2(
    wheelhouse: Wheelhouse,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """In-process: ``main(argv)`` returns the exit code and touches nothing."""
    hermetic = hermetic_env()
    for key in set(os.environ) - set(hermetic):
        monkeypatch.delenv(key)
    for key, value in hermetic.items():
        monkeypatch.setenv(key, value)
    venv = make_venv(tmp_path / "venv")
    before = tree(venv.root)
    missing = tmp_path / "torch-9.9-py3-none-any.whl"
    argv = ["--config", str(wheelhouse.config), "--python", str(venv.python), str(missing)]
    capsys.readouterr()
    assert install_main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == f"error: {missing}: no such wheel file\n"
    assert changed(before, tree(venv.root)) == []


# --- wheelpatch installed by uv, with no pip of the environment's own -------------------------


REPO = Path(__file__).resolve().parents[2]


def test_installed_by_uv_resolves_with_its_declared_pip(
    wheelhouse: Wheelhouse, index: Index, tmp_path: Path
) -> None:
    """``uv venv`` seeds no pip; ``uv pip install wheelpatch`` brings pip along, as a declared
    dependency, and wheelpatch-install resolves with it (run for the target with --python).
    Without that pip, it says so in one line."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    run(sys.executable, "-m", "build", "--no-isolation", "--wheel", "--outdir", wheels, REPO)
    wheelhouse_of_installed(["packaging", "installer", "pip", "tomlkit", "pyelftools"], wheels)
    uv = uv_binary()
    root = tmp_path / "uv-venv"
    run(uv, "venv", "--python", sys.executable, root)
    venv = Venv(root)
    assert not (venv.bin / "pip").exists()
    run(uv, "pip", "install", "--python", venv.python, "--no-index", "--find-links", wheels,
        "wheelpatch")  # fmt: skip
    assert any(d.startswith("pip-") for d in venv.dist_infos())
    script = venv.bin / "wheelpatch-install"
    config = ("--config", wheelhouse.config)
    target = make_venv(tmp_path / "target")
    result = run(script, *config, *from_index(index, target, f"torch=={VERSION}"))
    assert result.stdout.splitlines()[-1] == f"installed 4 wheel(s), 1 patched into {target.root}"
    assert target.dist_infos() == sorted(f"{n}-{v}.dist-info" for n, v in RESOLVED.items())
    # The issue's own case: into the environment wheelpatch runs in (no --python).
    itself = run(script, *config, "--index-url", index.simple, f"torch=={VERSION}", cwd=tmp_path)
    assert itself.stdout.splitlines()[-1] == f"installed 4 wheel(s), 1 patched into {root}"
    assert f"torch-{PATCHED}.dist-info" in venv.dist_infos()

    run(uv, "pip", "uninstall", "--python", venv.python, "pip")
    missing = run(
        script, *config, *from_index(index, make_venv(tmp_path / "t2"), "filelock"), expect=2
    )
    assert missing.stdout == ""
    assert missing.stderr == (
        f"error: {venv.python}: the Python wheelpatch-install runs in has no pip, which it needs "
        "to resolve requirements (pip>=22.3 is a dependency of wheelpatch: reinstall "
        "wheelpatch, or install pip beside it); wheel files with --no-deps need no pip\n"
    )


def test_misspelt_override_after_resolution(
    wheelhouse: Wheelhouse, index: Index, tmp_path: Path
) -> None:
    """``[tool.wheelpatch.overrides.pytorch]`` when pip resolves torch: a warning naming the
    table and the close name; with --strict, exit 1 before anything is installed."""
    config = tmp_path / "pyproject.toml"
    config.write_text(CONFIG.replace("overrides.torch]", "overrides.pytorch]"), encoding="utf-8")
    venv = make_venv(tmp_path / "venv")
    before = tree(venv.root)
    argv = [*INSTALL, "--config", config, *from_index(index, venv, f"torch=={VERSION}")]
    message = (
        "tool.wheelpatch.overrides.pytorch: matches no distribution being installed "
        "(did you mean 'torch'?)"
    )
    strict = run(*argv, "--strict", expect=1)
    assert (strict.stdout, strict.stderr) == ("", f"error: {message}\n")
    assert changed(before, tree(venv.root)) == []
    result = run(*argv)
    assert result.stderr == f"warning: {message}\n"
    # Unpatched: triton and the nvidia package come along, and triton's override applies.
    assert "installed torch 2.0.1\n" in result.stdout
    assert "triton-2.0.0+stripe.2.dist-info" in venv.dist_infos()
