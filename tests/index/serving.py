"""What the ``wheelpatch serve`` tests share: the proxy started as a real process on a free
127.0.0.1 port, the torch/triton stand-in wheelhouse behind a real pypiserver, and their request
logs."""

from __future__ import annotations

import contextlib
import http.client
import re
import signal
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from email.message import Message
from pathlib import Path

from ..hermetic import hermetic_env
from ..servers import started

ROOT = Path(__file__).parent.parent.parent
EXAMPLE = ROOT / "plugin_examples" / "torch-without-triton"
CONFIG = EXAMPLE / "pyproject.toml"
LABELLED = "2.0.1+stripe.2"
PATCHED_TORCH = "torch-2.0.1+stripe.2-py3-none-any.whl"
_ACCESS = re.compile(r'"(GET|HEAD) (\S+) HTTP/1\.[01]" (\d{3}) (\d+|-)')


@dataclass
class Proxy:
    """A running ``wheelpatch serve``: its base URL, log and process."""

    url: str
    log: Path
    process: subprocess.Popen[bytes]
    cache_dir: Path

    @property
    def index(self) -> str:
        return self.url + "/simple/"

    def log_text(self) -> str:
        return self.log.read_text("utf-8", "replace")

    def kill(self) -> None:
        """SIGKILL: no clean-up of any kind runs."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()


@contextlib.contextmanager
def serve(
    tmp_path: Path,
    upstreams: Sequence[str],
    *options: str | Path,
    config: Path = CONFIG,
    cache_dir: Path | None = None,
    name: str = "proxy",
    port: int | None = None,
) -> Iterator[Proxy]:
    """``wheelpatch serve`` on a free port (or ``port``) until ``/health`` answers; stopped by
    its process id (SIGTERM, then SIGKILL) unless the test killed it first."""
    cache = cache_dir or tmp_path / f"{name}-cache"
    log = tmp_path / f"{name}.log"

    def argv(chosen: int) -> list[str]:
        return [
            sys.executable, "-m", "wheelpatch", "serve", "--port", str(chosen),
            "--config", str(config), "--cache-dir", str(cache),
            *(f"--upstream={u}" for u in upstreams), *map(str, options),
        ]  # fmt: skip

    processes: list[subprocess.Popen[bytes]] = []
    with started(argv, "/health", log, "wheelpatch serve", port, processes=processes) as url:
        yield Proxy(url, log, processes[-1], cache)


def make_wheelhouse(directory: Path) -> Path:
    """The example's stand-ins: torch 2.0.1 <-> triton 2.0.0 (the cycle), CUDA packages, and
    torch's other requirements; the same bytes every time."""
    done = subprocess.run(
        [sys.executable, EXAMPLE / "make_wheelhouse.py", directory],
        env=hermetic_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return directory


@dataclass
class Upstream:
    """A real pypiserver, and what its access log says was asked of it."""

    url: str
    log: Path
    process_port: int
    #: The pypiserver process (to stop, pause or resume it by its id).
    process: subprocess.Popen[bytes]

    @property
    def index(self) -> str:
        return self.url + "/simple/"

    def requests(self) -> list[tuple[str, int, int]]:
        """(path, status, bytes sent) of every request, in order (HEADs included)."""
        return [(path, status, size) for _, path, status, size in self.calls()]

    def calls(self) -> list[tuple[str, str, int, int]]:
        """(method, path, status, bytes sent) of every request, in order."""
        found = []
        for method, path, status, size in _ACCESS.findall(self.log.read_text("utf-8", "replace")):
            unquoted = urllib.parse.unquote(path)
            found.append((method, unquoted, int(status), 0 if size == "-" else int(size)))
        return found

    def full_gets(self, filename: str) -> list[int]:
        """The bytes sent for each GET of that file answered 200 (the whole file; ranges are 206,
        a HEAD is not a GET)."""
        return [
            n
            for m, p, s, n in self.calls()
            if m == "GET" and s == 200 and p.rsplit("/", 1)[-1] == filename
        ]


@contextlib.contextmanager
def pypiserver(directory: Path, name: str = "upstream") -> Iterator[Upstream]:
    """pypiserver serving ``directory`` with its access log on (``-v``), no fallback to PyPI."""
    log = directory.parent / f"{name}-pypiserver.log"
    chosen: list[int] = []

    def argv(port: int) -> list[str]:
        chosen.append(port)
        return [
            sys.executable, "-m", "pypiserver", "run", "-v", "-p", str(port), "-i", "127.0.0.1",
            "-a", ".", "-P", ".", "--disable-fallback", str(directory),
        ]  # fmt: skip

    processes: list[subprocess.Popen[bytes]] = []
    with started(argv, "/simple/", log, "pypiserver", processes=processes) as url:
        yield Upstream(url, log, chosen[-1], processes[-1])


@dataclass
class Answer:
    status: int
    headers: Message
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


def get(url: str, headers: dict[str, str] | None = None, target: str | None = None) -> Answer:
    """One GET with http.client: no proxy, no redirect followed, the request target sent as it
    is (``target`` overrides the URL's path, for targets a URL library would normalize)."""
    parts = urllib.parse.urlsplit(url)
    path = target or (parts.path + (f"?{parts.query}" if parts.query else ""))
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=120)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        return Answer(response.status, response.headers, response.read())
    finally:
        connection.close()


def file_url(proxy: Proxy, project: str, filename: str) -> str:
    return f"{proxy.url}/files/{project}/{urllib.parse.quote(filename, safe='')}"
