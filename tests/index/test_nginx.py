"""The README's nginx snippet, run as written by a real nginx: PEP 691 JSON to clients that ask
for it (uv does), the HTML pages to the others (pip), from one static SITE."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from wheelpatch.index.pages import JSON_TYPE
from wheelpatch.index.site import collect_inputs, write_site

from ..conftest import WheelSpec, build_wheel
from ..hermetic import hermetic_env
from ..servers import NGINX, free_port
from ..servers import nginx as start_nginx

pytestmark = pytest.mark.slow

README = Path(__file__).parents[2] / "README.md"


def readme_snippet() -> str:
    """The ``nginx`` block of the README, as a user would copy it."""
    text = README.read_text(encoding="utf-8")
    [block] = [b for b in re.findall(r"```nginx\n(.*?)```", text, flags=re.S) if "/srv/site" in b]
    return re.sub(r"(?m)^  ", "", block)  # it is indented inside a list item


@contextlib.contextmanager
def nginx(site: Path, work: Path) -> Iterator[tuple[str, Path]]:
    """nginx serving ``site`` with the README's snippet on a free loopback port; stopped by PID."""
    port = free_port()
    snippet = readme_snippet().replace("listen 8080;", f"listen 127.0.0.1:{port};")
    snippet = snippet.replace("root /srv/site;", f"root {site};")
    assert f"listen 127.0.0.1:{port};" in snippet
    assert f"root {site};" in snippet
    with start_nginx(work, snippet, f"http://127.0.0.1:{port}/simple/") as log:
        yield f"http://127.0.0.1:{port}", log


def fetch(url: str, accept: str | None = None) -> tuple[str, bytes]:
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=10) as response:
        return response.headers["Content-Type"], response.read()


def test_readme_nginx_snippet_negotiates_json_and_html(tmp_path: Path) -> None:
    assert Path(NGINX).is_file(), ".ci/run installs nginx-light from Debian"
    wheels = tmp_path / "in"
    wheels.mkdir()
    build_wheel(wheels, WheelSpec(name="demo", requires_python=">=3.8"))
    site = tmp_path / "site"
    write_site(collect_inputs([wheels]), site)
    work = tmp_path / "nginx"
    work.mkdir()
    with nginx(site, work) as (url, log):
        kind, body = fetch(f"{url}/simple/demo/", f"{JSON_TYPE}, text/html;q=0.01")
        assert kind == JSON_TYPE
        assert body == (site / "simple" / "demo" / "index.json").read_bytes()
        kind, body = fetch(f"{url}/simple/demo/")
        assert kind.startswith("text/html")
        assert body == (site / "simple" / "demo" / "index.html").read_bytes()
        kind, body = fetch(f"{url}/simple/", JSON_TYPE)
        assert json.loads(body)["projects"] == [{"name": "demo"}]
        with pytest.raises(urllib.error.HTTPError) as denied:  # the manifest is not served
            fetch(f"{url}/.wheelpatch-index.json")
        denied.value.close()
        assert denied.value.code == 403
        # uv asks for JSON and resolves from it (offline it would not reach the server).
        env = hermetic_env(UV_CACHE_DIR=str(tmp_path / "uv-cache"))
        env.pop("UV_OFFLINE")
        env.pop("UV_NO_CACHE")
        from uv import find_uv_bin

        uv = find_uv_bin()
        venv = tmp_path / "venv"
        subprocess.run([uv, "venv", "-q", venv], check=True, env=env, timeout=120)
        done = subprocess.run(
            [uv, "pip", "install", "--dry-run", "--python", venv / "bin" / "python",
             "--index-url", f"{url}/simple/", "demo==1.0"],
            capture_output=True, text=True, env=env, timeout=120, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "+ demo==1.0" in done.stderr
    size = len((site / "simple" / "demo" / "index.json").read_bytes())
    uv_pages = [line for line in log.read_text().splitlines() if "uv/" in line]
    assert any(f'"GET /simple/demo/ HTTP/1.1" 200 {size} ' in line for line in uv_pages), uv_pages
