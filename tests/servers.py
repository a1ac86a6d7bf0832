"""Servers the tests start themselves: on a free 127.0.0.1 port, stopped by their process id."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from .hermetic import hermetic_env

__all__ = ["NGINX", "answers", "free_port", "nginx", "pypi_server", "started"]


NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def answers(url: str) -> bool:
    """Whether ``url`` answers 200, asked without any proxy."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=2) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


@contextlib.contextmanager
def started(
    command: Callable[[int], Sequence[str]],
    ready: str,
    log: Path,
    what: str,
    port: int | None = None,
    processes: list[subprocess.Popen[bytes]] | None = None,
) -> Iterator[str]:
    """Run ``command(port)`` on a free 127.0.0.1 port (or ``port``), its output appended to
    ``log``, until ``URL + ready`` answers; yield the URL, then stop it by its process id.
    ``processes``, if given, gets the running process appended (for a test that signals it)."""
    for _ in range(1 if port is not None else 3):  # another process may take a free port first
        chosen = port if port is not None else free_port()
        url = f"http://127.0.0.1:{chosen}"
        with log.open("ab") as out:
            process = subprocess.Popen(
                list(command(chosen)), stdout=out, stderr=subprocess.STDOUT, env=hermetic_env()
            )
        deadline = time.monotonic() + 30
        while process.poll() is None and time.monotonic() < deadline:
            if answers(url + ready):
                break
            time.sleep(0.05)
        else:
            if process.poll() is None:
                process.kill()
            process.wait()
            continue
        if processes is not None:
            processes.append(process)
        try:
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return
    pytest.fail(f"{what} did not start; its log:\n{log.read_text(errors='replace')}")


@contextlib.contextmanager
def pypi_server(
    directory: Path,
    command: Sequence[str | Path] | None = None,
    options: Sequence[str] = (),
) -> Iterator[tuple[str, Path]]:
    """A real pypiserver on a free 127.0.0.1 port serving ``directory`` (uploads need no password,
    unknown projects are not redirected to PyPI); yields its URL and its log, stopped by PID.

    ``command`` is how it is started (default ``python -m pypiserver``); ``run -p PORT ...`` and
    ``options`` (``--overwrite``) are appended."""
    log = directory.parent / f"{directory.name}-pypiserver.log"
    prefix = [str(a) for a in command or (sys.executable, "-m", "pypiserver")]

    def argv(port: int) -> list[str]:
        return [
            *prefix, "run", "-p", str(port), "-i", "127.0.0.1", "-a", ".", "-P", ".",
            "--disable-fallback", *options, str(directory),
        ]  # fmt: skip

    with started(argv, "/simple/", log, "pypiserver") as url:
        yield url, log


@contextlib.contextmanager
def nginx(work: Path, servers: str, ready: str, log_format: str | None = None) -> Iterator[Path]:
    """Debian's nginx in the foreground with ``servers`` (its ``server`` blocks) in the http
    block, its files in ``work``, until ``ready`` (a URL) answers 200; yields the access log,
    then stops it by its process id. ``log_format`` replaces the access log's format."""
    temp = "".join(
        f"    {name}_temp_path {work / name};\n"
        for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    log = work / "access.log"
    logging = (
        f"    log_format t '{log_format}';\n    access_log {log} t;\n"
        if log_format
        else (f"    access_log {log};\n")
    )
    conf = work / "nginx.conf"
    conf.write_text(
        # root's workers can read the test's private temporary directory
        "daemon off;\nworker_processes 1;\nuser root;\n"
        f"pid {work / 'nginx.pid'};\nerror_log {work / 'error.log'};\n"
        "events {}\nhttp {\n    include /etc/nginx/mime.types;\n"
        f"{temp}{logging}{servers}}}\n",
        encoding="utf-8",
    )
    with (work / "stderr.log").open("wb") as stderr:
        process = subprocess.Popen([NGINX, "-c", str(conf), "-p", str(work)], stderr=stderr)
    try:
        deadline = time.monotonic() + 20
        while not answers(ready):
            errors = "".join(
                p.read_text() for p in (work / "stderr.log", work / "error.log") if p.exists()
            )
            assert process.poll() is None, errors
            assert time.monotonic() < deadline, f"nginx did not answer: {errors}"
            time.sleep(0.05)
        yield log
    finally:
        process.terminate()
        process.wait(timeout=10)
