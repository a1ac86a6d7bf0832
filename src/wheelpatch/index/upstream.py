"""The proxy's side facing its upstream indexes: project pages, PEP 658 sidecars, byte ranges
and whole files, over HTTP(S) (httpx, redirects followed) or from a ``file://`` simple index.

Only the configured indexes are asked for pages, and only the files their pages link to are ever
fetched: a client cannot make the proxy contact anything else. Credentials come from the index
URL (``https://user:token@host/simple/``) or from netrc, are sent only to the index's own host,
and never appear in a log line or a message (:func:`redact`).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import mimetypes
import netrc
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from urllib.parse import quote, unquote, urlsplit, urlunsplit
from urllib.request import url2pathname

import httpx

from ..errors import WheelpatchError
from .listing import HTML_TYPE, JSON_TYPE, ListingError, parse_listing, parse_project_list
from .page_cache import CachedPage

__all__ = [
    "Upstream",
    "UpstreamClient",
    "UpstreamError",
    "redact",
]

_log = logging.getLogger(__name__)

#: What the proxy asks upstreams for: JSON first, HTML for those that have nothing else.
_ACCEPT = f"{JSON_TYPE}, {HTML_TYPE};q=0.2, text/html;q=0.01"
_CHUNK = 1 << 20
#: Cap on a page or sidecar read into memory.
_PAGE_CAP = 64 << 20


class UpstreamError(WheelpatchError):
    """An upstream could not give what was asked; ``status`` is the HTTP status to answer with
    (502: it answered wrongly, 503: it could not be reached)."""

    def __init__(self, message: str, status: int = 502) -> None:
        super().__init__(message)
        self.status = status


def redact(url: str) -> str:
    """``url`` without its user name and password."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host += f":{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


@dataclass(frozen=True, slots=True)
class Upstream:
    """One configured index: its base URL (ending in ``/``) without credentials, and them."""

    url: str
    auth: tuple[str, str] | None = None

    @classmethod
    def parse(cls, text: str) -> Upstream:
        parts = urlsplit(text)
        if parts.scheme not in ("http", "https", "file") or (
            parts.scheme != "file" and not parts.hostname
        ):
            raise ValueError(f"{redact(text)!r} is not an http(s):// or file:// index URL")
        auth = None
        if parts.username is not None:
            auth = (unquote(parts.username), unquote(parts.password or ""))
        url = redact(text)
        return cls(url if url.endswith("/") else url + "/", auth)

    @property
    def host(self) -> str:
        return urlsplit(self.url).netloc


def _wire_url(url: str) -> str:
    """``url`` as httpx can send it: httpx takes a ``file:///path`` (no host) for a relative URL
    and drops its scheme, so a local file is asked for as ``file://localhost/path``."""
    if url.startswith("file:///"):
        return "file://localhost/" + url.removeprefix("file:///")
    return url


class _FileStream(httpx.SyncByteStream):
    """``length`` bytes of an open file, from where it stands, in chunks (a response body that
    ``iter_raw`` can stream, never the whole file in memory); the file is closed with it."""

    def __init__(self, handle: IO[bytes], length: int) -> None:
        self._handle = handle
        self._left = length

    def __iter__(self) -> Iterator[bytes]:
        while self._left > 0:
            chunk = self._handle.read(min(_CHUNK, self._left))
            if not chunk:
                return
            self._left -= len(chunk)
            yield chunk

    def close(self) -> None:
        self._handle.close()


class _FileTransport(httpx.BaseTransport):
    """``file://`` URLs as an HTTP server would answer them: a directory by its index.html,
    ``Range`` honoured, 404 for what is not there."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        path = Path(url2pathname(unquote(request.url.path)))
        if path.is_dir():
            path = path / "index.html"
        try:
            handle = path.open("rb")
        except OSError:
            return httpx.Response(404, request=request)
        try:
            size = os.fstat(handle.fileno()).st_size
            media = "text/html" if path.suffix == ".html" else None
            media = media or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            wanted = request.headers.get("range")
            status, start, end = 200, 0, size
            headers = {"content-type": media}
            if wanted and wanted.startswith("bytes="):
                first, _, last = wanted[6:].partition("-")
                if first == "":
                    start, end = max(size - int(last), 0), size
                else:
                    start, end = int(first), min(int(last) + 1 if last else size, size)
                status = 206
                headers["content-range"] = f"bytes {start}-{end - 1}/{size}"
                handle.seek(start)
            headers["content-length"] = str(end - start)
            headers["accept-ranges"] = "bytes"
            if request.method == "HEAD":
                handle.close()
                return httpx.Response(status, headers=headers, request=request)
        except BaseException:
            handle.close()
            raise
        return httpx.Response(
            status, headers=headers, stream=_FileStream(handle, end - start), request=request
        )


def _netrc_auth() -> httpx.Auth | None:
    where = os.environ.get("NETRC") or os.path.join(os.path.expanduser("~"), ".netrc")
    if not os.path.isfile(where):
        return None
    try:
        netrc.netrc(where)
    except (netrc.NetrcParseError, OSError) as exc:
        _log.warning("%s: not used (%s)", where, exc)
        return None
    return httpx.NetRCAuth(where)


class UpstreamClient:
    """One HTTP client for all upstreams, safe to share between threads."""

    def __init__(self, upstreams: tuple[Upstream, ...], timeout: float, retries: int) -> None:
        self.upstreams = upstreams
        self._netrc = _netrc_auth()
        self._client = httpx.Client(
            follow_redirects=True,
            timeout=httpx.Timeout(timeout),
            transport=httpx.HTTPTransport(retries=retries),
            mounts={"file://": _FileTransport()},
            headers={"user-agent": "wheelpatch-serve"},
        )

    def close(self) -> None:
        self._client.close()

    def _auth(self, url: str) -> httpx.Auth | tuple[str, str] | None:
        """Credentials for ``url``: only an upstream's own, and only on its own host."""
        host = urlsplit(url).netloc
        for upstream in self.upstreams:
            if upstream.host == host and upstream.auth is not None:
                return upstream.auth
        return self._netrc

    def _get(
        self, url: str, headers: dict[str, str] | None = None, method: str = "GET"
    ) -> httpx.Response:
        with _reaching(url):
            return self._client.request(
                method, _wire_url(url), headers=headers, auth=self._auth(url)
            )

    @contextlib.contextmanager
    def _stream(self, url: str, headers: dict[str, str]) -> Iterator[httpx.Response]:
        """A GET whose body is read as it arrives, never decoded (the bytes hashed are the
        bytes sent)."""
        headers = {"accept-encoding": "identity", **headers}
        with (
            _reaching(url),
            self._client.stream(
                "GET", _wire_url(url), headers=headers, auth=self._auth(url)
            ) as response,
        ):
            yield response

    def project(self, name: str) -> CachedPage | None:
        """The project's page from the first upstream that has it (in the order configured, as
        uv's default index strategy does: a later index cannot shadow an earlier one's
        project), or None when none has it. The page is checked to be one :func:`parse_listing`
        reads before it is returned."""
        for upstream in self.upstreams:
            url = upstream.url + quote(name, safe="") + "/"
            response = self._get(url, {"accept": _ACCEPT})
            if response.status_code == 404:
                continue
            if response.status_code != 200:
                raise UpstreamError(
                    f"{redact(url)}: answered {response.status_code}",
                    503 if response.status_code >= 500 else 502,
                )
            body = response.content
            if len(body) > _PAGE_CAP:
                raise UpstreamError(f"{redact(url)}: page over {_PAGE_CAP >> 20} MiB")
            page = CachedPage(
                body,
                response.headers.get("content-type", "text/html"),
                redact(str(response.url)),
                upstream.url,
                time.time(),
            )
            try:
                parse_listing(page.body, page.content_type, name, page.url)
            except ListingError as exc:
                raise UpstreamError(f"{redact(url)}: {exc}") from None
            return page
        return None

    def projects(self) -> list[str]:
        """The names every upstream's project list holds, merged."""
        names: set[str] = set()
        for upstream in self.upstreams:
            response = self._get(upstream.url, {"accept": _ACCEPT})
            if response.status_code != 200:
                raise UpstreamError(
                    f"{upstream.url}: answered {response.status_code}",
                    503 if response.status_code >= 500 else 502,
                )
            try:
                names.update(
                    parse_project_list(
                        response.content, response.headers.get("content-type", "text/html")
                    )
                )
            except ListingError as exc:
                raise UpstreamError(f"{upstream.url}: {exc}") from None
        return sorted(names)

    def read(self, url: str, cap: int = _PAGE_CAP) -> bytes:
        """A small file (a PEP 658 sidecar) in memory."""
        response = self._get(url)
        if response.status_code != 200:
            raise UpstreamError(f"{redact(url)}: answered {response.status_code}")
        if len(response.content) > cap:
            raise UpstreamError(f"{redact(url)}: over {cap} bytes")
        return response.content

    def read_range(self, url: str, offset: int, length: int) -> bytes | None:
        """Bytes ``offset`` to ``offset + length`` of the file at ``url``; None when the server
        does not do ranges (it answered 200 with the whole file)."""
        with self._stream(url, {"range": f"bytes={offset}-{offset + length - 1}"}) as response:
            if response.status_code == 200:
                return None
            if response.status_code != 206:
                raise UpstreamError(f"{redact(url)}: answered {response.status_code}")
            data = response.read()
        if len(data) != length:
            raise UpstreamError(
                f"{redact(url)}: asked for {length} bytes at {offset}, got {len(data)}"
            )
        return data

    def size(self, url: str) -> int | None:
        """The file's size, if its server answers range requests (None if not): a HEAD says
        both (``Accept-Ranges``) without sending the body; a server that refuses HEAD is asked
        for its first byte."""
        response = self._get(url, method="HEAD")
        if response.status_code == 200:
            length = response.headers.get("content-length", "")
            ranges = response.headers.get("accept-ranges", "").strip().lower() == "bytes"
            return int(length) if ranges and length.isdigit() else None
        with self._stream(url, {"range": "bytes=0-0"}) as answer:
            if answer.status_code != 206:
                return None
            total = answer.headers.get("content-range", "").rpartition("/")[2]
        return int(total) if total.isdigit() else None

    def download(self, url: str, into: IO[bytes], sha256: str | None) -> str:
        """Stream the file at ``url`` into ``into`` and return its sha256; when the page gave
        one, a file that does not match it is refused."""
        digest = hashlib.sha256()
        for chunk in self.stream(url):
            digest.update(chunk)
            into.write(chunk)
        found = digest.hexdigest()
        if sha256 is not None and found != sha256:
            raise UpstreamError(
                f"{redact(url)}: sha256 {found} does not match the {sha256} its index lists"
            )
        return found

    def stream(self, url: str) -> Iterator[bytes]:
        """The file at ``url`` as it arrives (pass-through downloads through the proxy)."""
        with self._stream(url, {}) as response:
            if response.status_code != 200:
                raise UpstreamError(f"{redact(url)}: answered {response.status_code}")
            yield from response.iter_raw(_CHUNK)


@contextlib.contextmanager
def _reaching(url: str) -> Iterator[None]:
    """A request to ``url``: not reaching it is a 503, said in one line."""
    try:
        yield
    except httpx.TimeoutException:
        raise UpstreamError(f"{redact(url)}: timed out", 503) from None
    except httpx.TransportError as exc:
        raise UpstreamError(f"{redact(url)}: unreachable ({_reason(exc)})", 503) from None


def _reason(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0]
