"""``wheelpatch index``: the pages it renders, the site it writes, incrementally, and what it
refuses (the end-to-end tests with pip, uv and PDM are in test_clients.py)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name
from packaging.version import Version

from wheelpatch.index.distribution import IndexedFile
from wheelpatch.index.pages import project_pages, root_pages
from wheelpatch.index.site import MANIFEST_NAME, collect_inputs, write_site

from ..conftest import CliResult, WheelSpec, build_wheel, snapshot

Cli = Callable[..., CliResult]


def entry(filename: str, **changes: object) -> IndexedFile:
    values: dict[str, object] = {
        "project": canonicalize_name(filename.split("-", maxsplit=1)[0]),
        "version": Version(filename.split("-", maxsplit=2)[1]),
        "filename": filename,
        "kind": "wheel",
        "size": 10,
        "sha256": "ab" * 32,
        "requires_python": None,
        "metadata_sha256": "cd" * 32,
    }
    values.update(changes)
    return IndexedFile(**values)  # type: ignore[arg-type]


# --- the pages ------------------------------------------------------------------------------------


def test_project_page_html_and_json() -> None:
    files = [
        entry("torch-2.0.1+stripe.2-py3-none-any.whl", requires_python=">=3.8,<4"),
        entry("torch-2.0.1-py3-none-any.whl", metadata_sha256=None, size=7),
    ]
    page, document = project_pages("torch", files, yanked={"torch-2.0.1-py3-none-any.whl": ""})
    html = page.decode()
    assert '<meta name="pypi:repository-version" content="1.1">' in html
    # Sorted by version, then name; '+' quoted in the URL, '<' escaped in the attribute.
    first, second = (line.strip() for line in html.splitlines() if line.strip().startswith("<a "))
    assert first == (
        f'<a href="../../files/torch/torch-2.0.1-py3-none-any.whl#sha256={"ab" * 32}" '
        'data-yanked="">torch-2.0.1-py3-none-any.whl</a><br>'
    )
    assert second == (
        '<a href="../../files/torch/torch-2.0.1%2Bstripe.2-py3-none-any.whl'
        f'#sha256={"ab" * 32}" data-requires-python="&gt;=3.8,&lt;4" '
        f'data-core-metadata="sha256={"cd" * 32}" data-dist-info-metadata="sha256={"cd" * 32}">'
        "torch-2.0.1+stripe.2-py3-none-any.whl</a><br>"
    )
    data = json.loads(document)
    assert data["meta"] == {"api-version": "1.1"}
    assert data["name"] == "torch"
    assert data["versions"] == ["2.0.1", "2.0.1+stripe.2"]
    assert data["files"] == [
        {
            "filename": "torch-2.0.1-py3-none-any.whl",
            "url": "../../files/torch/torch-2.0.1-py3-none-any.whl",
            "hashes": {"sha256": "ab" * 32},
            "core-metadata": False,
            "dist-info-metadata": False,
            "yanked": True,
            "size": 7,
        },
        {
            "filename": "torch-2.0.1+stripe.2-py3-none-any.whl",
            "url": "../../files/torch/torch-2.0.1%2Bstripe.2-py3-none-any.whl",
            "hashes": {"sha256": "ab" * 32},
            "requires-python": ">=3.8,<4",
            "core-metadata": {"sha256": "cd" * 32},
            "dist-info-metadata": {"sha256": "cd" * 32},
            "yanked": False,
            "size": 10,
        },
    ]
    # The same files in another order: the same bytes.
    assert project_pages("torch", files[::-1], yanked={files[1].filename: ""}) == (page, document)


def test_base_url_and_yank_reason() -> None:
    files = [entry("demo-1.0-py3-none-any.whl")]
    page, document = project_pages(
        "demo", files, "https://bucket.example/files/", {"demo-1.0-py3-none-any.whl": 'bad "x"'}
    )
    url = "https://bucket.example/files/demo/demo-1.0-py3-none-any.whl"
    assert f'href="{url}#sha256=' in page.decode()
    assert 'data-yanked="bad &quot;x&quot;"' in page.decode()
    assert json.loads(document)["files"][0]["url"] == url
    assert json.loads(document)["files"][0]["yanked"] == 'bad "x"'


def test_root_page() -> None:
    page, document = root_pages(["torch", "filelock", "torch"])
    assert '<a href="filelock/">filelock</a><br>\n    <a href="torch/">torch</a>' in page.decode()
    assert json.loads(document) == {
        "meta": {"api-version": "1.1"},
        "projects": [{"name": "filelock"}, {"name": "torch"}],
    }


# --- the site -------------------------------------------------------------------------------------


def wheelhouse(directory: Path, count: int) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    return [
        build_wheel(
            directory,
            WheelSpec(
                name=f"proj{i:02d}",
                files={f"proj{i:02d}/__init__.py": f"N = {i}\n".encode()},
                requires_python=">=3.8",
            ),
        )
        for i in range(count)
    ]


def test_site_layout_sidecars_and_hashes(tmp_path: Path) -> None:
    [wheel] = wheelhouse(tmp_path / "in", 1)
    site = tmp_path / "site"
    report = write_site(collect_inputs([tmp_path / "in"]), site)
    assert (report.projects, report.files, report.hashed) == (1, 1, [wheel.name])
    placed = site / "files" / "proj00" / wheel.name
    assert placed.read_bytes() == wheel.read_bytes()
    with zipfile.ZipFile(wheel) as archive:
        metadata = archive.read("proj00-1.0.dist-info/METADATA")
    sidecar = site / "files" / "proj00" / f"{wheel.name}.metadata"
    assert sidecar.read_bytes() == metadata  # byte for byte (PEP 658)
    data = json.loads((site / "simple" / "proj00" / "index.json").read_bytes())
    [file] = data["files"]
    assert file["hashes"]["sha256"] == hashlib.sha256(wheel.read_bytes()).hexdigest()
    assert file["core-metadata"]["sha256"] == hashlib.sha256(metadata).hexdigest()
    assert file["requires-python"] == ">=3.8"
    assert sorted(p.name for p in (site / "simple").iterdir()) == [
        "index.html",
        "index.json",
        "proj00",
    ]
    assert not list(site.rglob("*.tmp"))


def test_incremental_reindex_reads_only_the_new_wheel(tmp_path: Path) -> None:
    """Fifty wheels indexed, one added: only it is read and hashed (the manifest knows the
    rest), and only its project's pages and the project list are written."""
    wheels = wheelhouse(tmp_path / "in", 50)
    site = tmp_path / "site"
    first = write_site(collect_inputs([tmp_path / "in"]), site)
    assert sorted(first.hashed) == sorted(w.name for w in wheels)
    again = write_site(collect_inputs([tmp_path / "in"]), site)
    assert (again.hashed, again.written, again.removed) == ([], [], [])
    assert len(again.reused) == 50
    added = build_wheel(tmp_path / "in", WheelSpec(name="newcomer", files={"n/x.py": b"x\n"}))
    third = write_site(collect_inputs([tmp_path / "in"]), site)
    assert third.hashed == [added.name]
    assert len(third.reused) == 50
    assert sorted(third.written) == [
        f"files/newcomer/{added.name}.metadata",
        "simple/index.html",
        "simple/index.json",
        "simple/newcomer/index.html",
        "simple/newcomer/index.json",
    ]
    manifest = json.loads((site / MANIFEST_NAME).read_bytes())
    assert sorted(manifest["files"]) == sorted([w.name for w in wheels] + [added.name])


