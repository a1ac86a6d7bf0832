"""``wheelpatch serve`` end to end: real clients (pip, uv, PDM) resolve, lock and install the
patched torch through the proxy, a real process in front of real upstreams (pypiserver, a
``file://`` index, a ``wheelpatch index`` site behind http.server or nginx).

The upstreams' request logs say what the proxy asked of them: resolving reads only byte ranges of
the torch wheel, which is fetched whole once, when the patched wheel is first built."""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
import re
import sys
import time
import urllib.parse
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from mousebender.simple import parse_project_details

from wheelpatch.index.listing import JSON_TYPE
from wheelpatch.rules.config import read_toml

from ..conftest import CliResult, WheelSpec, build_wheel
from ..hermetic import hermetic_env
from ..venvs import Venv, make_venv
from .serving import (
    CONFIG,
    LABELLED,
    PATCHED_TORCH,
    Proxy,
    Upstream,
    make_wheelhouse,
    pypiserver,
    serve,
)
from .test_clients import (
    PDM_PROJECT,
    RESOLVED,
    UV_PROJECT,
    client_env,
    installed,
    ok,
    pdm_env,
    pip,
    run,
    static_server,
    tool,
    wheel_metadata,
)
from .test_nginx import fetch, nginx

pytestmark = pytest.mark.slow

TORCH = "torch-2.0.1-py3-none-any.whl"
#: Stored, incompressible bytes in the big torch stand-in: far more than resolving may read.
PAYLOAD = 8 << 20
PATCHED_URL = "/files/torch/" + urllib.parse.quote(PATCHED_TORCH)
#: What no resolution of the patched torch may ask for.
REMOVED = ("triton", "nvidia", "cuda")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def big_torch(wheelhouse: Path) -> Path:
    """The stand-in torch again, with its METADATA (and so its requirements) unchanged but a few
    MB of stored random bytes before its ``.dist-info``: big enough that a full download shows."""
    small = wheelhouse / TORCH
    spec = WheelSpec(
        name="torch",
        version="2.0.1",
        files={
            "torch/__init__.py": b"__version__ = '2.0.1'\n",
            "torch/_C.so": random.Random(0).randbytes(PAYLOAD),
        },
        metadata=wheel_metadata(small),
        compression=zipfile.ZIP_STORED,
    )
    path = build_wheel(wheelhouse, spec)
    assert path == small
    assert path.stat().st_size > PAYLOAD
    return path


@pytest.fixture
def wheelhouse(tmp_path: Path) -> Path:
    """The example's stand-ins, torch the big one."""
    house = make_wheelhouse(tmp_path / "wheelhouse")
    big_torch(house)
    return house


@pytest.fixture
def upstream(wheelhouse: Path) -> Iterator[Upstream]:
    with pypiserver(wheelhouse) as server:
        yield server


def page_files(index: str, project: str, accept: str) -> tuple[str, list[dict[str, Any]]]:
    """The media type of a project's page at ``index`` asked for with ``accept``, and its files
    as mousebender parses that type."""
    kind, body = fetch(f"{index}{project}/", accept)
    media = kind.split(";", 1)[0].strip()
    details: Any = parse_project_details(body.decode(), media, project)
    return media, list(details["files"])


def json_files(index: str, project: str) -> list[dict[str, Any]]:
    """The files of a project's PEP 691 page at ``index``."""
    media, files = page_files(index, project, JSON_TYPE)
    assert media == JSON_TYPE
    return files


_GET = re.compile(r'"GET (\S+) HTTP/1\.[01]" (\d{3}) (\d+|-)')


def torch_gets(upstream: Upstream) -> list[tuple[int, int]]:
    """(status, bytes sent) of every GET of the upstream torch wheel, in order (a HEAD, which
    only asks whether ranges are served, sends none of it)."""
    return [
        (int(status), 0 if sent == "-" else int(sent))
        for path, status, sent in _GET.findall(upstream.log.read_text("utf-8", "replace"))
        if urllib.parse.unquote(path).rsplit("/", 1)[-1] == TORCH
    ]


