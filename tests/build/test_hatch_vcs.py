"""The hatch plugin on a version from git through hatch-vcs (``base-source = "vcs"``).

hatch-vcs's defaults (setuptools-scm's ``guess-next-dev`` and ``node-and-date`` schemes) make a
fork three commits after the tag ``2.2.3`` a dev release of the next version with a local label of
its own, ``2.2.4.dev3+g<node>``; the plugin warns of both. The options the README gives make it
``2.2.3+stripe.2.3.<revision>``, and hatch-vcs's ``version-file`` then holds that version. Real
builds in a temporary git repository, offline, without isolation (hatch-vcs and setuptools-scm
are in the test extras).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from packaging.specifiers import SpecifierSet
from packaging.version import Version

from .test_hatch import dist_info, git, pybuild, warnings_in

PYPROJECT = """\
[build-system]
requires = ["hatchling>=1.21", "hatch-vcs", "wheelpatch"]
build-backend = "hatchling.build"

[project]
name = "urllib3"
requires-python = ">=3.10"
dynamic = ["version"]

[tool.hatch.version]
source = "wheelpatch"
base-source = "vcs"
{raw_options}
[tool.hatch.build.hooks.wheelpatch]

[tool.hatch.build.targets.wheel]
packages = ["src/urllib3"]

[tool.wheelpatch]
local-version = "stripe.{{major}}.{{commits}}.{{revision}}"
"""
#: What the README says to set so that a fork of 2.2.3 is 2.2.3+stripe...
RAW_OPTIONS = """
[tool.hatch.version.raw-options]
version_scheme = "only-version"
local_scheme = "no-local-version"

[tool.hatch.build.hooks.vcs]
version-file = "src/urllib3/_version.py"
"""


def make_repo(path: Path, raw_options: str) -> tuple[Path, str]:
    """A hatch-vcs project tagged ``2.2.3``, then three commits; and the last one's revision."""
    (path / "src" / "urllib3").mkdir(parents=True)
    (path / "pyproject.toml").write_text(PYPROJECT.format(raw_options=raw_options))
    init = path / "src" / "urllib3" / "__init__.py"
    init.write_text('"""A stand-in for a fork of urllib3."""\n')
    git(path, "init", "-q")
    git(path, "add", "-A")
    git(path, "commit", "-qm", "upstream 2.2.3")
    git(path, "tag", "2.2.3")
    for number in range(3):
        with init.open("a") as stream:
            stream.write(f"# our change {number}\n")
        git(path, "commit", "-qam", f"our change {number}")
    return path, git(path, "rev-parse", "--short=7", "HEAD")


def in_label(revision: str) -> str:
    """``revision`` as a label segment: PEP 440 drops the leading zeros of one of digits only."""
    local = Version(f"0+{revision}").local
    assert local is not None
    return local


def test_hatch_vcs_defaults_warn(tmp_path: Path) -> None:
    repo, revision = make_repo(tmp_path / "urllib3", "")
    out = tmp_path / "dist"
    output = pybuild("--wheel", "--outdir", out, repo)
    [wheel] = out.glob("*.whl")
    # setuptools-scm's node: 'g' and the commit, abbreviated to a length of its choosing.
    base, label = wheel.name.split("-")[1].split(".stripe.")
    assert base.startswith(f"2.2.4.dev3+g{revision}")
    assert git(repo, "rev-parse", "HEAD").startswith(base.removeprefix("2.2.4.dev3+g"))
    assert label == f"2.3.{in_label(revision)}"
    assert not SpecifierSet("==2.2.3").contains(Version(base))
    assert warnings_in(output) == [
        f"tool.hatch.version.base-source: 'vcs' gives {base}, a dev release: pip prefers "
        "upstream's releases to it and '==' or '<=' pins of a release do not match it; set "
        'version_scheme = "only-version" in tool.hatch.version.raw-options',
        f"tool.hatch.version.base-source: 'vcs' gives {base}, which has a local label already, "
        f"so the build is {base}.stripe.2.3.{in_label(revision)} and pins of '=={base}' do not "
        "match it; "
        'set local_scheme = "no-local-version" in tool.hatch.version.raw-options',
    ]


def test_hatch_vcs_with_the_documented_options(tmp_path: Path) -> None:
    repo, revision = make_repo(tmp_path / "urllib3", RAW_OPTIONS)
    version = f"2.2.3+stripe.2.3.{in_label(revision)}"
    out = tmp_path / "dist"
    output = pybuild("--outdir", out, repo)  # the sdist, then the wheel from it, without git
    assert warnings_in(output) == []
    assert (out / f"urllib3-{version}.tar.gz").is_file()
    wheel = out / f"urllib3-{version}-py3-none-any.whl"
    headers, provenance = dist_info(wheel, version, project="urllib3")
    assert headers["Version"] == version
    assert provenance is not None
    assert provenance["version"] == {"before": "2.2.3", "after": version}
    assert provenance["git"]["describe"] == f"2.2.3-3-g{revision}"
    # hatch-vcs's build hook writes the labelled version, for urllib3.__version__.
    with zipfile.ZipFile(wheel) as archive:
        assert (
            f"__version__ = version = {version!r}" in archive.read("urllib3/_version.py").decode()
        )
    # Pins of upstream's release take it, as they would not take a dev release of the next one.
    for spec in ("==2.2.3", "<=2.2.3"):
        assert SpecifierSet(spec).contains(Version(version))
