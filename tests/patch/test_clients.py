"""End to end: patched wheels are accepted by real clients (installer, pip, uv, wheel).

Nothing is mocked. Every client runs as it would for a user, offline (``--no-index``), against
wheels built on the fly and patched by the ``wheelpatch`` CLI. Virtual environments are made
without pip (fast) and shared within the module where the tests only read them.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import io
import json
import shlex
import stat
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from installer import install
from installer.destinations import SchemeDictionaryDestination
from installer.sources import WheelFile
from packaging.version import Version

from wheelpatch.cli.wheelpatch import main

from .. import venvs
from ..conftest import WheelSpec, build_wheel
from ..hermetic import hermetic_env

pytestmark = pytest.mark.slow

LABEL = "stripe.2"
OLD_VERSION = "2.1.0"
NEW_VERSION = f"{OLD_VERSION}+{LABEL}"
TAG = "py3-none-any"
PATCHED_TORCH = f"torch-{NEW_VERSION}-{TAG}.whl"
PATCHED_AUDIO = f"torchaudio-{NEW_VERSION}-{TAG}.whl"
SCRIPT = "torch-tool"
SCRIPT_BODY = b"#!python\nimport torch\nprint('torch-tool', torch.VALUE)\n"
NOTES = b"Notes shipped in .data/data.\n"
PYPROJECT = f"""\
[tool.wheelpatch]
local-version = "{LABEL}"

[tool.wheelpatch.overrides.torch]
remove = ["triton"]
replace = ["sympy>=1.12"]
relax = ["networkx"]
add = ["filelock>=3"]
requires-python = ">=3.10"

[tool.wheelpatch.overrides.torchaudio]
remove = ["torch"]
"""

TORCH = WheelSpec(
    name="torch",
    version=OLD_VERSION,
    files={
        "torch/__init__.py": b"VALUE = 1\n",
        "torch/nn/__init__.py": b"from torch.nn.modules import Module\n",
        "torch/nn/modules.py": b"class Module:\n    pass\n",
        "torch/version.py": b"__version__ = '2.1.0'\n",
    },
    data={
        f"scripts/{SCRIPT}": SCRIPT_BODY,
        "data/share/torch/notes.txt": NOTES,
        "purelib/torch/_extra.py": b"EXTRA = 'from .data/purelib'\n",
    },
    requires=(
        'triton==2.0.0; platform_system == "Linux"',
        "torchvision>=0.1",
        'sympy>=1.0; extra == "opt"',
        "networkx==2.0",
        "typing-extensions>=4.8.0",
    ),
    requires_python=">=3.8.0",
    extra_headers=(
        "Summary: Tensors and dynamic neural networks",
        "License: BSD-3-Clause",
        "Provides-Extra: opt",
    ),
    dist_info_position="middle",
    dir_entries=True,
)
#: What METADATA must be after patching: the same document with exactly the configured edits.
TORCH_REQUIRES = [
    "torchvision>=0.1",
    'sympy>=1.12; extra == "opt"',
    "networkx",
    "typing-extensions>=4.8.0",
    "filelock>=3",
]
TORCH_METADATA = WheelSpec(
    name="torch",
    version=NEW_VERSION,
    requires=TORCH_REQUIRES,
    requires_python=">=3.10",
    extra_headers=TORCH.extra_headers,
).metadata_bytes()

AUDIO = WheelSpec(
    name="torchaudio",
    version=OLD_VERSION,
    files={"torchaudio/__init__.py": b"import torchaudio.io\n", "torchaudio/io.py": b"X = 3\n"},
    requires=(
        "Torch==2.1.0",
        'torchvision>=0.16; extra == "vision"',
        'torch-tensorrt>=1.4; platform_system == "Linux"',
        "torchdata",
    ),
    extra_headers=("Summary: Audio for torch", "Provides-Extra: vision"),
)
AUDIO_REQUIRES = [
    'torchvision>=0.16; extra == "vision"',
    'torch-tensorrt>=1.4; platform_system == "Linux"',
    "torchdata",
]
AUDIO_METADATA = WheelSpec(
    name="torchaudio",
    version=NEW_VERSION,
    requires=AUDIO_REQUIRES,
    extra_headers=AUDIO.extra_headers,
).metadata_bytes()
EXPECTED_METADATA = {"torch": TORCH_METADATA, "torchaudio": AUDIO_METADATA}

#: Run in a venv's interpreter: what importlib.metadata sees of an installed distribution.
INSPECT = """\
import importlib.metadata, json, sys
dist = importlib.metadata.distribution(sys.argv[1])
files = dist.files or []
meta = next(f for f in files if f.name == "METADATA")
json.dump(
    {
        "version": dist.version,
        "requires": dist.requires,
        "metadata": dist.read_text("METADATA"),
        "dist_info": str(meta.parent),
        "installer": dist.read_text("INSTALLER"),
        "provenance": json.loads(dist.read_text("wheelpatch.json") or "null"),
    },
    sys.stdout,
)
"""


ENV = hermetic_env()


def run(
    *argv: str | Path, cwd: Path | None = None, expect_failure: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run a command offline with a clean environment; fail the test with its output if it
    does not exit as expected."""
    command = [str(a) for a in argv]
    try:
        result = subprocess.run(
            command,
            check=not expect_failure,
            capture_output=True,
            text=True,
            env=ENV,
            cwd=cwd,
            timeout=180,
        )
    except subprocess.CalledProcessError as exc:
        pytest.fail(
            f"{shlex.join(command)} exited {exc.returncode}\n"
            f"--- stdout ---\n{exc.stdout}\n--- stderr ---\n{exc.stderr}"
        )
    if expect_failure:
        assert result.returncode != 0, (
            f"{shlex.join(command)} unexpectedly succeeded\n"
            f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
        )
    return result