def test_projects_no_longer_given_are_removed(tmp_path: Path) -> None:
    wheels = wheelhouse(tmp_path / "in", 3)
    site = tmp_path / "site"
    write_site(collect_inputs([tmp_path / "in"]), site)
    wheels[1].unlink()
    report = write_site(collect_inputs([tmp_path / "in"]), site)
    assert sorted(report.removed) == [
        f"files/proj01/{wheels[1].name}",
        f"files/proj01/{wheels[1].name}.metadata",
        "simple/proj01/index.html",
        "simple/proj01/index.json",
    ]
    assert not (site / "simple" / "proj01").exists()
    assert not (site / "files" / "proj01").exists()
    assert "proj01" not in (site / "simple" / "index.html").read_text()


def test_same_inputs_same_bytes(tmp_path: Path) -> None:
    wheelhouse(tmp_path / "in", 4)
    inputs = collect_inputs([tmp_path / "in"])
    write_site(inputs, tmp_path / "a")
    write_site(inputs, tmp_path / "b")
    assert snapshot(tmp_path / "a") == snapshot(tmp_path / "b")


def test_an_unreadable_manifest_means_reading_everything_again(tmp_path: Path) -> None:
    wheelhouse(tmp_path / "in", 2)
    site = tmp_path / "site"
    write_site(collect_inputs([tmp_path / "in"]), site)
    (site / MANIFEST_NAME).write_text("{not json")
    report = write_site(collect_inputs([tmp_path / "in"]), site)
    assert len(report.hashed) == 2
    assert json.loads((site / MANIFEST_NAME).read_bytes())["schema"] == 1


