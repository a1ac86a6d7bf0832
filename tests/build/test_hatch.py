"""The hatch plugin builds plugin_examples/hatch-fork as its README says, with every frontend.

Each build runs in a subprocess on a copy of the example in a temporary git repository (a tag, then
one more commit), with no network and no build isolation: ``python -m build --no-isolation``,
``pip wheel --no-build-isolation``, ``prepare_metadata_for_build_wheel`` through ``build``, and
``hatch build`` with a build environment filled from a local wheelhouse. Every wheel must have
the same version in its file name, ``.dist-info``, METADATA and provenance, carry the override,
and pass ``wheelpatch verify`` and installer's ``validate_record``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Callable
from email.message import Message
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Any

import pytest
from installer.sources import WheelFile
from packaging.requirements import Requirement
from packaging.version import Version

from wheelpatch.cli.wheelpatch import main

from ..hermetic import hermetic_env
from ..installed_wheels import wheelhouse_of_installed
from ..sboms import SBOM, ancestors, patch_text, validated_sbom

ROOT = Path(__file__).parents[2]
FORK = ROOT / "plugin_examples" / "hatch-fork"
ENV = hermetic_env(PIP_NO_INDEX="1")
OVERRIDE = "tool.wheelpatch.overrides.tensorfork"
#: What the example's override makes of the upstream requirements.
REQUIRES = ["filelock", "numpy>=1.24", "sympy"]


def git(repo: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args],
        check=True,
        capture_output=True,
        text=True,
    )
    return result.stdout.strip()


def make_repo(path: Path, edit: Callable[[str], str] | None = None, *, tag: bool = True) -> Path:
    """A copy of the example in a git repository: tag ``v2.0.1``, then one more commit."""
    shutil.copytree(FORK, path)
    if edit is not None:
        config = path / "pyproject.toml"
        config.write_text(edit(config.read_text()))
    git(path, "init", "-q")
    git(path, "add", "-A")
    git(path, "commit", "-qm", "fork of upstream 2.0.1")
    if tag:
        git(path, "tag", "v2.0.1")
    with (path / "src" / "tensorfork" / "__init__.py").open("a") as stream:
        stream.write("# our change\n")
    git(path, "commit", "-qam", "our change")
    return path


def expected_version(repo: Path) -> str:
    """The fork's labelled version one commit after the tag, normalized as PEP 440 does (a
    revision of digits only, such as ``0610709``, loses its leading zero)."""
    revision = git(repo, "describe", "--tags", "--long").rsplit("-g", 1)[1]
    return str(Version(f"2.0.1+stripe.2.1.{revision}"))


def run(
    *args: str | Path,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    stdout_only: bool = False,
) -> str:
    """Run a command; fail the test with its output unless it succeeds. Returns its output."""
    result = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=env or ENV,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout if stdout_only else result.stdout + result.stderr


def pybuild(*args: str | Path, env: dict[str, str] | None = None) -> str:
    """``python -m build --no-isolation ARGS``: the frontend, in this environment, offline."""
    return run(sys.executable, "-m", "build", "--no-isolation", *args, env=env)


def dist_info(
    wheel: Path, version: str, project: str = "tensorfork"
) -> tuple[Message, dict[str, Any] | None]:
    """METADATA's headers and the provenance (``None`` if there is none) of a built wheel."""
    with zipfile.ZipFile(wheel) as archive:
        headers = BytesHeaderParser().parsebytes(
            archive.read(f"{project}-{version}.dist-info/METADATA")
        )
        name = f"{project}-{version}.dist-info/wheelpatch.json"
        provenance = json.loads(archive.read(name)) if name in archive.namelist() else None
    return headers, provenance


