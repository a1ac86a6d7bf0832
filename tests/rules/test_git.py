"""``git describe`` of the repository holding the configuration, and labels filled from it."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from wheelpatch.errors import ConfigError
from wheelpatch.rules.config import load_config, parse_config
from wheelpatch.rules.git import GitError, describe, parse_describe

ROOT = "tool.wheelpatch"
TORCH = "tool.wheelpatch.overrides.torch"
NEED_GIT = "{tag}/{major}/{commits}/{revision} need git describe: "


@pytest.fixture(autouse=True)
def isolated_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Commit as a fixed identity, ignore the user's and system git config, never look above
    ``tmp_path`` for a repository."""
    for name in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    for role in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{role}_NAME", "Test Author")
        monkeypatch.setenv(f"GIT_{role}_EMAIL", "test@example.invalid")
        monkeypatch.setenv(f"GIT_{role}_DATE", "2020-02-02T12:00:00+00:00")


def git(repo: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
    )
    return result.stdout.strip()


def commit(repo: Path, name: str = "file.txt", text: str | None = None) -> str:
    path = repo / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text if text is not None else f"{name}\n")
    git(repo, "add", name)
    git(repo, "commit", "-q", "-m", f"change {name}")
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository with one commit of ``file.txt`` and no tag."""
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q")
    commit(path, "file.txt", "first\n")
    return path


# --- parse_describe -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("output", "parsed"),
    [
        pytest.param("v1.0-0-gabc1234", ("v1.0", 0, "abc1234", False), id="on-tag"),
        pytest.param("v1.0-12-gabc1234", ("v1.0", 12, "abc1234", False), id="after-tag"),
        pytest.param("v1.0-3-gabc1234-dirty", ("v1.0", 3, "abc1234", True), id="dirty"),
        pytest.param("v1.0-rc1-3-gabc1234", ("v1.0-rc1", 3, "abc1234", False), id="dash-in-tag"),
        pytest.param(
            "v1.0-rc1-3-gabc1234-dirty", ("v1.0-rc1", 3, "abc1234", True), id="dash-in-tag-dirty"
        ),
        pytest.param("1-2-3-4-gdeadbee", ("1-2-3", 4, "deadbee", False), id="numeric-dashes"),
        pytest.param(
            "v1-2-gdeadbee-5-g0123456",
            ("v1-2-gdeadbee", 5, "0123456", False),
            id="tag-looks-like-describe",
        ),
        pytest.param("foo-dirty-1-gabc1234", ("foo-dirty", 1, "abc1234", False), id="tag-dirty"),
        pytest.param("release/2.0-7-gabc1234", ("release/2.0", 7, "abc1234", False), id="slash"),
        pytest.param("v2-1-g" + "a" * 40, ("v2", 1, "a" * 40, False), id="full-sha1"),
        pytest.param("v2-1-g" + "b" * 64, ("v2", 1, "b" * 64, False), id="sha256-object-format"),
    ],
)
def test_parse_describe(output: str, parsed: tuple[str, int, str, bool]) -> None:
    assert parse_describe(output) == parsed


@pytest.mark.parametrize(
    "output",
    [
        pytest.param("", id="empty"),
        pytest.param("v1.0", id="tag-only"),
        pytest.param("abc1234", id="revision-only"),
        pytest.param("-3-gabc1234", id="empty-tag"),
        pytest.param("v1.0-3-abc1234", id="no-g"),
        pytest.param("v1.0-x-gabc1234", id="commits-not-a-number"),
        pytest.param("v1.0-3-gXYZ1234", id="revision-not-hex"),
        pytest.param("v1.0-3-gabc1234-modified", id="other-suffix"),
        pytest.param("v1.0-3-gabc1234\nfatal: x", id="two-lines"),
    ],
)
def test_parse_describe_refuses(output: str) -> None:
    with pytest.raises(GitError) as info:
        parse_describe(output)
    assert str(info.value) == f"cannot read 'git describe' output {output!r}"


# --- describe -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tag", "annotated", "later_commits"),
    [
        pytest.param("v1.0", False, 0, id="lightweight-on-tag"),
        pytest.param("v1.0", True, 0, id="annotated-on-tag"),
        pytest.param("v1.0", False, 2, id="lightweight-after"),
        pytest.param("v1.0", True, 3, id="annotated-after"),
        pytest.param("v1.0-rc1", False, 1, id="dash-in-tag"),
        pytest.param("release/2.0", True, 1, id="slash-in-tag"),
    ],
)
def test_describe(repo: Path, tag: str, annotated: bool, later_commits: int) -> None:
    if annotated:
        git(repo, "tag", "-a", "-m", f"release {tag}", tag)
    else:
        git(repo, "tag", tag)
    for index in range(later_commits):
        commit(repo, f"later{index}.txt")
    head = git(repo, "rev-parse", "HEAD")

    result = describe(repo)

    assert result.tag == tag
    assert result.commits == later_commits
    assert len(result.revision) >= 7
    assert head.startswith(result.revision)
    assert result.commit == head
    assert result.dirty is False
    assert result.description == f"{tag}-{later_commits}-g{result.revision}"
    assert result.description == git(repo, "describe", "--tags", "--long")


def test_describe_nearest_tag_wins(repo: Path) -> None:
    git(repo, "tag", "v1.0")
    commit(repo, "a.txt")
    git(repo, "tag", "v1.1")
    commit(repo, "b.txt")
    result = describe(repo)
    assert (result.tag, result.commits) == ("v1.1", 1)


def test_describe_from_a_subdirectory(repo: Path) -> None:
    git(repo, "tag", "v1.0")
    commit(repo, "pkg/sub/file.txt")
    result = describe(repo / "pkg" / "sub")
    assert (result.tag, result.commits) == ("v1.0", 1)


@pytest.mark.parametrize(
    ("change", "dirty"),
    [
        pytest.param("modify-tracked", True, id="modified-tracked-file"),
        pytest.param("stage-tracked", True, id="staged-change"),
        pytest.param("untracked", False, id="untracked-file-is-clean"),
        pytest.param("nothing", False, id="clean"),
    ],
)
def test_describe_dirty(repo: Path, change: str, dirty: bool) -> None:
    git(repo, "tag", "v1.0")
    if change in {"modify-tracked", "stage-tracked"}:
        (repo / "file.txt").write_text("changed\n")
    if change == "stage-tracked":
        git(repo, "add", "file.txt")
    if change == "untracked":
        (repo / "new.txt").write_text("new\n")
    head = git(repo, "rev-parse", "HEAD")

    result = describe(repo)

    assert result.dirty is dirty
    assert result.description == f"v1.0-0-g{result.revision}"
    assert not result.description.endswith("-dirty")
    assert result.commit == head


def test_describe_without_a_tag(repo: Path) -> None:
    with pytest.raises(GitError) as info:
        describe(repo)
    assert str(info.value) == (
        f"'git describe --tags --long --dirty' failed in {repo}: fatal: No names found, cannot "
        "describe anything; no tag is reachable from HEAD: run 'git fetch --tags' first, or tag "
        "the release the fork is based on"
    )


def test_describe_a_shallow_clone_without_its_tag(repo: Path, tmp_path: Path) -> None:
    """CI's default checkout: one commit, so the tag on an earlier one is not there."""
    git(repo, "tag", "v1.0")
    commit(repo, "later.txt")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", "--depth", "1", repo.as_uri(), str(clone))
    assert git(clone, "rev-parse", "--is-shallow-repository") == "true"
    with pytest.raises(GitError) as info:
        describe(clone)
    assert str(info.value) == (
        f"'git describe --tags --long --dirty' failed in {clone}: fatal: No names found, cannot "
        "describe anything; the clone is shallow: run 'git fetch --unshallow --tags' first"
    )
    git(clone, "fetch", "-q", "--unshallow", "--tags")
    assert describe(clone).description.startswith("v1.0-1-g")


