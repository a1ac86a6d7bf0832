"""Benchmark ``wheelpatch serve`` against the upstream it proxies, a pass-through proxy and static
file servers, on a real 554 MB CUDA torch wheel.

What it measures
    One wheel (``--wheel PATH``, else ``$WHEELPATCH_BENCH_WHEEL``, else the CUDA build of torch
    2.14.1 in ``/opt/pypi-more/files``) is hard-linked (else symlinked) into a directory that a
    real pypiserver serves: the upstream (``python -m pypiserver run -v -p PORT -i 127.0.0.1 -a .
    -P . --disable-fallback DIR``; ``-v`` logs each request with its status and the bytes sent).
    The proxy's CFG, written in the run's folder::

        [tool.wheelpatch]
        local-version = "bench.1"
        [tool.wheelpatch.overrides.torch]    # the wheel's project
        remove = ["triton", "nvidia-*", "cuda-*"]

    Every server listens on a free 127.0.0.1 port and is stopped by its process id at the end.
    Every client runs through ``harness.py``'s launcher (wall time); the same client serves both
    sides of a comparison: pip for resolution, curl (``--noproxy '*'``, to ``/dev/null``) for the
    downloads. Each part runs each peer once untimed first (its output checked), then the timed
    runs interleaved round-robin in a rotating order; servers started "for each run" are started
    (and stopped, their cache deleted) outside the timed region:

    1. resolution -- ``pip install --dry-run --no-deps --ignore-installed --no-cache-dir
       --report R --index-url URL torch==2.14.1``:

       * ``wheelpatch``  through ``wheelpatch serve``, started for each run with an empty
                         ``--cache-dir``: every run reads the wheel's METADATA afresh with range
                         requests to the upstream, and pip reads the PEP 658 ``.metadata``;
       * ``pypiserver``  against the upstream directly: its pages have no PEP 658 metadata, so
                         pip downloads the whole wheel to read its METADATA;
       * ``proxpi``      through proxpi (a caching pass-through proxy; ``flask --app
                         proxpi.server run``, ``PROXPI_INDEX_URL`` the upstream, started for each
                         run with an empty ``PROXPI_CACHE_DIR``): the page passes through, so pip
                         downloads the whole wheel too (proxpi fetches it into its cache and,
                         past ``PROXPI_DOWNLOAD_TIMEOUT``, 0.9 s, redirects pip to the upstream).

       The bytes the upstream sent for the wheel in each run are read from its access log.
    2. first download -- ``wheelpatch``: curl GET of the patched wheel from a proxy started for
       each run with an empty cache, whose page was fetched first (untimed: what the patched
       wheel will be is known, the upstream wheel is not fetched yet), so the run downloads the
       upstream wheel, patches it and sends it; ``upstream``: curl GET of the wheel from
       pypiserver, the transfer the proxy cannot avoid.
    3. cached download -- curl GET of the patched wheel from a long-lived proxy whose cache holds
       it (built once by ``wheelpatch warm``, untimed), and of the same file (hard-linked out of
       that cache) from nginx (Debian's, ``sendfile on``, one worker) and from ``python -m
       http.server``; ``wheelpatch+nginx`` is the same GET through an nginx in front of a
       proxy started with ``--accel-redirect`` on that cache (the README's snippet): the proxy
       answers with the header, nginx sends the file.
    4. eight clients -- eight curl GETs of the patched wheel at once (``xargs -P 8``) from a proxy
       started for each run on that warm cache (``--workers N``), after one untimed one-byte range
       request (a process hashes a cached file at its first use); the peak RSS (``VmHWM`` in
       ``/proc``) of the server process, and of each worker with ``--workers`` > 1. ``nginx x8``
       is the same eight clients against nginx, for the time.

    "Server RSS" is ``VmHWM`` of a server started for the run (the proxies, proxpi), read just
    before it is stopped, over every run including the warm-up; "pip RSS" is pip's own peak.

Targets
    1. ``wheelpatch`` at most 2x ``pypiserver``'s median time, and no wheel body fetched from the
       upstream: at most the wheel's tail (from its first ``.dist-info`` member to its end: the
       metadata members and the central directory; at least the last 128 KiB, the first range
       read) and 4 KiB more (a one-byte size probe) in every run, never a whole-file (200) answer;
    2. the first download at most 1 s over the upstream transfer (medians);
    3. the cached download at least 80% of nginx's throughput, from the proxy alone and behind
       nginx with ``--accel-redirect`` (the ratio to http.server's is printed too, with no
       target);
    4. at most 150 MiB peak RSS per worker with eight clients at once.
    A missed target prints ``MISS``; the exit status is still 0 (a report, not a test).

Run (from the repository root, in the venv with the ``serve``, ``bench`` and ``test`` extras:
pypiserver comes with ``test``; curl and nginx from Debian; one benchmark at a time, it moves
several GB through loopback a round)::

    python benchmarks/bench_serve.py                 # 5 repeats, torch, one worker
    python benchmarks/bench_serve.py --repeat 3 --workers 2 --json
    python benchmarks/bench_serve.py --wheel path/to/other.whl
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.tags import sys_tags
from packaging.utils import canonicalize_name, parse_wheel_filename

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness
from harness import Column, Server, Target, Tool, WheelInfo, find_exe, log

DEFAULT_WHEEL = Path("/opt/pypi-more/files/torch-2.14.1-cp311-cp311-manylinux_2_28_x86_64.whl")
LABEL = "bench.1"
REMOVE = ("triton", "nvidia-*", "cuda-*")
CLIENTS = 8
JSON_PAGE = "application/vnd.pypi.simple.v1+json"
#: A range reader's first read, allowed even where the wheel's metadata tail is shorter.
FIRST_READ = 128 << 10
#: Bytes beyond the tail still counted as "no body": a size probe (``Range: bytes=0-0``).
BODY_SLACK = 4096

TARGET_RESOLUTION = 2.0
TARGET_FIRST_EXTRA_S = 1.0
TARGET_CACHED = 0.80
TARGET_RSS_MIB = 150.0

PROXY_ENV = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
_ACCESS = re.compile(r'"(GET|HEAD) (\S+) HTTP/1\.[01]" (\d{3}) (\d+|-)')


# --------------------------------------------------------------------------- the upstream


def metadata_tail(path: Path) -> int:
    """The bytes from the wheel's first ``.dist-info`` member to its end (its metadata members,
    the central directory and the end records), or the first range read if more: what a range
    reader of METADATA fetches, with none of the wheel's body."""
    size = path.stat().st_size
    with zipfile.ZipFile(path) as archive:
        offsets = [
            info.header_offset
            for info in archive.infolist()
            if info.filename.partition("/")[0].endswith(".dist-info")
        ]
    return max(size - min(offsets, default=0), min(size, FIRST_READ))


