"""Servers the tests start themselves: on a free 127.0.0.1 port, stopped by their process id."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from .hermetic import hermetic_env

__all__ = ["answers", "free_port", "pypi_server"]


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
    for _ in range(3):  # another process may take the free port before the server binds it
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        argv = [
            *prefix, "run", "-p", str(port), "-i", "127.0.0.1", "-a", ".", "-P", ".",
            "--disable-fallback", *options, str(directory),
        ]  # fmt: skip
        with log.open("ab") as out:
            process = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, env=hermetic_env()
            )
        deadline = time.monotonic() + 30
        while process.poll() is None and time.monotonic() < deadline:
            if answers(f"{url}/simple/"):
                break
            time.sleep(0.05)
        else:
            if process.poll() is None:
                process.kill()
            process.wait()
            continue
        try:
            yield url, log
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return
    pytest.fail(f"pypiserver did not start; its log:\n{log.read_text(errors='replace')}")
