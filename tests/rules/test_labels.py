"""Local version labels: checking a template, filling it from git, applying it to a version."""

from __future__ import annotations

import pytest
from packaging.version import Version

from wheelpatch.rules.git import GitDescribe
from wheelpatch.rules.labels import PLACEHOLDERS, LabelMode, LabelTemplate, relabel

KEY = "tool.wheelpatch.local-version"
GENERIC_HINT = "(lowercase letters and digits in dot-separated segments, e.g. 'stripe.2')"
KNOWN = "(known: {tag}, {major}, {commits}, {revision})"
BARE = "write {tag}, {major}, {commits}, {revision} bare"


def git_describe(tag: str = "v2.0.1", commits: int = 3, revision: str = "abc1234") -> GitDescribe:
    commit = revision.ljust(40, "0")
    return GitDescribe(
        tag=tag,
        commits=commits,
        revision=revision,
        description=f"{tag}-{commits}-g{revision}",
        commit=commit,
        dirty=False,
    )


# --- check --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("stripe", id="word"),
        pytest.param("stripe.2", id="word-number"),
        pytest.param("2", id="number"),
        pytest.param("cpu.stripe.2", id="three-segments"),
        pytest.param("stripe2a", id="mixed-segment"),
        pytest.param("stripe.{commits}", id="commits"),
        pytest.param("stripe.{commits}.{revision}", id="commits-revision"),
        pytest.param("{tag}", id="tag-alone"),
        pytest.param("stripe.{tag}.{commits}.g{revision}", id="all-placeholders"),
        pytest.param("stripe{commits}", id="placeholder-inside-segment"),
    ],
)
def test_check_accepts_valid_labels(text: str) -> None:
    assert LabelTemplate(text, KEY).check() == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            "Stripe.2",
            f"{KEY}: 'Stripe.2' is not a valid local version label "
            "(write it normalized: 'stripe.2')",
            id="uppercase-suggests-lowercase",
        ),
        pytest.param(
            "stripe-2",
            f"{KEY}: 'stripe-2' is not a valid local version label "
            "(write it normalized: 'stripe.2')",
            id="dash-suggests-dot",
        ),
        pytest.param(
            "stripe_2",
            f"{KEY}: 'stripe_2' is not a valid local version label "
            "(write it normalized: 'stripe.2')",
            id="underscore-suggests-dot",
        ),
        pytest.param(
            "CPU_Stripe-2",
            f"{KEY}: 'CPU_Stripe-2' is not a valid local version label "
            "(write it normalized: 'cpu.stripe.2')",
            id="mixed-suggests-normalized",
        ),
        pytest.param(
            # A numeric segment is normalized without its leading zeros: 1.0+stripe.02 is
            # 1.0+stripe.2, so 'stripe.02' is not the normalized label the version would carry.
            "stripe.02",
            f"{KEY}: 'stripe.02' is not a valid local version label "
            "(write it normalized: 'stripe.2')",
            id="leading-zero-suggests-normalized",
        ),
        pytest.param(
            # The suggestion must keep the placeholder, not the dummy value used to check it.
            "Stripe.{commits}",
            f"{KEY}: 'Stripe.{{commits}}' is not a valid local version label "
            "(write it normalized: 'stripe.{commits}')",
            id="uppercase-with-placeholder-keeps-placeholder",
        ),
        pytest.param(
            "stripe..2",
            f"{KEY}: 'stripe..2' is not a valid local version label {GENERIC_HINT}",
            id="empty-segment",
        ),
        pytest.param(
            ".stripe",
            f"{KEY}: '.stripe' is not a valid local version label {GENERIC_HINT}",
            id="leading-dot",
        ),
        pytest.param(
            "stripe.",
            f"{KEY}: 'stripe.' is not a valid local version label {GENERIC_HINT}",
            id="trailing-dot",
        ),
        pytest.param(
            "stripe 2",
            f"{KEY}: 'stripe 2' is not a valid local version label {GENERIC_HINT}",
            id="space",
        ),
        pytest.param(
            "stripe+2",
            f"{KEY}: 'stripe+2' is not a valid local version label {GENERIC_HINT}",
            id="plus",
        ),
        pytest.param(
            "{{x}}",
            f"{KEY}: '{{{{x}}}}' is not a valid local version label {GENERIC_HINT}",
            id="escaped-braces",
        ),
        pytest.param(
            "stripe.{branch}",
            f"{KEY}: 'stripe.{{branch}}' uses the unknown placeholder {{branch}} {KNOWN}",
            id="unknown-placeholder",
        ),
        pytest.param(
            "stripe.{}",
            f"{KEY}: 'stripe.{{}}' uses the unknown placeholder {{}} {KNOWN}",
            id="empty-placeholder",
        ),
        pytest.param(
            "stripe.{0}",
            f"{KEY}: 'stripe.{{0}}' uses the unknown placeholder {{0}} {KNOWN}",
            id="positional-placeholder",
        ),
        pytest.param(
            "stripe.{tag.lower}",
            f"{KEY}: 'stripe.{{tag.lower}}' uses the unknown placeholder {{tag.lower}} {KNOWN}",
            id="attribute-placeholder",
        ),
        pytest.param(
            "stripe.{commits:03}",
            f"{KEY}: 'stripe.{{commits:03}}' formats the placeholder {{commits}}; {BARE}",
            id="format-spec",
        ),
        pytest.param(
            "stripe.{commits!r}",
            f"{KEY}: 'stripe.{{commits!r}}' formats the placeholder {{commits}}; {BARE}",
            id="conversion",
        ),
        pytest.param(
            "stripe.{commits",
            f"{KEY}: 'stripe.{{commits' is not a valid template (",
            id="unclosed-brace",
        ),
        pytest.param(
            "stripe.}",
            f"{KEY}: 'stripe.}}' is not a valid template (",
            id="lone-closing-brace",
        ),
    ],
)
def test_check_refuses_invalid_labels(text: str, message: str) -> None:
    problems = LabelTemplate(text, KEY).check()
    assert len(problems) == 1
    assert message in problems[0]


