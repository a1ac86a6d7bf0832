"""The page the proxy plans from an upstream page: pure, so every rule is a table row here."""

from __future__ import annotations

from pathlib import Path

import pytest

from wheelpatch.index.app import _matches, _valid_file_name, choose_media_type
from wheelpatch.index.listing import JSON_TYPE, ListedFile, Listing
from wheelpatch.index.proxy import Patched, patch_candidates, plan_page, served_name
from wheelpatch.rules.config import Config, parse_config

SHA = "a" * 64


def config(**override: object) -> Config:
    table = {
        "local-version": "stripe.2",
        "overrides": {"torch": {"remove": ["triton"], **override}},
    }
    return parse_config(table, Path("/nowhere/pyproject.toml"))


def file(name: str, **fields: object) -> ListedFile:
    return ListedFile(name, f"https://files.example/{name}", {"sha256": SHA}, **fields)  # type: ignore[arg-type]


LISTING = Listing(
    name="torch",  # type: ignore[arg-type]
    files=(
        file("torch-2.0.0-cp311-cp311-linux_x86_64.whl", size=10),
        file("torch-2.0.1-cp311-cp311-linux_x86_64.whl", size=11, yanked="bad build"),
        file("torch-2.0.1.tar.gz", size=5),
    ),
    api_version="1.1",
)


def test_a_project_without_override_passes_through() -> None:
    listing = Listing("filelock", (file("filelock-3.13.1-py3-none-any.whl"),))  # type: ignore[arg-type]
    page, served = plan_page(listing, None, {})
    assert page == listing
    proxied, _ = plan_page(listing, None, {}, links="proxy")
    assert proxied.files[0].url == "../../files/filelock/filelock-3.13.1-py3-none-any.whl"
    assert served["filelock-3.13.1-py3-none-any.whl"].patched is False


def test_patched_names_come_from_the_file_name_alone() -> None:
    override = config().override_for("torch")
    assert override is not None
    names = [served_name(f, override) for f in LISTING.files]
    assert names == [
        "torch-2.0.0+stripe.2-cp311-cp311-linux_x86_64.whl",
        "torch-2.0.1+stripe.2-cp311-cp311-linux_x86_64.whl",
        None,  # an sdist is never patched
    ]
    narrow = config(versions="==2.0.1").override_for("torch")
    assert narrow is not None
    assert [f.filename for f in patch_candidates(LISTING, narrow)] == [
        "torch-2.0.1-cp311-cp311-linux_x86_64.whl"
    ]


@pytest.mark.parametrize(
    ("unpatched", "listed"),
    [
        pytest.param("hide", ["torch-2.0.1+stripe.2-cp311-cp311-linux_x86_64.whl"], id="hide"),
        pytest.param(
            "list",
            [
                "torch-2.0.0-cp311-cp311-linux_x86_64.whl",
                "torch-2.0.1+stripe.2-cp311-cp311-linux_x86_64.whl",
                "torch-2.0.1.tar.gz",
            ],
            id="list",
        ),
    ],
)
def test_the_unpatched_rule(unpatched: str, listed: list[str]) -> None:
    override = config(versions="==2.0.1").override_for("torch")
    upstream = "torch-2.0.1-cp311-cp311-linux_x86_64.whl"
    known = {
        upstream: Patched(
            "torch-2.0.1+stripe.2-cp311-cp311-linux_x86_64.whl", 12, "c" * 64, ">=3.8"
        )
    }
    page, served = plan_page(LISTING, override, known, unpatched=unpatched)  # type: ignore[arg-type]
    assert [f.filename for f in page.files] == listed
    patched = next(f for f in page.files if "+stripe" in f.filename)
    assert patched.url == "../../files/torch/torch-2.0.1%2Bstripe.2-cp311-cp311-linux_x86_64.whl"
    assert patched.hashes == {}  # not built yet: no hash to promise
    assert patched.core_metadata == {"sha256": "c" * 64}
    assert (patched.size, patched.requires_python, patched.yanked) == (12, ">=3.8", "bad build")
    assert served[patched.filename].upstream.filename == upstream
    assert served[patched.filename].patched is True
    assert upstream not in served  # the unpatched wheel of a patched version is never served