# --- the command, and what it refuses -------------------------------------------------------------


def test_cli_json_report_and_summary(cli: Cli, tmp_path: Path) -> None:
    wheelhouse(tmp_path / "in", 2)
    result = cli("index", tmp_path / "in", "-o", tmp_path / "site", "--json")
    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert (report["projects"], report["files"], len(report["hashed"])) == (2, 2, 2)
    again = cli("index", tmp_path / "in", "-o", tmp_path / "site")
    assert again.out == (
        f"{tmp_path / 'site'}: 2 file(s) of 2 project(s); 0 read, 2 known already; "
        "0 written, 0 removed\n"
    )


def test_a_refused_wheel_is_refused_as_patch_refuses_it(cli: Cli, tmp_path: Path) -> None:
    wheelhouse(tmp_path / "in", 2)
    broken = tmp_path / "in" / "broken-1.0-py3-none-any.whl"
    broken.write_bytes(b"not a zip at all, just some text" * 4)
    before = snapshot(tmp_path)
    result = cli("index", tmp_path / "in", "-o", tmp_path / "site")
    assert result.code == 1
    assert result.err == (
        "error: broken-1.0-py3-none-any.whl: not a zip archive "
        "(no end of central directory record at its end)\n"
    )
    assert snapshot(tmp_path) == before  # nothing written, the input untouched
    assert not (tmp_path / "site").exists()


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        pytest.param(
            "respelt",
            "Demo-1.0-py3-none-any.whl: names the same distribution as "
            "demo-1.0-py3-none-any.whl, spelt otherwise; an index lists one of them",
            id="names-normalizing-alike",
        ),
        pytest.param(
            "different-bytes",
            "demo-1.0-py3-none-any.whl: two different files of that name",
            id="same-name-other-bytes",
        ),
    ],
)
def test_two_files_for_one_distribution_are_refused(
    cli: Cli, tmp_path: Path, setup: str, message: str
) -> None:
    (tmp_path / "a").mkdir()
    first = build_wheel(tmp_path / "a", WheelSpec())
    other = tmp_path / "b"
    other.mkdir()
    if setup == "respelt":
        (other / "Demo-1.0-py3-none-any.whl").write_bytes(first.read_bytes())
    else:
        build_wheel(other, WheelSpec(files={"demo/__init__.py": b"OTHER = 1\n"}))
    result = cli("index", tmp_path / "a", other, "-o", tmp_path / "site")
    assert result.code == 1
    assert result.err.startswith(f"error: {message}")
    assert len(result.err.splitlines()) == 1
    assert not (tmp_path / "site").exists()