@pytest.mark.parametrize(
    ("text", "placeholders"),
    [
        pytest.param("stripe.2", frozenset(), id="none"),
        pytest.param("stripe.{commits}", frozenset({"commits"}), id="one"),
        pytest.param("{tag}.{major}.{commits}.{revision}", frozenset(PLACEHOLDERS), id="all"),
        pytest.param("{commits}.{commits}", frozenset({"commits"}), id="repeated"),
    ],
)
def test_placeholders(text: str, placeholders: frozenset[str]) -> None:
    assert LabelTemplate(text, KEY).placeholders == placeholders


# --- render -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "git", "label"),
    [
        pytest.param("stripe.2", None, "stripe.2", id="plain-without-git"),
        pytest.param("stripe.2", git_describe(), "stripe.2", id="plain-with-git"),
        pytest.param(
            "stripe.{commits}.{revision}",
            git_describe(commits=12, revision="abc1234"),
            "stripe.12.abc1234",
            id="commits-revision",
        ),
        pytest.param("stripe.{commits}", git_describe(commits=0), "stripe.0", id="zero-commits"),
        pytest.param("{tag}", git_describe(tag="v2.0.1"), "v2.0.1", id="tag-kept"),
        pytest.param(
            "stripe.{tag}",
            git_describe(tag="Release_1-2"),
            "stripe.release.1.2",
            id="tag-sanitized",
        ),
        pytest.param("{tag}", git_describe(tag="V1..2__3"), "v1.2.3", id="tag-separator-runs"),
        pytest.param("{tag}", git_describe(tag="-v1_"), "v1", id="tag-edge-separators"),
        pytest.param(
            "{tag}.{commits}.g{revision}",
            git_describe(tag="v1.0-rc1", commits=3, revision="0ff1ce0"),
            "v1.0.rc1.3.g0ff1ce0",
            id="all-placeholders",
        ),
        pytest.param(
            "stripe.{major}.{commits}.{revision}",
            git_describe(tag="v2.0.1", commits=4, revision="1a2b3c4"),
            "stripe.2.4.1a2b3c4",
            id="major",
        ),
        pytest.param("s{major}", git_describe(tag="stripe-03"), "s3", id="major-first-number"),
        pytest.param(
            "{major}.{commits}",
            git_describe(tag="release/2", commits=0),
            "2.0",
            id="major-of-a-tag-that-cannot-be-a-label",
        ),
        pytest.param(
            # CalVer tags: the label must be the normalized one the version will carry.
            "stripe.{tag}",
            git_describe(tag="2024.01.05"),
            "stripe.2024.1.5",
            id="tag-numeric-leading-zeros-normalized",
        ),
    ],
)
def test_render(text: str, git: GitDescribe | None, label: str) -> None:
    rendered = LabelTemplate(text, KEY).render(git)
    assert rendered == label
    assert Version(f"1.0+{rendered}").local == rendered


