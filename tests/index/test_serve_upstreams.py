"""``wheelpatch serve`` against upstreams as they are in the field: an index behind basic auth
whose files redirect to a CDN on another host (a real nginx with two servers), credentials from
the URL or from netrc, and an upstream that stops answering (timeouts)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from wheelpatch.index.listing import JSON_TYPE

from ..hermetic import hermetic_env
from ..servers import free_port, nginx
from ..venvs import make_venv
from .serving import LABELLED, PATCHED_TORCH, make_wheelhouse, pypiserver, serve
from .test_clients import static_server

pytestmark = pytest.mark.slow

SECRET = "s3cr3t-t0ken"
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def get(url: str, accept: str | None = None) -> tuple[int, bytes, dict[str, str]]:
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    try:
        with _OPENER.open(request, timeout=60) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), dict(exc.headers)


@dataclass
class Nginx:
    index: str  # the index server (basic auth; its /files/ redirect to the CDN)
    cdn: str
    log: Path

    def lines(self) -> list[list[str]]:
        """Each request as (server port, remote user, path, status, authorization)."""
        return [line.split("\t") for line in self.log.read_text().splitlines()]


@contextlib.contextmanager
def index_with_cdn(site: Path, work: Path) -> Iterator[Nginx]:
    """nginx with two servers on free loopback ports: the index (basic auth, user ``team``)
    whose ``/files/`` answer 302 to the same path on the CDN (no auth), both serving ``site``."""
    index_port, cdn_port = free_port(), free_port()
    (work / "htpasswd").write_text(f"team:{{PLAIN}}{SECRET}\n")
    servers = (
        f"    server {{ listen 127.0.0.1:{index_port}; root {site};\n"
        f'        auth_basic "team"; auth_basic_user_file {work / "htpasswd"};\n'
        f"        location /files/ {{ return 302 http://127.0.0.1:{cdn_port}$request_uri; }}\n"
        "    }\n"
        f"    server {{ listen 127.0.0.1:{cdn_port}; root {site}; }}\n"
    )
    log_format = "$server_port\\t$remote_user\\t$uri\\t$status\\t$http_authorization"
    with nginx(work, servers, f"http://127.0.0.1:{cdn_port}/simple/", log_format) as log:
        yield Nginx(f"http://127.0.0.1:{index_port}", f"http://127.0.0.1:{cdn_port}", log)


def site_of(tmp_path: Path) -> Path:
    wheelhouse = make_wheelhouse(tmp_path / "wheelhouse")
    site = tmp_path / "site"
    done = subprocess.run(
        [sys.executable, "-m", "wheelpatch", "index", "-o", site, wheelhouse],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return site


def pip_install(tmp_path: Path, index: str, *requirements: str) -> subprocess.CompletedProcess[str]:
    venv = make_venv(tmp_path / "venv")
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            venv.python,
            "install",
            "--index-url",
            index,
            *requirements,
        ],
        env=hermetic_env(),
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


@pytest.fixture
def cdn(tmp_path: Path) -> Iterator[Nginx]:
    work = tmp_path / "nginx"
    work.mkdir()
    with index_with_cdn(site_of(tmp_path), work) as server:
        yield server


def test_credentials_in_the_url_reach_the_index_only_and_redirects_are_followed(
    tmp_path: Path, cdn: Nginx
) -> None:
    upstream = cdn.index.replace("http://", f"http://team:{SECRET}@") + "/simple/"
    with serve(tmp_path, [upstream], "--links", "proxy") as proxy:
        done = pip_install(tmp_path, proxy.index, f"torch=={LABELLED}")
        assert done.returncode == 0, done.stderr
        assert "triton" not in done.stdout
        status, page, _ = get(proxy.index + "torch/", JSON_TYPE)
        assert status == 200
        _, health, _ = get(proxy.url + "/health")
        served = page + health
    index_port, cdn_port = cdn.index.rsplit(":", 1)[1], cdn.cdn.rsplit(":", 1)[1]
    lines = cdn.lines()
    index_lines = [line for line in lines if line[0] == index_port]
    cdn_lines = [line for line in lines if line[0] == cdn_port]
    # The index was asked with the credentials; its file links answered 302 to the CDN, which
    # served the ranges and the wheels, and never saw them.
    assert index_lines
    assert all(line[1] == "team" for line in index_lines), index_lines
    assert any(line[3] == "302" and line[2].endswith(".whl") for line in index_lines)
    assert any(line[2] == "/files/torch/torch-2.0.1-py3-none-any.whl" for line in cdn_lines)
    assert all(line[4] == "-" for line in cdn_lines), cdn_lines
    # and nothing the proxy said or logged repeats the secret
    assert SECRET.encode() not in served
    assert SECRET not in proxy.log_text()
    assert "GET /files/torch/torch-2.0.1%2Bstripe.2" in proxy.log_text() or (
        "GET /files/torch/torch-2.0.1+stripe.2" in proxy.log_text()
    )


def test_credentials_from_netrc(
    tmp_path: Path, cdn: Nginx, monkeypatch: pytest.MonkeyPatch
) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine 127.0.0.1 login team password {SECRET}\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))  # the hermetic environment keeps NETRC
    with serve(tmp_path, [cdn.index + "/simple/"]) as proxy:
        status, body, _ = get(proxy.index + "torch/")
        assert status == 200, body
        assert PATCHED_TORCH.encode() in body
    assert SECRET not in proxy.log_text()


def test_without_credentials_the_index_refusal_is_one_line(tmp_path: Path, cdn: Nginx) -> None:
    with serve(tmp_path, [cdn.index + "/simple/"]) as proxy:
        status, body, _ = get(proxy.index + "torch/")
    assert status == 502
    assert body.decode().count("\n") == 1
    assert body.decode() == f"{cdn.index}/simple/torch/: answered 401\n"


def test_an_upstream_that_stops_answering_times_out_with_503(tmp_path: Path) -> None:
    wheelhouse = make_wheelhouse(tmp_path / "wheelhouse")
    with pypiserver(wheelhouse) as upstream:
        pid = upstream.process.pid
        with serve(tmp_path, [upstream.index], "--timeout", "1", "--retries", "0") as proxy:
            os.kill(pid, signal.SIGSTOP)
            try:
                status, body, _ = get(proxy.index + "torch/")
            finally:
                os.kill(pid, signal.SIGCONT)
            assert status == 503
            assert body.decode() == f"{upstream.index}torch/: timed out\n"
            status, _, _ = get(proxy.index + "torch/")  # answering again: served again
            assert status == 200


def test_an_upstream_without_ranges_is_read_through_its_metadata_files(tmp_path: Path) -> None:
    """``python -m http.server`` answers no range request: the patched METADATA comes from the
    site's PEP 658 metadata file, no wheel is fetched to resolve, and the size is listed once the
    wheel is built."""
    site = site_of(tmp_path)
    with (
        static_server(site, tmp_path / "http.log") as upstream,
        serve(tmp_path, [upstream.url + "/simple/"]) as proxy,
    ):
        status, body, _ = get(proxy.index + "torch/", JSON_TYPE)
        assert status == 200
        page = json.loads(body)
        [entry] = page["files"]
        assert entry["filename"] == PATCHED_TORCH
        assert "size" not in entry  # not built: unknown without ranges, and not guessed
        assert page["meta"]["api-version"] == "1.0"
        _, metadata, _ = get(proxy.url + "/files/torch/" + PATCHED_TORCH + ".metadata")
        assert hashlib.sha256(metadata).hexdigest() == entry["core-metadata"]["sha256"]
        assert b"triton" not in metadata
        assert upstream.sidecars_fetched() == ["torch-2.0.1-py3-none-any.whl.metadata"]
        assert upstream.wheels_fetched() == []
        status, wheel, headers = get(proxy.url + "/files/torch/" + PATCHED_TORCH)
        assert status == 200
        assert upstream.wheels_fetched() == ["torch-2.0.1-py3-none-any.whl"]
        _, body, _ = get(proxy.index + "torch/", JSON_TYPE)
        [entry] = json.loads(body)["files"]
        assert entry["size"] == len(wheel)
        assert entry["hashes"] == {"sha256": hashlib.sha256(wheel).hexdigest()}
        assert headers["etag"] == f'"{entry["hashes"]["sha256"]}"'