def uv_binary() -> Path:
    """The uv executable that came with the test dependencies (required, never skipped)."""
    from uv import find_uv_bin

    path = Path(find_uv_bin())
    assert path.is_file(), f"uv not found at {path}"
    return path


def pip(*argv: str | Path, expect_failure: bool = False) -> subprocess.CompletedProcess[str]:
    """The pip of the test environment, run as a module (it drives other venvs via --python)."""
    version = Version(importlib.metadata.version("pip"))
    assert version >= Version("22.3"), f"pip {version} has no --python option (needs 22.3)"
    return run(sys.executable, "-m", "pip", *argv, expect_failure=expect_failure)


@dataclass(frozen=True)
class Venv(venvs.Venv):
    def inspect(self, project: str) -> dict[str, Any]:
        out = run(self.python, "-c", INSPECT, project, cwd=self.root)
        data: dict[str, Any] = json.loads(out.stdout)
        return data


def make_venv(root: Path) -> Venv:
    return venvs.make_venv(root, Venv)


def _with_executable_script(wheel: Path) -> Path:
    """Give the ``.data/scripts`` member mode 0755, as build backends do (RECORD is unaffected:
    only the zip entry's attributes change)."""
    script = f"{TORCH.dist_name}-{TORCH.version}.data/scripts/{SCRIPT}"
    rewritten = wheel.with_suffix(".tmp")
    with zipfile.ZipFile(wheel) as source, zipfile.ZipFile(rewritten, "w") as target:
        for info in source.infolist():
            if info.filename == script:
                info.external_attr = (stat.S_IFREG | 0o755) << 16
            target.writestr(info, source.read(info))
    rewritten.replace(wheel)
    return wheel


@dataclass(frozen=True)
class Patched:
    out_dir: Path
    torch: Path
    torchaudio: Path