#: The internal nginx location of the proxy's stored files, and the tool that uses it.
ACCEL = "/_wheelpatch/"
ACCEL_TOOL = "wheelpatch+nginx"


@dataclass(frozen=True)
class Transfer:
    """What the upstream sent for the wheel: its requests (GETs answered 200, the whole file;
    GETs answered 206, a range; HEADs), and the bytes of the bodies it sent."""

    requests: int
    whole: int
    ranges: int
    heads: int
    sent: int

    def describe(self) -> str:
        return (
            f"{self.sent} bytes ({self.sent / 1e6:.2f} MB) in {self.requests} request(s): "
            f"{self.whole} whole-file GET (200), {self.ranges} range GET (206), "
            f"{self.heads} HEAD"
        )


@dataclass
class Upstream:
    """The pypiserver, and what its access log says it sent for ``filename``."""

    server: Server
    filename: str

    def mark(self) -> int:
        return self.server.log.stat().st_size

    def transfer(self, since: int) -> Transfer:
        """The wheel's requests logged after ``since`` (a ``mark``), once the log is still: the
        server logs a request after its last byte, possibly after the client is done."""
        log_file = self.server.log
        size, deadline = -1, time.monotonic() + 5
        while time.monotonic() < deadline:
            now = log_file.stat().st_size
            if now == size:
                break
            size = now
            time.sleep(0.2)
        with log_file.open("rb") as stream:
            stream.seek(since)
            text = stream.read().decode("utf-8", "replace")
        requests = whole = ranges = heads = sent = 0
        for method, path, status, count in _ACCESS.findall(text):
            if urllib.parse.unquote(path).rsplit("/", 1)[-1] != self.filename:
                continue
            requests += 1
            heads += method == "HEAD"
            whole += method == "GET" and status == "200"
            ranges += method == "GET" and status == "206"
            sent += 0 if count == "-" else int(count)
        return Transfer(requests, whole, ranges, heads, sent)


# --------------------------------------------------------------------------- servers