def test_describe_without_a_commit(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    with pytest.raises(GitError) as info:
        describe(tmp_path)
    assert str(info.value).startswith(
        f"'git describe --tags --long --dirty' failed in {tmp_path}: "
    )


def test_describe_outside_a_repository(tmp_path: Path) -> None:
    with pytest.raises(GitError) as info:
        describe(tmp_path)
    message = str(info.value)
    assert message.startswith(f"'git rev-parse --is-inside-work-tree' failed in {tmp_path}: ")
    assert "not a git repository" in message


def test_describe_inside_the_git_directory(repo: Path) -> None:
    git(repo, "tag", "v1.0")
    with pytest.raises(GitError) as info:
        describe(repo / ".git")
    assert str(info.value) == f"{repo / '.git'} is not inside a git work tree"


# --- labels filled from git through load_config -------------------------------------------------

PYPROJECT = """
[tool.wheelpatch]
local-version = {global_label}

[tool.wheelpatch.overrides.torch]
remove = ["triton"]
{override_label}
"""


def pyproject(directory: Path, global_label: str, override_label: str = "") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "pyproject.toml"
    path.write_text(
        PYPROJECT.format(
            global_label=f'"{global_label}"',
            override_label=f'local-version = "{override_label}"' if override_label else "",
        ),
        encoding="utf-8",
    )
    return path


Expect = Callable[[str, str, int], str]


@pytest.mark.parametrize(
    ("tag", "global_label", "override_label", "label_key", "expected"),
    [
        pytest.param(
            "v1.0",
            "stripe.{commits}.{revision}",
            "",
            f"{ROOT}.local-version",
            lambda tag, rev, n: f"stripe.{n}.{rev}",
            id="commits-revision",
        ),
        pytest.param(
            "v2.0.1",
            "{tag}.{commits}",
            "",
            f"{ROOT}.local-version",
            lambda tag, rev, n: f"v2.0.1.{n}",
            id="tag-kept",
        ),
        pytest.param(
            "Release_1-2",
            "stripe.{tag}",
            "",
            f"{ROOT}.local-version",
            lambda tag, rev, n: "stripe.release.1.2",
            id="tag-sanitized",
        ),
        pytest.param(
            "v1.0",
            "stripe.2",
            "stripe.{commits}.g{revision}",
            f"{TORCH}.local-version",
            lambda tag, rev, n: f"stripe.{n}.g{rev}",
            id="override-label",
        ),
    ],
)
def test_label_from_git(
    repo: Path,
    tag: str,
    global_label: str,
    override_label: str,
    label_key: str,
    expected: Expect,
) -> None:
    git(repo, "tag", tag)
    path = pyproject(repo / "config", global_label, override_label)
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "config")
    commit(repo, "more.txt")
    head = git(repo, "rev-parse", "HEAD")

    config = load_config(path)

    assert config.git is not None
    assert config.git.commit == head
    assert config.git.tag == tag
    assert config.git.commits == 2
    assert head.startswith(config.git.revision)
    (torch,) = config.overrides
    assert torch.label == expected(tag, config.git.revision, 2)
    assert torch.label_key == label_key