def full_downloads(upstream: Upstream) -> list[int]:
    """Bytes of every whole-file answer the upstream gave for the torch wheel."""
    return [n for status, n in torch_gets(upstream) if status == 200]


def requires_dist(metadata: str) -> list[str]:
    return [
        line.split(":", 1)[1].strip()
        for line in metadata.splitlines()
        if line.startswith("Requires-Dist:")
    ]


# -- 1. pip: resolved from range reads, then installed ---------------------------------------


def test_pip_resolves_from_range_reads_alone_then_installs(
    tmp_path: Path, wheelhouse: Path, upstream: Upstream
) -> None:
    size = (wheelhouse / TORCH).stat().st_size
    env = client_env(tmp_path)
    venv: Venv = make_venv(tmp_path / "venv")
    report = tmp_path / "report.json"
    with serve(tmp_path, [upstream.index]) as proxy:
        ok(run(*pip("--python", venv.python, "install", "--dry-run", "--quiet", "--report",
                    report, "--index-url", proxy.index, "torch"), env=env))  # fmt: skip
        resolved = {i["metadata"]["name"]: i for i in json.loads(report.read_text())["install"]}
        assert {n: i["metadata"]["version"] for n, i in resolved.items()} == RESOLVED
        torch = resolved["torch"]
        assert torch["download_info"]["url"] == proxy.url + PATCHED_URL
        assert "filelock" in torch["metadata"]["requires_dist"]
        assert not [r for r in torch["metadata"]["requires_dist"] if r.startswith(REMOVED)]
        # The proxy worked out the patched METADATA from ranges of the upstream wheel: never all
        # of it, a small part in all; and nothing was asked of the requirements it removed.
        reads = torch_gets(upstream)
        assert reads
        assert {status for status, _ in reads} == {206}, reads
        assert sum(n for _, n in reads) < size // 50, reads
        assert not [p for p, _, _ in upstream.requests() if any(w in p for w in REMOVED)]

        ok(run(*pip("--python", venv.python, "install", "--index-url", proxy.index, "torch"),
               env=env))  # fmt: skip
        # Installing built the patched wheel: the one time the upstream wheel came whole.
        assert full_downloads(upstream) == [size]
    assert installed(venv) == RESOLVED
    check = ok(run(*pip("--python", venv.python, "check"), env=env))
    assert "No broken requirements found" in check.stdout
    metadata = (venv.dist_info("torch", LABELLED) / "METADATA").read_text("utf-8")
    requires = requires_dist(metadata)
    assert "filelock" in requires
    assert not [r for r in requires if r.startswith(REMOVED)]
    assert f"Version: {LABELLED}\n" in metadata


# -- 2. uv pip install ------------------------------------------------------------------------


def test_uv_pip_install(tmp_path: Path, upstream: Upstream) -> None:
    env = client_env(tmp_path)
    venv: Venv = make_venv(tmp_path / "venv")
    with serve(tmp_path, [upstream.index]) as proxy:
        done = ok(run(tool("uv"), "pip", "install", "--python", venv.python,
                      "--index-url", proxy.index, "torch", env=env))  # fmt: skip
        log = proxy.log_text()
    assert f"+ torch=={LABELLED}" in done.stderr
    assert installed(venv) == RESOLVED
    assert not [n for n in installed(venv) if n.startswith(REMOVED)]
    # uv read the patched METADATA from the proxy's sidecar, then downloaded the wheel.
    assert f"GET /files/torch/{PATCHED_TORCH}.metadata 200" in log
    assert f"GET /files/torch/{PATCHED_TORCH} 200" in log


# -- 3. uv lock / sync --locked, the wheel warmed first ----------------------------------------