def check_wheel(wheel: Path, version: str) -> tuple[bytes, dict[str, Any]]:
    """The wheel's name, .dist-info, METADATA and provenance agree on ``version``; the override
    is applied; wheelpatch verify and installer accept it. Returns METADATA and provenance."""
    assert wheel.name == f"tensorfork-{version}-py3-none-any.whl"
    dist_info = f"tensorfork-{version}.dist-info"
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = archive.read(f"{dist_info}/METADATA")
        provenance = json.loads(archive.read(f"{dist_info}/wheelpatch.json"))
        sbom = validated_sbom(archive.read(f"{dist_info}/{SBOM}"))
    assert {name.split("/")[0] for name in names} == {"tensorfork", dist_info}
    # A build has no ancestor: its git commit is the pedigree, its override the patch.
    [component] = ancestors(sbom)
    assert component["version"] == version
    assert component["purl"] == f"pkg:pypi/tensorfork@{version.replace('+', '%2B')}"
    assert sbom["metadata"]["lifecycles"] == [{"phase": "build"}]
    git_info = provenance["git"]
    assert component["pedigree"]["commits"] == [{"uid": git_info["commit"]}]
    properties = {p["name"]: p["value"] for p in component["properties"]}
    assert properties["wheelpatch:git-describe"] == git_info["describe"]
    assert properties["wheelpatch:git-dirty"] == ("true" if git_info["dirty"] else "false")
    removed_lines = {line for line in patch_text(component).splitlines() if line[:1] == "-"}
    assert removed_lines == {
        f"-{c['field']}: {c['before']}" for c in provenance["changes"] if c["before"] is not None
    }
    [issue] = component["pedigree"]["patches"][0]["resolves"]
    assert issue["id"] == OVERRIDE
    headers = BytesHeaderParser().parsebytes(metadata)
    assert headers["Version"] == version
    assert headers.get_all("Requires-Dist") == REQUIRES
    assert headers.get_all("Provides-Extra") == ["cuda"]
    assert provenance["version"] == {"before": "2.0.1", "after": version}
    assert provenance["project"] == "tensorfork"
    assert provenance["config"]["override"] == OVERRIDE
    assert provenance["changes"][0]["rule"] == "tool.wheelpatch.local-version"
    removed = {c["before"] for c in provenance["changes"] if c["action"] == "remove"}
    assert removed == {
        "triton==2.0.0; platform_system == 'Linux' and platform_machine == 'x86_64'",
        'nvidia-cudnn-cu12==8.9.2.26; extra == "cuda"',
        'nvidia-cublas-cu12==12.1.3.1; extra == "cuda"',
    }
    assert main(["verify", str(wheel)]) == 0
    with WheelFile.open(wheel) as source:
        source.validate_record()
    return metadata, provenance


def test_python_build_sdist_then_wheel(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "tensorfork")
    version = expected_version(repo)
    out = tmp_path / "dist"
    pybuild("--outdir", out, repo)
    sdist = out / f"tensorfork-{version}.tar.gz"
    [wheel] = out.glob("*.whl")
    _, provenance = check_wheel(wheel, version)
    assert provenance["git"] == {
        "describe": git(repo, "describe", "--tags", "--long"),
        "commit": git(repo, "rev-parse", "HEAD"),
        "dirty": False,
    }
    assert provenance["build"]["from-sdist"] is True  # build makes the wheel from the sdist
    assert provenance["build"]["target"] == "wheel"
    with tarfile.open(sdist) as archive:
        pkg_info = archive.extractfile(f"tensorfork-{version}/PKG-INFO")
        recorded = archive.extractfile(f"tensorfork-{version}/.wheelpatch.json")
        assert pkg_info is not None
        assert recorded is not None
        headers = BytesHeaderParser().parsebytes(pkg_info.read())
        sdist_provenance = json.loads(recorded.read())
    assert headers["Version"] == version
    assert headers.get_all("Requires-Dist") == REQUIRES
    assert sdist_provenance["build"]["target"] == "sdist"
    assert sdist_provenance["git"] == provenance["git"]
    assert sdist_provenance["changes"] == provenance["changes"]