def test_a_built_wheel_is_listed_with_its_hash_and_a_refused_one_not_at_all() -> None:
    override = config().override_for("torch")
    known: dict[str, Patched | str] = {
        "torch-2.0.0-cp311-cp311-linux_x86_64.whl": "torch-2.0.0-...: member 'x' is unsafe",
        "torch-2.0.1-cp311-cp311-linux_x86_64.whl": Patched(
            "torch-2.0.1+stripe.2-cp311-cp311-linux_x86_64.whl", 12, "c" * 64, None, "d" * 64
        ),
    }
    page, served = plan_page(LISTING, override, known)
    assert [f.hashes for f in page.files] == [{"sha256": "d" * 64}]
    refused = served["torch-2.0.0+stripe.2-cp311-cp311-linux_x86_64.whl"]
    assert refused.problem == "torch-2.0.0-...: member 'x' is unsafe"


@pytest.mark.parametrize(
    ("accept", "format_", "chosen"),
    [
        pytest.param(None, None, "text/html", id="nothing-said"),
        pytest.param(
            "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, "
            "text/html; q=0.01",
            None,
            JSON_TYPE,
            id="pip",
        ),
        pytest.param("text/html", None, "text/html", id="html"),
        pytest.param("application/vnd.pypi.simple.latest+json", None, JSON_TYPE, id="latest"),
        pytest.param(
            "text/html;q=0.5, application/vnd.pypi.simple.v1+json", None, JSON_TYPE, id="q"
        ),
        pytest.param("*/*", None, "text/html", id="wildcard"),
        pytest.param("application/pdf", None, None, id="406"),
        pytest.param("text/html", JSON_TYPE, JSON_TYPE, id="format-param"),
    ],
)
def test_content_negotiation(accept: str | None, format_: str | None, chosen: str | None) -> None:
    assert choose_media_type(accept, format_) == chosen


def test_two_upstream_files_that_patch_to_one_name_are_both_refused() -> None:
    """``local-version-mode = "replace"`` over torch's ``+cpu`` and ``+cu118`` builds."""
    override = config(**{"local-version-mode": "replace"}).override_for("torch")
    assert override is not None
    listing = Listing(
        "torch",  # type: ignore[arg-type]
        (file("torch-2.0.1+cpu-cp311-cp311-linux_x86_64.whl"),
         file("torch-2.0.1+cu118-cp311-cp311-linux_x86_64.whl")),
    )  # fmt: skip
    name = "torch-2.0.1+stripe.2-cp311-cp311-linux_x86_64.whl"
    known: dict[str, Patched | str] = {
        f.filename: Patched(name, 1, "c" * 64, None) for f in listing.files
    }
    page, served = plan_page(listing, override, known)
    assert page.files == ()
    assert served[name].problem == (
        "torch-2.0.1+cpu-cp311-cp311-linux_x86_64.whl and "
        "torch-2.0.1+cu118-cp311-cp311-linux_x86_64.whl would both be patched to "
        f"{name}; set tool.wheelpatch.overrides.torch.versions to tell them apart"
    )


@pytest.mark.parametrize(
    ("header", "matches"),
    [
        pytest.param('"abc"', True, id="same"),
        pytest.param('W/"abc"', True, id="weak"),
        pytest.param("*", True, id="star"),
        pytest.param('"x", "abc"', True, id="list"),
        pytest.param('"abcd"', False, id="other"),
        pytest.param("", False, id="none"),
    ],
)
def test_if_none_match_compares_weakly(header: str, matches: bool) -> None:
    assert _matches(header, '"abc"') is matches


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        pytest.param("pytz-2006p.tar.bz2", True, id="old-sdist"),
        pytest.param("demo-1.0-py3-none-any.whl.metadata", True, id="metadata"),
        pytest.param("..", False, id="dotdot"),
        pytest.param(".hidden.whl", False, id="dot"),
        pytest.param("a/b.whl", False, id="slash"),
        pytest.param("a\\b.whl", False, id="backslash"),
        pytest.param("a\0.whl", False, id="nul"),
        pytest.param("x" * 256, False, id="too-long"),
    ],
)
def test_file_names_are_checked_only_to_be_plain_names(name: str, valid: bool) -> None:
    assert _valid_file_name(name) is valid
