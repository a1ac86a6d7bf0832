"""The SBOM in ``.dist-info/sboms/wheelpatch.cdx.json`` (PEP 770) and the history a re-patch keeps.

Every SBOM is validated against the official CycloneDX 1.6 JSON schema; its ancestor hashes are
compared with the sha256 of the files themselves, and its patches with the METADATA diffs worked
out here from the wheels' own METADATA members.
"""

from __future__ import annotations

import base64
import hashlib
import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from packageurl import PackageURL

from wheelpatch import load_config, patch_wheel, plan_wheel
from wheelpatch.cli.wheelpatch import main
from wheelpatch.patch.plan import PatchPlan
from wheelpatch.patch.sbom import MAX_HISTORY_PATCH, purl, sbom_document
from wheelpatch.wheel.verify import verify_wheel

from .. import venvs
from ..conftest import CliResult, build_wheel
from ..sboms import SBOM, ancestors, metadata_diff, patch_text, validated_sbom
from .test_clients import pip, run, uv_binary
from .test_patch import TORCH_CONFIG, members, raw_entries, torch_spec

SECOND_CONFIG = """
[tool.wheelpatch]
local-version = "fix.1"

[tool.wheelpatch.overrides.torch]
add = ["numpy>=1.24"]
"""
THIRD_CONFIG = """
[tool.wheelpatch]
local-version = "fix.2"

[tool.wheelpatch.overrides.torch]
remove = ["numpy"]
"""
AUDITWHEEL_SBOM = b'{\n  "bomFormat": "CycloneDX",\n  "specVersion": "1.4",\n  "version": 1\n}\n'
OPENCV = Path(
    "/opt/pypi-more/files/opencv_python_headless-4.14.0.94-cp37-abi3-manylinux_2_28_x86_64.whl"
)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def dist_info_of(path: Path) -> str:
    [name] = {n.split("/")[0] for n in members(path) if n.split("/")[0].endswith(".dist-info")}
    return name


def sbom_of(path: Path) -> dict[str, Any]:
    return validated_sbom(members(path)[f"{dist_info_of(path)}/{SBOM}"])