@pytest.fixture(scope="module")
def patched(tmp_path_factory: pytest.TempPathFactory) -> Patched:
    """Source wheels built in ``sources/`` and patched by the CLI into ``out/``."""
    root = tmp_path_factory.mktemp("clients")
    sources = root / "sources"
    sources.mkdir()
    torch = _with_executable_script(build_wheel(sources, TORCH))
    audio = build_wheel(sources, AUDIO)
    config = root / "pyproject.toml"
    config.write_text(PYPROJECT, encoding="utf-8")
    out_dir = root / "out"
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(["patch", "--config", str(config), "-o", str(out_dir), str(torch), str(audio)])
    assert (code, stderr.getvalue()) == (0, ""), stdout.getvalue()
    assert sorted(p.name for p in out_dir.iterdir()) == [PATCHED_TORCH, PATCHED_AUDIO]
    return Patched(out_dir, out_dir / PATCHED_TORCH, out_dir / PATCHED_AUDIO)


@pytest.fixture(scope="module")
def corrupted(patched: Patched, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the patched torch wheel with one member's bytes changed and RECORD left alone."""
    path = tmp_path_factory.mktemp("corrupted") / PATCHED_TORCH
    with zipfile.ZipFile(patched.torch) as source, zipfile.ZipFile(path, "w") as target:
        for info in source.infolist():
            data = source.read(info)
            if info.filename == "torch/__init__.py":
                data = b"VALUE = 2\n"
            target.writestr(info, data)
    return path


@pytest.fixture(scope="module")
def pip_env(patched: Patched, tmp_path_factory: pytest.TempPathFactory) -> Venv:
    """A fresh venv (no pip inside) into which pip installed both patched wheels."""
    venv = make_venv(tmp_path_factory.mktemp("pip") / "venv")
    result = pip(
        "--python", venv.python, "install", "--no-deps", "--no-index", patched.torch,
        patched.torchaudio,
    )  # fmt: skip
    assert f"Successfully installed torch-{NEW_VERSION} torchaudio-{NEW_VERSION}" in (
        result.stdout
    ), result.stdout
    return venv


@pytest.fixture(scope="module")
def uv_env(patched: Patched, tmp_path_factory: pytest.TempPathFactory) -> Venv:
    """A fresh venv into which uv installed both patched wheels."""
    venv = make_venv(tmp_path_factory.mktemp("uv") / "venv")
    result = run(
        uv_binary(), "pip", "install", "--python", venv.python, "--no-deps", "--no-index",
        "--offline", patched.torch, patched.torchaudio,
    )  # fmt: skip
    assert f" + torch=={NEW_VERSION}" in result.stderr, result.stderr
    assert f" + torchaudio=={NEW_VERSION}" in result.stderr, result.stderr
    return venv


@pytest.fixture(scope="module")
def find_links_env(tmp_path_factory: pytest.TempPathFactory) -> Venv:
    return make_venv(tmp_path_factory.mktemp("find-links") / "venv")


CLIENTS = ["pip", "uv"]
#: The INSTALLER file each client writes into the dist-info directory.
INSTALLER_FILE = {"pip": "pip\n", "uv": "uv"}


def installed(request: pytest.FixtureRequest, client: str) -> Venv:
    venv: Venv = request.getfixturevalue(f"{client}_env")
    return venv


# --- installer -----------------------------------------------------------------------------


@pytest.mark.parametrize("project", ["torch", "torchaudio"])
def test_installer_validates_record_of_patched_wheel(patched: Patched, project: str) -> None:
    path = patched.torch if project == "torch" else patched.torchaudio
    with WheelFile.open(path) as source:
        source.validate_record(validate_contents=True)
        assert source.dist_info_dir == f"{project}-{NEW_VERSION}.dist-info"
        assert source.version == NEW_VERSION
        metadata = source.read_dist_info("METADATA")
    assert metadata.encode() == EXPECTED_METADATA[project]


def test_installer_refuses_corrupted_copy(corrupted: Path) -> None:
    """Control: the same check fails once a member no longer matches RECORD."""
    with WheelFile.open(corrupted) as source, pytest.raises(WheelFile.validation_error) as info:
        source.validate_record(validate_contents=True)
    assert info.value.issues == [
        f"In {corrupted}, hash / size of torch/__init__.py didn't match RECORD"
    ]


def test_installer_installs_every_scheme(patched: Patched, tmp_path: Path) -> None:
    """installer maps ``<name>-<new version>.data/`` to its schemes: the rename is what it
    expects (an unrenamed directory would land in site-packages as a plain folder)."""
    schemes = {
        name: tmp_path / name for name in ("purelib", "platlib", "headers", "scripts", "data")
    }
    destination = SchemeDictionaryDestination(
        {k: str(v) for k, v in schemes.items()},
        interpreter="/opt/python/bin/python3",
        script_kind="posix",
    )
    with WheelFile.open(patched.torch) as source:
        source.validate_record(validate_contents=True)
        install(source, destination, {"INSTALLER": b"installer-test\n"})
    purelib = schemes["purelib"]
    assert sorted(p.name for p in purelib.iterdir()) == ["torch", f"torch-{NEW_VERSION}.dist-info"]
    dist_info = purelib / f"torch-{NEW_VERSION}.dist-info"
    assert (dist_info / "METADATA").read_bytes() == TORCH_METADATA
    assert json.loads((dist_info / "wheelpatch.json").read_text())["version"] == {
        "before": OLD_VERSION,
        "after": NEW_VERSION,
    }
    assert (purelib / "torch" / "_extra.py").read_bytes() == b"EXTRA = 'from .data/purelib'\n"
    assert (schemes["data"] / "share" / "torch" / "notes.txt").read_bytes() == NOTES
    script = (schemes["scripts"] / SCRIPT).read_bytes()
    assert script == SCRIPT_BODY.replace(b"#!python", b"#!/opt/python/bin/python3")


# --- wheel unpack --------------------------------------------------------------------------


def test_wheel_unpack_checks_hashes_and_sees_new_version(patched: Patched, tmp_path: Path) -> None:
    result = run(sys.executable, "-m", "wheel", "unpack", "-d", tmp_path, patched.torch)
    unpacked = tmp_path / f"torch-{NEW_VERSION}"
    assert result.stdout == f"Unpacking to: {unpacked}...OK\n"
    assert sorted(p.name for p in unpacked.iterdir()) == [
        "torch",
        f"torch-{NEW_VERSION}.data",
        f"torch-{NEW_VERSION}.dist-info",
    ]
    dist_info = unpacked / f"torch-{NEW_VERSION}.dist-info"
    assert sorted(p.name for p in dist_info.iterdir()) == [
        "METADATA",
        "RECORD",
        "WHEEL",
        "sboms",
        "wheelpatch.json",
    ]
    assert [p.name for p in (dist_info / "sboms").iterdir()] == ["wheelpatch.cdx.json"]
    assert (dist_info / "METADATA").read_bytes() == TORCH_METADATA
    data = unpacked / f"torch-{NEW_VERSION}.data"
    assert (data / "scripts" / SCRIPT).read_bytes() == SCRIPT_BODY
    assert stat.S_IMODE((data / "scripts" / SCRIPT).stat().st_mode) == 0o755
    assert (data / "data" / "share" / "torch" / "notes.txt").read_bytes() == NOTES


def test_wheel_unpack_refuses_corrupted_copy(corrupted: Path, tmp_path: Path) -> None:
    """Control: ``wheel unpack`` really checks RECORD hashes."""
    result = run(
        sys.executable, "-m", "wheel", "unpack", "-d", tmp_path, corrupted, expect_failure=True
    )
    assert "Hash mismatch for file 'torch/__init__.py'" in result.stderr


# --- pip and uv: install, then read back what they installed --------------------------------


@pytest.mark.parametrize("client", CLIENTS)
def test_installed_metadata_has_exactly_the_configured_changes(
    request: pytest.FixtureRequest, client: str
) -> None:
    venv = installed(request, client)
    info = venv.inspect("torch")
    assert info["version"] == NEW_VERSION
    assert info["requires"] == TORCH_REQUIRES
    assert info["metadata"] == TORCH_METADATA.decode()
    assert info["dist_info"] == f"torch-{NEW_VERSION}.dist-info"
    assert info["installer"] == INSTALLER_FILE[client]
    provenance = info["provenance"]
    assert provenance["version"] == {"before": OLD_VERSION, "after": NEW_VERSION}
    assert provenance["source"]["filename"] == f"torch-{OLD_VERSION}-{TAG}.whl"
    assert [(c["field"], c["action"], c["before"], c["after"]) for c in provenance["changes"]] == [
        ("Version", "set", OLD_VERSION, NEW_VERSION),
        ("Requires-Dist", "remove", 'triton==2.0.0; platform_system == "Linux"', None),
        ("Requires-Dist", "replace", 'sympy>=1.0; extra == "opt"', 'sympy>=1.12; extra == "opt"'),
        ("Requires-Dist", "relax", "networkx==2.0", "networkx"),
        ("Requires-Dist", "add", None, "filelock>=3"),
        ("Requires-Python", "set", ">=3.8.0", ">=3.10"),
    ]


@pytest.mark.parametrize("client", CLIENTS)
def test_removing_torch_leaves_torchvision_and_torch_tensorrt(
    request: pytest.FixtureRequest, client: str
) -> None:
    """``remove = ["torch"]`` compares normalized names: ``Torch==2.1.0`` goes, names that merely
    start with ``torch`` stay."""
    info = installed(request, client).inspect("torchaudio")
    assert info["version"] == NEW_VERSION
    assert info["requires"] == AUDIO_REQUIRES
    assert info["metadata"] == AUDIO_METADATA.decode()
    assert info["dist_info"] == f"torchaudio-{NEW_VERSION}.dist-info"


@pytest.mark.parametrize("client", CLIENTS)
def test_package_imports_and_data_files_land(request: pytest.FixtureRequest, client: str) -> None:
    venv = installed(request, client)
    out = run(
        venv.python,
        "-c",
        "import torch, torch._extra, torch.nn, torchaudio; "
        "print(torch.VALUE, torch._extra.EXTRA, torch.nn.Module.__name__, torchaudio.io.X)",
        cwd=venv.root,
    )
    assert out.stdout == "1 from .data/purelib Module 3\n"
    paths = venv.paths()
    assert Path(paths["data"]) == venv.root
    notes = Path(paths["data"]) / "share" / "torch" / "notes.txt"
    assert notes.read_bytes() == NOTES
    script = Path(paths["scripts"]) / SCRIPT
    assert script.read_bytes().split(b"\n", 1) == [
        f"#!{venv.python}".encode(),
        SCRIPT_BODY.split(b"\n", 1)[1],
    ]
    assert script.stat().st_mode & stat.S_IXUSR
    assert run(script, cwd=venv.root).stdout == "torch-tool 1\n"
    site = Path(paths["purelib"])
    assert not any(p.name.endswith(".data") for p in site.iterdir())


@pytest.mark.parametrize("client", CLIENTS)
def test_show_reports_new_version_and_requirements(
    request: pytest.FixtureRequest, client: str
) -> None:
    venv = installed(request, client)
    if client == "pip":
        out = pip("--python", venv.python, "show", "torch", "torchaudio").stdout
    else:
        out = run(uv_binary(), "pip", "show", "--python", venv.python, "torch", "torchaudio").stdout
    torch, audio = (dict(_fields(block)) for block in out.split("\n---\n"))
    assert (torch["Name"], torch["Version"]) == ("torch", NEW_VERSION)
    # triton is gone (its marker is true here), sympy is only in the "opt" extra.
    assert torch["Requires"] == "filelock, networkx, torchvision, typing-extensions"
    # torchaudio's torch requirement was removed, so nothing requires torch any more.
    assert torch["Required-by"] == ""
    assert (audio["Name"], audio["Version"]) == ("torchaudio", NEW_VERSION)
    assert audio["Requires"] == "torch-tensorrt, torchdata"


def _fields(block: str) -> list[tuple[str, str]]:
    """``Key: value`` lines of one ``pip show`` block (continuation lines skipped)."""
    pairs: list[tuple[str, str]] = []
    for line in block.strip().splitlines():
        key, sep, value = line.partition(":")
        if sep and not line.startswith(" "):
            pairs.append((key, value.strip()))
    return pairs


# --- resolution: a plain pin matches the local label ---------------------------------------


def test_plain_pin_installs_patched_wheel_from_find_links(
    patched: Patched, find_links_env: Venv
) -> None:
    result = pip(
        "--python", find_links_env.python, "install", "--no-deps", "--no-index",
        "--find-links", patched.out_dir, f"torch=={OLD_VERSION}",
    )  # fmt: skip
    assert f"Successfully installed torch-{NEW_VERSION}" in result.stdout, result.stdout
    assert find_links_env.inspect("torch")["version"] == NEW_VERSION


@pytest.mark.parametrize(
    ("requirement", "found"),
    [
        pytest.param(f"torch=={OLD_VERSION}", True, id="plain-pin"),
        pytest.param(f"torch=={NEW_VERSION}", True, id="exact-local"),
        pytest.param("torch~=2.1", True, id="compatible-release"),
        pytest.param("torch>2.1.0", False, id="local-is-not-greater"),
        pytest.param(f"torch=={OLD_VERSION}+cu118", False, id="other-local"),
        pytest.param(f"torch=={OLD_VERSION}+stripe", False, id="label-prefix"),
    ],
)
def test_pip_resolves_specifiers_against_local_label(
    patched: Patched, find_links_env: Venv, requirement: str, found: bool
) -> None:
    argv: list[str | Path] = [
        "--python", find_links_env.python, "install", "--dry-run", "--ignore-installed",
        "--no-deps", "--no-index", "--find-links", patched.out_dir, "--quiet", "--report", "-",
        requirement,
    ]  # fmt: skip
    result = pip(*argv, expect_failure=not found)
    if found:
        report = json.loads(result.stdout)
        assert [
            (
                item["metadata"]["name"],
                item["metadata"]["version"],
                item["download_info"]["url"],
            )
            for item in report["install"]
        ] == [("torch", NEW_VERSION, patched.torch.as_uri())]
    else:
        assert (
            f"Could not find a version that satisfies the requirement {requirement} "
            f"(from versions: {NEW_VERSION})"
        ) in result.stderr, result.stderr


# --- wheelpatch show of another environment ------------------------------------------------------


def test_wheelpatch_show_reads_the_environment_asked_for(uv_env: Venv) -> None:
    """``show --python`` and ``$VIRTUAL_ENV`` find what is installed there; without either, the
    environment wheelpatch runs in (where no torch is) is asked."""
    show = (sys.executable, "-m", "wheelpatch", "show", "--json")
    by_flag = json.loads(run(*show, "--python", uv_env.python, "torch").stdout)
    assert (by_flag["name"], by_flag["version"]) == ("torch", NEW_VERSION)
    assert by_flag["provenance"]["source"]["filename"] == f"torch-{OLD_VERSION}-{TAG}.whl"
    assert by_flag["source"].startswith(str(uv_env.root))
    env = {**ENV, "VIRTUAL_ENV": str(uv_env.root)}
    by_env = subprocess.run(
        [*show, "torch"], capture_output=True, text=True, env=env, check=True, timeout=60
    )
    assert json.loads(by_env.stdout) == by_flag
    here = run(sys.executable, "-m", "wheelpatch", "show", "torch", expect_failure=True)
    assert here.returncode == 1
    assert here.stderr == (
        "error: torch: no such wheel file, and no distribution of that name is installed in the "
        f"environment of {sys.executable}\n"
    )


# --- what plain patch guarantees: an output as sound as its input ---------------------------------


def test_plain_patch_of_a_corrupt_member_is_as_broken_as_its_input(
    patched: Patched, tmp_path: Path
) -> None:
    """The README's promise, checked both ways with installer and ``wheel unpack``: a member
    whose bytes do not match RECORD is copied as it is (no member is decompressed), so installer
    and ``wheel unpack`` reject the output exactly as they reject the input; ``--verify`` refuses
    before writing anything."""
    source = tmp_path / "in" / f"torch-{OLD_VERSION}-{TAG}.whl"
    source.parent.mkdir()
    original = patched.out_dir.parent / "sources" / source.name
    with zipfile.ZipFile(original) as src, zipfile.ZipFile(source, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            dst.writestr(info, b"VALUE = 2\n" if info.filename == "torch/__init__.py" else data)
    config = patched.out_dir.parent / "pyproject.toml"
    wheelpatch = (sys.executable, "-m", "wheelpatch", "patch", "--config", config)
    run(*wheelpatch, "-o", tmp_path / "plain", source)
    output = tmp_path / "plain" / PATCHED_TORCH
    for wheel in (source, output):
        with WheelFile.open(wheel) as opened, pytest.raises(WheelFile.validation_error) as info:
            opened.validate_record(validate_contents=True)
        assert info.value.issues == [
            f"In {wheel}, hash / size of torch/__init__.py didn't match RECORD"
        ]
        unpack = run(
            sys.executable, "-m", "wheel", "unpack", "-d", tmp_path / "u", wheel,
            expect_failure=True,
        )  # fmt: skip
        assert "Hash mismatch for file 'torch/__init__.py'" in unpack.stderr
    refused = run(*wheelpatch, "--verify", "-o", tmp_path / "checked", source, expect_failure=True)
    assert refused.returncode == 1
    assert refused.stderr == (
        "warning: tool.wheelpatch.overrides.torchaudio: matches no wheel given\n"
        f"error: {source.name}: member 'torch/__init__.py' does not match its RECORD hash\n"
    )
    assert not (tmp_path / "checked").exists()


def test_wheelpatch_show_finds_what_the_target_interpreter_finds(tmp_path: Path) -> None:
    """The target's own importlib.metadata is asked, so an ``.egg-info`` distribution (PKG-INFO)
    is found as ``pip list`` finds it; ``--json`` prints a document on a failure too."""
    venv = make_venv(tmp_path / "venv")
    site = Path(venv.paths()["purelib"])
    egg = site / "legacy_dist-1.2.egg-info"
    egg.mkdir()
    (egg / "PKG-INFO").write_text(
        "Metadata-Version: 1.1\nName: legacy-dist\nVersion: 1.2\nRequires-Dist: six\n"
    )
    show = (sys.executable, "-m", "wheelpatch", "show", "--python", venv.python)
    found = json.loads(run(*show, "--json", "legacy-dist").stdout)
    assert (found["name"], found["version"], found["requires_dist"]) == (
        "legacy-dist",
        "1.2",
        ["six"],
    )
    assert found["source"] == str(egg)
    missing = run(*show, "--json", "no-such-dist", expect_failure=True)
    assert missing.returncode == 1
    message = (
        "no-such-dist: no such wheel file, and no distribution of that name is installed in the "
        f"environment of {venv.python}"
    )
    assert json.loads(missing.stdout) == {
        "target": "no-such-dist",
        "error": message,
        "exit_code": 1,
    }
    assert missing.stderr == f"error: {message}\n"
    broken = run(
        sys.executable, "-m", "wheelpatch", "show", "--json", "--python", tmp_path / "nope", "x",
        expect_failure=True,
    )  # fmt: skip
    assert broken.returncode == 2
    assert json.loads(broken.stdout)["exit_code"] == 2
