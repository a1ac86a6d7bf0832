"""``wheelpatch index`` end to end: the site served by a real static server (``python -m
http.server`` on 127.0.0.1) and used by real clients (pip, uv, PDM), its pages read with a parser
made for the simple API (mousebender).

Each server's request log says what a client fetched: resolving reads the ``.metadata`` sidecars
(PEP 658), never a wheel."""

from __future__ import annotations

import contextlib
import hashlib
import html
import json
import re
import subprocess
import sys
import urllib.parse
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from mousebender.simple import (
    ACCEPT_JSON_V1,
    ProjectDetails_1_1,
    ProjectFileDetails_1_1,
    parse_project_details,
    parse_project_index,
)
from packaging.utils import parse_wheel_filename

from wheelpatch.rules.config import read_toml

from ..conftest import CliResult, WheelSpec, build_wheel
from ..hermetic import hermetic_env
from ..servers import started
from ..venvs import Venv, make_venv

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parent.parent.parent
EXAMPLE = ROOT / "plugin_examples" / "torch-without-triton"
DEAD_PROXY = "http://127.0.0.1:9"
LABELLED = "2.0.1+stripe.2"
PIN = f"torch=={LABELLED}"
#: What ``torch==2.0.1+stripe.2`` resolves to: the patch removed triton and the CUDA packages.
RESOLVED = {
    "filelock": "3.13.1",
    "sympy": "1.13.3",
    "torch": LABELLED,
    "typing-extensions": "4.8.0",
}
RESOLVED_FILES = {
    "filelock-3.13.1-py3-none-any.whl",
    "sympy-1.13.3-py3-none-any.whl",
    "torch-2.0.1+stripe.2-py3-none-any.whl",
    "typing_extensions-4.8.0-py3-none-any.whl",
}
_REQUEST = re.compile(r'"GET (\S+) HTTP/1\.[01]" (\d{3})')


# -- the static server ------------------------------------------------------------------------


@dataclass(frozen=True)
class StaticServer:
    """A ``python -m http.server`` serving a directory, and its request log."""

    url: str
    log: Path
    #: Where the clients' requests begin in the log (after the probe that it answers).
    start: int

    def requests(self) -> list[str]:
        """The paths asked for since the server answered, unquoted, in order; every one was
        answered (200, or 304 to a client revalidating what it cached)."""
        text = self.log.read_bytes()[self.start :].decode("utf-8", "replace")
        found = _REQUEST.findall(text)
        assert all(status in {"200", "304"} for _, status in found), text
        return [urllib.parse.unquote(path) for path, _ in found]

    def wheels_fetched(self) -> list[str]:
        return [p.rsplit("/", 1)[-1] for p in self.requests() if p.endswith(".whl")]

    def sidecars_fetched(self) -> list[str]:
        return [p.rsplit("/", 1)[-1] for p in self.requests() if p.endswith(".whl.metadata")]


@contextlib.contextmanager
def static_server(directory: Path, log: Path, port: int | None = None) -> Iterator[StaticServer]:
    """``python -m http.server --bind 127.0.0.1 --directory DIRECTORY PORT`` (a free port unless
    one is given), its request log appended to ``log``; stopped by its process id."""

    def argv(chosen: int) -> list[str]:
        return [
            sys.executable, "-u", "-m", "http.server", "--bind", "127.0.0.1",
            "--directory", str(directory), str(chosen),
        ]  # fmt: skip

    with started(argv, "/", log, "http.server", port) as url:
        yield StaticServer(url, log, log.stat().st_size)  # requests after its readiness probe


# -- the clients' environments ----------------------------------------------------------------