def test_the_same_file_in_two_directories_is_listed_once(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    first = build_wheel(tmp_path / "a", WheelSpec())
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / first.name).write_bytes(first.read_bytes())
    result = cli("index", tmp_path / "a", tmp_path / "b", "-o", tmp_path / "site", "--json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["files"] == 1


def test_a_missing_directory_is_a_usage_error(cli: Cli, tmp_path: Path) -> None:
    result = cli("index", tmp_path / "nope", "-o", tmp_path / "site")
    assert (result.code, result.err) == (
        2,
        f"error: {tmp_path / 'nope'}: no such file or directory\n",
    )


def patch_index_setup(
    tmp_path: Path, config_file: Callable[[str], Path]
) -> tuple[Path, Path, Path]:
    """A configuration that patches torch, a filelock wheel to index first, and where SITE goes."""
    config = config_file(
        '[tool.wheelpatch]\nlocal-version = "stripe.2"\n'
        '[tool.wheelpatch.overrides.torch]\nremove = ["triton"]\n'
    )
    (tmp_path / "other").mkdir()
    (tmp_path / "in").mkdir()
    kept = build_wheel(tmp_path / "other", WheelSpec(name="filelock"))
    return config, kept, tmp_path / "site"


def test_patch_then_index_in_one_command(
    cli: Cli, tmp_path: Path, config_file: Callable[[str], Path]
) -> None:
    """``patch --index SITE`` adds the patched wheels to SITE and keeps what it listed."""
    config, kept, site = patch_index_setup(tmp_path, config_file)
    assert cli("index", kept.parent, "-o", site).code == 0
    torch = build_wheel(tmp_path / "in", WheelSpec(name="torch", requires=("triton",)))
    result = cli("patch", "--config", config, "-o", tmp_path / "out", "--index", site, torch)
    assert result.code == 0, result.err
    assert result.out.splitlines()[-1] == (f"{site}: 2 file(s) of 2 project(s) indexed; 5 written")
    data = json.loads((site / "simple" / "torch" / "index.json").read_bytes())
    assert [f["filename"] for f in data["files"]] == ["torch-1.0+stripe.2-py3-none-any.whl"]
    assert (site / "simple" / "filelock" / "index.html").is_file()


def test_yanking_a_file_not_indexed_is_a_usage_error(cli: Cli, tmp_path: Path) -> None:
    wheelhouse(tmp_path / "in", 1)
    result = cli("index", tmp_path / "in", "-o", tmp_path / "site", "--yank", "nope.whl=why")
    assert (result.code, result.err) == (
        2,
        "error: --yank nope.whl: no such file among those indexed\n",
    )
    assert not (tmp_path / "site").exists()


def test_patch_index_keeps_the_base_url_and_the_yanks_of_the_site(
    cli: Cli, tmp_path: Path, config_file: Callable[[str], Path]
) -> None:
    """A site for an object store stays one when ``patch --index`` adds to it."""
    config, kept, site = patch_index_setup(tmp_path, config_file)
    store = "https://store.example/files/"
    args = ("--base-url", store, "--yank", f"{kept.name}=bad")
    assert cli("index", kept.parent, "-o", site, *args).code == 0
    torch = build_wheel(tmp_path / "in", WheelSpec(name="torch", requires=("triton",)))
    result = cli("patch", "--config", config, "-o", tmp_path / "out", "--index", site, torch)
    assert result.code == 0, result.err
    filelock = json.loads((site / "simple" / "filelock" / "index.json").read_bytes())
    assert filelock["files"][0]["url"] == f"{store}filelock/{kept.name}"
    assert filelock["files"][0]["yanked"] == "bad"
    torch_page = json.loads((site / "simple" / "torch" / "index.json").read_bytes())
    assert torch_page["files"][0]["url"].startswith(f"{store}torch/")


# --- what the review of the first version found ---------------------------------------------------


def test_more_files_than_the_open_file_limit(tmp_path: Path) -> None:
    """At most a few files are open at once, whatever their number: 150 wheels with 64 files."""
    wheelhouse(tmp_path / "in", 150)
    script = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))\n"
        "from wheelpatch.cli.wheelpatch import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, "index", tmp_path / "in", "-o", tmp_path / "site"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert (done.returncode, done.stderr) == (0, "")
    assert (
        len(json.loads((tmp_path / "site" / "simple" / "index.json").read_bytes())["projects"])
        == 150
    )


def test_a_symlinked_input_is_served_as_its_target(tmp_path: Path) -> None:
    store = tmp_path / "store"
    store.mkdir()
    wheel = build_wheel(store, WheelSpec())
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / wheel.name).symlink_to(Path("..") / "store" / wheel.name)
    write_site(collect_inputs([tmp_path / "in"]), tmp_path / "site")
    served = tmp_path / "site" / "files" / "demo" / wheel.name
    assert not served.is_symlink()
    assert served.read_bytes() == wheel.read_bytes()
    again = write_site(collect_inputs([tmp_path / "in"]), tmp_path / "site")
    assert again.reused == [wheel.name]


