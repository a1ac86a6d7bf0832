"""``wheelpatch serve --accel-redirect`` behind the README's nginx snippet, run as written by a
real nginx: stored wheels are sent by nginx (the proxy answers with a header and no body), with
ranges and conditional requests; first downloads, pages and metadata still come from the proxy;
the internal location cannot be asked for from outside; pip installs through it."""

from __future__ import annotations

import hashlib
import re
import urllib.parse
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from ..conftest import CliResult
from ..servers import free_port, nginx
from ..venvs import make_venv
from .serving import CONFIG, LABELLED, PATCHED_TORCH, get, make_wheelhouse, pypiserver, serve
from .test_clients import client_env, installed, ok, pip, run

pytestmark = pytest.mark.slow

README = Path(__file__).parents[2] / "README.md"
PREFIX = "/_wheelpatch/"
URL_PATH = "/files/torch/" + urllib.parse.quote(PATCHED_TORCH)


def readme_snippet() -> str:
    """The README's nginx block for ``--accel-redirect``, as a user would copy it."""
    text = README.read_text(encoding="utf-8")
    [block] = [b for b in re.findall(r"```nginx\n(.*?)```", text, flags=re.S) if PREFIX in b]
    return block


def configured(snippet: str, listen: int, proxy: str, stored: Path) -> str:
    """The snippet with the test's ports and cache in place of the README's."""
    done = (
        snippet.replace("listen 8080;", f"listen 127.0.0.1:{listen};")
        .replace("proxy_pass http://127.0.0.1:8081;", f"proxy_pass {proxy};")
        .replace("alias /var/cache/wheelpatch/files/entries/;", f"alias {stored}/;")
    )
    for wanted in (f"listen 127.0.0.1:{listen};", f"proxy_pass {proxy};", f"alias {stored}/;"):
        assert wanted in done, f"the README's snippet changed: {wanted!r} not made"
    return done


def test_nginx_sends_stored_wheels_the_proxy_names(tmp_path: Path) -> None:
    wheelhouse = make_wheelhouse(tmp_path / "wheelhouse")
    cache = tmp_path / "cache"
    with (
        pypiserver(wheelhouse) as upstream,
        serve(tmp_path, [upstream.index], "--accel-redirect", PREFIX, cache_dir=cache) as proxy,
    ):
        port = free_port()
        servers = configured(readme_snippet(), port, proxy.url, cache / "files" / "entries")
        front = f"http://127.0.0.1:{port}"
        work = tmp_path / "nginx"
        work.mkdir()
        with nginx(work, servers, f"{front}/health") as access:
            # Not built yet: the first download streams from the proxy, as without nginx.
            first = get(front + URL_PATH)
            assert first.status == 200, first.text
            assert "x-accel-redirect" not in first.headers
            (tmp_path / PATCHED_TORCH).write_bytes(first.body)
            with zipfile.ZipFile(tmp_path / PATCHED_TORCH) as built:
                assert built.testzip() is None
            sha256 = hashlib.sha256(first.body).hexdigest()

            # Stored: the proxy itself answers with the header alone ...
            direct = get(proxy.url + URL_PATH)
            assert direct.status == 200
            assert direct.body == b""
            named = direct.headers["x-accel-redirect"]
            assert named.startswith(PREFIX)
            assert named.endswith("/" + urllib.parse.quote(PATCHED_TORCH))
            assert direct.headers["etag"] == f'"{sha256}"'
            # ... which nginx follows to the file, whole, in a range, or not at all.
            again = get(front + URL_PATH)
            assert again.status == 200
            assert again.body == first.body
            assert "x-accel-redirect" not in again.headers
            part = get(front + URL_PATH, {"Range": "bytes=100-4195"})
            assert part.status == 206
            assert part.body == first.body[100:4196]
            etag = again.headers["etag"]
            unchanged = get(front + URL_PATH, {"If-None-Match": etag})
            assert unchanged.status == 304
            assert unchanged.body == b""
            # The internal location is nginx's own: from outside it is not there.
            assert get(front + named).status == 404

            # A client through nginx: pages and metadata from the proxy, the wheel from nginx.
            env = client_env(tmp_path)
            venv = make_venv(tmp_path / "venv")
            ok(run(*pip("--python", venv.python, "install", "--no-deps", "--index-url",
                        f"{front}/simple/", f"torch=={LABELLED}"), env=env))  # fmt: skip
            assert installed(venv) == {"torch": LABELLED}
        log = access.read_text()
        assert log.count(f"GET {URL_PATH} ") >= 5, log
    # The proxy logged the stored downloads as answers of no body: nginx sent the bytes.
    wheel = f"GET /files/torch/{PATCHED_TORCH} 200"
    requests = [line for line in proxy.log_text().splitlines() if wheel in line]
    assert f"{wheel} {len(first.body)} bytes" in requests[0], requests  # the first download
    assert len(requests) >= 5, requests
    assert all(f"{wheel} 0 bytes" in line for line in requests[1:]), requests


@pytest.mark.parametrize("prefix", ["_wheelpatch/", "/_wheelpatch", "/a b/", "/x/?y/", ""])
def test_a_prefix_that_is_not_a_location_path_is_one_line(
    tmp_path: Path, cli: Callable[..., CliResult], prefix: str
) -> None:
    result = cli(
        "serve", "--upstream", "http://127.0.0.1:9/simple/", "--config", CONFIG,
        "--cache-dir", tmp_path / "cache", "--accel-redirect", prefix,
    )  # fmt: skip
    assert result.code == 2, result
    assert result.err == (
        f"error: --accel-redirect: {prefix!r} is not a URL path that starts and ends with '/' "
        "(the nginx location of the cache's files, e.g. '/_wheelpatch/')\n"
    )
    assert result.out == ""
