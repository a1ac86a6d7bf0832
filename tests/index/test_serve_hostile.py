"""``wheelpatch serve`` against an upstream that lies or is hostile, and the inputs that change
what a patched wheel is: each a real upstream (a hand-written index behind ``python -m
http.server``, or pypiserver) and a real proxy process."""

from __future__ import annotations

import hashlib
import io
import json
import time
import zipfile
from pathlib import Path

import pytest

from ..conftest import WheelSpec, build_wheel
from ..sboms import SBOM, ancestors, validated_sbom
from .serving import file_url, get, pypiserver, serve
from .test_clients import static_server
from .test_serve_faults import TORCH_REQUIRES, json_page, listed, one_line

pytestmark = pytest.mark.slow

SHA = "0" * 64


def hand_written_index(root: Path, project: str, links: str) -> Path:
    """``root/simple/<project>/index.html`` holding ``links`` as they are."""
    page = root / "simple" / project
    page.mkdir(parents=True)
    (page / "index.html").write_text(f"<!DOCTYPE html><html><body>\n{links}</body></html>\n")
    return root


def test_links_to_local_files_are_never_followed(tmp_path: Path) -> None:
    """A page of an http upstream that links ``file:`` URLs of the proxy's host (a file, and a
    wheel whose ``.metadata`` would be read from there): the proxy answers 502 in one line and
    reads nothing of the host's files."""
    private = tmp_path / "private"  # a directory of the host's, outside any file:// upstream
    private.mkdir()
    for name in ("jlocal-1.0.tar.gz", "jlocal-1.2-py3-none-any.whl.metadata"):
        (private / name).write_text("root:x:0:0:the host's own file\n")
    links = (
        f'<a href="file://{private}/jlocal-1.0.tar.gz#sha256={SHA}">jlocal-1.0.tar.gz</a>\n'
        f'<a href="file://{private}/jlocal-1.2-py3-none-any.whl#sha256={SHA}" '
        'data-core-metadata="true">jlocal-1.2-py3-none-any.whl</a>\n'
    )
    root = hand_written_index(tmp_path / "index", "jlocal", links)
    with (
        static_server(root, tmp_path / "hostile-http.log") as server,
        serve(tmp_path, [server.url + "/simple/"], "--links", "proxy") as proxy,
    ):
        answers = [
            get(file_url(proxy, "jlocal", "jlocal-1.0.tar.gz")),
            get(file_url(proxy, "jlocal", "jlocal-1.2-py3-none-any.whl.metadata")),
        ]
    for answer in answers:
        assert answer.status == 502, answer.text
        assert "the host's own file" not in one_line(answer)
        assert "answered 403" in answer.text


def test_a_link_that_is_no_url_is_a_502_line_not_a_traceback(tmp_path: Path) -> None:
    root = hand_written_index(
        tmp_path / "index",
        "bad",
        f'<a href="http://[::1/bad-1.0.tar.gz#sha256={SHA}">bad-1.0.tar.gz</a>\n',
    )
    with (
        static_server(root, tmp_path / "hostile-http.log") as server,
        serve(tmp_path, [server.url + "/simple/"]) as proxy,
    ):
        answer = get(proxy.index + "bad/")
    assert answer.status == 502
    assert "Invalid IPv6 URL" in one_line(answer)
    assert "Traceback" not in proxy.log_text()


def torch(directory: Path, version: str) -> Path:
    return build_wheel(directory, WheelSpec(name="torch", version=version, requires=TORCH_REQUIRES))


def test_eager_builds_each_wheel_once_and_then_rests(tmp_path: Path) -> None:
    """``--eager`` with three patched wheels on a page: each is built once, and then the proxy
    asks the upstream nothing more (building ahead must not plan the page again and again)."""
    wheelhouse = tmp_path / "wheelhouse"
    wheelhouse.mkdir()
    for version in ("2.0.1", "2.0.2", "2.1.0"):
        torch(wheelhouse, version)
    with pypiserver(wheelhouse) as upstream, serve(tmp_path, [upstream.index], "--eager") as proxy:
        json_page(proxy, "torch")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            files = listed(json_page(proxy, "torch"))
            if len(files) == 3 and all(f["hashes"] for f in files.values()):
                break
            time.sleep(0.05)
        else:
            pytest.fail(f"the eager builds did not finish: {proxy.log_text()}")
        settled = len(upstream.calls())
        time.sleep(1.5)  # long enough for a loop of re-planning to show in the upstream's log
        assert len(upstream.calls()) == settled, upstream.calls()[settled:]
    for name in ("torch-2.0.1-py3-none-any.whl", "torch-2.0.2-py3-none-any.whl"):
        assert len(upstream.full_gets(name)) == 1


def test_source_date_epoch_is_part_of_what_a_wheel_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SOURCE_DATE_EPOCH reaches the provenance document, so it is part of the cache key: a
    proxy restarted with it on the same cache serves a wheel of the size its page says."""
    wheelhouse = tmp_path / "wheelhouse"
    wheelhouse.mkdir()
    torch(wheelhouse, "2.0.1")
    name = "torch-2.0.1+stripe.2-py3-none-any.whl"
    cache = tmp_path / "cache"
    with pypiserver(wheelhouse) as upstream:
        with serve(tmp_path, [upstream.index], cache_dir=cache, name="first") as proxy:
            before = listed(json_page(proxy, "torch"))[name]
        monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
        with serve(tmp_path, [upstream.index], cache_dir=cache, name="second") as proxy:
            after = listed(json_page(proxy, "torch"))[name]
            answer = get(file_url(proxy, "torch", name))
            again = listed(json_page(proxy, "torch"))[name]
    assert answer.status == 200, answer.text
    assert after["size"] != before["size"]  # "created" is in the provenance now
    assert len(answer.body) == after["size"]
    assert again["hashes"] == {"sha256": hashlib.sha256(answer.body).hexdigest()}
    with zipfile.ZipFile(io.BytesIO(answer.body)) as archive:
        provenance = json.loads(archive.read("torch-2.0.1+stripe.2.dist-info/wheelpatch.json"))
        sbom = validated_sbom(archive.read(f"torch-2.0.1+stripe.2.dist-info/{SBOM}"))
    assert provenance["created"].startswith("2023-11-14T22:13:20")
    # The SBOM served, whose size the page announced before the wheel was built, is stamped too
    # and names the upstream file by its sha256.
    assert sbom["metadata"]["timestamp"] == provenance["created"]
    [upstream] = wheelhouse.glob("torch-2.0.1-*.whl")
    _, ancestor = ancestors(sbom)
    assert ancestor["hashes"][0]["content"] == hashlib.sha256(upstream.read_bytes()).hexdigest()


def test_weak_and_star_if_none_match(tmp_path: Path) -> None:
    wheelhouse = tmp_path / "wheelhouse"
    wheelhouse.mkdir()
    torch(wheelhouse, "2.0.1")
    name = "torch-2.0.1+stripe.2-py3-none-any.whl"
    with pypiserver(wheelhouse) as upstream, serve(tmp_path, [upstream.index]) as proxy:
        get(file_url(proxy, "torch", name))  # built while it is sent: no ETag yet
        first = get(file_url(proxy, "torch", name))
        etag = first.headers["etag"]
        assert etag == f'"{hashlib.sha256(first.body).hexdigest()}"'
        for condition in (f"W/{etag}", "*", f'"other", {etag}'):
            answer = get(file_url(proxy, "torch", name), {"If-None-Match": condition})
            assert (answer.status, answer.body) == (304, b""), condition
        assert get(file_url(proxy, "torch", name), {"If-None-Match": '"other"'}).status == 200