def test_label_from_git_found_upward(repo: Path) -> None:
    git(repo, "tag", "v1.0")
    pyproject(repo, "stripe.{commits}")
    start = repo / "src" / "pkg"
    start.mkdir(parents=True)
    config = load_config(None, start=start)
    assert config.overrides[0].label == "stripe.0"


def test_digest_follows_the_rendered_label(repo: Path) -> None:
    git(repo, "tag", "v1.0")
    path = pyproject(repo, "stripe.{commits}")
    first = load_config(path).overrides[0]
    again = load_config(path).overrides[0]
    commit(repo, "more.txt")
    later = load_config(path).overrides[0]
    assert (first.label, later.label) == ("stripe.0", "stripe.1")
    assert first.digest == again.digest
    assert later.digest != first.digest


def test_no_placeholder_needs_no_git(tmp_path: Path) -> None:
    config = load_config(pyproject(tmp_path / "plain", "stripe.2"))
    assert config.git is None
    assert config.overrides[0].label == "stripe.2"


@pytest.mark.parametrize(
    ("global_label", "override_label", "keys"),
    [
        pytest.param("stripe.{commits}.{revision}", "", f"{ROOT}.local-version", id="global-label"),
        pytest.param("stripe.2", "stripe.{tag}", f"{TORCH}.local-version", id="override-label"),
        pytest.param(
            "stripe.{commits}",
            "stripe.{revision}",
            f"{TORCH}.local-version",
            id="override-shadows-global",
        ),
    ],
)
def test_placeholders_outside_a_repository(
    tmp_path: Path, global_label: str, override_label: str, keys: str
) -> None:
    path = pyproject(tmp_path / "outside", global_label, override_label)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    (message,) = info.value.errors
    failed = "'git rev-parse --is-inside-work-tree' failed"
    assert message.startswith(f"{path}: {keys}: {NEED_GIT}{failed}")
    assert "not a git repository" in message


def test_placeholders_in_a_repository_without_tags(repo: Path) -> None:
    path = pyproject(repo, "stripe.{commits}")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    (message,) = info.value.errors
    key = f"{ROOT}.local-version"
    assert message.startswith(f"{path}: {key}: {NEED_GIT}'git describe --tags --long")
    assert "No names found" in message


def test_tag_that_cannot_be_a_label(repo: Path) -> None:
    git(repo, "tag", "release/1")
    path = pyproject(repo, "stripe.{tag}")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.errors == (
        f"{path}: {ROOT}.local-version: git tag 'release/1' cannot go into a local version label "
        "(only letters, digits, '.', '-' and '_')",
    )


def test_placeholders_without_a_file_name_the_right_key() -> None:
    table = {
        "overrides": {
            "numpy": {"local-version": "stripe.2"},
            "torch": {"local-version": "stripe.{commits}"},
        }
    }
    with pytest.raises(ConfigError) as info:
        parse_config(table, None)
    assert info.value.errors == (
        f"{TORCH}.local-version: placeholders need a configuration file in git",
    )
