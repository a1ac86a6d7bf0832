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

import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement

from wheelpatch.rules.config import read_toml

from .build.test_hatch import FORK, ROOT, check_wheel, expected_version, make_repo
from .hermetic import hermetic_env
from .installed_wheels import runtime_requirements, wheelhouse_of_installed
from .servers import pypi_server
from .test_examples import online_env

pytestmark = pytest.mark.slow


def _build_requires() -> list[str]:
    """The example's ``build-system.requires`` other than wheelpatch (hatchling)."""
    requires = read_toml(FORK / "pyproject.toml")["build-system"]["requires"]
    names = [Requirement(text).name for text in requires]
    assert "wheelpatch" in names
    return [name for name in names if name != "wheelpatch"]


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
    wheelhouse_of_installed([*_build_requires(), *runtime_requirements(wheelpatch)], packages)
    with pypi_server(packages) as (url, log):
        yield Index(packages, f"{url}/simple/", log)


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


ISOLATED = "Isolated builds: where the build finds wheelpatch"
README_URL = "http://127.0.0.1:8080/simple/"
README_DIR = "/srv/wheels"
#: With find-links, these stand in for a PyPI this machine cannot reach.
NO_PYPI = {"PIP_NO_INDEX": "1", "UV_OFFLINE": "1"}


def _console_blocks(readme: Path, heading: str) -> list[list[str]]:
    """The ``$ `` lines of each console block under ``## heading`` in ``readme``."""
    section = readme.read_text(encoding="utf-8").split(f"\n## {heading}\n", 1)[1]
    section = section.split("\n## ", 1)[0]
    blocks = [part.split("\n```", 1)[0] for part in section.split("```console\n")[1:]]
    return [[line[2:] for line in b.splitlines() if line.startswith("$ ")] for b in blocks]


def _frontend(line: str) -> str:
    return next(word for word in line.split() if "=" not in word)


def _cases() -> list[Any]:
    """plugin_examples/hatch-fork/README.md's isolated-build commands, as written there."""
    _serve, with_index, with_find_links = _console_blocks(FORK / "README.md", ISOLATED)
    assert [_frontend(line) for line in with_index] == ["python", "pip", "uv", "hatch"]
    assert [_frontend(line) for line in with_find_links] == ["python", "pip", "uv", "hatch"]
    cases = [pytest.param(line, {}, id=f"index-{_frontend(line)}") for line in with_index]
    cases += [
        pytest.param(line, NO_PYPI, id=f"find-links-{_frontend(line)}") for line in with_find_links
    ]
    # The spelling the README gives in a comment, and uv's preferred one.
    cases.append(pytest.param(f"uv build --default-index {README_URL}", {}, id="index-uv-default"))
    return cases


@pytest.mark.parametrize(("line", "variables"), _cases())
def test_isolated_build_gets_wheelpatch_from_the_team_index(
    tmp_path: Path, index: Index, line: str, variables: dict[str, str]
) -> None:
    """Each command runs in the fork's repository as written in the README, with the README's
    index URL and wheel directory replaced by this test's; the console scripts are this
    environment's (first on PATH)."""
    assert "--no-isolation" not in line
    assert "--no-build-isolation" not in line
    repo = make_repo(tmp_path / "tensorfork")
    version = expected_version(repo)
    command = line.replace(README_URL, index.url).replace(README_DIR, str(index.directory))
    result = _run(["bash", "-c", command], repo, online_env(tmp_path, **variables))
    assert result.returncode == 0, f"{command}:\n{result.stdout}\n{result.stderr}"
    [wheel] = (repo / "dist").glob("*.whl")
    _, provenance = check_wheel(wheel, version)  # the label and the edited requirements
    [served] = index.directory.glob("wheelpatch-*.whl")
    assert provenance["wheelpatch"] == served.name.split("-")[1]


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
