"""``wheelpatch serve`` under faults, with real processes throughout: concurrent first downloads,
a proxy killed mid-download, eviction, an upstream that lies, is hostile or is down, requests
that try to reach something else, and the command line's usage errors.

What the upstream was asked comes from pypiserver's access log; what the proxy kept, from its
cache directory, whose layout (``files/entries``, ``files/tmp``, ``work``, ``pages``) is that of
:mod:`wheelpatch.index.cache` and :mod:`wheelpatch.index.service`."""

from __future__ import annotations

import base64
import hashlib
import http.client
import io
import json
import os
import random
import signal
import socket
import threading
import time
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import pytest

from ..conftest import CliResult, WheelSpec, build_wheel
from ..zipcraft import build_zip, wheel_entries
from .serving import (
    CONFIG,
    PATCHED_TORCH,
    Answer,
    Proxy,
    file_url,
    get,
    make_wheelhouse,
    pypiserver,
    serve,
)
from .test_clients import static_server

pytestmark = pytest.mark.slow

TORCH = "torch-2.0.1-py3-none-any.whl"
TRITON = "triton-2.0.0-py3-none-any.whl"
PATCHED_TRITON = "triton-2.0.0+stripe.2-py3-none-any.whl"
JSON = "application/vnd.pypi.simple.v1+json"
#: Requirements the example's overrides remove, so that the patch changes METADATA.
TORCH_REQUIRES = (
    "filelock",
    'triton==2.0.0; platform_system == "Linux"',
    'nvidia-cublas-cu12==12.1.3.1; platform_system == "Linux"',
)
#: Generous: a condition the test waits for that does not come is a failure, not a hang.
DEADLINE = 60.0
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
T = TypeVar("T")


# -- helpers ------------------------------------------------------------------------------------


def json_page(proxy: Proxy, project: str) -> dict[str, object]:
    answer = get(f"{proxy.index}{project}/", {"Accept": JSON})
    assert answer.status == 200, answer.text
    page: dict[str, object] = json.loads(answer.body)
    return page


def listed(page: dict[str, object]) -> dict[str, dict[str, object]]:
    files = page["files"]
    assert isinstance(files, list)
    return {entry["filename"]: entry for entry in files}


def wait_for(condition: Callable[[], T | None], what: str) -> T:
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.002)
    pytest.fail(f"timed out waiting for {what}")


def standin(
    directory: Path, name: str, version: str, requires: tuple[str, ...], megabytes: float, seed: int
) -> Path:
    """A stand-in wheel carrying ``megabytes`` of incompressible bytes, stored uncompressed so
    that its size on the wire is known."""
    payload = random.Random(seed).randbytes(int(megabytes * (1 << 20)))
    spec = WheelSpec(
        name=name,
        version=version,
        requires=requires,
        files={f"{name}/__init__.py": f"SEED = {seed}\n".encode(), f"{name}/_C.so": payload},
        compression=zipfile.ZIP_STORED,
    )
    return build_wheel(directory, spec)


def replace_file(target: Path, build: Callable[[Path], Path]) -> Path:
    """Put what ``build(directory)`` writes in place of ``target`` by a rename (an upstream that
    is serving never sees half a file)."""
    staging = target.parent.parent / f"{target.parent.name}-staging"
    staging.mkdir(exist_ok=True)
    os.replace(build(staging), target)
    return target


def stored_files(cache_dir: Path) -> dict[str, Path]:
    """The files the cache serves (``files/entries/<key>/<name>``, sidecars aside), by name."""
    entries = cache_dir / "files" / "entries"
    return {
        path.name: path
        for path in entries.glob("*/*")
        if path.is_file() and not path.name.startswith(".")
    }


def leftovers(cache_dir: Path) -> list[Path]:
    """What a build or a read left behind that is not a stored entry: anything under the cache's
    ``files/tmp/`` (builds in progress, see cache.py), under the service's scratch ``work/``,
    and pages' temporary files (``pages/.<project>.<random>.tmp``)."""
    found = list((cache_dir / "files" / "tmp").rglob("*"))
    found += list((cache_dir / "work").rglob("*"))
    found += list((cache_dir / "pages").glob(".*.tmp"))
    return sorted(found)