def provenance_of(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(members(path)[f"{dist_info_of(path)}/wheelpatch.json"])
    return document


def diff_between(before: Path, after: Path) -> str:
    old, new = dist_info_of(before), dist_info_of(after)
    return metadata_diff(
        members(before)[f"{old}/METADATA"],
        members(after)[f"{new}/METADATA"],
        f"{old}/METADATA",
        f"{new}/METADATA",
    )


_TORCH_FILE = "torch-2.14.1+stripe.2-cp311-cp311-linux_x86_64.whl"
_ZOPE_FILE = "zope_interface_extra-1!2.0rc1+cpu.s.1-py3-none-any.whl"


@pytest.mark.parametrize(
    ("name", "version", "filename", "expected_name"),
    [
        pytest.param("torch", "2.14.1+stripe.2", _TORCH_FILE, "torch", id="label"),
        pytest.param(
            "Zope.Interface_Extra", "1!2.0rc1+cpu.s.1", _ZOPE_FILE, "zope.interface-extra",
            id="epoch-dots-underscore",
        ),
        pytest.param("tensorfork", "2.0.1+stripe.2.1.abc", None, "tensorfork", id="no-file"),
    ],
)  # fmt: skip
def test_purl_is_what_the_reference_parser_reads(
    name: str, version: str, filename: str | None, expected_name: str
) -> None:
    """packageurl-python (the purl reference implementation) reads back exactly what was meant."""
    text = purl(name, version, filename)
    assert "+" not in text
    parsed = PackageURL.from_string(text)
    assert (parsed.type, parsed.name, parsed.version) == ("pypi", expected_name, version)
    assert parsed.qualifiers == ({"file_name": filename} if filename else {})
    assert parsed.to_string() == text


@pytest.fixture
def patch(tmp_path: Path, config_file: Callable[[str], Path]) -> Callable[..., Path]:
    """``patch(source, toml, out)``: the wheel patched with that configuration into ``out``."""

    def run(source: Path, toml: str, out: str) -> Path:
        config = config_file(toml)
        out_dir = tmp_path / out
        out_dir.mkdir()
        output = patch_wheel(source, out_dir, load_config(config))
        assert output is not None
        return output

    return run


def test_patched_wheel_sbom(
    tmp_path: Path, patch: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    source = build_wheel(tmp_path, torch_spec())
    output = patch(source, TORCH_CONFIG, "out")
    document = sbom_of(output)
    info = "torch-2.0.1+stripe.2.dist-info"
    assert document["bomFormat"] == "CycloneDX"
    assert "timestamp" not in document["metadata"]
    [tool] = document["metadata"]["tools"]["components"]
    assert (tool["name"], tool["version"]) == ("wheelpatch", provenance_of(output)["wheelpatch"])
    component, upstream = ancestors(document)
    assert component["name"] == "torch"
    assert component["version"] == "2.0.1+stripe.2"
    assert component["purl"] == (
        "pkg:pypi/torch@2.0.1%2Bstripe.2?file_name=torch-2.0.1%2Bstripe.2-cp311-cp311-linux_x86_64.whl"
    )
    # No hash of the file that holds the SBOM, and a property saying why; METADATA's is there.
    assert "hashes" not in component
    notes = {p["name"]: p["value"] for p in component["properties"]}
    assert "cannot contain its own sha256" in notes["wheelpatch:file-sha256"]
    [metadata] = component["components"]
    assert metadata["name"] == f"{info}/METADATA"
    new_metadata = members(output)[f"{info}/METADATA"]
    assert metadata["hashes"] == [
        {"alg": "SHA-256", "content": hashlib.sha256(new_metadata).hexdigest()}
    ]
    # The ancestor is the source, by purl and sha256; the patch is the METADATA diff.
    assert upstream["version"] == "2.0.1"
    assert upstream["purl"] == (f"pkg:pypi/torch@2.0.1?file_name={source.name.replace('+', '%2B')}")
    assert upstream["hashes"] == [{"alg": "SHA-256", "content": sha256(source)}]
    assert "pedigree" not in upstream
    assert patch_text(component) == diff_between(source, output)
    [patch_entry] = component["pedigree"]["patches"]
    [issue] = patch_entry["resolves"]
    assert issue["id"] == "tool.wheelpatch.overrides.torch"
    assert issue["source"] == {"name": "pyproject.toml"}
    # Listed in RECORD with its hash: installer and wheelpatch verify accept the wheel.
    rows = members(output)[f"{info}/RECORD"].decode().splitlines()
    data = members(output)[f"{info}/{SBOM}"]
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    assert f"{info}/{SBOM},sha256={digest},{len(data)}" in rows
    assert verify_wheel(output).ok


def test_repatched_wheel_chains_its_ancestors(tmp_path: Path, patch: Callable[..., Path]) -> None:
    source = build_wheel(tmp_path, torch_spec())
    first = patch(source, TORCH_CONFIG, "first")
    second = patch(first, SECOND_CONFIG, "second")
    third = patch(second, THIRD_CONFIG, "third")
    assert third.name == "torch-2.0.1+stripe.2.fix.1.fix.2-cp311-cp311-linux_x86_64.whl"
    # One SBOM only: the one of the earlier patch is superseded, its pedigree folded in.
    assert [n for n in members(third) if n.endswith(".cdx.json")] == [
        f"{dist_info_of(third)}/{SBOM}"
    ]
    chain = ancestors(sbom_of(third))
    assert [c["version"] for c in chain] == [
        "2.0.1+stripe.2.fix.1.fix.2",
        "2.0.1+stripe.2.fix.1",
        "2.0.1+stripe.2",
        "2.0.1",
    ]
    assert [c["hashes"][0]["content"] for c in chain[1:]] == [
        sha256(second),
        sha256(first),
        sha256(source),
    ]
    assert [patch_text(c) for c in chain[:3]] == [
        diff_between(second, third),
        diff_between(first, second),
        diff_between(source, first),
    ]
    assert "pedigree" not in chain[-1]  # the official file: nothing before it is known
    # wheelpatch.json keeps every earlier record, oldest first: the official sha256 stays.
    provenance = provenance_of(third)
    assert provenance["source"] == {"filename": second.name, "sha256": sha256(second)}
    history = provenance["history"]
    assert [r["source"]["sha256"] for r in history] == [sha256(source), sha256(first)]
    assert all("history" not in r for r in history)
    assert history[1] == {k: v for k, v in provenance_of(second).items() if k != "history"}
    assert provenance["diff"] == diff_between(second, third)


def test_sboms_of_the_source_are_kept_and_referenced(
    tmp_path: Path, patch: Callable[..., Path]
) -> None:
    spdx = b'{"spdxVersion": "SPDX-2.3"}\n'
    spec = torch_spec(
        extra_dist_info={
            "sboms/auditwheel.cdx.json": AUDITWHEEL_SBOM,
            "sboms/vendor.spdx.json": spdx,
        }
    )
    source = build_wheel(tmp_path, spec)
    output = patch(source, TORCH_CONFIG, "out")
    old, new = raw_entries(source), raw_entries(output)
    for name in ("auditwheel.cdx.json", "vendor.spdx.json"):
        # The same local header and compressed bytes, under the renamed .dist-info.
        before = old[f"torch-2.0.1.dist-info/sboms/{name}"]
        after = new[f"torch-2.0.1+stripe.2.dist-info/sboms/{name}"]
        assert after[4:26] == before[4:26]
        assert after[30:] == before[30:]
    assert members(output)["torch-2.0.1+stripe.2.dist-info/sboms/auditwheel.cdx.json"] == (
        AUDITWHEEL_SBOM
    )
    assert verify_wheel(output).ok
    references = sbom_of(output)["externalReferences"]
    assert [(r["type"], r["url"]) for r in references] == [
        ("bom", "auditwheel.cdx.json"),
        ("bom", "vendor.spdx.json"),
    ]
    assert references[0]["hashes"] == [
        {"alg": "SHA-256", "content": hashlib.sha256(AUDITWHEEL_SBOM).hexdigest()}
    ]
    assert references[1]["hashes"][0]["content"] == hashlib.sha256(spdx).hexdigest()


@pytest.mark.parametrize("epoch", [None, "1700000000"], ids=["no-epoch", "source-date-epoch"])
def test_sbom_is_deterministic(
    tmp_path: Path, patch: Callable[..., Path], monkeypatch: pytest.MonkeyPatch, epoch: str | None
) -> None:
    if epoch is None:
        monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    else:
        monkeypatch.setenv("SOURCE_DATE_EPOCH", epoch)
    source = build_wheel(tmp_path, torch_spec())
    outputs = [patch(source, TORCH_CONFIG, run) for run in ("a", "b")]
    assert outputs[0].read_bytes() == outputs[1].read_bytes()
    document = sbom_of(outputs[0])
    if epoch is None:
        assert "timestamp" not in document["metadata"]
    else:
        assert document["metadata"]["timestamp"] == "2023-11-14T22:13:20Z"
    # The serial number is derived from the content: another content, another number.
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1" if epoch is None else "")
    other = sbom_of(patch(source, TORCH_CONFIG, "c"))
    assert other["serialNumber"] != document["serialNumber"]
    assert other["metadata"]["component"] == document["metadata"]["component"]


_LONG_HISTORY = json.dumps({"schema": 1, "history": [{"schema": 1}] * 65}).encode()
_HEX = "ab" * 32


@pytest.mark.parametrize(
    ("earlier", "problem"),
    [
        pytest.param(b"{not json\n", "not valid JSON (", id="not-json"),
        pytest.param(b"[1, 2]\n", "not a JSON object", id="not-an-object"),
        pytest.param(b'{"schema": 2}\n', "schema 2 is not 1", id="other-schema"),
        pytest.param(b"[" * 100_000, "not valid JSON (nested too deeply)", id="nested-too-deeply"),
        pytest.param(
            b'{"schema": 1, "history": [3]}', "its history is not a list of", id="history"
        ),
        pytest.param(_LONG_HISTORY, "its history has more than 64 records", id="history-too-long"),
        pytest.param(
            b'{"schema": 1, "source": {"filename": "t.whl", "sha256": "00"}}',
            "the document.source.sha256 '00' is not a sha256 (64 lowercase hex digits)",
            id="short-sha256",
        ),
        pytest.param(
            json.dumps(
                {"schema": 1, "history": [{"schema": 1, "source": {"sha256": _HEX.upper()}}]}
            ).encode(),
            f"history[0].source.sha256 '{_HEX.upper()[:56]}... is not a sha256",
            id="uppercase-sha256-in-history",
        ),
        pytest.param(
            b'{"schema": 1, "source": {"sha256": "' + b"g" * 64 + b'"}}',
            "the document.source.sha256 'gggg",
            id="non-hex-sha256",
        ),
        pytest.param(
            b'{"schema": 1, "created": NaN}',
            "not valid JSON (NaN is not JSON (RFC 8259))",
            id="nan",
        ),
        pytest.param(
            b'{"schema": 1, "unknown": -Infinity}',
            "not valid JSON (-Infinity is not JSON (RFC 8259))",
            id="infinity-under-an-unknown-key",
        ),
        pytest.param(b'{"schema": true}', "schema True is not 1", id="schema-true"),
        pytest.param(
            b'{"schema": 1, "history": [{"schema": 1.0}]}',
            "history[0] schema 1.0 is not 1",
            id="schema-float-in-history",
        ),
        pytest.param(
            b'{"schema": 1, "diff": 3}', "the document.diff 3 is not a string", id="diff-number"
        ),
        pytest.param(
            b'{"schema": 1, "project": "\\ud800"}',
            "the document.project is not UTF-8 text (it has a lone surrogate)",
            id="lone-surrogate",
        ),
        pytest.param(
            b'{"schema": 1, "changes": ' + b"[" * 400 + b"]" * 400 + b"}",
            "the document.changes[0] is not an object",
            id="deep-lists-under-a-known-key",
        ),
        pytest.param(
            b'{"schema": 1, "git": {"describe": "v1", "dirty": "yes"}}',
            "the document.git.dirty 'yes' is not a boolean",
            id="dirty-string",
        ),
        pytest.param(
            b'{"schema": 1, "history": [{"schema": 1}, {"unreadable": "x", "sha256": "'
            + _HEX.encode()
            + b'"}]}',
            "history[1] schema None is not 1",
            id="unreadable-not-first",
        ),
        pytest.param(
            b'{"schema": 1, "history": [{"schema": 1}, {"elided": true}]}',
            "history[1].elided True is not a positive integer",
            id="elided-true",
        ),
    ],
)
def test_unreadable_earlier_provenance_is_recorded_as_such(
    tmp_path: Path,
    config_file: Callable[[str], Path],
    patch: Callable[..., Path],
    earlier: bytes,
    problem: str,
) -> None:
    source = build_wheel(tmp_path, torch_spec(extra_dist_info={"wheelpatch.json": earlier}))
    plan = plan_wheel(source, load_config(config_file(TORCH_CONFIG)))
    assert isinstance(plan, PatchPlan)
    digest = hashlib.sha256(earlier).hexdigest()
    assert plan.warnings[-1].startswith(
        f"{source.name}: torch-2.0.1.dist-info/wheelpatch.json: {problem}"
    )
    assert plan.warnings[-1].endswith(
        f"; recorded in the new history as unreadable (sha256 {digest})"
    )
    output = patch(source, TORCH_CONFIG, "out")
    [record] = provenance_of(output)["history"]
    assert record["sha256"] == digest
    assert record["unreadable"].startswith(problem)
    _, upstream = ancestors(sbom_of(output))
    assert upstream["hashes"][0]["content"] == sha256(source)
    assert upstream["pedigree"]["notes"].startswith("an earlier wheelpatch.json could not be read")


def test_only_the_keys_wheelpatch_writes_are_carried_on(
    tmp_path: Path, patch: Callable[..., Path]
) -> None:
    """Another key is dropped whatever it holds: 900 nested lists made json.dumps recurse too
    deeply when the record was written back."""
    earlier = (
        b'{"schema": 1, "source": {"filename": "torch-2.0.1.whl", "sha256": "'
        + _HEX.encode()
        + b'", "size": 3}, "future": '
        + b"[" * 900
        + b"]" * 900
        + b', "project": "torch", "history": []}'
    )
    source = build_wheel(tmp_path, torch_spec(extra_dist_info={"wheelpatch.json": earlier}))
    output = patch(source, TORCH_CONFIG, "out")
    [record] = provenance_of(output)["history"]
    assert record == {
        "schema": 1,
        "source": {"filename": "torch-2.0.1.whl", "sha256": _HEX},
        "project": "torch",
    }
    chain = ancestors(sbom_of(output))
    assert chain[2]["hashes"] == [{"alg": "SHA-256", "content": _HEX}]


def test_the_longest_history_kept_still_makes_a_valid_sbom(
    tmp_path: Path, patch: Callable[..., Path]
) -> None:
    records = [
        {"schema": 1, "source": {"filename": f"torch-{i}.whl", "sha256": f"{i:064x}"}}
        for i in range(64)
    ]
    earlier = json.dumps({**records[-1], "history": records[:-1]}).encode()
    source = build_wheel(tmp_path, torch_spec(extra_dist_info={"wheelpatch.json": earlier}))
    output = patch(source, TORCH_CONFIG, "out")
    chain = ancestors(sbom_of(output))
    # The component, the wheel patched now, and the 64 files its records were patched from.
    assert len(chain) == 1 + 1 + 64
    assert chain[1]["hashes"][0]["content"] == sha256(source)
    assert chain[-1]["hashes"][0]["content"] == f"{0:064x}"
    assert len(provenance_of(output)["history"]) == 64


def test_re_patching_the_longest_history_keeps_the_first_record(
    tmp_path: Path, patch: Callable[..., Path], cli: Callable[..., CliResult]
) -> None:
    """Past 64 entries the first record (the official file's sha256) and the newest are kept,
    with how many were left out: never the whole history as unreadable."""
    records = [
        {"schema": 1, "source": {"filename": f"torch-{i}.whl", "sha256": f"{i:064x}"}}
        for i in range(64)
    ]
    earlier = json.dumps({**records[-1], "history": records[:-1]}).encode()
    source = build_wheel(tmp_path, torch_spec(extra_dist_info={"wheelpatch.json": earlier}))
    first = patch(source, TORCH_CONFIG, "first")
    second = patch(first, SECOND_CONFIG, "second")
    third = patch(second, THIRD_CONFIG, "third")
    assert len(provenance_of(first)["history"]) == 64  # nothing left out yet
    newest = [sha256(source), sha256(first)]
    # 65 records: the first, the count in the second place, and the newest 62.
    for left_out, output in enumerate((second, third), 2):
        history = provenance_of(output)["history"]
        assert len(history) == 64
        assert history[0] == records[0]
        assert history[1] == {"elided": left_out}
        assert history[2] == records[left_out + 1]
        assert history[-1]["source"]["sha256"] == newest[left_out - 2]
    chain = ancestors(sbom_of(third))
    assert chain[1]["hashes"][0]["content"] == sha256(second)
    assert chain[-1]["hashes"][0]["content"] == f"{0:064x}"  # still the official file's
    notes = [c["pedigree"].get("notes", "") for c in chain if "pedigree" in c]
    assert [n for n in notes if n] == [
        "3 earlier patch record(s) left out: a history keeps the first record and the newest ones"
    ]
    shown = cli("show", third)
    assert shown.code == 0, shown.err
    assert f"  upstream: torch-0.whl (sha256 {0:064x})" in shown.out.splitlines()
    assert "  2. 3 record(s) left out: a history keeps the first record and the newest ones" in (
        shown.out.splitlines()
    )


def test_only_the_direct_ancestor_is_described_by_this_run(
    tmp_path: Path, patch: Callable[..., Path]
) -> None:
    """Deeper ancestors come from the earlier wheelpatch.json: a property says so, and their
    patch texts are cut to MAX_HISTORY_PATCH characters (the whole text stays in the history)."""
    long_diff = "".join(f"+Line-{i}: {'x' * 90}\n" for i in range(1000))
    earlier = json.dumps(
        {
            "schema": 1,
            "source": {"filename": "torch-2.0.0.whl", "sha256": _HEX},
            "version": {"before": "2.0.0", "after": "2.0.1"},
            "diff": long_diff,
            "git": {"describe": "v1-0-gabc", "commit": "abc", "dirty": True},
        }
    ).encode()
    source = build_wheel(tmp_path, torch_spec(extra_dist_info={"wheelpatch.json": earlier}))
    output = patch(source, TORCH_CONFIG, "out")
    component, direct, upstream = ancestors(sbom_of(output))
    assert "properties" not in direct
    assert direct["hashes"][0]["content"] == sha256(source)
    assert upstream["properties"] == [{"name": "wheelpatch:claimed", "value": "true"}]
    assert upstream["hashes"][0]["content"] == _HEX
    text = patch_text(direct)
    assert len(text) <= MAX_HISTORY_PATCH + 200
    kept = text[: text.rindex("[wheelpatch: ")]
    assert long_diff.startswith(kept)
    assert len(kept) > MAX_HISTORY_PATCH - 100
    assert text.endswith(
        f"[wheelpatch: {len(long_diff) - len(kept)} more characters left out; the whole text "
        "is in wheelpatch.json's history]\n"
    )
    assert provenance_of(output)["history"][0]["diff"] == long_diff
    assert patch_text(component) == diff_between(source, output)  # the patch now: never cut


def test_sbom_properties_are_lowercase_booleans() -> None:
    for dirty, value in ((True, "true"), (False, "false"), (None, "false")):
        document = sbom_document(
            {"schema": 1, "git": {"describe": "v1-0-gabc", "commit": "abc", "dirty": dirty}},
            name="demo",
        )
        validated_sbom(json.dumps(document))
        properties = {
            p["name"]: p["value"] for p in document["metadata"]["component"]["properties"]
        }
        assert properties["wheelpatch:config-git-dirty"] == value


@pytest.mark.parametrize(
    ("body", "tail"),
    [
        pytest.param(
            "One\x0cline\u2028still one\x1c\x85.",
            " \n One\x0cline\u2028still one\x1c\x85.\n\\ No newline at end of file\n",
            id="no-final-newline",
        ),
        pytest.param("One\x0cline.\n", " \n One\x0cline.\n", id="final-newline"),
    ],
)
def test_metadata_diff_splits_lines_at_newlines_only(
    tmp_path: Path, config_file: Callable[[str], Path], body: str, tail: str
) -> None:
    """A form feed, U+2028 or U+0085 in the description is no line break; a METADATA without a
    final newline gets git's marker (the add below the last Requires-Dist reaches the body)."""
    source = build_wheel(tmp_path, torch_spec(requires=["filelock"], body=body))
    plan = plan_wheel(source, load_config(config_file(SECOND_CONFIG)))
    assert isinstance(plan, PatchPlan)
    diff = plan.metadata_diff()
    assert diff.endswith(" Requires-Dist: filelock\n+Requires-Dist: numpy>=1.24\n" + tail), diff
    assert all(line[:1] in " +-@\\" for line in diff.split("\n")[2:-1])


def test_show_prints_the_pedigree_oldest_first(
    tmp_path: Path, patch: Callable[..., Path], cli: Callable[..., CliResult]
) -> None:
    source = build_wheel(tmp_path, torch_spec())
    first = patch(source, TORCH_CONFIG, "first")
    second = patch(first, SECOND_CONFIG, "second")
    result = cli("show", second)
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    start = lines.index("Pedigree (oldest first):")
    assert lines[start + 1] == f"  upstream: {source.name} (sha256 {sha256(source)})"
    steps = [line for line in lines[start:] if line[2:3].isdigit()]
    assert steps == [
        f"  1. {source.name} (sha256 {sha256(source)}) patched into {first.name} with "
        "tool.wheelpatch.overrides.torch of pyproject.toml, by wheelpatch "
        f"{provenance_of(first)['wheelpatch']}",
        f"  2. {first.name} (sha256 {sha256(first)}) patched into {second.name} with "
        "tool.wheelpatch.overrides.torch of pyproject.toml, by wheelpatch "
        f"{provenance_of(second)['wheelpatch']}",
    ]
    after_second = lines[lines.index(steps[1]) + 1 :]
    assert after_second[:2] == [
        "     set Version: 2.0.1+stripe.2 -> 2.0.1+stripe.2.fix.1  (tool.wheelpatch.local-version)",
        "     added Requires-Dist: numpy>=1.24  (tool.wheelpatch.overrides.torch.add[0])",
    ]
    shown = json.loads(cli("show", "--json", second).out)
    assert shown["pedigree"]["upstream"] == {"filename": source.name, "sha256": sha256(source)}
    provenance = provenance_of(second)
    assert shown["pedigree"]["steps"] == [
        *provenance["history"],
        {k: v for k, v in provenance.items() if k != "history"},
    ]
    assert shown["sboms"] == [SBOM]
    plain = json.loads(cli("show", "--json", source).out)
    assert (plain["pedigree"], plain["sboms"]) == (None, [])


@pytest.mark.slow
def test_real_wheel_with_an_auditwheel_sbom(
    tmp_path: Path, config_file: Callable[[str], Path]
) -> None:
    """opencv-python-headless from the local index ships ``sboms/auditwheel.cdx.json``."""
    assert OPENCV.is_file(), f"{OPENCV} is missing from the local index"
    config = config_file(
        '[tool.wheelpatch]\nlocal-version = "stripe.2"\n'
        '[tool.wheelpatch.overrides.opencv-python-headless]\nremove = ["numpy"]\n'
        'add = ["numpy>=2.1"]\n'
    )
    out = tmp_path / "out"
    assert main(["patch", "--config", str(config), "-o", str(out), str(OPENCV)]) == 0
    [output] = out.glob("*.whl")
    assert (
        output.name
        == "opencv_python_headless-4.14.0.94+stripe.2-cp37-abi3-manylinux_2_28_x86_64.whl"
    )
    old_info = "opencv_python_headless-4.14.0.94.dist-info"
    new_info = "opencv_python_headless-4.14.0.94+stripe.2.dist-info"
    with zipfile.ZipFile(OPENCV) as archive:
        original = archive.read(f"{old_info}/sboms/auditwheel.cdx.json")
        old_metadata = archive.read(f"{old_info}/METADATA")
    with zipfile.ZipFile(output) as archive:
        kept = archive.read(f"{new_info}/sboms/auditwheel.cdx.json")
        ours = validated_sbom(archive.read(f"{new_info}/{SBOM}"))
        new_metadata = archive.read(f"{new_info}/METADATA")
    assert kept == original
    assert ours["externalReferences"][0]["url"] == "auditwheel.cdx.json"
    assert ours["externalReferences"][0]["hashes"][0]["content"] == (
        hashlib.sha256(original).hexdigest()
    )
    component, upstream = ancestors(ours)
    assert upstream["hashes"] == [{"alg": "SHA-256", "content": sha256(OPENCV)}]
    assert patch_text(component) == metadata_diff(
        old_metadata, new_metadata, f"{old_info}/METADATA", f"{new_info}/METADATA"
    )
    assert main(["verify", str(output)]) == 0
    # pip and uv install it as it is, offline, and the installed SBOMs are the wheel's.
    pip_venv = venvs.make_venv(tmp_path / "pip-venv")
    pip("--python", pip_venv.python, "install", "--no-deps", "--no-index", output)
    uv_venv = venvs.make_venv(tmp_path / "uv-venv")
    run(
        uv_binary(), "pip", "install", "--python", uv_venv.python, "--no-deps", "--no-index", output
    )
    for venv in (pip_venv, uv_venv):
        installed = venv.dist_info("opencv_python_headless", "4.14.0.94+stripe.2")
        assert (installed / "sboms" / "auditwheel.cdx.json").read_bytes() == original
        validated_sbom((installed / SBOM).read_bytes())