def test_an_input_rewritten_in_place_changes_nothing_served_until_indexed(tmp_path: Path) -> None:
    """``cp`` over an input (same size, and its modification time put back) neither changes the
    file served under the page's hash nor is taken for the file indexed before."""
    (tmp_path / "in").mkdir()
    (tmp_path / "alt").mkdir()
    stored = zipfile.ZIP_STORED  # so that both wheels have one size
    wheel = build_wheel(tmp_path / "in", WheelSpec(compression=stored))
    other = build_wheel(
        tmp_path / "alt",
        WheelSpec(
            compression=stored,
            files={"demo/__init__.py": b"VALUE = 2\n", "demo/core.py": b"x = 2\n"},
        ),
    )
    assert wheel.stat().st_size == other.stat().st_size
    site = tmp_path / "site"
    write_site(collect_inputs([tmp_path / "in"]), site)
    served = site / "files" / "demo" / wheel.name
    before = served.read_bytes()
    mtime = wheel.stat().st_mtime_ns
    shutil.copyfile(other, wheel)  # in place: same inode
    os.utime(wheel, ns=(mtime, mtime))
    assert served.read_bytes() == before  # a copy, not a link: still what the page says
    report = write_site(collect_inputs([tmp_path / "in"]), site)
    assert report.hashed == [wheel.name]  # its change time told
    [file] = json.loads((site / "simple" / "demo" / "index.json").read_bytes())["files"]
    assert file["hashes"]["sha256"] == hashlib.sha256(other.read_bytes()).hexdigest()
    assert served.read_bytes() == other.read_bytes()


@pytest.mark.parametrize(
    "entry",
    [
        pytest.param("not an entry", id="a-string"),
        pytest.param({"project": "demo", "version": "1.0"}, id="keys-missing"),
        pytest.param({"project": "../..", "kind": "wheel"}, id="project-outside-site"),
    ],
)
def test_a_manifest_of_the_wrong_shape_is_not_trusted(
    cli: Cli, tmp_path: Path, entry: object
) -> None:
    """Its entries say what may be removed: one that is not what this tool writes is ignored,
    with no traceback and nothing outside SITE touched."""
    wheelhouse(tmp_path / "in", 1)
    site = tmp_path / "site"
    assert cli("index", tmp_path / "in", "-o", site).code == 0
    precious = tmp_path / "precious-1.0-py3-none-any.whl"
    precious.write_bytes(b"keep me")
    manifest = json.loads((site / MANIFEST_NAME).read_bytes())
    manifest["files"][precious.name] = entry
    manifest["files"]["proj00-1.0-py3-none-any.whl"] = entry
    (site / MANIFEST_NAME).write_text(json.dumps(manifest))
    result = cli("index", tmp_path / "in", "-o", site, "--json")
    assert (result.code, result.err) == (0, "")
    assert json.loads(result.out)["hashed"] == ["proj00-1.0-py3-none-any.whl"]  # read again
    assert precious.read_bytes() == b"keep me"


def test_a_damaged_sidecar_is_written_again(tmp_path: Path) -> None:
    [wheel] = wheelhouse(tmp_path / "in", 1)
    site = tmp_path / "site"
    write_site(collect_inputs([tmp_path / "in"]), site)
    sidecar = site / "files" / "proj00" / f"{wheel.name}.metadata"
    good = sidecar.read_bytes()
    sidecar.write_bytes(b"")
    report = write_site(collect_inputs([tmp_path / "in"]), site)
    assert report.hashed == [wheel.name]
    assert sidecar.read_bytes() == good


def test_patch_index_refuses_a_site_whose_manifest_is_lost(
    cli: Cli, tmp_path: Path, config_file: Callable[[str], Path]
) -> None:
    """Adding to a site whose manifest cannot be read would drop what it lists from its pages."""
    config = config_file('[tool.wheelpatch]\n[tool.wheelpatch.overrides.torch]\nremove = ["x"]\n')
    (tmp_path / "other").mkdir()
    (tmp_path / "in").mkdir()
    kept = build_wheel(tmp_path / "other", WheelSpec(name="filelock"))
    site = tmp_path / "site"
    assert cli("index", kept.parent, "-o", site).code == 0
    (site / MANIFEST_NAME).write_text("{not json")
    before = snapshot(site)
    torch = build_wheel(tmp_path / "in", WheelSpec(name="torch", version="2.0", requires=("x",)))
    config_text = config.read_text().replace(
        "[tool.wheelpatch]\n", '[tool.wheelpatch]\nlocal-version = "s.1"\n'
    )
    config.write_text(config_text)
    result = cli("patch", "--config", config, "-o", tmp_path / "out", "--index", site, torch)
    assert result.code == 3
    assert result.err.splitlines()[-1] == (
        f"error: {site}: its {MANIFEST_NAME} is missing or cannot be read, so what it lists is "
        "unknown; write it again with 'wheelpatch index ... -o SITE'"
    )
    assert snapshot(site) == before