def test_render_major_needs_a_number() -> None:
    with pytest.raises(ValueError, match="has no number") as info:
        LabelTemplate("stripe.{major}", KEY).render(git_describe(tag="release"))
    assert str(info.value) == f"{KEY}: git tag 'release' has no number to fill {{major}}"


@pytest.mark.parametrize(
    ("text", "git", "message"),
    [
        pytest.param(
            "stripe.{commits}",
            None,
            f"{KEY}: 'stripe.{{commits}}' needs git describe",
            id="placeholder-without-git",
        ),
        pytest.param(
            "stripe.{tag}",
            git_describe(tag="release/1"),
            f"{KEY}: git tag 'release/1' cannot go into a local version label "
            "(only letters, digits, '.', '-' and '_')",
            id="tag-with-slash",
        ),
        pytest.param(
            "stripe.{tag}",
            git_describe(tag="v1+build"),
            f"{KEY}: git tag 'v1+build' cannot go into a local version label",
            id="tag-with-plus",
        ),
        pytest.param(
            "stripe.{tag}",
            git_describe(tag="---"),
            f"{KEY}: git tag '---' cannot go into a local version label",
            id="tag-only-separators",
        ),
    ],
)
def test_render_errors(text: str, git: GitDescribe | None, message: str) -> None:
    with pytest.raises(ValueError, match="git") as info:
        LabelTemplate(text, KEY).render(git)
    assert message in str(info.value)


# --- relabel ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "label", "mode", "expected"),
    [
        pytest.param("2.13.0+cpu", "stripe.2", "append", "2.13.0+cpu.stripe.2", id="append-to"),
        pytest.param("2.13.0+cpu", "stripe.2", "replace", "2.13.0+stripe.2", id="replace"),
        pytest.param("2.13.0", "stripe.2", "append", "2.13.0+stripe.2", id="append-no-local"),
        pytest.param("2.13.0", "stripe.2", "replace", "2.13.0+stripe.2", id="replace-no-local"),
        pytest.param(
            "2.0.1+cu118.post3", "stripe.3", "append", "2.0.1+cu118.post3.stripe.3", id="long"
        ),
        pytest.param(
            "1!2.0rc1.post2.dev3+cpu",
            "stripe.2",
            "replace",
            "1!2.0rc1.post2.dev3+stripe.2",
            id="replace-keeps-public-parts",
        ),
        pytest.param(
            "1!2.0rc1.post2.dev3+cpu",
            "stripe.2",
            "append",
            "1!2.0rc1.post2.dev3+cpu.stripe.2",
            id="append-keeps-public-parts",
        ),
        pytest.param("2.13.0+cpu", None, "append", "2.13.0+cpu", id="no-label-append"),
        pytest.param("2.13.0+cpu", None, "replace", "2.13.0+cpu", id="no-label-replace"),
        pytest.param("2.13.0+cpu", "", "replace", "2.13.0+cpu", id="empty-label"),
        # Already labelled (a patched wheel from a private index): patching again is a no-op.
        pytest.param("2.0.1+stripe.2", "stripe.2", "append", "2.0.1+stripe.2", id="again"),
        pytest.param("2.0.1+cpu.stripe.2", "stripe.2", "append", "2.0.1+cpu.stripe.2", id="again2"),
        pytest.param(
            "2.0.1+xstripe.2", "stripe.2", "append", "2.0.1+xstripe.2.stripe.2", id="near"
        ),
    ],
)
def test_relabel(version: str, label: str | None, mode: LabelMode, expected: str) -> None:
    result = relabel(Version(version), label, mode)
    assert result == Version(expected)
    assert str(result) == expected


def test_render_normalizes_filled_values() -> None:
    """An all-digit revision or a zero-padded tag is written as the version will show it."""
    template = LabelTemplate("stripe.{tag}.{revision}", KEY)
    label = template.render(git_describe(tag="2024.01.05", revision="0123456"))
    assert label == "stripe.2024.1.5.123456"
    assert Version(f"1.0+{label}").local == label