def test_uv_lock_records_the_warmed_wheels_hash_then_syncs(
    tmp_path: Path, wheelhouse: Path, upstream: Upstream
) -> None:
    cache = tmp_path / "cache"
    warmed = ok(run(sys.executable, "-m", "wheelpatch", "warm", "--json", f"torch=={LABELLED}",
                    "--upstream", upstream.index, "--config", CONFIG, "--cache-dir", cache,
                    env=hermetic_env()))  # fmt: skip
    [entry] = json.loads(warmed.stdout)
    assert entry["filename"] == PATCHED_TORCH
    assert full_downloads(upstream) == [(wheelhouse / TORCH).stat().st_size]
    env = client_env(tmp_path, uv_project=True)
    project = tmp_path / "app"
    project.mkdir()
    with serve(tmp_path, [upstream.index], cache_dir=cache) as proxy:
        [listed] = json_files(proxy.index, "torch")
        assert listed["filename"] == PATCHED_TORCH
        assert listed["hashes"] == {"sha256": entry["sha256"]}  # from the first page
        _, served = fetch(proxy.url + PATCHED_URL)
        assert sha256(served) == entry["sha256"]
        assert len(served) == listed["size"] == entry["size"]

        (project / "pyproject.toml").write_text(UV_PROJECT.format(url=proxy.url))
        ok(run(tool("uv"), "lock", "--python", sys.executable, env=env, cwd=project))
        lock = read_toml(project / "uv.lock")
        packages = {p["name"]: p for p in lock["package"]}
        assert {n: p["version"] for n, p in packages.items() if n != "app"} == RESOLVED
        torch = packages["torch"]
        assert torch["source"] == {"registry": proxy.index}
        [wheel] = torch["wheels"]
        assert wheel["url"] == proxy.url + PATCHED_URL
        assert wheel["hash"] == f"sha256:{sha256(served)}"
        ok(run(tool("uv"), "sync", "--locked", "--python", sys.executable, env=env, cwd=project))
    synced = Venv(project / ".venv")
    assert {k: v for k, v in installed(synced).items() if k != "app"} == RESOLVED
    # Served from the cache warm filled: the upstream wheel was never fetched whole again.
    assert len(full_downloads(upstream)) == 1


# -- 4. PDM lock and sync, the proxy --eager ---------------------------------------------------


def listed_with_hash(proxy: Proxy, timeout: float = 60) -> dict[str, Any]:
    """The patched torch's entry of the proxy's page, once it lists a sha256."""
    deadline = time.monotonic() + timeout
    while True:
        [listed] = json_files(proxy.index, "torch")
        if listed["hashes"].get("sha256"):
            return listed
        assert time.monotonic() < deadline, f"no hash listed; the log:\n{proxy.log_text()}"
        time.sleep(0.1)


def test_pdm_locks_and_syncs_through_an_eager_proxy(tmp_path: Path, upstream: Upstream) -> None:
    env = pdm_env(tmp_path)
    project = tmp_path / "app"
    project.mkdir()
    with serve(tmp_path, [upstream.index], "--eager") as proxy:
        listed = listed_with_hash(proxy)
        # Built ahead because the page was served: no client had asked for the wheel.
        assert f"GET /files/torch/{PATCHED_TORCH} " not in proxy.log_text()
        _, served = fetch(proxy.url + PATCHED_URL)
        assert sha256(served) == listed["hashes"]["sha256"]

        (project / "pyproject.toml").write_text(PDM_PROJECT.format(url=proxy.url))
        ok(run(tool("pdm"), "lock", env=env, cwd=project))
        lock = read_toml(project / "pdm.lock")
        packages = {p["name"]: p for p in lock["package"]}
        assert {n: p["version"] for n, p in packages.items()} == RESOLVED
        assert packages["torch"]["files"] == [
            {"file": PATCHED_TORCH, "hash": f"sha256:{sha256(served)}"}
        ]
        ok(run(tool("pdm"), "sync", env=env, cwd=project))
    synced = Venv(project / ".venv")
    assert installed(synced) == RESOLVED
    requires = requires_dist((synced.dist_info("torch", LABELLED) / "METADATA").read_text())
    assert not [r for r in requires if r.startswith(REMOVED)]


# -- 5. other upstreams: a file:// index, a wheelpatch index site behind http.server -----------