def entries_intact(cache_dir: Path) -> None:
    """Every stored file has its sidecar, with its sha256 and size, and every sidecar its file."""
    entries = cache_dir / "files" / "entries"
    for sidecar in entries.glob("*/.*.json"):
        assert (sidecar.parent / sidecar.name[1:-5]).is_file(), f"{sidecar}: no file"
    for name, path in stored_files(cache_dir).items():
        record = json.loads((path.parent / f".{name}.json").read_text("utf-8"))
        assert record["size"] == path.stat().st_size, path
        assert record["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest(), path


def wheel_checks(cli: Callable[..., CliResult], path: Path) -> None:
    """A complete wheel: every member's CRC right (zipfile) and ``wheelpatch verify`` passes."""
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None
    verified = cli("verify", path)
    assert verified.code == 0, verified.out + verified.err


def metadata_of(wheel: bytes) -> str:
    with zipfile.ZipFile(io.BytesIO(wheel)) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        return archive.read(name).decode("utf-8")


def one_line(answer: Answer) -> str:
    """The body of an error: one line (ended by a newline, or, for a path no route matches,
    Starlette's ``Not Found``)."""
    text = answer.text
    assert len(text.splitlines()) == 1, repr(text)
    assert text.rstrip("\n").count("\n") == 0, repr(text)
    return text


@contextmanager
def paused(process_id: int) -> Iterator[None]:
    """The process stopped (SIGSTOP) for the block, resumed (SIGCONT) whatever happens."""
    os.kill(process_id, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(process_id, signal.SIGCONT)


# -- 1. concurrent first downloads --------------------------------------------------------------


@pytest.mark.parametrize("workers", [pytest.param(1, id="one-process"), pytest.param(2, id="two")])
def test_concurrent_first_downloads_fetch_the_upstream_wheel_once(
    tmp_path: Path, workers: int
) -> None:
    house = make_wheelhouse(tmp_path / "house")
    standin(house, "torch", "2.0.1", TORCH_REQUIRES, megabytes=8, seed=1)
    with (
        pypiserver(house) as upstream,
        serve(tmp_path, [upstream.index], "--workers", str(workers)) as proxy,
    ):
        url = file_url(proxy, "torch", PATCHED_TORCH)
        start = threading.Barrier(8)

        def download(_: int) -> tuple[int, str, bytes]:
            start.wait()
            with _OPENER.open(url, timeout=120) as response:
                return response.status, response.headers["etag"], response.read()

        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(download, range(8)))
        page = wait_for(
            lambda: (p := listed(json_page(proxy, "torch")))[PATCHED_TORCH]["hashes"] and p,
            "the built wheel's hash on the page",
        )
        cached = get(url)
        fetches = upstream.full_gets(TORCH)

    assert [status for status, _, _ in results] == [200] * 8
    bodies = {body for _, _, body in results}
    assert len(bodies) == 1
    body = bodies.pop()
    sha256 = hashlib.sha256(body).hexdigest()
    # Answered while the wheel was built (no ETag yet) or from the cache (its sha256 as ETag).
    assert {etag for _, etag, _ in results} <= {f'"{sha256}"', None}
    assert (cached.body, cached.headers["etag"]) == (body, f'"{sha256}"')
    assert page[PATCHED_TORCH]["hashes"] == {"sha256": sha256}
    assert page[PATCHED_TORCH]["size"] == len(body)
    assert "triton" not in metadata_of(body)  # it is the patched wheel
    assert "Version: 2.0.1+stripe.2" in metadata_of(body)
    assert fetches == [(house / TORCH).stat().st_size]


# -- 2. ranges and revalidation -----------------------------------------------------------------


def test_range_and_conditional_requests_on_a_patched_wheel(tmp_path: Path) -> None:
    house = make_wheelhouse(tmp_path / "house")
    with pypiserver(house) as upstream, serve(tmp_path, [upstream.index]) as proxy:
        url = file_url(proxy, "torch", PATCHED_TORCH)
        first = get(url, {"Range": "bytes=0-99"})  # the very first request builds it
        whole = get(url)
        tail = get(url, {"Range": "bytes=-100"})
        etag = whole.headers["etag"]
        fresh = get(url, {"If-None-Match": etag})
        among = get(url, {"If-None-Match": f'"{"0" * 64}", {etag}'})
        other = get(url, {"If-None-Match": f'"{"0" * 64}"'})

    size = len(whole.body)
    assert whole.status == 200
    assert size > 200
    assert etag == f'"{hashlib.sha256(whole.body).hexdigest()}"'
    assert first.status == 206, first.text
    assert first.body == whole.body[:100]
    assert first.headers["content-range"] == f"bytes 0-99/{size}"
    assert tail.status == 206
    assert tail.body == whole.body[-100:]
    assert tail.headers["content-range"] == f"bytes {size - 100}-{size - 1}/{size}"
    assert (fresh.status, fresh.body, fresh.headers["etag"]) == (304, b"", etag)
    assert (among.status, among.body) == (304, b"")
    assert (other.status, other.body) == (200, whole.body)


# -- 3. a proxy killed mid-download -------------------------------------------------------------


def test_a_proxy_killed_mid_download_leaves_nothing_that_is_served_or_kept(
    tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    house = make_wheelhouse(tmp_path / "house")
    big = standin(house, "torch", "2.0.1", TORCH_REQUIRES, megabytes=48, seed=3)
    with pypiserver(house) as upstream:
        with serve(tmp_path, [upstream.index], name="killed") as first:
            cache_dir, port = first.cache_dir, urllib.parse.urlsplit(first.url).port
            assert get(f"{first.index}torch/").status == 200  # the page, from range reads
            outcome: list[object] = []

            def download() -> None:
                try:
                    outcome.append(get(file_url(first, "torch", PATCHED_TORCH)))
                except (OSError, http.client.HTTPException) as exc:
                    outcome.append(exc)

            client = threading.Thread(target=download)
            client.start()

            def partial() -> Path | None:
                try:
                    return next((p for p in cache_dir.rglob(TORCH) if p.stat().st_size), None)
                except FileNotFoundError:  # a directory or file went while it was looked at
                    return None

            downloading = wait_for(partial, "the upstream wheel's first bytes in the cache dir")
            with paused(upstream.process.pid):
                first.kill()
                client.join(DEADLINE)
                assert not client.is_alive()
                assert downloading.stat().st_size < big.stat().st_size  # killed mid-transfer
        assert len(outcome) == 1
        assert not isinstance(outcome[0], Answer), outcome  # the client saw it fail
        left = leftovers(cache_dir)
        assert left, "the kill left nothing behind: the test did not kill a download"
        assert PATCHED_TORCH not in stored_files(cache_dir)

        with serve(
            tmp_path, [upstream.index], cache_dir=cache_dir, port=port, name="again"
        ) as again:
            answer = get(file_url(again, "torch", PATCHED_TORCH))
        with serve(tmp_path, [upstream.index], name="clean") as clean:
            reference = get(file_url(clean, "torch", PATCHED_TORCH))

    assert answer.status == 200, answer.text
    assert reference.status == 200, reference.text
    assert answer.body == reference.body
    downloaded = tmp_path / "downloaded" / PATCHED_TORCH
    downloaded.parent.mkdir()
    downloaded.write_bytes(answer.body)
    wheel_checks(cli, downloaded)
    assert leftovers(cache_dir) == []
    entries_intact(cache_dir)
    assert stored_files(cache_dir)[PATCHED_TORCH].read_bytes() == reference.body


# -- 4. eviction --------------------------------------------------------------------------------


def test_a_cache_too_small_for_two_wheels_evicts_the_least_recently_used(tmp_path: Path) -> None:
    house = make_wheelhouse(tmp_path / "house")
    torch = standin(house, "torch", "2.0.1", TORCH_REQUIRES, megabytes=3, seed=4)
    triton = standin(house, "triton", "2.0.0", ("torch",), megabytes=3, seed=5)
    # Room for one of the patched wheels (each within a few kB of its upstream), not for two.
    room = int(max(torch.stat().st_size, triton.stat().st_size) * 1.5)
    with (
        pypiserver(house) as upstream,
        serve(tmp_path, [upstream.index], "--cache-size", str(room)) as proxy,
    ):
        torch_first = get(file_url(proxy, "torch", PATCHED_TORCH))
        assert torch_first.status == 200, torch_first.text
        # A first download ends once its last byte is sent; the entry is stored right after.
        wait_for(lambda: PATCHED_TORCH in stored_files(proxy.cache_dir), "torch stored")
        torch_etag = get(file_url(proxy, "torch", PATCHED_TORCH)).headers["etag"]
        triton_first = get(file_url(proxy, "triton", PATCHED_TRITON))
        assert triton_first.status == 200, triton_first.text
        wait_for(lambda: PATCHED_TORCH not in stored_files(proxy.cache_dir), "torch evicted")
        after_triton = stored_files(proxy.cache_dir)
        kept = sum(path.stat().st_size for path in after_triton.values() if path.exists())
        torch_again = get(file_url(proxy, "torch", PATCHED_TORCH))
        wait_for(lambda: PATCHED_TRITON not in stored_files(proxy.cache_dir), "triton evicted")
        after_torch = stored_files(proxy.cache_dir)
        torch_fetches = upstream.full_gets(TORCH)

    assert PATCHED_TRITON in after_triton
    assert PATCHED_TORCH not in after_triton
    assert kept <= room
    assert torch_again.status == 200, torch_again.text
    assert torch_again.body == torch_first.body
    assert f'"{hashlib.sha256(torch_again.body).hexdigest()}"' == torch_etag
    assert PATCHED_TORCH in after_torch
    assert PATCHED_TRITON not in after_torch
    # Built twice, the second time from the upstream again.
    assert torch_fetches == [torch.stat().st_size] * 2


# -- 5. a file that is not what the upstream's page says ----------------------------------------


def test_a_replaced_upstream_wheel_is_refused_and_not_kept(tmp_path: Path) -> None:
    house = make_wheelhouse(tmp_path / "house")
    listed_sha256 = hashlib.sha256((house / TORCH).read_bytes()).hexdigest()
    with pypiserver(house) as upstream, serve(tmp_path, [upstream.index]) as proxy:
        page = listed(json_page(proxy, "torch"))  # planned from the original wheel
        assert PATCHED_TORCH in page
        replace_file(
            house / TORCH,
            lambda d: standin(d, "torch", "2.0.1", TORCH_REQUIRES, megabytes=0.1, seed=5),
        )
        served = get(f"{upstream.url}/packages/{TORCH}")
        assert served.body == (house / TORCH).read_bytes()  # pypiserver serves the new bytes
        # The first download is answered as the wheel arrives: found wrong at its end, it is
        # cut short (its Content-Length says so); the next request is told why.
        with pytest.raises(http.client.IncompleteRead):
            get(file_url(proxy, "torch", PATCHED_TORCH))
        answer = get(file_url(proxy, "torch", PATCHED_TORCH))
        cached = list(proxy.cache_dir.rglob("*.whl"))

    new_sha256 = hashlib.sha256(served.body).hexdigest()
    assert new_sha256 != listed_sha256
    assert answer.status == 502
    message = one_line(answer)
    assert TORCH in message
    assert f"sha256 {new_sha256} does not match the {listed_sha256}" in message
    assert cached == []


def test_a_wheel_whose_hash_the_page_gets_wrong_is_refused_and_not_kept(tmp_path: Path) -> None:
    """A hand-written simple index behind http.server (no ranges: the proxy reads the whole
    wheel when it plans the page) lists the wheel with a wrong sha256."""
    root = tmp_path / "static"
    (root / "simple" / "torch").mkdir(parents=True)
    (root / "packages").mkdir()
    make_wheelhouse(tmp_path / "house")
    wheel = (tmp_path / "house" / TORCH).read_bytes()
    (root / "packages" / TORCH).write_bytes(wheel)
    wrong = hashlib.sha256(b"not the wheel").hexdigest()
    (root / "simple" / "torch" / "index.html").write_text(
        "<!DOCTYPE html>\n<html><body>\n"
        f'<a href="../../packages/{TORCH}#sha256={wrong}">{TORCH}</a>\n'
        "</body></html>\n",
        "utf-8",
    )
    with (
        static_server(root, tmp_path / "static-http.log") as server,
        serve(tmp_path, [server.url + "/simple/"]) as proxy,
    ):
        page = listed(json_page(proxy, "torch"))
        answer = get(file_url(proxy, "torch", PATCHED_TORCH))
        cached = list(proxy.cache_dir.rglob("*.whl"))
        entries = stored_files(proxy.cache_dir)

    assert page == {}  # what cannot be built is not listed
    assert answer.status == 502
    message = one_line(answer)
    assert TORCH in message
    assert f"sha256 {hashlib.sha256(wheel).hexdigest()} does not match the {wrong}" in message
    assert cached == []
    assert entries == {}


# -- 6. the upstream down -----------------------------------------------------------------------


def test_an_unreachable_upstream_leaves_stale_pages_within_the_stale_age(tmp_path: Path) -> None:
    house = make_wheelhouse(tmp_path / "house")
    with (
        pypiserver(house) as upstream,
        serve(tmp_path, [upstream.index], "--page-ttl", "0", name="tolerant") as tolerant,
        serve(
            tmp_path, [upstream.index], "--page-ttl", "0", "--stale-age", "0", name="strict"
        ) as strict,
    ):
        before = {
            (proxy.url, project): get(f"{proxy.index}{project}/")
            for proxy in (tolerant, strict)
            for project in ("torch", "filelock")
        }
        upstream.process.terminate()
        upstream.process.wait()
        after = {
            (proxy.url, project): get(f"{proxy.index}{project}/")
            for proxy in (tolerant, strict)
            for project in ("torch", "filelock")
        }
        never = get(f"{tolerant.index}sympy/")

    for answer in before.values():
        assert answer.status == 200, answer.text
        assert "warning" not in answer.headers
    for project in ("torch", "filelock"):
        stale = after[tolerant.url, project]
        assert stale.status == 200, stale.text
        assert stale.body == before[tolerant.url, project].body
        assert "stale" in stale.headers["warning"]
        refused = after[strict.url, project]
        assert refused.status == 503
        assert f"/simple/{project}/" in one_line(refused)
    assert never.status == 503
    assert "/simple/sympy/: unreachable" in one_line(never)


# -- 7. requests that try to reach something else; credentials ----------------------------------

SECRET = "s3cret-Token-4711"


def test_requests_reach_only_the_configured_upstream_and_never_its_credentials(
    tmp_path: Path,
) -> None:
    house = make_wheelhouse(tmp_path / "house")
    decoy_root = tmp_path / "decoy"
    decoy_root.mkdir()
    (decoy_root / "x-1.0-py3-none-any.whl").write_bytes(b"decoy")
    with (
        pypiserver(house) as upstream,
        static_server(decoy_root, tmp_path / "decoy-http.log") as decoy,
    ):
        decoy_port = urllib.parse.urlsplit(decoy.url).port
        with_secret = upstream.index.replace("http://", f"http://wheel-user:{SECRET}@")
        with serve(tmp_path, [with_secret]) as proxy:
            bodies: list[bytes] = []

            def ask(path: str, headers: dict[str, str] | None = None) -> Answer:
                answer = get(proxy.url, headers, target=path)
                bodies.append(answer.body)
                return answer

            hostile = {
                "/files/torch/..%2F..%2Fetc%2Fpasswd": 404,
                "/files/../x": 404,
                "/files/torch/.hidden.whl": 404,
                "/files/torch/%2e%2e": 404,
                f"/files/torch/http:%2F%2F127.0.0.1:{decoy_port}%2Fx-1.0-py3-none-any.whl": 404,
                "/files/torch/torch-9.9.9-py3-none-any.whl": 404,  # not on the page
                f"/files/torch/{TORCH}": 404,  # the unpatched wheel of a patched version
                "/files/Torch/x-1.0-py3-none-any.whl": 404,
                "/simple/..%2F..%2Fetc/": 404,
                "/simple/no-such-project/": 404,
            }
            answers = {path: ask(path) for path in hostile}
            moved = ask("/simple/Torch_Thing/")
            # A proxy-style request (absolute URI, Host of the decoy) is not forwarded there.
            absolute = ask(
                f"http://127.0.0.1:{decoy_port}/simple/filelock/",
                {"Host": f"127.0.0.1:{decoy_port}"},
            )
            for accept in (JSON, "text/html"):
                for path in ("/simple/", "/simple/torch/", "/simple/filelock/"):
                    assert ask(path, {"Accept": accept}).status == 200
            assert ask(f"/files/torch/{urllib.parse.quote(PATCHED_TORCH)}").status == 200
            assert ask(f"/files/torch/{urllib.parse.quote(PATCHED_TORCH)}.metadata").status == 200
            ask("/files/filelock/filelock-3.13.1-py3-none-any.whl.metadata")
            upstream_paths = {path for path, _, _ in upstream.requests()}
            upstream.process.terminate()
            upstream.process.wait()
            unreachable = ask("/simple/sympy/")  # an error that names the upstream's URL
            proxy_log = proxy.log_text()
        decoy_requests = decoy.log.read_bytes()[decoy.start :]

    for path, status in hostile.items():
        assert answers[path].status == status, (path, answers[path].text)
        one_line(answers[path])
    assert moved.status == 301
    assert moved.headers["location"].endswith("/torch-thing/")
    files = {p.name for p in house.iterdir()}
    pages = {"/simple/", "/simple/torch/", "/simple/filelock/", "/simple/no-such-project/"}
    unexpected = {
        path
        for path in upstream_paths
        if path not in pages and path.removeprefix("/packages/") not in files
    }
    assert unexpected == set()
    assert absolute.status in (200, 404), absolute.text  # answered here, or not at all
    assert decoy_requests == b""
    assert unreachable.status == 503
    assert f"127.0.0.1:{upstream.process_port}/simple/sympy/" in one_line(unreachable)
    leaks = (SECRET, base64.b64encode(f"wheel-user:{SECRET}".encode()).decode())
    for text in (proxy_log, *(body.decode("utf-8", "replace") for body in bodies)):
        for leak in leaks:
            assert leak not in text


# -- 8. a hostile upstream wheel ----------------------------------------------------------------


def test_a_hostile_upstream_wheel_is_not_listed_and_its_download_says_why(tmp_path: Path) -> None:
    house = make_wheelhouse(tmp_path / "house")
    entries = wheel_entries(
        "torch",
        "2.0.1",
        {"torch/__init__.py": b"", "../evil.py": b"print('escaped')\n"},
        TORCH_REQUIRES,
    )
    (house / TORCH).write_bytes(build_zip(entries))
    with pypiserver(house) as upstream, serve(tmp_path, [upstream.index]) as proxy:
        page = listed(json_page(proxy, "torch"))
        answer = get(file_url(proxy, "torch", PATCHED_TORCH))
        triton = listed(json_page(proxy, "triton"))  # the other override is unaffected
        stored = stored_files(proxy.cache_dir)

    assert page == {}
    assert answer.status == 502
    message = one_line(answer)
    assert message.startswith(f"{PATCHED_TORCH}: ")
    assert "../evil.py" in message
    assert PATCHED_TRITON in triton
    assert PATCHED_TORCH not in stored


# -- 9. the command line ------------------------------------------------------------------------

OPTIONS = (
    "--upstream", "--config", "--cache-dir", "--cache-size", "--links", "--unpatched",
    "--page-ttl", "--stale-age", "--timeout", "--retries", "--host", "--port", "--workers",
    "--eager",
)  # fmt: skip


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port something already listens on: a serve that got past its checks fails to bind it
    (exit 1) instead of serving forever."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_serve_help_explains_every_option(cli: Callable[..., CliResult]) -> None:
    result = cli("serve", "--help")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    for option in OPTIONS:
        start = next((i for i, line in enumerate(lines) if line.strip().startswith(option)), None)
        assert start is not None, f"{option} is not in the help"
        explanation = [lines[start].strip().split(None, 2)[-1]]
        for line in lines[start + 1 :]:
            if not line.startswith(" " * 10) or line.strip().startswith("-"):
                break
            explanation.append(line.strip())
        assert len(" ".join(explanation).split()) >= 4, (option, explanation)
    assert "exit codes:" in result.out


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        pytest.param(
            ["--upstream", "ftp://x", "--config", "missing.toml"],
            ["--upstream: 'ftp://x'", "--config: "],
            id="bad-upstream-missing-config",
        ),
        pytest.param(
            ["--upstream", "http://127.0.0.1:9/simple/", "--cache-size", "10Q"],
            ["--cache-size: '10Q' is not a size"],
            id="bad-size",
        ),
    ],
)
def test_serve_usage_errors_name_each_option(
    cli: Callable[..., CliResult],
    tmp_path: Path,
    taken_port: int,
    arguments: list[str],
    expected: list[str],
) -> None:
    arguments = [str(tmp_path / a) if a == "missing.toml" else a for a in arguments]
    if "--config" not in arguments:
        arguments += ["--config", str(CONFIG)]
    result = cli("serve", *arguments, "--cache-dir", tmp_path / "cache", "--port", str(taken_port))
    assert result.code == 2, result.out + result.err
    lines = result.err.splitlines()
    assert len(lines) == len(expected), result.err
    for line, start in zip(lines, expected, strict=True):
        assert line.startswith(f"error: {start}"), line
    assert "Traceback" not in result.err
    assert result.out == ""