def test_sdists_are_listed_and_checked(cli: Cli, tmp_path: Path) -> None:
    source = tmp_path / "in"
    source.mkdir()
    sdist = source / "demo_pkg-1.0.tar.gz"
    with tarfile.open(sdist, "w:gz") as archive:
        info = tarfile.TarInfo("demo_pkg-1.0/PKG-INFO")
        data = b"Metadata-Version: 2.1\nName: demo-pkg\nVersion: 1.0\n"
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    assert cli("index", source, "-o", tmp_path / "site").code == 0
    [file] = json.loads((tmp_path / "site" / "simple" / "demo-pkg" / "index.json").read_bytes())[
        "files"
    ]
    assert file["hashes"]["sha256"] == hashlib.sha256(sdist.read_bytes()).hexdigest()
    assert file["core-metadata"] is False  # no sidecar for an sdist
    (source / "notes-1.0.tar.gz").write_bytes(b"not a tar")
    refused = cli("index", source, "-o", tmp_path / "site2")
    assert (refused.code, refused.err) == (
        1,
        f"error: {source / 'notes-1.0.tar.gz'}: an sdist, but not a tar archive\n",
    )
    (source / "notes-1.0.tar.gz").unlink()
    (source / "foo bar-1.0.tar.gz").write_bytes(sdist.read_bytes())
    refused = cli("index", source, "-o", tmp_path / "site2")
    assert refused.code == 1
    assert refused.err == (
        f"error: {source / 'foo bar-1.0.tar.gz'}: 'foo bar' is not a valid project name\n"
    )
    assert not (tmp_path / "site2").exists()


def test_a_directory_named_like_a_distribution_is_no_input(cli: Cli, tmp_path: Path) -> None:
    wheelhouse(tmp_path / "in", 1)
    (tmp_path / "in" / "x-1.0.tar.gz").mkdir()
    result = cli("index", tmp_path / "in", "-o", tmp_path / "site", "--json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["files"] == 1


def test_same_bytes_from_other_processes_and_input_orders(tmp_path: Path) -> None:
    """Two processes with other hash seeds, given the directories in other orders."""
    wheelhouse(tmp_path / "a", 3)
    (tmp_path / "b").mkdir()
    build_wheel(tmp_path / "b", WheelSpec(name="zeta", files={"zeta/x.py": b"x\n"}))
    sites = []
    for seed, dirs in (("1", ("a", "b")), ("2", ("b", "a"))):
        site = tmp_path / f"site-{seed}"
        done = subprocess.run(
            [sys.executable, "-m", "wheelpatch", "index", *(tmp_path / d for d in dirs),
             "-o", site],
            capture_output=True, text=True, timeout=120, check=False,
            env={**os.environ, "PYTHONHASHSEED": seed},
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        sites.append(snapshot(site))
    assert sites[0] == sites[1]


def test_link_hard_links_the_files_a_symlink_names(cli: Cli, tmp_path: Path) -> None:
    """``--link``: the file served is the input's own inode (a symlinked input: its target's)."""
    store = tmp_path / "store"
    store.mkdir()
    wheel = build_wheel(store, WheelSpec())
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / wheel.name).symlink_to(Path("..") / "store" / wheel.name)
    assert cli("index", "--link", tmp_path / "in", "-o", tmp_path / "site").code == 0
    served = tmp_path / "site" / "files" / "demo" / wheel.name
    assert not served.is_symlink()
    assert served.stat().st_ino == wheel.stat().st_ino
    copied = tmp_path / "site-copied" / "files" / "demo" / wheel.name
    assert cli("index", tmp_path / "in", "-o", tmp_path / "site-copied").code == 0
    assert copied.stat().st_ino != wheel.stat().st_ino
    assert copied.read_bytes() == wheel.read_bytes()


def test_a_refusal_after_files_were_copied_leaves_nothing(cli: Cli, tmp_path: Path) -> None:
    """The last input is refused after the others were read and copied: no SITE, no staging."""
    wheelhouse(tmp_path / "in", 3)
    broken = tmp_path / "in" / "zzz-1.0-py3-none-any.whl"
    broken.write_bytes(b"not a zip at all, just some text" * 4)
    before = snapshot(tmp_path)
    result = cli("index", tmp_path / "in", "-o", tmp_path / "site")
    assert result.code == 1
    assert result.err.startswith("error: zzz-1.0-py3-none-any.whl: not a zip archive")
    assert snapshot(tmp_path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]