def index_site(cli: Callable[..., CliResult], site: Path, *args: str | Path) -> Path:
    result = cli("index", "-o", site, *args)
    assert result.code == 0, result.err
    assert (site / "simple" / "torch" / "index.html").is_file()
    return site


@pytest.mark.parametrize("kind", ["file", "http.server"])
def test_pip_installs_through_a_proxy_of_a_wheelpatch_index_site(
    tmp_path: Path, cli: Callable[..., CliResult], kind: str
) -> None:
    wheelhouse = make_wheelhouse(tmp_path / "wheelhouse")
    site = index_site(cli, tmp_path / "site", wheelhouse)
    env = client_env(tmp_path)
    venv: Venv = make_venv(tmp_path / "venv")
    with contextlib.ExitStack() as stack:
        if kind == "file":
            server = None
            index = site.as_uri() + "/simple/"
        else:
            server = stack.enter_context(static_server(site, tmp_path / "http.log"))
            index = server.url + "/simple/"
        proxy = stack.enter_context(serve(tmp_path, [index]))
        [listed] = json_files(proxy.index, "torch")
        assert listed["filename"] == PATCHED_TORCH
        ok(run(*pip("--python", venv.python, "install", "--index-url", proxy.index, "torch"),
               env=env))  # fmt: skip
    assert installed(venv) == RESOLVED
    ok(run(*pip("--python", venv.python, "check"), env=env))
    requires = requires_dist((venv.dist_info("torch", LABELLED) / "METADATA").read_text())
    assert not [r for r in requires if r.startswith(REMOVED)]
    built = [line for line in proxy.log_text().splitlines() if f"{PATCHED_TORCH}: built" in line]
    assert len(built) == 1, proxy.log_text()
    if server is not None:
        # http.server answers no ranges: the proxy planned from the PEP 658 sidecar, and
        # fetched the wheel whole once, to build it.
        assert f"{TORCH}.metadata" in server.sidecars_fetched()
        assert server.wheels_fetched().count(TORCH) == 1
        assert not [p for p in server.requests() if any(w in p for w in REMOVED)]


# -- 6. pass-through: a project without an override, as the upstream lists it ------------------

#: What the proxy must list of a file as the upstream did (the URL is checked on its own).
KEPT = ("filename", "hashes", "requires-python", "core-metadata", "size")


def kept(file: dict[str, Any]) -> dict[str, Any]:
    """What the proxy must keep of a listed file (an HTML page says nothing of a file that is
    not yanked, where JSON says false)."""
    return {**{k: file.get(k) for k in KEPT}, "yanked": file.get("yanked", False)}


_LOGGED = re.compile(r'"GET (\S+) HTTP/1\.[01]" (\d{3})')


@contextlib.contextmanager
def site_server(kind: str, site: Path, work: Path) -> Iterator[tuple[str, Callable[[], str]]]:
    """SITE behind http.server (its HTML pages: a file server cannot negotiate) or behind nginx
    with the README's snippet (JSON to a client that asks for it); its URL and its log's text."""
    work.mkdir()
    if kind == "http.server":
        with static_server(site, work / "http.log") as server:
            yield server.url, lambda: server.log.read_text("utf-8", "replace")
    else:
        with nginx(site, work) as (url, log):
            yield url, lambda: log.read_text("utf-8", "replace")


def fetched(log: str) -> list[str]:
    return [urllib.parse.unquote(path) for path, status in _LOGGED.findall(log) if status == "200"]


