"""What ``git describe`` says about the repository that holds a configuration file."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..errors import WheelpatchError

__all__ = ["GitDescribe", "GitError", "describe"]

_DESCRIBE = re.compile(r"(?P<tag>.+)-(?P<commits>\d+)-g(?P<revision>[0-9a-f]+)(?P<dirty>-dirty)?")


class GitError(WheelpatchError):
    """git could not describe the repository (no git, no repository, no tag)."""


@dataclass(frozen=True, slots=True)
class GitDescribe:
    """``git describe --tags --long``: ``{tag}-{commits}-g{revision}``, plus the full commit."""

    tag: str
    commits: int
    revision: str
    description: str
    commit: str
    dirty: bool

    def as_json(self) -> dict[str, object]:
        """What provenance records: the describe output, the full commit and dirtiness."""
        return {"describe": self.description, "commit": self.commit, "dirty": self.dirty}


def _git(directory: Path, *args: str) -> str:
    try:
        result = subprocess.run(
            ["git", "-C", str(directory), *args],
            capture_output=True,
            text=True,
            check=False,
        )
    except FileNotFoundError:
        raise GitError(
            "git is not installed (it is needed to fill {tag}/{major}/{commits}/{revision})"
        ) from None
    if result.returncode != 0:
        message = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise GitError(f"'git {' '.join(args)}' failed in {directory}: {message}")
    return result.stdout.strip()


def parse_describe(output: str) -> tuple[str, int, str, bool]:
    """Split ``git describe --tags --long [--dirty]`` output into tag, commits, revision, dirty."""
    match = _DESCRIBE.fullmatch(output)
    if match is None:
        raise GitError(f"cannot read 'git describe' output {output!r}")
    return (
        match["tag"],
        int(match["commits"]),
        match["revision"],
        match["dirty"] is not None,
    )


def describe(directory: Path) -> GitDescribe:
    """Describe HEAD of the repository holding ``directory``."""
    if _git(directory, "rev-parse", "--is-inside-work-tree") != "true":
        raise GitError(f"{directory} is not inside a git work tree")
    try:
        output = _git(directory, "describe", "--tags", "--long", "--dirty")
    except GitError as exc:
        hint = _no_tag_hint(directory)
        if hint is None:
            raise
        raise GitError(f"{str(exc).rstrip('.')}; {hint}") from None
    tag, commits, revision, dirty = parse_describe(output)
    commit = _git(directory, "rev-parse", "HEAD")
    return GitDescribe(
        tag=tag,
        commits=commits,
        revision=revision,
        description=output.removesuffix("-dirty"),
        commit=commit,
        dirty=dirty,
    )


def _no_tag_hint(directory: Path) -> str | None:
    """The way out when ``git describe`` finds no tag and git can say why: a shallow clone (CI
    checks out one commit by default) or tags that were never fetched."""
    try:
        if _git(directory, "rev-parse", "--is-shallow-repository") == "true":
            return "the clone is shallow: run 'git fetch --unshallow --tags' first"
        if not _git(directory, "tag", "--merged", "HEAD"):
            return (
                "no tag is reachable from HEAD: run 'git fetch --tags' first, or tag the "
                "release the fork is based on"
            )
    except GitError:  # no commit yet, or git cannot tell
        return None
    return None
