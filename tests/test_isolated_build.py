"""plugin_examples/hatch-fork builds *with* build isolation, as its README says a team sets it up.

wheelpatch is on no public index, so ``build-system.requires = ["hatchling", "wheelpatch"]`` only
resolves where a team serves wheelpatch itself. Here, as a team would: wheelpatch's wheel is built
from this checkout, put beside hatchling and every distribution hatchling and wheelpatch require
(computed from their metadata, rebuilt offline from this environment's installed distributions),
and served by a real pypiserver on 127.0.0.1. Each frontend then builds the example in a fresh
isolated build environment filled from that index (or from the directory as ``--find-links``)
and nothing else: no machine configuration, no cache, and every non-loopback connection goes to
a dead proxy.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from wheelpatch.config import read_toml

from .hermetic import hermetic_env
from .installed_wheels import wheelhouse_of_installed
from .test_examples import online_env, pypi_server
from .test_hatch_plugin import FORK, ROOT, check_wheel, expected_version, make_repo

pytestmark = pytest.mark.slow


def _build_requires() -> list[str]:
    """The example's ``build-system.requires`` other than wheelpatch (hatchling)."""
    requires = read_toml(FORK / "pyproject.toml")["build-system"]["requires"]
    names = [Requirement(text).name for text in requires]
    assert "wheelpatch" in names
    return [name for name in names if name != "wheelpatch"]


def _runtime_requires(wheel: Path) -> list[str]:
    """Names of what ``wheel`` requires on this interpreter (no extras)."""
    with zipfile.ZipFile(wheel) as archive:
        [metadata] = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        headers = BytesHeaderParser().parsebytes(archive.read(metadata))
    names = []
    for text in headers.get_all("Requires-Dist") or []:
        requirement = Requirement(text)
        if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
            names.append(requirement.name)
    return names


@dataclass(frozen=True)
class Index:
    directory: Path  # the wheels, also usable as --find-links
    url: str  # the PEP 503 simple index serving them
    log: Path


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Index]:
    root = tmp_path_factory.mktemp("isolated-build-index")
    packages = root / "packages"
    packages.mkdir()
    # wheelpatch's own wheel, built from this checkout.
    subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--wheel", "--outdir", packages, ROOT],
        env=hermetic_env(PIP_NO_INDEX="1"),
        check=True,
        capture_output=True,
    )
    [wheelpatch] = packages.glob("wheelpatch-*.whl")
    wheelhouse_of_installed([*_build_requires(), *_runtime_requires(wheelpatch)], packages)
    with pypi_server(packages) as (url, log):
        yield Index(packages, f"{url}/simple/", log)


def _tool(name: str) -> str:
    path = shutil.which(name, path=os.path.dirname(sys.executable))
    assert path is not None, f"{name} is in the test extras"
    return path


def _run(
    argv: list[str | Path], cwd: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )


#: (id, command run in the repository, environment: variables naming the index or find-links).
#: These are the commands of plugin_examples/hatch-fork/README.md, "Isolated builds". With
#: find-links, ``PIP_NO_INDEX`` / ``UV_OFFLINE`` stand in for a PyPI this machine cannot reach.
FRONTENDS = [
    (
        "build-index",
        ["{python}", "-m", "build", "--outdir", "dist", "."],
        {"PIP_INDEX_URL": "{url}"},
    ),
    (
        "pip-wheel-index",
        ["{python}", "-m", "pip", "wheel", "--no-deps", "-w", "dist", "."],
        {"PIP_INDEX_URL": "{url}"},
    ),
    ("uv-build-index", ["{uv}", "build", "--python", "{python}"], {"UV_INDEX_URL": "{url}"}),
    (
        "uv-build-default-index",
        ["{uv}", "build", "--python", "{python}", "--default-index", "{url}"],
        {},
    ),
    (
        "hatch-build-index",
        ["{hatch}", "build"],
        {"PIP_INDEX_URL": "{url}", "UV_INDEX_URL": "{url}"},
    ),
    (
        "build-find-links",
        ["{python}", "-m", "build", "--outdir", "dist", "."],
        {"PIP_FIND_LINKS": "{dir}", "PIP_NO_INDEX": "1"},
    ),
    (
        "pip-wheel-find-links",
        ["{python}", "-m", "pip", "wheel", "--no-deps", "--find-links", "{dir}", "-w", "dist", "."],
        {"PIP_NO_INDEX": "1"},
    ),
    (
        "uv-build-find-links",
        ["{uv}", "build", "--python", "{python}", "--find-links", "{dir}"],
        {"UV_OFFLINE": "1"},
    ),
    (
        "hatch-build-find-links",
        ["{hatch}", "build"],
        {
            "PIP_FIND_LINKS": "{dir}",
            "UV_FIND_LINKS": "{dir}",
            "PIP_NO_INDEX": "1",
            "UV_OFFLINE": "1",
        },
    ),
]


def _fill(text: str, index: Index) -> str:
    return text.format(
        python=sys.executable,
        uv=_tool("uv"),
        hatch=_tool("hatch"),
        url=index.url,
        dir=index.directory,
    )


@pytest.mark.parametrize(
    ("argv", "variables"),
    [pytest.param(argv, variables, id=name) for name, argv, variables in FRONTENDS],
)
def test_isolated_build_gets_wheelpatch_from_the_team_index(
    tmp_path: Path, index: Index, argv: list[str], variables: dict[str, str]
) -> None:
    repo = make_repo(tmp_path / "tensorfork")
    version = expected_version(repo)
    env = online_env(tmp_path, **{k: _fill(v, index) for k, v in variables.items()})
    result = _run([_fill(a, index) for a in argv], repo, env)
    assert result.returncode == 0, f"{argv}:\n{result.stdout}\n{result.stderr}"
    [wheel] = (repo / "dist").glob("*.whl")
    _, provenance = check_wheel(wheel, version)  # the label and the edited requirements
    [served] = index.directory.glob("wheelpatch-*.whl")
    assert provenance["wheelpatch"] == served.name.split("-")[1]
    assert "--no-isolation" not in argv
    assert "--no-build-isolation" not in argv


def test_isolated_build_without_wheelpatch_on_the_index_fails(tmp_path: Path, index: Index) -> None:
    """The failure the README's section is about: the same index without wheelpatch."""
    bare = tmp_path / "bare"
    shutil.copytree(index.directory, bare, ignore=shutil.ignore_patterns("wheelpatch-*"))
    repo = make_repo(tmp_path / "tensorfork")
    env = online_env(tmp_path, PIP_FIND_LINKS=str(bare), PIP_NO_INDEX="1")
    result = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", "dist", "."], repo, env)
    assert result.returncode != 0
    assert "No matching distribution found for wheelpatch" in result.stdout + result.stderr
    assert not list(repo.glob("dist/*.whl"))