def test_a_client_that_stops_reading_holds_up_nobody(tmp_path: Path) -> None:
    """A first download whose client stops reading after a few bytes: the build goes on at the
    upstream's speed into the cache (it never waits for that client), and another client gets
    the whole wheel, and pages, meanwhile."""
    house = make_wheelhouse(tmp_path / "house")
    standin(house, "torch", "2.0.1", TORCH_REQUIRES, megabytes=48, seed=9)
    with pypiserver(house) as upstream, serve(tmp_path, [upstream.index]) as proxy:
        json_page(proxy, "torch")
        path = urllib.parse.urlsplit(file_url(proxy, "torch", PATCHED_TORCH)).path
        port = urllib.parse.urlsplit(proxy.url).port
        with socket.create_connection(("127.0.0.1", port or 80)) as stalled:
            stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            stalled.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            assert stalled.recv(1024).startswith(b"HTTP/1.1 200")
            # ... and reads nothing more, its connection open.
            wait_for(lambda: PATCHED_TORCH in stored_files(proxy.cache_dir), "the wheel stored")
            other = get(file_url(proxy, "torch", PATCHED_TORCH))
            page = json_page(proxy, "filelock")
    assert other.status == 200
    assert other.headers["etag"] == f'"{hashlib.sha256(other.body).hexdigest()}"'
    assert "Version: 2.0.1+stripe.2" in metadata_of(other.body)
    assert page["name"] == "filelock"