def test_pip_wheel_and_prepare_metadata_agree(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = make_repo(tmp_path / "tensorfork")
    version = expected_version(repo)
    out = tmp_path / "wheels"
    run(sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "-w", out, repo)
    [wheel] = out.glob("*.whl")
    metadata, provenance = check_wheel(wheel, version)
    assert provenance["build"]["from-sdist"] is False
    assert provenance["git"]["commit"] == git(repo, "rev-parse", "HEAD")
    # What pip reads before building: the same version and requirements, byte for byte.
    prepared = tmp_path / "prepared"
    script = (
        "import build, sys; print(build.ProjectBuilder(sys.argv[1]).metadata_path(sys.argv[2]))"
    )
    path = Path(run(sys.executable, "-c", script, repo, prepared).strip().splitlines()[-1])
    assert path.name == f"tensorfork-{version}.dist-info"
    assert (path / "METADATA").read_bytes() == metadata
    capsys.readouterr()
    assert main(["show", str(wheel)]) == 0
    shown = capsys.readouterr().out
    assert "Provenance: built by hatchling " in shown
    assert f"git {provenance['git']['describe']}" in shown
    assert "removed Requires-Dist: triton==2.0.0" in shown
    assert f"  1. built by hatchling {provenance['build']['hatchling']} from git " in shown
    # The fork's wheel patched in turn: its ancestor is the build, which names its commit.
    config = tmp_path / "patch.toml"
    config.write_text('[tool.wheelpatch]\nlocal-version = "site.1"\n'
                      '[tool.wheelpatch.overrides.tensorfork]\nadd = ["packaging"]\n')  # fmt: skip
    patched_dir = tmp_path / "patched"
    assert main(["patch", "--config", str(config), "-o", str(patched_dir), str(wheel)]) == 0
    [patched] = patched_dir.glob("*.whl")
    patched_info = f"tensorfork-{version}.site.1.dist-info"
    with zipfile.ZipFile(patched) as archive:
        component, built = ancestors(validated_sbom(archive.read(f"{patched_info}/{SBOM}")))
        history = json.loads(archive.read(f"{patched_info}/wheelpatch.json"))["history"]
    assert built["hashes"][0]["content"] == hashlib.sha256(wheel.read_bytes()).hexdigest()
    assert built["pedigree"]["commits"] == [{"uid": git(repo, "rev-parse", "HEAD")}]
    assert component["version"] == f"{version}.site.1"
    assert "+Requires-Dist: packaging\n" in patch_text(component)
    assert history == [{k: v for k, v in provenance.items() if k != "history"}]


def test_uv_build_then_uv_and_pip_install(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "tensorfork")
    version = expected_version(repo)
    uv = shutil.which("uv", path=os.path.dirname(sys.executable))
    assert uv is not None, "uv is in the test extras"
    out = tmp_path / "dist"
    run(uv, "build", "--no-build-isolation", "--python", sys.executable, "--out-dir", out, repo)
    [wheel] = out.glob("*.whl")
    _, provenance = check_wheel(wheel, version)
    assert provenance["build"]["from-sdist"] is True  # uv builds the wheel from its sdist
    for installer in ("uv", "pip"):
        venv = tmp_path / f"venv-{installer}"
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
        python = venv / "bin" / "python"
        if installer == "uv":
            run(uv, "pip", "install", "--python", python, "--no-deps", wheel)
        else:
            run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", wheel)
        script = (
            "import importlib.metadata as m, json, tensorfork; "
            "print(json.dumps([m.version('tensorfork'), m.requires('tensorfork'), "
            "tensorfork.__version__]))"
        )
        shown = json.loads(run(python, "-c", script, stdout_only=True))
        # The regex source reads __version__ and leaves the file as it is: no label there.
        assert shown == [version, REQUIRES, "2.0.1"]


@pytest.mark.parametrize("sdist_hook", [True, False], ids=["sdist-records", "wheel-hook-only"])
def test_sdist_builds_the_same_wheel_elsewhere_without_git(
    tmp_path: Path, sdist_hook: bool
) -> None:
    edit = None
    if not sdist_hook:  # the build hook for wheels only: the sdist carries no provenance
        edit = _replace(
            "[tool.hatch.build.hooks.wheelpatch]",
            "[tool.hatch.build.targets.wheel.hooks.wheelpatch]",
        )
    repo = make_repo(tmp_path / "tensorfork", edit)
    version = expected_version(repo)
    pybuild("--sdist", "--outdir", tmp_path, repo)
    elsewhere = tmp_path / "elsewhere"
    with tarfile.open(tmp_path / f"tensorfork-{version}.tar.gz") as archive:
        archive.extractall(elsewhere, filter="data")
    unpacked = elsewhere / f"tensorfork-{version}"
    # No git on PATH: the plugin must not need it (a call would fail: "git is not installed").
    env = {**ENV, "PATH": str(tmp_path / "no-tools"), "GIT_DIR": str(tmp_path / "no-repo")}
    out = tmp_path / "dist"
    pybuild(
        "--wheel",
        "--outdir",
        out,
        unpacked,
        env=env,
    )
    [wheel] = out.glob("*.whl")
    if sdist_hook:
        _, provenance = check_wheel(wheel, version)
        assert provenance["git"]["commit"] == git(repo, "rev-parse", "HEAD")
    else:
        _, recorded = dist_info(wheel, version)
        assert recorded is not None
        provenance = recorded
        # Nothing is known of how the sdist's fields came about, and nothing is made up.
        assert provenance["git"] is None
        assert provenance["changes"] == []
        assert provenance["version"] == {"before": version, "after": version}
        assert main(["verify", str(wheel)]) == 0
    assert provenance["build"]["from-sdist"] is True


def test_sdist_whose_edited_dependencies_are_empty(tmp_path: Path) -> None:
    """PKG-INFO then has no Requires-Dist, so hatchling leaves ``dependencies`` dynamic and runs the
    hook on the unpacked sdist, with ``optional-dependencies`` already taken from PKG-INFO."""

    def edit(text: str) -> str:
        text = text.replace('remove = ["triton", "nvidia-*"]', 'remove = ["*"]')
        text = text.replace('relax = ["sympy"]\n', "").replace('add = ["numpy>=1.24"]\n', "")
        return text

    repo = make_repo(tmp_path / "tensorfork", edit)
    version = expected_version(repo)
    out = tmp_path / "dist"
    pybuild("--outdir", out, repo)
    [wheel] = out.glob("*.whl")
    headers, provenance = dist_info(wheel, version)
    assert provenance is not None
    assert headers.get_all("Requires-Dist") is None
    assert headers.get_all("Provides-Extra") == ["cuda"]
    assert provenance["build"]["from-sdist"] is True
    assert len([c for c in provenance["changes"] if c["action"] == "remove"]) == 5


def test_override_versions_match_the_version_before_the_label(tmp_path: Path) -> None:
    """A base version with a local label of its own (``2.0.1+cpu``): ``versions = "==2.0.1+cpu"``
    is matched against it, not against the labelled ``2.0.1+cpu.stripe...``."""

    def edit(text: str) -> str:
        return text.replace("[tool.wheelpatch.overrides.tensorfork]\n", (
            "[tool.wheelpatch.overrides.tensorfork]\nversions = \"==2.0.1+cpu\"\n"
        ))  # fmt: skip

    repo = tmp_path / "tensorfork"
    make_repo(repo, edit)
    init = repo / "src" / "tensorfork" / "__init__.py"
    init.write_text(init.read_text().replace('"2.0.1"', '"2.0.1+cpu"'))
    git(repo, "commit", "-qam", "a CPU build")
    revision = git(repo, "describe", "--tags", "--long").rsplit("-g", 1)[1]
    version = str(Version(f"2.0.1+cpu.stripe.2.2.{revision}"))
    out = tmp_path / "dist"
    pybuild("--outdir", out, repo)
    [wheel] = out.glob("*.whl")
    assert wheel.name == f"tensorfork-{version}-py3-none-any.whl"
    headers, _ = dist_info(wheel, version)
    assert headers.get_all("Requires-Dist") == REQUIRES


def test_builds_are_reproducible(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "tensorfork")
    env = {**ENV, "SOURCE_DATE_EPOCH": "1700000000"}
    wheels = []
    for attempt in ("first", "second"):
        out = tmp_path / attempt
        pybuild(
            "--wheel",
            "--outdir",
            out,
            repo,
            env=env,
        )
        [wheel] = out.glob("*.whl")
        wheels.append(wheel.read_bytes())
    assert wheels[0] == wheels[1]
    _, provenance = check_wheel(tmp_path / "first" / wheel.name, expected_version(repo))
    assert provenance["created"] == "2023-11-14T22:13:20Z"


def test_dirty_tree_keeps_the_label_and_says_so(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "tensorfork")
    with (repo / "src" / "tensorfork" / "__init__.py").open("a") as stream:
        stream.write("# not committed\n")
    out = tmp_path / "dist"
    output = pybuild("--wheel", "--outdir", out, repo)
    [wheel] = out.glob("*.whl")
    _, provenance = check_wheel(wheel, expected_version(repo))
    assert provenance["git"]["dirty"] is True
    assert "uncommitted changes" in output


def warnings_in(output: str) -> list[str]:
    """The plugin's warnings in a build's output."""
    prefix = "wheelpatch: warning: "
    return [line.removeprefix(prefix) for line in output.splitlines() if line.startswith(prefix)]


def test_misspelt_override_table_is_named_with_the_project(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "tensorfork",
        _replace(f"[{OVERRIDE}]", "[tool.wheelpatch.overrides.tensor-fork]"),
    )
    version = expected_version(repo)
    out = tmp_path / "dist"
    output = pybuild("--wheel", "--outdir", out, repo)
    # Once, though the version source and both hooks each plan the build.
    assert warnings_in(output) == [
        "tool.wheelpatch.overrides.tensor-fork: matches nothing in this build of tensorfork "
        "(did you mean 'tensorfork'?)"
    ]
    headers, provenance = dist_info(out / f"tensorfork-{version}-py3-none-any.whl", version)
    assert provenance is not None
    assert provenance["config"]["override"] is None
    assert "triton" in str(headers.get_all("Requires-Dist"))


def test_override_outside_its_versions_is_reported_and_not_recorded(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "tensorfork", _replace(f"[{OVERRIDE}]\n", (
        f'[{OVERRIDE}]\nversions = ">=3"\n'
    )))  # fmt: skip
    version = expected_version(repo)  # the top-level label still applies
    out = tmp_path / "dist"
    output = pybuild("--outdir", out, repo)  # the sdist, then the wheel from it
    message = (
        f"{OVERRIDE}.versions: '>=3' does not match tensorfork 2.0.1, so this override is not "
        "applied"
    )
    assert message in warnings_in(output)
    headers, provenance = dist_info(out / f"tensorfork-{version}-py3-none-any.whl", version)
    assert provenance is not None
    assert provenance["config"]["override"] is None
    assert provenance["config"]["digest"] is None
    assert [change["field"] for change in provenance["changes"]] == ["Version"]
    assert headers.get_all("Requires-Dist") == [
        "filelock",
        "sympy==1.11.1",
        "triton==2.0.0; platform_system == 'Linux' and platform_machine == 'x86_64'",
        "nvidia-cublas-cu12==12.1.3.1; extra == 'cuda'",  # hatchling sorts extras' requirements
        "nvidia-cudnn-cu12==8.9.2.26; extra == 'cuda'",
    ]


def test_add_to_a_project_without_dependencies(tmp_path: Path) -> None:
    """The message names no value to move, and what it says to do works."""

    def edit(text: str) -> str:
        text = text.replace(
            'dynamic = ["version", "dependencies", "optional-dependencies"]',
            'dynamic = ["version", "optional-dependencies"]',
        )
        start = text.index("dependencies = [\n")
        return text[:start] + text[text.index("]\n", start) + 2 :]

    repo = make_repo(tmp_path / "tensorfork", edit)
    assert (
        f"{OVERRIDE}.add[0]: changes project.dependencies, which is not set and not listed in "
        "project.dynamic; list 'dependencies' in project.dynamic, with a "
        "[tool.hatch.metadata.hooks.wheelpatch] table, for the hook to set it"
    ) in failed_build(repo, tmp_path / "failed")
    config = repo / "pyproject.toml"
    config.write_text(config.read_text().replace('["version", "', '["version", "dependencies", "'))
    git(repo, "commit", "-qam", "dependencies are dynamic")
    out = tmp_path / "dist"
    pybuild("--wheel", "--outdir", out, repo)
    [wheel] = out.glob("*.whl")
    headers, _ = dist_info(wheel, wheel.name.split("-")[1])
    assert headers.get_all("Requires-Dist") == ["numpy>=1.24"]


def test_shallow_clone_says_how_to_fetch_the_tag(tmp_path: Path) -> None:
    """CI's default checkout has one commit, and the tag before it is not there."""
    repo = make_repo(tmp_path / "tensorfork")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", "--depth", "1", repo.as_uri(), str(clone))
    assert (
        "tool.wheelpatch.local-version: {tag}/{major}/{commits}/{revision} need git describe: "
        f"'git describe --tags --long --dirty' failed in {clone}: fatal: No names found, cannot "
        "describe anything; the clone is shallow: run 'git fetch --unshallow --tags' first"
    ) in failed_build(clone, tmp_path / "failed")
    git(clone, "fetch", "-q", "--unshallow", "--tags")
    out = tmp_path / "dist"
    pybuild("--wheel", "--outdir", out, clone)
    check_wheel(
        out / f"tensorfork-{expected_version(repo)}-py3-none-any.whl", expected_version(repo)
    )


def test_editable_wheel_has_the_label_and_overrides_but_no_provenance(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "tensorfork")
    version = expected_version(repo)
    out = tmp_path / "editable"
    script = "import sys; from hatchling.build import build_editable; build_editable(sys.argv[1])"
    run(sys.executable, "-c", script, out, cwd=repo)
    [wheel] = out.glob("*.whl")
    assert wheel.name == f"tensorfork-{version}-py3-none-any.whl"
    headers, provenance = dist_info(wheel, version)
    assert provenance is None
    assert headers["Version"] == version
    assert headers.get_all("Requires-Dist") == REQUIRES
    with WheelFile.open(wheel) as source:
        source.validate_record()


def test_editable_build_asks_nothing_of_the_provenance(tmp_path: Path) -> None:
    """An editable build carries no provenance, so what only the provenance refuses (a static
    version with the wheelpatch version source) does not stop it; a wheel build still refuses."""

    def edit(text: str) -> str:
        return _static(hook=False)(text).replace('dynamic = ["version"]', 'version = "2.0.1"')

    repo = make_repo(tmp_path / "tensorfork", edit)
    out = tmp_path / "editable"
    script = "import sys; from hatchling.build import build_editable; build_editable(sys.argv[1])"
    run(sys.executable, "-c", script, out, cwd=repo)
    [wheel] = out.glob("*.whl")
    assert wheel.name == "tensorfork-2.0.1-py3-none-any.whl"
    headers, provenance = dist_info(wheel, "2.0.1")
    assert provenance is None
    assert headers["Version"] == "2.0.1"
    assert STATIC_VERSION in failed_build(repo, tmp_path / "dist")


@pytest.fixture(scope="session")
def build_wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """hatchling, wheelpatch and what they require, as wheels: hatch's build environment is
    installed from here, offline."""
    directory = tmp_path_factory.mktemp("build-wheelhouse")
    pybuild("--wheel", "--outdir", directory, ROOT)
    [built] = directory.glob("wheelpatch-*.whl")
    # What the wheel just built requires (pip among them), as it declares it.
    with WheelFile.open(built) as source:
        metadata = BytesHeaderParser().parsebytes(source.read_dist_info("METADATA").encode())
    required = [Requirement(text) for text in metadata.get_all("Requires-Dist") or []]
    names = [r.name for r in required if r.marker is None or r.marker.evaluate({"extra": ""})]
    wheelhouse_of_installed(["hatchling", *names], directory)
    return directory


@pytest.mark.slow
def test_hatch_build_and_version(tmp_path: Path, build_wheelhouse: Path) -> None:
    repo = make_repo(tmp_path / "tensorfork")
    version = expected_version(repo)
    hatch = shutil.which("hatch", path=os.path.dirname(sys.executable))
    assert hatch is not None, "hatch is in the test extras"
    home = tmp_path / "home"
    env = hermetic_env(
        HOME=str(home),
        HATCH_DATA_DIR=str(home / "data"),
        HATCH_CACHE_DIR=str(home / "cache"),
        UV_FIND_LINKS=str(build_wheelhouse),
        PIP_NO_INDEX="1",
        PIP_FIND_LINKS=str(build_wheelhouse),
        # Anything that tried the network would fail here.
        HTTP_PROXY="http://127.0.0.1:9",
        HTTPS_PROXY="http://127.0.0.1:9",
        ALL_PROXY="http://127.0.0.1:9",
        NO_PROXY="",
        no_proxy="",
    )
    run(hatch, "build", cwd=repo, env=env)
    [wheel] = (repo / "dist").glob("*.whl")
    metadata, provenance = check_wheel(wheel, version)
    assert provenance["build"] == {
        "backend": "hatchling",
        "hatchling": provenance["build"]["hatchling"],
        "target": "wheel",
        "from-sdist": False,
    }
    assert (repo / "dist" / f"tensorfork-{version}.tar.gz").is_file()
    # The same METADATA as pip's build of the same commit.
    out = tmp_path / "pip"
    run(sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "-w", out, repo)
    [pip_wheel] = out.glob("*.whl")
    assert check_wheel(pip_wheel, version)[0] == metadata
    # hatch version: prints the labelled version, writes a new base version without the label.
    assert run(hatch, "version", cwd=repo, env=env, stdout_only=True).strip() == version
    run(hatch, "version", "2.0.2", cwd=repo, env=env)
    assert '__version__ = "2.0.2"' in (repo / "src" / "tensorfork" / "__init__.py").read_text()
    assert run(hatch, "version", cwd=repo, env=env, stdout_only=True).strip() == version.replace(
        "2.0.1+", "2.0.2+"
    )


# --- errors: one line naming the key, no artifact ----------------------------------------------


STATIC_VERSION = (
    "project.version: '2.0.1' is static, so hatchling never asks tool.hatch.version.source "
    "'wheelpatch' and the build would get no label; remove it from [project], list 'version' in "
    "project.dynamic and put the version in the file tool.hatch.version.path names, where the "
    "base source 'regex' reads it"
)


def _static(*, hook: bool) -> Callable[[str], str]:
    """Static dependencies, with the metadata hook left configured (empty) or not at all."""

    def edit(text: str) -> str:
        text = text.replace(
            'dynamic = ["version", "dependencies", "optional-dependencies"]',
            'dynamic = ["version"]\ndependencies = ["triton==2.0.0", "filelock"]',
        )
        text = text.replace("[tool.hatch.metadata.hooks.wheelpatch]", "[tool.upstream]")
        text = text.replace("[tool.hatch.metadata.hooks.wheelpatch.", "[tool.upstream.")
        if hook:
            text += "\n[tool.hatch.metadata.hooks.wheelpatch]\n"
        return text

    return edit


def _replace(old: str, new: str) -> Callable[[str], str]:
    def edit(text: str) -> str:
        assert old in text
        return text.replace(old, new)

    return edit


@pytest.mark.parametrize(
    ("edit", "tag", "message"),
    [
        pytest.param(
            None,
            False,
            "tool.wheelpatch.local-version: {tag}/{major}/{commits}/{revision} need git describe",
            id="no-tag",
        ),
        pytest.param(
            _replace('"stripe.{major}.{commits}.{revision}"', '"Stripe_2.{commits}"'),
            True,
            "tool.wheelpatch.local-version: 'Stripe_2.{commits}' is not a valid local version "
            "label (write it normalized: 'stripe.2.{commits}')",
            id="invalid-label",
        ),
        pytest.param(
            _replace('remove = ["triton", "nvidia-*"]', 'remove = "triton"'),
            True,
            f"{OVERRIDE}.remove: must be a list of strings, e.g. ['triton']",
            id="invalid-override",
        ),
        pytest.param(
            _replace('"sympy==1.11.1",', '"sympy===",'),
            True,
            "tool.hatch.metadata.hooks.wheelpatch.dependencies[1]: 'sympy===' is not a valid "
            "requirement",
            id="invalid-requirement",
        ),
        pytest.param(
            _static(hook=True),
            True,
            f"{OVERRIDE}.remove[0], {OVERRIDE}.add[0]: changes project.dependencies, which is "
            "static; list "
            "'dependencies' in project.dynamic and move its value to "
            "[tool.hatch.metadata.hooks.wheelpatch] dependencies",
            id="static-dependencies",
        ),
        pytest.param(
            _static(hook=False),
            True,
            f"{OVERRIDE}.remove[0], {OVERRIDE}.add[0]: changes project.dependencies, which "
            "is static",
            id="static-dependencies-without-the-hook",
        ),
        pytest.param(
            _replace('source = "wheelpatch"', 'source = "regex"'),
            True,
            "tool.wheelpatch.local-version: a label is configured but [tool.hatch.version] "
            "source is not 'wheelpatch', so the build would not carry it",
            id="label-without-version-source",
        ),
        pytest.param(
            _replace('source = "wheelpatch"', 'source = "wheelpatch"\nbase-source = "nope"'),
            True,
            "tool.hatch.version.base-source: unknown version source 'nope'",
            id="unknown-base-source",
        ),
        pytest.param(
            _replace('dynamic = ["version", ', 'version = "2.0.1"\ndynamic = ['),
            True,
            STATIC_VERSION,
            id="static-version",
        ),
        pytest.param(
            lambda text: _static(hook=False)(text).replace(
                'dynamic = ["version"]', 'version = "2.0.1"'
            ),
            True,
            STATIC_VERSION,
            id="static-version-with-the-build-hook-only",
        ),
        pytest.param(
            _replace(
                "[tool.hatch.metadata.hooks.wheelpatch]\n",
                "[tool.hatch.metadata.hooks.wheelpatch]\nrequires = []\n",
            ),
            True,
            "tool.hatch.metadata.hooks.wheelpatch.requires: unknown key",
            id="unknown-hook-key",
        ),
    ],
)
def test_errors_name_the_key(
    tmp_path: Path, edit: Callable[[str], str] | None, tag: bool, message: str
) -> None:
    repo = make_repo(tmp_path / "tensorfork", edit, tag=tag)
    assert message in failed_build(repo, tmp_path / "dist")


def test_no_git_repository(tmp_path: Path) -> None:
    project = tmp_path / "tensorfork"
    shutil.copytree(FORK, project)
    output = failed_build(project, tmp_path / "dist")
    assert (
        "tool.wheelpatch.local-version: {tag}/{major}/{commits}/{revision} need git describe: "
        in output
    )
    assert "not a git repository" in output


def test_errors_name_hatch_toml_keys(tmp_path: Path) -> None:
    """The plugin's hatch tables may live in hatch.toml (``[version]``, ``[metadata.hooks...]``)."""

    def edit(text: str) -> str:
        text = text.replace('[tool.hatch.version]\nsource = "wheelpatch"\n', "[tool.unused]\n")
        return text.replace('path = "src/tensorfork/__init__.py"\n', "", 1)

    repo = make_repo(tmp_path / "tensorfork", edit)
    (repo / "hatch.toml").write_text(
        '[version]\nsource = "wheelpatch"\nbase-source = "nope"\n'
        'path = "src/tensorfork/__init__.py"\n'
    )
    git(repo, "add", "hatch.toml")
    git(repo, "commit", "-qm", "hatch.toml")
    assert "hatch.toml: version.base-source: unknown version source 'nope'" in failed_build(
        repo, tmp_path / "dist"
    )


def test_a_later_metadata_hook_may_not_undo_the_override(tmp_path: Path) -> None:
    def edit(text: str) -> str:
        return text + "\n[tool.hatch.metadata.hooks.custom]\n"

    repo = make_repo(tmp_path / "tensorfork", edit)
    (repo / "hatch_build.py").write_text(
        "from hatchling.metadata.plugin.interface import MetadataHookInterface\n\n\n"
        "class Hook(MetadataHookInterface):\n"
        "    def update(self, metadata):\n"
        "        metadata['dependencies'] = [*metadata['dependencies'], 'triton']\n"
    )
    git(repo, "add", "hatch_build.py")
    git(repo, "commit", "-qm", "another hook")
    assert (
        "tool.hatch.metadata.hooks: a metadata hook after 'wheelpatch' changed "
        "project.dependencies after the override was applied; put "
        "[tool.hatch.metadata.hooks.wheelpatch] last"
    ) in failed_build(repo, tmp_path / "dist")


def failed_build(project: Path, out: Path) -> str:
    """Build a wheel that must fail; its output. Nothing may be left in ``out``."""
    result = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--wheel", "--outdir", out, project],
        env=ENV,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert not list(out.glob("*.whl"))
    return result.stdout + result.stderr