def client_env(tmp_path: Path, *, uv_project: bool = False, **extra: str) -> dict[str, str]:
    """The hermetic environment, online for uv (no ``UV_OFFLINE``, so it reaches the loopback
    server) with its own cache; a private home; anything but 127.0.0.1 goes to a dead proxy.

    ``uv_project``: uv may read the project's ``pyproject.toml`` (``[[tool.uv.index]]``), which
    ``UV_NO_CONFIG`` would hide; the user's configuration is still out of reach (a private
    ``XDG_CONFIG_HOME``)."""
    home = tmp_path / "home"
    env = hermetic_env(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_DATA_HOME=str(home / ".local" / "share"),
        XDG_CACHE_HOME=str(home / ".cache"),
        UV_CACHE_DIR=str(tmp_path / "uv-cache"),
        PIP_RETRIES="0",
        HTTP_PROXY=DEAD_PROXY,
        HTTPS_PROXY=DEAD_PROXY,
        ALL_PROXY=DEAD_PROXY,
        http_proxy=DEAD_PROXY,
        https_proxy=DEAD_PROXY,
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
    )
    drop = ["UV_OFFLINE", "UV_NO_CACHE", *(["UV_NO_CONFIG"] if uv_project else [])]
    for key in drop:
        env.pop(key)
    env.update(extra)
    return env


def pdm_env(tmp_path: Path) -> dict[str, str]:
    """:func:`client_env` for PDM: the project's own source only, no saved interpreter, a
    fresh base interpreter (``--without-pip``) to make the project's venv from."""
    base: Venv = make_venv(tmp_path / "base")
    return client_env(
        tmp_path,
        PDM_IGNORE_SAVED_PYTHON="1",
        PDM_IGNORE_STORED_INDEX="1",  # the project's source alone, not PyPI beside it
        PDM_CHECK_UPDATE="false",
        PDM_NON_INTERACTIVE="1",
        PDM_CACHE_DIR=str(tmp_path / "pdm-cache"),
        PDM_PYTHON=str(base.python),
    )


def run(
    *args: str | Path, env: Mapping[str, str], cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=dict(env),
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )


def ok(done: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert done.returncode == 0, f"{done.args}:\n{done.stdout}\n{done.stderr}"
    return done


def tool(name: str) -> Path:
    """A console script installed beside the interpreter running the tests."""
    path = Path(sys.executable).parent / name
    assert path.is_file(), f"{name} is installed with the test extras"
    return path


def pip(*args: str | Path) -> list[str | Path]:
    return [sys.executable, "-m", "pip", *args]


def installed(venv: Venv) -> dict[str, str]:
    """What ``venv`` has installed: {normalized name: version}, from its dist-info names."""
    found = {}
    for name in venv.dist_infos():
        project, version = name.removesuffix(".dist-info").split("-", 1)
        found[project.lower().replace("_", "-")] = version
    return found


# -- the site ---------------------------------------------------------------------------------


def make_wheelhouse(directory: Path) -> Path:
    ok(run(sys.executable, EXAMPLE / "make_wheelhouse.py", directory, env=hermetic_env()))
    return directory


def patch_torch(
    cli: Callable[..., CliResult], wheelhouse: Path, out: Path, *extra: str | Path
) -> CliResult:
    """The example's torch and triton patched with its configuration (``local-version``
    ``stripe.2``; torch loses triton and the CUDA requirements)."""
    wheels = [
        wheelhouse / "torch-2.0.1-py3-none-any.whl",
        wheelhouse / "triton-2.0.0-py3-none-any.whl",
    ]
    result = cli(
        "patch", "--strict", "--config", EXAMPLE / "pyproject.toml", "-o", out, *extra, *wheels
    )
    assert result.code == 0, result.err
    assert sorted(p.name for p in out.glob("*.whl")) == [
        "torch-2.0.1+stripe.2-py3-none-any.whl",
        "triton-2.0.0+stripe.2-py3-none-any.whl",
    ]
    return result


def index(cli: Callable[..., CliResult], site: Path, *args: str | Path) -> dict[str, Any]:
    result = cli("index", "--json", "-o", site, *args)
    assert result.code == 0, result.err
    report: dict[str, Any] = json.loads(result.out)
    return report


@pytest.fixture
def torch_site(tmp_path: Path, cli: Callable[..., CliResult]) -> Path:
    """SITE of the example's wheelhouse plus the patched torch and triton."""
    wheelhouse = make_wheelhouse(tmp_path / "wheelhouse")
    patch_torch(cli, wheelhouse, tmp_path / "patched")
    site = tmp_path / "site"
    report = index(cli, site, wheelhouse, tmp_path / "patched")
    assert report["files"] == 11
    return site


def json_page(site: Path, project: str) -> ProjectDetails_1_1:
    """A project's JSON page, parsed by mousebender as a PEP 691 response."""
    text = (site / "simple" / project / "index.json").read_text("utf-8")
    details = parse_project_details(text, ACCEPT_JSON_V1, project)
    assert details["meta"]["api-version"] == "1.1"
    return details


def html_page(site: Path, project: str) -> Any:
    text = (site / "simple" / project / "index.html").read_text("utf-8")
    return parse_project_details(text, "text/html", project)


def page_hashes(site: Path) -> dict[str, str]:
    """Every file's sha256 as the JSON pages give it: {file name: hex digest}."""
    hashes = {}
    for page in sorted((site / "simple").glob("*/index.json")):
        for file in json_page(site, page.parent.name)["files"]:
            hashes[file["filename"]] = file["hashes"]["sha256"]
    return hashes


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def wheel_metadata(wheel: Path) -> bytes:
    with zipfile.ZipFile(wheel) as archive:
        [member] = [n for n in archive.namelist() if re.fullmatch(r"[^/]+\.dist-info/METADATA", n)]
        return archive.read(member)


# -- 1. pip: resolve from the sidecars alone, then install ------------------------------------


def test_pip_resolves_from_the_sidecars_alone_then_installs(
    tmp_path: Path, torch_site: Path
) -> None:
    env = client_env(tmp_path)
    hashes = page_hashes(torch_site)
    venv: Venv = make_venv(tmp_path / "venv")
    report = tmp_path / "report.json"
    with static_server(torch_site, tmp_path / "http.log") as server:
        index_url = f"{server.url}/simple/"
        ok(run(*pip("--python", venv.python, "install", "--dry-run", "--quiet",
                    "--report", report, "--index-url", index_url, PIN), env=env))  # fmt: skip
        resolved = json.loads(report.read_text())["install"]
        assert {i["metadata"]["name"]: i["metadata"]["version"] for i in resolved} == RESOLVED
        for item in resolved:
            url = item["download_info"]["url"]
            name = urllib.parse.unquote(url.rsplit("/", 1)[-1])
            assert url.startswith(f"{server.url}/files/"), url
            assert item["download_info"]["archive_info"]["hashes"]["sha256"] == hashes[name]
        # Resolution read each resolved wheel's METADATA from its sidecar: no wheel was fetched,
        # and nothing of triton (which the patched torch no longer requires).
        assert sorted(server.sidecars_fetched()) == sorted(f"{n}.metadata" for n in RESOLVED_FILES)
        assert server.wheels_fetched() == []
        assert not any("triton" in p or "nvidia" in p for p in server.requests())
        assert installed(venv) == {}

        resolving = len(server.requests())
        ok(run(*pip("--python", venv.python, "install", "--index-url", index_url, PIN), env=env))
        assert sorted(server.wheels_fetched()) == sorted(RESOLVED_FILES)
        assert all(p.endswith((".whl", ".metadata", "/")) for p in server.requests()[resolving:])
    assert installed(venv) == RESOLVED
    assert "triton" not in installed(venv)
    check = ok(run(*pip("--python", venv.python, "check"), env=env))
    assert "No broken requirements found" in check.stdout


# -- 2. uv: pip install, then lock and sync a project -----------------------------------------


def test_uv_pip_install(tmp_path: Path, torch_site: Path) -> None:
    env = client_env(tmp_path)
    venv: Venv = make_venv(tmp_path / "venv")
    with static_server(torch_site, tmp_path / "http.log") as server:
        done = run(tool("uv"), "pip", "install", "--python", venv.python,
                   "--index-url", f"{server.url}/simple/", PIN, env=env)  # fmt: skip
        ok(done)
        assert sorted(server.sidecars_fetched()) == sorted(f"{n}.metadata" for n in RESOLVED_FILES)
        assert sorted(server.wheels_fetched()) == sorted(RESOLVED_FILES)
    assert f"+ torch=={LABELLED}" in done.stderr
    assert installed(venv) == RESOLVED


UV_PROJECT = """\
[project]
name = "app"
version = "0.1"
requires-python = ">=3.8"
dependencies = ["torch==2.0.1+stripe.2"]

[tool.uv]
package = false

[[tool.uv.index]]
name = "site"
url = "{url}/simple/"
default = true
"""


def test_uv_lock_names_the_labelled_version_and_the_page_hash_then_syncs(
    tmp_path: Path, torch_site: Path
) -> None:
    env = client_env(tmp_path, uv_project=True)
    hashes = page_hashes(torch_site)
    project = tmp_path / "app"
    project.mkdir()
    with static_server(torch_site, tmp_path / "http.log") as server:
        (project / "pyproject.toml").write_text(UV_PROJECT.format(url=server.url))
        ok(run(tool("uv"), "lock", "--python", sys.executable, env=env, cwd=project))
        assert server.wheels_fetched() == []  # locked from the sidecars alone
        lock = read_toml(project / "uv.lock")
        packages = {p["name"]: p for p in lock["package"]}
        assert {n: p["version"] for n, p in packages.items() if n != "app"} == RESOLVED
        for name in RESOLVED:
            [wheel] = packages[name]["wheels"]
            filename = urllib.parse.unquote(wheel["url"].rsplit("/", 1)[-1])
            assert packages[name]["source"] == {"registry": f"{server.url}/simple/"}
            assert wheel["hash"] == f"sha256:{hashes[filename]}"
        torch = packages["torch"]
        assert torch["wheels"][0]["url"] == (
            f"{server.url}/files/torch/torch-2.0.1%2Bstripe.2-py3-none-any.whl"
        )
        ok(run(tool("uv"), "sync", "--locked", "--python", sys.executable, env=env, cwd=project))
        assert sorted(server.wheels_fetched()) == sorted(RESOLVED_FILES)
    synced = Venv(project / ".venv")
    assert {k: v for k, v in installed(synced).items() if k != "app"} == RESOLVED


# -- 3. pip download --require-hashes with the page's hashes ----------------------------------


def test_pip_download_require_hashes_with_the_page_hashes(tmp_path: Path, torch_site: Path) -> None:
    env = client_env(tmp_path)
    hashes = page_hashes(torch_site)
    pins = {n: f"{n}=={v}" for n, v in RESOLVED.items()}
    files = {str(parse_wheel_filename(f)[0]): f for f in RESOLVED_FILES}
    good = tmp_path / "good.txt"
    good.write_text("".join(f"{pins[n]} --hash=sha256:{hashes[files[n]]}\n" for n in sorted(pins)))
    wrong = tmp_path / "wrong.txt"
    wrong_torch = hashlib.sha256(b"not the torch wheel").hexdigest()
    # Only torch's line differs: a hash of no file on the page.
    wrong.write_text(good.read_text().replace(hashes[files["torch"]], wrong_torch))
    assert wrong.read_text() != good.read_text()
    with static_server(torch_site, tmp_path / "http.log") as server:
        index_url = f"{server.url}/simple/"
        ok(run(*pip("download", "--require-hashes", "-r", good, "-d", tmp_path / "good",
                    "--index-url", index_url), env=env))  # fmt: skip
        failed = run(*pip("download", "--require-hashes", "-r", wrong, "-d", tmp_path / "wrong",
                          "--index-url", index_url), env=env)  # fmt: skip
    downloaded = {p.name: sha256(p) for p in (tmp_path / "good").iterdir()}
    assert downloaded == {f: hashes[f] for f in RESOLVED_FILES}
    assert failed.returncode != 0
    assert "THESE PACKAGES DO NOT MATCH THE HASHES" in failed.stderr
    assert f"Expected sha256 {wrong_torch}" in failed.stderr
    assert f"Got        {hashes[files['torch']]}" in failed.stderr
    assert not (tmp_path / "wrong" / "torch-2.0.1+stripe.2-py3-none-any.whl").exists()


# -- 4. PDM: lock and sync a project ----------------------------------------------------------


PDM_PROJECT = """\
[project]
name = "app"
version = "0.1"
requires-python = ">=3.8"
dependencies = ["torch==2.0.1+stripe.2"]

[tool.pdm]
distribution = false

[[tool.pdm.source]]
name = "site"
url = "{url}/simple/"
verify_ssl = false
"""


def test_pdm_lock_names_the_labelled_version_then_syncs(tmp_path: Path, torch_site: Path) -> None:
    hashes = page_hashes(torch_site)
    env = pdm_env(tmp_path)
    project = tmp_path / "app"
    project.mkdir()
    with static_server(torch_site, tmp_path / "http.log") as server:
        (project / "pyproject.toml").write_text(PDM_PROJECT.format(url=server.url))
        ok(run(tool("pdm"), "lock", env=env, cwd=project))
        assert server.wheels_fetched() == []  # locked from the sidecars alone
        lock = read_toml(project / "pdm.lock")
        packages = {p["name"]: p for p in lock["package"]}
        assert {n: p["version"] for n, p in packages.items()} == RESOLVED
        for package in packages.values():
            [file] = package["files"]
            assert file["hash"] == f"sha256:{hashes[file['file']]}"
        torch = "torch-2.0.1+stripe.2-py3-none-any.whl"
        assert packages["torch"]["files"] == [{"file": torch, "hash": f"sha256:{hashes[torch]}"}]
        ok(run(tool("pdm"), "sync", env=env, cwd=project))
        assert sorted(server.wheels_fetched()) == sorted(RESOLVED_FILES)
    assert installed(Venv(project / ".venv")) == RESOLVED


# -- 5. the pages, read with mousebender ------------------------------------------------------


def _site_path(site: Path, project: str, url: str) -> Path:
    """The file in SITE a link on ``project``'s page leads to (relative links only)."""
    page = f"http://site.invalid/simple/{project}/"
    path = urllib.parse.unquote(urllib.parse.urlsplit(urllib.parse.urljoin(page, url)).path)
    target = (site / path.lstrip("/")).resolve()
    assert target.is_relative_to(site.resolve()), url
    return target


def _without(mapping: Mapping[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in mapping.items() if k not in keys}


def test_every_page_parses_with_mousebender_and_agrees_with_the_files(
    tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    wheelhouse = make_wheelhouse(tmp_path / "wheelhouse")
    patch_torch(cli, wheelhouse, tmp_path / "patched")
    # A name to normalize and a Requires-Python that HTML must escape.
    build_wheel(wheelhouse, WheelSpec(name="Demo.Pkg", version="1.0", requires_python=">=3.8,<4"))
    build_wheel(wheelhouse, WheelSpec(name="Demo.Pkg", version="1.1", requires_python=">=3.8,<4"))
    site = tmp_path / "site"
    index(cli, site, wheelhouse, tmp_path / "patched")
    given = sorted([*wheelhouse.glob("*.whl"), *(tmp_path / "patched").glob("*.whl")])
    projects = sorted({str(parse_wheel_filename(w.name)[0]) for w in given})
    assert "demo-pkg" in projects

    root_html = parse_project_index((site / "simple" / "index.html").read_text(), "text/html")
    root_json = parse_project_index((site / "simple" / "index.json").read_text(), ACCEPT_JSON_V1)
    assert [p["name"] for p in root_html["projects"]] == projects
    assert root_json == {
        "meta": {"api-version": "1.1"},
        "projects": [{"name": p} for p in projects],
    }

    seen = {}
    required = ProjectFileDetails_1_1.__required_keys__
    allowed = required | ProjectFileDetails_1_1.__optional_keys__
    for project in projects:
        document = json_page(site, project)
        assert set(document) == ProjectDetails_1_1.__required_keys__  # meta, name, files, versions
        assert document["name"] == project
        from_html = html_page(site, project)
        assert from_html["name"] == project
        versions = sorted({parse_wheel_filename(f["filename"])[1] for f in document["files"]})
        assert document["versions"] == [str(v) for v in versions]  # PEP 700
        # HTML and JSON name the same files, links, hashes, Requires-Python and metadata hashes.
        assert [_without(f, "size") for f in document["files"]] == [
            {**f, "yanked": f.get("yanked", False)} for f in from_html["files"]
        ]
        for file in document["files"]:
            assert required <= set(file) <= allowed, file
            path = _site_path(site, project, file["url"])
            assert path.name == file["filename"]
            assert sha256(path) == file["hashes"]["sha256"]
            assert file["size"] == path.stat().st_size
            sidecar = path.with_name(f"{path.name}.metadata")
            assert sidecar.read_bytes() == wheel_metadata(path)  # byte for byte
            assert file["core-metadata"] == {"sha256": sha256(sidecar)}
            assert file["dist-info-metadata"] == file["core-metadata"]
            assert file["yanked"] is False
            seen[file["filename"]] = path
    # Every file given is listed once, and is the file given.
    assert sorted(seen) == sorted(w.name for w in given)
    for wheel in given:
        assert seen[wheel.name].read_bytes() == wheel.read_bytes()
    demo = {f["filename"]: f for f in json_page(site, "demo-pkg")["files"]}
    assert demo["Demo_Pkg-1.0-py3-none-any.whl"]["requires-python"] == ">=3.8,<4"
    assert (
        'data-requires-python="&gt;=3.8,&lt;4"'
        in (site / "simple" / "demo-pkg" / "index.html").read_text()
    )


def test_a_sidecar_that_does_not_match_its_page_is_refused_by_pip(
    tmp_path: Path, torch_site: Path
) -> None:
    """The metadata hash on the page is checked by the client: a tampered sidecar fails the
    resolution (so the hashes the other tests compare are the ones that protect the user)."""
    env = client_env(tmp_path)
    sidecar = torch_site / "files" / "torch" / "torch-2.0.1+stripe.2-py3-none-any.whl.metadata"
    sidecar.write_bytes(sidecar.read_bytes().replace(b"Requires-Dist: filelock\n", b""))
    venv: Venv = make_venv(tmp_path / "venv")
    with static_server(torch_site, tmp_path / "http.log") as server:
        done = run(*pip("--python", venv.python, "install", "--dry-run",
                        "--index-url", f"{server.url}/simple/", PIN), env=env)  # fmt: skip
    assert done.returncode != 0
    assert "THESE PACKAGES DO NOT MATCH THE HASHES" in done.stderr
    assert sha256(sidecar) in done.stderr


# -- 6. --base-url: the pages on one server, the files on another ----------------------------


def test_base_url_pages_from_one_server_files_from_another(
    tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    wheelhouse = make_wheelhouse(tmp_path / "wheelhouse")
    patch_torch(cli, wheelhouse, tmp_path / "patched")
    site = tmp_path / "site"
    (site / "files").mkdir(parents=True)
    env = client_env(tmp_path)
    venv: Venv = make_venv(tmp_path / "venv")
    # The "object store" serves SITE/files/ at its root; the pages link there.
    with static_server(site / "files", tmp_path / "files.log") as store:
        index(cli, site, wheelhouse, tmp_path / "patched", "--base-url", f"{store.url}/")
        with static_server(site / "simple", tmp_path / "simple.log") as pages:
            urls = [f["url"] for f in json_page(site, "torch")["files"]]
            assert urls == [
                f"{store.url}/torch/torch-2.0.1-py3-none-any.whl",
                f"{store.url}/torch/torch-2.0.1%2Bstripe.2-py3-none-any.whl",
            ]
            assert (
                f'href="{store.url}/torch/torch-2.0.1%2Bstripe.2-py3-none-any.whl#sha256='
                in (site / "simple" / "torch" / "index.html").read_text()
            )
            ok(run(*pip("--python", venv.python, "install", "--index-url", f"{pages.url}/",
                        PIN), env=env))  # fmt: skip
            page_requests = pages.requests()
            file_requests = store.requests()
    assert sorted(page_requests) == sorted(f"/{n}/" for n in RESOLVED)  # pages only
    assert sorted(store.sidecars_fetched()) == sorted(f"{n}.metadata" for n in RESOLVED_FILES)
    assert sorted(store.wheels_fetched()) == sorted(RESOLVED_FILES)
    assert all(p.endswith((".whl", ".whl.metadata")) for p in file_requests)  # files only
    assert installed(venv) == RESOLVED
    ok(run(*pip("--python", venv.python, "check"), env=env))


# -- 7. --yank: skipped for a range, installed for an exact pin (PEP 592) ---------------------

YANK_REASON = "broken: use <2.0.1+stripe.3> & later"


def test_yanked_file_is_skipped_for_a_range_and_installed_for_an_exact_pin(
    tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    wheelhouse = make_wheelhouse(tmp_path / "wheelhouse")
    patch_torch(cli, wheelhouse, tmp_path / "patched")
    site = tmp_path / "site"
    yanked = "torch-2.0.1+stripe.2-py3-none-any.whl"
    no_reason = "nvidia_cudnn_cu12-8.9.2.26-py3-none-any.whl"
    index(cli, site, wheelhouse, tmp_path / "patched",
          "--yank", f"{yanked}={YANK_REASON}", "--yank", no_reason)  # fmt: skip
    torch_json = {f["filename"]: f for f in json_page(site, "torch")["files"]}
    torch_html = {f["filename"]: f for f in html_page(site, "torch")["files"]}
    assert torch_json[yanked]["yanked"] == YANK_REASON
    assert torch_html[yanked]["yanked"] == YANK_REASON  # unescaped by the parser
    assert (
        f'data-yanked="{html.escape(YANK_REASON)}"'
        in (site / "simple" / "torch" / "index.html").read_text()
    )
    assert torch_json["torch-2.0.1-py3-none-any.whl"]["yanked"] is False
    assert "yanked" not in torch_html["torch-2.0.1-py3-none-any.whl"]
    # Yanked with no reason: true in JSON, an empty data-yanked in HTML.
    [cudnn_json] = json_page(site, "nvidia-cudnn-cu12")["files"]
    [cudnn_html] = html_page(site, "nvidia-cudnn-cu12")["files"]
    assert cudnn_json["yanked"] is True
    assert cudnn_html["yanked"] is True
    assert 'data-yanked=""' in (site / "simple" / "nvidia-cudnn-cu12" / "index.html").read_text()

    env = client_env(tmp_path)
    venv: Venv = make_venv(tmp_path / "venv")
    report = tmp_path / "range.json"
    with static_server(site, tmp_path / "http.log") as server:
        index_url = f"{server.url}/simple/"
        ok(run(*pip("--python", venv.python, "install", "--dry-run", "--quiet", "--report",
                    report, "--index-url", index_url, "torch>=2"), env=env))  # fmt: skip
        chosen = {
            i["metadata"]["name"]: i["metadata"]["version"]
            for i in json.loads(report.read_text())["install"]
        }
        assert chosen["torch"] == "2.0.1"  # the higher 2.0.1+stripe.2 is yanked
        if sys.platform == "linux":  # where the unpatched torch pins nvidia-cudnn-cu12==8.9.2.26
            assert chosen["nvidia-cudnn-cu12"] == "8.9.2.26"  # yanked, and pinned exactly
        assert f"{yanked}.metadata" not in server.sidecars_fetched()
        pinned = ok(run(*pip("--python", venv.python, "install", "--index-url", index_url,
                             PIN), env=env))  # fmt: skip
    assert installed(venv) == RESOLVED
    assert "yanked" in pinned.stderr
    assert YANK_REASON in pinned.stderr


# -- 8. the one-step flow: patch --index, then install ----------------------------------------


def test_patch_with_index_publishes_in_one_step(
    tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    wheelhouse = make_wheelhouse(tmp_path / "wheelhouse")
    site = tmp_path / "site"
    index(cli, site, wheelhouse)  # what the team had published already
    before = json_page(site, "torch")["versions"]
    assert before == ["2.0.1"]
    result = patch_torch(cli, wheelhouse, tmp_path / "patched", "--index", site)
    assert f"{site}: 11 file(s) of 9 project(s) indexed" in result.out
    assert json_page(site, "torch")["versions"] == ["2.0.1", LABELLED]
    assert json_page(site, "triton")["versions"] == ["2.0.0", "2.0.0+stripe.2"]
    assert sorted(page_hashes(site)) == sorted(
        [p.name for p in wheelhouse.glob("*.whl")]
        + [p.name for p in (tmp_path / "patched").glob("*.whl")]
    )
    env = client_env(tmp_path)
    venv: Venv = make_venv(tmp_path / "venv")
    with static_server(site, tmp_path / "http.log") as server:
        ok(run(*pip("--python", venv.python, "install", "--index-url", f"{server.url}/simple/",
                    PIN), env=env))  # fmt: skip
        assert sorted(server.wheels_fetched()) == sorted(RESOLVED_FILES)
    assert installed(venv) == RESOLVED
    ok(run(*pip("--python", venv.python, "check"), env=env))
    [dist_info] = [d for d in venv.dist_infos() if d.startswith("torch-")]
    provenance = json.loads((venv.site / dist_info / "wheelpatch.json").read_text())
    assert provenance["version"]["after"] == LABELLED