def get(url: str, headers: Mapping[str, str] | None = None, timeout: float = 120) -> bytes:
    """The body of ``url`` (asked without any proxy)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(url, headers=dict(headers or {}))
    with opener.open(request, timeout=timeout) as response:
        data: bytes = response.read()
        return data


@dataclass(frozen=True)
class Setup:
    """What every part shares: the wheel, the commands, where things go."""

    wheel: WheelInfo
    work: Path
    config: Path
    upstream: Upstream
    wheelpatch: str
    curl: str
    workers: int

    @property
    def logs(self) -> Path:
        return self.work / "logs"

    @property
    def requirement(self) -> str:
        return f"{self.wheel.project}=={self.wheel.version}"

    def proxy(self, cache: Path, name: str = "wheelpatch serve", *options: str) -> Server:
        """``wheelpatch serve`` on the upstream, with ``cache`` as its --cache-dir."""
        upstream = self.upstream.server.url + "/simple/"

        def command(port: int) -> list[str]:
            return [
                self.wheelpatch, "serve", "--upstream", upstream, "--config", str(self.config),
                "--cache-dir", str(cache), "--port", str(port), "--workers", str(self.workers),
                *options,
            ]  # fmt: skip

        return harness.start_server(name, command, "/health", self.logs / "wheelpatch-serve.log")


def start_pypiserver(directory: Path, log_file: Path) -> Server:
    def command(port: int) -> list[str]:
        return [
            sys.executable, "-m", "pypiserver", "run", "-v", "-p", str(port), "-i", "127.0.0.1",
            "-a", ".", "-P", ".", "--disable-fallback", str(directory),
        ]  # fmt: skip

    return harness.start_server("pypiserver", command, "/simple/", log_file)


def start_proxpi(upstream: str, cache: Path, log_file: Path) -> Server:
    """proxpi as its README runs it outside Docker (Flask's server), on ``upstream``."""

    def command(port: int) -> list[str]:
        return [
            sys.executable, "-m", "flask", "--app", "proxpi.server", "run", "--no-reload",
            "--host", "127.0.0.1", "--port", str(port),
        ]  # fmt: skip

    env = {"PROXPI_INDEX_URL": upstream, "PROXPI_CACHE_DIR": str(cache)}
    return harness.start_server("proxpi", command, "/health", log_file, env=env)


def start_nginx(
    nginx: str, root: Path, directory: Path, front: tuple[str, Path] | None = None
) -> Server:
    """Debian's nginx serving ``root`` statically: one worker, sendfile, in the foreground. With
    ``front`` (a proxy's URL and its cache's stored files), nginx is in front of that proxy
    instead, as the README's ``--accel-redirect`` snippet puts it."""
    directory.mkdir(parents=True, exist_ok=True)
    conf = directory / "nginx.conf"
    temp = "".join(
        f"    {kind}_temp_path {directory / kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    if front is None:
        locations = f"        root {root};\n"
    else:
        locations = (
            f"        location / {{ proxy_pass {front[0]}; proxy_buffering off; }}\n"
            f"        location {ACCEL} {{ internal; alias {front[1]}/; }}\n"
        )

    def command(port: int) -> list[str]:
        conf.write_text(
            "daemon off;\nworker_processes 1;\nuser root;\n"
            f"pid {directory / 'nginx.pid'};\nerror_log {directory / 'error.log'};\n"
            "events {}\nhttp {\n"
            f"    access_log {directory / 'access.log'};\n{temp}"
            "    sendfile on;\n"
            f"    server {{\n        listen 127.0.0.1:{port};\n{locations}    }}\n}}\n",
            encoding="utf-8",
        )
        return [nginx, "-c", str(conf), "-p", str(directory)]

    ready = "/" if front is None else "/health"
    return harness.start_server(
        "nginx" if front is None else "nginx + wheelpatch", command, ready, directory / "stderr.log"
    )


def start_http_server(root: Path, log_file: Path) -> Server:
    def command(port: int) -> list[str]:
        return [
            sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
            "--directory", str(root),
        ]  # fmt: skip

    return harness.start_server("http.server", command, "/", log_file)


@dataclass(frozen=True)
class PatchedFile:
    """The patched wheel as the proxy's PEP 691 page lists it."""

    filename: str
    path: str  # the URL path of the file (percent-encoded) on any instance of the proxy
    size: int


def patched_file(proxy: Server, wheel: WheelInfo) -> PatchedFile:
    """The proxy's page of the wheel's project (read METADATA from the upstream, if not known)
    and the entry of the patched wheel on it."""
    project = canonicalize_name(wheel.project)
    page_url = f"{proxy.url}/simple/{project}/"
    page = json.loads(get(page_url, {"Accept": JSON_PAGE}))
    new_version = wheel.new_version(LABEL)
    for entry in page["files"]:
        name = entry["filename"]
        if name.endswith(".whl") and str(parse_wheel_filename(name)[1]) == new_version:
            url = urllib.parse.urljoin(page_url, entry["url"])
            return PatchedFile(name, urllib.parse.urlsplit(url).path, int(entry["size"]))
    raise harness.ToolFailed(f"{page_url} lists no wheel of version {new_version}: {page}")


# --------------------------------------------------------------------------- tools


def _no_client(url: str) -> list[str]:
    raise AssertionError("a tool without a client")


@dataclass
class Served(Tool):
    """A client timed against a server: a long-lived ``server``, or one that ``start`` starts
    for each run (stopped after it, its ``scratch`` emptied). Before each run, untimed:
    ``before(server)``, then the upstream's log is marked and ``client(url)`` is the command.
    After it: the upstream's transfer since the mark and (``rss``) the server's peak RSS, in
    ``observed`` (one entry a run, the warm-up's included)."""

    client: Callable[[str], list[str]] = _no_client
    server: Server | None = None
    start: Callable[[Path], Server] | None = None
    before: Callable[[Server], None] | None = None
    upstream: Upstream | None = None
    rss: bool = False
    observed: list[dict[str, Any]] = field(default_factory=list)
    _live: Server | None = None
    _mark: int = 0
    _seen: dict[str, Any] | None = None

    def prepare(self) -> None:
        super().prepare()
        self._seen = None
        self._live = self.server
        if self.start is not None:
            assert self.scratch is not None
            self._live = self.start(self.scratch)
        assert self._live is not None
        if self.before is not None:
            self.before(self._live)
        if self.upstream is not None:
            self._mark = self.upstream.mark()
        self.argv = self.client(self._live.url)
        harness.sync()

    def observe(self) -> dict[str, Any]:
        """What the servers did in this run (read once, before a server is stopped)."""
        if self._seen is None:
            seen: dict[str, Any] = {}
            if self.upstream is not None:
                seen["transfer"] = self.upstream.transfer(self._mark)
            if self.rss and self._live is not None:
                seen["rss"] = server_rss(self._live)
            self._seen = seen
        return self._seen

    def finish(self) -> None:
        try:
            if self._live is not None:
                self.observed.append(self.observe())
        finally:
            if self.start is not None and self._live is not None:
                self._live.stop()
            self._live = None
            super().finish()


def server_rss(server: Server) -> dict[str, Any]:
    """Peak RSS in MiB of the server's process and, where it has them, of its workers (the
    children that multiprocessing spawned: uvicorn's ``--workers``; nginx's worker processes)."""
    peaks = server.peak_rss()
    others = {pid: kib for pid, kib in peaks.items() if pid != server.pid}
    workers = {
        pid: kib
        for pid, kib in others.items()
        if "spawn_main" in harness.command_line(pid) or "nginx: worker" in harness.command_line(pid)
    }
    main = peaks.get(server.pid, 0) / 1024
    per_worker = [kib / 1024 for kib in workers.values()] or [main]
    return {
        "main_mib": main,
        "workers_mib": [kib / 1024 for kib in workers.values()],
        "max_per_worker_mib": max(per_worker),
        "processes": {str(pid): kib / 1024 for pid, kib in peaks.items()},
    }


def pip_client(
    report: Path, requirement: str, suffix: str, extra: Sequence[str]
) -> Callable[[str], list[str]]:
    def argv(url: str) -> list[str]:
        return [
            sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps", "--ignore-installed",
            "--no-cache-dir", "--progress-bar", "off", "--report", str(report),
            "--index-url", url + suffix, *extra, requirement,
        ]  # fmt: skip

    return argv


_CURL_OUT = "%{http_code} %{size_download}\\n"


def curl_client(curl: str, path: str) -> Callable[[str], list[str]]:
    """One GET to /dev/null, printing the status and the bytes received."""

    def argv(url: str) -> list[str]:
        return [
            curl, "--noproxy", "*", "--silent", "--show-error", "--fail", "--output", os.devnull,
            "--write-out", _CURL_OUT, url + path,
        ]  # fmt: skip

    return argv


def curl_clients(curl: str, path: str, count: int) -> Callable[[str], list[str]]:
    """``count`` of those GETs at once (xargs exits non-zero if any failed)."""
    one = curl_client(curl, path)

    def argv(url: str) -> list[str]:
        script = 'n=$1; shift; seq "$n" | xargs -P "$n" -I{} "$@"'
        return ["sh", "-c", script, "sh", str(count), *one(url)]

    return argv


def _target_options(filename: str) -> list[str]:
    """pip options that let it pick a wheel this interpreter could not install (--no-deps
    allows them): from the wheel's first tag; none when a tag fits this interpreter."""
    tags = parse_wheel_filename(filename)[3]
    if tags & set(sys_tags()):
        return []
    tag = min(tags, key=str)
    options = ["--platform", tag.platform, "--abi", tag.abi]
    options += ["--implementation", tag.interpreter[:2]]
    if tag.interpreter[2:].isdigit():
        options += ["--python-version", tag.interpreter[2:]]
    return options


# --------------------------------------------------------------------------- checks


def _log_text(tool: Tool, work: Path) -> str:
    return (work / f"{tool.name}.log").read_text(errors="replace")


def check_downloads(tool: Tool, work: Path, size: int, count: int = 1) -> str:
    """curl's lines: ``count`` answers of 200 with ``size`` bytes each."""
    lines = re.findall(r"^(\d{3}) (\d+)$", _log_text(tool, work), re.MULTILINE)
    good = sum(1 for status, got in lines if status == "200" and int(got) == size)
    verdict = "OK" if good == count == len(lines) else "WRONG"
    return f"{verdict}: {good} of {count} GET(s) answered 200 with {size} bytes"


def check_resolution(tool: Served, wheel: WheelInfo, patched: bool) -> str:
    """pip's report: the version and Requires-Dist it would install, and what the upstream sent."""
    report = json.loads((tool.out_dir / "report.json").read_text(encoding="utf-8"))
    (item,) = report["install"]
    metadata = item["metadata"]
    version = metadata["version"]
    requires = metadata.get("requires_dist", [])
    expected = wheel.kept_requires(REMOVE) if patched else wheel.requires_dist
    wanted = wheel.new_version(LABEL) if patched else wheel.version
    ok = version == wanted and sorted(requires) == sorted(expected)
    transfer = tool.observe()["transfer"]
    return (
        f"{'OK' if ok else 'WRONG'}: {wheel.project} {version}, {len(requires)} Requires-Dist "
        f"(of {len(wheel.requires_dist)}); upstream sent {transfer.describe()} for the wheel"
    )


def check_patched_wheel(path: Path, wheel: WheelInfo, announced: PatchedFile, sha256: str) -> str:
    """The built wheel: its size as announced, the sha256 ``warm`` printed, the patched METADATA."""
    info = harness.read_wheel_info(path, "patched")
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    problems = []
    if info.size != announced.size:
        problems.append(f"{info.size} bytes, the page announced {announced.size}")
    if digest.hexdigest() != sha256:
        problems.append(f"sha256 {digest.hexdigest()}, warm printed {sha256}")
    if info.version != wheel.new_version(LABEL):
        problems.append(f"Version {info.version}")
    if sorted(info.requires_dist) != sorted(wheel.kept_requires(REMOVE)):
        problems.append(f"Requires-Dist {info.requires_dist}")
    if problems:
        return "WRONG: " + "; ".join(problems)
    return (
        f"OK: {info.size} bytes as announced, sha256 {sha256[:16]}... as warm printed, "
        f"Version {info.version}, {len(info.requires_dist)} Requires-Dist "
        f"({len(wheel.requires_dist) - len(info.requires_dist)} removed)"
    )


# --------------------------------------------------------------------------- figures


def _facts(tools: Sequence[Served], results: dict[str, dict[str, Any]], size: int) -> None:
    """Add to each tool's summary what the servers did, and its throughput."""
    for tool in tools:
        summary = results[tool.name]
        if "median_s" in summary:
            summary["mb_per_s"] = size / summary["median_s"] / 1e6
        transfers = [o["transfer"] for o in tool.observed if "transfer" in o]
        if transfers:
            summary["upstream_mb"] = statistics.median(t.sent for t in transfers) / 1e6
            summary["upstream_max_bytes"] = max(t.sent for t in transfers)
            summary["upstream_whole"] = max(t.whole for t in transfers)
            summary["upstream_requests"] = max(t.requests for t in transfers)
            summary["transfers"] = transfers
        rss = [o["rss"] for o in tool.observed if "rss" in o]
        if rss:
            summary["server_rss_mib"] = max(r["main_mib"] for r in rss)
            summary["worker_rss_mib"] = max(r["max_per_worker_mib"] for r in rss)
            summary["server_rss"] = rss


def _ratios(results: dict[str, dict[str, Any]], reference: str) -> None:
    """Each tool's median time over ``reference``'s, as ``ratio``."""
    for name, summary in results.items():
        summary["ratio"] = harness.ratio(results, name, reference)


_T = (Column("tool", 13, key="tool"), *harness.TIMES[1:])
RATIO = Column("ratio", 6, ".2f", "ratio", "x")
COLUMNS_RESOLUTION = (
    *_T,
    RATIO,
    Column("upstream MB", 11, ".2f", "upstream_mb"),
    Column("whole GETs", 10, "d", "upstream_whole"),
    Column("pip RSS MiB", 11, ".1f", "max_rss_mib"),
    Column("server RSS MiB", 14, ".1f", "server_rss_mib"),
)
COLUMNS_DOWNLOAD = (
    *_T,
    RATIO,
    Column("MB/s", 7, ".0f", "mb_per_s"),
    Column("upstream MB", 11, ".2f", "upstream_mb"),
    Column("server RSS MiB", 14, ".1f", "server_rss_mib"),
)
COLUMNS_CACHED = (*_T, RATIO, Column("MB/s", 7, ".0f", "mb_per_s"))
COLUMNS_CLIENTS = (
    *_T,
    RATIO,
    Column("MB/s (all)", 10, ".0f", "mb_per_s"),
    Column("main RSS MiB", 12, ".1f", "server_rss_mib"),
    Column("RSS/worker MiB", 14, ".1f", "worker_rss_mib"),
)


def targets(
    parts: Mapping[str, dict[str, dict[str, Any]]], tail: int, workers: int
) -> list[Target]:
    resolution = parts.get("resolution", {})
    first = parts.get("first download", {})
    cached = parts.get("cached download", {})
    clients = parts.get("eight clients", {})
    figures = [
        harness.time_target(
            resolution, "wheelpatch", "pypiserver", limit=TARGET_RESOLUTION, goal="resolution"
        ),
        harness.time_target(resolution, "wheelpatch", "proxpi", note="(reference)"),
    ]
    fetched = resolution.get("wheelpatch", {}).get("upstream_max_bytes")
    whole = resolution.get("wheelpatch", {}).get("upstream_whole")
    body = None if fetched is None else float(max(0, fetched - tail))
    if whole:  # a whole-file answer is the body, whatever its size
        body = float(fetched or 0)
    figures.append(
        Target(
            "wheel_body_fetched_bytes",
            "wheel body fetched (proxied)",
            body,
            unit=" B",
            limit=BODY_SLACK,
            goal="no_wheel_body",
        )
    )
    ours = first.get("wheelpatch", {}).get("median_s")
    theirs = first.get("upstream", {}).get("median_s")
    figures.append(
        Target(
            "first_download_extra_s",
            "first download - upstream",
            None if ours is None or theirs is None else ours - theirs,
            unit=" s",
            limit=TARGET_FIRST_EXTRA_S,
            goal="first_download",
        )
    )
    against: dict[str, dict[str, Any]] = {
        "nginx": {"limit": TARGET_CACHED, "at_least": True, "goal": "cached_throughput"},
        "http.server": {"note": "(reference)"},
    }
    for peer, target in against.items():
        figures.append(
            Target(
                f"cached_throughput_vs_{peer.replace('.', '_')}",
                f"cached / {peer} throughput",
                harness.ratio(cached, peer, "wheelpatch"),
                **target,
            )
        )
    if ACCEL_TOOL in cached:
        figures.append(
            Target(
                "cached_accel_throughput_vs_nginx",
                "cached behind nginx (--accel-redirect) / nginx throughput",
                harness.ratio(cached, "nginx", ACCEL_TOOL),
                limit=TARGET_CACHED,
                at_least=True,
                goal="cached_throughput_accel",
            )
        )
    figures.append(
        Target(
            "rss_per_worker_mib",
            f"peak RSS per worker ({CLIENTS} clients)",
            clients.get("wheelpatch x8", {}).get("worker_rss_mib"),
            unit=" MiB",
            limit=TARGET_RSS_MIB,
            goal="rss_per_worker",
            note=f"{workers} worker(s)",
        )
    )
    return figures


# --------------------------------------------------------------------------- the parts


def part_resolution(setup: Setup, repeat: int, extra: Sequence[str]) -> dict[str, Any]:
    work = setup.work / "resolution"
    work.mkdir()
    wheel, upstream = setup.wheel, setup.upstream
    tools: list[Served] = []

    def add(name: str, suffix: str, **kw: Any) -> None:
        out = work / f"out-{name}"
        client = pip_client(out / "report.json", setup.requirement, suffix, extra)
        scratch = work / f"cache-{name}"
        tools.append(Served(name, [], out, repeat, scratch, client=client, upstream=upstream, **kw))

    add("wheelpatch", "/simple/", start=setup.proxy, rss=True)
    add("pypiserver", "/simple/", server=upstream.server)
    if importlib.util.find_spec("proxpi") is not None:
        index = upstream.server.url + "/simple/"
        log_file = setup.logs / "proxpi.log"
        add("proxpi", "/index/", start=lambda c: start_proxpi(index, c, log_file), rss=True)
    else:
        log("  proxpi not installed (pip install proxpi, or the bench extra): skipped")
    by_name = {t.name: t for t in tools}

    def check(tool: Tool) -> str:
        return check_resolution(by_name[tool.name], wheel, patched=tool.name == "wheelpatch")

    log("1. resolution (pip install --dry-run --report)")
    results = harness.measure(list(tools), repeat, work, "resolution", check, "report")
    _facts(tools, results, wheel.size)
    _ratios(results, "pypiserver")
    return results


def part_first_download(setup: Setup, repeat: int, patched: PatchedFile) -> dict[str, Any]:
    work = setup.work / "first"
    work.mkdir()
    upstream = setup.upstream

    def page(proxy: Server) -> None:
        patched_file(proxy, setup.wheel)

    tools = [
        Served(
            "wheelpatch",
            [],
            work / "out-wheelpatch",
            repeat,
            work / "cache-wheelpatch",
            client=curl_client(setup.curl, patched.path),
            start=setup.proxy,
            before=page,
            upstream=upstream,
            rss=True,
        ),
        Served(
            "upstream",
            [],
            work / "out-upstream",
            repeat,
            client=curl_client(setup.curl, "/packages/" + urllib.parse.quote(upstream.filename)),
            server=upstream.server,
            upstream=upstream,
        ),
    ]
    sizes = {"wheelpatch": patched.size, "upstream": setup.wheel.size}

    by_name = {t.name: t for t in tools}

    def check(tool: Tool) -> str:
        transfer = by_name[tool.name].observe()["transfer"]
        verdict = check_downloads(tool, work, sizes[tool.name])
        return f"{verdict}; upstream sent {transfer.describe()}"

    log("2. first download (empty proxy cache, page already fetched)")
    results = harness.measure(list(tools), repeat, work, "first", check, "download")
    _facts(tools, results, patched.size)
    _ratios(results, "upstream")
    return results


def part_cached(
    setup: Setup,
    repeat: int,
    patched: PatchedFile,
    proxy: Server,
    statics: Mapping[str, Server],
    fronted: Server | None,
) -> dict[str, Any]:
    work = setup.work / "cached"
    work.mkdir()
    client = curl_client(setup.curl, patched.path)
    tools = [Served("wheelpatch", [], work / "out-wheelpatch", repeat, client=client, server=proxy)]
    if fronted is not None:
        out = work / "out-accel"
        tools.append(Served(ACCEL_TOOL, [], out, repeat, client=client, server=fronted))
    for name, server in statics.items():
        client = curl_client(setup.curl, "/" + urllib.parse.quote(patched.filename))
        tools.append(Served(name, [], work / f"out-{name}", repeat, client=client, server=server))

    def check(tool: Tool) -> str:
        return check_downloads(tool, work, patched.size)

    log("3. cached download")
    results = harness.measure(list(tools), repeat, work, "cached", check, "download")
    _facts(tools, results, patched.size)
    _ratios(results, "nginx" if "nginx" in statics else "wheelpatch")
    return results


def part_clients(
    setup: Setup, repeat: int, patched: PatchedFile, warm: Path, nginx: Server | None
) -> dict[str, Any]:
    work = setup.work / "clients"
    work.mkdir()

    def first_use(proxy: Server) -> None:
        get(proxy.url + patched.path, {"Range": "bytes=0-0"})

    tools = [
        Served(
            "wheelpatch x8",
            [],
            work / "out-wheelpatch",
            repeat,
            client=curl_clients(setup.curl, patched.path, CLIENTS),
            start=lambda _scratch: setup.proxy(warm),
            before=first_use,
            scratch=work / "unused",
            rss=True,
        )
    ]
    if nginx is not None:
        path = "/" + urllib.parse.quote(patched.filename)
        client = curl_clients(setup.curl, path, CLIENTS)
        out = work / "out-nginx"
        tools.append(Served("nginx x8", [], out, repeat, client=client, server=nginx, rss=True))

    def check(tool: Tool) -> str:
        return check_downloads(tool, work, patched.size, CLIENTS)

    log(f"4. {CLIENTS} clients at once")
    results = harness.measure(list(tools), repeat, work, "clients", check, "downloads", width=13)
    _facts(tools, results, patched.size * CLIENTS)
    _ratios(results, "nginx x8" if nginx is not None else "wheelpatch x8")
    return results


def warm_cache(setup: Setup, cache: Path) -> tuple[str, harness.Sample]:
    """``wheelpatch warm REQ``: the patched wheel built into ``cache``; its sha256 and the run."""
    argv = [
        setup.wheelpatch, "warm", setup.requirement, "--upstream",
        setup.upstream.server.url + "/simple/", "--config", str(setup.config),
        "--cache-dir", str(cache), "--json",
    ]  # fmt: skip
    log_file = setup.logs / "warm.log"
    sample = harness.run_measured(argv, log_file)
    text = log_file.read_text(errors="replace")
    start = re.search(r"^\[", text, re.MULTILINE)  # its log lines (if any) come first
    if start is None:
        raise harness.ToolFailed(f"wheelpatch warm printed no JSON report:\n{text}")
    report = json.loads(text[start.start() :])
    return str(report[0]["sha256"]), sample


# --------------------------------------------------------------------------- main


def link(source: Path, target: Path) -> str:
    """Hard-link ``source`` at ``target``, else symlink it; says which."""
    try:
        os.link(source, target)
        return "hard link"
    except OSError:
        target.symlink_to(source)
        return "symlink"


def write_config(path: Path, project: str) -> None:
    patterns = ", ".join(f'"{p}"' for p in REMOVE)
    path.write_text(
        f'[tool.wheelpatch]\nlocal-version = "{LABEL}"\n\n'
        f"[tool.wheelpatch.overrides.{canonicalize_name(project)}]\nremove = [{patterns}]\n",
        encoding="utf-8",
    )


def _versions(nginx: str | None, curl: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for dist in ("pypiserver", "proxpi", "flask", "uvicorn", "starlette", "httpx", "h11"):
        try:
            found[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    for name, argv in (("nginx", [nginx, "-v"]), ("curl", [curl, "--version"])):
        if argv[0] is None:
            continue
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        words = (done.stderr or done.stdout).split()
        if words:
            found[name] = words[2].split("/")[-1] if name == "nginx" else words[1]
    return found


def _load() -> str:
    if not hasattr(os, "getloadavg"):
        return "unknown"
    return " ".join(f"{x:.2f}" for x in os.getloadavg()) + " (1, 5, 15 min)"


def _choose_wheel(given: Path | None) -> Path | None:
    env = os.environ.get(harness.ENV_WHEELS, "").split(os.pathsep)[0]
    for candidate in (given, Path(env) if env else None, DEFAULT_WHEEL):
        if candidate is not None:
            return candidate
    return None


def _parser() -> argparse.ArgumentParser:
    title, _, rest = __doc__.partition("\n\n")
    parser = harness.base_parser(title)
    parser.epilog = rest
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "--wheel",
        type=Path,
        metavar="PATH",
        help=f"the wheel to serve (default: ${harness.ENV_WHEELS}, else {DEFAULT_WHEEL})",
    )
    parser.add_argument(
        "--workers",
        type=harness.at_least_1,
        default=1,
        help="wheelpatch serve --workers for every proxy (default 1)",
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        metavar="DIR",
        help="where the run's folder is made (default: the system temporary directory)",
    )
    return parser


def _print_part(title: str, results: Mapping[str, Any], columns: Sequence[Column]) -> None:
    print(f"\n{title}")
    harness.print_tools(results, columns)


def main(argv: Sequence[str] | None = None) -> int:
    args = harness.parse(_parser(), argv)
    path = _choose_wheel(args.wheel)
    if path is None or not path.is_file():
        print(f"no wheel to serve: {path} is not a file (give --wheel PATH)")
        return 2
    wheel = harness.read_wheel_info(path.resolve(), "real")
    curl, nginx = find_exe("curl"), find_exe("nginx") or shutil.which("nginx", path="/usr/sbin")
    wheelpatch = find_exe("wheelpatch")
    if curl is None or wheelpatch is None or importlib.util.find_spec("pypiserver") is None:
        print("needs curl, wheelpatch (with its serve extra) and pypiserver (the test extra)")
        return 2
    bytecode = harness.bytecode_env(args.cache_dir)
    names = (*PROXY_ENV, *(n.upper() for n in PROXY_ENV))
    environment = harness.hermetic_env(names=names)
    host = {**harness.machine(["wheelpatch", "pip"]), **_versions(nginx, curl)}
    load_before = _load()
    tail = metadata_tail(wheel.path)
    extra = _target_options(wheel.path.name)
    parts: dict[str, dict[str, Any]] = {}
    facts: dict[str, str] = {}
    servers: list[Server] = []
    base = args.work_dir or Path(tempfile.gettempdir())
    base.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-serve-", dir=base) as tmp:
        work = Path(tmp)
        (work / "logs").mkdir()
        house = work / "upstream"
        house.mkdir()
        how = link(wheel.path, house / wheel.path.name)
        config = work / "pyproject.toml"
        write_config(config, wheel.project)
        try:
            up = start_pypiserver(house, work / "logs" / "pypiserver.log")
            servers.append(up)
            upstream = Upstream(up, wheel.path.name)
            page = get(f"{up.url}/simple/{canonicalize_name(wheel.project)}/").decode()
            sidecars = "data-core-metadata" in page or "data-dist-info-metadata" in page
            facts["upstream"] = (
                f"pypiserver at {up.url}, serving a {how} to {wheel.path}; its page "
                + ("HAS PEP 658 metadata" if sidecars else "has no PEP 658 metadata (checked)")
            )
            setup = Setup(wheel, work, config, upstream, wheelpatch, curl, args.workers)

            parts["resolution"] = part_resolution(setup, args.repeat, extra)

            probe = setup.proxy(work / "probe-cache")
            try:
                patched = patched_file(probe, wheel)
            finally:
                probe.stop()
            parts["first download"] = part_first_download(setup, args.repeat, patched)

            warm = work / "warm-cache"
            log("building the warm cache: wheelpatch warm (untimed for the parts)")
            sha256, warm_run = warm_cache(setup, warm)
            built = next(warm.rglob(patched.filename), None)
            static = work / "static"
            static.mkdir()
            (static / "index.html").write_text("ready\n")  # what "is it up?" asks for
            if built is None:
                raise harness.ToolFailed(f"wheelpatch warm left no {patched.filename} in {warm}")
            link(built, static / patched.filename)
            facts["patched wheel"] = (
                f"{patched.filename}: "
                f"{check_patched_wheel(static / patched.filename, wheel, patched, sha256)}"
            )
            facts["wheelpatch warm"] = (
                f"{warm_run.seconds:.2f} s, peak RSS {(warm_run.rss_kib or 0) / 1024:.1f} MiB "
                "(the first build, once; not a target)"
            )
            statics: dict[str, Server] = {}
            if nginx is not None:
                statics["nginx"] = start_nginx(nginx, static, work / "nginx")
                servers.append(statics["nginx"])
            else:
                log("  nginx not installed (apt-get install nginx-light): skipped")
            statics["http.server"] = start_http_server(static, work / "logs" / "http.server.log")
            servers.append(statics["http.server"])
            proxy = setup.proxy(warm, "wheelpatch serve (warm)")
            fronted: Server | None = None
            if nginx is not None:
                behind = setup.proxy(warm, "wheelpatch serve (accel)", "--accel-redirect", ACCEL)
                servers.append(behind)
                stored = warm / "files" / "entries"
                fronted = start_nginx(nginx, static, work / "nginx-front", (behind.url, stored))
                servers.append(fronted)
            try:
                parts["cached download"] = part_cached(
                    setup, args.repeat, patched, proxy, statics, fronted
                )
            finally:
                proxy.stop()
            parts["eight clients"] = part_clients(
                setup, args.repeat, patched, warm, statics.get("nginx")
            )
        finally:
            for server in reversed(servers):
                server.stop()
    figures = targets(parts, tail, args.workers)
    size_mb = f"{wheel.size / 1e6:.2f} MB"
    if "resolution" in parts:
        _print_part(
            "1. resolution: pip install --dry-run --no-deps --report (ratio: time / pypiserver's; "
            "upstream MB: median bytes pypiserver sent for the wheel per run; wheelpatch serve "
            "and proxpi started with an empty cache for every run)",
            parts["resolution"],
            COLUMNS_RESOLUTION,
        )
        print(
            f"  pypiserver's page has no PEP 658 metadata, so pip downloads the whole wheel "
            f"({size_mb}) to read its METADATA, directly and through proxpi (which passes the "
            "page through); wheelpatch serve reads it with range requests and pip gets the "
            f"PEP 658 .metadata. The wheel's tail (first .dist-info member to its end): "
            f"{tail} bytes."
        )
        proxied = parts["resolution"].get("wheelpatch", {}).get("transfers", [])
        print("  what pypiserver's access log says it sent for the wheel in each proxied run:")
        for number, transfer in enumerate(proxied):
            print(f"    {'warm-up' if number == 0 else f'run {number}':<8} {transfer.describe()}")
    if "first download" in parts:
        _print_part(
            "2. first download: curl GET of the patched wheel, empty proxy cache, page already "
            "fetched (ratio: time / upstream's)",
            parts["first download"],
            COLUMNS_DOWNLOAD,
        )
    if "cached download" in parts:
        _print_part(
            "3. cached download: curl GET of the patched wheel (ratio: time / nginx's)",
            parts["cached download"],
            COLUMNS_CACHED,
        )
    if "eight clients" in parts:
        _print_part(
            f"4. {CLIENTS} clients at once: time until all {CLIENTS} GETs are done (ratio: time "
            f"/ nginx's); peak RSS (VmHWM) of the proxy's process and per worker "
            f"(--workers {args.workers}), a fresh proxy each run",
            parts["eight clients"],
            COLUMNS_CLIENTS,
        )
    print("\ntargets:")
    for figure in figures:
        print(figure.line())
    print()
    command = harness.print_context(
        host,
        source=harness.source_state(),
        bytecode=bytecode,
        environment=environment,
        load=f"before {load_before}; after {_load()}",
        wheel=f"{wheel.path} ({size_mb}, {wheel.members} members, {wheel.version}, "
        f"{len(wheel.requires_dist)} Requires-Dist)",
        config=f'local-version "{LABEL}"; overrides.{canonicalize_name(wheel.project)}.remove '
        f"{list(REMOVE)}",
        **facts,
        pip_options=" ".join(extra) or "(none: the wheel fits this interpreter)",
    )
    if args.json:
        report = {
            "command": command,
            "machine": host,
            "wheel": str(wheel.path),
            "size": wheel.size,
            "tail": tail,
            "workers": args.workers,
            "facts": facts,
            "parts": parts,
            **{t.key: t.value for t in figures},
            "targets": {t.goal: t.verdict for t in figures if t.limit is not None},
        }
        print(json.dumps(report, indent=2, default=lambda o: o.__dict__))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