@pytest.mark.parametrize(
    ("kind", "media"),
    [
        pytest.param("http.server", "text/html", id="http.server-html"),
        pytest.param("nginx", JSON_TYPE, id="nginx-json"),
    ],
)
def test_a_project_without_override_passes_through_as_the_upstream_lists_it(
    tmp_path: Path, cli: Callable[..., CliResult], kind: str, media: str
) -> None:
    wheelhouse = make_wheelhouse(tmp_path / "wheelhouse")
    # A second version whose Requires-Python must be escaped in HTML, and the first one yanked.
    build_wheel(
        wheelhouse, WheelSpec(name="filelock", version="3.14.0", requires_python=">=3.8,<4")
    )
    old = "filelock-3.13.1-py3-none-any.whl"
    new = "filelock-3.14.0-py3-none-any.whl"
    site = index_site(cli, tmp_path / "site", wheelhouse, "--yank", f"{old}=use <3.14> & later")
    env = client_env(tmp_path)
    venv: Venv = make_venv(tmp_path / "venv")
    with site_server(kind, site, tmp_path / kind) as (url, log):
        index = url + "/simple/"
        # The upstream's own page, asked for as the proxy asks (JSON first).
        seen, theirs = page_files(index, "filelock", f"{JSON_TYPE}, text/html;q=0.01")
        assert seen == media
        assert sorted(f["filename"] for f in theirs) == [old, new]
        if media == JSON_TYPE:  # sizes are compared too, not only absent on both sides
            files = (site / "files" / "filelock").glob("*.whl")
            assert {f["filename"]: f["size"] for f in theirs} == {
                p.name: p.stat().st_size for p in files
            }
        expected = [kept(f) for f in theirs]
        assert {f["filename"]: f.get("yanked") for f in theirs}[old] == "use <3.14> & later"

        with serve(tmp_path, [index], name="upstream-links") as proxy:
            ours = json_files(proxy.index, "filelock")
            assert [kept(f) for f in ours] == expected
            page = f"{index}filelock/"
            assert [f["url"] for f in ours] == [
                urllib.parse.urljoin(page, f["url"]) for f in theirs
            ]
            assert all(f["url"].startswith(f"{url}/files/filelock/") for f in ours)

        before = len(fetched(log()))
        with serve(tmp_path, [index], "--links", "proxy", name="proxy-links") as proxy:
            ours = json_files(proxy.index, "filelock")
            assert [kept(f) for f in ours] == expected
            page = f"{proxy.index}filelock/"
            assert [urllib.parse.urljoin(page, f["url"]) for f in ours] == [
                f"{proxy.url}/files/filelock/{urllib.parse.quote(f['filename'])}" for f in theirs
            ]
            ok(run(*pip("--python", venv.python, "install", "--index-url", proxy.index,
                        "filelock"), env=env))  # fmt: skip
            proxied = proxy.log_text()
        upstream_fetched = fetched(log())[before:]
    assert installed(venv) == {"filelock": "3.14.0"}
    # pip asked the proxy alone; the proxy fetched the sidecar and the wheel from the upstream.
    assert f"GET /files/filelock/{new}.metadata 200" in proxied
    assert f"GET /files/filelock/{new} 200" in proxied
    assert f"/files/filelock/{new}.metadata" in upstream_fetched
    assert upstream_fetched.count(f"/files/filelock/{new}") == 1
    assert f"/files/filelock/{old}" not in upstream_fetched


# -- 7. the same bytes from every proxy, and from wheelpatch patch -----------------------------


def test_two_proxies_and_patch_make_byte_identical_wheels(
    tmp_path: Path, wheelhouse: Path, upstream: Upstream, cli: Callable[..., CliResult]
) -> None:
    with (
        serve(tmp_path, [upstream.index], name="a") as first,
        serve(tmp_path, [upstream.index], name="b") as second,
    ):
        assert first.cache_dir != second.cache_dir
        pages = [json_files(p.index, "torch") for p in (first, second)]
        served = [fetch(p.url + PATCHED_URL)[1] for p in (first, second)]
    assert len(full_downloads(upstream)) == 2  # each built its own
    out = tmp_path / "patched"
    result = cli("patch", "--config", CONFIG, "-o", out, wheelhouse / TORCH)
    assert result.code == 0, result.err
    patched = (out / PATCHED_TORCH).read_bytes()
    assert sha256(served[0]) == sha256(served[1]) == sha256(patched)
    assert served[0] == served[1] == patched
    # What the pages announced before either wheel was built: its size and METADATA's hash.
    assert pages[0] == pages[1]
    [listed] = pages[0]
    assert listed["size"] == len(patched)
    assert listed["core-metadata"] == {"sha256": sha256(wheel_metadata(out / PATCHED_TORCH))}
